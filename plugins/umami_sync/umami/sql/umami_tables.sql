-- Which of the tables the sync reads this database has, in the schema the connection resolves names in (its
-- search_path): session_link exists from Umami 3.3 on.
SELECT table_name::text
FROM information_schema.tables
WHERE table_schema = current_schema()
  AND table_name IN ('session', 'session_data', 'session_link', 'website', 'website_event')

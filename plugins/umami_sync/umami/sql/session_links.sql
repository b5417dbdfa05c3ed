-- Umami 3.3's session_link rows (website_id, session_id, distinct_id, created_at): one per person a session
-- was identified as, timed at the first identify (the server inserts ON CONFLICT DO NOTHING).
SELECT website_id, session_id, distinct_id, created_at FROM session_link

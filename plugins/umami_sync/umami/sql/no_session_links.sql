-- No session_link rows: what session_links.sql gives on a server before Umami 3.3, which has no such table.
SELECT NULL::uuid AS website_id, NULL::uuid AS session_id, NULL::varchar(50) AS distinct_id,
       NULL::timestamptz AS created_at
WHERE false

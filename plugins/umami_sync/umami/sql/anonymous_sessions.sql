-- Sessions created in the window that carry no identity at all: no distinct_id, no session_data row of the
-- identity key and no session_link row. They are counted, never written.
-- links: session_links.sql where the table exists, else no_session_links.sql.
-- Parameters: %(start)s, %(end)s (half-open window), %(data_key)s, %(websites)s (uuid[]; NULL = every website).
WITH links AS ({session_links})
SELECT count(*)
FROM session AS s
WHERE s.created_at >= %(start)s AND s.created_at < %(end)s
  AND s.distinct_id IS NULL
  AND (%(websites)s::uuid[] IS NULL OR s.website_id = ANY(%(websites)s::uuid[]))
  AND NOT EXISTS (
      SELECT 1 FROM session_data AS d
      WHERE d.session_id = s.session_id AND d.data_key = %(data_key)s
  )
  AND NOT EXISTS (
      SELECT 1 FROM links AS l
      WHERE l.website_id = s.website_id AND l.session_id = s.session_id
  )

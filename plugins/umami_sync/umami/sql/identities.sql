-- Identities that appeared in a window, one row per (identity, session, source), each source at its own time:
--   * session.distinct_id, at session.created_at (when the session first appeared);
--   * session_link rows (Umami 3.3+), at session_link.created_at (when the session was identified or claimed:
--     often later than the session, and one session can be linked to several people);
--   * session_data rows of the identity key (default 'email'), at session_data.created_at (the latest write).
-- links: session_links.sql where the table exists, else no_session_links.sql.
-- Rows of one identity arrive together, newest first, so the sync can group them while streaming.
-- Parameters: %(start)s, %(end)s (half-open window), %(data_key)s, %(websites)s (uuid[]; NULL = every website).
WITH links AS ({session_links})
SELECT identity, session_id::text AS session_id, website_id::text AS website_id, seen_at, source
FROM (
    SELECT s.distinct_id AS identity, s.session_id, s.website_id, s.created_at AS seen_at,
           'distinct_id' AS source
    FROM session AS s
    WHERE s.created_at >= %(start)s AND s.created_at < %(end)s
      AND s.distinct_id IS NOT NULL
      AND (%(websites)s::uuid[] IS NULL OR s.website_id = ANY(%(websites)s::uuid[]))
    UNION ALL
    SELECT l.distinct_id, l.session_id, l.website_id, l.created_at, 'session_link'
    FROM links AS l
    WHERE l.created_at >= %(start)s AND l.created_at < %(end)s
      AND (%(websites)s::uuid[] IS NULL OR l.website_id = ANY(%(websites)s::uuid[]))
    UNION ALL
    SELECT d.string_value, d.session_id, d.website_id, d.created_at, 'session_data'
    FROM session_data AS d
    WHERE d.created_at >= %(start)s AND d.created_at < %(end)s
      AND d.data_key = %(data_key)s
      AND (%(websites)s::uuid[] IS NULL OR d.website_id = ANY(%(websites)s::uuid[]))
) AS identities
ORDER BY lower(btrim(identity)), seen_at DESC, session_id

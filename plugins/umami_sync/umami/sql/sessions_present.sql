-- Whether this database holds any session of a website with an event in a window, the rows Umami's session
-- list is made of. A window the API lists sessions for and this finds none of is kept elsewhere: in ClickHouse
-- (Umami then writes nothing to PostgreSQL), or the connection points at another database.
-- Parameters: %(website)s (uuid), %(start)s, %(end)s (half-open window).
SELECT EXISTS (
    SELECT 1
    FROM website_event AS e
    JOIN session AS s ON s.session_id = e.session_id AND s.website_id = e.website_id
    WHERE e.website_id = %(website)s::uuid
      AND e.created_at >= %(start)s AND e.created_at < %(end)s
)

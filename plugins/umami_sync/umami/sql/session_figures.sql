-- Each of some sessions' figures in a window, from the session's own events: what the analytics sync writes for a
-- session its list rows cannot give (rows on several hostnames, or a session spread across sub-windows). The events
-- counted are those Umami's session list counts (getWebsiteSessions.ts): of this website, in the window, from the
-- website's reset_at on, and no performance beacons (event_type 5); the figures are the list's too: first and last
-- event (in whole milliseconds, as the API sends them), page views (event_type 1), distinct visit ids. Reading the
-- database, never the activity route, keeps them on the one session: Umami's newer activity route answers, for a
-- session linked to one person, the events of every session linked to that person, over whole months.
-- Parameters: %(website)s (uuid), %(sessions)s (uuid[]), %(start)s, %(end)s (half-open window).
SELECT e.session_id::text,
       date_trunc('milliseconds', min(e.created_at)) AS first_at,
       date_trunc('milliseconds', max(e.created_at)) AS last_at,
       sum((e.event_type = 1)::int) AS views,
       count(DISTINCT e.visit_id) AS visits
FROM website_event AS e
JOIN website AS w ON w.website_id = e.website_id
WHERE e.website_id = %(website)s::uuid
  AND e.session_id = ANY(%(sessions)s::uuid[])
  AND e.created_at >= %(start)s AND e.created_at < %(end)s
  AND (w.reset_at IS NULL OR e.created_at >= w.reset_at)
  AND e.event_type <> 5
GROUP BY e.session_id

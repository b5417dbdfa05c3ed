-- Which of some stored umamiAnalytics their own session's events do not bear out. Figures the sync wrote are a
-- session's events in some window: its first and last event are events of that session, and it had at least the
-- views and visits written between them (events only ever arrive, late ones included). Figures that fail this were
-- never the session's: an activity answer that held other sessions' events (Umami's newer activity route, for a
-- session linked to one person) wrote them, and they must not block the true figures for ever.
-- The events counted are those the session list counts (see session_figures.sql). Times in whole milliseconds.
-- Parameters, one element per stored figure (in order): %(sessions)s (uuid[]), %(websites)s (uuid[]),
-- %(firsts)s, %(lasts)s (timestamptz[]), %(views)s, %(visits)s (int[]). Answers the 1-based positions disproved.
SELECT c.n
FROM unnest(%(sessions)s::uuid[], %(websites)s::uuid[], %(firsts)s::timestamptz[], %(lasts)s::timestamptz[],
            %(views)s::int[], %(visits)s::int[])
     WITH ORDINALITY AS c(session_id, website_id, first_at, last_at, views, visits, n)
LEFT JOIN LATERAL (
    SELECT date_trunc('milliseconds', min(e.created_at)) AS first_at,
           date_trunc('milliseconds', max(e.created_at)) AS last_at,
           sum((e.event_type = 1)::int) AS views,
           count(DISTINCT e.visit_id) AS visits
    FROM website_event AS e
    JOIN website AS w ON w.website_id = e.website_id
    WHERE e.session_id = c.session_id
      AND e.website_id = c.website_id
      AND e.created_at >= c.first_at AND e.created_at < c.last_at + interval '1 millisecond'
      AND (w.reset_at IS NULL OR e.created_at >= w.reset_at)
      AND e.event_type <> 5
) AS events ON true
WHERE events.first_at IS DISTINCT FROM c.first_at
   OR events.last_at IS DISTINCT FROM c.last_at
   OR events.views < c.views
   OR events.visits < c.visits
ORDER BY c.n

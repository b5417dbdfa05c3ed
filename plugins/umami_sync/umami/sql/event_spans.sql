-- The first and last event of each of some sessions in an interval, on the websites a run syncs: what decides
-- which analytics task writes a user who was active on several websites or sub-windows (the later last event
-- wins), and whether a session began before the sub-window that writes it. Every task of a run asks the same
-- question of the same rows, so they all reach the same answer:
--   * times are cut to whole milliseconds, the precision of Umami's API (two sessions in one millisecond tie,
--     and the tie goes to the larger session id in every task);
--   * the events Umami's session list counts: after the website's reset, and no performance beacons
--     (event_type 5), which newer Umami leaves out of the list.
-- Parameters: %(sessions)s (uuid[]), %(websites)s (uuid[]; NULL = every website), %(start)s, %(end)s (half-open).
SELECT e.session_id::text, date_trunc('milliseconds', min(e.created_at)) AS first_at,
       date_trunc('milliseconds', max(e.created_at)) AS last_at
FROM website_event AS e
JOIN website AS w ON w.website_id = e.website_id
WHERE e.session_id = ANY(%(sessions)s::uuid[])
  AND (%(websites)s::uuid[] IS NULL OR e.website_id = ANY(%(websites)s::uuid[]))
  AND e.created_at >= %(start)s AND e.created_at < %(end)s
  AND (w.reset_at IS NULL OR e.created_at >= w.reset_at)
  AND e.event_type <> 5
GROUP BY e.session_id

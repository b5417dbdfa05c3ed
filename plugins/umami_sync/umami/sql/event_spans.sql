-- The first and last event of each of some sessions in an interval, on the websites a run syncs: what decides
-- which analytics task writes a user who was active on several websites or sub-windows (the later last event
-- wins), and whether a session began before the sub-window that writes it.
-- Parameters: %(sessions)s (uuid[]), %(websites)s (uuid[]; NULL = every website), %(start)s, %(end)s (half-open).
SELECT session_id::text, min(created_at) AS first_at, max(created_at) AS last_at
FROM website_event
WHERE session_id = ANY(%(sessions)s::uuid[])
  AND (%(websites)s::uuid[] IS NULL OR website_id = ANY(%(websites)s::uuid[]))
  AND created_at >= %(start)s AND created_at < %(end)s
GROUP BY session_id

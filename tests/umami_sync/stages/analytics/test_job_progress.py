"""The runner's loop over a listing, with its reads answered in memory: figures per pass, a listing that starts
again when its count changes, and sessions whose events cannot be read (no services)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.factories import WEBSITE, at, list_row
from umami_sync.stages.analytics.changes import JobProgress, analytics_changes
from umami_sync.stages.analytics.contest import Contest
from umami_sync.umami.activity import ActivityFigures
from umami_sync.umami.api import SessionPage
from umami_sync.umami.listing import SessionListing
from umami_sync.windows import DataInterval

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from umami_sync.umami.models import SessionRow
    from umami_sync.users.updates import Analytics

ONE, TWO, THREE = (f"00000000-0000-4000-8000-00000000000{n}" for n in (1, 2, 3))
DAY = DataInterval(at(0), at(0, day=28))


def row(session: str, hostname: str, hour: int) -> SessionRow:
    return {**list_row(session, at(hour), at(hour), hostname=hostname), "events": 1}


class Umami:
    """A session list whose second page reports one more row (a session arrived) the first time it is asked;
    and the sessions' events, which cannot be read until the list starts again."""

    def __init__(self) -> None:
        self.rows = [row(ONE, "a.example.com", 12), row(ONE, "b.example.com", 11), row(TWO, "a.example.com", 10),
                     row(THREE, "a.example.com", 9)]
        self.arrived = False
        self.reads: list[str] = []

    def page(self, number: int, size: int) -> SessionPage:
        if number == 2 and not self.arrived:
            self.arrived = True
            return SessionPage(number, size, len(self.rows) + 1, [])
        return SessionPage(number, size, len(self.rows), list(self.rows[(number - 1) * size:number * size]))

    left_out = 0

    def figures(self, rows: Mapping[str, Sequence[SessionRow]]) -> dict[str, ActivityFigures]:
        self.reads.extend(rows)
        return {session: ActivityFigures(at(11), at(12), views=2, visits=1) for session in rows} if self.arrived else {}

    def spans(self, sessions: Sequence[str]) -> None:
        return None

    def whole(self, analytics: Sequence[Analytics]) -> dict[str, Analytics]:
        return {item.id: item for item in analytics}


def test_a_listing_that_starts_again_counts_only_its_last_pass() -> None:
    umami = Umami()
    listing = SessionListing(umami.page, page_size=2, what="probe")
    users: dict[str, list[Any]] = {ONE: [{"_id": "u1"}], TWO: [{"_id": "u2"}]}
    progress = JobProgress()

    changes = list(analytics_changes(listing, umami, lambda ids: {i: users[i] for i in ids if i in users},
                                     Contest((WEBSITE,), DAY, umami, umami), progress, now=at(23)))

    assert umami.reads == [ONE, ONE]  # unreadable in the first pass, read again after the restart
    assert listing.report.restarts == 1
    assert progress.figures() == {"sessions": 3, "merged_sessions": 1, "unread_sessions": 0,
                                  "matched_sessions": 2, "left_to_other_tasks": 0, "disproved_analytics": 0,
                                  "sessions_without_span": 0, "sessions_not_widened": 0}
    assert sorted(change.user_id for change in changes) == ["u1", "u2"]
    assert next(c for c in changes if c.user_id == "u1").fields["umamiAnalytics"]["views"] == 2

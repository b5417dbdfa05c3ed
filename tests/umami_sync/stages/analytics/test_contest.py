"""The contest (which task of a run writes a user) and the changes of a page: pure, no services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.factories import OTHER_WEBSITE, WEBSITE, at
from umami_sync.stages.analytics.contest import Contest
from umami_sync.users.updates import Analytics
from umami_sync.windows import DataInterval

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

def test_the_contest_gives_a_user_to_the_task_with_the_latest_session() -> None:
    def item(session: str, hour: int) -> Analytics:
        return Analytics(session, WEBSITE, None, None, None, None, None, None, None, None, at(hour - 1), at(hour), 1, 1)

    def known(*sessions: tuple[str, str | None]) -> dict[str, Any]:
        return {"_id": sessions[0][0], "umamiSessions": [{"id": s, "websiteId": w} for s, w in sessions]}

    span = {"a": (at(9), at(10)), "b": (at(11), at(12)), "c": (at(9), at(10)), "z": (at(13), at(23)),
            "w": (at(3), at(16)), "legacy": (at(1), at(13))}
    widened: list[str] = []

    class Reads:  # the contest's two reads, answered from the table above
        def spans(self, sessions: Sequence[str]) -> dict[str, tuple[datetime, datetime]]:
            return {s: span[s] for s in sessions if s in span}

        def whole(self, analytics: Analytics) -> Analytics:
            widened.append(analytics.id)
            return analytics

    contest = Contest((WEBSITE, OTHER_WEBSITE), DataInterval(at(8), at(18)), Reads(), Reads())
    chosen = {
        1: (item("a", 10), known(("a", WEBSITE), ("b", OTHER_WEBSITE))),  # b ends later on the other website
        2: (item("b", 12), known(("b", OTHER_WEBSITE), ("a", WEBSITE))),  # b is the latest: this task writes
        3: (item("c", 10), known(("c", WEBSITE), ("a", OTHER_WEBSITE))),  # as late: the larger id ("c") wins
        4: (item("z", 17), known(("z", WEBSITE))),  # the same session again after this window: a later task's
        5: (item("a", 10), known(("a", WEBSITE), ("b", "not-in-this-run"))),
        6: (item("a", 10), known(("a", WEBSITE), ("legacy", None))),  # a session of the original tool counts
        7: (item("w", 16), known(("w", WEBSITE))),  # began before this window: written with its whole figures
    }

    lost, whole_figures = contest.decide(chosen)

    assert lost == {1, 4, 6}
    assert (set(whole_figures), widened) == ({7}, ["w"])


class NoRivals:
    """A run where no other task holds any of the users' sessions."""

    def spans(self, sessions: Sequence[str]) -> dict[str, tuple[datetime, datetime]]:
        return {}

    def whole(self, analytics: Analytics) -> Analytics | None:
        raise AssertionError("nothing began before this window")


def test_a_page_changes_each_user_once_with_their_best_analytics() -> None:
    from umami_sync.stages.analytics.contest import plan_analytics_changes
    from umami_sync.stages.analytics.figures import PageAnalytics

    def item(session: str, hour: int) -> Analytics:
        return Analytics(session, WEBSITE, None, None, None, None, None, None, None, None, at(hour - 1), at(hour), 1, 1)

    ann = {"_id": 1, "session_id": "a"}
    bo = {"_id": 2, "session_id": "c", "umamiAnalytics": item("c", 20).as_document()}  # holds later analytics
    page = PageAnalytics([item("a", 9), item("b", 11), item("c", 10)], refined=frozenset({"b"}), unread=[])
    owners = {"a": [ann], "b": [ann], "c": [bo]}
    contest = Contest((WEBSITE,), DataInterval(at(0), at(0, day=28)), NoRivals(), NoRivals())

    decided = plan_analytics_changes(page, owners, {}, now=at(23), contest=contest)

    assert [(change.user_id, change.fields["umamiAnalytics"]["id"]) for change in decided.changes] == [(1, "b")]
    assert (decided.given, decided.lost, decided.matched_sessions) == ({1: item("b", 11).rank}, set(), 2)
    again = plan_analytics_changes(page, owners, decided.given, now=at(23), contest=contest)
    assert again.changes == []  # this task gave Ann these analytics already

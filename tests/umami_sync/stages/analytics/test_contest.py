"""The contest (which task of a run writes a user) and the changes of a page: pure, no services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.factories import OTHER_WEBSITE, WEBSITE, at, list_row
from umami_sync.stages.analytics.contest import Contest
from umami_sync.stages.analytics.figures import analytics_of
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

        def whole(self, analytics: Sequence[Analytics]) -> dict[str, Analytics]:
            widened.extend(item.id for item in analytics)
            return {item.id: item for item in analytics}

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

    decision = contest.decide(chosen)

    assert decision.lost == {1, 4, 6}
    assert (set(decision.widened), widened) == ({7}, ["w"])
    assert (decision.unspanned, decision.unwidened) == (frozenset(), frozenset())  # every span was read


class NoRivals:
    """A run where no other task holds any of the users' sessions: nothing is read."""

    def spans(self, sessions: Sequence[str]) -> None:
        return None

    def whole(self, analytics: Sequence[Analytics]) -> dict[str, Analytics]:
        raise AssertionError("nothing began before this window")


def test_a_page_changes_each_user_once_with_their_best_analytics() -> None:
    from umami_sync.stages.analytics.contest import plan_analytics_changes
    from umami_sync.stages.analytics.figures import PageAnalytics

    def item(session: str, hour: int) -> Analytics:
        return analytics_of(list_row(session, at(hour - 1), at(hour)))

    ann = {"_id": 1, "session_id": "a"}
    bo = {"_id": 2, "session_id": "c", "umamiAnalytics": item("c", 20).as_document()}  # holds later analytics
    page = PageAnalytics([list_row(s, at(hour - 1), at(hour)) for s, hour in (("a", 9), ("b", 11), ("c", 10),
                                                                                ("d", 12))],
                         [], refined=frozenset({"b"}), unread=[])
    owners = {"a": [ann], "b": [ann], "c": [bo]}  # "d" has no user
    contest = Contest((WEBSITE,), DataInterval(at(0), at(0, day=28)), NoRivals(), NoRivals())

    decided = plan_analytics_changes(page, owners, {}, now=at(23), contest=contest)

    assert [(change.user_id, change.fields["umamiAnalytics"]["id"]) for change in decided.changes] == [(1, "b")]
    assert (decided.given, decided.lost, decided.matched_sessions) == ({1: item("b", 11).rank}, set(), 2)
    again = plan_analytics_changes(page, owners, decided.given, now=at(23), contest=contest)
    assert again.changes == []  # this task gave Ann these analytics already


def test_the_contests_fallbacks_are_returned_not_hidden() -> None:
    """Umami's database holds no span of a listed session (the list's lastAt then decides), and the whole-interval
    figures of a session begun in an earlier sub-window cannot be read (this window's are written): both come back
    in the decision, and the core changes nothing of its reads."""

    def item(session: str, first: int, last: int) -> Analytics:
        return Analytics(session, WEBSITE, None, None, None, None, None, None, None, None, at(first), at(last), 1, 1)

    class Reads:
        def __init__(self) -> None:
            self.asked: list[list[str]] = []

        def spans(self, sessions: Sequence[str]) -> dict[str, tuple[datetime, datetime]]:
            self.asked.append(list(sessions))
            return {"early": (at(3), at(16))}  # "lost" is not in Umami's database

        def whole(self, analytics: Sequence[Analytics]) -> dict[str, Analytics]:
            return {}  # nor are its whole-interval figures

    reads = Reads()
    contest = Contest((WEBSITE,), DataInterval(at(12), at(0, day=28)), reads, reads)
    chosen = {1: (item("lost", 13, 14), {"_id": 1, "session_id": "lost"}),
              2: (item("early", 12, 16), {"_id": 2, "session_id": "early"})}

    decision = contest.decide(chosen)

    assert (decision.lost, decision.widened) == (set(), {})
    assert (decision.unspanned, decision.unwidened) == ({"lost"}, {"early"})
    assert reads.asked == [["early", "lost"]]  # one read for the page


def test_a_page_replaces_stored_figures_their_session_disproves_and_only_those() -> None:
    """Three users whose stored analytics outrank this page's: the check is asked once, for the two of this run's
    websites; the one it disproves is replaced, the one it bears out (a later day synced before) stays, and the one of
    another website is never asked about and stays."""
    from umami_sync.stages.analytics.contest import plan_analytics_changes
    from umami_sync.stages.analytics.figures import PageAnalytics
    from umami_sync.users.updates import StoredAnalytics, stored_analytics

    def item(session: str, last: int, website: str = WEBSITE, *, views: int = 1) -> Analytics:
        return analytics_of(list_row(session, at(last - 1), at(last), website_id=website, views=views))

    wrong = {"_id": 1, "umamiAnalytics": item("a", 20, views=17).as_document()}
    later_day = {"_id": 2, "umamiAnalytics": item("b", 9, views=3).as_document() | {"lastAt": at(9, day=28)}}
    elsewhere = {"_id": 3, "umamiAnalytics": item("x", 22, OTHER_WEBSITE).as_document()}
    asked: list[list[StoredAnalytics]] = []

    class Check:
        def disproved(self, stored: Sequence[StoredAnalytics]) -> set[StoredAnalytics]:
            asked.append(sorted(stored, key=lambda claim: claim.id))
            return {claim for claim in stored if claim.id == "a"}

    page = PageAnalytics([list_row(s, at(last - 1), at(last)) for s, last in (("a", 10), ("b", 11), ("c", 12))], [],
                         refined=frozenset(), unread=[])
    owners = {"a": [wrong], "b": [later_day], "c": [elsewhere]}
    contest = Contest((WEBSITE,), DataInterval(at(0), at(0, day=28)), NoRivals(), NoRivals(), Check())

    decided = plan_analytics_changes(page, owners, {}, now=at(23), contest=contest)

    assert [stored.id for stored in asked[0]] == ["a", "b"] and len(asked) == 1
    assert asked[0][0] == stored_analytics(wrong["umamiAnalytics"])
    assert [(change.user_id, change.fields["umamiAnalytics"]["views"]) for change in decided.changes] == [(1, 1)]
    assert decided.disproved == {1}

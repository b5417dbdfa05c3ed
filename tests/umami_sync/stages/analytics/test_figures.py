"""The figure rules of stage 2: which rows are exact and which sessions are read from their events (pure)."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from typing import TYPE_CHECKING

from tests.factories import WEBSITE, at
from umami_sync.stages.analytics.figures import InvalidFields, analytics_of, page_analytics, plan_page
from umami_sync.umami.activity import ActivityFigures
from umami_sync.umami.listing import ListedPage
from umami_sync.umami.models import InvalidRow, SessionRow, UmamiSession, session_page_rows

if TYPE_CHECKING:
    from pathlib import Path

ONE, TWO, THREE = (f"00000000-0000-4000-8000-00000000000{n}" for n in (1, 2, 3))


def row(session: str, hostname: str, hour: int, *, views: int = 1) -> SessionRow:
    return UmamiSession(id=session, website_id=WEBSITE, hostname=hostname, browser="chrome", first_at=at(hour),
                        last_at=at(hour), visits=1, views=views, events=views).row()


def page(*rows: tuple[SessionRow, bool], invalid: int = 0) -> ListedPage:
    return ListedPage([session for session, _ in rows],
                      [InvalidRow(None, None, "row: bad", ("row",)) for _ in range(invalid)],
                      another_row_before=frozenset(n for n, (_, before) in enumerate(rows) if before))


def test_a_session_with_one_row_is_that_row() -> None:
    plan = plan_page(page((row(ONE, "a.example.com", 9, views=3), False)), set())

    assert [(item["id"], item["views"], item["browser"], item["last_at"]) for item in plan.exact] == [
        (ONE, 3, "chrome", at(9))]
    assert (plan.to_read, plan.earlier, plan.new_sessions) == ([], frozenset(), 1)
    (item,) = page_analytics(plan, {}).analytics({ONE: [{"_id": "u1"}]})
    assert (item.id, item.views, item.browser, item.last_at) == (ONE, 3, "chrome", at(9))


def test_a_session_on_two_hostnames_is_read_from_its_events_once() -> None:
    first, second = row(TWO, "a.example.com", 9), row(TWO, "b.example.com", 10)

    plan = plan_page(page((first, False), (second, True), (row(ONE, "a.example.com", 8), False)), set())

    assert [r["id"] for r in plan.to_read] == [TWO] and plan.to_read[0] is first
    assert [item["id"] for item in plan.exact] == [ONE]
    assert (plan.earlier, plan.new_sessions) == (frozenset(), 2)
    assert plan_page(page((first, False), (second, True)), {TWO}).to_read == []  # read already in this pass


def test_a_second_hostname_in_a_later_page_refines_what_was_handed_on() -> None:
    plan = plan_page(page((row(THREE, "b.example.com", 11), True)), set())

    assert ([r["id"] for r in plan.to_read], plan.earlier, plan.new_sessions, plan.exact) == ([THREE], {THREE}, 0, [])

    read = page_analytics(plan, {THREE: ActivityFigures(at(7), at(11), views=4, visits=2)})

    assert [(a.id, a.first_at, a.views, a.visits) for a in read.analytics({THREE: [{"_id": "u"}]})] == [
        (THREE, at(7), 4, 2)]
    assert (read.refined, read.unread) == ({THREE}, [])


def test_a_session_listed_without_events_is_unread_not_written() -> None:
    plan = plan_page(page((row(ONE, "a.example.com", 9), False), (row(ONE, "b.example.com", 9), True),
                          (row(TWO, "a.example.com", 8), False)), set())

    read = page_analytics(plan, {ONE: None})

    assert (read.sessions, read.unread, read.refined) == ([TWO], [ONE], frozenset())


def test_figures_come_from_the_events_and_attributes_from_the_row() -> None:
    plan = plan_page(page((row(ONE, "a.example.com", 9), False), (row(ONE, "b.example.com", 10), True)), set())
    whole = ActivityFigures(at(9) - timedelta(minutes=5), at(10), views=2, visits=1)

    (item,) = page_analytics(plan, {ONE: whole}).analytics({ONE: [{"_id": "u1"}]})

    assert (item.browser, item.first_at, item.last_at, item.views, item.visits) == (
        "chrome", at(9) - timedelta(minutes=5), at(10), 2, 1)


def test_analytics_are_made_for_the_sessions_with_users_only_in_the_pages_order() -> None:
    plan = plan_page(page((row(ONE, "a.example.com", 9), False), (row(TWO, "a.example.com", 8), False),
                          (row(THREE, "a.example.com", 7), False), (row(THREE, "b.example.com", 7), True)), set())
    read = page_analytics(plan, {THREE: ActivityFigures(at(6), at(7), views=2, visits=1)})

    assert read.sessions == [ONE, TWO, THREE]
    assert [item.id for item in read.analytics({THREE: [{"_id": "u3"}], TWO: [{"_id": "u2"}], ONE: []})] == [TWO,
                                                                                                          THREE]


def test_a_row_validated_whole_gives_the_same_analytics_as_one_validated_alone(umami_fixtures: Path) -> None:
    """A page validated from its body carries pydantic's UTC (offset 0); its analytics are in datetime.UTC, as those
    of a row validated alone are."""
    body = (umami_fixtures / "api_sessions_p1.json").read_bytes()
    whole = session_page_rows(body)
    assert whole is not None
    (first, *_), alone = whole[1], UmamiSession.model_validate(json.loads(body)["data"][0]).row()

    assert first["last_at"].tzinfo is not UTC and first == alone
    assert analytics_of(first) == analytics_of(alone) and analytics_of(first).last_at.tzinfo is UTC


def test_a_window_whose_rows_are_mostly_invalid_names_the_field_that_failed_most() -> None:
    invalid = InvalidFields()
    for _ in range(7):
        invalid.add(InvalidRow(ONE, None, "events: Field required", ("events",)))
    invalid.add(InvalidRow(TWO, None, "lastAt: bad; visits: bad", ("lastAt", "visits")))

    assert invalid.failure(10, 5, max_share=0.5, what="website W") is None  # half: not most
    assert InvalidFields().failure(0, 0, max_share=0.5, what="website W") is None  # an empty day
    assert invalid.failure(10, 8, max_share=0.5, what="website W") == (
        "8 of 10 rows of Umami's session list for website W are invalid, more than max_invalid_share 0.5 allows; "
        "7 failed on field 'events' (first: events: Field required): an Umami whose list this sync cannot read? "
        "Those rows were not written")
    assert invalid.failure(10, 1, max_share=0, what="website W") is not None  # none tolerated

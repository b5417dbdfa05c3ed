"""The reads of single sessions a task passes to its pure parts, against PostgreSQL at the version's schema level and
the local Umami API speaking that version: the activity route asked so that it stays on the one session (a server
without its database connected, as Umami Cloud), and what it answers all the same checked."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from tests.factories import WEBSITE, UmamiRows, at
from tests.umami_sync.stages.analytics.support import DAY, job, linked_person, truth, visitor
from umami_sync.stages.analytics.figures import analytics_of
from umami_sync.stages.analytics.reads import EventSpans, SessionEvents
from umami_sync.umami.api import UmamiHook
from umami_sync.umami.errors import UmamiActivityError
from umami_sync.umami.models import InvalidRow, SessionRow
from umami_sync.windows import ApiWindow, DataInterval

if TYPE_CHECKING:
    from pymongo.database import Database

    from local_stack.umami_api import FakeUmami
    from umami_sync.umami.activity import ActivityFigures

pytestmark = pytest.mark.integration

MORNING = DataInterval(at(0), at(12))


def listed(api: UmamiHook, window: DataInterval = DAY) -> dict[str, list[SessionRow]]:
    """The website's list rows of ``window``, by session."""
    rows: dict[str, list[SessionRow]] = {}
    for row in api.session_page(WEBSITE, ApiWindow.of(window), 1, 1000).entries:
        assert not isinstance(row, InvalidRow)
        rows.setdefault(row["id"], []).append(row)
    return rows


def figures_of(found: dict[str, ActivityFigures]) -> dict[str, tuple[object, ...]]:
    """Figures as :func:`~tests.umami_sync.stages.analytics.support.truth` gives them."""
    return {session: (f.first_at.replace(tzinfo=None), f.last_at.replace(tzinfo=None), f.views, f.visits)
            for session, f in found.items()}


@pytest.mark.umami_levels("3.3")
def test_the_activity_stays_on_the_session_on_a_3_4_server(rows: UmamiRows, connections: Database, umami_db: str,
                                                           linked_server: FakeUmami) -> None:
    """Each person has sessions 3 days before and 20 days after, linked to the same id: asked with a distinct id no
    session is linked to, 3.4's route answers the one session and its window, so the figures are its own, exact."""
    people = [linked_person(rows, connections, n) for n in range(3)]
    api = UmamiHook()
    events = SessionEvents(api, job(MORNING), DAY, what="probe")

    found = events.figures(listed(api, MORNING))
    whole = events.whole([analytics_of(row[0]) for row in listed(api, MORNING).values()])

    assert figures_of(found) == truth(umami_db, WEBSITE, MORNING) == truth(umami_db, WEBSITE, DAY)
    assert {s: (a.first_at, a.last_at, a.views, a.visits) for s, a in whole.items()} == {
        s: (f.first_at, f.last_at, f.views, f.visits) for s, f in found.items()}
    assert set(found) == {person["today"] for person in people} and events.left_out == 0
    asked = [request.query for request in linked_server.requests if request.path.endswith("/activity")]
    assert len(asked) == 6 and {query["distinctId"] for query in asked} == {events.unlinked_id}
    assert uuid.UUID(events.unlinked_id)


@pytest.mark.umami_levels("2.20.2", "3.1.0", "3.3")
def test_older_servers_drop_the_distinct_id_and_answer_the_session(rows: UmamiRows, connections: Database,
                                                                   umami_db: str, umami_server: FakeUmami) -> None:
    """Umami's zod schemas strip the query keys a route does not name (``parseRequest`` keeps ``result.data``), so
    the same request reads any version."""
    visitor(rows, connections, "old@example.com", hours=(9, 11))
    api = UmamiHook()
    events = SessionEvents(api, job(), DAY, what="probe")

    found = events.figures({session: [] for session in listed(api)})

    assert figures_of(found) == truth(umami_db, WEBSITE, DAY)
    assert all("distinctId" in r.query for r in umami_server.requests if r.path.endswith("/activity"))


@pytest.mark.umami_levels("3.3")
def test_what_a_widened_answer_holds_is_left_out_or_fails_the_read(rows: UmamiRows, connections: Database,
                                                                    umami_db: str,
                                                                    linked_server: FakeUmami) -> None:
    """Asked as Umami's UI asks (the person's own distinct id), 3.4's route answers every session of the person over
    whole months. Events outside the window are left out and counted, and the figures are still the session's; an
    event of another session inside the window cannot be told apart, and the read fails rather than count it."""
    people = [linked_person(rows, connections, n) for n in range(2)]
    api = UmamiHook()
    events = SessionEvents(api, job(), DAY, what="probe")
    events.unlinked_id = "pat0@example.com"
    first = {people[0]["today"]: listed(api)[people[0]["today"]]}

    found = events.figures(first)

    assert figures_of(found) == {s: truth(umami_db, WEBSITE, DAY)[s] for s in first}
    assert events.left_out == 12  # 6 page views 3 days before, 6 twenty days after
    rows.event(people[0]["before"], at(9, 30), hostname="a.example.com")  # the other session, on the same day

    with pytest.raises(UmamiActivityError, match=rf"session {people[0]['today']} of probe: its activity on "
                                                 r"a\.example\.com gives .* where its list row says .*: the answer "
                                                 "holds events of other sessions"):
        events.figures({people[0]["today"]: listed(api)[people[0]["today"]]})


@pytest.mark.umami_levels("3.3")
def test_the_contests_spans_and_whole_figures_of_a_page_read_each_session_once(
        rows: UmamiRows, connections: Database, umami_db: str, linked_server: FakeUmami) -> None:
    """Without a database, a later sub-window's contest reads its rivals' spans over the run's interval, then the
    whole figures of the winners that began earlier: the same reads, so each session is asked for once (Umami
    Cloud's rate limit counts every call)."""
    people = [linked_person(rows, connections, n) for n in range(3)]
    api = UmamiHook()
    events = SessionEvents(api, job(MORNING), DAY, what="probe")
    sessions = sorted(listed(api, MORNING))
    spans = EventSpans(events, contested=True)

    found = spans.spans(sessions)
    whole = events.whole([analytics_of(listed(api, MORNING)[session][0]) for session in sessions])

    assert set(found or {}) == set(whole) == {person["today"] for person in people}
    assert {s: (a.first_at, a.last_at) for s, a in whole.items()} == found
    asked = [request.path for request in linked_server.requests if request.path.endswith("/activity")]
    assert sorted(asked) == sorted(f"/api/websites/{WEBSITE}/sessions/{s}/activity" for s in sessions)

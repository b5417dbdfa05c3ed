"""Stage 2 on every Umami a user runs: what each version's list and database hold, against the local Umami API,
PostgreSQL at the version's schema level and MongoDB, on both write paths. Figures are checked against Umami's
own events in the database."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from local_stack.postgres import DEFAULT_LEVEL
from local_stack.umami_api import FakeUmami
from tests.conftest import umami_api_connection
from tests.factories import OTHER_WEBSITE, WEBSITE, UmamiRows, add_user, at
from tests.umami_sync.stages.analytics.support import (
    DAY,
    FAST,
    RUN_AT,
    job,
    linked_person,
    truth,
    truth_documents,
    user,
    visitor,
    written,
    written_documents,
)
from umami_sync.settings import SyncSettings
from umami_sync.umami.api import UmamiHook
from umami_sync.umami.models import CappedListError
from umami_sync.windows import ApiWindow, DataInterval
from umami_sync.wiring import plan_analytics_jobs, sync_analytics_job

if TYPE_CHECKING:
    from collections.abc import Callable

    from pymongo.database import Database

    from tests.conftest import UmamiDatabases
    from umami_sync.results import AnalyticsResult

    Sync = Callable[..., AnalyticsResult]

pytestmark = pytest.mark.integration


def with_beacons(rows: UmamiRows, connections: Database, count: int, *, hostnames: tuple[str, ...] = ("a.example.com",),
                 ) -> list[str]:
    """``count`` identified visitors whose page views (one per hostname, from 09:00) are followed by performance
    beacons half an hour after their last one (``data-performance``: the beacons come last)."""
    sessions = []
    for n in range(count):
        add_user(connections["users"], f"perf{n}@example.com")
        session = rows.session(at(9, n % 60), distinct_id=f"perf{n}@example.com")
        for k, hostname in enumerate(hostnames):
            rows.event(session, at(9, n % 60) + k * (at(1) - at(0)), hostname=hostname)
        rows.beacon(session, at(9, n % 60) + len(hostnames) * (at(1) - at(0)))
        rows.beacon(session, at(9, n % 60) + len(hostnames) * (at(1) - at(0)) + (at(0, 30) - at(0)))
        sessions.append(session)
    return sessions


# --- performance beacons: never a request per session, never activity ----------------------------------------

@pytest.mark.umami_levels("3.1.0", "3.3")
def test_beacons_on_every_session_of_a_day_cost_no_request(sync: Sync, identify: Callable[[], None],
                                                           rows: UmamiRows, connections: Database, umami_db: str,
                                                           umami_level: str) -> None:
    """Umami 3.1 lists each session's beacons as a row of their own (hostname NULL, views 0, events 0); 3.3 leaves
    them out. Either way: ceil(rows / page) list pages and the login, and figures without the beacons."""
    with_beacons(rows, connections, 12)
    identify()

    result = sync(page_size=5)

    listed = 24 if umami_level == "3.1.0" else 12
    assert result.succeeded, result.error
    assert (result.list_rows, result.sessions, result.merged_sessions, result.session_reads) == (listed, 12, 0, 0)
    assert (result.list_pages, result.requests) == (math.ceil(listed / 5), math.ceil(listed / 5) + 1)
    assert written(connections) == truth(umami_db, WEBSITE, DAY)  # each exact, its beacons left out


@pytest.mark.umami_levels("3.1.0", "3.3")
def test_a_session_on_two_hostnames_with_beacons_is_read_exactly(sync: Sync, identify: Callable[[], None],
                                                                 rows: UmamiRows, connections: Database,
                                                                 umami_db: str) -> None:
    (session,) = with_beacons(rows, connections, 1, hostnames=("a.example.com", "b.example.com"))
    identify()

    result = sync()

    analytics = user(connections, "perf0@example.com")["umamiAnalytics"]
    assert result.succeeded, result.error
    assert (result.sessions, result.merged_sessions, result.session_reads) == (1, 1, 0)  # read from the database
    assert written(connections) == truth(umami_db, WEBSITE, DAY)
    assert (analytics["id"], analytics["views"], analytics["lastAt"]) == (session, 2, at(10).replace(tzinfo=None))


# --- Umami 2.x -------------------------------------------------------------------------------------------------

@pytest.mark.umami_levels("2.20.2")
def test_a_2x_list_is_read_exactly(sync: Sync, identify: Callable[[], None], rows: UmamiRows,
                                   connections: Database, umami_db: str) -> None:
    """One row per session, without hostname and events; every one written, exact, ceil(rows / page) + login."""
    for n in range(7):
        session = visitor(rows, connections, f"two{n}@example.com", hours=(8 + n, 9 + n))
        rows.event(session, at(9 + n, 30), event_type=2)
    identify()

    result = sync(page_size=3)

    assert result.succeeded, result.error
    assert (result.list_rows, result.rows_read, result.invalid_rows, result.sessions) == (7, 7, 0, 7)
    assert (result.list_pages, result.session_reads, result.requests) == (3, 0, 4)
    assert written(connections) == truth(umami_db, WEBSITE, DAY)


@pytest.mark.umami_levels("2.20.2")
def test_a_2x_session_active_in_two_sub_windows_is_read_from_its_2x_activity(
        mongo_collation: str, identify: Callable[[], None], rows: UmamiRows, connections: Database,
        umami_db: str) -> None:
    """The later sub-window's task reads the whole day's figures from the activity, whose 2.x rows carry ``id``."""
    session = visitor(rows, connections, "half@example.com", hours=(3, 20))
    identify()
    settings = SyncSettings(**FAST, mongo_collation=mongo_collation, sub_windows=2)

    results = [sync_analytics_job(settings, part, interval=DAY, now=RUN_AT)
               for part in plan_analytics_jobs(settings, DAY)]

    assert [(r.succeeded, r.modified, r.left_to_other_tasks) for r in results] == [(True, 0, 1), (True, 1, 0)]
    assert written(connections)[session] == truth(umami_db, WEBSITE, DAY)[session]


# --- any version: a list the sync cannot read fails red ---------------------------------------------------------

@pytest.mark.umami_levels("2.20.2", "3.3")
def test_a_window_whose_rows_are_mostly_invalid_fails_naming_the_field(
        sync: Sync, identify: Callable[[], None], rows: UmamiRows, connections: Database,
        umami_server: FakeUmami) -> None:
    sessions = [visitor(rows, connections, f"bad{n}@example.com", hours=(8 + n,)) for n in range(3)]
    identify()
    umami_server.faults.malformed_ids = set(sessions[1:])  # visits "many", lastAt not a date: 2 of 3 rows

    result = sync()
    tolerant = sync(max_invalid_share=0.7)

    assert (result.invalid_rows, result.rows_read, result.succeeded) == (2, 3, False)
    assert result.error is not None and result.error.startswith(
        f"2 of 3 rows of Umami's session list for website {WEBSITE}, {DAY} are invalid, more than "
        "max_invalid_share 0.05 allows; 2 failed on field 'visits' (first: ")
    assert (tolerant.error, tolerant.succeeded) == (None, True)
    assert "umamiAnalytics" in user(connections, "bad0@example.com")  # the valid row is written all the same


# --- a server whose PostgreSQL does not hold what its API lists ------------------------------------------------

def test_a_database_without_the_listed_sessions_fails_red_naming_the_likely_cause(
        sync: Sync, connections: Database, umami_db: str, umami_databases: UmamiDatabases,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Umami on ClickHouse writes no session to PostgreSQL while its API lists them; a connection to another
    database looks the same. The task fails without retries and says so, before it writes anything: a user who
    knows a listed session (from an earlier sync) is left as it was. Stage 1 would find nothing there."""
    elsewhere = umami_databases.empty(umami_databases.at(DEFAULT_LEVEL, "elsewhere"))  # what the API reads
    listed = UmamiRows(elsewhere)
    listed.website()
    session = visitor(listed, connections, "zed@example.com")
    listed.close()
    connections["users"].update_one({"email": "zed@example.com"}, {"$set": {
        "session_id": session, "umamiSessions": [{"id": session, "websiteId": WEBSITE, "seenAt": at(9)}]}})
    before = user(connections, "zed@example.com")
    UmamiRows(umami_db).website()  # PostgreSQL knows the website, and no session of it

    with FakeUmami(elsewhere) as api:
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", umami_api_connection(api))
        result = sync()

    with psycopg.connect(umami_db) as conn:
        assert conn.execute("select count(*) from session").fetchone() == (0,)
    assert user(connections, "zed@example.com") == before  # nothing written: the check came first
    assert (result.list_rows, result.changes, result.succeeded, result.retryable) == (1, 0, False, False)
    assert result.error == (
        f"Umami's API lists 1 session rows of website {WEBSITE}, {DAY}, but its PostgreSQL database (connection "
        "'umami_db') holds no session with an event then: Umami keeps its data in ClickHouse (CLICKHOUSE_URL is "
        "set, and no identity reaches PostgreSQL), or the connection points at another database")


def test_an_empty_day_stays_green(sync: Sync, rows: UmamiRows) -> None:
    result = sync()

    assert (result.list_rows, result.sessions, result.error, result.succeeded) == (0, 0, None, True)


# --- Umami after 3.3 ("3.4", the 3.3 schema): linked activity, capped pages ------------------------------------

NEXT_DAY = DataInterval(at(0, day=28), at(0, day=29))


def old_figures(api: UmamiHook, session: str, window: DataInterval) -> dict[str, Any]:
    """The figures today's code wrote for a session read from its activity: every event the route answers to a
    request without ``distinctId``, summed (beacons aside)."""
    events = [e for e in api.session_activity(WEBSITE, session, ApiWindow.of(window)) if e.event_type != 5]
    first, last = min(e.created_at for e in events), max(e.created_at for e in events)
    return {"firstAt": first.replace(tzinfo=None), "lastAt": last.replace(tzinfo=None),
            "views": sum(e.event_type == 1 for e in events), "visits": len({e.visit_id for e in events})}


@pytest.mark.umami_levels("3.3")
def test_figures_on_a_3_4_server_are_exact_and_never_another_sessions(
        mongo_collation: str, identify: Callable[[], None], rows: UmamiRows, connections: Database, umami_db: str,
        linked_server: FakeUmami) -> None:
    """Sessions on two hostnames, and sessions spread over both sub-windows of the day, each linked to a person with
    sessions 3 days before and 20 days after: every field of every user equals what Umami's database says of the
    day, and no task asks the activity route anything (the database is read: one query a page)."""
    spread = [linked_person(rows, connections, n, hours=(3, 20)) for n in range(3)]
    within = [linked_person(rows, connections, n + 3) for n in range(3)]
    identify()
    settings = SyncSettings(**FAST, mongo_collation=mongo_collation, sub_windows=2, page_size=4)

    results = [sync_analytics_job(settings, part, interval=DAY, now=RUN_AT) for part in plan_analytics_jobs(settings,
                                                                                                            DAY)]

    assert all(r.succeeded for r in results), [r.error for r in results]
    assert written_documents(connections) == truth_documents(umami_db, WEBSITE, DAY)
    assert {s["today"] for s in spread + within} == set(written_documents(connections))
    assert [(r.modified, r.left_to_other_tasks, r.session_reads) for r in results] == [(3, 3, 0), (3, 0, 0)]
    assert not any(request.path.endswith("/activity") for request in linked_server.requests)


@pytest.mark.umami_levels("3.3")
def test_a_clean_run_heals_what_todays_code_wrote_on_a_linked_server_and_a_backfill_keeps_a_later_day(
        sync: Sync, identify: Callable[[], None], rows: UmamiRows, connections: Database, umami_db: str,
        linked_server: FakeUmami) -> None:
    """The issue's run: on a 3.3.x server today's code wrote 10 users' figures from the linked activity (firstAt 3
    days early, lastAt 20 days late, views 5 -> 17), and a clean re-run kept them, a later lastAt winning. Their
    sessions' events disprove those figures: the clean run replaces all 10 with the day's. Then the next day's sync
    writes five of them again, and a back-fill of the first day replaces none of those (their events bear them
    out) and sends nothing."""
    people = [linked_person(rows, connections, n) for n in range(10)]
    for person in people[:5]:  # active again the next day
        rows.event(person["today"], at(8, day=28), hostname="a.example.com")
    identify()
    api = UmamiHook()
    for n, person in enumerate(people):  # what today's code wrote
        wrong = {**truth_documents(umami_db, WEBSITE, DAY)[person["today"]],
                 **old_figures(api, person["today"], DAY)}
        assert (wrong["views"], wrong["lastAt"] - wrong["firstAt"]) == (17 + (n < 5), timedelta(days=23, minutes=5))
        connections["users"].update_one({"email": f"pat{n}@example.com"}, {"$set": {"umamiAnalytics": wrong}})

    healed = sync()

    assert healed.succeeded, healed.error
    assert (healed.modified, healed.disproved_analytics) == (10, 10)
    assert written_documents(connections) == truth_documents(umami_db, WEBSITE, DAY)  # every field of all 10

    next_day = sync(NEXT_DAY, now=RUN_AT + timedelta(days=1))
    later = written_documents(connections)
    backfill = sync(now=RUN_AT + timedelta(days=2))

    assert (next_day.modified, next_day.disproved_analytics) == (5, 0)
    assert (backfill.changes, backfill.modified, backfill.disproved_analytics) == (0, 0, 0)
    assert written_documents(connections) == later
    assert {later[p["today"]]["lastAt"] for p in people[:5]} == {at(8, day=28).replace(tzinfo=None)}


@pytest.mark.umami_levels("3.3")
def test_a_capped_session_list_fails_the_task_naming_the_cap_and_writes_nothing(
        sync: Sync, identify: Callable[[], None], rows: UmamiRows, connections: Database, umami_db: str,
        mongo_collation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 3.4 server (or a proxy) that caps the list without being asked answers ``isCapped: true`` with ``count``
    at the cap: the task fails without retries, naming the list and the cap, before writing anything; planning
    with ``sub_windows: auto`` is refused the same way."""
    for n in range(3):
        visitor(rows, connections, f"cap{n}@example.com", hours=(8 + n,))
    identify()

    with FakeUmami(umami_db, version="3.4", max_results=2) as capping:
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", umami_api_connection(capping))
        result = sync()
        with pytest.raises(CappedListError, match="capped page"):
            plan_analytics_jobs(SyncSettings(**FAST, mongo_collation=mongo_collation), DAY)

    assert (result.succeeded, result.retryable, result.modified, result.rows_read) == (False, False, 0, 0)
    assert result.error is not None and result.error.startswith(
        f"website {WEBSITE}, {DAY}: Umami answered a capped page (isCapped: its count stops at 2 rows), so the "
        "list holds at least that many rows and cannot be proven complete")
    assert written(connections) == {}


def test_a_contest_without_a_span_says_so_in_the_result(mongo_collation: str, connections: Database, umami_db: str,
                                                       umami_databases: UmamiDatabases,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 24: a contested session whose events Umami's PostgreSQL does not hold was judged by the list's lastAt,
    neither logged nor counted. Now it is counted in the result (and logged)."""
    elsewhere = umami_databases.empty(umami_databases.at(DEFAULT_LEVEL, "elsewhere"))
    listed = UmamiRows(elsewhere)
    listed.website()
    session = visitor(listed, connections, "far@example.com")
    connections["users"].update_one({"email": "far@example.com"}, {"$set": {"session_id": session}})
    listed.close()
    held = UmamiRows(umami_db)  # the database the sync reads holds the window's sessions, but not that one (yet)
    held.website()
    visitor(held, connections, "near@example.com")
    held.close()

    with FakeUmami(elsewhere) as api:
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", umami_api_connection(api))
        contested = job().model_copy(update={"run_websites": (WEBSITE, OTHER_WEBSITE)})
        result = sync_analytics_job(SyncSettings(**FAST, mongo_collation=mongo_collation), contested, interval=DAY,
                                    now=RUN_AT)

    assert (result.sessions, result.matched_sessions, result.sessions_without_span) == (1, 1, 1)

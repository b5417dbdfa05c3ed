"""Stage 2 on every Umami a user runs: what each version's list and database hold, against the local Umami API,
PostgreSQL at the version's schema level and MongoDB, on both write paths. Figures are checked against Umami's
own events in the database."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import psycopg
import pytest

from local_stack.postgres import DEFAULT_LEVEL
from local_stack.umami_api import FakeUmami
from tests.conftest import umami_api_connection
from tests.factories import WEBSITE, UmamiRows, add_user, at
from tests.umami_sync.stages.analytics.support import DAY, FAST, RUN_AT, truth, user, visitor, written
from umami_sync.settings import SyncSettings
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
    assert (result.sessions, result.merged_sessions, result.session_reads) == (1, 1, 1)
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

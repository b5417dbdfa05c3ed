"""Stage 2 end to end against the local Umami API (real HTTP through HttpHook), PostgreSQL and MongoDB, every test
on both write paths (``mongo_collation``). The figures written are checked against Umami's own events in the
database."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from local_stack.postgres import run_sql_file
from tests.factories import OTHER_WEBSITE, WEBSITE, UmamiRows, add_user, at
from tests.umami_sync.stages.analytics.support import DAY, FAST, RUN_AT, job, truth, user, visitor, written
from umami_sync.settings import SyncSettings
from umami_sync.windows import DataInterval
from umami_sync.wiring import plan_analytics_jobs, sync_analytics_job

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from pymongo.database import Database

    from local_stack.umami_api import FakeUmami
    from umami_sync.results import AnalyticsResult

    Sync = Callable[..., AnalyticsResult]

pytestmark = pytest.mark.integration

LISTING_WEBSITE = "73683464-8e85-469a-b6b2-39b566028ce9"
LISTING_DAY = DataInterval(datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC))
TWO_HOSTNAMES = "382d62a3-22a9-5e7e-a654-b0a3ef7e83d2"

# --- the real fixture rows --------------------------------------------------------------------------

def test_real_fixture_sessions_enrich_their_users(sync: Sync, identify: Callable[[], None], umami_server: FakeUmami,
                                                  connections: Database, umami_db: str, umami_fixtures: Path) -> None:
    run_sql_file(umami_db, umami_fixtures / "rows.sql")
    add_user(connections["users"], "alice@example.com")
    add_user(connections["users"], "bob@example.com")
    identify()

    result = sync(page_size=2)

    assert (result.sessions, result.list_pages, result.matched_sessions, result.modified) == (3, 2, 2, 2)
    assert (result.requests, result.retries, result.invalid_rows, result.error) == (3, 0, 0, None)
    assert user(connections, "alice@example.com")["umamiAnalytics"] == {
        "id": "8b046da9-3d41-5054-8060-170787f99fe0", "websiteId": WEBSITE, "browser": "chrome",
        "os": "Windows 10", "device": "laptop", "screen": "1920x1080", "language": "en-US", "country": "US",
        "region": "US-CA", "city": "San Francisco", "firstAt": datetime(2026, 11, 27, 15, 46, 32, 531000),
        "lastAt": datetime(2026, 11, 27, 15, 46, 32, 531000), "visits": 1, "views": 1,
        "createdAt": datetime(2026, 11, 27, 15, 46, 32, 531000)}
    assert user(connections, "bob@example.com")["umamiAnalytics"]["city"] == "Berlin"


# --- the listing captures: rows per hostname, ties under offset paging --------------------------------

@pytest.fixture
def listing_day(umami_server: FakeUmami, connections: Database, umami_db: str, umami_fixtures: Path) -> str:
    """The day behind the listing captures (61 sessions, ties of six, one session on two hostnames), and
    one user per session that already knows its session id."""
    run_sql_file(umami_db, umami_fixtures / "listing_rows.sql")
    for n, session in enumerate(sorted(truth(umami_db, LISTING_WEBSITE, LISTING_DAY))):
        add_user(connections["users"], f"tie{n}@example.com", session_id=session)
    return umami_db


@pytest.mark.parametrize("page_size", [1, 7, 20, 100, 5000])
def test_a_tie_heavy_day_is_complete_and_exact_at_any_page_size(sync: Sync, listing_day: str, connections: Database,
                                                                page_size: int) -> None:
    result = sync(LISTING_DAY, LISTING_WEBSITE, page_size=page_size)

    assert result.succeeded, result.error
    assert written(connections) == truth(listing_day, LISTING_WEBSITE, LISTING_DAY)  # all 61, each exact
    assert (result.list_rows, result.rows_read, result.missing_rows, result.sessions) == (62, 62, 0, 61)
    assert (result.merged_sessions, result.matched_sessions) == (1, 61)
    floor = math.ceil(62 / page_size)
    assert result.requests == result.list_pages + result.session_reads + result.logins
    assert result.list_pages <= floor + 1  # one repair page at most
    assert result.requests <= floor + result.session_reads + 2


def test_a_session_on_two_hostnames_gets_the_figures_of_its_events(sync: Sync, listing_day: str,
                                                                    connections: Database) -> None:
    """Its list rows say views 2 + 3 and visits 1 + 3; the session had 5 views in 3 visits, from 10:05."""
    sync(LISTING_DAY, LISTING_WEBSITE, page_size=7)

    owner = connections["users"].find_one({"session_id": TWO_HOSTNAMES})
    assert owner is not None
    analytics = owner["umamiAnalytics"]
    assert (analytics["views"], analytics["visits"]) == (5, 3)
    assert (analytics["firstAt"], analytics["lastAt"]) == (datetime(2026, 11, 10, 10, 5),
                                                           datetime(2026, 11, 10, 12, 15))


def test_a_rerun_of_the_tie_day_modifies_nothing_and_sends_nothing(sync: Sync, listing_day: str,
                                                                    connections: Database) -> None:
    first = sync(LISTING_DAY, LISTING_WEBSITE, page_size=7)
    before = list(connections["users"].find())

    again = sync(LISTING_DAY, LISTING_WEBSITE, page_size=7, now=RUN_AT + timedelta(days=1))

    assert first.modified >= 61
    assert (again.matched_sessions, again.changes, again.modified, again.bulk_writes) == (61, 0, 0, 0)
    assert list(connections["users"].find()) == before


def test_a_session_with_more_than_500_events_on_two_hostnames_is_exact(sync: Sync, identify: Callable[[], None],
                                                                       rows: UmamiRows, connections: Database,
                                                                       umami_db: str) -> None:
    session = visitor(rows, connections, "busy@example.com", hours=(1,))
    with psycopg.connect(umami_db, autocommit=True) as conn:
        for n in range(1234):  # two a second, whole seconds (they tie), in 13 visits, on two hostnames
            conn.execute("INSERT INTO website_event (event_id, website_id, session_id, visit_id, created_at,"
                         " url_path, event_type, hostname) VALUES (%s, %s, %s, %s, %s, '/', %s, %s)",
                         (str(uuid.uuid4()), WEBSITE, session, str(uuid.uuid5(uuid.NAMESPACE_OID, str(n % 13))),
                          at(2) + timedelta(seconds=n // 2), 1 if n % 5 else 2, f"h{n % 2}.example.com"))
    identify()

    result = sync()

    assert result.succeeded, result.error
    assert written(connections) == truth(umami_db, WEBSITE, DAY)
    assert result.session_reads == 0  # 1,235 events counted by Umami's database, no activity read
    assert user(connections, "busy@example.com")["umamiAnalytics"]["visits"] == 14


def test_a_window_that_cannot_be_completed_fails_naming_what_is_missing(sync: Sync, listing_day: str,
                                                                        connections: Database,
                                                                        umami_server: FakeUmami) -> None:
    lost = "05f88bf8-325d-59c4-8406-f24d25c394ef"
    umami_server.faults.hidden_ids = {lost}  # a list that never serves this row, yet counts it

    result = sync(LISTING_DAY, LISTING_WEBSITE, page_size=7)

    assert not result.succeeded
    assert (result.missing_rows, result.list_rows, result.rows_read) == (1, 62, 61)
    assert result.error == (
        f"1 of 62 rows of Umami's session list could not be read for website {LISTING_WEBSITE}, {LISTING_DAY} "
        "after 10 list pages (1 to repair); the rest was written")
    assert len(written(connections)) == 60  # everything it could read was written
    assert lost not in written(connections)


# --- matching, guards, faults -------------------------------------------------------------------

def test_users_are_matched_through_any_known_session(sync: Sync, identify: Callable[[], None], rows: UmamiRows,
                                                     connections: Database) -> None:
    old = visitor(rows, connections, "cy@example.com", hours=(8,))
    newer = rows.session(at(10), distinct_id="cy@example.com", website_id=OTHER_WEBSITE)
    rows.event(newer, at(10), website_id=OTHER_WEBSITE)
    identify()
    assert user(connections, "cy@example.com")["session_id"] == newer

    result = sync()  # the website of the older session only

    assert (result.sessions, result.matched_sessions, result.modified) == (1, 1, 1)
    assert user(connections, "cy@example.com")["umamiAnalytics"]["id"] == old


def test_newer_analytics_are_never_replaced_by_older(sync: Sync, identify: Callable[[], None], rows: UmamiRows,
                                                     connections: Database) -> None:
    session = visitor(rows, connections, "di@example.com", hours=(9, 15))
    identify()
    sync()
    latest = user(connections, "di@example.com")

    morning = sync(DataInterval(at(0), at(12)), now=RUN_AT + timedelta(days=1))  # sees only the 09:00 view

    assert (morning.sessions, morning.matched_sessions, morning.changes, morning.modified) == (1, 1, 0, 0)
    assert user(connections, "di@example.com") == latest
    assert latest["umamiAnalytics"]["id"] == session and latest["umamiAnalytics"]["views"] == 2


def test_deleted_users_and_strangers_are_left_alone(sync: Sync, identify: Callable[[], None], rows: UmamiRows,
                                                    connections: Database) -> None:
    visitor(rows, connections, "fay@example.com")
    anonymous = rows.session(at(9))
    rows.event(anonymous, at(9))
    identify()
    connections["users"].update_one({"email": "fay@example.com"}, {"$set": {"isDeleted": True}})
    before = list(connections["users"].find())

    result = sync()

    assert (result.sessions, result.matched_sessions, result.modified) == (2, 0, 0)
    assert list(connections["users"].find()) == before


def test_analytics_of_the_original_tool_are_upgraded(sync: Sync, identify: Callable[[], None], rows: UmamiRows,
                                                     connections: Database) -> None:
    session = visitor(rows, connections, "gus@example.com")
    identify()
    connections["users"].update_one({"email": "gus@example.com"}, {"$set": {"umamiAnalytics": {
        "id": session, "lastAt": "2026-11-27T09:00:00.000Z", "views": "1", "visits": "1"}}})

    sync()

    analytics = user(connections, "gus@example.com")["umamiAnalytics"]
    assert isinstance(analytics["lastAt"], datetime) and analytics["views"] == 1


def test_malformed_and_oversized_rows_are_counted_and_the_rest_written(sync: Sync, identify: Callable[[], None],
                                                                       rows: UmamiRows, connections: Database,
                                                                       umami_db: str, umami_server: FakeUmami) -> None:
    good = visitor(rows, connections, "hu@example.com")
    bad = visitor(rows, connections, "ida@example.com", hours=(10,))
    huge = visitor(rows, connections, "jo@example.com", hours=(11,))
    for n in range(2):  # valid rows stay the majority (max_invalid_share 0.5 below)
        visitor(rows, connections, f"ok{n}@example.com", hours=(12 + n,))
    identify()
    umami_server.faults.malformed_ids = {bad}

    with psycopg.connect(umami_db, autocommit=True) as conn:  # a 2 MB city: more than any Umami column holds
        conn.execute("DROP INDEX session_website_id_created_at_city_idx")
        conn.execute("ALTER TABLE session ALTER COLUMN city TYPE text")
        conn.execute("UPDATE session SET city = repeat('C', 2000000) WHERE session_id = %s", (huge,))
        try:
            result = sync(max_invalid_share=0.5)
        finally:  # Umami's own schema again, for the other tests
            conn.execute("UPDATE session SET city = NULL WHERE session_id = %s", (huge,))
            conn.execute("ALTER TABLE session ALTER COLUMN city TYPE varchar(50)")
            conn.execute('CREATE INDEX "session_website_id_created_at_city_idx" ON "session"("website_id", '
                         '"created_at", "city")')

    assert (result.sessions, result.invalid_rows, result.matched_sessions, result.modified) == (3, 2, 3, 3)
    assert result.invalid_field == "visits"  # the field that failed most (visits, lastAt and city once each)
    assert user(connections, "hu@example.com")["umamiAnalytics"]["id"] == good
    assert "umamiAnalytics" not in user(connections, "ida@example.com")
    assert "umamiAnalytics" not in user(connections, "jo@example.com")
    assert result.succeeded


def test_faults_lose_nothing_and_write_nothing_twice(sync: Sync, identify: Callable[[], None], rows: UmamiRows,
                                                     connections: Database, umami_server: FakeUmami) -> None:
    emails = [f"user{i}@example.com" for i in range(7)]
    for hour, email in enumerate(emails, start=1):
        visitor(rows, connections, email, hours=(hour,))
    identify()
    faults = umami_server.faults
    faults.fail_next, faults.throttle_next, faults.retry_after_seconds = 1, 1, 0

    def revoke_then_drift(page: int) -> None:
        if page == 1 and faults.on_session_page is not None:
            faults.on_session_page = None  # once
            umami_server.revoke_tokens()
            late = rows.session(at(23), distinct_id="late@example.com")
            rows.event(late, at(23))  # a new session: the count changes between pages

    faults.on_session_page = revoke_then_drift

    result = sync(page_size=2)

    assert result.succeeded, result.error
    assert (result.list_rows, result.rows_read, result.matched_sessions, result.modified) == (8, 8, 7, 7)
    assert result.retries >= 2 and result.logins == 2 and result.restarts == 1
    assert all("umamiAnalytics" in user(connections, email) for email in emails)


def test_an_unreachable_api_is_recorded_not_raised(sync: Sync, identify: Callable[[], None], rows: UmamiRows,
                                                   connections: Database, umami_server: FakeUmami) -> None:
    visitor(rows, connections, "jan@example.com")
    identify()
    umami_server.faults.fail_next = 100

    result = sync(http_max_retries=1)

    assert result.error is not None and "500" in result.error and not result.succeeded and result.retryable
    assert "umamiAnalytics" not in user(connections, "jan@example.com")


def test_refused_credentials_are_not_worth_a_retry(sync: Sync, rows: UmamiRows, connections: Database,
                                                   umami_server: FakeUmami, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", json.dumps(
        {"conn_type": "http", "host": umami_server.url, "login": "admin", "password": "wrong-password-9"}))

    result = sync()

    assert not result.retryable
    assert result.error is not None and "refused the login of user 'admin'" in result.error
    assert "wrong-password-9" not in result.model_dump_json()


def test_a_user_active_on_two_websites_is_written_once_by_the_later_ones_task_in_any_order(
        mongo_collation: str, identify: Callable[[], None], rows: UmamiRows, connections: Database) -> None:
    rows.website(OTHER_WEBSITE, "Other Site")
    add_user(connections["users"], "mo@example.com")
    early = rows.session(at(9), distinct_id="mo@example.com")
    rows.event(early, at(9))
    late = rows.session(at(10), distinct_id="mo@example.com", website_id=OTHER_WEBSITE)
    rows.event(late, at(15), website_id=OTHER_WEBSITE)
    identify()
    websites = (WEBSITE, OTHER_WEBSITE)
    ends = []
    for order in (websites, websites[::-1]):
        connections["users"].update_one({"email": "mo@example.com"}, {"$unset": {"umamiAnalytics": ""}})
        results = {}
        for dry_run in (True, False):
            for website in order:
                settings = SyncSettings(**FAST, mongo_collation=mongo_collation, dry_run=dry_run)
                one = job(website_id=website).model_copy(update={"run_websites": websites})
                results[website, dry_run] = sync_analytics_job(settings, one, interval=DAY, now=RUN_AT)
        assert [(results[w, False].modified, results[w, True].changes) for w in websites] == [(0, 0), (1, 1)]
        assert results[WEBSITE, False].left_to_other_tasks == 1
        ends.append(user(connections, "mo@example.com")["umamiAnalytics"])
    assert ends[0] == ends[1] and ends[0]["id"] == late


def test_a_session_active_in_two_sub_windows_is_written_once_with_the_whole_days_figures(
        sync: Sync, identify: Callable[[], None], rows: UmamiRows, connections: Database, umami_db: str,
        mongo_collation: str) -> None:
    session = visitor(rows, connections, "sub@example.com", hours=(3, 8, 15, 20))
    identify()
    settings = SyncSettings(**FAST, mongo_collation=mongo_collation, sub_windows=2)
    jobs = plan_analytics_jobs(settings, DAY)

    results = [sync_analytics_job(settings, part, interval=DAY, now=RUN_AT) for part in jobs[::-1]]

    assert [(r.window_start, r.modified, r.left_to_other_tasks) for r in results] == [
        (at(12), 1, 0), (at(0), 0, 1)]
    assert written(connections)[session] == truth(umami_db, WEBSITE, DAY)[session]  # 4 views, 09:00.. whole day


def test_a_listed_session_whose_events_cannot_be_read_fails_the_task(sync: Sync, identify: Callable[[], None],
                                                                    rows: UmamiRows, connections: Database,
                                                                    umami_db: str, umami_server: FakeUmami) -> None:
    session = visitor(rows, connections, "gone@example.com", hours=(9,))
    rows.conn.execute("UPDATE website_event SET hostname = 'a.example.com' WHERE session_id = %s", (session,))
    rows.event(session, at(10))  # probe.example.com: two rows, so its events are read
    visitor(rows, connections, "stays@example.com", hours=(11,))  # the database still holds the window's sessions
    identify()

    def delete_events(page: int) -> None:
        rows.conn.execute("DELETE FROM website_event WHERE session_id = %s", (session,))

    umami_server.faults.on_session_page = delete_events

    result = sync()

    assert (result.unread_sessions, result.succeeded) == (1, False)
    assert result.error is not None and "1 listed sessions of website" in result.error
    assert "umamiAnalytics" not in user(connections, "gone@example.com")


# --- dry run -------------------------------------------------------------------------------------

def test_a_dry_run_reports_what_the_real_run_then_does(sync: Sync, identify: Callable[[], None], rows: UmamiRows,
                                                       connections: Database) -> None:
    """On a fresh database the sessions stage 1 would record are taken into account; on synced data a dry
    run reports nothing to change. Both times its figures equal the real run's."""
    for n in range(4):
        visitor(rows, connections, f"kai{n}@example.com", hours=(8 + n,))
    before = list(connections["users"].find())

    dry = sync(dry_run=True)
    assert list(connections["users"].find()) == before  # nothing written, stage 1's ids not there yet
    identify()
    real = sync()
    dry_again = sync(dry_run=True, now=RUN_AT + timedelta(days=1))
    real_again = sync(now=RUN_AT + timedelta(days=1))

    assert (dry.matched_sessions, dry.changes, dry.modified, dry.bulk_writes) == (4, 4, 0, 0)
    assert (real.matched_sessions, real.changes, real.modified) == (4, 4, 4)
    assert (dry_again.changes, real_again.changes, real_again.modified) == (0, 0, 0)


def test_a_clean_rerun_heals_attributes_a_faulty_answer_wrote(sync: Sync, identify: Callable[[], None],
                                                                rows: UmamiRows, connections: Database) -> None:
    visitor(rows, connections, "heal@example.com")
    identify()
    sync()
    connections["users"].update_one({"email": "heal@example.com"}, {"$set": {
        "umamiAnalytics.browser": None, "umamiAnalytics.country": None}})  # what a faulty answer left

    again = sync(now=RUN_AT + timedelta(days=1))

    healed = user(connections, "heal@example.com")["umamiAnalytics"]
    assert (healed["browser"], healed["country"], again.modified) == ("chrome", "US", 1)
    assert sync(now=RUN_AT + timedelta(days=2)).changes == 0  # healed: nothing more to send


def test_a_write_concern_error_fails_the_task_keeping_the_servers_message(
        sync: Sync, identify: Callable[[], None], rows: UmamiRows, connections: Database,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pymongo.collection import Collection
    from pymongo.errors import BulkWriteError

    visitor(rows, connections, "wc@example.com")
    identify()
    real = Collection.bulk_write

    def unconfirmed(self: Collection[Any], requests: Any, **options: Any) -> Any:
        result = real(self, requests, **options)  # applied, but a majority never confirmed it
        raise BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"code": 64, "errmsg": "waiting for "
                              "replication timed out"}], "nMatched": result.matched_count,
                              "nModified": result.modified_count})

    monkeypatch.setattr(Collection, "bulk_write", unconfirmed)

    result = sync()

    assert not result.succeeded and result.worth_retrying
    assert "waiting for replication timed out" in (result.failure() or "")
    assert user(connections, "wc@example.com")["umamiAnalytics"]["views"] == 1  # nothing of the batch dropped


def test_two_websites_whose_last_events_share_a_millisecond_leave_the_user_to_exactly_one_task(
        mongo_collation: str, identify: Callable[[], None], rows: UmamiRows, connections: Database) -> None:
    """Umami's database keeps microseconds, its API milliseconds: .123400 and .123900 are one instant to the
    API. Both tasks compare the same way, so the larger session id wins in both, whatever order they run in."""
    rows.website(OTHER_WEBSITE, "Other Site")
    add_user(connections["users"], "tie@example.com")
    instant = at(15) + timedelta(microseconds=123_400)
    sessions = {WEBSITE: rows.session(at(9), distinct_id="tie@example.com"),
                OTHER_WEBSITE: rows.session(at(9), distinct_id="tie@example.com", website_id=OTHER_WEBSITE)}
    rows.event(sessions[WEBSITE], instant)
    rows.event(sessions[OTHER_WEBSITE], instant + timedelta(microseconds=500), website_id=OTHER_WEBSITE)
    identify()
    websites = (WEBSITE, OTHER_WEBSITE)
    settings = SyncSettings(**FAST, mongo_collation=mongo_collation)

    results = {website: sync_analytics_job(settings, job(website_id=website).model_copy(
        update={"run_websites": websites}), interval=DAY, now=RUN_AT) for website in websites}

    winner = max(sessions.values())
    assert sorted(r.modified for r in results.values()) == [0, 1]
    assert sum(r.left_to_other_tasks for r in results.values()) == 1
    assert user(connections, "tie@example.com")["umamiAnalytics"]["id"] == winner


def test_a_rival_session_from_before_its_websites_reset_takes_no_user_away(
        mongo_collation: str, identify: Callable[[], None], rows: UmamiRows, connections: Database) -> None:
    """Umami lists a website's sessions from its ``reset_at`` on: a session whose events all came before the reset
    is in no task's list, so it must not win the contest either."""
    rows.website(OTHER_WEBSITE, "Other Site")
    rows.conn.execute("UPDATE website SET reset_at = %s WHERE website_id = %s", (at(12), OTHER_WEBSITE))
    add_user(connections["users"], "reset@example.com")
    mine = rows.session(at(9), distinct_id="reset@example.com")
    rows.event(mine, at(9))
    before_reset = rows.session(at(10), distinct_id="reset@example.com", website_id=OTHER_WEBSITE)
    rows.event(before_reset, at(10), website_id=OTHER_WEBSITE)
    identify()
    websites = (WEBSITE, OTHER_WEBSITE)
    settings = SyncSettings(**FAST, mongo_collation=mongo_collation)

    results = [sync_analytics_job(settings, job(website_id=website).model_copy(update={"run_websites": websites}),
                                  interval=DAY, now=RUN_AT) for website in websites]

    assert [(r.sessions, r.modified, r.left_to_other_tasks) for r in results] == [(1, 1, 0), (0, 0, 0)]
    assert user(connections, "reset@example.com")["umamiAnalytics"]["id"] == mine

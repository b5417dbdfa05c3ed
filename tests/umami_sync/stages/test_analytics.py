"""Stage 2 against the local Umami API (real HTTP through HttpHook), PostgreSQL and MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from local_stack.postgres import run_sql_file
from tests.factories import OTHER_WEBSITE, WEBSITE, UmamiRows, add_user, at
from umami_sync.settings import SyncSettings
from umami_sync.stages.analytics import AnalyticsJob, plan_analytics_jobs, sync_analytics_job
from umami_sync.stages.sessions import sync_sessions
from umami_sync.windows import DataInterval

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from pymongo.database import Database

    from local_stack.umami_api import FakeUmami

pytestmark = pytest.mark.integration

DAY = DataInterval(at(0), at(0, day=28))
RUN_AT = datetime(2026, 11, 28, 1, tzinfo=UTC)
FAST = {"http_max_retries": 3, "http_timeout_seconds": 5}


@pytest.fixture
def rows(umami_server: FakeUmami, umami_db: str) -> Iterator[UmamiRows]:
    umami = UmamiRows(umami_db)
    umami.website()
    yield umami
    umami.close()


def job(interval: DataInterval = DAY, website_id: str = WEBSITE) -> AnalyticsJob:
    return AnalyticsJob(website_id=website_id, window_start=interval.start, window_end=interval.end)


def sync(interval: DataInterval = DAY, **overrides: Any) -> Any:
    now = overrides.pop("now", RUN_AT)
    return sync_analytics_job(SyncSettings(**{**FAST, **overrides}), job(interval), now=now)


def user(db: Database, email: str) -> dict[str, Any]:
    found = db["users"].find_one({"email": email})
    assert found is not None
    return found


def visitor(rows: UmamiRows, db: Database, email: str, *, hours: tuple[int, ...] = (9,), day: int = 27,
            **user_fields: Any) -> str:
    """A user, their identified session and its page views."""
    add_user(db["users"], email, **user_fields)
    session = rows.session(at(hours[0], day=day), distinct_id=email)
    for hour in hours:
        rows.event(session, at(hour, day=day))
    return session


def identify() -> None:
    sync_sessions(SyncSettings(session_window_hours=24 * 30), DAY, now=RUN_AT)


def test_real_fixture_sessions_enrich_their_users(umami_server: FakeUmami, connections: Database,
                                                   umami_db: str, umami_fixtures: Path) -> None:
    run_sql_file(umami_db, umami_fixtures / "rows.sql")
    add_user(connections["users"], "alice@example.com")
    add_user(connections["users"], "bob@example.com")
    identify()

    result = sync(page_size=2)

    assert (result.sessions, result.pages, result.matched, result.modified, result.invalid) == (3, 2, 2, 2, 0)
    assert result.requests == 3 and result.retries == 0 and result.error is None  # login + 2 pages
    assert user(connections, "alice@example.com")["umamiAnalytics"] == {
        "id": "8b046da9-3d41-5054-8060-170787f99fe0", "websiteId": WEBSITE, "browser": "chrome",
        "os": "Windows 10", "device": "laptop", "screen": "1920x1080", "language": "en-US", "country": "US",
        "region": "US-CA", "city": "San Francisco", "firstAt": datetime(2026, 11, 27, 15, 46, 32, 531000),
        "lastAt": datetime(2026, 11, 27, 15, 46, 32, 531000), "visits": 1, "views": 1,
        "createdAt": datetime(2026, 11, 27, 15, 46, 32, 531000)}
    assert user(connections, "bob@example.com")["umamiAnalytics"]["city"] == "Berlin"


def test_users_are_matched_through_any_known_session(rows: UmamiRows, connections: Database) -> None:
    old = visitor(rows, connections, "cy@example.com", hours=(8,))
    newer = rows.session(at(10), distinct_id="cy@example.com", website_id=OTHER_WEBSITE)
    rows.event(newer, at(10), website_id=OTHER_WEBSITE)
    identify()
    assert user(connections, "cy@example.com")["session_id"] == newer

    result = sync()  # the website of the older session only

    assert (result.sessions, result.matched, result.modified) == (1, 1, 1)
    assert user(connections, "cy@example.com")["umamiAnalytics"]["id"] == old


def test_newer_analytics_are_never_replaced_by_older(rows: UmamiRows, connections: Database) -> None:
    session = visitor(rows, connections, "di@example.com", hours=(9, 15))
    identify()
    sync()
    latest = user(connections, "di@example.com")

    morning = sync(DataInterval(at(0), at(12)), now=RUN_AT + timedelta(days=1))  # sees only the 09:00 view

    assert (morning.sessions, morning.matched, morning.modified) == (1, 1, 0)
    assert user(connections, "di@example.com") == latest
    assert latest["umamiAnalytics"]["id"] == session and latest["umamiAnalytics"]["views"] == 2


def test_rerun_modifies_nothing(rows: UmamiRows, connections: Database) -> None:
    visitor(rows, connections, "ed@example.com")
    identify()
    first = sync()
    after = user(connections, "ed@example.com")

    second = sync(now=RUN_AT + timedelta(days=1))

    assert (first.modified, second.matched, second.modified) == (1, 1, 0)
    assert user(connections, "ed@example.com") == after


def test_deleted_users_and_strangers_are_left_alone(rows: UmamiRows, connections: Database) -> None:
    visitor(rows, connections, "fay@example.com")
    anonymous = rows.session(at(9))
    rows.event(anonymous, at(9))
    identify()
    connections["users"].update_one({"email": "fay@example.com"}, {"$set": {"isDeleted": True}})
    before = list(connections["users"].find())

    result = sync()

    assert (result.sessions, result.matched, result.modified) == (2, 0, 0)
    assert list(connections["users"].find()) == before


def test_analytics_of_the_original_tool_are_upgraded(rows: UmamiRows, connections: Database) -> None:
    session = visitor(rows, connections, "gus@example.com")
    identify()
    connections["users"].update_one({"email": "gus@example.com"}, {"$set": {"umamiAnalytics": {
        "id": session, "lastAt": "2026-11-27T09:00:00.000Z", "views": "1", "visits": "1"}}})

    sync()

    analytics = user(connections, "gus@example.com")["umamiAnalytics"]
    assert isinstance(analytics["lastAt"], datetime) and analytics["views"] == 1


def test_malformed_rows_are_counted_and_the_rest_written(rows: UmamiRows, connections: Database,
                                                         umami_server: FakeUmami) -> None:
    good = visitor(rows, connections, "hu@example.com")
    bad = visitor(rows, connections, "ida@example.com", hours=(10,))
    identify()
    umami_server.faults.malformed_ids = {bad}

    result = sync()

    assert (result.sessions, result.invalid, result.matched, result.modified) == (1, 1, 1, 1)
    assert user(connections, "hu@example.com")["umamiAnalytics"]["id"] == good
    assert "umamiAnalytics" not in user(connections, "ida@example.com")
    assert result.error is None


def test_faults_lose_nothing_and_write_nothing_twice(rows: UmamiRows, connections: Database,
                                                     umami_server: FakeUmami) -> None:
    emails = [f"user{i}@example.com" for i in range(7)]
    for hour, email in enumerate(emails, start=1):
        visitor(rows, connections, email, hours=(hour,))
    identify()
    faults = umami_server.faults
    faults.fail_next, faults.throttle_next, faults.retry_after_seconds = 1, 1, 0.05

    def revoke_then_drift(page: int) -> None:
        if page == 1 and faults.on_session_page is not None:
            faults.on_session_page = None  # once
            umami_server.revoke_tokens()
            late = rows.session(at(23), distinct_id="late@example.com")
            rows.event(late, at(23))  # a new session: the count changes between pages

    faults.on_session_page = revoke_then_drift

    result = sync(page_size=2)

    assert result.error is None, result.error
    assert (result.sessions, result.matched, result.modified, result.duplicates >= 0) == (8, 7, 7, True)
    assert result.retries >= 2 and result.logins == 2 and result.restarts >= 1
    assert all("umamiAnalytics" in user(connections, email) for email in emails)


def test_an_unreachable_api_is_recorded_not_raised(rows: UmamiRows, connections: Database,
                                                   umami_server: FakeUmami) -> None:
    visitor(rows, connections, "jan@example.com")
    identify()
    umami_server.faults.fail_next = 100

    result = sync(http_max_retries=1)

    assert result.error is not None and "500" in result.error and not result.succeeded
    assert "umamiAnalytics" not in user(connections, "jan@example.com")


def test_jobs_cover_discovered_websites_and_sub_windows(rows: UmamiRows) -> None:
    rows.website(OTHER_WEBSITE, "Other Site")
    rows.website("9d7c4f52-94e4-4a36-9fd8-6b0e2f6f3b77", "Gone Site", deleted=True)

    jobs = plan_analytics_jobs(SyncSettings(sub_windows=2), DAY)

    assert sorted({(j.website_id, j.website_name) for j in jobs}) == [
        (WEBSITE, "Probe Site"), (OTHER_WEBSITE, "Other Site")]
    assert len(jobs) == 4
    assert {j.label for j in jobs if j.website_id == WEBSITE} == {"Probe Site (1/2)", "Probe Site (2/2)"}
    assert [(j.window_start, j.window_end) for j in jobs if j.website_id == WEBSITE] == [
        (at(0), at(12)), (at(12), at(0, day=28))]


def test_configured_websites_are_not_discovered(rows: UmamiRows, umami_server: FakeUmami) -> None:
    umami_server.reset()
    jobs = plan_analytics_jobs(SyncSettings(website_ids=(OTHER_WEBSITE,), analytics_days_back=2), DAY)

    assert [(j.website_id, j.label, j.window_start) for j in jobs] == [(OTHER_WEBSITE, OTHER_WEBSITE, at(0, day=26))]
    assert umami_server.requests == []


def test_dry_run_counts_and_writes_nothing(rows: UmamiRows, connections: Database) -> None:
    visitor(rows, connections, "kai@example.com")
    identify()
    before = list(connections["users"].find())

    result = sync(dry_run=True)

    assert (result.dry_run, result.sessions, result.matched, result.updates, result.modified, result.bulk_writes) == (
        True, 1, 1, 1, 0, 0)
    assert list(connections["users"].find()) == before

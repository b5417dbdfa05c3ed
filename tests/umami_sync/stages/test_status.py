"""Stage 3: the SystemConfig status document, built purely and written to a real MongoDB server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from umami_sync.results import AnalyticsResult, SessionSyncResult
from umami_sync.settings import SyncSettings
from umami_sync.stages.status import RunStatus, describe_failures, summarise
from umami_sync.windows import DataInterval
from umami_sync.wiring import write_status

if TYPE_CHECKING:
    from pymongo.database import Database

A, B = "266abb41-957e-4dd3-8229-6a601f80a9db", "5b3a2b8e-2d0e-4c39-9f7e-0f2a9d3c6e11"
DAY = DataInterval(datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC))
EARLIER = DataInterval(datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
NOW = datetime(2026, 11, 28, 1, tzinfo=UTC)


def sessions(failed: int = 0) -> SessionSyncResult:
    return SessionSyncResult(window_start=DAY.start, window_end=DAY.end, rows_read=5, identities=4,
                             matched_identities=3, modified=2, unmatched_identities=1, failed=failed)


def website(website_id: str, interval: DataInterval = DAY, *, sessions: int = 10, error: str | None = None,
            part: tuple[datetime, datetime] | None = None) -> AnalyticsResult:
    start, end = part or (interval.start, interval.end)
    return AnalyticsResult(website_id=website_id, window_start=start, window_end=end, sessions=sessions,
                           list_rows=sessions, rows_read=sessions, matched_sessions=4, modified=3, error=error)


def report(*results: AnalyticsResult, session: SessionSyncResult | None = None, interval: DataInterval = DAY,
           expected: list[str] | None = None, run_id: str = "scheduled__2026-11-27") -> Any:
    return summarise(run_id, interval, session or sessions(), list(results),
                     expected_websites=expected if expected is not None else [r.website_id for r in results])


def status(db: Database) -> dict[str, Any]:
    return db["systemconfigs"].find_one({"_id": "global"})["umamiSync"]


def test_overall_status() -> None:
    assert report(website(A), website(B)).status is RunStatus.SUCCESS
    assert report(website(A), website(B, error="boom")).status is RunStatus.PARTIAL
    assert report(website(A), session=sessions(failed=1)).status is RunStatus.PARTIAL
    failed = summarise("r", DAY, None, [website(A, error="x")], expected_websites=[A])
    assert failed.status is RunStatus.FAILED
    assert "session sync left no result" in describe_failures(failed)
    missing = report(website(A), expected=[A, B])
    assert missing.status is RunStatus.PARTIAL and "the task left no result" in describe_failures(missing)


def test_sub_windows_of_a_website_add_up() -> None:
    half = datetime(2026, 11, 27, 12, tzinfo=UTC)
    outcome = report(website(A, part=(DAY.start, half), sessions=4), website(A, part=(half, DAY.end), sessions=6),
                     expected=[A, A]).websites[A]
    assert (outcome.figures["sessions"], outcome.figures["rows_read"], outcome.succeeded) == (10, 10, True)


@pytest.mark.integration
def test_status_document_records_the_run_and_keeps_other_fields(connections: Database) -> None:
    connections["systemconfigs"].insert_one({"_id": "global", "featureFlags": {"beta": True},
                                              "umamiSync": {"legacyNote": "kept"}})

    write_status(SyncSettings(), report(website(A), website(B, error="UmamiApiError: 500")), now=NOW)


    document = connections["systemconfigs"].find_one({"_id": "global"})
    assert document["featureFlags"] == {"beta": True} and "createdAt" not in document
    sync = document["umamiSync"]
    assert sync["legacyNote"] == "kept"
    assert sync["lastSessionSync"] == datetime(2026, 11, 28)
    assert "lastAnalyticsSync" not in sync and "lastSuccessfulSync" not in sync
    assert sync["websiteSyncStatus"][A] == {"lastSync": datetime(2026, 11, 28), "lastDaySynced": "2026-11-27",
                                            "firstDaySynced": "2026-11-27", "sessionsProcessed": 10,
                                            "errorCount": 0}
    assert sync["websiteSyncStatus"][B] == {"errorCount": 1, "lastError": "UmamiApiError: 500",
                                            "lastErrorAt": NOW.replace(tzinfo=None)}
    run = sync["lastRun"]
    assert (run["runId"], run["status"], run["dataIntervalStart"]) == ("scheduled__2026-11-27", "partial",
                                                                       datetime(2026, 11, 27))
    assert run["sessionSync"]["matched_identities"] == 3 and "modified" not in run["sessionSync"]
    assert run["analytics"][B]["status"] == "failed" and run["errors"] == {B: "UmamiApiError: 500"}


@pytest.mark.integration
def test_error_count_counts_consecutive_failures_and_resets(connections: Database) -> None:
    write_status(SyncSettings(), report(website(B, error="e1")), now=NOW)
    write_status(SyncSettings(), report(website(B, error="e2")), now=NOW)
    assert status(connections)["websiteSyncStatus"][B]["errorCount"] == 2
    assert connections["systemconfigs"].find_one({"_id": "global"})["createdAt"] == NOW.replace(tzinfo=None)

    write_status(SyncSettings(), report(website(B)), now=NOW)
    site = status(connections)["websiteSyncStatus"][B]
    assert (site["errorCount"], site["sessionsProcessed"], site["lastErrorAt"]) == (0, 10, NOW.replace(tzinfo=None))
    assert "lastError" not in site  # the error (whatever it held) goes once the website succeeds again
    assert status(connections)["lastSuccessfulSync"] == datetime(2026, 11, 28)


@pytest.mark.integration
def test_a_backfill_never_moves_sync_times_back(connections: Database) -> None:
    write_status(SyncSettings(), report(website(A)), now=NOW)
    write_status(SyncSettings(), report(website(A, EARLIER), interval=EARLIER, run_id="backfill"), now=NOW)

    sync = status(connections)
    assert sync["lastSuccessfulSync"] == datetime(2026, 11, 28)
    assert sync["websiteSyncStatus"][A]["lastDaySynced"] == "2026-11-27"
    assert sync["lastRun"]["runId"] == "backfill"


@pytest.mark.integration
def test_each_websites_figures_belong_to_the_day_they_name(connections: Database) -> None:
    """A back-fill of an older day does not put that day's figures next to a newer lastDaySynced."""
    write_status(SyncSettings(), report(website(A, sessions=70)), now=NOW)
    write_status(SyncSettings(), report(website(A, EARLIER, sessions=3), interval=EARLIER, run_id="backfill"),
                 now=NOW)

    site = status(connections)["websiteSyncStatus"][A]
    assert (site["lastDaySynced"], site["sessionsProcessed"], site["lastSync"]) == (
        "2026-11-27", 70, datetime(2026, 11, 28))

    later = DataInterval(datetime(2026, 11, 28, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC))
    write_status(SyncSettings(), report(website(A, later, sessions=5), interval=later, run_id="next"), now=NOW)
    assert (status(connections)["websiteSyncStatus"][A]["lastDaySynced"],
            status(connections)["websiteSyncStatus"][A]["sessionsProcessed"]) == ("2026-11-28", 5)


@pytest.mark.integration
def test_a_run_of_several_days_names_them_and_a_backfill_inside_them_moves_nothing_back(
        connections: Database) -> None:
    week = DataInterval(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC))
    write_status(SyncSettings(), report(website(A, week, sessions=700), interval=week, run_id="week"), now=NOW)
    day = DataInterval(datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC))
    write_status(SyncSettings(), report(website(A, day, sessions=90), interval=day, run_id="day"), now=NOW)

    site = status(connections)["websiteSyncStatus"][A]
    assert (site["firstDaySynced"], site["lastDaySynced"], site["sessionsProcessed"], site["lastSync"]) == (
        "2026-11-01", "2026-11-07", 700, datetime(2026, 11, 8))

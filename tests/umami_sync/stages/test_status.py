"""Stage 3: the SystemConfig status document, built purely and written to a real MongoDB server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import documents
from umami_sync.results import AnalyticsResult, RefusedUser, SessionSyncResult
from umami_sync.settings import SyncSettings
from umami_sync.stages.status import RunStatus, describe_failures, run_result, summarise
from umami_sync.windows import DataInterval
from umami_sync.wiring import write_status

if TYPE_CHECKING:
    from pymongo.database import Database

    from umami_sync.results import Drop

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
                                            "errorCount": 0,
                                            "days": {"2026-11-27": {"sessions": 10, "matchedSessions": 4}}}
    assert sync["websiteSyncStatus"][B] == {"errorCount": 1, "lastError": "UmamiApiError: 500",
                                            "lastErrorAt": NOW.replace(tzinfo=None), "lastErrorDay": "2026-11-27",
                                            "failedRuns": ["2026-11-27 scheduled__2026-11-27"]}
    run = sync["lastRun"]
    assert (run["runId"], run["status"], run["dataIntervalStart"]) == ("scheduled__2026-11-27", "partial",
                                                                       datetime(2026, 11, 27))
    assert run["sessionSync"]["matched_identities"] == 3 and "modified" not in run["sessionSync"]
    assert run["analytics"][B]["status"] == "failed" and run["errors"] == {B: "UmamiApiError: 500"}


@pytest.mark.integration
def test_error_count_counts_consecutive_failures_and_resets(connections: Database) -> None:
    write_status(SyncSettings(), report(website(B, error="e1"), run_id="r1"), now=NOW)
    write_status(SyncSettings(), report(website(B, error="e2"), run_id="r2"), now=NOW)
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
    assert sync["websiteSyncStatus"][A]["days"].keys() == {"2026-11-20", "2026-11-27"}  # each day's figures kept


@pytest.mark.integration
def test_backfills_finishing_in_any_order_leave_the_newest_days_run_as_last_run(connections: Database) -> None:
    """Back-fill runs side by side finish in any order: ``lastRun`` stays the run of the newest interval."""
    write_status(SyncSettings(), report(website(A)), now=NOW)
    write_status(SyncSettings(), report(website(A, EARLIER, error="e"), interval=EARLIER, run_id="backfill"),
                 now=NOW)
    assert status(connections)["lastRun"]["runId"] == "scheduled__2026-11-27"

    write_status(SyncSettings(), report(website(A), run_id="again"), now=NOW)  # the same day again: replaces it
    assert status(connections)["lastRun"]["runId"] == "again"


@pytest.mark.integration
def test_an_older_days_success_never_clears_a_newer_failure(connections: Database) -> None:
    write_status(SyncSettings(), report(website(A, error="UmamiApiError: 500")), now=NOW)

    write_status(SyncSettings(), report(website(A, EARLIER), interval=EARLIER, run_id="backfill"), now=NOW)

    site = status(connections)["websiteSyncStatus"][A]
    assert (site["errorCount"], site["lastError"], site["lastErrorDay"]) == (1, "UmamiApiError: 500", "2026-11-27")
    write_status(SyncSettings(), report(website(A), run_id="fixed"), now=NOW)  # the failing day itself succeeds
    site = status(connections)["websiteSyncStatus"][A]
    assert site["errorCount"] == 0 and "lastError" not in site and "failedRuns" not in site


@pytest.mark.integration
def test_a_failure_counts_once_per_run_and_day_however_often_it_is_recorded(connections: Database) -> None:
    """A retried (or cleared and re-run) ``record_status`` writes the same document: the failure is not counted
    twice, even after another run of the day failed in between."""
    failed = report(website(B, error="e1"), run_id="r1")
    write_status(SyncSettings(), failed, now=NOW)
    after_first = documents(connections["systemconfigs"])

    write_status(SyncSettings(), failed, now=datetime(2026, 11, 28, 2, tzinfo=UTC))

    assert documents(connections["systemconfigs"]) == after_first  # byte-identical, lastErrorAt included
    write_status(SyncSettings(), report(website(B, error="e2"), run_id="r2"), now=NOW)
    write_status(SyncSettings(), failed, now=NOW)  # r1 retried after r2
    assert status(connections)["websiteSyncStatus"][B]["errorCount"] == 2


@pytest.mark.integration
def test_every_status_write_is_idempotent(connections: Database) -> None:
    def record_both() -> None:
        write_status(SyncSettings(), report(website(A), website(B, error="e"), session=sessions(failed=1)), now=NOW)
        write_status(SyncSettings(), report(website(A, EARLIER), interval=EARLIER, run_id="backfill"), now=NOW)

    record_both()
    first = documents(connections["systemconfigs"])
    record_both()

    assert documents(connections["systemconfigs"]) == first


def day(number: int) -> DataInterval:
    return DataInterval(datetime(2026, 11, number, tzinfo=UTC), datetime(2026, 11, number + 1, tzinfo=UTC))


def record_days(days: range, *, sessions: int = 100, threshold: float | None = 0.5) -> list[Drop]:
    """Record a daily run of website A for each day of November in ``days``; the drops of the last one."""
    drops: list[Drop] = []
    for number in days:
        drops = write_status(SyncSettings(drop_threshold=threshold),
                             report(website(A, day(number), sessions=sessions), interval=day(number),
                                    run_id=f"scheduled__{number}"), now=NOW)
    return drops


@pytest.mark.integration
def test_a_day_far_below_the_websites_usual_is_a_drop_and_the_run_stays_green(connections: Database) -> None:
    record_days(range(10, 17))  # 100 sessions a day, 4 of them matched

    drops = record_days(range(17, 18), sessions=30)

    assert [(d.figure, d.value, d.usual, d.days) for d in drops] == [("sessions", 30, 100, 7)]
    sync = status(connections)
    assert sync["lastRun"]["status"] == "success" and sync["lastSuccessfulSync"] == datetime(2026, 11, 18)
    assert sync["lastRun"]["drops"] == [{"website_id": A, "website_name": None, "day": "2026-11-17",
                                         "figure": "sessions", "value": 30, "usual": 100.0, "days": 7}]
    assert sync["websiteSyncStatus"][A]["days"]["2026-11-17"] == {"sessions": 30, "matchedSessions": 4,
                                                                 "belowUsual": {"sessions": 100.0}}
    assert record_days(range(18, 19), sessions=60) == []  # above half the usual


@pytest.mark.integration
def test_no_drop_without_three_earlier_days_or_when_turned_off(connections: Database) -> None:
    record_days(range(10, 12))
    assert record_days(range(12, 13), sessions=1) == []  # two earlier days: no usual yet
    assert record_days(range(13, 14), sessions=1, threshold=None) == []
    week = DataInterval(datetime(2026, 11, 14, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
    assert write_status(SyncSettings(), report(website(A, week, sessions=1), interval=week), now=NOW) == []


@pytest.mark.integration
def test_a_website_keeps_only_its_last_days(connections: Database) -> None:
    record_days(range(1, 12))
    kept = status(connections)["websiteSyncStatus"][A]["days"]
    assert sorted(kept) == [f"2026-11-{number:02d}" for number in range(4, 12)]

    record_days(range(2, 3))  # a back-fill older than every kept day adds nothing

    assert sorted(status(connections)["websiteSyncStatus"][A]["days"]) == sorted(kept)


@pytest.mark.integration
def test_rejected_users_and_identities_are_counted_by_reason_with_a_sample(connections: Database) -> None:
    refused = {"refused": 2, "refused_by_reason": {"121 DocumentValidationFailure": 2},
               "refused_users": [RefusedUser(user_id="u1", code=121, reason="Document failed validation"),
                                 RefusedUser(user_id="u2", code=121, reason="Document failed validation")]}
    stage_one = sessions().model_copy(update={"invalid_rows": 1, **refused})
    stage_one = SessionSyncResult.model_validate({**stage_one.model_dump(), "unmatched_sample": ["zoe@example.com"]})
    stage_two = website(B).model_copy(update={"refused": 1, "refused_by_reason": {"11000 DuplicateKey": 1},
                                              "refused_users": [RefusedUser(user_id="u3", code=11000, reason="dup")]})

    write_status(SyncSettings(), report(website(A), stage_two, session=stage_one), now=NOW)

    assert status(connections)["lastRun"]["rejected"] == {
        "refusedUsers": {"byReason": {"121 DocumentValidationFailure": 2, "11000 DuplicateKey": 1},
                         "users": [{"user_id": "u1", "code": 121, "reason": "Document failed validation"},
                                   {"user_id": "u2", "code": 121, "reason": "Document failed validation"},
                                   {"user_id": "u3", "code": 11000, "reason": "dup"}]},
        "unmatchedIdentities": {"byReason": {"no user has this identity": 1, "malformed identity (rows)": 1},
                                "identities": ["z***@example.com"]}}


def test_the_result_names_what_failed_with_its_days() -> None:
    failed = report(website(A), website(B, error="UmamiApiError: 500").model_copy(update={"website_name": "Shop"}),
                    session=sessions(failed=1))

    result = run_result(failed, dry_run=False, drops=[], modified={"sessions": 2, "analytics": 3},
                        changes={"sessions": 2, "analytics": 3})

    assert (result.status, result.days, result.succeeded) == ("partial", "2026-11-27", False)
    assert [(part.what, part.website_id, part.days) for part in result.failed] == [
        ("session sync", None, "2026-11-27"), ("website Shop", B, "2026-11-27")]
    assert result.failed[1].error == "UmamiApiError: 500" and "website " + B in (result.failure or "")
    assert run_result(report(website(A)), dry_run=False, drops=[], modified={}, changes={}).failure is None

"""Stage 3: the SystemConfig status document, built purely and written to a real MongoDB server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import documents
from umami_sync.results import AnalyticsResult, PlannedJob, RefusedUser, SessionSyncResult
from umami_sync.settings import SyncSettings
from umami_sync.stages.status import (
    RunStatus,
    build_status_updates,
    describe_failures,
    run_result,
    summarise,
    unplanned,
)
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


def planned(result: AnalyticsResult, part: int = 1, parts: int = 1, name: str | None = None) -> PlannedJob:
    """The job the plan made for ``result``'s website and window."""
    return PlannedJob(website_id=result.website_id, website_name=name or result.website_name,
                      window_start=result.window_start, window_end=result.window_end, part=part, parts=parts)


def report(*results: AnalyticsResult, session: SessionSyncResult | None = None, interval: DataInterval = DAY,
           expected: list[PlannedJob] | None = None, run_id: str = "scheduled__2026-11-27",
           states: dict[int, str | None] | None = None) -> Any:
    return summarise(run_id, interval, session or sessions(), list(results), states=states,
                     planned=expected if expected is not None else [planned(r) for r in results])


def status(db: Database) -> dict[str, Any]:
    return db["systemconfigs"].find_one({"_id": "global"})["umamiSync"]


def test_overall_status() -> None:
    assert report(website(A), website(B)).status is RunStatus.SUCCESS
    assert report(website(A), website(B, error="boom")).status is RunStatus.PARTIAL
    assert report(website(A), session=sessions(failed=1)).status is RunStatus.PARTIAL
    failed = summarise("r", DAY, None, [website(A, error="x")], planned=[planned(website(A))])
    assert failed.status is RunStatus.FAILED
    assert "session sync left no result" in describe_failures(failed)
    missing = report(website(A), expected=[planned(website(A)), planned(website(B))])
    assert missing.status is RunStatus.PARTIAL and "left no result: its task is unknown" in describe_failures(missing)


HALF = datetime(2026, 11, 27, 12, tzinfo=UTC)


def halves(website_id: str, **figures: Any) -> list[AnalyticsResult]:
    return [website(website_id, part=(DAY.start, HALF), **figures), website(website_id, part=(HALF, DAY.end),
                                                                             **figures)]


def test_sub_windows_of_a_website_add_up() -> None:
    first, second = halves(A, sessions=5)
    outcome = report(first, second, expected=[planned(first, 1, 2), planned(second, 2, 2)]).websites[A]
    assert (outcome.figures["sessions"], outcome.figures["rows_read"], outcome.succeeded) == (10, 10, True)


@pytest.mark.parametrize("state", ["failed", "upstream_failed", "removed", "skipped", None])
def test_a_sub_window_that_left_no_result_fails_its_website_naming_the_window_and_the_tasks_state(
        state: str | None) -> None:
    """A website in two tasks, one of them killed (or marked failed, removed...) before it stored its result: the
    other part's result must not make the website look synced."""
    first, second = halves(A)
    jobs = [planned(first, 1, 2, "Shop"), planned(second, 2, 2, "Shop")]

    lost = report(first, expected=jobs, states={0: "success", 1: state})

    assert lost.status is RunStatus.PARTIAL and not lost.analytics_succeeded
    outcome = lost.websites[A]
    assert outcome.errors == [
        f"the analytics task of website Shop ({A}), 2026-11-27 part 2/2, left no result: its task is {state or 'none'} "
        "(killed, lost, or marked failed or removed by hand); that window was not synced"]
    assert outcome.failed_days == ["2026-11-27 part 2/2"]
    result = run_result(lost, dry_run=False, drops=[], modified={}, changes={})
    assert [(part.what, part.days) for part in result.failed] == [("website Shop", "2026-11-27 part 2/2")]
    assert f"left no result: its task is {state or 'none'}" in (result.failure or "")


@pytest.mark.integration
def test_a_lost_sub_window_moves_no_sync_time_counts_an_error_and_keeps_its_day_out_of_the_history(
        connections: Database) -> None:
    usual = {f"2026-11-{n}": {"sessions": 10, "matchedSessions": 4} for n in range(20, 27)}
    connections["systemconfigs"].insert_one({"_id": "global", "umamiSync": {
        "lastAnalyticsSync": datetime(2026, 11, 27), "websiteSyncStatus": {A: {"days": usual, "errorCount": 0}}}})
    first, second = halves(A)

    write_status(SyncSettings(), report(first, expected=[planned(first, 1, 2), planned(second, 2, 2)],
                                        states={1: "failed"}), now=NOW)

    sync = status(connections)
    assert sync["lastSessionSync"] == datetime(2026, 11, 28)
    assert sync["lastAnalyticsSync"] == datetime(2026, 11, 27) and "lastSuccessfulSync" not in sync  # not moved
    site = sync["websiteSyncStatus"][A]
    assert (site["errorCount"], site["lastErrorDay"]) == (1, "2026-11-27")
    assert "2026-11-27 part 2/2, left no result: its task is failed" in site["lastError"]
    assert sorted(site["days"]) == sorted(usual)  # the half day is no usual for later drops
    assert sync["lastRun"]["status"] == "partial" and sync["lastRun"]["analytics"][A]["status"] == "failed"


def test_a_run_never_planned_is_a_failed_run_with_its_reason() -> None:
    never = unplanned("manual__1", DAY, "invalid umami_sync setting: page_size: Input should be greater than 0")

    assert never.status is RunStatus.FAILED and never.day == "2026-11-27"
    result = run_result(never, dry_run=False, drops=[], modified={}, changes={})
    assert (result.status, result.days, result.failed) == ("failed", "2026-11-27", [])
    assert result.problems == ["the run could not be planned: invalid umami_sync setting: page_size: Input should "
                               "be greater than 0"]
    assert run_result(unplanned("manual__2", None, "x"), dry_run=False, drops=[], modified={}, changes={}).days == ""


@pytest.mark.integration
def test_a_run_never_planned_is_recorded_with_its_interval_or_without_one(connections: Database) -> None:
    write_status(SyncSettings(), report(website(A)), now=NOW)

    write_status(SyncSettings(), unplanned("manual__bad", DAY, "bad Variable"), now=NOW)

    sync = status(connections)
    assert {key: sync["lastRun"][key] for key in ("runId", "status", "problems", "dataIntervalStart", "analytics")} == {
        "runId": "manual__bad", "status": "failed", "problems": ["the run could not be planned: bad Variable"],
        "dataIntervalStart": datetime(2026, 11, 27), "analytics": {}}
    assert sync["lastSuccessfulSync"] == datetime(2026, 11, 28) and sync["websiteSyncStatus"][A]["errorCount"] == 0
    write_status(SyncSettings(), unplanned("manual__no_interval", None, "bad conf"), now=NOW)
    assert (status(connections)["lastRun"]["runId"], status(connections)["lastRun"]["dataIntervalEnd"]) == (
        "manual__no_interval", None)
    write_status(SyncSettings(), unplanned("older", EARLIER, "bad"), now=NOW)  # a run of any day follows it
    assert status(connections)["lastRun"]["runId"] == "older"
    write_status(SyncSettings(), unplanned("oldest", day(1), "bad"), now=NOW)  # but an older day replaces no newer
    assert status(connections)["lastRun"]["runId"] == "older"


def test_invalid_rows_of_a_green_run_are_news_with_the_field_that_failed_most() -> None:
    first, second = halves(A)
    first = first.model_copy(update={"invalid_rows": 3, "invalid_field": "visits", "website_name": "Shop"})
    second = second.model_copy(update={"invalid_rows": 1, "invalid_field": "lastAt"})

    green = report(first, second, expected=[planned(first, 1, 2), planned(second, 2, 2)])

    assert green.status is RunStatus.SUCCESS
    result = run_result(green, dry_run=False, drops=[], modified={}, changes={})
    assert [(found.website_name, found.rows, found.field) for found in result.invalid_rows] == [("Shop", 4, "visits")]
    last_run = next(update["$set"]["umamiSync.lastRun"] for _, update in build_status_updates(green, now=NOW)
                    if "umamiSync.lastRun" in update.get("$set", {}))
    assert last_run["invalidRows"] == [{"website_id": A, "website_name": "Shop", "rows": 4, "field": "visits"}]


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
    assert run["mode"] == "database"


def test_a_run_that_read_umamis_api_only_says_so_in_the_status_and_the_alert() -> None:
    """Issue 27: nothing is silently weaker; a run without Umami's database names its mode (lastRun.mode, the
    result handed to the alerts, and the alert's text)."""
    from umami_sync.alerts import failure_alert

    api = [result.model_copy(update={"mode": "api"}) for result in (website(A), website(B, error="HTTP 500"))]
    found = report(*api, session=sessions().model_copy(update={"mode": "api"}))

    _, (_, last_run), *_ = build_status_updates(found, now=NOW)
    result = run_result(found, dry_run=False, drops=[], modified={}, changes={})
    alert = failure_alert("umami_mongo_sync", "scheduled__2026-11-27", result, link="http://airflow/run")

    assert last_run["$set"]["umamiSync.lastRun"]["mode"] == "api" and result.mode == "api"
    assert "Umami was read through its API only, no database" in alert.text
    assert report(website(A)).mode == "database"
    assert summarise("manual__x", DAY, None, [], planned=[]).mode is None  # nothing ran, nothing to say


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

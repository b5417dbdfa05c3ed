"""Stage 3, status: record the run in the SystemConfig document that the original tool kept.

The document is ``{_id: "global"}`` in the ``systemconfigs`` collection; everything of ours is under
``umamiSync``, other writers' fields are left alone. :func:`build_status_updates` is pure; it only holds
figures that depend on the data (not on how often a run was retried), so re-running an interval
leaves the document byte-identical. Every write is tied to the day it records, so that runs of several days
may finish in any order, side by side, and retried:

- times are the ends of the synced data intervals, and ``$max`` keeps a back-fill from moving them back;
- ``lastRun`` is the run of the newest interval (a back-fill of an older one does not replace it);
- a website's figures are replaced only together with the days they belong to (``firstDaySynced`` ..
  ``lastDaySynced``), and its health (``errorCount``, ``lastError``) by a run of its failing day or a later one:
  an older day never clears a newer failure; a failure counts once per run and day (``failedRuns``);
- each website keeps the figures of its last days (``days``), the history a drop is measured against.

Every job the plan made (a website and a window) must leave a result: one that did not (its task was killed, lost,
or marked failed or removed by hand) fails its website, naming the window and the task's state. A run that was
never planned is recorded too (:func:`unplanned`), with the interval where Airflow knows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from statistics import median
from typing import TYPE_CHECKING, Any

from umami_sync.results import REFUSED_SAMPLE, Drop, FailedPart, InvalidRows, StatusResult, failed_most
from umami_sync.windows import DataInterval

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from pymongo.collection import Collection

    from umami_sync.results import AnalyticsResult, PlannedJob, SessionSyncResult, UmamiReads

STATUS_ID = "global"
HISTORY_DAYS = 7
"""How many of a website's earlier days a drop is measured against (their median)."""
MIN_HISTORY_DAYS = 3
"""Fewer earlier days than this, and no drop is looked for (a new website has no usual yet)."""
KEPT_FAILED_RUNS = 20
DROP_FIGURES = {"sessions": "sessions", "matched_sessions": "matchedSessions"}
"""The figures of a website's day that a drop is looked for in (result name: name in the document)."""


class RunStatus(StrEnum):
    """How a run ended as a whole."""

    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"


@dataclass
class WebsiteOutcome:
    """The parts (sub-windows) of one website in one run, summed."""

    website_id: str
    name: str | None = None
    figures: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    failed_days: list[str] = field(default_factory=list)
    """The days of each failed part (``2026-11-27``, or a range with ``analytics_days_back``)."""
    refused: dict[str, Any] = field(default_factory=dict)
    """The users the server refused (``byReason`` counts, a sample of ``users``), when it refused any."""
    invalid_fields: dict[str, int] = field(default_factory=dict)
    """Invalid list rows by the field that failed most in their part."""

    @property
    def succeeded(self) -> bool:
        """True when every part of the website was read and written."""
        return not self.errors

    @property
    def invalid_rows(self) -> InvalidRows | None:
        """The website's invalid list rows and the field that failed most, when it had any."""
        rows = self.figures.get("invalid_rows", 0)
        if not rows:
            return None
        return InvalidRows(website_id=self.website_id, website_name=self.name, rows=rows,
                           field=failed_most(self.invalid_fields))


@dataclass
class RunReport:
    """Everything the status stage knows about one run."""

    run_id: str
    interval: DataInterval | None
    """None for a run that was never planned and that Airflow gave no data interval."""
    sessions: SessionSyncResult | None
    websites: dict[str, WebsiteOutcome]
    problems: list[str] = field(default_factory=list)
    refused: dict[str, Any] = field(default_factory=dict)
    """The users the server refused in any stage (``byReason`` counts, a sample of ``users``)."""
    mode: UmamiReads | None = None
    """How the run read Umami (``database``, or ``api`` when it read Umami's API only); None when no stage ran."""

    @property
    def sessions_succeeded(self) -> bool:
        """True when stage 1 ran and wrote everything."""
        return self.sessions is not None and self.sessions.succeeded

    @property
    def analytics_succeeded(self) -> bool:
        """True when stage 2 was planned and every website succeeded."""
        return not self.problems and all(outcome.succeeded for outcome in self.websites.values())

    @property
    def status(self) -> RunStatus:
        """success: all stages; failed: nothing at all; partial: anything in between."""
        if self.sessions_succeeded and self.analytics_succeeded:
            return RunStatus.SUCCESS
        if not self.sessions_succeeded and not any(o.succeeded for o in self.websites.values()):
            return RunStatus.FAILED
        return RunStatus.PARTIAL

    @property
    def day(self) -> str | None:
        """The one UTC day a daily run synced (the day its history and health are kept for); None for a run of
        several days, whose figures are not one day's."""
        if self.interval is None:
            return None
        start, end = self.interval.start, self.interval.end
        one_day = end - start == timedelta(days=1) and start == start.replace(hour=0, minute=0, second=0,
                                                                               microsecond=0)
        return start.date().isoformat() if one_day else None


def summarise(run_id: str, interval: DataInterval, sessions: SessionSyncResult | None,
              analytics: list[AnalyticsResult], *, planned: Sequence[PlannedJob],
              states: Mapping[int, str | None] | None = None, problems: list[str] | None = None) -> RunReport:
    """Fold the stage results into a report. Every ``planned`` job (in map-index order) must have left a result:
    one that did not fails its website, naming its window and its task's state (``states``, by map index)."""
    websites: dict[str, WebsiteOutcome] = {}
    for result in analytics:
        outcome = websites.setdefault(result.website_id, WebsiteOutcome(result.website_id))
        outcome.name = outcome.name or result.website_name
        for name, value in result.recorded_figures().items():
            outcome.figures[name] = outcome.figures.get(name, 0) + value
        if result.invalid_rows and result.invalid_field:
            outcome.invalid_fields[result.invalid_field] = (outcome.invalid_fields.get(result.invalid_field, 0)
                                                            + result.invalid_rows)
        failure = result.failure()
        if failure and not result.succeeded:
            outcome.errors.append(failure)
            outcome.failed_days.append(DataInterval(result.window_start, result.window_end).days)
    for website_id, outcome in websites.items():
        refused = [result for result in analytics if result.website_id == website_id and result.refused]
        if refused:
            outcome.refused = _refusals(refused)
    for index in lost_jobs(planned, analytics):
        job = planned[index]
        outcome = websites.setdefault(job.website_id, WebsiteOutcome(job.website_id))
        outcome.name = outcome.name or job.website_name
        outcome.errors.append(lost_job(job, (states or {}).get(index, "unknown")))
        outcome.failed_days.append(window_of(job))
    run_problems = list(problems or [])
    if sessions is None:
        run_problems.append("session sync left no result")
    ran = [result for result in [sessions, *analytics] if result is not None]
    refusing = [result for result in ran if result.refused]
    return RunReport(run_id, interval, sessions, websites, run_problems, _refusals(refusing) if refusing else {},
                     mode=ran[0].mode if ran else None)


def lost_jobs(planned: Sequence[PlannedJob], analytics: Sequence[AnalyticsResult]) -> list[int]:
    """The map indexes of the ``planned`` jobs that left no result in ``analytics``."""
    done = {result.job_key for result in analytics}
    return [index for index, job in enumerate(planned) if job.key not in done]


def window_of(job: PlannedJob) -> str:
    """A job's window as the status and alerts name it: its days, and its part of them (``2026-11-27 part 2/6``)."""
    days = job.interval.days
    return f"{days} part {job.part}/{job.parts}" if job.parts > 1 else days


def lost_job(job: PlannedJob, state: str | None) -> str:
    """Why a job that left no result fails its website: its window and its task's state."""
    return (f"the analytics task of website {job.named}, {window_of(job)}, left no result: its task is "
            f"{state or 'none'} (killed, lost, or marked failed or removed by hand); that window was not synced")


def unplanned(run_id: str, interval: DataInterval | None, reason: str) -> RunReport:
    """The report of a run that ``plan_run`` could not resolve: failed, ``reason`` its problem, no stage run."""
    return RunReport(run_id, interval, None, {}, [f"the run could not be planned: {reason}"])


History = dict[str, dict[str, dict[str, Any]]]
"""Each website's kept days: ``{website id: {day: {"sessions": n, "matchedSessions": n, ...}}}``."""


def find_drops(report: RunReport, history: History, *, threshold: float | None) -> list[Drop]:
    """The figures of a daily run's websites that fell below ``threshold`` times the median of the website's
    earlier kept days (at least :data:`MIN_HISTORY_DAYS` of them). Failed websites are red already."""
    day = report.day
    if threshold is None or day is None:
        return []
    drops = []
    for website_id, outcome in sorted(report.websites.items()):
        earlier = [figures for kept, figures in sorted(history.get(website_id, {}).items()) if kept < day]
        earlier = earlier[-HISTORY_DAYS:]
        if not outcome.succeeded or len(earlier) < MIN_HISTORY_DAYS:
            continue
        for figure, stored in DROP_FIGURES.items():
            usual, value = median(kept.get(stored, 0) for kept in earlier), outcome.figures.get(figure, 0)
            if value < threshold * usual:
                drops.append(Drop(website_id=website_id, website_name=outcome.name, day=day, figure=stored,
                                  value=value, usual=usual, days=len(earlier)))
    return drops


Update = tuple[dict[str, Any], dict[str, Any]]
PREFIX = "umamiSync"


def build_status_updates(report: RunReport, *, now: datetime, history: History | None = None,
                         drops: list[Drop] | None = None) -> list[Update]:
    """The ``update_one`` calls (filter, update) that record ``report``; the first one upserts the document.

    ``history`` is each website's kept days as the document holds them now (to know which to let go), ``drops``
    what :func:`find_drops` found in them."""
    start, end = (report.interval.start, report.interval.end) if report.interval else (None, None)
    document = {"_id": STATUS_ID}
    run: dict[str, Any] = {
        "runId": report.run_id,
        "dataIntervalStart": start,
        "dataIntervalEnd": end,
        "status": str(report.status),
        "mode": report.mode,
        "sessionSync": _session_figures(report.sessions),
        "analytics": {wid: {**o.figures, "status": "success" if o.succeeded else "failed",
                            **({"refusedUsers": o.refused} if o.refused else {})}
                      for wid, o in sorted(report.websites.items())},
        "errors": {wid: o.errors[-1][:500] for wid, o in sorted(report.websites.items()) if o.errors},
        "problems": report.problems,
    }
    rejected = rejected_users(report)
    if rejected:
        run["rejected"] = rejected
    if drops:
        run["drops"] = [drop.model_dump(mode="json") for drop in drops]
    invalid = invalid_rows(report)
    if invalid:
        run["invalidRows"] = [found.model_dump(mode="json") for found in invalid]
    upsert: dict[str, Any] = {"$setOnInsert": {"createdAt": now}}
    if start is None or end is None:  # never planned, no interval: the news of the newest run, nothing else
        return [(document, upsert), (document, {"$set": {f"{PREFIX}.lastRun": run}})]
    first_day, day = start.date().isoformat(), (end - timedelta(microseconds=1)).date().isoformat()
    latest: dict[str, Any] = {}
    if report.sessions_succeeded:
        latest[f"{PREFIX}.lastSessionSync"] = end
    if report.analytics_succeeded:
        latest[f"{PREFIX}.lastAnalyticsSync"] = end
    if report.status is RunStatus.SUCCESS:
        latest[f"{PREFIX}.lastSuccessfulSync"] = end
    if latest:
        upsert["$max"] = latest
    newest_interval = {**document, f"{PREFIX}.lastRun.dataIntervalEnd": {"$not": {"$gt": end}}}
    updates: list[Update] = [(document, upsert), (newest_interval, {"$set": {f"{PREFIX}.lastRun": run}})]
    for website_id, outcome in sorted(report.websites.items()):
        path = f"{PREFIX}.websiteSyncStatus.{website_id}"
        not_newer_failure = {**document, f"{path}.lastErrorDay": {"$not": {"$gt": day}}}
        if outcome.succeeded:
            updates.append((not_newer_failure, {"$set": {f"{path}.errorCount": 0}, "$unset": {
                f"{path}.lastError": "", f"{path}.lastErrorDay": "", f"{path}.failedRuns": ""}}))
            same_day_or_later = {**document, f"{path}.lastDaySynced": {"$not": {"$gt": day}}}
            updates.append((same_day_or_later, {"$set": {
                f"{path}.lastSync": end, f"{path}.lastDaySynced": day, f"{path}.firstDaySynced": first_day,
                f"{path}.sessionsProcessed": outcome.figures.get("sessions", 0)}}))
            kept = _history_update(report, website_id, (history or {}).get(website_id, {}), drops or [])
            if kept:
                updates.append((document, kept))
        else:
            failure = f"{day} {report.run_id}"
            updates.append(({**not_newer_failure, f"{path}.failedRuns": {"$ne": failure}}, {
                "$inc": {f"{path}.errorCount": 1},
                "$set": {f"{path}.lastError": outcome.errors[-1][:500], f"{path}.lastErrorAt": now,
                         f"{path}.lastErrorDay": day},
                "$push": {f"{path}.failedRuns": {"$each": [failure], "$slice": -KEPT_FAILED_RUNS}}}))
    return updates


def _history_update(report: RunReport, website_id: str, kept: Mapping[str, Any], drops: list[Drop]) -> dict[str, Any]:
    """The day of a daily run added to a website's kept days, and the days past :data:`HISTORY_DAYS` let go."""
    day = report.day
    if day is None:
        return {}
    newest = sorted({*kept, day}, reverse=True)[:HISTORY_DAYS + 1]
    path = f"{PREFIX}.websiteSyncStatus.{website_id}.days"
    update: dict[str, Any] = {}
    if day in newest:
        figures = report.websites[website_id].figures
        entry: dict[str, Any] = {stored: figures.get(figure, 0) for figure, stored in DROP_FIGURES.items()}
        below = {drop.figure: drop.usual for drop in drops if drop.website_id == website_id}
        if below:
            entry["belowUsual"] = below
        update["$set"] = {f"{path}.{day}": entry}
    old = sorted(set(kept) - set(newest))
    if old:
        update["$unset"] = {f"{path}.{gone}": "" for gone in old}
    return update


def invalid_rows(report: RunReport) -> list[InvalidRows]:
    """The websites whose list rows were invalid (skipped), with the field that failed most."""
    return [found for _, outcome in sorted(report.websites.items()) if (found := outcome.invalid_rows) is not None]


def rejected_users(report: RunReport) -> dict[str, Any]:
    """The users the server refused in any stage, and the identities that matched no user, counted by reason
    with a small sample of each; empty when nothing was rejected."""
    rejected: dict[str, Any] = {}
    if report.refused:
        rejected["refusedUsers"] = report.refused
    sessions = report.sessions
    if sessions is not None and (sessions.unmatched_identities or sessions.invalid_rows):
        by_reason = {"no user has this identity": sessions.unmatched_identities,
                     "malformed identity (rows)": sessions.invalid_rows}
        rejected["unmatchedIdentities"] = {
            "byReason": {reason: count for reason, count in by_reason.items() if count},
            **({"identities": list(sessions.unmatched_sample)} if sessions.unmatched_sample else {})}
    return rejected


def _refusals(results: Sequence[AnalyticsResult | SessionSyncResult]) -> dict[str, Any]:
    """What the status keeps of refused users: counts by the server's reason and the first users refused."""
    by_reason: dict[str, int] = {}
    for result in results:
        for reason, count in result.refused_by_reason.items():
            by_reason[reason] = by_reason.get(reason, 0) + count
    sample = [user.model_dump() for result in results for user in result.refused_users][:REFUSED_SAMPLE]
    return {"byReason": by_reason, "users": sample}


def _session_figures(result: SessionSyncResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    figures: dict[str, Any] = dict(result.recorded_figures())
    figures["windowStart"], figures["windowEnd"] = result.window_start, result.window_end
    figures["status"] = "success" if result.succeeded else "failed"
    failure = result.failure()
    if failure and not result.succeeded:
        figures["error"] = failure[:500]
    if result.refused:
        figures["refusedUsers"] = _refusals([result])
    return figures


def write_status(collection: Collection[dict[str, Any]], report: RunReport, *, now: datetime,
                 drop_threshold: float | None) -> list[Drop]:
    """Record ``report`` in the SystemConfig document of ``collection`` (created when missing); the drops found
    against the websites' kept days."""
    stored = collection.find_one({"_id": STATUS_ID}, {f"{PREFIX}.websiteSyncStatus": 1}) or {}
    websites = stored.get(PREFIX, {}).get("websiteSyncStatus", {})
    history: History = {wid: dict(site.get("days", {})) for wid, site in websites.items() if isinstance(site, dict)}
    drops = find_drops(report, history, threshold=drop_threshold)
    for index, (where, update) in enumerate(build_status_updates(report, now=now, history=history, drops=drops)):
        collection.update_one(where, update, upsert=index == 0)
    return drops


def describe_failures(report: RunReport) -> str:
    """One line naming every stage and website that failed, for the task's error."""
    parts = list(report.problems)
    if report.sessions is not None and not report.sessions.succeeded:
        parts.append(f"session sync: {report.sessions.failure()}")
    parts += [f"website {wid}: {o.errors[-1]}" for wid, o in sorted(report.websites.items()) if o.errors]
    return f"run {report.status}: " + "; ".join(parts)


def run_result(report: RunReport, *, dry_run: bool, drops: list[Drop], modified: dict[str, int],
               changes: dict[str, int]) -> StatusResult:
    """What the status task hands on (to the task that ends the run, and to the alerts)."""
    failed = [FailedPart(what=f"website {outcome.name or wid}", website_id=wid, days=", ".join(outcome.failed_days),
                         error=outcome.errors[0])
              for wid, outcome in sorted(report.websites.items()) if outcome.errors]
    sessions, days = report.sessions, report.interval.days if report.interval else ""
    if sessions is not None and not sessions.succeeded:
        failed.insert(0, FailedPart(what="session sync", days=days, error=sessions.failure() or "failed"))
    return StatusResult(
        run_id=report.run_id, status=str(report.status), days=days,
        dry_run=dry_run, mode=report.mode, websites=len(report.websites), failed=failed, problems=report.problems,
        failure=None if report.status is RunStatus.SUCCESS else describe_failures(report), drops=drops,
        invalid_rows=invalid_rows(report), rejected=rejected_users(report), modified=modified, changes=changes)

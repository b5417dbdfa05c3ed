"""Stage 3, status: record the run in the SystemConfig document that the original tool kept.

The document is ``{_id: "global"}`` in the ``systemconfigs`` collection; everything of ours is under
``umamiSync``, other writers' fields are left alone. :func:`build_status_updates` is pure; it only holds
figures that depend on the data (not on how often a run was retried), so re-running an interval
leaves the document byte-identical. Times are the ends of the synced data intervals, and ``$max``
keeps a back-fill of an older interval from moving them back; a website's figures are replaced only
together with the days they belong to (``firstDaySynced`` .. ``lastDaySynced``, one day for a daily run),
so a back-fill never mixes two days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from umami_sync.results import REFUSED_SAMPLE

if TYPE_CHECKING:
    from datetime import datetime

    from pymongo.collection import Collection

    from umami_sync.results import AnalyticsResult, SessionSyncResult
    from umami_sync.windows import DataInterval

STATUS_ID = "global"


class RunStatus(StrEnum):
    """How a run ended as a whole."""

    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"


@dataclass
class WebsiteOutcome:
    """The parts (sub-windows) of one website in one run, summed."""

    website_id: str
    figures: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    refused: dict[str, Any] = field(default_factory=dict)
    """The users the server refused (``byReason`` counts, a sample of ``users``), when it refused any."""

    @property
    def succeeded(self) -> bool:
        """True when every part of the website was read and written."""
        return not self.errors


@dataclass
class RunReport:
    """Everything the status stage knows about one run."""

    run_id: str
    interval: DataInterval
    sessions: SessionSyncResult | None
    websites: dict[str, WebsiteOutcome]
    problems: list[str] = field(default_factory=list)

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


def summarise(run_id: str, interval: DataInterval, sessions: SessionSyncResult | None,
              analytics: list[AnalyticsResult], *, expected_websites: list[str] | None,
              problems: list[str] | None = None) -> RunReport:
    """Fold the stage results into a report; a planned website without a result counts as failed."""
    websites: dict[str, WebsiteOutcome] = {}
    for result in analytics:
        outcome = websites.setdefault(result.website_id, WebsiteOutcome(result.website_id))
        for name, value in result.recorded_figures().items():
            outcome.figures[name] = outcome.figures.get(name, 0) + value
        failure = result.failure()
        if failure and not result.succeeded:
            outcome.errors.append(failure)
    for website_id, outcome in websites.items():
        refused = [result for result in analytics if result.website_id == website_id and result.refused]
        if refused:
            outcome.refused = _refusals(refused)
    for website_id in expected_websites or []:
        websites.setdefault(website_id, WebsiteOutcome(website_id, errors=["the task left no result"]))
    run_problems = list(problems or [])
    if sessions is None:
        run_problems.append("session sync left no result")
    return RunReport(run_id, interval, sessions, websites, run_problems)


Update = tuple[dict[str, Any], dict[str, Any]]
PREFIX = "umamiSync"


def build_status_updates(report: RunReport, *, now: datetime) -> list[Update]:
    """The ``update_one`` calls (filter, update) that record ``report``; the first one upserts the document."""
    end = report.interval.end
    first_day, day = report.interval.start.date().isoformat(), (end - timedelta(microseconds=1)).date().isoformat()
    document = {"_id": STATUS_ID}
    run: dict[str, Any] = {
        "runId": report.run_id,
        "dataIntervalStart": report.interval.start,
        "dataIntervalEnd": end,
        "status": str(report.status),
        "sessionSync": _session_figures(report.sessions),
        "analytics": {wid: {**o.figures, "status": "success" if o.succeeded else "failed",
                            **({"refusedUsers": o.refused} if o.refused else {})}
                      for wid, o in sorted(report.websites.items())},
        "errors": {wid: o.errors[-1][:500] for wid, o in sorted(report.websites.items()) if o.errors},
        "problems": report.problems,
    }
    latest: dict[str, Any] = {}
    if report.sessions_succeeded:
        latest[f"{PREFIX}.lastSessionSync"] = end
    if report.analytics_succeeded:
        latest[f"{PREFIX}.lastAnalyticsSync"] = end
    if report.status is RunStatus.SUCCESS:
        latest[f"{PREFIX}.lastSuccessfulSync"] = end
    run_update: dict[str, Any] = {"$set": {f"{PREFIX}.lastRun": run}, "$setOnInsert": {"createdAt": now}}
    if latest:
        run_update["$max"] = latest
    updates: list[Update] = [(document, run_update)]
    for website_id, outcome in sorted(report.websites.items()):
        path = f"{PREFIX}.websiteSyncStatus.{website_id}"
        if outcome.succeeded:
            updates.append((document, {"$set": {f"{path}.errorCount": 0}, "$unset": {f"{path}.lastError": ""}}))
            same_day_or_later = {**document, f"{path}.lastDaySynced": {"$not": {"$gt": day}}}
            updates.append((same_day_or_later, {"$set": {
                f"{path}.lastSync": end, f"{path}.lastDaySynced": day, f"{path}.firstDaySynced": first_day,
                f"{path}.sessionsProcessed": outcome.figures.get("sessions", 0)}}))
        else:
            updates.append((document, {"$inc": {f"{path}.errorCount": 1}, "$set": {
                f"{path}.lastError": outcome.errors[-1][:500], f"{path}.lastErrorAt": now}}))
    return updates


def _refusals(results: list[AnalyticsResult] | list[SessionSyncResult]) -> dict[str, Any]:
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


def write_status(collection: Collection[dict[str, Any]], report: RunReport, *, now: datetime) -> None:
    """Record ``report`` in the SystemConfig document of ``collection`` (created when missing)."""
    for index, (where, update) in enumerate(build_status_updates(report, now=now)):
        collection.update_one(where, update, upsert=index == 0)


def describe_failures(report: RunReport) -> str:
    """One line naming every stage and website that failed, for the task's error."""
    parts = list(report.problems)
    if report.sessions is not None and not report.sessions.succeeded:
        parts.append(f"session sync: {report.sessions.failure()}")
    parts += [f"website {wid}: {o.errors[-1]}" for wid, o in sorted(report.websites.items()) if o.errors]
    return f"run {report.status}: " + "; ".join(parts)

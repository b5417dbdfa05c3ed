"""The bodies of the DAG's tasks: Airflow context in, stage calls (through :mod:`umami_sync.wiring`), figures
out through XCom.

Each stage task stores its result once, under the XCom key ``result``, before it decides whether to fail
(so the status task sees it for failed tasks too); ``plan_run`` stores one only when it fails. The status task
reads the results of the tasks upstream of it, each telling by its ``stage`` what it holds, and the states of the
mapped tasks upstream of it (a planned job that left no result is named with its task's state); no task id is
looked up by name.

A task imports what only its own work needs when it runs (the wiring imports each stage's parts likewise): every
task, each mapped one too, starts in a process of its own and pays for its imports.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from airflow.sdk import Variable
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from pydantic import TypeAdapter

from umami_sync.results import (
    AnalyticsResult,
    PlannedJob,
    PlanResult,
    PlanRunResult,
    SessionSyncResult,
    StageResult,
    StatusResult,
    stop_reason,
)
from umami_sync.runs import RUN_PARAMS, RunPlan, plan_run, salvaged_settings
from umami_sync.settings import SETTINGS_VARIABLE, SettingsError
from umami_sync.windows import DataInterval
from umami_sync.wiring import plan_analytics_jobs, sync_analytics_job, sync_sessions, umami_api, write_status

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import Asset, AssetAlias

    from umami_sync.results import Drop
    from umami_sync.settings import SyncSettings
    from umami_sync.stages.analytics.jobs import AnalyticsJob
    from umami_sync.stages.status import RunReport

log = logging.getLogger(__name__)

RESULT_KEY = "result"
_STAGE_RESULT: TypeAdapter[StageResult] = TypeAdapter(StageResult)


def plan(context: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve the run's settings and interval; a bad setting fails the run at once, without retries. Whatever
    stops it (a secrets backend that cannot be read too) is stored as its result first, for the status task."""
    try:
        unknown = sorted(set(_conf(context)) - set(RUN_PARAMS))
        if unknown:
            raise SettingsError(
                f"trigger conf keys {unknown} are not params of this DAG (params: {', '.join(RUN_PARAMS)}); "
                f"other settings belong in the Variable {SETTINGS_VARIABLE!r}")
        resolved = plan_run(context["params"], Variable.get(SETTINGS_VARIABLE, default=None), os.environ,
                            context.get("data_interval_start"), context.get("data_interval_end"))
    except Exception as exc:  # stored for the status task first
        error = str(exc) if isinstance(exc, SettingsError) else stop_reason(exc)
        context["ti"].xcom_push(key=RESULT_KEY, value=PlanRunResult(error=error).model_dump(mode="json"))
        if isinstance(exc, SettingsError):
            raise AirflowFailException(error) from None
        raise  # as it came (a secrets backend that cannot be read now): its retries apply
    settings = resolved.settings
    log.info("run plan: syncs %s, websites %s, dry run %s", resolved.interval,
             ", ".join(settings.website_ids) or "discovered", settings.dry_run)
    return resolved.model_dump(mode="json")


def _conf(context: Mapping[str, Any]) -> dict[str, Any]:
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None)
    return dict(conf) if isinstance(conf, dict) else {}


def _finish(context: Mapping[str, Any], result: StageResult, failure: str | None, *, retryable: bool = True) -> None:
    context["ti"].xcom_push(key=RESULT_KEY, value=result.model_dump(mode="json"))
    if failure:
        raise (AirflowException if retryable else AirflowFailException)(failure)


def session_sync(run: dict[str, Any], context: Mapping[str, Any]) -> None:
    """Stage 1; fails after writing everything else when a batch failed (Airflow retries unless only refusals
    that a retry cannot change are left)."""
    resolved = RunPlan.model_validate(run)
    result = sync_sessions(resolved.settings, resolved.interval)
    failure = None if result.succeeded else f"session sync: {result.failure()}"
    _finish(context, result, failure, retryable=result.worth_retrying)


def plan_analytics(run: dict[str, Any], context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The mapped jobs of stage 2; a configured website id Umami does not show, no website at all, a connection
    that breaks the rule, or refused credentials fail the run at once."""
    from umami_sync.stages.analytics.jobs import NoWebsiteError, UnknownWebsiteError
    from umami_sync.stages.analytics.sizing import AnalyticsPlanError
    from umami_sync.umami.errors import UmamiConfigError, UmamiCredentialsError, UmamiError

    resolved = RunPlan.model_validate(run)
    api = umami_api(resolved.settings)
    jobs: list[AnalyticsJob] = []
    failure, retryable = None, True
    try:
        jobs = plan_analytics_jobs(resolved.settings, resolved.interval, api=api)
    except (UnknownWebsiteError, NoWebsiteError, UmamiCredentialsError, UmamiConfigError, AnalyticsPlanError) as exc:
        failure, retryable = str(exc), False
    except UmamiError as exc:
        failure = f"the websites could not be listed: {exc}"
    stats = api.stats
    plan = PlanResult(jobs=[PlannedJob.model_validate(job.model_dump()) for job in jobs],
                      requests=stats.requests, count_requests=stats.list_pages, logins=stats.logins,
                      retries=stats.retries, error=failure)
    log.info("analytics plan: %d tasks, requests=%d (counts %d, logins %d, retries %d)%s", len(jobs),
             stats.requests, stats.list_pages, stats.logins, stats.retries, f" error={failure}" if failure else "")
    _finish(context, plan, failure, retryable=retryable)
    return [job.model_dump(mode="json") for job in jobs]


def analytics_sync(run: dict[str, Any], job: dict[str, Any], context: Mapping[str, Any]) -> None:
    """Stage 2 for one website and window; fails (so Airflow retries) when anything went wrong."""
    from umami_sync.stages.analytics.jobs import AnalyticsJob

    resolved, website = RunPlan.model_validate(run), AnalyticsJob.model_validate(job)
    context["website_label"] = website.label  # type: ignore[index]  # read by map_index_template
    result = sync_analytics_job(resolved.settings, website, interval=resolved.interval)
    failure = None if result.succeeded else f"website {website.label}: {result.failure()}"
    _finish(context, result, failure, retryable=result.worth_retrying)


def upstream_results(context: Mapping[str, Any]) -> list[StageResult]:
    """The results the tasks upstream of the running one stored (every map index of a mapped task)."""
    upstream = sorted(context["task"].upstream_task_ids)
    stored = context["ti"].xcom_pull(task_ids=upstream, key=RESULT_KEY) if upstream else []
    return [_STAGE_RESULT.validate_python(value) for value in stored or [] if value]


def mapped_states(context: Mapping[str, Any]) -> dict[int, str | None]:
    """The state of each map index of the mapped task upstream of the running one (through the task SDK)."""
    mapped = [task.task_id for task in context["task"].upstream_list if task.is_mapped]
    if not mapped:
        return {}
    ti = context["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=mapped, run_ids=[ti.run_id]).get(ti.run_id, {})
    prefix = f"{mapped[0]}_"  # the SDK names a mapped instance "<task id>_<map index>"
    return {int(key[len(prefix):]): state for key, state in states.items()
            if key.startswith(prefix) and key[len(prefix):].isdigit()}


def record_status(run: dict[str, Any] | None, context: Mapping[str, Any], *, alias: AssetAlias,
                  asset: Asset) -> dict[str, Any]:
    """Stage 3: write the SystemConfig status and emit ``asset`` when users changed, a partial run included; a run
    that was never planned (``run`` None) is recorded too.

    It succeeds whatever the stages did (Airflow emits a task's asset events only when it succeeds); its result
    tells :func:`check_run` whether to fail the run, and the alerts what happened."""
    from umami_sync.stages.status import lost_jobs, run_result, summarise

    results = upstream_results(context)
    if run is None:
        failed = next((r for r in results if isinstance(r, PlanRunResult)), None)
        return _record_unplanned(context, failed.error if failed else "plan_run left no result")
    resolved = RunPlan.model_validate(run)
    sessions = next((r for r in results if isinstance(r, SessionSyncResult)), None)
    plan = next((r for r in results if isinstance(r, PlanResult)), None)
    analytics = [r for r in results if isinstance(r, AnalyticsResult)]
    report = summarise(
        str(context["run_id"]), resolved.interval, sessions, analytics,
        planned=plan.jobs if plan else [],
        states=mapped_states(context) if plan and lost_jobs(plan.jobs, analytics) else {},  # asked only when needed
        problems=None if plan and not plan.error else [
            f"analytics could not be planned: {plan.error}" if plan else "analytics could not be planned"],
    )
    modified = {"sessions": sessions.modified if sessions else 0, "analytics": sum(a.modified for a in analytics)}
    changes = {"sessions": sessions.changes if sessions else 0, "analytics": sum(a.changes for a in analytics)}
    drops = _write_unless_dry(resolved.settings, report)
    if not resolved.settings.dry_run and any(modified.values()):
        context["outlet_events"][alias].add(asset, extra={
            "dataIntervalStart": resolved.interval.start.isoformat(),
            "dataIntervalEnd": resolved.interval.end.isoformat(), "modifiedUsers": modified,
            "runStatus": str(report.status)})
    log.info("run %s: %s, %d websites, %d failed, modified %s, changes %s%s", report.run_id, report.status,
             len(report.websites), sum(not o.succeeded for o in report.websites.values()), modified, changes,
             " (dry run: what a real run would send)" if resolved.settings.dry_run else "")
    for drop in drops:
        log.warning("drop: website %s on %s: %s %d, usually %g", drop.website_name or drop.website_id, drop.day,
                    drop.figure, drop.value, drop.usual)
    result = run_result(report, dry_run=resolved.settings.dry_run, drops=drops, modified=modified, changes=changes)
    return result.model_dump(mode="json")


def _record_unplanned(context: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """Record a run that ``plan_run`` could not resolve: ``lastRun`` failed with ``reason``, over the data interval
    Airflow gave the run (``date_from``/``date_to`` are not trusted: the plan did not check them), written with
    the settings that still parse (:func:`~umami_sync.runs.salvaged_settings`)."""
    from umami_sync.stages.status import run_result, unplanned

    settings = salvaged_settings(context["params"], _variable_if_readable(), os.environ)
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    report = unplanned(str(context["run_id"]), DataInterval(start, end) if start and end and start < end else None,
                       reason)
    log.error("run %s was never planned: %s", report.run_id, reason)
    _write_unless_dry(settings, report)
    return run_result(report, dry_run=settings.dry_run, drops=[], modified={"sessions": 0, "analytics": 0},
                      changes={"sessions": 0, "analytics": 0}).model_dump(mode="json")


def _variable_if_readable() -> str | None:
    try:
        value: str | None = Variable.get(SETTINGS_VARIABLE, default=None)
    except Exception as exc:  # the status is still written where the defaults say (if that can be read)
        log.warning("the Variable %r could not be read (%s); the run is recorded with the default settings",
                    SETTINGS_VARIABLE, stop_reason(exc))
        return None
    return value


def _write_unless_dry(settings: SyncSettings, report: RunReport) -> list[Drop]:
    if settings.dry_run:
        log.info("dry run: the status document is not written and no asset event is emitted")
        return []
    return write_status(settings, report)


def check_run(status: dict[str, Any]) -> None:
    """End the run: fail it (without retries) when ``record_status`` found a stage or website that failed."""
    result = StatusResult.model_validate(status)
    if not result.succeeded:
        raise AirflowFailException(result.failure or f"run {result.status}")

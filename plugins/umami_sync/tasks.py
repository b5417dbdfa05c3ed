"""The bodies of the DAG's tasks: Airflow context in, stage calls (through :mod:`umami_sync.wiring`), figures
out through XCom.

Each stage task stores its result once, under the XCom key ``result``, before it decides whether to fail
(so the status task sees it for failed tasks too). The status task reads the results of the tasks upstream of
it, each telling by its ``stage`` what it holds; no task id is looked up by name.

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

from umami_sync.results import AnalyticsResult, PlanResult, SessionSyncResult, StageResult, StatusResult
from umami_sync.runs import RUN_PARAMS, RunPlan, plan_run
from umami_sync.settings import SETTINGS_VARIABLE, SettingsError
from umami_sync.wiring import plan_analytics_jobs, sync_analytics_job, sync_sessions, write_status

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import Asset, AssetAlias

    from umami_sync.results import Drop
    from umami_sync.stages.analytics.jobs import AnalyticsJob

log = logging.getLogger(__name__)

RESULT_KEY = "result"
_STAGE_RESULT: TypeAdapter[StageResult] = TypeAdapter(StageResult)


def plan(context: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve the run's settings and interval; a bad setting fails the run at once, without retries."""
    try:
        unknown = sorted(set(_conf(context)) - set(RUN_PARAMS))
        if unknown:
            raise SettingsError(
                f"trigger conf keys {unknown} are not params of this DAG (params: {', '.join(RUN_PARAMS)}); "
                f"other settings belong in the Variable {SETTINGS_VARIABLE!r}")
        resolved = plan_run(context["params"], Variable.get(SETTINGS_VARIABLE, default=None), os.environ,
                            context.get("data_interval_start"), context.get("data_interval_end"))
    except SettingsError as exc:
        raise AirflowFailException(str(exc)) from None
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
    jobs: list[AnalyticsJob] = []
    failure, retryable = None, True
    try:
        jobs = plan_analytics_jobs(resolved.settings, resolved.interval)
    except (UnknownWebsiteError, NoWebsiteError, UmamiCredentialsError, UmamiConfigError, AnalyticsPlanError) as exc:
        failure, retryable = str(exc), False
    except UmamiError as exc:
        failure = f"the websites could not be listed: {exc}"
    plan = PlanResult(website_ids=[job.website_id for job in jobs], error=failure)
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


def record_status(run: dict[str, Any] | None, context: Mapping[str, Any], *, alias: AssetAlias,
                  asset: Asset) -> dict[str, Any]:
    """Stage 3: write the SystemConfig status and emit ``asset`` when users changed, a partial run included.

    It succeeds whatever the stages did (Airflow emits a task's asset events only when it succeeds); its result
    tells :func:`check_run` whether to fail the run, and the alerts what happened."""
    from umami_sync.stages.status import run_result, summarise

    if run is None:
        raise AirflowFailException("the run was never planned (see plan_run); nothing to record")
    resolved = RunPlan.model_validate(run)
    results = upstream_results(context)
    sessions = next((r for r in results if isinstance(r, SessionSyncResult)), None)
    plan = next((r for r in results if isinstance(r, PlanResult)), None)
    analytics = [r for r in results if isinstance(r, AnalyticsResult)]
    report = summarise(
        str(context["run_id"]), resolved.interval, sessions, analytics,
        expected_websites=plan.website_ids if plan else None,
        problems=None if plan and not plan.error else [
            f"analytics could not be planned: {plan.error}" if plan else "analytics could not be planned"],
    )
    modified = {"sessions": sessions.modified if sessions else 0, "analytics": sum(a.modified for a in analytics)}
    changes = {"sessions": sessions.changes if sessions else 0, "analytics": sum(a.changes for a in analytics)}
    drops: list[Drop] = []
    if resolved.settings.dry_run:
        log.info("dry run: the status document is not written and no asset event is emitted")
    else:
        drops = write_status(resolved.settings, report)
        if any(modified.values()):
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


def check_run(status: dict[str, Any]) -> None:
    """End the run: fail it (without retries) when ``record_status`` found a stage or website that failed."""
    result = StatusResult.model_validate(status)
    if not result.succeeded:
        raise AirflowFailException(result.failure or f"run {result.status}")

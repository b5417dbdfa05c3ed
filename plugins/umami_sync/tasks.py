"""The bodies of the DAG's tasks: Airflow context in, stage calls, figures out through XCom.

Each stage task stores its figures once, under the XCom key ``result``, before it decides whether to fail
(so the status task sees them for failed tasks too), and returns nothing.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from airflow.sdk import Variable
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from umami_sync.results import AnalyticsResult, SessionSyncResult
from umami_sync.runs import RUN_PARAMS, RunPlan, plan_run
from umami_sync.settings import SETTINGS_VARIABLE, SettingsError
from umami_sync.stages.analytics import AnalyticsJob, UnknownWebsiteError, plan_analytics_jobs, sync_analytics_job
from umami_sync.stages.sessions import sync_sessions
from umami_sync.stages.status import RunStatus, describe_failures, summarise, write_status
from umami_sync.umami.errors import UmamiCredentialsError, UmamiError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import Asset, AssetAlias

log = logging.getLogger(__name__)

RESULT_KEY = "result"
SESSION_TASK = "session_sync"
PLAN_TASK = "plan_analytics"
ANALYTICS_TASK = "analytics_sync"


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


def _finish(context: Mapping[str, Any], result: SessionSyncResult | AnalyticsResult, failure: str | None, *,
            retryable: bool = True) -> None:
    context["ti"].xcom_push(key=RESULT_KEY, value=result.model_dump(mode="json"))
    if failure:
        raise (AirflowException if retryable else AirflowFailException)(failure)


def session_sync(run: dict[str, Any], context: Mapping[str, Any]) -> None:
    """Stage 1; fails (so Airflow retries) after writing everything else when a batch failed."""
    resolved = RunPlan.model_validate(run)
    result = sync_sessions(resolved.settings, resolved.interval)
    failure = None if result.succeeded else \
        f"session sync: {result.error or f'{result.failed} changes failed: ' + '; '.join(result.errors)}"
    _finish(context, result, failure)


def plan_analytics(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The mapped jobs of stage 2; a configured website id Umami does not show, or refused credentials,
    fail the run at once."""
    resolved = RunPlan.model_validate(run)
    try:
        jobs = plan_analytics_jobs(resolved.settings, resolved.interval)
    except (UnknownWebsiteError, UmamiCredentialsError) as exc:
        raise AirflowFailException(str(exc)) from None
    except UmamiError as exc:
        raise AirflowException(f"the websites could not be listed: {exc}") from None
    return [job.model_dump(mode="json") for job in jobs]


def analytics_sync(run: dict[str, Any], job: dict[str, Any], context: Mapping[str, Any]) -> None:
    """Stage 2 for one website and window; fails (so Airflow retries) when anything went wrong."""
    resolved, website = RunPlan.model_validate(run), AnalyticsJob.model_validate(job)
    context["website_label"] = website.label  # type: ignore[index]  # read by map_index_template
    result = sync_analytics_job(resolved.settings, website, interval=resolved.interval)
    failure = None if result.succeeded else f"website {website.label}: {result.error or '; '.join(result.errors)}"
    _finish(context, result, failure, retryable=result.retryable)


def record_status(run: dict[str, Any] | None, context: Mapping[str, Any], *, alias: AssetAlias,
                  asset: Asset) -> dict[str, Any]:
    """Stage 3: write the SystemConfig status, emit ``asset`` when users changed, then fail the run (without
    retries of this task) if any stage failed."""
    if run is None:
        raise AirflowFailException("the run was never planned (see plan_run); nothing to record")
    resolved = RunPlan.model_validate(run)
    ti = context["ti"]
    session_figures = ti.xcom_pull(task_ids=SESSION_TASK, key=RESULT_KEY)
    analytics_figures = [f for f in ti.xcom_pull(task_ids=[ANALYTICS_TASK], key=RESULT_KEY) or [] if f]
    jobs = ti.xcom_pull(task_ids=PLAN_TASK)
    sessions = SessionSyncResult.model_validate(session_figures) if session_figures else None
    analytics = [AnalyticsResult.model_validate(figures) for figures in analytics_figures]
    report = summarise(
        str(context["run_id"]), resolved.interval, sessions, analytics,
        expected_websites=[job["website_id"] for job in jobs] if jobs is not None else None,
        problems=None if jobs is not None else ["analytics could not be planned (see plan_analytics)"],
    )
    modified = {"sessions": sessions.modified if sessions else 0, "analytics": sum(a.modified for a in analytics)}
    changes = {"sessions": sessions.changes if sessions else 0, "analytics": sum(a.changes for a in analytics)}
    if resolved.settings.dry_run:
        log.info("dry run: the status document is not written and no asset event is emitted")
    else:
        write_status(resolved.settings, report)
        if any(modified.values()):
            context["outlet_events"][alias].add(asset, extra={
                "dataIntervalStart": resolved.interval.start.isoformat(),
                "dataIntervalEnd": resolved.interval.end.isoformat(), "modifiedUsers": modified})
    log.info("run %s: %s, %d websites, %d failed, modified %s, changes %s%s", report.run_id, report.status,
             len(report.websites), sum(not o.succeeded for o in report.websites.values()), modified, changes,
             " (dry run: what a real run would send)" if resolved.settings.dry_run else "")
    if report.status is not RunStatus.SUCCESS:  # recorded: retrying this task would record the same again
        raise AirflowFailException(describe_failures(report))
    return {"status": str(report.status), "websites": len(report.websites), "modified": modified, "changes": changes}

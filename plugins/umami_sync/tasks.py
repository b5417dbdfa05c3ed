"""The bodies of the DAG's tasks: Airflow context in, stage calls, figures out through XCom.

Each stage task pushes its figures under the XCom key ``result`` before it decides whether to fail,
so the status task sees them for failed tasks too.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from airflow.sdk import Variable
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from umami_sync.results import AnalyticsResult, SessionSyncResult
from umami_sync.runs import RunPlan, plan_run
from umami_sync.settings import SETTINGS_VARIABLE, SettingsError
from umami_sync.stages.analytics import AnalyticsJob, plan_analytics_jobs, sync_analytics_job
from umami_sync.stages.sessions import sync_sessions
from umami_sync.stages.status import RunStatus, describe_failures, summarise, write_status

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

RESULT_KEY = "result"
SESSION_TASK = "session_sync"
PLAN_TASK = "plan_analytics"
ANALYTICS_TASK = "analytics_sync"


def plan(context: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve the run's settings and interval; a bad setting fails the run at once, without retries."""
    try:
        resolved = plan_run(context["params"], Variable.get(SETTINGS_VARIABLE, default=None), os.environ,
                            context.get("data_interval_start"), context.get("data_interval_end"))
    except SettingsError as exc:
        raise AirflowFailException(str(exc)) from None
    settings = resolved.settings
    log.info("run plan: interval %s..%s, websites %s, dry run %s", resolved.interval_start.isoformat(),
             resolved.interval_end.isoformat(), ", ".join(settings.website_ids) or "discovered", settings.dry_run)
    return resolved.model_dump(mode="json")


def _finish(context: Mapping[str, Any], result: SessionSyncResult | AnalyticsResult,
            failure: str | None) -> dict[str, Any]:
    figures = result.model_dump(mode="json")
    context["ti"].xcom_push(key=RESULT_KEY, value=figures)
    if failure:
        raise AirflowException(failure)
    return figures


def session_sync(run: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Stage 1; fails (so Airflow retries) after writing everything else when a batch failed."""
    resolved = RunPlan.model_validate(run)
    result = sync_sessions(resolved.settings, resolved.interval)
    failure = None if result.succeeded else f"session sync: {result.failed} updates failed: {'; '.join(result.errors)}"
    return _finish(context, result, failure)


def plan_analytics(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The mapped jobs of stage 2."""
    resolved = RunPlan.model_validate(run)
    return [job.model_dump(mode="json") for job in plan_analytics_jobs(resolved.settings, resolved.interval)]


def analytics_sync(run: dict[str, Any], job: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Stage 2 for one website and window; fails (so Airflow retries) when anything went wrong."""
    resolved, website = RunPlan.model_validate(run), AnalyticsJob.model_validate(job)
    context["website_label"] = website.label  # type: ignore[index]  # read by map_index_template
    result = sync_analytics_job(resolved.settings, website)
    failure = None if result.succeeded else f"website {website.label}: {result.error or '; '.join(result.errors)}"
    return _finish(context, result, failure)


def record_status(run: dict[str, Any] | None, context: Mapping[str, Any]) -> dict[str, Any]:
    """Stage 3: write the SystemConfig status, then fail the run if any stage failed."""
    if run is None:
        raise AirflowFailException("the run was never planned (see plan_run); nothing to record")
    resolved = RunPlan.model_validate(run)
    ti = context["ti"]
    session_figures = ti.xcom_pull(task_ids=SESSION_TASK, key=RESULT_KEY)
    analytics_figures = [f for f in ti.xcom_pull(task_ids=[ANALYTICS_TASK], key=RESULT_KEY) or [] if f]
    jobs = ti.xcom_pull(task_ids=PLAN_TASK)
    report = summarise(
        str(context["run_id"]), resolved.interval,
        SessionSyncResult.model_validate(session_figures) if session_figures else None,
        [AnalyticsResult.model_validate(figures) for figures in analytics_figures],
        expected_websites=[job["website_id"] for job in jobs] if jobs is not None else None,
        problems=None if jobs is not None else ["analytics could not be planned (see plan_analytics)"],
    )
    if resolved.settings.dry_run:
        log.info("dry run: the status document is not written")
    else:
        write_status(resolved.settings, report)
    log.info("run %s: %s, %d websites, %d failed", report.run_id, report.status, len(report.websites),
             sum(not o.succeeded for o in report.websites.values()))
    if report.status is not RunStatus.SUCCESS:
        raise AirflowException(describe_failures(report))
    return {"status": str(report.status), "websites": len(report.websites)}

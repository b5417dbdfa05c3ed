"""
### umami_mongo_sync

Keeps the application's MongoDB **users** enriched with what Umami knows about their sessions, one
data interval (a UTC day) per run.

| task | what it does |
| --- | --- |
| `plan_run` | resolves the settings (Variable `umami_sync_settings`, trigger form) and the interval |
| `session_sync` | identified sessions in Umami's database (`umami_db`) -> `session_id` on users (`users_mongo`) |
| `plan_analytics` | the websites (setting `website_ids`, or discovered through `umami_api`) and sub-windows |
| `analytics_sync` | one mapped task per website (and sub-window): its sessions -> `umamiAnalytics` on users |
| `record_status` | runs whatever happened; records the run in `systemconfigs`; fails the run if a stage failed |

Re-running an interval is safe: updates are guarded (newer data is never replaced by older), users are
never created, deleted users (`isDeleted: true`) are never touched. Trigger with **dry_run** to see what
would change, or with **date_from**/**date_to** to re-sync whole days. See the README for settings.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import (
    Asset,
    AssetAlias,
    CronDataIntervalTimetable,
    Param,
    TriggerRule,
    dag,
    get_current_context,
    task,
)

ENRICHED_USERS = Asset(name="umami_enriched_users", group="umami_sync")
"""Updated when a real run changed users (never by a dry run); schedule downstream DAGs on it. The event's
extra holds the synced interval and the users modified per stage."""
ENRICHED_USERS_EVENTS = AssetAlias(name="umami_enriched_users_events", group="umami_sync")
"""What ``record_status`` emits ``ENRICHED_USERS`` through, so that it can emit nothing."""
WEBSITE_ID_HELP = ("Umami website ids (UUIDs) to sync; empty: every website the connection's user sees. "
                   "Find one in Umami under Settings > Websites > Edit, or in the address of its dashboard.")


@dag(
    dag_id="umami_mongo_sync",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "data-engineering",
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=2),
    },
    tags=["umami", "mongodb", "sync"],
    doc_md=__doc__,
    params={
        "website_ids": Param([], type=["array", "null"], items={"type": "string"}, title="Websites",
                             description=WEBSITE_ID_HELP),
        "dry_run": Param(False, type=["boolean", "null"], title="Dry run",
                         description="Read everything and report what a real run would change; write nothing."),
        "date_from": Param(None, type=["null", "string"], format="date", title="Re-sync from",
                           description="First day (UTC) to sync instead of the run's interval."),
        "date_to": Param(None, type=["null", "string"], format="date", title="Re-sync to",
                         description="Last day (UTC, inclusive) to sync; defaults to 'Re-sync from'."),
    },
)
def umami_mongo_sync() -> None:
    """Wire the stages; the logic lives in the ``umami_sync`` package (imported when a task runs)."""

    @task
    def plan_run() -> dict[str, Any]:
        from umami_sync import tasks

        return tasks.plan(get_current_context())

    @task
    def session_sync(run: dict[str, Any]) -> None:
        from umami_sync import tasks

        tasks.session_sync(run, get_current_context())

    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)  # after session_sync, even if it failed
    def plan_analytics(run: dict[str, Any]) -> list[dict[str, Any]]:
        from umami_sync import tasks

        return tasks.plan_analytics(run, get_current_context())

    @task(map_index_template="{{ website_label }}", max_active_tis_per_dagrun=4)
    def analytics_sync(run: dict[str, Any], job: dict[str, Any]) -> None:
        from umami_sync import tasks

        tasks.analytics_sync(run, job, get_current_context())

    @task(trigger_rule=TriggerRule.ALL_DONE, outlets=[ENRICHED_USERS_EVENTS])
    def record_status(run: dict[str, Any] | None = None) -> dict[str, Any]:
        from umami_sync import tasks

        return tasks.record_status(run, get_current_context(), alias=ENRICHED_USERS_EVENTS, asset=ENRICHED_USERS)

    run = plan_run()
    sessions = session_sync(run)
    jobs = plan_analytics(run)
    status = record_status(run)
    sessions >> jobs
    # record_status reads the result of every task upstream of it
    [sessions, jobs, analytics_sync.partial(run=run).expand(job=jobs)] >> status


umami_mongo_sync()

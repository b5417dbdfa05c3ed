"""
### umami_mongo_sync

Keeps the application's MongoDB **users** enriched with what Umami knows about their sessions, one
data interval (a UTC day) per run.

| task | what it does |
| --- | --- |
| `plan_run` | resolves the settings (Variable `umami_sync_settings`, trigger form) and the interval |
| `session_sync` | identified sessions from `umami_db` (or `umami_api`: `identities_from`) -> `session_id` on users |
| `plan_analytics` | the websites (setting `website_ids`, or discovered through `umami_api`) and sub-windows |
| `analytics_sync` | one mapped task per website (and sub-window): its sessions -> `umamiAnalytics` on users |
| `record_status` | runs whatever happened; records the run (never planned too) in `systemconfigs`; emits the asset |
| `check_run` | fails the run if a stage failed (after the asset event went out) |

Alerts (e-mail, Slack, any notifier) go where the Variable's `alerts` says, read when they fire (or, when it cannot
be read, to the `[umami_sync] alerts` option's): a red run, a green run whose sessions dropped far below the usual
or that skipped invalid rows, and a run late for the `[umami_sync] deadline` option.

Re-running an interval is safe: updates are guarded (newer data is never replaced by older), users are
never created, deleted users (`isDeleted: true`) are never touched. Trigger with **dry_run** to see what
would change, or with **date_from**/**date_to** to re-sync whole days. See the README for settings.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
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

from umami_sync.alerts import late_run_deadline, notify_run
from umami_sync.api_tasks import ANALYTICS_TASKS, PLAN_TASKS, SESSION_TASKS, api_pool, api_task_bound

ENRICHED_USERS = Asset(name="umami_enriched_users", group="umami_sync")
"""Updated when a real run changed users (never by a dry run), a partial run too; schedule downstream DAGs on it.
The event's extra holds the synced interval, the users modified per stage and how the run ended."""
ENRICHED_USERS_EVENTS = AssetAlias(name="umami_enriched_users_events", group="umami_sync")
"""What ``record_status`` emits ``ENRICHED_USERS`` through, so that it can emit nothing."""
# Lineage (what each task reads and writes), in the URI forms the OpenLineage provider turns into datasets. The
# connection ids stand for host and database: reading the connections here would be I/O at parse time.
UMAMI_TABLES = {table: Asset(f"postgres://umami_db/umami_db/public/{table}", group="umami_sync_lineage")
                for table in ("session", "session_data", "session_link", "website_event")}
UMAMI_API = Asset("https://umami_api/api/websites", group="umami_sync_lineage")
USERS = Asset("mongodb://users_mongo/users_mongo/users", group="umami_sync_lineage")
STATUS = Asset("mongodb://users_mongo/users_mongo/systemconfigs", group="umami_sync_lineage")
STATUS_TASK = "record_status"
API_POOL = api_pool() or "default_pool"  # Airflow's [umami_sync] api_pool option (configuration, no I/O), or its own
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
    on_failure_callback=partial(notify_run, status_task=STATUS_TASK),  # resolves the Variable when it fires
    on_success_callback=partial(notify_run, status_task=STATUS_TASK),  # (a green run only when it dropped)
    deadline=late_run_deadline(),  # Airflow's [umami_sync] deadline option: configuration, no I/O
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

    # The tasks that call Umami's API run at most this many at once across all runs, back-fills included, the rate
    # limit shared among them; or one at a time in the pool of [umami_sync] api_pool (umami_sync.api_tasks says why).
    # session_sync calls it when it reads identities through the API (identities_from); session_link where the server
    # has it (Umami 3.3+).
    @task(inlets=[UMAMI_TABLES["session"], UMAMI_TABLES["session_data"], UMAMI_TABLES["session_link"], UMAMI_API],
          outlets=[USERS], pool=API_POOL,
          max_active_tis_per_dag=api_task_bound(SESSION_TASKS))
    def session_sync(run: dict[str, Any]) -> None:
        from umami_sync import tasks

        tasks.session_sync(run, get_current_context())

    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, inlets=[UMAMI_API],  # after session_sync, failed too
          pool=API_POOL, max_active_tis_per_dag=api_task_bound(PLAN_TASKS))
    def plan_analytics(run: dict[str, Any]) -> list[dict[str, Any]]:
        from umami_sync import tasks

        return tasks.plan_analytics(run, get_current_context())

    @task(map_index_template="{{ website_label }}", pool=API_POOL,
          max_active_tis_per_dag=api_task_bound(ANALYTICS_TASKS),
          inlets=[UMAMI_API, *UMAMI_TABLES.values()], outlets=[USERS])
    def analytics_sync(run: dict[str, Any], job: dict[str, Any]) -> None:
        from umami_sync import tasks

        tasks.analytics_sync(run, job, get_current_context())

    @task(task_id=STATUS_TASK, trigger_rule=TriggerRule.ALL_DONE, outlets=[ENRICHED_USERS_EVENTS, STATUS])
    def record_status(run: dict[str, Any] | None = None) -> dict[str, Any]:
        from umami_sync import tasks

        return tasks.record_status(run, get_current_context(), alias=ENRICHED_USERS_EVENTS, asset=ENRICHED_USERS)

    @task(retries=0)
    def check_run(status: dict[str, Any]) -> None:
        from umami_sync import tasks

        tasks.check_run(status)

    run = plan_run()
    sessions = session_sync(run)
    jobs = plan_analytics(run)
    status = record_status(run)
    check_run(status)
    sessions >> jobs
    # record_status reads the result of every task upstream of it
    [sessions, jobs, analytics_sync.partial(run=run).expand(job=jobs)] >> status


umami_mongo_sync()

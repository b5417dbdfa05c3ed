"""How many of the DAG's tasks may call Umami's API at once, and each one's share of the rate limit.

``rate_limit_calls`` per ``rate_limit_period_seconds`` is a limit for the whole DAG (Umami Cloud counts calls per API
key: 50 per 15 s): the tasks of a run, and of back-fills running beside it, stay within it together. The DAG bounds
every task that calls the API with ``max_active_tis_per_dag``, which Airflow's scheduler applies across all of the
DAG's runs, back-fills included: at most :data:`SESSION_TASKS` ``session_sync`` (identities read through the API
when no database is read), :data:`PLAN_TASKS` ``plan_analytics`` (discovery and the row counts of
``sub_windows: auto``) and :data:`ANALYTICS_TASKS` ``analytics_sync`` task instances run at once. Each of them sends at
most its share, :func:`task_share`, in any window of the period, so that together they never send more than the
limit.

Why shares and not an Airflow pool: a DAG cannot create a pool when it is parsed, and a task whose pool does not
exist is never scheduled (Airflow 3.3's scheduler logs "Tasks using non-existent pool ... will not be scheduled"
and leaves it queued, the run never ends): a default that works only after the user made a pool is a trap. The
cost of shares: a task running alone uses only its share of the allowance.

This module imports nothing, so that the DAG file can read these numbers when it is parsed.
"""

from __future__ import annotations

SESSION_TASKS = 1
"""``session_sync`` task instances running at once, across all runs (it calls the API when it reads identities through
it, ``identities_from``)."""
PLAN_TASKS = 1
"""``plan_analytics`` task instances running at once, across all runs."""
ANALYTICS_TASKS = 4
"""``analytics_sync`` task instances running at once, across all runs (and all of a run's websites and windows)."""
API_TASKS = SESSION_TASKS + PLAN_TASKS + ANALYTICS_TASKS
"""The most tasks that call Umami's API at once: the rate limit is shared among as many."""


def task_share(calls: int | None) -> int | None:
    """One task's part of ``calls`` per period (None: no limit). The settings keep ``calls`` at least
    :data:`API_TASKS`, so that every task may send one."""
    return None if calls is None else calls // API_TASKS

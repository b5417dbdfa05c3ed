"""How many of the DAG's tasks may call Umami's API at once, and each one's share of the rate limit.

``rate_limit_calls`` per ``rate_limit_period_seconds`` is a limit for the whole DAG (Umami Cloud counts calls per API
key: 50 per 15 s): the tasks of a run, and of back-fills running beside it, stay within it together. The DAG bounds
every task that calls the API with ``max_active_tis_per_dag``, which Airflow's scheduler applies across all of the
DAG's runs, back-fills included: at most :data:`SESSION_TASKS` ``session_sync`` (identities read through the API
when no database is read), :data:`PLAN_TASKS` ``plan_analytics`` (discovery and the row counts of
``sub_windows: auto``) and :data:`ANALYTICS_TASKS` ``analytics_sync`` task instances run at once. Each of them sends at
most its share, :func:`task_share`, in any window of the period, so that together they never send more than the
limit.

Why shares by default and not an Airflow pool: a DAG cannot create a pool when it is parsed, and a task whose pool
does not exist is never scheduled (Airflow 3.3's scheduler logs "Tasks using non-existent pool ... will not be
scheduled" and leaves it queued, the run never ends): a default that works only after the user made a pool is a
trap. The cost of shares: a task running alone uses only its share of the allowance. Where the limit is what bounds
a run (Umami Cloud, identities read through the API), the user may create a pool of ONE slot and name it in
Airflow's option ``[umami_sync] api_pool`` (:data:`API_POOL_OPTION`): every task that calls the API then runs in
that pool, so one at a time across all runs, and sends up to the whole limit.

This module imports nothing when it is imported (Airflow's configuration only when :func:`api_pool` is called), so
that the DAG file can read these numbers when it is parsed.
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


API_POOL_OPTION = ("umami_sync", "api_pool")
"""Airflow's option (env ``AIRFLOW__UMAMI_SYNC__API_POOL``) naming a pool of one slot for every task that calls the
API; unset: shares."""


def api_pool() -> str | None:
    """The pool of :data:`API_POOL_OPTION`, or None (read from Airflow's configuration: no I/O, so the DAG file may
    call it when it is parsed, and a task when it runs)."""
    from airflow.sdk import conf

    return (conf.get(*API_POOL_OPTION, fallback="") or "").strip() or None


def api_task_bound(tasks: int) -> int | None:
    """The ``max_active_tis_per_dag`` of a task calling the API: at most ``tasks`` instances at once across all runs,
    or no bound of its own in the pool of :data:`API_POOL_OPTION` (which runs one task at a time)."""
    return None if api_pool() else tasks


def task_share(calls: int | None, *, pooled: bool) -> int | None:
    """One task's part of ``calls`` per period (None: no limit): all of it in a pool of one slot, else its share.
    The settings keep ``calls`` at least :data:`API_TASKS`, so that every task may send one."""
    if calls is None:
        return None
    return calls if pooled else calls // API_TASKS

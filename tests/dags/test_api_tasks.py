"""The DAG bounds every task that calls Umami's API across all its runs, as the rate limit's shares assume."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

from umami_sync import api_tasks

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS)).dags["umami_mongo_sync"]


def test_the_tasks_that_call_the_api_run_at_most_as_many_at_once_as_the_rate_limit_is_shared_among(dag: Any) -> None:
    callers = {task.task_id: task for task in dag.tasks
               if any(getattr(inlet, "uri", "").startswith("https://umami_api/") for inlet in task.inlets)}

    assert {task_id: task.max_active_tis_per_dag for task_id, task in callers.items()} == {
        "session_sync": api_tasks.SESSION_TASKS, "plan_analytics": api_tasks.PLAN_TASKS,
        "analytics_sync": api_tasks.ANALYTICS_TASKS}
    assert sum(task.max_active_tis_per_dag for task in callers.values()) == api_tasks.API_TASKS
    # across runs (back-fills beside the scheduled run), not per run: no pool the user would have to create first
    assert all(task.pool == "default_pool" for task in callers.values())


def test_the_share_module_imports_nothing_the_dag_would_load_when_parsed() -> None:
    tree = ast.parse(inspect.getsource(api_tasks))
    imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]  # at import time
    assert [node.module for node in imports if isinstance(node, ast.ImportFrom)] == ["__future__"]
    assert len(imports) == 1


def test_in_the_pool_of_the_configuration_every_api_task_runs_there_unbounded_by_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """[umami_sync] api_pool (a pool of one slot the user made): the tasks that call the API run one at a time across
    all runs, each with the whole limit; without it, no pool is needed (shares)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__UMAMI_SYNC__API_POOL", "umami_api")
    pooled = DagBag(dag_folder=str(DAGS)).dags["umami_mongo_sync"]

    callers = [task for task in pooled.tasks
               if any(getattr(inlet, "uri", "").startswith("https://umami_api/") for inlet in task.inlets)]
    assert {task.task_id: (task.pool, task.max_active_tis_per_dag) for task in callers} == {
        "session_sync": ("umami_api", None), "plan_analytics": ("umami_api", None),
        "analytics_sync": ("umami_api", None)}
    assert {task.pool for task in pooled.tasks if task not in callers} == {"default_pool"}

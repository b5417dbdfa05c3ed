"""What a task imports: only what its own work needs. Every task, each mapped one too, runs in a process of its own
that pays for its imports (the HTTP client alone, with aiohttp, weighs about as much as stage 1's own work on a
small day). The steps run one after another in one fresh interpreter, which says what each step added."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HTTP = {"airflow.providers.http.hooks.http", "requests", "aiohttp", "umami_sync.umami.api"}
DATABASES = {"airflow.providers.postgres.hooks.postgres", "airflow.providers.mongo.hooks.mongo", "pymongo",
             "psycopg"}
STAGES = {"umami_sync.stages.sessions", "umami_sync.stages.analytics.jobs", "umami_sync.stages.analytics.runner",
          "umami_sync.stages.status"}
STEPS = {
    "the task bodies": "from umami_sync import tasks",
    "check_run": "tasks.check_run({'stage': 'status', 'run_id': 'r', 'status': 'success', 'days': '2026-11-27'})",
    "stage 1": "\n".join((
        "from datetime import UTC, datetime",
        "from umami_sync.settings import SyncSettings",
        "from umami_sync.windows import DataInterval",
        "day = DataInterval(datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC))",
        "result = tasks.sync_sessions(SyncSettings(mongo_conn_id='umami_sync_no_such_connection'), day)",
        "assert 'umami_sync_no_such_connection' in (result.error or ''), result.error")),
}


@pytest.fixture(scope="module")
def loaded() -> dict[str, set[str]]:
    """The modules loaded after each of :data:`STEPS`, run in that order in one fresh interpreter."""
    script = "import json, sys\n" + "".join(f"{code}\nprint(json.dumps(sorted(sys.modules)))\n"
                                              for code in STEPS.values())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / folder) for folder in ("plugins", "dags")),
           # Umami's database is configured (never reached: the missing MongoDB connection ends stage 1 first)
           "AIRFLOW_CONN_UMAMI_DB": json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 9,
                                                "schema": "umami"})}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return {step: set(json.loads(line)) for step, line in zip(STEPS, done.stdout.splitlines()[-len(STEPS):],
                                                               strict=True)}


def test_the_task_bodies_import_no_client_and_no_stage_until_a_task_runs(loaded: dict[str, set[str]]) -> None:
    assert loaded["the task bodies"] & (HTTP | DATABASES | STAGES) == set()


def test_ending_the_run_reads_the_status_result_alone(loaded: dict[str, set[str]]) -> None:
    assert loaded["check_run"] & (HTTP | DATABASES | STAGES) == set()


def test_stage_one_imports_its_databases_and_no_http_client_nor_another_stage(loaded: dict[str, set[str]]) -> None:
    assert {"umami_sync.stages.sessions", "airflow.providers.postgres.hooks.postgres",
            "airflow.providers.mongo.hooks.mongo"} <= loaded["stage 1"]
    assert loaded["stage 1"] & (HTTP | STAGES - {"umami_sync.stages.sessions"}) == set()


def test_identities_read_through_the_api_load_no_database_driver() -> None:
    """Umami Cloud's stage 1 (``identities_from: api``) builds identity rows without Umami's PostgreSQL."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins")}
    done = subprocess.run(
        [sys.executable, "-c", "import json, sys\nimport umami_sync.umami.identities_api\n"
                               "print(json.dumps(sorted(sys.modules)))"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(json.loads(done.stdout.splitlines()[-1])) & {"psycopg", "airflow.providers.postgres.hooks.postgres",
                                                            "umami_sync.umami.db"} == set()

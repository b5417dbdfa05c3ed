"""A real Airflow 3 on loopback for the demo's UI mode (``python -m local_stack.demo --ui``).

:class:`LocalAirflow` runs Airflow's four components (``api-server``, ``scheduler``, ``dag-processor``,
``triggerer``) from this virtualenv in a prepared ``AIRFLOW_HOME`` (SQLite metadata database, LocalExecutor),
each in its own process group with its output in ``<home>/logs/<component>.log``, and stops them all on
exit. The simple auth manager gets one known login (:data:`USERNAME` / :data:`PASSWORD`), which works for
the UI and for the REST API (:class:`AirflowApi`: a token from ``POST /auth/token``, then ``/api/v2``).

Scheduled runs are switched off (``[scheduler] use_job_schedule``): only the runs you trigger run.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import requests

from local_stack._proc import wait_until

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

DAG_ID = "umami_mongo_sync"
USERNAME = "admin"
PASSWORD = "admin"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
"""Started in this order, all at once (then :meth:`LocalAirflow.wait_ready` waits for all of them)."""
STOP_ORDER = ("scheduler", "triggerer", "dag-processor", "api-server")
"""The scheduler first (no new tasks), the api-server last (running tasks report to its execution API)."""
FINISHED_STATES = frozenset({"success", "failed"})
_COMPONENT_ARGS: dict[str, tuple[str, ...]] = {
    "scheduler": ("--skip-serve-logs",),  # the api-server reads task logs from this home's files
    "triggerer": ("--skip-serve-logs",),
}


class AirflowError(RuntimeError):
    """Airflow did not start, a component died, or a request failed; the message says which and why."""


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file (empty when it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class AirflowApi:
    """A small client of Airflow's REST API (``/api/v2``) with a token of the simple auth manager."""

    def __init__(self, url: str, username: str = USERNAME, password: str = PASSWORD, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.http = requests.Session()

    def login(self) -> str:
        """Get a token (``POST /auth/token``) and send it with every later request; returns it."""
        reply = self.http.post(f"{self.url}/auth/token", json={"username": self.username, "password": self.password},
                               timeout=self.timeout)
        if reply.status_code not in (200, 201):
            raise AirflowError(f"POST /auth/token as {self.username!r}: HTTP {reply.status_code} {reply.text[:200]}")
        token: str = reply.json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        return token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """``method`` on ``/api/v2/<path>``; the decoded JSON body, or :class:`AirflowError` on a non-2xx reply."""
        reply = self.http.request(method, f"{self.url}/api/v2/{path.lstrip('/')}", timeout=self.timeout, **kwargs)
        if not reply.ok:
            raise AirflowError(f"{method} /api/v2/{path.lstrip('/')}: HTTP {reply.status_code} {reply.text[:300]}")
        return reply.json() if reply.content else None

    def get(self, path: str, **params: Any) -> Any:
        """``GET /api/v2/<path>?<params>``."""
        return self.request("GET", path, params=params or None)

    def trigger(self, dag_id: str = DAG_ID, *, conf: Mapping[str, Any] | None = None,
                logical_date: str | None = None) -> str:
        """Trigger a run (as the UI's Trigger button does); returns its run id."""
        run = self.request("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": conf or {}})
        run_id: str = run["dag_run_id"]
        return run_id

    def run_state(self, run_id: str, dag_id: str = DAG_ID) -> str:
        """The run's state (``queued``, ``running``, ``success``, ``failed``)."""
        state: str = self.get(f"dags/{dag_id}/dagRuns/{run_id}")["state"]
        return state

    def wait_for_run(self, run_id: str, dag_id: str = DAG_ID, *, timeout: float = 300) -> str:
        """Poll the run until it has finished, for at most ``timeout`` seconds; returns its final state."""
        deadline = time.monotonic() + timeout
        state = self.run_state(run_id, dag_id)
        while state not in FINISHED_STATES:
            if time.monotonic() > deadline:
                raise AirflowError(f"run {run_id} is still {state} after {timeout:.0f} s")
            time.sleep(1)
            state = self.run_state(run_id, dag_id)
        return state

    def close(self) -> None:
        """Close the HTTP session."""
        self.http.close()


class LocalAirflow:
    """Airflow's components on ``127.0.0.1:port`` for the prepared (migrated) home; all stopped on exit.

    ``env`` is the environment of the ``airflow`` commands that prepared ``home`` (its ``AIRFLOW_HOME``,
    DAG and plugin folders); the server settings are added here.
    """

    def __init__(self, home: Path, env: Mapping[str, str], *, port: int, startup_timeout: float = 180) -> None:
        self.home = home
        self.port = port
        self.username, self.password = USERNAME, PASSWORD
        self.startup_timeout = startup_timeout
        self.env = {**env, **self.server_environment(home, port)}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[BinaryIO] = []

    @property
    def url(self) -> str:
        """The UI's address (the REST API is under ``/api/v2``)."""
        return f"http://127.0.0.1:{self.port}"

    def log_path(self, component: str) -> Path:
        """Where a component's output goes."""
        return self.home / "logs" / f"{component}.log"

    @staticmethod
    def server_environment(home: Path, port: int) -> dict[str, str]:
        """Settings of a one-machine Airflow: LocalExecutor on SQLite, one known login, loopback only."""
        url = f"http://127.0.0.1:{port}"
        return {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",  # user:role
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "simple_auth_manager_passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        }

    def start(self) -> LocalAirflow:
        """Start every component, then wait until all are healthy and the DAG is parsed and unpaused."""
        passwords = Path(self.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
        passwords.write_text(json.dumps({self.username: self.password}) + "\n")
        passwords.chmod(0o600)
        self.log_path("api-server").parent.mkdir(parents=True, exist_ok=True)
        for name in COMPONENTS:
            log = self.log_path(name).open("ab")
            self._logs.append(log)
            self._procs[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", name, *_COMPONENT_ARGS.get(name, ())], env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready()
        return self

    def check_alive(self) -> None:
        """Raise :class:`AirflowError` naming the first component that has exited, with its log's tail."""
        for name, proc in self._procs.items():
            code = proc.poll()
            if code is not None:
                tail = log_tail(self.log_path(name))
                raise AirflowError(f"Airflow {name} exited with code {code}; its log is {self.log_path(name)}"
                                   + (f", ending:\n{tail}" if tail else ""))

    def _health(self) -> dict[str, Any] | None:
        try:
            reply = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5)
            health: dict[str, Any] | None = reply.json() if reply.ok else None
        except (requests.RequestException, ValueError):
            return None
        return health

    def _healthy(self) -> bool:
        self.check_alive()
        health = self._health()
        return health is not None and all(
            (health.get(part) or {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"))

    def wait_ready(self) -> None:
        """Wait (bounded) for healthy components and a parsed, unpaused DAG; a DAG import error is raised."""
        deadline = time.monotonic() + self.startup_timeout
        try:
            wait_until(self._healthy, timeout=self.startup_timeout, what="Airflow's components")
        except TimeoutError as exc:
            raise AirflowError(f"{exc} (health: {self._health()}); logs in {self.log_path('api-server').parent}") \
                from None
        api = self.api()
        try:
            while True:
                self.check_alive()
                errors = api.get("importErrors")["import_errors"]
                if errors:
                    raise AirflowError(f"the DAG folder has import errors: {errors[0]['stack_trace'][-600:]}")
                with contextlib.suppress(AirflowError):
                    dag = api.get(f"dags/{DAG_ID}")
                    if not dag["is_paused"]:
                        return
                    api.request("PATCH", f"dags/{DAG_ID}", json={"is_paused": False})
                if time.monotonic() > deadline:
                    raise AirflowError(f"the DAG {DAG_ID} did not appear within {self.startup_timeout:.0f} s; "
                                       f"see {self.log_path('dag-processor')}")
                time.sleep(0.5)
        finally:
            api.close()

    def api(self) -> AirflowApi:
        """A logged-in REST client (close it when done)."""
        api = AirflowApi(self.url, self.username, self.password)
        api.login()
        return api

    def stop(self, timeout: float = 30) -> None:
        """Stop every component (SIGTERM to its process group, SIGKILL after ``timeout`` seconds)."""
        for name in STOP_ORDER:
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # what the component left behind in its group
        self._procs.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> LocalAirflow:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

"""The demo's UI mode end to end: ``python -m local_stack.demo --ui`` as a person starts it.

One real Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor) over the demo's services, on
free ports, for the whole module: a run triggered through the REST API with a conf, its mapped tasks and XCom
figures, a failed run's alert, a run whose mapped task is killed (SIGKILL) and one whose mapped task is marked
failed while it runs, and Ctrl-C stopping everything. Every wait is bounded; the fixture kills whatever is left if
a test fails. The demo runs without retries, with each website's day in two tasks (``sub_windows: 2``) and one
website's list pages slowed down, so that its tasks run long enough to be killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import psycopg
import pymongo
import pytest
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from local_stack._proc import port_open
from local_stack.ui import AirflowApi

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]  # above the bounds below: cleanup runs

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "umami_mongo_sync"
SYNC_DAY = "2026-11-27"
READY_TIMEOUT = 200  # data, `airflow db migrate` and four components on 2 cores: 50 to 90 s
RUN_TIMEOUT = 120  # the run itself: about 20 s
STOP_TIMEOUT = 60  # Ctrl-C to exit: about 10 s
STAGE_TASKS = ("session_sync", "analytics_sync")
SLOW_WEBSITE = "Shop"  # its list pages each wait SLOW_SECONDS: its tasks can be killed while they run
SLOW_SECONDS = 12
PARTS = 2  # sub_windows: a website's day in two mapped tasks


@dataclass
class RunningDemo:
    """The ``--ui`` process and what its banner said."""

    proc: subprocess.Popen[str]
    scratch: Path
    lines: list[str] = field(default_factory=list)
    url: str = ""
    login: tuple[str, str] = ("", "")
    postgres_dsn: str = ""
    mongo: tuple[str, str] = ("", "")
    ports: list[int] = field(default_factory=list)
    children: list[psutil.Process] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def output(self) -> str:
        """Everything the demo printed so far."""
        self._drain()
        return "\n".join(self.lines)

    def _drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while (line := self._queue.get_nowait()) is not None:
                self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first printed line matching ``pattern``, waiting at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            self._drain()
            for line in self.lines[seen:]:
                if match := re.search(pattern, line):
                    return match
            seen = len(self.lines)
            if self.proc.poll() is not None and self._queue.empty():
                pytest.fail(f"the demo exited with {self.proc.returncode} before printing {pattern!r}:\n"
                            f"{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the demo printed no {pattern!r} within {timeout} s:\n{self.output()}")
            time.sleep(0.2)

    def interrupt(self, timeout: float = STOP_TIMEOUT) -> int:
        """Ctrl-C (SIGINT to the demo's process group, as a terminal sends it); its exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def kill_leftovers(self) -> None:
        """Last resort: kill the demo's group, its children and a PostgreSQL left in the scratch folder."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        for child in self.children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        for pid_file in self.scratch.glob("**/postmaster.pid"):
            with contextlib.suppress(ValueError, ProcessLookupError, OSError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)


def _start_demo(home: Path, scratch: Path) -> RunningDemo:
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": os.pathsep.join(["include", "plugins"]),
           "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "local_stack.demo", "--ui", "--no-trigger", "--pg-port", "0", "--mongo-port",
               "0", "--umami-port", "0", "--airflow-port", "0", "--airflow-home", str(home), "--sessions", "600",
               "--identified", "200", "--users", "400", "--no-retries", "--settings",
               json.dumps({"sub_windows": PARTS}), "--slow-website", SLOW_WEBSITE, "--slow-seconds", str(SLOW_SECONDS)]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    demo = RunningDemo(proc, scratch)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            demo._queue.put(line.rstrip("\n"))
        demo._queue.put(None)

    threading.Thread(target=pump, name="demo-output", daemon=True).start()
    return demo


@pytest.fixture(scope="module")
def ui_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    """The running ``--ui`` demo (free ports, a small day of traffic, nothing triggered)."""
    scratch = Path(tempfile.mkdtemp(prefix="umami-ui-test-"))  # the demo's TMPDIR; must end up empty
    scratch.chmod(0o755)  # PostgreSQL's cluster (owned by ``postgres`` when run as root) lives below it
    demo = _start_demo(tmp_path_factory.mktemp("ui") / "airflow", scratch)
    try:
        ready = demo.wait_for(r"== Airflow is ready after \d+ s: (http://127\.0\.0\.1:\d+)/", READY_TIMEOUT)
        demo.url = ready.group(1)
        login = demo.wait_for(r"login: (\S+) / (\S+)$", 5)
        demo.login = (login.group(1), login.group(2))
        banner = demo.output()
        demo.postgres_dsn = re.search(r"\((postgresql://\S+),", banner).group(1)  # type: ignore[union-attr]
        mongo = re.search(r"== MongoDB \((mongodb://\S+), database (\w+)\)", banner)
        assert mongo is not None, banner
        demo.mongo = (mongo.group(1), mongo.group(2))
        demo.ports = [int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", banner)]
        demo.children = psutil.Process(demo.proc.pid).children(recursive=True)
        yield demo
    finally:
        try:
            demo.interrupt()
        except subprocess.TimeoutExpired:
            demo.kill_leftovers()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def api(ui_demo: RunningDemo) -> Iterator[AirflowApi]:
    """A REST client logged in with the login the demo printed (a token from ``POST /auth/token``)."""
    client = AirflowApi(ui_demo.url, *ui_demo.login)
    client.login()
    yield client
    client.close()


@pytest.fixture(scope="module")
def finished_run(api: AirflowApi) -> str:
    """A run triggered with ``{"date_from": SYNC_DAY}``, waited for (bounded); its run id."""
    run_id = api.trigger(DAG_ID, conf={"date_from": SYNC_DAY})
    api.wait_for_run(run_id, DAG_ID, timeout=RUN_TIMEOUT)
    return run_id


def _task_instances(api: AirflowApi, run_id: str) -> list[dict[str, Any]]:
    instances: list[dict[str, Any]] = api.get(f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
                                              limit=100)["task_instances"]
    return instances


def _website_names(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM website WHERE deleted_at IS NULL")}


def test_a_triggered_run_succeeds_with_one_mapped_task_per_website_labelled_by_name(
        api: AirflowApi, finished_run: str, ui_demo: RunningDemo) -> None:
    run = api.get(f"dags/{DAG_ID}/dagRuns/{finished_run}")
    instances = _task_instances(api, finished_run)
    states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in instances}

    assert run["state"] == "success", states
    assert run["conf"] == {"date_from": SYNC_DAY}
    assert set(states.values()) == {"success"}
    labels = sorted(ti["rendered_map_index"] for ti in instances if ti["task_id"] == "analytics_sync")
    names = sorted(_website_names(ui_demo.postgres_dsn))
    assert len(names) == 2  # --websites defaults to 2
    # one mapped task per website and part, labelled by the website's name, day and part ("Docs · 2026-11-27 1/2")
    assert labels == [f"{name} · {SYNC_DAY} {part}/{PARTS}" for name in names for part in range(1, PARTS + 1)]


def _xcom_value(api: AirflowApi, run_id: str, task_id: str, map_index: int, key: str) -> Any:
    entry = api.get(f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
                    map_index=map_index, deserialize=True)
    value = entry["value"]
    if isinstance(value, str):  # the stored JSON text
        value = json.loads(value)
    return value


def test_each_stage_task_stores_its_figures_once_under_result_and_returns_nothing(
        api: AirflowApi, finished_run: str) -> None:
    stage_instances = [ti for ti in _task_instances(api, finished_run) if ti["task_id"] in STAGE_TASKS]
    assert len(stage_instances) == 1 + 2 * PARTS  # session_sync + one analytics_sync per website and part

    modified: dict[str, int] = {}
    for ti in stage_instances:
        task, map_index = ti["task_id"], ti["map_index"]
        entries = api.get(f"dags/{DAG_ID}/dagRuns/{finished_run}/taskInstances/{task}/xcomEntries",
                          map_index=map_index)["xcom_entries"]
        keys = sorted(entry["key"] for entry in entries)
        assert keys == ["result"], f"{task}[{map_index}] stores XCom {keys}, the contract is only 'result'"
        figures = _xcom_value(api, finished_run, task, map_index, "result")
        assert isinstance(figures, dict), figures
        assert isinstance(figures["modified"], int) and not isinstance(figures["modified"], bool), figures
        modified[f"{task}[{ti['rendered_map_index'] or map_index}]"] = figures["modified"]

    assert modified["session_sync[-1]"] > 0, modified  # a first sync of the day changes users
    assert sum(count for name, count in modified.items() if name.startswith("analytics_sync")) > 0, modified


def test_a_failed_run_is_announced_from_the_dag_processor_as_deployed(api: AirflowApi, ui_demo: RunningDemo,
                                                                      finished_run: str) -> None:
    """The DAG's failure callback where a deployed Airflow runs it (the DAG processor, reading the Variable, the
    SMTP connection and record_status's result through the API): the demo prints the e-mail it received."""
    ghost = "0e9c4a51-1111-4222-8333-944455556666"  # a website Umami does not have: the plan fails at once
    run_id = api.trigger(DAG_ID, conf={"date_from": SYNC_DAY, "website_ids": [ghost]})

    assert api.wait_for_run(run_id, DAG_ID, timeout=RUN_TIMEOUT) == "failed"
    ui_demo.wait_for(r"== Alert: e-mail to oncall@example\.com through connection smtp_default", 90)
    assert ui_demo.wait_for(r"Subject: (.*)$", 5).group(1) == (
        "[umami_mongo_sync] run of 2026-11-27 failed: analytics could not be planned")
    first_error = ui_demo.wait_for(r"First error: (.*)$", 5).group(1)
    assert first_error == (f"analytics could not be planned: website {ghost}: Umami has no such website "
                           "(or it was deleted)")
    ui_demo.wait_for(rf"Run: {re.escape(ui_demo.url)}/dags/{DAG_ID}/runs/", 5)


def _running_job(api: AirflowApi, run_id: str, website: str, part: int) -> dict[str, Any]:
    """The task instance of ``website``'s ``part`` (its map index is its place in plan_analytics's list), once it
    runs with a process (bounded wait)."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        states = {ti["task_id"]: ti["state"] for ti in _task_instances(api, run_id) if ti["map_index"] < 0}
        if states.get("plan_analytics") == "success":
            break
        time.sleep(0.5)
    jobs = _xcom_value(api, run_id, "plan_analytics", -1, "return_value")
    [index] = [n for n, job in enumerate(jobs) if (job["website_name"], job["part"]) == (website, part)]
    while time.monotonic() < deadline:  # the mapped instances exist once the scheduler expanded the task
        ti = next((ti for ti in _task_instances(api, run_id)
                   if (ti["task_id"], ti["map_index"]) == ("analytics_sync", index)), {"state": None, "pid": None})
        if ti["state"] == "running" and ti["pid"]:
            return ti
        assert ti["state"] in {None, "scheduled", "queued", "running"}, ti
        time.sleep(0.3)
    pytest.fail(f"{website} part {part} of run {run_id} did not start within {RUN_TIMEOUT} s")


def _lost_window_reported(api: AirflowApi, ui_demo: RunningDemo, run_id: str, lost: dict[str, Any], part: int) -> None:
    """The run ended red and every place names the lost window: the task's state, record_status's result, the status
    document in MongoDB, and the alert the DAG processor sent."""
    assert api.wait_for_run(run_id, DAG_ID, timeout=RUN_TIMEOUT) == "failed"
    states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in _task_instances(api, run_id)}
    assert states.pop(("analytics_sync", lost["map_index"])) == "failed", states
    assert (states.pop(("record_status", -1)), states.pop(("check_run", -1))) == ("success", "failed"), states
    assert set(states.values()) == {"success"}, states  # the other part of the website, the other website, ...
    window = f"{SYNC_DAY} part {part}/{PARTS}"
    status = _xcom_value(api, run_id, "record_status", -1, "return_value")
    [failed] = status["failed"]
    assert (failed["what"], failed["days"]) == (f"website {SLOW_WEBSITE}", window)
    assert f", {window}, left no result: its task is failed" in failed["error"], failed
    with pymongo.MongoClient(ui_demo.mongo[0]) as client:
        sync = client[ui_demo.mongo[1]]["systemconfigs"].find_one({"_id": "global"})["umamiSync"]
    assert (sync["lastRun"]["runId"], sync["lastRun"]["status"]) == (run_id, "partial")
    assert f", {window}, left no result" in sync["lastRun"]["errors"][failed["website_id"]]
    site = sync["websiteSyncStatus"][failed["website_id"]]
    assert site["errorCount"] >= 1 and f"{SYNC_DAY} {run_id}" in site["failedRuns"]
    first_error = ui_demo.wait_for(rf"First error: the analytics task of website {SLOW_WEBSITE} \(\S+\), "
                                   rf"{re.escape(window)}, left no result: its task is failed", 90)
    assert first_error.group(0)


def test_a_mapped_task_whose_process_is_killed_turns_the_run_red_naming_the_lost_window(
        api: AirflowApi, ui_demo: RunningDemo, finished_run: str) -> None:
    """Out of memory, a worker lost: the task's process dies by SIGKILL (retries off) and leaves no result. The other
    part of its website succeeds; the run must still end red, naming the window and the task's state."""
    run_id = api.trigger(DAG_ID, conf={"date_from": SYNC_DAY})
    ti = _running_job(api, run_id, SLOW_WEBSITE, part=2)
    process = psutil.Process(ti["pid"])  # forked by its supervisor, it takes its own title once it starts

    def title() -> list[str]:
        return " ".join(process.cmdline()).split()

    deadline = time.monotonic() + SLOW_SECONDS
    while title() != ["airflow", "worker", "--", ti["id"]] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert title() == ["airflow", "worker", "--", ti["id"]]  # the task's own process, not its supervisor

    process.send_signal(signal.SIGKILL)

    _lost_window_reported(api, ui_demo, run_id, ti, part=2)


def test_a_mapped_task_marked_failed_while_it_runs_turns_the_run_red_naming_the_lost_window(
        api: AirflowApi, ui_demo: RunningDemo, finished_run: str) -> None:
    """Someone marks a running part failed in the UI (here through the REST API): Airflow stops its process, which
    leaves no result."""
    run_id = api.trigger(DAG_ID, conf={"date_from": SYNC_DAY})
    ti = _running_job(api, run_id, SLOW_WEBSITE, part=1)

    # The demo's Airflow keeps its metadata in SQLite: a write that meets the scheduler's answers 500 "Database error"
    # (the database is locked), and a person in the UI clicks again.
    for attempt in Retrying(retry=retry_if_exception(lambda exc: "HTTP 500" in str(exc)), stop=stop_after_attempt(5),
                            wait=wait_fixed(2), reraise=True):
        with attempt:
            api.request("PATCH", f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/analytics_sync/{ti['map_index']}",
                        json={"new_state": "failed"})

    _lost_window_reported(api, ui_demo, run_id, ti, part=1)


def test_ctrl_c_stops_airflow_and_the_services_and_removes_temporary_folders(
        ui_demo: RunningDemo, finished_run: str) -> None:
    assert ui_demo.children, "the demo started no processes?"

    code = ui_demo.interrupt()

    assert code == 0, ui_demo.output()
    assert "== Stopping Airflow and the services" in ui_demo.output()
    _, alive = psutil.wait_procs(ui_demo.children, timeout=5)
    assert not alive, [" ".join(process.cmdline()) for process in alive]
    assert [port for port in ui_demo.ports if port_open(port)] == []
    assert list(ui_demo.scratch.iterdir()) == []

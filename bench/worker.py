"""One step of the benchmark, run by ``bench/run.py`` in a fresh process so that its peak memory is its own.

``python -m bench.worker --serve``: the fork server the bench uses. It imports the product and the bench
once, then reads one request per line on stdin (a config file, a log file, the connection variables of
the day) and forks a fresh child for it; the child runs the task, writes its figures (JSON) where the
config says, and exits; the server answers with the child's pid, then its exit code and peak RSS
(``ru_maxrss`` from ``wait4``: the interpreter and the imports are included, as in any fresh process).
A step thus costs no interpreter start and no import time (Airflow alone takes seconds to import).

``python -m bench.worker CONFIG.json``: the same task in this very process (for a look at one step).

Only the task's own work is timed. The product tasks read their connections from ``AIRFLOW_CONN_*``
variables that the harness sets.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import resource
import sys
import threading
import time
import traceback
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymongo import MongoClient

from bench import bare, baseline

if TYPE_CHECKING:
    from collections.abc import Callable

    from pymongo.collection import Collection

Config = dict[str, Any]
Figures = dict[str, Any]


def rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _interval(config: Config) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(config["start"]), datetime.fromisoformat(config["end"])


def _api_range(config: Config) -> tuple[int, int]:
    """Epoch milliseconds, inclusive at both ends, of the half-open interval (as the sync sends them)."""
    start, end = _interval(config)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000) - 1


def _users(config: Config) -> tuple[MongoClient[dict[str, Any]], Collection[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(config["mongo_uri"])
    return client, client[config["database"]][config["collection"]]


def _timed(figures: Figures, run: Callable[[], Figures]) -> Figures:
    """Run and time ``run``; a ``seconds`` it reports itself (an extrapolated total) wins over the wall time."""
    figures["rss_before_mb"] = rss_mb()
    started = time.perf_counter()
    result = run()
    figures["wall_seconds"] = time.perf_counter() - started
    figures.update(result)
    figures.setdefault("seconds", figures["wall_seconds"])
    return figures


class Probes:
    """Wall time and CPU time (of the calling thread) spent inside chosen methods of the product, in this process
    only: the methods are wrapped on their classes here (the product's code is not changed). Calls from any thread
    are summed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def wrap(self, owner: type, name: str, label: str) -> None:
        """Time every call of ``owner.name`` under ``label`` (a product without that method: none, at 0)."""
        self.seconds[label], self.cpu_seconds[label], self.calls[label] = 0.0, 0.0, 0
        original: Callable[..., Any] | None = getattr(owner, name, None)
        if original is None:
            return

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed, used = time.perf_counter() - started, time.thread_time() - cpu
                with self._lock:
                    self.seconds[label] += elapsed
                    self.cpu_seconds[label] += used
                    self.calls[label] += 1

        setattr(owner, name, timed)

    def as_dict(self) -> Figures:
        """``{label: {"seconds", "cpu_seconds", "calls"}}``."""
        return {label: {"seconds": self.seconds[label], "cpu_seconds": self.cpu_seconds[label],
                        "calls": self.calls[label]} for label in self.seconds}


def stage_probes(*, analytics: bool) -> Probes:
    """Where a stage's time goes: the owner look-ups (stage 1: by identity, its one scan of non-folded users
    included; stage 2: by session), stage 2's query of sessions' first and last events in Umami's PostgreSQL
    (which task writes a user active on several websites or sub-windows), the Umami list pages and
    per-session reads (HTTP, parsing included; the list pages on the reader thread, one page ahead), the waits of
    the main thread for the next page, the ``find`` commands sent, and the ``bulk_write`` calls (on the writer
    thread, overlapping the rest). Stage 1's probes import nothing of the Umami API (its HTTP client among them):
    stage 1 does not need it, and importing it would add to the stage's CPU what the product no longer spends."""
    from pymongo.collection import Collection

    from umami_sync.umami.db import UmamiDatabase
    from umami_sync.users.store import UsersCollection

    hook: type = object  # stage 1: the API's probes stay at 0
    read_ahead: type = object
    if analytics:
        from umami_sync.umami.api import UmamiHook

        try:
            module = importlib.import_module("umami_sync.umami.read_ahead")
        except ModuleNotFoundError:  # a --before checkout older than the split of umami/paging.py: ReadAhead was there
            module = importlib.import_module("umami_sync.umami.paging")
        hook, read_ahead = UmamiHook, getattr(module, "ReadAhead", object)
    probes = Probes()
    probes.wrap(UsersCollection, "users_by_identity", "lookup_by_identity")
    probes.wrap(UsersCollection, "_scan_unfolded", "unfolded_scan")
    probes.wrap(UsersCollection, "users_by_session", "lookup_by_session")
    probes.wrap(UmamiDatabase, "event_spans", "session_spans")
    probes.wrap(Collection, "bulk_write", "bulk_write")
    probes.wrap(hook, "session_page", "list_pages")
    probes.wrap(hook, "session_activity", "session_reads")
    probes.wrap(read_ahead, "_wait", "list_wait")
    probes.wrap(Collection, "find", "find")
    return probes


def run_sessions(config: Config) -> Figures:
    """Stage 1 of the product, as its Airflow task runs it."""
    from umami_sync.settings import SyncSettings
    from umami_sync.windows import DataInterval
    from umami_sync.wiring import sync_sessions

    settings = SyncSettings(**config["settings"])
    interval = DataInterval(*_interval(config))
    probes = stage_probes(analytics=False)
    figures = _timed({}, lambda: {"result": sync_sessions(settings, interval).model_dump(mode="json")})
    figures["probes"] = probes.as_dict()
    return figures


def run_analytics(config: Config) -> Figures:
    """Stage 2 of the product: plan the jobs (website discovery included) and run them one after another."""
    from umami_sync.settings import SyncSettings
    from umami_sync.windows import DataInterval
    from umami_sync.wiring import plan_analytics_jobs, sync_analytics_job

    settings = SyncSettings(**config["settings"])
    interval = DataInterval(*_interval(config))
    probes = stage_probes(analytics=True)

    def run() -> Figures:
        jobs = plan_analytics_jobs(settings, interval)
        return {"results": [sync_analytics_job(settings, job, interval=interval).model_dump(mode="json")
                            for job in jobs]}

    figures = _timed({}, run)
    figures["probes"] = probes.as_dict()
    return figures


def record_operations(config: Config) -> Figures:
    """Untimed: run both stages with a listener that records every update command they send."""
    from pymongo import monitoring

    from umami_sync.settings import SyncSettings
    from umami_sync.windows import DataInterval
    from umami_sync.wiring import plan_analytics_jobs, sync_analytics_job, sync_sessions

    settings = SyncSettings(**config["settings"])
    interval = DataInterval(*_interval(config))
    figures: Figures = {}
    with Path(config["sessions_ops"]).open("wb") as sessions_sink, \
            Path(config["analytics_ops"]).open("wb") as analytics_sink:
        recorder = bare.OperationsRecorder(sessions_sink, settings.users_collection)
        monitoring.register(recorder)
        figures["sessions"] = sync_sessions(settings, interval).model_dump(mode="json")
        figures["sessions_commands"], recorder.sink, recorder.commands = recorder.commands, analytics_sink, 0
        jobs = plan_analytics_jobs(settings, interval)
        figures["analytics"] = [sync_analytics_job(settings, job, interval=interval).model_dump(mode="json")
                                for job in jobs]
        figures["analytics_commands"] = recorder.commands
    return figures


def bare_read(config: Config) -> Figures:
    """The session stage's own query, streamed through a bare named cursor."""
    from umami_sync.settings import SyncSettings
    from umami_sync.umami.db import identity_query
    from umami_sync.windows import DataInterval, session_window

    settings = SyncSettings(**config["settings"])
    window = session_window(DataInterval(*_interval(config)),
                            overlap=timedelta(minutes=settings.session_overlap_minutes))
    params = {"start": window.start, "end": window.end, "data_key": settings.identity_data_key,
              "websites": list(settings.website_ids) or None}
    text = identity_query("identities", links=False)  # the bench's database is at Umami 3.1.0
    return _timed({}, lambda: bare.read_rows(config["dsn"], text, params).as_dict())


def bare_write(config: Config) -> Figures:
    """The recorded update operations, sent again with bare ``bulk_write`` calls."""
    client, users = _users(config)
    with client:
        return _timed({}, lambda: bare.replay(users, Path(config["ops"])).as_dict())


def bare_http(config: Config) -> Figures:
    """Every session page of every website, fetched once with the product's page size."""
    start_ms, end_ms = _api_range(config)
    return _timed({}, lambda: bare.page_sessions(
        config["umami_url"], config["website_ids"], start_ms=start_ms, end_ms=end_ms,
        page_size=config["page_size"], username=config["username"], password=config["password"]).as_dict())


def baseline_sessions(config: Config) -> Figures:
    """Stage 1 the original tool's way (sampled when slow), then the users left as the full stage would."""
    client, users = _users(config)
    start, end = _interval(config)
    with client:
        figures = _timed({}, lambda: baseline.run_session_sync(
            config["dsn"], users, start, end, budget_seconds=config["budget_seconds"]).as_dict())
        figures["finished_matched"] = baseline.finish_session_sync(config["dsn"], users, start, end)
    return figures


def baseline_analytics(config: Config) -> Figures:
    """Stage 2 the original tool's way (sampled when slow)."""
    client, users = _users(config)
    start_ms, end_ms = _api_range(config)
    with client:
        return _timed({}, lambda: baseline.run_analytics_sync(
            config["umami_url"], config["website_ids"], users, start_ms=start_ms, end_ms=end_ms,
            username=config["username"], password=config["password"],
            budget_seconds=config["budget_seconds"]).as_dict())


def listing(config: Config) -> Figures:
    """Generated list pages through the listing and the figure rules (``bench/listing.py``), no servers."""
    from bench.listing import run_listing

    return _timed({}, lambda: run_listing(config["rows"], config["page_size"]).as_dict())


def noop(config: Config) -> Figures:
    """An empty step: what a child costs before any work (its pid tells the children apart)."""
    return _timed({}, lambda: {"pid": os.getpid()})


TASKS: dict[str, Callable[[Config], Figures]] = {
    "noop": noop,
    "listing": listing,
    "sessions": run_sessions,
    "analytics": run_analytics,
    "record": record_operations,
    "bare_read": bare_read,
    "bare_write": bare_write,
    "bare_http": bare_http,
    "baseline_sessions": baseline_sessions,
    "baseline_analytics": baseline_analytics,
}


def main(argv: list[str]) -> int:
    """Run the task of the config file ``argv[1]`` and write its figures where the config says; with
    ``--serve``, be the fork server."""
    if argv[1:2] == ["--serve"]:
        return serve()
    config: Config = json.loads(Path(argv[1]).read_text())
    figures = TASKS[config["task"]](config)
    figures["rss_peak_self_mb"] = rss_mb()
    Path(config["out"]).write_text(json.dumps(figures, default=str))
    return 0


def preload() -> None:
    """Import what every task needs, once, before any child is forked (no connection is opened here)."""
    import pymongo.monitoring  # noqa: F401

    import umami_sync.stages.analytics
    import umami_sync.stages.sessions
    import umami_sync.umami.db  # noqa: F401


def _answer(message: Figures) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def serve() -> int:
    """The fork server: one fresh child per request line, until stdin closes."""
    preload()
    for line in sys.stdin:
        if not line.strip():
            continue
        request: Config = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        _answer({"pid": pid})
        _, status, usage = os.wait4(pid, 0)
        _answer({"exit_code": os.waitstatus_to_exitcode(status), "ru_maxrss_kb": usage.ru_maxrss,
                 "cpu_user_seconds": usage.ru_utime, "cpu_system_seconds": usage.ru_stime})
    return 0


def _child(request: Config) -> None:
    """In the forked child: output to the task's log, the day's connections, the task; never returns."""
    code = 1
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.environ.update(request["env"])
        code = main([sys.argv[0], request["config"]])
    except BaseException:  # reported in the task's log; the exit code says it failed
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

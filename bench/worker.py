"""One step of the benchmark, run by ``bench/run.py`` in a fresh process so that its peak memory is its own.

``python -m bench.worker CONFIG.json``: the config names the task and where to write its figures (JSON).
Only the task's own work is timed, not the interpreter start or the imports. The product tasks read their
connections from ``AIRFLOW_CONN_*`` variables that the harness sets.
"""

from __future__ import annotations

import json
import resource
import sys
import time
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


def run_sessions(config: Config) -> Figures:
    """Stage 1 of the product, as its Airflow task runs it."""
    from umami_sync.settings import SyncSettings
    from umami_sync.stages.sessions import sync_sessions
    from umami_sync.windows import DataInterval

    settings = SyncSettings(**config["settings"])
    interval = DataInterval(*_interval(config))
    return _timed({}, lambda: {"result": sync_sessions(settings, interval).model_dump(mode="json")})


def run_analytics(config: Config) -> Figures:
    """Stage 2 of the product: plan the jobs (website discovery included) and run them one after another."""
    from umami_sync.settings import SyncSettings
    from umami_sync.stages.analytics import plan_analytics_jobs, sync_analytics_job
    from umami_sync.windows import DataInterval

    settings = SyncSettings(**config["settings"])
    interval = DataInterval(*_interval(config))

    def run() -> Figures:
        jobs = plan_analytics_jobs(settings, interval)
        return {"results": [sync_analytics_job(settings, job).model_dump(mode="json") for job in jobs]}

    return _timed({}, run)


def record_operations(config: Config) -> Figures:
    """Untimed: run both stages with a listener that records every update command they send."""
    from pymongo import monitoring

    from umami_sync.settings import SyncSettings
    from umami_sync.stages.analytics import plan_analytics_jobs, sync_analytics_job
    from umami_sync.stages.sessions import sync_sessions
    from umami_sync.windows import DataInterval

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
        figures["analytics"] = [sync_analytics_job(settings, job).model_dump(mode="json") for job in jobs]
        figures["analytics_commands"] = recorder.commands
    return figures


def bare_read(config: Config) -> Figures:
    """The session stage's own query, streamed through a bare named cursor."""
    from umami_sync.settings import SyncSettings
    from umami_sync.umami.db import query
    from umami_sync.windows import DataInterval, session_window

    settings = SyncSettings(**config["settings"])
    window = session_window(DataInterval(*_interval(config)),
                            overlap=timedelta(minutes=settings.session_overlap_minutes))
    params = {"start": window.start, "end": window.end, "data_key": settings.identity_data_key}
    text = query("identities")
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


TASKS: dict[str, Callable[[Config], Figures]] = {
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
    """Run the task of the config file ``argv[1]`` and write its figures where the config says."""
    config: Config = json.loads(Path(argv[1]).read_text())
    figures = TASKS[config["task"]](config)
    figures["rss_peak_self_mb"] = rss_mb()
    Path(config["out"]).write_text(json.dumps(figures, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

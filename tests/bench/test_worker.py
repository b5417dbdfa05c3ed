"""The bench's own bookkeeping."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from bench.run import Worker, WorkerServer
from bench.worker import Probes, _timed

if TYPE_CHECKING:
    from pathlib import Path


def test_an_extrapolated_total_is_not_replaced_by_the_wall_time() -> None:
    """A baseline timed on a sample reports its extrapolated total as ``seconds``; the table must use it."""
    figures = _timed({}, lambda: {"seconds": 231_439.2, "extrapolated": True})
    assert figures["seconds"] == 231_439.2
    assert 0 <= figures["wall_seconds"] < 5


def test_a_plain_run_is_timed_by_the_wall_clock() -> None:
    figures = _timed({}, lambda: {"rows": 3})
    assert figures["seconds"] == figures["wall_seconds"] and figures["rows"] == 3


def test_probes_time_every_call_of_a_wrapped_method_from_any_thread() -> None:
    class Store:
        def look_up(self, ids: list[str]) -> int:
            return len(ids)

    probes = Probes()
    probes.wrap(Store, "look_up", "lookup")
    store = Store()
    worker = threading.Thread(target=store.look_up, args=(["c"],))
    worker.start()
    assert store.look_up(["a", "b"]) == 2
    worker.join()

    figures = probes.as_dict()["lookup"]
    assert figures["calls"] == 2 and 0 <= figures["seconds"] < 5


def test_the_fork_server_runs_each_step_in_its_own_child(tmp_path: Path) -> None:
    server = WorkerServer(tmp_path)
    try:
        worker = Worker(server, {}, {})
        first, second = worker.run("noop"), worker.run("noop")
    finally:
        server.close()

    assert first["rss_peak_mb"] > 0 and second["rss_peak_mb"] > 0
    assert first["pid"] != second["pid"] != server.process.pid
    assert server.process.returncode == 0

"""The bench's own bookkeeping."""

from __future__ import annotations

from bench.worker import _timed


def test_an_extrapolated_total_is_not_replaced_by_the_wall_time() -> None:
    """A baseline timed on a sample reports its extrapolated total as ``seconds``; the table must use it."""
    figures = _timed({}, lambda: {"seconds": 231_439.2, "extrapolated": True})
    assert figures["seconds"] == 231_439.2
    assert 0 <= figures["wall_seconds"] < 5


def test_a_plain_run_is_timed_by_the_wall_clock() -> None:
    figures = _timed({}, lambda: {"rows": 3})
    assert figures["seconds"] == figures["wall_seconds"] and figures["rows"] == 3

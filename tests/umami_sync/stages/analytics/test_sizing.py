"""Sizing stage 2's plan, without services: a day cut into windows that each hold at most max_task_rows rows."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from tests.umami_sync.stages.analytics.support import DAY
from umami_sync.stages.analytics.sizing import MAX_PARTS, AnalyticsPlanError, auto_windows

if TYPE_CHECKING:
    from collections.abc import Callable

    from umami_sync.windows import DataInterval


def rows_at(*hours: float) -> Callable[[DataInterval], int]:
    """A list's row count in a window, for rows whose last events fall at ``hours`` of the day."""
    return lambda window: sum(window.start <= DAY.start + timedelta(hours=hour) < window.end for hour in hours)


def test_a_day_within_the_bound_is_one_window_asked_once() -> None:
    asked: list[DataInterval] = []

    def count(window: DataInterval) -> int:
        asked.append(window)
        return 500_000

    assert auto_windows(DAY, count, max_rows=500_000, what="website Shop") == [DAY] == asked


def test_a_big_day_is_cut_into_windows_that_each_hold_at_most_the_bound_in_order() -> None:
    hours = [hour / 10 for hour in range(240)] + [12.05] * 30  # 270 rows, a burst at noon

    windows = auto_windows(DAY, rows_at(*hours), max_rows=50, what="website Shop")

    assert windows[0].start == DAY.start and windows[-1].end == DAY.end
    assert all(first.end == second.start for first, second in itertools.pairwise(windows))  # no gap, no overlap
    assert all(rows_at(*hours)(window) <= 50 for window in windows)
    assert sum(rows_at(*hours)(window) for window in windows) == 270
    assert len(windows) < 10


def test_a_day_too_big_to_split_fails_the_plan_naming_the_setting() -> None:
    with pytest.raises(AnalyticsPlanError, match=r"website Shop: 1,000 list rows in .* max_task_rows \(10\) .*"
                                                 rf"more than {MAX_PARTS} tasks"):
        auto_windows(DAY, rows_at(*[12.0] * 1000), max_rows=10, what="website Shop")  # all in one millisecond

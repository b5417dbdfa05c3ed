"""How many tasks stage 2's plan needs: a website's day cut so that no task reads more than a bounded number of list
rows, and a plan within what Airflow maps."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from airflow.sdk import conf

if TYPE_CHECKING:
    from collections.abc import Callable

    from umami_sync.windows import DataInterval


class AnalyticsPlanError(ValueError):
    """The run's analytics cannot be planned as the settings ask; the message names what to change."""


MAX_PARTS = 96
"""The most sub-windows of one website's interval (a quarter of an hour of a day), as ``sub_windows`` allows."""


def auto_windows(interval: DataInterval, count: Callable[[DataInterval], int], *, max_rows: int,
                 what: str) -> list[DataInterval]:
    """Consecutive sub-windows of ``interval`` whose lists hold at most ``max_rows`` rows each (``count`` asks Umami
    for a window's rows): a window with more is cut into as many equal parts as it needs, and those are asked again.
    A day that would need more than :data:`MAX_PARTS` windows raises :class:`AnalyticsPlanError`."""
    done: list[DataInterval] = []
    todo = [interval]
    while todo:
        window = todo.pop()
        rows = count(window)
        if rows <= max_rows:
            done.append(window)
            continue
        parts = window.split(math.ceil(rows / max_rows))
        if len(parts) < 2 or len(done) + len(todo) + len(parts) > MAX_PARTS:
            raise AnalyticsPlanError(
                f"{what}: {rows:,} list rows in {window}; at most max_task_rows ({max_rows:,}) rows per task would "
                f"take more than {MAX_PARTS} tasks for this website. Raise max_task_rows (each task then holds more "
                "rows and memory), or set sub_windows to a number of tasks per website")
        todo += reversed(parts)
    return done


def check_map_length(jobs: int, websites: int) -> None:
    """More jobs than Airflow maps fails the plan, saying what to change."""
    limit = conf.getint("core", "max_map_length")
    if jobs > limit:
        raise AnalyticsPlanError(
            f"the run's analytics needs {jobs:,} tasks ({websites} website{'s' * (websites != 1)} x their "
            f"sub-windows), more than "
            f"Airflow maps (core.max_map_length = {limit:,}). Lower sub_windows, raise max_task_rows, sync fewer "
            "websites per run (website_ids), or raise max_map_length (AIRFLOW__CORE__MAX_MAP_LENGTH)")

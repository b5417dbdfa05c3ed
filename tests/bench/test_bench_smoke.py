"""The benchmark at a tiny size, so it cannot rot: every figure is there and agrees with the generated data.

It runs ``bench/run.py`` as the command a person runs, in a subprocess, against the suite's MongoDB wire
server; the bench starts its own PostgreSQL and Umami API double. No timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--websites", "1", "--sessions", "300", "--identified",
         "100", "--users", "500", "--scales", "1", "--baseline-budget", "5", "--mongo-uri", mongo_uri,
         "--out", str(out)],
        cwd=REPO, env={**os.environ}, capture_output=True, text=True, timeout=280, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "stage 1: sessions" in completed.stdout
    assert "targets:" in completed.stdout
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0


def test_stage_counts_match_the_generated_data(report: dict[str, Any]) -> None:
    (scale,) = report["scales"]
    traffic, users = scale["traffic"], scale["users"]
    assert traffic["sessions"] == 300
    assert traffic["identified"] == 100
    sessions = scale["sessions"]["result"]
    assert sessions["read"] == traffic["identity_rows"]
    assert sessions["identified"] == traffic["persons"]
    assert sessions["anonymous"] == traffic["anonymous"]
    assert sessions["matched"] == users["identities_matched"]
    assert sessions["failed"] == 0
    assert sessions["bulk_writes"] >= 1
    (analytics,) = scale["analytics"]["results"]
    assert analytics["website_id"] == traffic["website_ids"][0]
    assert analytics["sessions"] == traffic["sessions"]
    assert analytics["error"] is None
    assert analytics["matched"] == users["identities_matched"]  # one website: one session per person
    assert analytics["requests"] == scale["analytics"]["http"]["per_website"][analytics["website_id"]] + 1


def test_limits_run_on_the_same_rows_and_operations(report: dict[str, Any]) -> None:
    (scale,) = report["scales"]
    limits, record = scale["limits"], scale["record"]
    assert limits["read"]["rows"] == scale["sessions"]["result"]["read"]
    assert limits["sessions_write"]["calls"] == record["sessions_commands"] > 0
    assert limits["sessions_write"]["matched"] == record["sessions"]["matched"]
    assert limits["analytics_write"]["calls"] == record["analytics_commands"] > 0
    assert limits["http"]["rows"] == scale["traffic"]["sessions"]
    for figures in limits.values():
        assert positive(figures["seconds"])
        assert positive(figures["rss_peak_mb"])


def test_baseline_reads_every_session_of_the_window(report: dict[str, Any]) -> None:
    (scale,) = report["scales"]
    sessions, analytics = scale["baseline"]["sessions"], scale["baseline"]["analytics"]
    assert sessions["read_rows"] == sessions["operations"] == scale["traffic"]["sessions"]
    assert analytics["operations"] == scale["traffic"]["sessions"]
    assert analytics["http_requests"] == 1 + 3  # a login, then 300 sessions in pages of 100
    assert positive(sessions["seconds"])
    assert positive(analytics["seconds"])


def test_summary_has_every_stage_figure_and_ratio(report: dict[str, Any]) -> None:
    summary = report["summary"]
    for stage in ("sessions", "analytics"):
        figures = summary[stage]
        for key in ("seconds", "rows_per_second", "bulk_writes", "rss_peak_mb"):
            assert positive(figures[key]), (stage, key)
        for key in ("ratio_to_sum", "ratio_to_slower"):
            assert positive(summary["limits"][stage][key]), (stage, key)
    assert positive(summary["analytics"]["http_requests"])
    assert positive(summary["baseline"]["speedup"])
    assert summary["targets"]
    assert all(isinstance(target["met"], bool) for target in summary["targets"])

"""The benchmark at a tiny size, so it cannot rot: every figure is there and agrees with the generated data.

It runs ``bench/run.py`` as the command a person runs, in a subprocess, against the suite's MongoDB wire
server; the bench starts its own PostgreSQL and Umami API double. No timing is asserted.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TIE_SESSIONS, TIE_PAGE_SIZE = 300, 20


@pytest.fixture(scope="module")
def run(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--websites", "1", "--sessions", "300", "--identified",
         "100", "--users", "500", "--scales", "1", "--baseline-budget", "5", "--tie-sessions", str(TIE_SESSIONS),
         "--tie-page-size", str(TIE_PAGE_SIZE), "--listing-rows", "20000,60000", "--mongo-uri", mongo_uri,
         "--out", str(out)],
        cwd=REPO, env={**os.environ}, capture_output=True, text=True, timeout=280, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures, completed.stdout


@pytest.fixture(scope="module")
def report(run: tuple[dict[str, Any], str]) -> dict[str, Any]:
    return run[0]


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0


def test_the_table_has_every_section(run: tuple[dict[str, Any], str]) -> None:
    _, table = run
    for text in ("stage 1: sessions", "owner look-up (s)", "list pages (repair) + session reads", "client CPU",
                 "listing alone",
                 "write paths (mongo_collation; auto chose", "collation on: re-run", "collation off: first run",
                 "tie-heavy day:", "sessions expected / written / exact", "stage 2 beyond its slower limit",
                 "targets:"):
        assert text in table, text


def test_stage_counts_match_the_generated_data(report: dict[str, Any]) -> None:
    (scale,) = report["scales"]
    traffic, users = scale["traffic"], scale["users"]
    assert traffic["sessions"] == 300
    assert traffic["identified"] == 100
    sessions = scale["sessions"]["result"]
    assert sessions["rows_read"] == traffic["identity_rows"]
    assert sessions["identities"] == traffic["persons"]
    assert sessions["anonymous_sessions"] == traffic["anonymous"]
    assert sessions["matched_identities"] == users["identities_matched"]
    assert sessions["changes"] == sessions["modified"] == users["identities_matched"]  # one website: one user each
    assert (sessions["failed"], sessions["conflicts"]) == (0, 0)
    assert sessions["bulk_writes"] >= 1
    (analytics,) = scale["analytics"]["results"]
    assert analytics["website_id"] == traffic["website_ids"][0]
    assert analytics["list_rows"] == analytics["rows_read"] == analytics["sessions"] == traffic["sessions"]
    assert (analytics["missing_rows"], analytics["merged_sessions"], analytics["error"]) == (0, 0, None)
    assert analytics["matched_sessions"] == users["identities_matched"]  # one website: one session per person
    assert analytics["changes"] == analytics["modified"] == analytics["matched_sessions"]


def test_requests_are_split_into_list_pages_and_session_reads(report: dict[str, Any]) -> None:
    (scale,) = report["scales"]
    (analytics,) = scale["analytics"]["results"]
    served = scale["analytics"]["http"]["per_website"][analytics["website_id"]]
    assert served == {"list_pages": analytics["list_pages"], "session_reads": analytics["session_reads"], "other": 0}
    assert scale["analytics"]["http"]["planning"] == 3  # its login, the website list, the website's row count
    assert analytics["requests"] == analytics["list_pages"] + analytics["session_reads"] + analytics["logins"]
    (site,) = report["summary"]["analytics"]["websites"]
    assert site["allowed"] == math.ceil(analytics["list_rows"] / site["page_size"]) + analytics["session_reads"] + 2
    assert report["summary"]["analytics"]["list_pages"] == analytics["list_pages"]


def test_limits_run_on_the_same_rows_and_operations(report: dict[str, Any]) -> None:
    (scale,) = report["scales"]
    limits, record = scale["limits"], scale["record"]
    assert limits["read"]["rows"] == scale["sessions"]["result"]["rows_read"]
    assert limits["sessions_write"]["calls"] == record["sessions_commands"] > 0
    assert limits["sessions_write"]["rows"] == limits["sessions_write"]["matched"] == record["sessions"]["changes"]
    assert limits["analytics_write"]["calls"] == record["analytics_commands"] > 0
    assert limits["analytics_write"]["matched"] == sum(result["changes"] for result in record["analytics"])
    assert limits["http"]["rows"] == scale["traffic"]["sessions"]
    for figures in limits.values():
        assert positive(figures["seconds"])
        assert positive(figures["rss_peak_mb"])


def test_both_write_paths_write_the_same_and_a_rerun_sends_nothing(report: dict[str, Any]) -> None:
    (scale,) = report["scales"]
    paths = report["summary"]["paths"]
    matched = scale["users"]["identities_matched"]
    for path in ("on", "off"):
        assert paths[path]["sessions_first"]["changes"] == matched
        assert paths[path]["analytics_first"]["changes"] == matched
        assert paths[path]["sessions_rerun"]["changes"] == paths[path]["analytics_rerun"]["changes"] == 0
        for run in ("sessions_first", "sessions_rerun", "analytics_first", "analytics_rerun"):
            assert positive(paths[path][run]["seconds"]), (path, run)
        rerun = scale["paths"][path]["analytics_rerun"]["results"][0]
        assert (rerun["matched_sessions"], rerun["modified"], rerun["bulk_writes"]) == (matched, 0, 0)
    assert paths["compared_users"] == scale["sizes"]["users"]
    assert paths["differing_users"] == 0
    auto, other = paths["auto"], {"on": "off", "off": "on"}[paths["auto"]]
    assert paths[auto]["first_runs_are_the_stage_runs"] and not paths[other]["first_runs_are_the_stage_runs"]
    assert scale["paths"][auto]["sessions_first"] == scale["sessions"]  # the default (auto) is that path
    assert scale["paths"][other]["sessions_rerun"]["result"]["matched_identities"] == matched


def test_the_tie_heavy_day_is_complete_and_exact(report: dict[str, Any]) -> None:
    ties = report["summary"]["ties"]
    assert ties["sessions"] == ties["expected"] == TIE_SESSIONS
    assert ties["written"] == ties["exact"] == TIE_SESSIONS, ties["wrong"]
    assert ties["multi_hostname_sessions"] > 0 and ties["merged_sessions"] == ties["multi_hostname_sessions"]
    assert ties["list_rows"] == TIE_SESSIONS + ties["multi_hostname_sessions"] == ties["rows_read"]
    assert ties["tied_rows"] > TIE_SESSIONS // 2  # most rows share their last second with another row
    assert (ties["missing_rows"], ties["error"], ties["page_size"]) == (0, None, TIE_PAGE_SIZE)
    assert ties["session_reads"] == 0  # sessions on two hostnames are counted by Umami's database, not read
    assert ties["requests"] == ties["list_pages"] + ties["session_reads"] + ties["logins"] <= ties["allowed"]
    (result,) = report["ties"]["analytics"]["results"]
    served = report["ties"]["analytics"]["http"]["per_website"][result["website_id"]]
    assert (served["list_pages"], served["session_reads"]) == (result["list_pages"], result["session_reads"])


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
        for key in ("seconds", "rows_per_second", "bulk_writes", "rss_peak_mb", "lookup_seconds",
                    "bulk_write_seconds", "cpu_seconds", "cpu_per_row_us", "lookup_calls", "find_calls"):
            assert positive(figures[key]), (stage, key)
        for key in ("ratio_to_sum", "ratio_to_slower", "read_cpu_seconds", "write_cpu_seconds", "cpu_ratio"):
            assert positive(summary["limits"][stage][key]), (stage, key)
    assert positive(summary["analytics"]["http_requests"])
    assert positive(summary["analytics"]["list_page_seconds"])
    assert isinstance(summary["limits"]["analytics"]["excess_seconds"], float)
    assert positive(summary["baseline"]["speedup"])
    names = [target["name"] for target in summary["targets"]]
    assert any(name.startswith("re-run sends 0 changes") for name in names)
    assert any(name.startswith("tie-heavy day: every session exact") for name in names)
    assert all(isinstance(target["met"], bool) for target in summary["targets"])
    # Speed and memory are figures, not correctness: at the smoke's sizes they are noise. The listing's memory per row
    # in particular is the step of its flat arrays between two sizes (16 bytes a row at a load of one to two thirds,
    # 24 to 48 bytes): its bound holds on average over sizes (the bench's 1M -> 10M step, test_fingerprints' memory
    # test), not between 20,000 and 60,000 rows, where the arrays alone grow 39 bytes a row.
    correctness = [target for target in summary["targets"]
                   if not target["name"].startswith(("stage 1 <=", "end to", "listing memory per row"))
                   and "client CPU" not in target["name"]]
    assert all(target["met"] for target in correctness), correctness


def test_the_listing_alone_reads_every_generated_row(report: dict[str, Any]) -> None:
    runs = report["listing"]["runs"]
    assert [run["rows"] for run in runs] == [20_000, 60_000]
    for run in runs:
        assert run["sessions"] == run["analytics"] and run["read_from_events"] > 0
        assert positive(run["cpu_per_row_us"]) and positive(run["rss_peak_mb"])
    assert report["summary"]["listing"]["after"]["bytes_per_row"] is not None

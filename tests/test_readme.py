"""The README is the front door: keep what it promises true."""

from __future__ import annotations

import re
from pathlib import Path

from umami_sync.settings import SyncSettings

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"`([a-z_]+)`", README))
    assert set(SyncSettings.model_fields) - documented == set()


def test_the_two_commands_exist_and_the_test_command_runs_pytest() -> None:
    assert "bash .ci/demo" in README and "bash .ci/run" in README
    assert "pytest" in (REPO / ".ci" / "run").read_text()
    assert "local_stack.demo" in (REPO / ".ci" / "demo").read_text()


def test_documented_files_exist() -> None:
    for path in re.findall(r"`((?:dags|plugins|include)/[\w/.]+)`", README):
        assert (REPO / path.rstrip("/")).exists() or (REPO / "plugins/umami_sync" / path).exists(), path


def readme_bytes_per_row() -> int:
    """The listing's memory per row, as the README gives it: one figure wherever it says so."""
    figures = set(re.findall(r"(\d+) bytes a row", README))
    assert len(figures) == 1, f"the README gives the listing's memory per row as {sorted(figures)} bytes"
    return int(figures.pop())


def test_the_listing_memory_per_row_has_one_figure_and_the_bench_holds_the_listing_to_it() -> None:
    from bench.run import LISTING_BYTES_PER_ROW

    assert readme_bytes_per_row() == LISTING_BYTES_PER_ROW

"""The README is the front door: keep what it promises true."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from umami_sync.settings import SyncSettings

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def settings_table() -> dict[str, str]:
    """Each setting the README's Settings table names, and its default as written there."""
    section = README.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, str] = {}
    for row in re.findall(r"^\| (`.+?`) \| (.+?) \| .+ \|$", section, flags=re.MULTILINE):
        names, defaults = re.findall(r"`([a-z_]+)`", row[0]), split_defaults(row[1])
        assert len(names) == len(defaults), row
        documented.update(zip(names, defaults, strict=True))
    return documented


def split_defaults(cell: str) -> list[str]:
    """``none, `15``` -> ``["none", "`15`"]``: the defaults of a row, split at the commas between them."""
    return [part.strip() for part in re.split(r",\s+(?=`|none\b)", cell)]


def documented_value(default: str) -> Any:
    """A default as the README writes it, as a value: ```60``` -> 60, ```auto``` -> "auto", ``none`` -> None (a note
    in brackets after it is not the value)."""
    default = re.sub(r"\s*\(.*\)$", "", default)
    if default == "none":
        return None
    assert re.fullmatch(r"`[^`]+`", default), f"not one value: {default!r}"
    try:
        return json.loads(default[1:-1])
    except json.JSONDecodeError:
        return default[1:-1]


def model_default(name: str) -> Any:
    """The field's default, as JSON has it; a model that names nothing reads as None, as the README's "none"."""
    value = SyncSettings.model_fields[name].get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
        return value if any(value.values()) else None
    return list(value) if isinstance(value, tuple) else value


def test_the_settings_table_names_every_setting_with_its_default_and_nothing_else() -> None:
    documented = settings_table()

    assert set(documented) == set(SyncSettings.model_fields)  # both ways
    assert {name: documented_value(default) for name, default in documented.items()} == {
        name: model_default(name) for name in SyncSettings.model_fields}


def test_the_settings_table_parser_sees_a_wrong_default() -> None:
    assert split_defaults("none, `15`") == ["none", "`15`"]
    assert [documented_value(d) for d in ("`0.05`", "`auto`", "`[]`", "none (when not set)", "`true`")] == [
        0.05, "auto", [], None, True]
    assert documented_value("`0.5`") != model_default("max_invalid_share")


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

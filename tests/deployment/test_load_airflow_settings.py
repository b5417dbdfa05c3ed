"""``include/load_airflow_settings.py``: the Astro settings file, loaded into plain Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.secrets.local_filesystem import load_connections_dict, load_variables
from pydantic import ValidationError

from load_airflow_settings import CONNECTIONS_FILE, VARIABLES_FILE, main, read_settings
from umami_sync.settings import SyncSettings

REPO = Path(__file__).resolve().parents[2]
SETTINGS = REPO / "airflow_settings.yaml"
LOADER = REPO / "include" / "load_airflow_settings.py"
# Astro's field names -> Airflow's connection fields
ASTRO_FIELDS = {"conn_type": "conn_type", "conn_host": "host", "conn_schema": "schema", "conn_login": "login",
                "conn_password": "password", "conn_port": "port"}


def astro_settings() -> dict[str, Any]:
    """The repository's settings file, read as plain YAML."""
    settings: dict[str, Any] = yaml.safe_load(SETTINGS.read_text())["airflow"]
    return settings


def expected_connections() -> dict[str, dict[str, Any]]:
    """Connection fields by id, as the settings file gives them (absent fields are None)."""
    return {conn["conn_id"]: {field: conn.get(astro) for astro, field in ASTRO_FIELDS.items()}
            for conn in astro_settings()["connections"]}


def expected_variables() -> dict[str, str]:
    """Variable values by name, as the settings file gives them."""
    return {var["variable_name"]: var["variable_value"] for var in astro_settings()["variables"]}


def test_the_demo_connections_and_settings_variable_are_there() -> None:
    connections = expected_connections()

    assert set(connections) == {"umami_db", "umami_api", "users_mongo"}
    assert connections["users_mongo"]["conn_type"] == "mongo"
    assert connections["umami_api"]["host"].startswith("http://")  # a full URL, as HttpHook needs it
    value = expected_variables()["umami_sync_settings"]
    assert len(value) >= 5 and SyncSettings.model_validate(json.loads(value)) == SyncSettings()


def test_out_writes_files_that_airflow_reads_as_the_settings_say(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0

    # The functions `airflow connections import` / `airflow variables import` read the files with.
    connections = load_connections_dict(str(tmp_path / CONNECTIONS_FILE))
    variables = load_variables(str(tmp_path / VARIABLES_FILE))

    assert {conn_id: {field: getattr(conn, field) for field in ASTRO_FIELDS.values()}
            for conn_id, conn in connections.items()} == expected_connections()
    assert variables == expected_variables()


def test_print_shows_the_same_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--out", str(tmp_path)])

    main(["--print"])

    assert json.loads(capsys.readouterr().out) == {
        name: json.loads((tmp_path / name).read_text()) for name in (CONNECTIONS_FILE, VARIABLES_FILE)}


def test_pools_are_refused_with_a_pointer_to_the_cli(tmp_path: Path) -> None:
    settings = tmp_path / "airflow_settings.yaml"
    settings.write_text(yaml.safe_dump({"airflow": {
        "connections": [], "variables": [], "pools": [{"pool_name": "umami", "pool_slot": 2}]}}))

    with pytest.raises(ValidationError, match="airflow pools set"):
        read_settings(settings)


@pytest.mark.integration
def test_loads_into_a_fresh_metadata_database(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    env.update({"AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    airflow = [sys.executable, "-m", "airflow"]

    def run(*command: str) -> None:
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)

    run(*airflow, "db", "migrate")
    run(sys.executable, str(LOADER))
    run(*airflow, "connections", "export", str(tmp_path / "connections.json"))
    run(*airflow, "variables", "export", str(tmp_path / "variables.json"))

    stored = json.loads((tmp_path / "connections.json").read_text())
    assert {conn_id: {field: conn[field] for field in ASTRO_FIELDS.values()}
            for conn_id, conn in stored.items()} == expected_connections()
    # `variables export` shows a JSON value decoded.
    assert json.loads((tmp_path / "variables.json").read_text()) == {
        name: json.loads(value) for name, value in expected_variables().items()}

"""``bash .ci/demo --cloud``: the demo day synced with no ``umami_db`` connection, through the local API's Umami
Cloud mode (``/v1``, ``x-umami-api-key``, a per-key rate limit), printing the same before/after table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from local_stack import demo

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_the_cloud_demo_gives_airflow_no_database_and_a_cloud_api_key() -> None:
    ports = demo.resolve_ports(demo.Ports(0, 0, 0))

    with demo.DemoServices(ports, websites=1, sessions=40, identified=10, users=20, cloud=True) as services:
        settings = services.settings_for_airflow()["airflow"]
        banner = services.describe()
        assert services.umami is not None and services.umami.api_key == demo.CLOUD_API_KEY

    connections = {conn["conn_id"]: conn for conn in settings["connections"]}
    assert "umami_db" not in connections
    assert connections["umami_api"]["conn_host"] == f"http://127.0.0.1:{ports.umami}/v1"
    assert connections["umami_api"]["conn_extra"] == {"api_key": demo.CLOUD_API_KEY}
    assert "conn_login" not in connections["umami_api"] and "conn_password" not in connections["umami_api"]
    variable = next(v for v in settings["variables"] if v["variable_name"] == "umami_sync_settings")
    assert yaml.safe_load(variable["variable_value"])["rate_limit_calls"] == demo.CLOUD_CALLS
    assert "Umami Cloud mode: Airflow has no umami_db connection" in banner


@pytest.mark.integration
def test_the_cloud_demo_syncs_the_day_through_the_api_and_prints_the_table(scratch: Path, tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": os.pathsep.join(["include", "plugins"])}
    done = subprocess.run(
        [sys.executable, "-m", "local_stack.demo", "--cloud", "--sessions", "300", "--identified", "100", "--users",
         "200", "--pg-port", "0", "--mongo-port", "0", "--umami-port", "0", "--airflow-home", str(tmp_path / "af")],
        cwd=REPO, env=env, text=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=280, check=False)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "== What changed in MongoDB (users)" in out
    table = dict(re.findall(r"^(with session_id|with umamiAnalytics)\s+(\d+\s+\d+)$", out, re.MULTILINE))
    assert {name: [int(n) for n in value.split()] for name, value in table.items()} == {
        "with session_id": [0, table_after(out, "with session_id")],
        "with umamiAnalytics": [0, table_after(out, "with umamiAnalytics")]}
    assert table_after(out, "with session_id") > 50 and table_after(out, "with umamiAnalytics") > 50
    assert "airflow dags test exited with 0" in out
    log = (tmp_path / "af" / "demo.log").read_text()
    assert "Umami's api" in log and "isn't defined" not in log


def table_after(out: str, row: str) -> int:
    """The "after" column of one row of the demo's table."""
    found = re.search(rf"^{row}\s+\d+\s+(\d+)$", out, re.MULTILINE)
    assert found is not None, row
    return int(found.group(1))

"""The demo command's front door: busy ports, its help, its banner, and cleaning up after a failed start."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from local_stack import airflow_cli, demo
from local_stack._proc import port_open

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something listens on."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _run_demo(*args: str, scratch: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": os.pathsep.join(["include", "plugins"])}
    return subprocess.run([sys.executable, "-m", "local_stack.demo", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout, check=False)


@pytest.mark.parametrize(("flag", "what", "ui"), [
    ("--pg-port", "PostgreSQL", False),
    ("--mongo-port", "the MongoDB wire server", False),
    ("--umami-port", "the Umami API", False),
    ("--airflow-port", "Airflow's UI", True),
])
def test_a_busy_port_stops_the_demo_with_one_line_that_names_it(busy_port: int, scratch: Path, tmp_path: Path,
                                                                  flag: str, what: str, ui: bool) -> None:
    others = [option for option in ("--pg-port", "--mongo-port", "--umami-port", "--airflow-port") if option != flag]
    home = tmp_path / "airflow"

    done = _run_demo(*(["--ui"] if ui else []), flag, str(busy_port), *(arg for o in others for arg in (o, "0")),
                     "--airflow-home", str(home), scratch=scratch)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: port {busy_port} (for {what}) is already in use on 127.0.0.1: stop what listens there, "
        f"or choose another port with {flag} PORT (0 picks a free one)"]
    assert "Traceback" not in done.stdout + done.stderr
    assert list(scratch.iterdir()) == []  # no temporary folder left behind
    assert not home.exists()  # nothing was set up


def test_free_ports_are_picked_for_0_and_a_port_given_twice_is_refused(busy_port: int) -> None:
    ports = demo.resolve_ports(demo.Ports(0, 0, 0, 0))
    chosen = [ports.postgres, ports.mongo, ports.umami, ports.airflow]

    assert len(set(chosen)) == 4 and 0 not in chosen
    assert demo.resolve_ports(demo.Ports(0, 0, 0)).airflow is None  # the plain demo starts no UI
    with pytest.raises(demo.DemoError, match=r"^port 40123 is given to two services; .* --mongo-port PORT$"):
        demo.resolve_ports(demo.Ports(40123, 40123, 0))
    with pytest.raises(demo.DemoError, match=rf"^port {busy_port} \(for the Umami API\) is already in use"):
        demo.resolve_ports(demo.Ports(0, 0, busy_port))


def test_the_default_ports_are_those_of_airflow_settings_yaml() -> None:
    settings = (REPO / "airflow_settings.yaml").read_text()
    args = demo.parse_args([])

    for port in (args.pg_port, args.mongo_port, args.umami_port):
        assert re.search(rf"\b{port}\b", settings), port


def test_help_gives_every_flag_a_text_and_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        demo.parse_args(["--help"])
    text = capsys.readouterr().out

    assert exited.value.code == 0
    entries = re.split(r"\n  (?=-)", text.split("options:", 1)[1])
    flags = {re.match(r"(-[-\w]+)", entry).group(1): " ".join(entry.split())  # type: ignore[union-attr]
             for entry in entries if entry.startswith("-")}
    assert set(flags) >= {"--websites", "--sessions", "--identified", "--users", "--pg-port", "--mongo-port",
                          "--umami-port", "--airflow-port", "--ui", "--trigger", "--airflow-home"}
    for flag, entry in flags.items():
        if flag != "-h":
            assert "default:" in entry, entry
    assert "(default: 900)" in flags["--identified"] and "people" in flags["--identified"]
    assert "(default: 54329)" in flags["--pg-port"]


class _UnstartableUmami(demo.FakeUmami):
    def start(self) -> demo.FakeUmami:
        raise OSError(98, "Address already in use")


@pytest.mark.integration
def test_a_service_that_fails_to_start_is_named_and_everything_started_is_stopped_and_removed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "FakeUmami", _UnstartableUmami)
    ports = demo.resolve_ports(demo.Ports(0, 0, 0))
    services = demo.DemoServices(ports, websites=2, sessions=200, identified=60, users=100)

    with pytest.raises(demo.DemoError, match=rf"^the Umami API on port {ports.umami} did not start: "
                                             r"\[Errno 98\] Address already in use$"), services:
        pytest.fail("the services started")

    assert not services.tmp.exists()  # the run folder with PostgreSQL's cluster is gone
    assert not port_open(ports.postgres) and not port_open(ports.mongo)


@pytest.mark.integration
def test_the_banner_names_sessions_people_and_users() -> None:
    ports = demo.resolve_ports(demo.Ports(0, 0, 0))

    with demo.DemoServices(ports, websites=2, sessions=300, identified=100, users=200) as services:
        banner = services.describe()
        seeded = services.seeded
        assert seeded is not None

    assert "300 sessions: 100 identified (" in banner
    assert "90 people behind the identified sessions (10 sessions are a person seen again on another website)" \
        in banner
    assert f"200 users, {seeded.deleted} of them deleted" in banner
    assert f"{seeded.identities_matched} of the 90 people have a user" in banner
    assert "(Docs, Shop)" in banner


def test_the_airflow_batch_takes_only_a_json_list_of_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert airflow_cli.main([]) == 2
    assert airflow_cli.main(['{"db": "migrate"}']) == 2
    assert airflow_cli.main(["[[]]"]) == 2
    assert "JSON list" in capsys.readouterr().err


@pytest.mark.integration
def test_a_website_made_to_fail_shows_where_the_alert_went(scratch: Path, tmp_path: Path) -> None:
    done = _run_demo("--fail-website", "Shop", "--sessions", "300", "--identified", "100", "--users", "200",
                     "--pg-port", "0", "--mongo-port", "0", "--umami-port", "0", "--airflow-home", str(tmp_path / "af"),
                     scratch=scratch, timeout=240)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "== Alerts: e-mail to oncall@example.com through connection smtp_default" in out
    assert "== Alert: e-mail to oncall@example.com through connection smtp_default (the demo's SMTP server" in out
    assert "   Subject: [umami_mongo_sync] run of 2026-11-27 failed: website Shop" in out
    assert "   First error: 1 of " in out and "   Run: http://localhost:8080/dags/umami_mongo_sync/runs/" in out
    assert "(website Shop failed as --fail-website asked, and the alert went out)" in out


@pytest.mark.integration
def test_a_website_to_fail_that_the_demo_does_not_have_is_named() -> None:
    ports = demo.resolve_ports(demo.Ports(0, 0, 0))
    services = demo.DemoServices(ports, websites=1, sessions=50, identified=10, users=20, fail_website="Nope")

    with pytest.raises(demo.DemoError, match=r"^--fail-website: no website named 'Nope'; the demo's websites: Shop$"), \
            services:
        pytest.fail("the services started")

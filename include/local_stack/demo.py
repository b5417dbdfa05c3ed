"""The demo (``bash .ci/demo``): run the DAG end to end on throwaway local services, or open it in Airflow's UI.

Both modes start a PostgreSQL cluster with Umami's schema and a generated day of traffic (2026-11-27), a
MongoDB wire server with the application's users, and the local Umami API, on the ports of
``airflow_settings.yaml`` unless told otherwise (``0`` picks a free port; a busy port stops the demo
with one line that names it). The file's connections, pointed at those ports, and its Variable are
loaded into a fresh Airflow home.

Plain mode runs ``airflow dags test umami_mongo_sync 2026-11-28`` in ``.local/airflow`` (its log goes to
``.local/airflow/demo.log``) and prints what changed in MongoDB.

``--cloud`` gives Airflow no ``umami_db`` connection: the local API speaks Umami Cloud's (``/v1``, the
``x-umami-api-key`` header, a limit of calls per key) and the sync reads everything through it, identities
included, as it does for Umami Cloud (README, "Umami Cloud").

``--fail-website NAME`` makes that website's list lose a row, so its task fails (at once: the demo's Airflow home
turns retries off), and shows the alert the DAG's failure callback sent. Alerts go by e-mail to the demo's own
SMTP server (connection ``smtp_default``, Variable ``alerts``), which keeps them to print.

``--ui`` starts a real Airflow (api-server, scheduler, dag-processor, triggerer; home ``.local/airflow-ui``),
triggers one run of the demo day, prints the UI's address and login, and waits: Ctrl-C stops everything.

For trying what Airflow does to a task: ``--no-retries`` (a failed or killed task fails at once), ``--slow-website
NAME`` (that website's list pages each wait ``--slow-seconds`` first: time to kill its task, or mark it failed,
while it runs) and ``--settings JSON`` (more settings in the Variable, e.g. ``{"sub_windows": 2}``).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import psycopg
import pymongo
import yaml

from load_airflow_settings import (
    CONNECTIONS_FILE,
    VARIABLES_FILE,
    AstroConnection,
    import_documents,
    read_settings,
    write_documents,
)
from local_stack._proc import free_port, port_open
from local_stack.mongo import LocalMongo
from local_stack.postgres import LocalPostgres, load_umami_schema
from local_stack.smtp import LocalSmtp
from local_stack.traffic import generate_traffic, seed_users
from local_stack.ui import DAG_ID, AirflowError, LocalAirflow, log_tail
from local_stack.umami_api import FakeUmami

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from email.message import EmailMessage
    from types import FrameType, TracebackType

    from local_stack.traffic import TrafficSummary, UsersSummary

REPO = Path(__file__).resolve().parents[2]
SETTINGS_FILE = REPO / "airflow_settings.yaml"
DEMO_DAY = date(2026, 11, 27)
DEMO_WEBSITE = "Shop"  # the first generated website
LOGICAL_DATE = DEMO_DAY + timedelta(days=1)  # a manual run syncs the day before its logical date
DEMO_HOME = REPO / ".local" / "airflow"
UI_HOME = REPO / ".local" / "airflow-ui"
UI_PORT = 8080
SETTINGS_VARIABLE = "umami_sync_settings"  # the DAG's Variable; the demo adds its alerts
ALERT_TO = "oncall@example.com"
CLOUD_API_KEY = "demo-cloud-api-key-0b7a0c8e"  # the local API's Cloud-mode key (not a secret)
CLOUD_CALLS = 50
"""Calls per key and period in the Cloud demo, as Umami Cloud allows (50 per 15 s); the period is ``--cloud-period``."""
NO_RETRIES_POLICY = '''"""The demo's --no-retries (and --fail-website): tasks fail at once, no retry delays."""


def task_policy(task):
    task.retries = 0
'''
# airflow/utils/dot_renderer.py warns on import when the optional graphviz package is missing, and every
# `airflow dags ...` command imports it; the demo never renders a graph.
_QUIET_WARNINGS = "ignore:Could not import graphviz:UserWarning"


class DemoError(Exception):
    """Why the demo cannot go on, in one line for the terminal."""


def _connections() -> dict[str, AstroConnection]:
    return {conn.conn_id: conn for conn in read_settings(SETTINGS_FILE).connections}


def settings_port(conn_id: str) -> int:
    """The port ``airflow_settings.yaml`` gives the connection ``conn_id`` (the demo's default port)."""
    conn = _connections()[conn_id]
    if conn.conn_port:
        return conn.conn_port
    port = (conn.conn_host or "").rpartition(":")[2]
    return int(port)


@dataclass(frozen=True)
class Ports:
    """The loopback ports of the demo's services (and of Airflow's UI in UI mode)."""

    postgres: int
    mongo: int
    umami: int
    airflow: int | None = None


_PORT_FLAGS = {"postgres": ("PostgreSQL", "--pg-port"), "mongo": ("the MongoDB wire server", "--mongo-port"),
               "umami": ("the Umami API", "--umami-port"), "airflow": ("Airflow's UI", "--airflow-port")}


def resolve_ports(wanted: Ports) -> Ports:
    """Replace every 0 by a free port; :class:`DemoError` when a wanted port is taken or given twice."""
    chosen: dict[str, int] = {}
    for name, (what, flag) in _PORT_FLAGS.items():
        port: int | None = getattr(wanted, name)
        if port is None:
            continue
        if port == 0:
            port = free_port()
            while port in chosen.values():
                port = free_port()
        elif port in chosen.values():
            raise DemoError(f"port {port} is given to two services; choose another with {flag} PORT")
        elif port_open(port):
            raise DemoError(f"port {port} (for {what}) is already in use on 127.0.0.1: stop what listens there, "
                            f"or choose another port with {flag} PORT (0 picks a free one)")
        chosen[name] = port
    return Ports(**chosen)


def airflow_environment(home: Path, tmp: Path | None = None) -> dict[str, str]:
    """Environment of the ``airflow`` commands: a private home, this repo's DAGs and plugins."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "PYTHONWARNINGS": ",".join(filter(None, [env.get("PYTHONWARNINGS"), _QUIET_WARNINGS])),
    })
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    return env


class DemoServices:
    """The demo's services with its data, started in order; on exit everything is stopped and removed.

    Temporary folders (PostgreSQL's cluster among them) live in one run folder that is removed at the end,
    also when a service fails to start; then the cause is raised as a :class:`DemoError`.
    """

    def __init__(self, ports: Ports, *, websites: int, sessions: int, identified: int, users: int,
                 fail_website: str | None = None, no_retries: bool = False, slow_website: str | None = None,
                 slow_seconds: float = 0.0, settings: dict[str, Any] | None = None, cloud: bool = False,
                 cloud_period: float = 0.1) -> None:
        self.ports = ports
        self.fail_website = fail_website
        self.no_retries = no_retries or fail_website is not None
        self.slow_website, self.slow_seconds = slow_website, slow_seconds
        self.settings = settings or {}
        self.cloud, self.cloud_period = cloud, cloud_period
        self.websites, self.sessions, self.identified, self.users = websites, sessions, identified, users
        connections = _connections()
        self.database = connections["users_mongo"].conn_schema or "app"
        api = connections["umami_api"]
        self.umami_login, self.umami_password = api.conn_login or "admin", api.conn_password or "umami"
        self.tmp = Path()
        self.postgres = LocalPostgres(port=ports.postgres)
        self.mongo = LocalMongo(port=ports.mongo)
        self.umami: FakeUmami | None = None
        self.smtp = LocalSmtp()
        self.traffic: TrafficSummary | None = None
        self.seeded: UsersSummary | None = None
        self.website_names: list[str] = []
        self._stack = ExitStack()

    def _start(self, what: str, start: Callable[[], object], log: Callable[[], Path | None] = lambda: None) -> None:
        try:
            start()
        except Exception as exc:
            found = log()
            tail = log_tail(found, 3).replace("\n", " | ") if found else ""
            raise DemoError(f"{what} did not start: {tail or exc}") from exc

    def __enter__(self) -> DemoServices:
        stack = self._stack
        try:
            self.tmp = Path(tempfile.mkdtemp(prefix="umami-demo-"))
            self.tmp.chmod(0o755)  # the cluster's owner (``postgres`` when run as root) must reach its folder
            stack.callback(shutil.rmtree, self.tmp, ignore_errors=True)
            stack.callback(setattr, tempfile, "tempdir", tempfile.tempdir)
            tempfile.tempdir = str(self.tmp)
            stack.callback(self.postgres.stop)
            self._start(f"PostgreSQL on port {self.ports.postgres}", self.postgres.start,
                        lambda: next(self.tmp.glob("umami-pg-*/log"), None))
            stack.callback(self.mongo.stop)
            self._start(f"the MongoDB wire server on port {self.ports.mongo}", self.mongo.start)
            load_umami_schema(self.postgres.dsn)
            self.traffic = generate_traffic(self.postgres.dsn, day=DEMO_DAY, websites=self.websites,
                                            sessions=self.sessions, identified=self.identified)
            with psycopg.connect(self.postgres.dsn) as conn:
                self.website_names = [row[0] for row in conn.execute("SELECT name FROM website ORDER BY name")]
            self.seeded = seed_users(self.mongo.uri, self.database, "users",
                                     identities=self.traffic.identity_emails(), total=self.users)
            umami = FakeUmami(self.postgres.dsn, username=self.umami_login, password=self.umami_password,
                              port=self.ports.umami, api_key=CLOUD_API_KEY if self.cloud else None,
                              rate_limit=CLOUD_CALLS, rate_window_seconds=self.cloud_period)
            stack.callback(umami.stop)
            self._start(f"the Umami API on port {self.ports.umami}", umami.start)
            self.umami = umami
            if self.fail_website:
                umami.faults.hidden_ids = {self._listed_session(self.fail_website)}
            if self.slow_website:
                umami.faults.slow_websites = {self._website_id(self.slow_website, "--slow-website"): self.slow_seconds}
            stack.callback(self.smtp.stop)
            self._start(f"the SMTP server on port {self.smtp.port}", self.smtp.start)
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()

    def _website_id(self, website: str, flag: str) -> str:
        """The id of the demo's website named ``website``; :class:`DemoError` naming ``flag`` when there is none."""
        with psycopg.connect(self.postgres.dsn) as conn:
            row = conn.execute("SELECT website_id::text FROM website WHERE name = %s", (website,)).fetchone()
        if row is None:
            raise DemoError(f"{flag}: no website named {website!r}; the demo's websites: "
                            f"{', '.join(self.website_names)}")
        return str(row[0])

    def _listed_session(self, website: str) -> str:
        """A session of ``website`` with events on the demo day (one its session list serves)."""
        self._website_id(website, "--fail-website")
        with psycopg.connect(self.postgres.dsn) as conn:
            row = conn.execute("SELECT e.session_id::text FROM website_event e JOIN website w USING (website_id) "
                               "WHERE w.name = %s ORDER BY e.session_id LIMIT 1", (website,)).fetchone()
        if row is None:
            raise DemoError(f"--fail-website: website {website!r} has no sessions on {DEMO_DAY}")
        return str(row[0])

    def settings_for_airflow(self) -> dict[str, Any]:
        """``airflow_settings.yaml`` with its connections pointed at the ports of this run."""
        hosts = {"umami_db": ("127.0.0.1", self.ports.postgres), "users_mongo": ("127.0.0.1", self.ports.mongo),
                 "umami_api": (f"http://127.0.0.1:{self.ports.umami}", None)}
        settings = read_settings(SETTINGS_FILE)
        settings.connections = [
            conn.model_copy(update={"conn_host": hosts[conn.conn_id][0], "conn_port": hosts[conn.conn_id][1]})
            if conn.conn_id in hosts else conn for conn in settings.connections
            if not (self.cloud and conn.conn_id == "umami_db")]  # Cloud: no database to read
        if self.cloud:
            settings.connections = [conn.model_copy(update={
                "conn_host": f"http://127.0.0.1:{self.ports.umami}/v1", "conn_login": None, "conn_password": None,
                "conn_extra": {"api_key": CLOUD_API_KEY}}) if conn.conn_id == "umami_api" else conn
                for conn in settings.connections]
        smtp = json.loads(self.smtp.connection())
        settings.connections.append(AstroConnection(conn_id="smtp_default", conn_type=smtp.pop("conn_type"), **{
            f"conn_{key}": value for key, value in smtp.items()}))
        for variable in settings.variables:
            if variable.variable_name == SETTINGS_VARIABLE:
                value = {**json.loads(variable.variable_value or "{}"), **self.settings}
                value["alerts"] = {"on_failure": [{"type": "email", "to": [ALERT_TO]}]}
                if self.cloud:  # the sync keeps within the local API's Cloud limit, as a user sets it for Cloud
                    value.update(rate_limit_calls=CLOUD_CALLS, rate_limit_period_seconds=self.cloud_period)
                variable.variable_value = json.dumps(value)
        return {"airflow": settings.model_dump(exclude_none=True)}

    def describe(self) -> str:
        """What the demo generated, each number named (sessions, people, users)."""
        traffic, seeded = self.traffic, self.seeded
        assert traffic is not None and seeded is not None
        repeats = traffic.identified - traffic.persons
        without = traffic.persons - seeded.identities_matched
        return "\n".join([
            f"== Umami ({self.postgres.dsn}, API {self.umami.url if self.umami else '-'}): {DEMO_DAY}, "
            f"{len(traffic.website_ids)} websites ({', '.join(self.website_names)})",
            f"   {traffic.sessions:,} sessions: {traffic.identified:,} identified "
            f"({traffic.identified_by_distinct_id:,} by distinct id, {traffic.identified_by_email:,} by an e-mail "
            f"in session_data), {traffic.anonymous:,} anonymous",
            f"   {traffic.persons:,} people behind the identified sessions "
            f"({repeats:,} sessions are a person seen again on another website)",
            f"== MongoDB ({self.mongo.uri}, database {self.database}): {seeded.total:,} users, "
            f"{seeded.deleted:,} of them deleted",
            f"   {seeded.identities_matched:,} of the {traffic.persons:,} people have a user; {without:,} have none "
            f"or a deleted one ({seeded.identities_unmatched:,} none, {seeded.identities_deleted:,} deleted)",
            *([f"== Umami Cloud mode: Airflow has no umami_db connection; the Umami API speaks Umami Cloud's "
               f"(/v1, x-umami-api-key, {CLOUD_CALLS} calls per {self.cloud_period:g} s per key; Umami Cloud: "
               f"{CLOUD_CALLS} per 15 s), and identities are read through it"] if self.cloud else []),
            f"== Alerts: e-mail to {ALERT_TO} through connection smtp_default, the demo's SMTP server "
            f"(127.0.0.1:{self.smtp.port})"
            + (f"; website {self.fail_website} is made to fail" if self.fail_website else "")
            + (f"; website {self.slow_website}'s list pages each wait {self.slow_seconds:g} s" if self.slow_website
               else "") + ("; retries off" if self.no_retries else ""),
        ])


def prepare_airflow_home(home: Path, services: DemoServices) -> tuple[dict[str, str], list[list[str]]]:
    """A fresh, empty home; its environment and the commands that set it up (:func:`airflow_commands`).

    They migrate the database and do what ``include/load_airflow_settings.py`` does, for
    ``airflow_settings.yaml`` with the ports of this run (written to ``<home>/airflow_settings.yaml``).
    """
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    settings = home / "airflow_settings.yaml"
    demo_settings = services.settings_for_airflow()
    settings.write_text("# airflow_settings.yaml with the connections of this demo run (its ports)\n"
                        + yaml.safe_dump(demo_settings, sort_keys=False))
    write_documents(import_documents(read_settings(settings)), home)
    if services.no_retries:
        (home / "config").mkdir()
        (home / "config" / "airflow_local_settings.py").write_text(NO_RETRIES_POLICY)
    env = airflow_environment(home, services.tmp)
    # `airflow dags test` runs the DAG's callbacks where Airflow reads only environment variables (and external
    # secrets backends), not its database: the alerts' Variable and connection go there too.
    env["AIRFLOW_VAR_" + SETTINGS_VARIABLE.upper()] = next(
        variable["variable_value"] for variable in demo_settings["airflow"]["variables"]
        if variable["variable_name"] == SETTINGS_VARIABLE)
    env["AIRFLOW_CONN_SMTP_DEFAULT"] = services.smtp.connection()
    return env, [
        ["db", "migrate"],
        ["connections", "import", "--overwrite", str(home / CONNECTIONS_FILE)],
        ["variables", "import", "--action-on-existing-key", "overwrite", str(home / VARIABLES_FILE)],
    ]


def airflow_commands(env: dict[str, str], commands: list[list[str]], log: Path) -> int:
    """Run ``airflow`` commands in one interpreter (``local_stack/airflow_cli.py``), output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.run([sys.executable, str(Path(__file__).with_name("airflow_cli.py")), json.dumps(commands)],
                              env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                              check=False).returncode


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is below it."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    return str(path)


def snapshot(users: pymongo.collection.Collection[dict[str, Any]]) -> dict[str, int]:
    """How many users carry what the sync writes."""
    return {
        "users": users.count_documents({}),
        "with session_id": users.count_documents({"session_id": {"$exists": True}}),
        "with umamiAnalytics": users.count_documents({"umamiAnalytics": {"$exists": True}}),
        "deleted (never touched)": users.count_documents({"isDeleted": True}),
    }


def report(before: dict[str, int], client: pymongo.MongoClient[dict[str, Any]], database: str) -> None:
    """Print the counts before and after, one enriched user, and the status document."""
    users = client[database]["users"]
    after = snapshot(users)
    print("\n== What changed in MongoDB (users)")
    print(f"{'':28}{'before':>10}{'after':>10}")
    for name, count in after.items():
        print(f"{name:28}{before[name]:>10}{count:>10}")
    sample = users.find_one({"umamiAnalytics": {"$exists": True}},
                            {"email": 1, "session_id": 1, "umamiSessions": {"$slice": 2}, "umamiAnalytics": 1})
    print("\n== One enriched user")
    print(json.dumps(sample, indent=2, default=str))
    print("\n== SystemConfig (systemconfigs, _id 'global')")
    print(json.dumps(client[database]["systemconfigs"].find_one({"_id": "global"}), indent=2, default=str))


def run_once(services: DemoServices, home: Path) -> int:
    """Plain mode: ``airflow dags test`` once, Airflow's output to a log file; print the summary. Its exit code."""
    env, setup = prepare_airflow_home(home, services)
    log = home / "demo.log"
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(services.mongo.uri)
    try:
        before = snapshot(client[services.database]["users"])
        print(f"== airflow dags test {DAG_ID} {LOGICAL_DATE} (syncs {DEMO_DAY}; Airflow's log: {_shown(log)})",
              flush=True)
        started = time.monotonic()
        code = airflow_commands(env, [*setup, ["dags", "test", DAG_ID, LOGICAL_DATE.isoformat()]], log)
        print(f"   {'finished' if code == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s")
        if code and not services.fail_website:
            print(f"\n== The end of {_shown(log)}\n{log_tail(log, 25)}")
        report(before, client, services.database)
    finally:
        client.close()
    alerts = services.smtp.wait_for(1, timeout=5) if code else services.smtp.messages
    if not alerts:
        print(f"\n== Alerts: none (an alert goes out when a run fails or drops far below the usual; "
              f"--fail-website {DEMO_WEBSITE} shows one)")
    for mail in alerts:
        print_alert(mail, services.smtp.port)
    print(f"\n== airflow dags test exited with {code}; Airflow's full log: {_shown(log)}")
    if code and services.fail_website and alerts:
        print(f"   (website {services.fail_website} failed as --fail-website asked, and the alert went out)")
        return 0
    return code


def print_alert(mail: EmailMessage, port: int) -> None:
    """An e-mail the DAG's callbacks sent to the demo's SMTP server, as text."""
    body = mail.get_body(("html",))
    text = html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"</(p|h3)>", "\n", body.get_content() if body else "")))
    print(f"\n== Alert: e-mail to {mail['To']} through connection smtp_default (the demo's SMTP server on "
          f"127.0.0.1:{port}; set your own notifiers in the Variable, README \"Alerts\")")
    print(f"   Subject: {mail['Subject']}")
    print("   " + text.strip().replace("\n", "\n   "), flush=True)


@contextmanager
def airflow_ui(services: DemoServices, home: Path, port: int) -> Iterator[LocalAirflow]:
    """A fresh home for ``services`` and Airflow's components on ``port``, ready; stopped on exit."""
    env, setup = prepare_airflow_home(home, services)
    log = home / "demo.log"
    code = airflow_commands(env, setup, log)
    if code:
        raise DemoError(f"setting up Airflow failed with exit code {code}; the end of {_shown(log)}:\n"
                        f"{log_tail(log)}")
    with LocalAirflow(home, env, port=port) as airflow:
        yield airflow


def serve_ui(services: DemoServices, home: Path, port: int, *, trigger: bool) -> int:
    """UI mode: Airflow's components until SIGINT or SIGTERM; 1 if a component dies first, else 0."""
    print(f"== Starting Airflow (api-server, scheduler, dag-processor, triggerer) in {_shown(home)} ...", flush=True)
    started = time.monotonic()
    with airflow_ui(services, home, port) as airflow:
        if trigger:
            api = airflow.api()
            try:
                api.trigger(logical_date=f"{LOGICAL_DATE.isoformat()}T00:00:00Z")
            finally:
                api.close()
        print(f"== Airflow is ready after {time.monotonic() - started:.0f} s: {airflow.url}/dags/{DAG_ID}")
        print(f"   login: {airflow.username} / {airflow.password}")
        print(f"   REST API: {airflow.url}/api/v2 (token: POST {airflow.url}/auth/token "
              f'{{"username": "{airflow.username}", "password": "{airflow.password}"}})')
        if trigger:
            print(f"   triggered one run, logical date {LOGICAL_DATE} (syncs {DEMO_DAY})")
        print(f"   more runs: Trigger, then 'Re-sync from' = {DEMO_DAY} (the only day with traffic); "
              "scheduled runs are off")
        print(f"   logs: {_shown(home / 'logs')}  (components: <component>.log)")
        print("== Press Ctrl-C to stop Airflow and the services", flush=True)
        shown = 0
        try:
            while True:
                airflow.check_alive()
                for mail in services.smtp.messages[shown:]:  # alerts, as they come
                    print_alert(mail, services.smtp.port)
                    shown += 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\n== Stopping Airflow and the services ...", flush=True)
            return 0
        except AirflowError as exc:
            print(f"error: {exc}", file=sys.stderr)
            print("== Stopping Airflow and the services ...", flush=True)
            return 1


def _stop_requested(signum: int, frame: FrameType | None) -> NoReturn:
    """SIGINT / SIGTERM: clean up once (later signals are ignored while the demo stops everything)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The module doc as written, and every flag with its default (unless the help text says it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (``--help`` lists every flag with its default)."""
    parser = argparse.ArgumentParser(prog="bash .ci/demo", description=(__doc__ or "").replace("``", ""),
                                     formatter_class=_HelpFormatter)
    data = parser.add_argument_group("generated data")
    data.add_argument("--websites", type=int, default=2,
                      help="Umami websites (1-5); each gets one mapped analytics_sync task, labelled by its name")
    data.add_argument("--sessions", type=int, default=3000, help="Umami sessions on the demo day, all websites")
    data.add_argument("--identified", type=int, default=900,
                      help="of those sessions, how many carry an identity (an e-mail); with two or more websites "
                           "one in ten is a person seen again on another website, so there are fewer people")
    data.add_argument("--users", type=int, default=2000,
                      help="users in MongoDB: about 95%% of the identified people, plus other members")
    ports = parser.add_argument_group("ports on 127.0.0.1 (0 picks a free port)")
    ports.add_argument("--pg-port", type=int, default=settings_port("umami_db"), help="Umami's PostgreSQL")
    ports.add_argument("--mongo-port", type=int, default=settings_port("users_mongo"),
                       help="the MongoDB wire server")
    ports.add_argument("--umami-port", type=int, default=settings_port("umami_api"), help="the Umami API")
    ports.add_argument("--airflow-port", type=int, default=UI_PORT, help="Airflow's UI and REST API (--ui only)")
    ui = parser.add_argument_group("UI mode")
    ui.add_argument("--ui", action="store_true",
                    help="start Airflow's UI (api-server, scheduler, dag-processor, triggerer) instead of one "
                         "`airflow dags test`; Ctrl-C stops everything (default: off)")
    ui.add_argument("--trigger", action=argparse.BooleanOptionalAction, default=True,
                    help=f"trigger one run of {DEMO_DAY} when the UI is up")
    parser.add_argument("--fail-website", metavar="NAME", default=None,
                        help=f"make the website NAME fail (its session list loses a row), without retries, and "
                             f"show the alert e-mail the failed run sent (e.g. {DEMO_WEBSITE}; default: none)")
    faults = parser.add_argument_group("trying what Airflow does to a task")
    faults.add_argument("--no-retries", action="store_true",
                        help="a failed or killed task fails at once (a cluster policy sets retries to 0; default: off)")
    faults.add_argument("--slow-website", metavar="NAME", default=None,
                        help="each session-list page of the website NAME waits --slow-seconds first, so that its task "
                             "runs long enough to be killed or marked failed (default: none)")
    faults.add_argument("--slow-seconds", type=float, default=30.0, help="how long --slow-website waits per page")
    faults.add_argument("--settings", type=json.loads, default=None, metavar="JSON",
                        help='more settings for the Variable umami_sync_settings, e.g. \'{"sub_windows": 2}\' '
                             "(default: those of airflow_settings.yaml)")
    cloud = parser.add_argument_group("Umami Cloud mode")
    cloud.add_argument("--cloud", action="store_true",
                       help="give Airflow no umami_db connection and make the Umami API speak Umami Cloud's (/v1, an "
                            "API key, a limit per key): the sync reads everything, identities included, through the "
                            "API (default: off)")
    cloud.add_argument("--cloud-period", type=float, default=0.1,
                       help=f"with --cloud, the API allows {CLOUD_CALLS} calls per key in this many seconds, and the "
                            f"sync is told so (Umami Cloud: 15; reading identities costs a few requests per session)")
    parser.add_argument("--airflow-home", type=Path, default=None,
                        help=f"the Airflow home, wiped at start (default: {_shown(DEMO_HOME)}; "
                             f"with --ui: {_shown(UI_HOME)})")
    args = parser.parse_args(argv)
    if not 1 <= args.websites <= 5:
        parser.error("--websites must be between 1 and 5")
    if not 0 <= args.identified <= args.sessions:
        parser.error("--identified must be between 0 and --sessions")
    if not 0 < args.cloud_period <= 3600:
        parser.error("--cloud-period must be more than 0 and at most 3600 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when it worked, 2 when it could not start (one line on stderr says why)."""
    args = parse_args(argv)
    signal.signal(signal.SIGINT, _stop_requested)
    signal.signal(signal.SIGTERM, _stop_requested)
    try:
        ports = resolve_ports(Ports(args.pg_port, args.mongo_port, args.umami_port,
                                    args.airflow_port if args.ui else None))
        print("== Starting PostgreSQL, the MongoDB wire server and the Umami API; generating the data ...",
              flush=True)
        with DemoServices(ports, websites=args.websites, sessions=args.sessions, identified=args.identified,
                          users=args.users, fail_website=args.fail_website, no_retries=args.no_retries,
                          slow_website=args.slow_website, slow_seconds=args.slow_seconds,
                          settings=args.settings, cloud=args.cloud, cloud_period=args.cloud_period) as services:
            print(services.describe(), flush=True)
            if args.ui:
                assert ports.airflow is not None
                return serve_ui(services, args.airflow_home or UI_HOME, ports.airflow, trigger=args.trigger)
            return run_once(services, args.airflow_home or DEMO_HOME)
    except (DemoError, AirflowError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\n== Interrupted: stopped everything", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())

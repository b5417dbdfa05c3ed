"""Suite-wide fixtures: a real PostgreSQL with Umami's schema and a real MongoDB wire server.

Both start once per test session on loopback. Point the suite at servers of your own with
``UMAMI_SYNC_TEST_PG_DSN`` (an empty database the tests may fill and truncate; its role creates one database
beside it per other schema level) and ``UMAMI_SYNC_TEST_MONGO_URI`` (e.g. a real ``mongod``); otherwise a
throwaway PostgreSQL cluster and SecantusDB are started here.

Umami's database is built by Umami's own migrations at the default level (3.1.0). A test marked
``@pytest.mark.umami_levels("2.20.2", "3.3")`` runs once per level named (every level when none is named),
each on a database of that level (fixture ``umami_level`` says which).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psycopg
import pymongo
import pytest
from pymongo import monitoring

# Airflow reads its configuration when first imported: give the tests their own home first.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="umami-sync-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).resolve().parents[1] / "dags"))

from local_stack.mongo import LocalMongo
from local_stack.postgres import DEFAULT_LEVEL, SCHEMA_LEVELS, LocalPostgres, create_database, load_umami_schema
from local_stack.umami_api import FakeUmami

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymongo.database import Database

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "umami" / "3.1.0"
UMAMI_TABLES = ("website_event", "event_data", "session_data", "session_link", "session", "website", "team",
                "team_user")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the Airflow home the suite made for itself (not one given through ``AIRFLOW_HOME``)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    if home.parent == Path(tempfile.gettempdir()) and home.name.startswith("umami-sync-airflow-"):
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def umami_fixtures() -> Path:
    """The folder of real Umami 3.1.0 responses and rows (``tests/fixtures/umami``, see its README)."""
    return FIXTURES


class UmamiDatabases:
    """Umami's database at each schema level on one server, each built when first asked for: the default level
    in the database of ``dsn``, every other one in a database beside it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._built: dict[str, str] = {}

    def at(self, level: str, name: str = "") -> str:
        """The DSN of the database of ``level`` (``name``: another one of that level, e.g. a wrong database)."""
        key = f"{level}{name}"
        if key not in self._built:
            dsn = self.dsn if key == DEFAULT_LEVEL else create_database(
                self.dsn, f"{urlsplit(self.dsn).path.lstrip('/')}_{re.sub(r'[^0-9a-z]', '_', key)}")
            load_umami_schema(dsn, level)
            self._built[key] = dsn
        return self._built[key]

    @staticmethod
    def empty(dsn: str) -> str:
        """The database at ``dsn`` with its tables of Umami's rows emptied."""
        with psycopg.connect(dsn) as conn:
            tables = [name for name in UMAMI_TABLES
                      if conn.execute("select to_regclass(%s)", (name,)).fetchone() != (None,)]
            conn.execute(f"TRUNCATE {', '.join(tables)}")
        return dsn


@pytest.fixture(scope="session")
def umami_databases() -> Iterator[UmamiDatabases]:
    """Umami's databases of every schema level, on one PostgreSQL server."""
    given = os.environ.get("UMAMI_SYNC_TEST_PG_DSN")
    if given:
        yield UmamiDatabases(given)
        return
    with LocalPostgres() as server:
        yield UmamiDatabases(server.dsn)


@pytest.fixture(scope="session")
def postgres_dsn(umami_databases: UmamiDatabases) -> str:
    """DSN of a PostgreSQL database holding Umami's schema at the default level."""
    return umami_databases.at(DEFAULT_LEVEL)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``umami_levels`` runs once per schema level it names (every level when none)."""
    marker = metafunc.definition.get_closest_marker("umami_levels")
    if marker is not None and "umami_level" in metafunc.fixturenames:
        levels = marker.args or tuple(SCHEMA_LEVELS)
        metafunc.parametrize("umami_level", levels, indirect=True, ids=[f"umami-{level}" for level in levels])


@pytest.fixture
def umami_level(request: pytest.FixtureRequest) -> str:
    """The schema level of the test's Umami database: the default, or one of its ``umami_levels`` marker."""
    level: str = getattr(request, "param", DEFAULT_LEVEL)
    return level


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """URI of a MongoDB wire server."""
    given = os.environ.get("UMAMI_SYNC_TEST_MONGO_URI")
    if given:
        yield given
        return
    with LocalMongo() as server:
        yield server.uri


@pytest.fixture
def umami_db(umami_databases: UmamiDatabases, umami_level: str) -> str:
    """Umami's database at the test's schema level with empty tables, for one test."""
    return umami_databases.empty(umami_databases.at(umami_level))


@pytest.fixture
def users_db(mongo_uri: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A fresh MongoDB database for one test, dropped afterwards."""
    name = "t_" + re.sub(r"[^A-Za-z0-9]", "_", request.node.name)[:50]
    client: pymongo.MongoClient = pymongo.MongoClient(mongo_uri)
    client.drop_database(name)
    yield client[name]
    client.drop_database(name)
    client.close()


def postgres_connection(dsn: str) -> str:
    """An Airflow connection (JSON form) for the PostgreSQL database at ``dsn``."""
    parts = urlsplit(dsn)
    return json.dumps({"conn_type": "postgres", "host": parts.hostname, "port": parts.port,
                       "login": parts.username, "password": parts.password, "schema": parts.path.lstrip("/")})


def mongo_connection(uri: str, database: str) -> str:
    """An Airflow connection (JSON form) for ``database`` on the MongoDB server at ``uri``."""
    parts = urlsplit(uri)
    return json.dumps({"conn_type": "mongo", "host": parts.hostname, "port": parts.port, "login": parts.username,
                       "password": parts.password, "schema": database})


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch, umami_db: str, mongo_uri: str,
                users_db: Database) -> Database:
    """``umami_db`` and ``users_mongo`` set through ``AIRFLOW_CONN_*`` for one test; returns the users DB."""
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", postgres_connection(umami_db))
    monkeypatch.setenv("AIRFLOW_CONN_USERS_MONGO", mongo_connection(mongo_uri, users_db.name))
    return users_db


def umami_api_connection(server: FakeUmami) -> str:
    """An Airflow connection (JSON form) for the local Umami API ``server``, as its user."""
    return json.dumps({"conn_type": "http", "host": server.url, "login": server.username,
                       "password": server.password})


@pytest.fixture
def umami_server(connections: Database, umami_db: str, umami_level: str,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUmami]:
    """The local Umami API of the test's version over ``umami_db``, set as connection ``umami_api`` (with the
    other two)."""
    with FakeUmami(umami_db, version=umami_level) as server:
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", umami_api_connection(server))
        yield server


class PortableCommands(monitoring.CommandListener):
    """Records every command that uses what the portable write path must not: a collation, ``$sortArray``,
    or an aggregation pipeline as an update. Registered once for every client; watching only while on."""

    def __init__(self) -> None:
        self.watching = False
        self.violations: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Check one command."""
        if not self.watching:
            return
        command = event.command
        parts = [command, *command.get("updates", []), *command.get("indexes", []), *command.get("deletes", [])]
        collated = any("collation" in part for part in parts if isinstance(part, dict))
        pipeline_update = any(isinstance(update.get("u"), list) for update in command.get("updates", []))
        if collated or pipeline_update or "$sortArray" in repr(command):
            self.violations.append(f"{event.command_name}: {repr(command)[:300]}")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Nothing to check."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Nothing to check."""


PORTABLE_COMMANDS = PortableCommands()
monitoring.register(PORTABLE_COMMANDS)


@pytest.fixture(params=["on", "off"], ids=["collation", "portable"])
def mongo_collation(request: pytest.FixtureRequest) -> Iterator[str]:
    """The ``mongo_collation`` setting of a test that runs on both write paths. On the portable one, a
    command that uses a collation, ``$sortArray`` or a pipeline update fails the test."""
    portable = request.param == "off"
    PORTABLE_COMMANDS.watching, PORTABLE_COMMANDS.violations = portable, []
    yield str(request.param)
    PORTABLE_COMMANDS.watching = False
    if portable:
        assert PORTABLE_COMMANDS.violations == [], "the portable path sent commands other servers refuse"


def documents(collection: Any) -> list[bytes]:
    """Every document of ``collection`` as BSON, in ``_id`` order (to compare two runs byte for byte)."""
    import bson

    return [bson.encode(document) for document in collection.find().sort("_id", 1)]

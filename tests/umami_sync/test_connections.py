"""Bounded waits: the database hooks' defaults, and what a server that stops answering with the connection open
does to a stage, through a real TCP proxy in front of the real servers."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from pymongo.errors import NetworkTimeout, ServerSelectionTimeoutError

from local_stack.tcp_proxy import Mode, TcpProxy
from tests.factories import UmamiRows, add_user, at
from umami_sync.connections import MONGO_DEFAULTS, UmamiDatabaseHook, UsersMongoHook
from umami_sync.settings import SyncSettings
from umami_sync.windows import DataInterval
from umami_sync.wiring import sync_sessions

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymongo.database import Database

pytestmark = pytest.mark.integration

DAY = DataInterval(at(0), at(0, day=28))


def pg_connection(dsn: str, host: str, port: int, **extra: Any) -> str:
    parts = urlsplit(dsn)
    return json.dumps({"conn_type": "postgres", "host": host, "port": port, "login": parts.username,
                       "schema": parts.path.lstrip("/"), "extra": extra})


@pytest.fixture
def pg_proxy(umami_db: str) -> Iterator[TcpProxy]:
    parts = urlsplit(umami_db)
    with TcpProxy("127.0.0.1", parts.port or 5432) as proxy:
        yield proxy


def test_postgres_connections_get_timeouts_unless_the_connection_sets_its_own(
        umami_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = urlsplit(umami_db)
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", pg_connection(umami_db, "127.0.0.1", parts.port or 5432))
    with UmamiDatabaseHook().get_conn() as conn:
        params = conn.info.get_parameters()
        assert (params["connect_timeout"], params["keepalives"], params["tcp_user_timeout"]) == ("10", "1", "60000")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5min",)
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", pg_connection(
        umami_db, "127.0.0.1", parts.port or 5432, connect_timeout=3, statement_timeout=1500,
        options="-c application_name=sync"))
    hook = UmamiDatabaseHook()
    with hook.get_conn() as conn:
        assert conn.info.get_parameters()["connect_timeout"] == "3"
        assert conn.execute("SHOW statement_timeout").fetchone() == ("1500ms",)
        assert conn.execute("SHOW application_name").fetchone() == ("sync",)
    assert hook.answer_timeout == 3.0  # the statement timeout, and as long again for the answer


def test_a_postgres_that_accepts_but_never_answers_fails_the_session_sync_in_bounded_time(
        pg_proxy: TcpProxy, umami_db: str, connections: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = UmamiRows(umami_db)
    add_user(connections["users"], "ada@example.com")
    rows.session(at(9), distinct_id="ada@example.com")
    rows.close()
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", pg_connection(umami_db, "127.0.0.1", pg_proxy.port,
                                                              statement_timeout=1000, connect_timeout=2))
    pg_proxy.set_mode(Mode.STALL)  # the TCP connection opens, then nothing comes back: not even the login

    started = time.monotonic()
    stalled = sync_sessions(SyncSettings(), DAY)
    assert time.monotonic() - started < 10  # connect_timeout, not for ever
    assert not stalled.succeeded
    assert stalled.error is not None and stalled.error.startswith("ConnectionTimeout:")

    pg_proxy.set_mode(Mode.PASS)  # the retry of the task heals it
    assert sync_sessions(SyncSettings(), DAY).modified == 1


def test_a_postgres_stalling_in_the_middle_of_the_stream_is_cut(
        pg_proxy: TcpProxy, umami_db: str, connections: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = UmamiRows(umami_db)
    for n in range(30):
        rows.session(at(9, n), distinct_id=f"u{n}@example.com")
    rows.close()
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", pg_connection(umami_db, "127.0.0.1", pg_proxy.port,
                                                              statement_timeout=1000))
    from umami_sync.umami.db import UmamiDatabase

    stream = UmamiDatabase(UmamiDatabaseHook(), fetch_size=10).identity_rows(DAY, "email")
    first = next(stream)
    pg_proxy.set_mode(Mode.STALL)
    started = time.monotonic()

    with pytest.raises(TimeoutError, match=r"Umami's PostgreSQL \(connection 'umami_db'\): no answer within 2 s"):
        list(stream)

    assert first.identity is not None
    assert time.monotonic() - started < 10


def test_mongo_clients_get_timeouts_unless_the_connection_sets_its_own(mongo_uri: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    parts = urlsplit(mongo_uri)
    base = {"conn_type": "mongo", "host": parts.hostname, "port": parts.port, "schema": "t_defaults"}
    monkeypatch.setenv("AIRFLOW_CONN_USERS_MONGO", json.dumps(base))
    options = UsersMongoHook().get_conn().options
    assert options.pool_options.socket_timeout == MONGO_DEFAULTS["socketTimeoutMS"] / 1000
    assert options.pool_options.connect_timeout == MONGO_DEFAULTS["connectTimeoutMS"] / 1000
    assert options.server_selection_timeout == MONGO_DEFAULTS["serverSelectionTimeoutMS"] / 1000
    assert options.pool_options.max_idle_time_seconds == MONGO_DEFAULTS["maxIdleTimeMS"] / 1000
    monkeypatch.setenv("AIRFLOW_CONN_USERS_MONGO", json.dumps({**base, "extra": {"sockettimeoutms": 2500}}))
    assert UsersMongoHook().get_conn().options.pool_options.socket_timeout == 2.5


def test_a_mongo_that_stops_answering_fails_the_session_sync_in_bounded_time(
        mongo_uri: str, umami_db: str, connections: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import postgres_connection

    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", postgres_connection(umami_db))
    rows = UmamiRows(umami_db)
    add_user(connections["users"], "bo@example.com")
    rows.session(at(9), distinct_id="bo@example.com")
    rows.close()
    parts = urlsplit(mongo_uri)
    with TcpProxy("127.0.0.1", parts.port or 27017) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_USERS_MONGO", json.dumps({
            "conn_type": "mongo", "host": "127.0.0.1", "port": proxy.port, "schema": connections.name,
            "extra": {"socketTimeoutMS": 1000, "serverSelectionTimeoutMS": 2000}}))
        proxy.stall_after(0)
        started = time.monotonic()

        stalled = sync_sessions(SyncSettings(mongo_collation="off"), DAY, now=datetime(2026, 11, 28, tzinfo=UTC))

        assert time.monotonic() - started < 15
        assert stalled.error is not None  # whichever call the stall hits
        assert stalled.error.split(":")[0] in {NetworkTimeout.__name__, ServerSelectionTimeoutError.__name__}
        proxy.set_mode(Mode.PASS)
        assert sync_sessions(SyncSettings(mongo_collation="off"), DAY).modified == 1

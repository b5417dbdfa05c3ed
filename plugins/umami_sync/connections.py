"""The hooks of the two databases, with bounded waits unless the connection sets its own.

Without them a server that stops answering with the connection open blocks a task until its
``execution_timeout``: libpq and pymongo wait for ever by default. Every default below gives way to the
same key in the connection's extras (see the README, "Timeouts").
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymongo import MongoClient

POSTGRES_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 10,  # seconds to connect
    "keepalives": 1,  # a peer that vanished is noticed on an idle connection ...
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,  # ... and while data waits to be acknowledged (ms, Linux)
}
STATEMENT_TIMEOUT_MS = 300_000
"""Default ``statement_timeout`` (extra ``statement_timeout``, ms): the server cancels a longer statement."""
ANSWER_GRACE_SECONDS = 30.0
"""How much longer than the statement timeout (at most) the client waits for an answer before it cuts the
connection: the statement timeout itself, up to this many seconds."""
MONGO_DEFAULTS: dict[str, Any] = {
    "connectTimeoutMS": 10_000,
    "serverSelectionTimeoutMS": 30_000,
    "socketTimeoutMS": 120_000,  # pymongo's default is none: a silent server would block for ever
    "maxIdleTimeMS": 120_000,  # Cosmos DB drops connections idle for 4 minutes
}


class UmamiDatabaseHook(PostgresHook):
    """Umami's PostgreSQL database (read only), with connect, keepalive and statement timeouts by default.

    :param statement_timeout_ms: ``statement_timeout`` when the connection's extras give none.
    """

    conn_name_attr = "postgres_conn_id"
    default_conn_name = "umami_db"
    conn_type = "postgres"
    hook_name = "Umami database"
    ignored_extra_options = PostgresHook.ignored_extra_options | {"statement_timeout"}

    def __init__(self, *args: Any, statement_timeout_ms: int = STATEMENT_TIMEOUT_MS, **kwargs: Any) -> None:
        kwargs.setdefault("postgres_conn_id", self.default_conn_name)
        super().__init__(*args, **kwargs)
        self._default_statement_timeout_ms = statement_timeout_ms

    @property
    def statement_timeout_ms(self) -> int:
        """The connection's ``statement_timeout`` extra, or the default."""
        return int(self.connection.extra_dejson.get("statement_timeout", self._default_statement_timeout_ms))

    @property
    def answer_timeout(self) -> float:
        """Seconds the client waits for any one answer of the server (see :func:`answer_within`)."""
        statement = self.statement_timeout_ms / 1000
        return statement + min(statement, ANSWER_GRACE_SECONDS)

    def _create_connection(self, conn_args: dict[str, Any]) -> Any:
        for name, value in POSTGRES_DEFAULTS.items():
            conn_args.setdefault(name, value)
        options = conn_args.get("options") or ""
        if "statement_timeout" not in options:
            conn_args["options"] = f"{options} -c statement_timeout={self.statement_timeout_ms}".strip()
        return super()._create_connection(conn_args)


@contextmanager
def answer_within(connection: Any, seconds: float, *, what: str) -> Iterator[None]:
    """Cut ``connection``'s socket when the server has not answered within ``seconds``.

    libpq has no read timeout, and a peer that keeps the TCP connection open (a proxy, a frozen server)
    passes every keepalive: this is the bound of last resort. The blocked call then fails with
    :class:`TimeoutError`, which names ``what``.
    """
    cut = threading.Event()

    def shut() -> None:
        cut.set()
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(connection.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, shut)
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception as exc:
        if cut.is_set():
            raise TimeoutError(f"{what}: no answer within {seconds:g} s; the connection was cut") from exc
        raise
    finally:
        timer.cancel()


class UsersMongoHook(MongoHook):
    """The application's MongoDB (schema = database), with connect, selection and socket timeouts by default."""

    conn_name_attr = "mongo_conn_id"
    default_conn_name = "users_mongo"
    conn_type = "mongo"
    hook_name = "Users MongoDB"

    def __init__(self, mongo_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(mongo_conn_id, **kwargs)

    def get_conn(self) -> MongoClient[Any]:
        """The cached client; :data:`MONGO_DEFAULTS` fill in what the connection's extras leave out."""
        if self.client is None:
            given = {name.lower() for name in self.extras}
            self.extras.update({name: value for name, value in MONGO_DEFAULTS.items() if name.lower() not in given})
        client: MongoClient[Any] = super().get_conn()
        return client

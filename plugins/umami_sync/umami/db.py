"""Reads of Umami's PostgreSQL database: identity rows, streamed through a server-side cursor, and the events of
single sessions (first and last events, figures, and whether stored figures hold), one query per page.

The queries live beside this module in ``sql/`` (shipped inside the package, so a plugins.zip deploy
carries them too). Every round trip to the server is bounded (:func:`umami_sync.connections.answer_within`).
The tables the server has are looked at once (:attr:`UmamiDatabase.tables`): Umami 3.3 added ``session_link``.
"""

from __future__ import annotations

import contextlib
import uuid
from contextlib import closing
from datetime import datetime
from functools import cache, cached_property
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

import psycopg
from pydantic import TypeAdapter

from umami_sync.connections import answer_within
from umami_sync.umami.activity import ActivityFigures
from umami_sync.umami.identity_row import IdentityRow

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from contextlib import AbstractContextManager

    from umami_sync.connections import UmamiDatabaseHook
    from umami_sync.windows import DataInterval


IDENTITY_ROWS: TypeAdapter[list[IdentityRow]] = TypeAdapter(list[IdentityRow])
"""Validates one fetch of :meth:`UmamiDatabase.identity_rows` (psycopg's tuples) into :class:`IdentityRow`."""

StoredFigures = tuple[str, str, datetime, datetime, int, int]
"""What a stored figure says of a session: (session id, website id, first event, last event, views, visits)."""


class UmamiSchemaError(RuntimeError):
    """The database lacks a table every Umami version has: it is not Umami's database."""


IDENTITY_TABLES = ("session", "session_data")
"""The tables of identities every Umami version has (``session_link`` only from 3.3 on)."""


@cache
def query(name: str) -> str:
    """The text of ``sql/<name>.sql``."""
    return (resources.files(__package__) / "sql" / f"{name}.sql").read_text()


def identity_query(name: str, *, links: bool) -> str:
    """``sql/<name>.sql`` reading the ``session_link`` rows (``links``: the database has that table) or none."""
    return query(name).replace("{session_links}", query("session_links" if links else "no_session_links"))


class UmamiDatabase:
    """Reads what both stages need from Umami's tables, through one hook.

    :param websites: only these websites' rows (empty: every website).
    """

    def __init__(self, hook: UmamiDatabaseHook, *, websites: Sequence[str] = (), fetch_size: int = 5000) -> None:
        self.hook = hook
        self.websites = list(websites) or None
        self.fetch_size = fetch_size
        self._conn: Any = None

    @cached_property
    def tables(self) -> frozenset[str]:
        """The tables the sync reads that this database has, looked at once."""
        with closing(self._connect()) as conn, conn.cursor() as cursor, self._answer(conn):
            cursor.execute(query("umami_tables"))
            return frozenset(name for (name,) in cursor.fetchall())

    def count_anonymous(self, window: DataInterval, data_key: str) -> int:
        """Sessions created in ``window`` with no distinct_id, no identity key in session_data and no link."""
        with closing(self._connect()) as conn, conn.cursor() as cursor, self._answer(conn):
            cursor.execute(self._identity_query("anonymous_sessions"), self._params(window, data_key))
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def has_sessions(self, website_id: str, window: DataInterval) -> bool:
        """Whether this database holds a session of ``website_id`` with an event in ``window`` (not when it has no
        such tables)."""
        if not {"session", "website_event"} <= self.tables:
            return False
        with closing(self._connect()) as conn, conn.cursor() as cursor, self._answer(conn):
            cursor.execute(query("sessions_present"), {"website": website_id, "start": window.start,
                                                       "end": window.end})
            row = cursor.fetchone()
        return bool(row and row[0])

    def identity_rows(self, window: DataInterval, data_key: str) -> Iterator[IdentityRow]:
        """Stream the identity rows of ``window`` grouped by identity, newest first within one identity.

        A named (server-side) cursor keeps memory flat whatever the number of rows. It is held (``WITH HOLD``)
        outside any transaction, so a reader that waits between fetches (for MongoDB) does not keep a transaction
        open, which a server with ``idle_in_transaction_session_timeout`` would end mid-way.
        """
        with closing(self._connect()) as conn:
            conn.autocommit = True
            cursor = conn.cursor(name=f"umami_identities_{uuid.uuid4().hex}", withhold=True)
            try:
                with self._answer(conn):
                    cursor.execute(self._identity_query("identities"), self._params(window, data_key))
                while True:
                    with self._answer(conn):
                        rows = cursor.fetchmany(self.fetch_size)
                    if not rows:
                        break
                    yield from IDENTITY_ROWS.validate_python(rows)
            finally:
                with contextlib.suppress(psycopg.Error):  # a connection cut by answer_within is gone
                    cursor.close()

    def event_spans(self, sessions: Sequence[str], interval: DataInterval) -> dict[str, tuple[datetime, datetime]]:
        """The first and last event time in ``interval`` of each of ``sessions`` that has one (on these
        websites), through the connection kept between reads (see :meth:`close`)."""
        if not sessions:
            return {}
        rows = self._kept_read("event_spans", {"sessions": list(sessions), "websites": self.websites,
                                               "start": interval.start, "end": interval.end})
        return {session_id: (first, last) for session_id, first, last in rows}

    def session_figures(self, website_id: str, sessions: Sequence[str],
                        window: DataInterval) -> dict[str, ActivityFigures]:
        """The figures in ``window`` of each of ``sessions`` (of ``website_id``) that has events there, counted as
        Umami's session list counts them (``sql/session_figures.sql``); one query."""
        if not sessions:
            return {}
        rows = self._kept_read("session_figures", {"website": website_id, "sessions": list(sessions),
                                                   "start": window.start, "end": window.end})
        return {session_id: ActivityFigures(first, last, views, visits)
                for session_id, first, last, views, visits in rows}

    def disproved_figures(self, figures: Sequence[StoredFigures]) -> set[int]:
        """The positions in ``figures`` (session, website, first, last, views, visits) that the session's own events
        do not bear out (``sql/stored_figures.sql``); one query."""
        if not figures:
            return set()
        sessions, websites, firsts, lasts, views, visits = (list(column) for column in zip(*figures, strict=True))
        rows = self._kept_read("stored_figures", {"sessions": sessions, "websites": websites, "firsts": firsts,
                                                  "lasts": lasts, "views": views, "visits": visits})
        return {position - 1 for (position,) in rows}

    def _kept_read(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of ``sql/<name>.sql`` through one connection kept for the next read (see :meth:`close`)."""
        if self._conn is None:
            self._conn = self._connect()
            self._conn.autocommit = True
        with self._conn.cursor() as cursor, self._answer(self._conn):
            cursor.execute(query(name), params)
            return list(cursor.fetchall())

    def close(self) -> None:
        """Close the connection the reads of single sessions keep."""
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def _connect(self) -> psycopg.Connection[Any]:
        """A new connection (PostgresHook runs psycopg 3 here)."""
        return cast("psycopg.Connection[Any]", self.hook.get_conn())

    def _answer(self, conn: object) -> AbstractContextManager[None]:
        return answer_within(conn, self.hook.answer_timeout,
                             what=f"Umami's PostgreSQL (connection {self.hook.postgres_conn_id!r})")

    def _identity_query(self, name: str) -> str:
        """``sql/<name>.sql`` reading ``session_link`` where this database has it.

        :raises UmamiSchemaError: when the database lacks a table of identities every Umami version has.
        """
        missing = [table for table in IDENTITY_TABLES if table not in self.tables]
        if missing:
            raise UmamiSchemaError(
                f"Umami's PostgreSQL (connection {self.hook.postgres_conn_id!r}) has no table {', '.join(missing)} "
                "in its schema: the connection points at another database or schema")
        return identity_query(name, links="session_link" in self.tables)

    def _params(self, window: DataInterval, data_key: str) -> dict[str, object]:
        return {"start": window.start, "end": window.end, "data_key": data_key, "websites": self.websites}

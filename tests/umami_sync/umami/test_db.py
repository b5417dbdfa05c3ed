"""Reading Umami's PostgreSQL: the identity stream against a real server, at every schema level."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import urlsplit

import pytest
from pydantic import ValidationError

from local_stack.postgres import create_database
from tests.conftest import postgres_connection
from tests.factories import WEBSITE, UmamiRows, at
from umami_sync.connections import UmamiDatabaseHook
from umami_sync.umami.db import IDENTITY_ROWS, UmamiDatabase, UmamiSchemaError
from umami_sync.umami.identity_row import IdentityRow
from umami_sync.windows import DataInterval

pytestmark = pytest.mark.integration

DAY = DataInterval(at(0), at(0, day=28))


def test_the_identity_stream_survives_a_server_that_ends_idle_transactions(
        umami_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``idle_in_transaction_session_timeout`` set, a stream that keeps a transaction open while its reader
    waits (for MongoDB) dies mid-way on every try; the stream holds its rows outside a transaction instead."""
    rows = UmamiRows(umami_db)
    for n in range(6):
        rows.session(at(9, n), distinct_id=f"slow{n}@example.com")
    rows.close()
    parts = urlsplit(umami_db)
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", json.dumps({
        "conn_type": "postgres", "host": parts.hostname, "port": parts.port, "login": parts.username,
        "schema": parts.path.lstrip("/"), "extra": {"options": "-c idle_in_transaction_session_timeout=300"}}))

    read = []
    for row in UmamiDatabase(UmamiDatabaseHook(), fetch_size=2).identity_rows(DAY, "email"):
        read.append(row.identity)
        time.sleep(0.25)  # the writer is busy: two fetches are more than 300 ms apart

    assert sorted(read) == [f"slow{n}@example.com" for n in range(6)]


@pytest.mark.umami_levels
def test_identities_come_from_every_source_the_server_has(umami_db: str, umami_level: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    rows = UmamiRows(umami_db, umami_level)
    first = rows.session(at(8), distinct_id="ann@example.com")
    rows.session_data(rows.session(at(9)), at(9, 5), value="bo@example.com")
    rows.session(at(10), distinct_id="cy@example.com", website_id="5b3a2b8e-2d0e-4c39-9f7e-0f2a9d3c6e11")
    if rows.links:
        rows.identify(first, "dee@example.com", at(11))  # another person on Ann's session
    rows.close()
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", postgres_connection(umami_db))
    database = UmamiDatabase(UmamiDatabaseHook(), websites=[WEBSITE])

    found = [(row.identity, row.source, row.seen_at) for row in database.identity_rows(DAY, "email")]

    linked = [("dee@example.com", "session_link", at(11))] if umami_level == "3.3" else []
    distinct = "dee@example.com" if linked else "ann@example.com"  # the last identify wins on 3.3
    assert sorted(found) == sorted([(distinct, "distinct_id", at(8)), ("bo@example.com", "session_data", at(9, 5)),
                                    *linked])
    assert ("session_link" in database.tables) == bool(linked)
    assert database.count_anonymous(DAY, "email") == 0


def test_a_database_without_umamis_tables_is_named(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection to another database fails saying so, not with PostgreSQL's "relation does not exist"."""
    other = create_database(postgres_dsn, f"not_umami_{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", postgres_connection(other))

    with pytest.raises(UmamiSchemaError, match=r"connection 'umami_db'\) has no table session, session_data in its "
                                               r"schema: the connection points at another database or schema"):
        list(UmamiDatabase(UmamiDatabaseHook()).identity_rows(DAY, "email"))


def test_a_fetch_of_rows_is_validated_in_one_call_into_plain_rows() -> None:
    fetched = [("Ann@x.io", "s1", WEBSITE, at(9), "distinct_id"), (None, "s2", WEBSITE, at(8), "session_data")]

    rows = IDENTITY_ROWS.validate_python(fetched)

    assert rows == [IdentityRow(identity="Ann@x.io", session_id="s1", website_id=WEBSITE, seen_at=at(9),
                                source="distinct_id"), IdentityRow(None, "s2", WEBSITE, at(8), "session_data")]
    assert all(isinstance(row, IdentityRow) for row in rows)
    with pytest.raises(ValidationError, match="Input should be 'distinct_id', 'session_link' or 'session_data'"):
        IDENTITY_ROWS.validate_python([*fetched, ("b@x.io", "s3", WEBSITE, at(7), "somewhere else")])

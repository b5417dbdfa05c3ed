"""Reading Umami's PostgreSQL: the identity stream against a real server."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest

from tests.factories import UmamiRows, at
from umami_sync.connections import UmamiDatabaseHook
from umami_sync.umami.db import UmamiDatabase
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

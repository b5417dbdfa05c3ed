"""The limits the sync is held against: the same reads and writes with nothing but the drivers.

- :func:`read_rows`: a psycopg server-side (named) cursor over the very query the session stage runs;
- :class:`OperationsRecorder` + :func:`replay`: the update operations the sync sent, recorded from the
  wire in an untimed run, then sent again with bare ``bulk_write`` calls, one per recorded batch;
- :func:`page_sessions`: the Umami API pages a website's sessions come in, through one keep-alive
  ``requests`` session.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import bson
import psycopg
import requests
from pymongo import UpdateMany, UpdateOne, monitoring
from pymongo.collation import Collation

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from pymongo.collection import Collection


@dataclass
class BareFigures:
    """What a bare run did and how long its timed part took."""

    seconds: float = 0.0
    rows: int = 0
    calls: int = 0
    matched: int = 0
    modified: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready figures."""
        return asdict(self)


def read_rows(dsn: str, query: str, params: dict[str, Any], *, fetch_size: int = 10_000) -> BareFigures:
    """Stream every row of ``query`` through a named cursor, keeping none of them."""
    figures = BareFigures()
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor(name="bench_bare_read") as cursor:
        cursor.itersize = fetch_size
        cursor.execute(query, params)
        for _ in cursor:
            figures.rows += 1
    figures.seconds = time.perf_counter() - started
    figures.calls = 1
    return figures


class OperationsRecorder(monitoring.CommandListener):
    """Append every ``update`` command sent to ``collection`` to a file, one BSON document per command."""

    def __init__(self, sink: BinaryIO, collection: str) -> None:
        self.sink = sink
        self.collection = collection
        self.commands = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Record the operations of one ``update`` command."""
        if event.command_name == "update" and event.command.get("update") == self.collection:
            self.sink.write(bson.encode({"updates": list(event.command["updates"])}))
            self.commands += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Nothing to do."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Nothing to do."""


def _operation(update: dict[str, Any]) -> UpdateOne | UpdateMany:
    kind = UpdateMany if update.get("multi") else UpdateOne
    collation = Collation(**update["collation"]) if update.get("collation") else None
    return kind(update["q"], update["u"], upsert=bool(update.get("upsert")), collation=collation,
                array_filters=update.get("arrayFilters"), hint=update.get("hint"))


def recorded_batches(path: Path) -> Iterator[list[UpdateOne | UpdateMany]]:
    """The recorded commands of ``path``, each as the list of operations it carried."""
    with path.open("rb") as source:
        for command in bson.decode_file_iter(source):
            yield [_operation(update) for update in command["updates"]]


def replay(users: Collection[dict[str, Any]], path: Path) -> BareFigures:
    """Send the recorded operations again, one unordered ``bulk_write`` per recorded command; only
    the ``bulk_write`` calls are timed."""
    figures = BareFigures()
    for batch in recorded_batches(path):
        started = time.perf_counter()
        result = users.bulk_write(batch, ordered=False)
        figures.seconds += time.perf_counter() - started
        figures.calls += 1
        figures.rows += len(batch)
        figures.matched += result.matched_count
        figures.modified += result.modified_count
    return figures


def page_sessions(base_url: str, website_ids: list[str], *, start_ms: int, end_ms: int, page_size: int,
                  username: str, password: str) -> BareFigures:
    """Fetch every session page of every website once, in as few requests as ``page_size`` allows."""
    figures = BareFigures()
    started = time.perf_counter()
    with requests.Session() as http:
        login = http.post(f"{base_url}/api/auth/login", json={"username": username, "password": password},
                          timeout=600)
        login.raise_for_status()
        http.headers["Authorization"] = f"Bearer {login.json()['token']}"
        figures.calls += 1
        for website_id in website_ids:
            page, pages = 1, 1
            while page <= pages:
                response = http.get(f"{base_url}/api/websites/{website_id}/sessions", timeout=600,
                                    params={"startAt": start_ms, "endAt": end_ms, "page": page,
                                            "pageSize": page_size})
                response.raise_for_status()
                body = response.json()
                figures.calls += 1
                figures.rows += len(body["data"])
                pages = max(math.ceil(body["count"] / page_size), 1)
                page += 1
    figures.seconds = time.perf_counter() - started
    return figures

"""The original Azure Functions tool's approach, reimplemented faithfully as the benchmark's baseline.

What it did (FACTS.md, and the issue):

- session sync: fetch every session created in the window (``fetchall``; anonymous ones included, it
  never filtered out a NULL ``distinct_id``), match users by ``email == lower(distinct_id)`` and set their
  ``session_id``, in ordered ``bulk_write`` batches of 100, with no index on ``email``;
- analytics sync: one website after another, page through ``/api/websites/{id}/sessions`` with
  ``pageSize=100`` (a new HTTP connection per call), and set ``umamiAnalytics`` on the user found by
  ``session_id`` (no index), in ordered batches of 100.

On a slow server this runs for hours, so both stages can be timed on a measured sample: the reads
that are cheap run in full; the writes (and the API pages) run on a random sample of the stream until a
time budget is spent, and the rest is extrapolated per operation (per page for the API). Sampled
writes go out in chunks that grow from 5 to the tool's 100 operations while each chunk stays well
inside the budget: on a server where one unindexed update costs a collection scan, a chunk of 100
would alone overrun it, and the per-operation cost does not depend on the chunk.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import psycopg
import requests
from pymongo import UpdateOne

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from pymongo.collection import Collection

PAGE_SIZE = 100
BATCH_SIZE = 100
_FIRST_CHUNK = 5
_SAMPLE_SEED = 7
_SESSIONS_SQL = """
SELECT session_id::text, lower(distinct_id) AS email
FROM session
WHERE created_at >= %(start)s AND created_at < %(end)s
"""


@dataclass
class BaselineStage:
    """Figures of one baseline stage; ``seconds`` is measured when ``extrapolated`` is false."""

    stage: str
    seconds: float = 0.0
    measured_seconds: float = 0.0
    extrapolated: bool = False
    read_rows: int = 0
    read_seconds: float = 0.0
    operations: int = 0
    sampled_operations: int = 0
    write_seconds: float = 0.0
    bulk_writes: int = 0
    matched: int = 0
    http_requests: int = 0
    sampled_http_requests: int = 0
    http_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready figures."""
        return asdict(self)


class _Budget:
    """Wall-clock budget of a sampled phase."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds
        self.seconds = seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def _write_sample(users: Collection[dict[str, Any]], operations: list[UpdateOne], budget: _Budget,
                  figures: BaselineStage) -> None:
    """Write ``operations`` (already in sample order) until the budget is spent; extrapolate the rest."""
    done = 0
    chunk = _FIRST_CHUNK
    while done < len(operations) and (done == 0 or budget.left() > 0):
        part = operations[done:done + chunk]
        result, seconds = _timed(partial(users.bulk_write, part))
        figures.write_seconds += seconds
        figures.matched += result.matched_count
        figures.bulk_writes += 1
        done += len(part)
        if seconds * 20 < budget.seconds:
            chunk = min(chunk * 2, BATCH_SIZE)
    figures.sampled_operations += done
    if done < len(operations):
        figures.extrapolated = True
        figures.write_seconds *= len(operations) / done


def _sample_order(operations: list[UpdateOne]) -> list[UpdateOne]:
    """The operations in batches of 100, batches in a random (seeded) order: a fair sample of any prefix."""
    batches = [operations[i:i + BATCH_SIZE] for i in range(0, len(operations), BATCH_SIZE)]
    random.Random(_SAMPLE_SEED).shuffle(batches)
    return [operation for batch in batches for operation in batch]


def session_operations(dsn: str, start: datetime, end: datetime, figures: BaselineStage) -> list[UpdateOne]:
    """The tool's read: every session of the window at once, each turned into one update."""
    def read() -> list[tuple[str, str | None]]:
        with psycopg.connect(dsn) as conn:
            return conn.execute(_SESSIONS_SQL, {"start": start, "end": end}).fetchall()

    rows, figures.read_seconds = _timed(read)
    figures.read_rows = len(rows)
    return [UpdateOne({"email": email}, {"$set": {"session_id": session_id}}) for session_id, email in rows]


def run_session_sync(dsn: str, users: Collection[dict[str, Any]], start: datetime, end: datetime, *,
                     budget_seconds: float) -> BaselineStage:
    """Stage 1 the original way; the writes run in full or on a sample that fits ``budget_seconds``."""
    figures = BaselineStage("sessions")
    started = time.perf_counter()
    operations = session_operations(dsn, start, end, figures)
    figures.operations = len(operations)
    _write_sample(users, _sample_order(operations), _Budget(budget_seconds), figures)
    figures.measured_seconds = time.perf_counter() - started
    figures.seconds = figures.read_seconds + figures.write_seconds
    if figures.extrapolated:
        figures.notes.append(
            f"writes timed on {figures.sampled_operations} of {figures.operations} operations, extrapolated")
    return figures


def finish_session_sync(dsn: str, users: Collection[dict[str, Any]], start: datetime, end: datetime) -> int:
    """Leave the users as the full stage 1 would (a temporary index makes it quick); not timed."""
    operations = session_operations(dsn, start, end, BaselineStage("sessions"))
    users.create_index("email", name="baseline_tmp_email")
    try:
        return sum(users.bulk_write(operations[i:i + BATCH_SIZE]).matched_count
                   for i in range(0, len(operations), BATCH_SIZE))
    finally:
        users.drop_index("baseline_tmp_email")


class _Api:
    """The tool's HTTP use: ``requests`` without a session, so one connection per call."""

    def __init__(self, base_url: str, username: str, password: str, figures: BaselineStage) -> None:
        self.base_url = base_url.rstrip("/")
        self.figures = figures
        login = self._call(lambda: requests.post(f"{self.base_url}/api/auth/login",
                                                 json={"username": username, "password": password}, timeout=600))
        self.headers = {"Authorization": f"Bearer {login['token']}"}
        figures.http_requests += 1

    def _call(self, send: Callable[[], requests.Response]) -> Any:
        response, seconds = _timed(send)
        response.raise_for_status()
        self.figures.http_seconds += seconds
        self.figures.sampled_http_requests += 1
        return response.json()

    def page(self, website_id: str, start_ms: int, end_ms: int, page: int) -> dict[str, Any]:
        params: dict[str, str | int] = {"startAt": start_ms, "endAt": end_ms, "page": page, "pageSize": PAGE_SIZE}
        body: dict[str, Any] = self._call(lambda: requests.get(
            f"{self.base_url}/api/websites/{website_id}/sessions", params=params, headers=self.headers,
            timeout=600))
        return body


def _analytics_update(session: dict[str, Any]) -> UpdateOne:
    analytics = {key: session.get(key) for key in ("browser", "os", "device", "screen", "language", "country",
                                                    "region", "city", "firstAt", "lastAt", "visits", "views",
                                                    "events")}
    return UpdateOne({"session_id": session["id"]}, {"$set": {"umamiAnalytics": analytics}})


def run_analytics_sync(base_url: str, website_ids: list[str], users: Collection[dict[str, Any]], *,
                       start_ms: int, end_ms: int, username: str, password: str,
                       budget_seconds: float) -> BaselineStage:
    """Stage 2 the original way, website after website; pages and writes sampled within ``budget_seconds``.

    Each website gets an equal share of the budget, half for its pages, half for its writes. Page 1 is
    always fetched (it carries the count); other pages are fetched in random order until the share is
    spent, and their sessions make up the write sample.
    """
    figures = BaselineStage("analytics")
    started = time.perf_counter()
    api = _Api(base_url, username, password, figures)
    share = budget_seconds / max(len(website_ids), 1) / 2
    http_estimate = 0.0
    write_estimate = 0.0
    for website_id in website_ids:
        site = BaselineStage("analytics")
        site_api_start = figures.http_seconds
        first = api.page(website_id, start_ms, end_ms, 1)
        pages = max(math.ceil(first["count"] / PAGE_SIZE), 1)
        figures.http_requests += pages
        figures.operations += first["count"]
        sessions = list(first["data"])
        others = list(range(2, pages + 1))
        random.Random(_SAMPLE_SEED).shuffle(others)
        budget = _Budget(share)
        fetched = 1
        for page in others:
            if budget.left() <= 0:
                break
            sessions.extend(api.page(website_id, start_ms, end_ms, page)["data"])
            fetched += 1
        site_http = figures.http_seconds - site_api_start
        http_estimate += site_http * pages / fetched
        _write_sample(users, [_analytics_update(session) for session in sessions], _Budget(share), site)
        per_operation = site.write_seconds / max(len(sessions), 1)
        write_estimate += per_operation * first["count"]
        figures.sampled_operations += site.sampled_operations
        figures.bulk_writes += site.bulk_writes
        figures.matched += site.matched
        figures.extrapolated = figures.extrapolated or site.extrapolated or fetched < pages
    figures.measured_seconds = time.perf_counter() - started
    figures.http_seconds, figures.write_seconds = http_estimate, write_estimate
    figures.seconds = http_estimate + write_estimate
    if figures.extrapolated:
        figures.notes.append(
            f"{figures.sampled_http_requests - 1} of {figures.http_requests} pages and "
            f"{figures.sampled_operations} of {figures.operations} writes timed, extrapolated")
    return figures

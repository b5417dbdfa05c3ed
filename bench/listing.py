"""The listing at the sizes real sites have, without the slow servers: generated list pages through the product's
page validation, :class:`~umami_sync.umami.listing.SessionListing` and the figure rules (``plan_page``,
``page_analytics``), with no HTTP and no MongoDB.

Each page is made by the fetch as Umami's API answers it (a JSON body: one object per row, newest first, millisecond
times) and validated from that body as the hook does; one session in :data:`MULTI_HOSTNAME_EVERY` has a second row on
another hostname, so that sessions are read "from their events" too (their figures are made up here, as a read would
return them). The CPU the fetch spends making a page is measured apart and taken out of the listing's own figure. The
run is wrapped as the stage-2 runner wraps a job (``collector_spared``, where the product has it).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from umami_sync.stages.analytics import runner
from umami_sync.stages.analytics.figures import page_analytics, plan_page
from umami_sync.umami.api import SessionPage
from umami_sync.umami.models import UmamiPageEnvelope, validate_session_rows

try:
    from umami_sync.umami.activity import ActivityFigures
    from umami_sync.umami.listing import SessionListing
except ModuleNotFoundError:  # a --before checkout older than the split of umami/paging.py: both were there
    from umami_sync.umami.paging import ActivityFigures, SessionListing  # type: ignore[import-not-found, no-redef]
try:
    from umami_sync.umami.models import session_page_rows
except ImportError:  # a --before checkout older than issue 26's pages validated whole: decoded, then row by row
    session_page_rows = None  # type: ignore[assignment]

WEBSITE = "6e0e58d6-3c4a-4c55-9a4c-4d5c2d6f1a11"
END = datetime(2026, 11, 27, tzinfo=UTC)
MULTI_HOSTNAME_EVERY = 50
"""One session in this many has rows on two hostnames (read from its events)."""


@dataclass
class ListingFigures:
    """What one listing run read, and what it cost."""

    rows: int = 0
    sessions: int = 0
    analytics: int = 0
    read_from_events: int = 0
    pages: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    make_cpu_seconds: float = 0.0  # spent by the fetch making the rows (not the listing's)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready figures, with rows per second and the listing's CPU per row (microseconds)."""
        own = self.cpu_seconds - self.make_cpu_seconds
        return {**asdict(self), "rows_per_second": self.rows / self.seconds if self.seconds else None,
                "listing_cpu_seconds": own, "cpu_per_row_us": own * 1e6 / self.rows if self.rows else None}


def _time(moment: datetime) -> str:
    """``moment`` as Umami's API writes a time (JavaScript's ``toISOString``: milliseconds, ``Z``)."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _row(position: int) -> dict[str, Any]:
    """Row ``position`` of the generated list (position 0 is the newest)."""
    session = position - position // (MULTI_HOSTNAME_EVERY + 1)  # every 51st row repeats the session before it
    second = position % (MULTI_HOSTNAME_EVERY + 1) == MULTI_HOSTNAME_EVERY
    last = _time(END - timedelta(milliseconds=position + 1))
    first = _time(END - timedelta(milliseconds=position + 1, minutes=5))
    return {"id": str(uuid.UUID(int=session + 1)), "websiteId": WEBSITE,
            "hostname": "www.example.com" if second else "example.com", "browser": "chrome", "os": "Windows 10",
            "device": "desktop", "screen": "1920x1080", "language": "en-US", "country": "DE", "region": "DE-BE",
            "city": "Berlin", "firstAt": first, "lastAt": last, "visits": 1, "views": 3, "events": 4,
            "createdAt": last}


def _page(body: bytes, page: int, size: int) -> SessionPage:
    """A page from its body, validated as the hook validates it (``UmamiHook.session_page``)."""
    if session_page_rows is not None and (whole := session_page_rows(body)) is not None:
        return SessionPage(page, size, *whole)
    envelope: UmamiPageEnvelope[Any] = UmamiPageEnvelope.model_validate(json.loads(body))
    return SessionPage(page, size, envelope.count, validate_session_rows(envelope.data))


def run_listing(rows: int, page_size: int) -> ListingFigures:
    """Read a generated list of ``rows`` rows in pages of ``page_size`` and turn it into analytics."""
    figures = ListingFigures()

    def fetch(page: int, size: int) -> SessionPage:
        started = time.process_time()
        data = b",".join(json.dumps(_row(position)).encode()  # a row at a time: the page's dicts never all live
                         for position in range((page - 1) * size, min(page * size, rows)))
        body = b'{"data":[%b],"count":%d,"page":%d,"pageSize":%d}' % (data, rows, page, size)
        del data
        figures.make_cpu_seconds += time.process_time() - started
        return _page(body, page, size)

    started, cpu = time.perf_counter(), time.process_time()
    listing = SessionListing(fetch, page_size=page_size, what="a generated list")
    merged: set[str] = set()
    with getattr(runner, "collector_spared", contextlib.nullcontext)():
        _read(listing, merged, figures)
    figures.seconds, figures.cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    figures.rows = listing.report.rows
    return figures


def _field(row: Any, name: str) -> Any:
    """A field of a listed row: plain data (a dict), or a model in a --before checkout older than issue 26."""
    return row[name] if isinstance(row, dict) else getattr(row, name)


def _read(listing: SessionListing, merged: set[str], figures: ListingFigures) -> None:
    """The pages of ``listing`` through the figure rules, as the runner takes them (owners and writes aside: the
    product makes a session's analytics once it has an owner; a --before checkout older than issue 26 makes them for
    every session here)."""
    for page in listing:
        plan = plan_page(page, merged)
        merged.update(_field(row, "id") for row in plan.to_read)
        read = {_field(row, "id"): ActivityFigures(*(_field(row, name) for name in ("first_at", "last_at", "views",
                                                                                    "visits")))
                for row in plan.to_read}
        found = page_analytics(plan, read)
        figures.pages += 1
        figures.sessions += plan.new_sessions
        sessions = getattr(found, "sessions", None)
        figures.analytics += len(sessions if isinstance(sessions, list) else found.analytics)  # type: ignore[arg-type]
        figures.read_from_events += len(plan.to_read)

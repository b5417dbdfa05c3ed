"""Stage 1's identity rows read through Umami's API, for a Umami whose database the workers cannot read (Umami
Cloud, a database on another network, ClickHouse storage).

The API answers no identity by itself: no route lists the identities of a window. For each website and window the
reader asks only for the sessions that can carry one, with as few requests as the API allows:

1. ``session-data/properties`` (one request): how many sessions with an event in the window have a row of the
   identity key, and whether any has session data at all;
2. the sessions with a distinct id: the session list filtered by ``distinctId=re..`` (a regular expression every
   non-empty id matches, on PostgreSQL and on ClickHouse; a server without the filter answers the whole list, which
   is slower but as exact), read page by page as stage 2 reads lists (ties repaired). Each one's detail gives its
   ``distinctId`` and first event, and, when the window has session data, its properties give its identity key
   and the time of every row;
3. only while sessions with the key remain unfound: the whole list, and the properties of each listed session
   without a distinct id, in the list's order, until as many sessions with the key as step 1 counted are found;
4. ``sessions/stats`` (one request): the window's sessions, for the anonymous count.

Each identity keeps the database path's rules. A key row counts at its own time (``createdAt``, to the millisecond)
when that time falls in the window. A distinct id counts at the earliest time the API shows for its session (its
first event, or its oldest session-data row: what Umami writes with the request that creates the session), when
that falls in the window. The rows are handed on sorted as ``sql/identities.sql`` sorts them (grouped by folded
identity, newest first), so stage 1's pure core runs unchanged. What the API cannot see is in the README ("Umami
Cloud").
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from umami_sync.identities import fold
from umami_sync.umami.errors import UmamiPagingError
from umami_sync.umami.identity_row import IdentityRow
from umami_sync.umami.listing import SessionListing
from umami_sync.umami.websites import all_websites
from umami_sync.windows import ApiWindow

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime

    from umami_sync.umami.api import UmamiHook
    from umami_sync.umami.identity_models import SessionDataKey, SessionProperty
    from umami_sync.umami.listing import ListedPage
    from umami_sync.windows import DataInterval

log = logging.getLogger(__name__)

WITH_DISTINCT_ID = {"distinctId": "re.."}
"""The session-list filter of sessions with a distinct id: ``session.distinct_id ~* '.'`` on PostgreSQL (3.1+),
``match(distinct_id, '(?i).')`` on ClickHouse. ("Is set", ``s.``, gives no clause on 3.1's PostgreSQL.)"""
MAX_DATA_KEYS = 500
"""How many keys ``session-data/properties`` answers at most (the most common first)."""


@dataclass
class IdentityReads:
    """What reading one window's identities through the API took and found (plain numbers, for the log)."""

    websites: int = 0
    list_pages: int = 0
    details: int = 0
    properties: int = 0
    with_distinct_id: int = 0
    with_key: int = 0
    anonymous: int = 0
    rows: list[IdentityRow] = field(default_factory=list)


def listed_sessions(page: ListedPage) -> Iterator[str]:
    """The session ids of one page of a listing, rows that failed validation included when their id is a uuid
    (an identity needs the id only)."""
    yield from (row["id"] for row in page.rows)
    for row in page.invalid:
        try:
            yield str(uuid.UUID(row.session_id or ""))
        except ValueError:
            continue


def key_sessions(keys: Sequence[SessionDataKey], data_key: str) -> int | None:
    """How many sessions of the window have a row of ``data_key``; None when the answer cannot say (it holds
    :data:`MAX_DATA_KEYS` keys, the key not among them)."""
    total = next((key.total for key in keys if key.property_name == data_key), None)
    if total is None and len(keys) < MAX_DATA_KEYS:
        return 0
    return total


def sorted_rows(rows: Sequence[IdentityRow]) -> list[IdentityRow]:
    """``rows`` as ``sql/identities.sql`` orders them: grouped by identity (trimmed and folded, as the identity rule
    compares them), newest first, then by session id."""
    return sorted(rows, key=lambda row: (fold((row.identity or "").strip()), -row.seen_at.timestamp(),
                                         row.session_id))


class ApiIdentities:
    """Stage 1's identity rows and anonymous count for a window, through Umami's API (see the module doc); read
    once per window and kept.

    :param websites: the websites to read (empty: every website the connection's user sees).
    :param page_size: rows per page of the session lists.
    :param include_teams: discovery also lists the user's team websites.
    """

    def __init__(self, api: UmamiHook, websites: Sequence[str] = (), *, page_size: int,
                 include_teams: bool = False) -> None:
        self.api = api
        self.websites = list(websites)
        self.page_size = page_size
        self.include_teams = include_teams
        self._read: dict[tuple[DataInterval, str], IdentityReads] = {}

    def identity_rows(self, window: DataInterval, data_key: str) -> Iterator[IdentityRow]:
        """The identity rows of ``window``, grouped by identity, newest first within one identity (read when the
        first one is asked for)."""
        yield from self.reads(window, data_key).rows

    def count_anonymous(self, window: DataInterval, data_key: str) -> int:
        """Sessions with an event in ``window`` that carry no distinct id and no row of the identity key."""
        return self.reads(window, data_key).anonymous

    def reads(self, window: DataInterval, data_key: str) -> IdentityReads:
        """Every website's identities of ``window``, read once."""
        if (window, data_key) not in self._read:
            reads = IdentityReads()
            pages = self.api.stats.list_pages
            websites = self.websites or [site.id for site in all_websites(self.api, include_teams=self.include_teams)]
            for website_id in websites:
                WebsiteIdentities(self.api, website_id, window, data_key, page_size=self.page_size).read(reads)
            reads.websites, reads.list_pages = len(websites), self.api.stats.list_pages - pages
            reads.rows = sorted_rows(reads.rows)
            log.info("identities of %s through Umami's API: %s websites, %s sessions with a distinct id, %s with "
                     "key %r, %s anonymous; %s rows from %s list pages, %s session details, %s session properties",
                     window, reads.websites, reads.with_distinct_id, reads.with_key, data_key, reads.anonymous,
                     len(reads.rows), reads.list_pages, reads.details, reads.properties)
            self._read[window, data_key] = reads
        return self._read[window, data_key]


class WebsiteIdentities:
    """The identities of one website and window (the steps of the module doc)."""

    def __init__(self, api: UmamiHook, website_id: str, window: DataInterval, data_key: str, *,
                 page_size: int) -> None:
        self.api = api
        self.website_id = website_id
        self.window = window
        self.range = ApiWindow.of(window)
        self.data_key = data_key
        self.page_size = page_size
        self.what = f"website {website_id}, {window}"

    def read(self, reads: IdentityReads) -> None:
        """Add this website's rows and figures to ``reads``."""
        keys = self.api.session_data_keys(self.website_id, self.range)
        with_data = any(key.total for key in keys)
        remaining = key_sessions(keys, self.data_key)
        identified: set[str] = set()
        done: set[str] = set()  # the sessions of step 2, read already
        for session_id in self._listed(WITH_DISTINCT_ID):
            done.add(session_id)
            properties = self._properties(session_id, reads) if with_data else []
            detail = self.api.session_detail(self.website_id, session_id)
            reads.details += 1
            if detail is not None and detail.distinct_id:  # ClickHouse answers "" for none
                reads.with_distinct_id += 1
                identified.add(session_id)
                seen = min([detail.first_at, *(row.created_at for row in properties)])
                if self._inside(seen):
                    reads.rows.append(self._row(detail.distinct_id, session_id, seen, "distinct_id"))
            if self._key_rows(session_id, properties, reads):
                identified.add(session_id)
                remaining = None if remaining is None else remaining - 1
        if remaining is None or remaining > 0:
            remaining = self._read_the_rest(done, identified, remaining, reads)
        if remaining:
            log.warning("%s: %s sessions with key %r were counted but not listed (their only events in the window "
                        "are not listed, e.g. performance beacons)", self.what, remaining, self.data_key)
        visitors = self.api.session_stats(self.website_id, self.range).visitors.value
        reads.anonymous += max(0, visitors - len(identified))

    def _read_the_rest(self, done: set[str], identified: set[str], remaining: int | None,
                       reads: IdentityReads) -> int | None:
        """Read the properties of the listed sessions not ``done`` until ``remaining`` sessions with the key are found
        (every one when the count is unknown), adding those to ``identified``; the sessions with the key still
        unfound."""
        for session_id in self._listed({}, "session list could not be read, and sessions with the identity key may "
                                            "be among them"):
            if session_id not in done and self._key_rows(session_id, self._properties(session_id, reads), reads):
                identified.add(session_id)
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return 0
        return remaining

    def _listed(self, filters: dict[str, str],
                lost: str = "list of sessions with a distinct id could not be read") -> Iterator[str]:
        """Each session of the (filtered) list once; a list that could not be read whole raises (``lost``: what
        that means)."""
        listing = self._listing(filters)
        seen: set[str] = set()
        for page in listing:
            fresh = [session_id for session_id in listed_sessions(page) if session_id not in seen]
            seen.update(fresh)
            yield from fresh
        if listing.report.missing:
            raise UmamiPagingError(
                f"{self.what}: {listing.report.missing} of {listing.report.count} rows of the {lost}")

    def _listing(self, filters: dict[str, str]) -> SessionListing:
        return SessionListing(
            lambda page, size: self.api.session_page(self.website_id, self.range, page, size, filters),
            page_size=self.page_size, what=self.what)

    def _properties(self, session_id: str, reads: IdentityReads) -> list[SessionProperty]:
        reads.properties += 1
        return self.api.session_properties(self.website_id, session_id)

    def _key_rows(self, session_id: str, properties: Sequence[SessionProperty], reads: IdentityReads) -> bool:
        """Add the session's identity-key rows of the window to ``reads``; whether it has the key at all."""
        rows = [row for row in properties if row.data_key == self.data_key]
        reads.rows.extend(self._row(row.string_value, session_id, row.created_at, "session_data")
                          for row in rows if self._inside(row.created_at))
        reads.with_key += bool(rows)
        return bool(rows)

    def _inside(self, moment: datetime) -> bool:
        return self.window.start <= moment < self.window.end

    def _row(self, identity: str | None, session_id: str, seen_at: datetime,
             source: Literal["distinct_id", "session_data"]) -> IdentityRow:
        return IdentityRow(identity=identity, session_id=session_id, website_id=self.website_id, seen_at=seen_at,
                           source=source)

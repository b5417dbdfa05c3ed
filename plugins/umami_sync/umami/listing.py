"""A website's whole session list, read despite its ties: the hook (:mod:`umami_sync.umami.api`) makes one request
per call; :class:`SessionListing` decides which pages to ask for.

That list (``GET /api/websites/{id}/sessions``) is offset-paged and ordered by the last event time only, with no
tie-breaker. Rows whose last event times tie can therefore change places between two requests: under offset paging
some are served twice and as many never (seen on a real 3.1.0 server; the same requests give the same pages again,
so reading a page twice does not help). The listing reads the pages once and keeps, for every run of tied rows that
crosses a page boundary, where it lies and how many distinct rows of it came. Only such a run can lose rows. When
the list came up short, one more request fetches a single page that holds all those runs whole (a run inside one
page cannot lose rows: one answer is one consistent sort), and the rows still missing are read from it. If the
rows read still fall short of ``count``, :attr:`SessionListing.report` says how many are missing, and the caller
fails. A ``count`` that changes while paging starts the list again.
A row whose times fall outside the window asked for is not that window's row: it is counted invalid, never handed
on. A page that says ``isCapped`` fails the listing, naming the cap (it cannot be proven complete).

Performance beacons are never activity: a list row of beacons only (Umami 3.1) is read but not handed on.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from umami_sync.umami.errors import UmamiPagingError
from umami_sync.umami.fingerprints import Fingerprints
from umami_sync.umami.models import CappedListError, InvalidRow, beacons_only
from umami_sync.windows import ApiWindow, from_epoch_ms

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from umami_sync.umami.api import SessionPage
    from umami_sync.umami.models import SessionRow

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100_000
"""The largest page a repair asks for (Umami has no maximum; this bounds one answer's size)."""
REPAIR_PAGE_ROWS = 20_000
"""Tie runs are repaired together while their page holds at most this many rows (or ``page_size``): a list
of up to this many rows needs one repair request at most (the request budget), and one answer stays bounded."""


@dataclass
class ListingReport:
    """How one list was read (plain ints, ready for an XCom result)."""

    count: int = 0
    rows: int = 0  # distinct (session, hostname) rows read, malformed ones included
    repeated: int = 0  # rows served again (each one means another row was not served there)
    invalid: int = 0
    repair_pages: int = 0
    restarts: int = 0

    @property
    def missing(self) -> int:
        """Rows the list holds that were never read."""
        return max(0, self.count - self.rows)


@dataclass(frozen=True)
class ListedPage:
    """The rows of one answer that had not been read before in this pass, in the server's order; ``restarted``: the
    first page of a pass that began again (the count changed), so what the earlier pass handed on is read once more.

    :param another_row_before: the positions in ``rows`` of the rows whose session had a row (another hostname)
        earlier in this pass: such a session's figures need its events.
    """

    rows: list[SessionRow]
    invalid: list[InvalidRow]
    restarted: bool = False
    another_row_before: frozenset[int] = frozenset()


@dataclass
class _Run:
    """Consecutive positions of the main pass whose rows share one last-event time."""

    key: datetime | None
    start: int
    first_page: int
    end: int
    last_page: int
    members: set[int]

    @property
    def deficit(self) -> int:
        """Positions of the run whose rows were not read."""
        return (self.end - self.start) - len(self.members)


class _CountChangedError(Exception):
    def __init__(self, before: int, after: int) -> None:
        super().__init__(f"count changed {before} -> {after}")
        self.before, self.after = before, after


@dataclass
class _Pass:
    """What one pass over the list has read. Rows and sessions are remembered as 64-bit hashes in
    :class:`Fingerprints` (12 to 24 bytes each): a false repeat needs a hash collision (about 1 in 10^8 for
    a million rows)."""

    report: ListingReport
    window: ApiWindow | None = None
    rows: Fingerprints = field(default_factory=Fingerprints)
    idless: Iterator[int] = field(default_factory=itertools.count)
    sessions: Fingerprints = field(default_factory=Fingerprints)
    split_runs: list[_Run] = field(default_factory=list)
    run: _Run | None = None

    def take(self, page: SessionPage, *, track: bool, restarted: bool = False) -> ListedPage:
        """The rows of ``page`` not read before; with ``track``, positions feed the tie runs."""
        rows: list[SessionRow] = []
        invalid: list[InvalidRow] = []
        again: list[int] = []
        orders: list[datetime | None] = []  # each entry's last event (None: an invalid row), for the tie runs
        keys: list[int] = []
        start, end = _bounds(self.window)
        new_row, new_session, repeated = self.rows.add, self.sessions.add, 0
        for entry in page.entries:
            row: SessionRow | None = None
            if isinstance(entry, InvalidRow):
                bad: InvalidRow | None = entry
            elif start <= entry["first_at"] and entry["last_at"] < end:
                row, bad = entry, None
            else:
                bad = _outside(entry, start)
            if row is not None:
                row_key, order = hash((row["id"], row["hostname"])), row["last_at"]
            elif bad is not None:  # an id-less row cannot be told apart from another: each one counts
                key = (bad.session_id, bad.hostname) if bad.session_id else ("id-less", next(self.idless))
                row_key, order = hash(key), None
            if track:
                orders.append(order)
                keys.append(row_key)
            if not new_row(row_key):
                repeated += 1
            elif bad is not None:
                invalid.append(bad)
            elif row is not None and (row["hostname"] is not None or not beacons_only(row)):  # beacons: no activity
                if not new_session(hash(row["id"])):
                    again.append(len(rows))
                rows.append(row)
        self.report.rows += len(page.entries) - repeated
        self.report.invalid += len(invalid)
        if track:  # a repair page holds rows read before by design
            self.report.repeated += repeated
            self._track(page, orders, keys)
        return ListedPage(rows, invalid, restarted, frozenset(again))

    def reserve(self, rows: int) -> None:
        """Room for a list of ``rows`` rows (its count), so the fingerprints are not rebuilt while it is read."""
        self.rows.reserve(rows)
        self.sessions.reserve(rows)

    def _track(self, page: SessionPage, orders: list[datetime | None], keys: list[int]) -> None:
        """Feed the tie runs with the entries of ``page`` of the main pass (``orders``: their last events, None for an
        invalid row; ``keys``: their row keys). Only a run that crosses a page boundary can lose rows, so only two
        runs of a page are kept track of: the one that goes on from the page before, and the page's last one."""
        if not orders:
            return
        base, count, run, done = (page.page - 1) * page.page_size, len(orders), self.run, 0
        if run is not None and run.key is not None and run.key == orders[0] and run.end == base:
            while done < count and orders[done] == run.key:
                done += 1
            run.end, run.last_page = base + done, page.page
            run.members.update(keys[:done])
            if done == count:  # the whole page goes on with it
                return
        self.close_run()
        last = orders[-1]
        if last is None:
            return
        first = count - 1
        while first > done and orders[first - 1] == last:
            first -= 1
        self.run = _Run(last, base + first, page.page, base + count, page.page, set(keys[first:]))

    def close_run(self) -> None:
        """Keep the current run if it crosses a page boundary (only such a run can lose rows)."""
        if self.run is not None and self.run.key is not None and self.run.first_page != self.run.last_page:
            self.split_runs.append(self.run)
        self.run = None


def _bounds(window: ApiWindow | None) -> tuple[datetime, datetime]:
    """The half-open span of times a row of ``window`` may hold (any time without a window)."""
    if window is None:
        return datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    return from_epoch_ms(window.start_ms), from_epoch_ms(window.end_ms + 1)


def _outside(row: SessionRow, start: datetime) -> InvalidRow:
    """A list row whose times fall outside the window asked for: not that window's row, so never written."""
    name = "firstAt" if row["first_at"] < start else "lastAt"
    return InvalidRow(row["id"], row["hostname"], f"{name}: outside the window asked for", (name,))


def covering_page(start: int, end: int) -> tuple[int, int]:
    """``(page, page_size)`` of the smallest page holding positions ``[start, end)`` of one answer."""
    for size in range(end - start, end + 1):
        if start // size == (end - 1) // size:
            return start // size + 1, size
    raise ValueError(f"empty range {start}..{end}")  # pragma: no cover - size == end always fits


class SessionListing:
    """Every row of one website's session list for one window, each yielded once; see the module doc.

    :param fetch: ``fetch(page, page_size)`` returns that page of the list.
    :param page_size: rows per page of the main pass.
    :param what: names the list in log lines and errors (website and window).
    :param window: the window the list was asked for: a row whose times fall outside it is counted invalid.
    :param max_restarts: how often the list may start again because its ``count`` changed.
    """

    def __init__(self, fetch: Callable[[int, int], SessionPage], *, page_size: int, what: str,
                 window: ApiWindow | None = None, max_restarts: int = 3) -> None:
        self.fetch = fetch
        self.page_size = page_size
        self.what = what
        self.window = window
        self.max_restarts = max_restarts
        self.report = ListingReport()

    def __iter__(self) -> Iterator[ListedPage]:
        for attempt in range(self.max_restarts + 1):
            try:
                yield from self._pass()
                return
            except _CountChangedError as changed:
                if attempt == self.max_restarts:
                    raise UmamiPagingError(
                        f"{self.what}: count changed while paging ({changed.before} -> {changed.after}) "
                        f"more than {self.max_restarts} times; giving up") from None
                self.report.restarts += 1
                log.warning("%s: count changed %s -> %s while paging; reading the list again",
                            self.what, changed.before, changed.after)

    def _pass(self) -> Iterator[ListedPage]:
        report = self.report
        report.count = report.rows = report.repeated = report.invalid = 0
        state = _Pass(report, self.window)
        page_number, count = 1, None
        while True:
            page = self._page(page_number, self.page_size, count)
            if count is None:
                state.reserve(page.count)
            count = report.count = page.count
            yield state.take(page, track=True, restarted=page_number == 1 and report.restarts > 0)
            if page_number * self.page_size >= count:
                break
            if not page.entries:
                log.warning("%s: page %s is empty although count says %s rows", self.what, page_number, count)
                break
            page_number += 1
        state.close_run()
        if report.missing:
            yield from self._repair(state, count)

    def _page(self, number: int, size: int, count: int | None) -> SessionPage:
        try:
            page = self.fetch(number, size)
        except CappedListError as capped:
            raise CappedListError(f"{self.what}: {capped}") from None
        if count is not None and page.count != count:
            raise _CountChangedError(count, page.count)
        return page

    def _repair(self, state: _Pass, count: int) -> Iterator[ListedPage]:
        """Read the missing rows: first the pages that hold the tie runs that came up short, whole (as few as
        fit in :meth:`repair_limit` rows each, usually one); then, if rows are still missing (ties did not
        explain it: the server shifted its pages, or served an empty one), the whole list as one page."""
        short = [run for run in state.split_runs if run.deficit]
        if short and sum(run.deficit for run in short) == self.report.missing:
            for start, end in clusters([(run.start, run.end) for run in short], self.repair_limit):
                yield from self._repair_page(state, count, start, end, "rows tie on their last event time")
        if self.report.missing:
            yield from self._repair_page(state, count, 0, count, "the pages did not add up to the list")

    @property
    def repair_limit(self) -> int:
        """The most rows one repair page of nearby tie runs may hold (never fewer than a page)."""
        return max(self.page_size, REPAIR_PAGE_ROWS)

    def _repair_page(self, state: _Pass, count: int, start: int, end: int, why: str) -> Iterator[ListedPage]:
        number, size = covering_page(start, end)
        missing = self.report.missing
        if size > MAX_PAGE_SIZE:
            log.error("%s: %s rows missing (%s); the page that holds them would be %s rows, more than %s",
                      self.what, missing, why, size, MAX_PAGE_SIZE)
            return
        log.warning("%s: %s of %s rows not served (%s); reading positions %s..%s again as page %s of %s",
                    self.what, missing, count, why, start, end - 1, number, size)
        page = self._page(number, size, count)
        self.report.repair_pages += 1
        yield state.take(page, track=False)


def clusters(ranges: list[tuple[int, int]], limit: int) -> Iterator[tuple[int, int]]:
    """Ranges (in order) merged while the page that holds the merged range stays within ``limit`` rows."""
    current: tuple[int, int] | None = None
    for start, end in sorted(ranges):
        if current is not None and covering_page(current[0], max(current[1], end))[1] <= limit:
            current = (current[0], max(current[1], end))
            continue
        if current is not None:
            yield current
        current = (start, end)
    if current is not None:
        yield current

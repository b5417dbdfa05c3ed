"""Paging, pure: all_websites against a scripted hook, SessionListing against a list that pages the way Umami's
does (FakeUmami's pages equal the real server's, see tests/local_stack), read_activity against a session's
events served as Umami serves them."""

from __future__ import annotations

import itertools
import math
import random
import time
import tracemalloc
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from tests.test_readme import readme_bytes_per_row
from umami_sync.umami import paging as paging_module
from umami_sync.umami.api import SessionPage, WebsitePage
from umami_sync.umami.errors import UmamiActivityError, UmamiPagingError
from umami_sync.umami.models import ActivityEvent, InvalidRow, UmamiSession, UmamiWebsite
from umami_sync.umami.paging import (
    ACTIVITY_LIMIT,
    RESERVE_LIMIT,
    WEBSITES_PAGE_SIZE,
    Fingerprints,
    ReadAhead,
    SessionListing,
    all_websites,
    covering_page,
    read_activity,
)
from umami_sync.windows import ApiWindow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DAY = datetime(2026, 11, 10, tzinfo=UTC)
WINDOW = ApiWindow(int(DAY.timestamp() * 1000), int((DAY + timedelta(days=1)).timestamp() * 1000) - 1)
WEBSITE = "73683464-8e85-469a-b6b2-39b566028ce9"


def row(session: str, last: datetime, hostname: str | None = "a.example.com", views: int = 1) -> UmamiSession:
    return UmamiSession(id=session, website_id=WEBSITE, hostname=hostname, first_at=last, last_at=last, visits=1,
                        views=views, events=0)


def sessions(count: int, *, tie_groups: int) -> list[UmamiSession]:
    """``count`` one-row sessions whose last events fall on ``tie_groups`` instants (newest first)."""
    ids = sorted(str(uuid.UUID(int=n + 1)) for n in range(count))
    return [row(session, DAY + timedelta(hours=12) - timedelta(minutes=n % tie_groups)) for n, session in
            enumerate(ids)]


@dataclass
class UnstableList:
    """A session list that pages like Umami on PostgreSQL: sorted by last event only, and the order of tied
    rows depends on how many rows the request needs (``page * pageSize``), the same on every repeat."""

    rows: list[UmamiSession]
    requests: list[tuple[int, int]] = field(default_factory=list)
    serve: Callable[[int, int, list[UmamiSession | InvalidRow]], list[UmamiSession | InvalidRow]] | None = None

    def __call__(self, page: int, size: int) -> SessionPage:
        self.requests.append((page, size))
        shuffle = random.Random(page * size)
        ordered = sorted(self.rows, key=lambda r: (-r.last_at.timestamp(), shuffle.random()))
        entries: list[UmamiSession | InvalidRow] = list(ordered[(page - 1) * size: page * size])
        if self.serve is not None:
            entries = self.serve(page, size, entries)
        return SessionPage(page, size, len(self.rows), entries)


def read(listing: SessionListing) -> list[UmamiSession]:
    return [listed.session for page in listing for listed in page.rows]


def keys(rows: list[UmamiSession]) -> list[tuple[str, str | None]]:
    return [(r.id, r.hostname) for r in rows]


# --- websites -------------------------------------------------------------------------------------


@dataclass
class WebsiteList:
    """The website list as a hook serves it, one page per call; ``count`` is what the envelope says."""

    websites: list[UmamiWebsite]
    count: int | None = None
    requests: list[tuple[int, int, bool]] = field(default_factory=list)

    def websites_page(self, page: int, page_size: int, *, include_teams: bool = False) -> WebsitePage:
        self.requests.append((page, page_size, include_teams))
        count = len(self.websites) if self.count is None else self.count
        return WebsitePage(page, page_size, count, self.websites[(page - 1) * page_size: page * page_size])


def website(number: int, *, deleted: bool = False) -> UmamiWebsite:
    return UmamiWebsite(id=str(uuid.UUID(int=number + 1)), name=f"site {number}",
                        deleted_at=DAY if deleted else None)


def test_websites_are_read_page_by_page_until_the_count_and_deleted_ones_left_out() -> None:
    listed = [website(n, deleted=n % 50 == 7) for n in range(2 * WEBSITES_PAGE_SIZE + 1)]
    server = WebsiteList(listed)

    found = all_websites(server, include_teams=True)

    assert found == [site for site in listed if site.deleted_at is None]
    assert server.requests == [(page, WEBSITES_PAGE_SIZE, True) for page in (1, 2, 3)]


def test_an_empty_page_ends_the_websites_even_when_the_count_says_more() -> None:
    server = WebsiteList([website(1)], count=500)

    assert all_websites(server) == [website(1)]
    assert [page for page, _, _ in server.requests] == [1, 2]


# --- the page that holds a range ------------------------------------------------------------------

@pytest.mark.parametrize(("start", "end", "expected"), [(6, 30, (1, 30)), (18, 24, (4, 6)), (0, 62, (1, 62)),
                                                        (14, 21, (3, 7)), (5, 6, (6, 1))])
def test_covering_page_examples(start: int, end: int, expected: tuple[int, int]) -> None:
    assert covering_page(start, end) == expected


def test_covering_page_holds_the_range_and_is_the_smallest() -> None:
    for start, end in itertools.combinations(range(80), 2):
        page, size = covering_page(start, end)
        assert (page - 1) * size <= start and end <= page * size
        assert not any(start // smaller == (end - 1) // smaller for smaller in range(end - start, size))


# --- completeness -----------------------------------------------------------------------------------

@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 20, 61, 100, 5000])
@pytest.mark.parametrize("seed", range(6))
def test_a_tie_heavy_list_is_read_whole_at_any_page_size(page_size: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = sessions(rng.randint(1, 90), tie_groups=rng.randint(1, 12))
    server = UnstableList(rows)
    listing = SessionListing(server, page_size=page_size, what="test list")

    got = read(listing)

    assert sorted(keys(got)) == sorted(keys(rows))  # every row once
    report = listing.report
    assert (report.count, report.rows, report.missing) == (len(rows), len(rows), 0)
    pages = math.ceil(len(rows) / page_size)
    assert len(server.requests) == pages + report.repair_pages <= pages + 1  # one repair page at most
    assert all(size <= page_size for _, size in server.requests[:pages])


def test_a_run_of_ties_inside_one_page_needs_no_repair() -> None:
    rows = sessions(10, tie_groups=1)  # all ten tie
    server = UnstableList(rows)
    listing = SessionListing(server, page_size=10, what="test list")

    assert len(read(listing)) == 10
    assert (listing.report.repair_pages, listing.report.repeated, server.requests) == (0, 0, [(1, 10)])


def test_repeats_are_counted_once_and_the_rows_they_hid_are_read_from_one_page() -> None:
    rows = sessions(12, tie_groups=1)
    server = UnstableList(rows)
    listing = SessionListing(server, page_size=5, what="test list")

    got = read(listing)

    assert sorted(keys(got)) == sorted(keys(rows))
    assert listing.report.repeated > 0  # the shuffled ties came twice ...
    assert server.requests[-1] == (1, 12)  # ... and one page of the whole run holds them all


def test_a_session_on_two_hostnames_is_two_rows_and_says_so() -> None:
    late, early = DAY + timedelta(hours=12), DAY + timedelta(hours=10)
    session = str(uuid.uuid4())
    rows = [row(session, late, "b.example.com"), row(str(uuid.uuid4()), late - timedelta(hours=1)),
            row(session, early, "a.example.com")]
    listing = SessionListing(UnstableList(rows), page_size=1, what="test list")

    listed = [item for page in listing for item in page.rows]

    assert [(item.session.hostname, item.another_row_before) for item in listed if item.session.id == session] == [
        ("b.example.com", False), ("a.example.com", True)]


def test_a_row_of_beacons_only_is_read_but_neither_handed_on_nor_a_second_hostname() -> None:
    """Umami 3.1 lists a session's performance beacons as a row of their own (hostname NULL, views 0, events 0)."""
    late, early = DAY + timedelta(hours=12), DAY + timedelta(hours=10)
    session = str(uuid.uuid4())
    rows = [row(session, late, None, views=0), row(session, early)]
    listing = SessionListing(UnstableList(rows), page_size=1, what="test list")

    listed = [item for page in listing for item in page.rows]

    assert [(item.session.hostname, item.another_row_before) for item in listed] == [("a.example.com", False)]
    assert (listing.report.rows, listing.report.missing) == (2, 0)


def test_an_empty_page_before_the_count_is_repaired_from_one_whole_page() -> None:
    rows = sessions(9, tie_groups=9)
    server = UnstableList(rows, serve=lambda page, size, entries: [] if (page, size) == (2, 3) else entries)
    listing = SessionListing(server, page_size=3, what="test list")

    assert sorted(keys(read(listing))) == sorted(keys(rows))
    assert server.requests == [(1, 3), (2, 3), (1, 9)]


def test_an_offset_shift_with_an_unchanged_count_is_repaired() -> None:
    """Page 2 starts with the last rows of page 1 (a shifted offset) and the count stays: rows at the end
    were never served. No tie explains it, so the whole list is read again as one page."""
    rows = sessions(9, tie_groups=9)
    ordered = sorted(rows, key=lambda r: -r.last_at.timestamp())

    def shifted(page: int, size: int, entries: list[UmamiSession | InvalidRow]) -> list[UmamiSession | InvalidRow]:
        if size == 3 and page > 1:
            return list(ordered[(page - 1) * 3 - 2: page * 3 - 2])
        return entries

    server = UnstableList(rows, serve=shifted)
    listing = SessionListing(server, page_size=3, what="test list")

    assert sorted(keys(read(listing))) == sorted(keys(rows))
    assert (listing.report.repeated, listing.report.repair_pages, server.requests[-1]) == (2, 1, (1, 9))


def test_a_list_that_cannot_be_completed_reports_what_is_missing() -> None:
    rows = sessions(8, tie_groups=8)
    server = UnstableList(rows, serve=lambda page, size, entries: [e for e in entries if e != rows[3]])
    listing = SessionListing(server, page_size=4, what="test list")

    got = read(listing)

    assert rows[3] not in got and len(got) == 7
    assert (listing.report.count, listing.report.rows, listing.report.missing) == (8, 7, 1)
    assert listing.report.repair_pages == 1


def test_a_count_that_changes_while_paging_reads_the_list_again() -> None:
    server = UnstableList(sessions(6, tie_groups=6))
    late = row(str(uuid.uuid4()), DAY + timedelta(hours=23))

    def grows(page: int, size: int) -> SessionPage:
        answer = server(page, size)
        if late not in server.rows:
            server.rows.append(late)  # a late event lands after the first page was served
        return answer

    listing = SessionListing(grows, page_size=2, what="test list")

    pages = list(listing)

    assert [page.restarted for page in pages] == [False, True, False, False, False]
    assert set(keys([r.session for page in pages for r in page.rows])) == set(keys(server.rows))
    assert (listing.report.restarts, listing.report.count, listing.report.missing) == (1, 7, 0)
    assert server.requests == [(1, 2), (2, 2), (1, 2), (2, 2), (3, 2), (4, 2)]


def test_a_count_that_keeps_changing_gives_up_naming_the_list() -> None:
    counts = itertools.count(5)

    def drifting(page: int, size: int) -> SessionPage:
        return SessionPage(page, size, next(counts), [row(str(uuid.uuid4()), DAY)])

    listing = SessionListing(drifting, page_size=1, what="website W, window X", max_restarts=2)

    with pytest.raises(UmamiPagingError, match=r"website W, window X: count changed while paging .* more than 2"):
        read(listing)


def test_malformed_rows_count_as_read_and_are_handed_over() -> None:
    rows = sessions(3, tie_groups=3)
    bad = InvalidRow(rows[1].id, rows[1].hostname, "visits: not a number", ("visits",))
    server = UnstableList(rows, serve=lambda page, size, entries: [bad if e == rows[1] else e for e in entries])
    listing = SessionListing(server, page_size=3, what="test list")

    pages = list(listing)

    assert [item.session.id for page in pages for item in page.rows] == [rows[0].id, rows[2].id]
    assert [page.invalid for page in pages] == [[bad]]
    assert (listing.report.invalid, listing.report.missing) == (1, 0)


def test_rows_without_an_id_are_each_counted_once() -> None:
    rows = sessions(4, tie_groups=4)
    anonymous = [InvalidRow(None, None, "id: Field required", ("id",)) for _ in range(2)]
    server = UnstableList(rows, serve=lambda page, size, entries: [anonymous[0] if e == rows[1] else
                                                                   anonymous[1] if e == rows[2] else e
                                                                   for e in entries])
    listing = SessionListing(server, page_size=4, what="test list")

    list(listing)

    assert (listing.report.rows, listing.report.invalid, listing.report.missing) == (4, 2, 0)
    assert listing.report.repair_pages == 0


def test_a_one_row_shift_that_looks_like_a_tie_is_repaired_from_the_whole_list() -> None:
    """Page 2 repeats page 1's last row (the same last-event time twice in a row, as a tie of two looks) and
    the last row is never served: the small tie repair cannot find it, the whole list can."""
    rows = sessions(9, tie_groups=9)
    ordered = sorted(rows, key=lambda r: -r.last_at.timestamp())

    def shifted(page: int, size: int, entries: list[UmamiSession | InvalidRow]) -> list[UmamiSession | InvalidRow]:
        return list(ordered[(page - 1) * 3 - 1: page * 3 - 1]) if size == 3 and page > 1 else entries

    server = UnstableList(rows, serve=shifted)
    listing = SessionListing(server, page_size=3, what="test list")

    assert sorted(keys(read(listing))) == sorted(keys(rows))
    assert server.requests[-1] == (1, 9)
    assert listing.report.repair_pages == 2


def test_short_tie_runs_all_over_a_list_are_repaired_with_one_request() -> None:
    rows = sessions(2000, tie_groups=280)  # about seven rows per instant
    server = UnstableList(rows)
    listing = SessionListing(server, page_size=50, what="test list")

    got = read(listing)

    assert sorted(keys(got)) == sorted(keys(rows))
    assert listing.report.repair_pages == 1
    assert len(server.requests) == math.ceil(2000 / 50) + 1


def test_short_tie_runs_far_apart_are_repaired_in_pages_of_bounded_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging_module, "REPAIR_PAGE_ROWS", 500)
    rows = sessions(2000, tie_groups=280)
    server = UnstableList(rows)
    listing = SessionListing(server, page_size=50, what="test list")

    got = read(listing)

    assert sorted(keys(got)) == sorted(keys(rows))
    repairs = server.requests[math.ceil(2000 / 50):]
    assert len(repairs) == listing.report.repair_pages >= 2
    assert all(size <= 500 for _, size in repairs)


# --- activity -----------------------------------------------------------------------------------

def event(when: datetime, visit: str, event_type: int = 1, hostname: str | None = "a.example.com") -> ActivityEvent:
    return ActivityEvent(created_at=when, event_id=str(uuid.uuid4()), event_type=event_type, visit_id=visit,
                         hostname=hostname)


@dataclass
class Activity:
    """A session's events served as Umami's activity endpoint does: in range, newest first, at most 500."""

    events: list[ActivityEvent]
    windows: list[ApiWindow] = field(default_factory=list)

    def __call__(self, window: ApiWindow) -> list[ActivityEvent]:
        self.windows.append(window)
        inside = [e for e in self.events
                  if window.start_ms <= int(e.created_at.timestamp() * 1000) <= window.end_ms]
        return sorted(inside, key=lambda e: e.created_at, reverse=True)[:ACTIVITY_LIMIT]


def test_activity_gives_exact_figures_across_hostnames() -> None:
    visit_a, visit_b = str(uuid.uuid4()), str(uuid.uuid4())
    at = DAY + timedelta(hours=10)
    served = Activity([event(at, visit_a), event(at + timedelta(minutes=15), visit_a, hostname="b.example.com"),
                       event(at + timedelta(minutes=30), visit_b, event_type=2, hostname="b.example.com")])

    figures = read_activity(served, WINDOW, what="session S")

    assert figures is not None
    assert (figures.first_at, figures.last_at) == (at, at + timedelta(minutes=30))
    assert (figures.views, figures.visits, len(served.windows)) == (2, 2, 1)


def test_performance_beacons_are_not_activity() -> None:
    """Umami 3.1's activity answers a session's beacons (``event_type`` 5) with its page views."""
    visit = str(uuid.uuid4())
    at = DAY + timedelta(hours=10)
    served = Activity([event(at - timedelta(minutes=5), visit, event_type=5, hostname=None), event(at, visit),
                       event(at + timedelta(minutes=30), str(uuid.uuid4()), event_type=5, hostname=None)])

    figures = read_activity(served, WINDOW, what="session S")

    assert figures is not None
    assert (figures.first_at, figures.last_at, figures.views, figures.visits) == (at, at, 1, 1)
    assert read_activity(Activity(served.events[2:]), WINDOW, what="session S") is None  # beacons only


def test_more_than_500_events_are_read_whole_even_when_they_tie_at_the_boundary() -> None:
    visits = [str(uuid.uuid4()) for _ in range(7)]
    start = DAY + timedelta(hours=1)
    # 1,234 page views, ten per second (whole seconds tie), in seven visits
    events = [event(start + timedelta(seconds=n // 10), visits[n % 7]) for n in range(1234)]
    served = Activity(events)

    figures = read_activity(served, WINDOW, what="session S")

    assert figures is not None
    assert (figures.views, figures.visits) == (1234, 7)
    assert (figures.first_at, figures.last_at) == (start, start + timedelta(seconds=123))
    assert len(served.windows) == 3
    assert all(window.start_ms == WINDOW.start_ms for window in served.windows)


def test_500_events_at_one_instant_cannot_be_paged_and_say_so() -> None:
    served = Activity([event(DAY, str(uuid.uuid4())) for _ in range(ACTIVITY_LIMIT + 1)])

    with pytest.raises(UmamiActivityError, match="session S: more than 500 events at 2026-11-10T00:00:00"):
        read_activity(served, WINDOW, what="session S")


def test_a_session_without_events_in_the_window_has_no_figures() -> None:
    assert read_activity(Activity([]), WINDOW, what="session S") is None



# --- what the listing remembers, and the read-ahead ---------------------------------------------------------

def test_fingerprints_say_once_that_a_hash_is_new_and_keep_every_hash_as_they_grow() -> None:
    hashes = [hash((str(uuid.UUID(int=n)), "a.example.com")) for n in range(5000)] + [0, 1, -1, -(2**63), 2**63 - 1]
    fingerprints = Fingerprints(capacity=8)

    assert all(fingerprints.add(key) for key in hashes[:-4])  # 0 and 1 share a place: 0 is the empty mark
    assert fingerprints.add(-1) and fingerprints.add(-(2**63)) and fingerprints.add(2**63 - 1)
    assert not any(fingerprints.add(key) for key in hashes)


def test_fingerprints_made_room_for_ahead_keep_what_they_held_and_say_the_same() -> None:
    hashes = [hash((str(uuid.UUID(int=n)), "a.example.com")) for n in range(5000)]
    fingerprints = Fingerprints(capacity=8)
    assert all(fingerprints.add(key) for key in hashes[:100])

    fingerprints.reserve(5000)
    room = len(fingerprints._slots)

    assert not any(fingerprints.add(key) for key in hashes[:100])
    assert all(fingerprints.add(key) for key in hashes[100:])
    assert len(fingerprints._slots) == room  # no rebuild on the way to the reserved size
    fingerprints.reserve(10**12)  # a count is the server's word: room is made for at most RESERVE_LIMIT
    assert len(fingerprints._slots) <= 2 * RESERVE_LIMIT


def test_the_listing_holds_the_memory_per_row_the_readme_gives() -> None:
    """Two 64-bit hashes a row in flat arrays one to two thirds full: 25 to 51 bytes a row as the list grows
    (CPython's array keeps a sixteenth spare), 35 on average over a doubling of its size; within the README's
    figure (two Python sets held 138, issue 18)."""
    keys = [hash((str(uuid.UUID(int=n)), "a.example.com")) for n in range(43_690)]
    per_row, samples = 0.0, 0
    tracemalloc.start()
    try:
        rows, sessions = Fingerprints(), Fingerprints()
        for count, key in enumerate(keys, 1):
            rows.add(key)
            sessions.add(key >> 1)
            if count > 21_845 and count % 64 == 0:  # a doubling of the list's size, from just after the arrays grew
                per_row, samples = per_row + tracemalloc.get_traced_memory()[0] / count, samples + 1
    finally:
        tracemalloc.stop()

    assert per_row / samples <= readme_bytes_per_row()


def test_read_ahead_makes_the_next_item_while_the_caller_works_and_no_more() -> None:
    made: list[int] = []

    def items() -> Iterator[int]:
        for number in range(4):
            made.append(number)
            yield number

    seen = []
    for item in ReadAhead(items()):
        deadline = time.monotonic() + 5
        while len(made) < min(item + 2, 4) and time.monotonic() < deadline:  # the next one comes meanwhile
            time.sleep(0.001)
        seen.append((item, len(made)))

    assert seen == [(0, 2), (1, 3), (2, 4), (3, 4)]


def test_read_ahead_raises_an_error_of_the_items_where_it_happened() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise UmamiPagingError("count changed too often")

    taken: list[int] = []
    with pytest.raises(UmamiPagingError, match="count changed too often"):
        taken.extend(ReadAhead(items()))

    assert taken == [1]


def test_a_listing_read_ahead_gives_the_same_pages_as_read_alone() -> None:
    rows = sessions(300, tie_groups=40)
    alone, ahead = UnstableList(rows), UnstableList(rows)

    pages = [keys([listed.session for listed in page.rows]) for page in
             SessionListing(alone, page_size=7, what="alone")]
    read_ahead = [keys([listed.session for listed in page.rows]) for page in
                  ReadAhead(SessionListing(ahead, page_size=7, what="ahead"))]

    assert read_ahead == pages and alone.requests == ahead.requests

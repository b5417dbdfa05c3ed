"""The session list, pure: SessionListing against a list that pages the way Umami's does (FakeUmami's pages equal
the real server's, see tests/local_stack)."""

from __future__ import annotations

import itertools
import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from umami_sync.umami import listing as listing_module
from umami_sync.umami.api import SessionPage
from umami_sync.umami.errors import UmamiPagingError
from umami_sync.umami.listing import SessionListing, covering_page
from umami_sync.umami.models import InvalidRow, SessionRow, UmamiSession
from umami_sync.windows import ApiWindow

if TYPE_CHECKING:
    from collections.abc import Callable

DAY = datetime(2026, 11, 10, tzinfo=UTC)
WINDOW = ApiWindow(int(DAY.timestamp() * 1000), int((DAY + timedelta(days=1)).timestamp() * 1000) - 1)
WEBSITE = "73683464-8e85-469a-b6b2-39b566028ce9"


def row(session: str, last: datetime, hostname: str | None = "a.example.com", views: int = 1) -> SessionRow:
    return UmamiSession(id=session, website_id=WEBSITE, hostname=hostname, first_at=last, last_at=last, visits=1,
                        views=views, events=0).row()


def sessions(count: int, *, tie_groups: int) -> list[SessionRow]:
    """``count`` one-row sessions whose last events fall on ``tie_groups`` instants (newest first)."""
    ids = sorted(str(uuid.UUID(int=n + 1)) for n in range(count))
    return [row(session, DAY + timedelta(hours=12) - timedelta(minutes=n % tie_groups)) for n, session in
            enumerate(ids)]


@dataclass
class UnstableList:
    """A session list that pages like Umami on PostgreSQL: sorted by last event only, and the order of tied
    rows depends on how many rows the request needs (``page * pageSize``), the same on every repeat."""

    rows: list[SessionRow]
    requests: list[tuple[int, int]] = field(default_factory=list)
    serve: Callable[[int, int, list[SessionRow | InvalidRow]], list[SessionRow | InvalidRow]] | None = None

    def __call__(self, page: int, size: int) -> SessionPage:
        self.requests.append((page, size))
        shuffle = random.Random(page * size)
        ordered = sorted(self.rows, key=lambda r: (-r["last_at"].timestamp(), shuffle.random()))
        entries: list[SessionRow | InvalidRow] = list(ordered[(page - 1) * size: page * size])
        if self.serve is not None:
            entries = self.serve(page, size, entries)
        return SessionPage(page, size, len(self.rows), entries)


def read(listing: SessionListing) -> list[SessionRow]:
    return [listed for page in listing for listed in page.rows]


def flagged(listing: SessionListing) -> list[tuple[SessionRow, bool]]:
    """Every row handed on, and whether its session had a row before it (another hostname)."""
    return [(listed, position in page.another_row_before) for page in listing
            for position, listed in enumerate(page.rows)]


def keys(rows: list[SessionRow]) -> list[tuple[str, str | None]]:
    return [(r["id"], r["hostname"]) for r in rows]


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

    listed = flagged(listing)

    assert [(item["hostname"], before) for item, before in listed if item["id"] == session] == [
        ("b.example.com", False), ("a.example.com", True)]


def test_a_row_of_beacons_only_is_read_but_neither_handed_on_nor_a_second_hostname() -> None:
    """Umami 3.1 lists a session's performance beacons as a row of their own (hostname NULL, views 0, events 0)."""
    late, early = DAY + timedelta(hours=12), DAY + timedelta(hours=10)
    session = str(uuid.uuid4())
    rows = [row(session, late, None, views=0), row(session, early)]
    listing = SessionListing(UnstableList(rows), page_size=1, what="test list")

    listed = flagged(listing)

    assert [(item["hostname"], before) for item, before in listed] == [("a.example.com", False)]
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
    ordered = sorted(rows, key=lambda r: -r["last_at"].timestamp())

    def shifted(page: int, size: int, entries: list[SessionRow | InvalidRow]) -> list[SessionRow | InvalidRow]:
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
    assert set(keys([r for page in pages for r in page.rows])) == set(keys(server.rows))
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
    bad = InvalidRow(rows[1]["id"], rows[1]["hostname"], "visits: not a number", ("visits",))
    server = UnstableList(rows, serve=lambda page, size, entries: [bad if e == rows[1] else e for e in entries])
    listing = SessionListing(server, page_size=3, what="test list")

    pages = list(listing)

    assert [item["id"] for page in pages for item in page.rows] == [rows[0]["id"], rows[2]["id"]]
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


def test_a_row_outside_the_window_asked_for_is_invalid_and_never_handed_on() -> None:
    """Whatever the server answers, a row whose first event comes before the window (or last after it) is not the
    window's: counted invalid, naming the field, never written."""
    rows = sessions(3, tie_groups=3)
    early: SessionRow = {**rows[1], "first_at": DAY - timedelta(days=3)}
    late: SessionRow = {**rows[2], "last_at": DAY + timedelta(days=20)}
    server = UnstableList([rows[0], early, late])
    listing = SessionListing(server, page_size=3, what="test list", window=WINDOW)

    (page,) = list(listing)

    assert [item["id"] for item in page.rows] == [rows[0]["id"]]
    assert sorted((row.session_id, row.fields, row.error) for row in page.invalid) == sorted([
        (early["id"], ("firstAt",), "firstAt: outside the window asked for"),
        (late["id"], ("lastAt",), "lastAt: outside the window asked for")])
    assert (listing.report.rows, listing.report.invalid, listing.report.missing) == (3, 2, 0)


def test_a_capped_page_is_never_taken_as_the_whole_list() -> None:
    """Umami's newer pagedRawQuery answers ``isCapped: true`` with ``count`` stopped at the cap: the listing fails
    at once, naming the list and the cap, before handing on any row."""
    from umami_sync.umami.models import CappedListError, UmamiPageEnvelope

    def capped(page: int, size: int) -> SessionPage:
        UmamiPageEnvelope.model_validate({"data": [], "count": 10_000, "page": page, "pageSize": size,
                                          "isCapped": True})
        raise AssertionError("a capped envelope is refused")

    with pytest.raises(CappedListError, match=r"^test list: Umami answered a capped page \(isCapped: its count "
                                              r"stops at 10,000 rows\)"):
        next(iter(SessionListing(capped, page_size=50, what="test list")))


def test_a_one_row_shift_that_looks_like_a_tie_is_repaired_from_the_whole_list() -> None:
    """Page 2 repeats page 1's last row (the same last-event time twice in a row, as a tie of two looks) and
    the last row is never served: the small tie repair cannot find it, the whole list can."""
    rows = sessions(9, tie_groups=9)
    ordered = sorted(rows, key=lambda r: -r["last_at"].timestamp())

    def shifted(page: int, size: int, entries: list[SessionRow | InvalidRow]) -> list[SessionRow | InvalidRow]:
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
    monkeypatch.setattr(listing_module, "REPAIR_PAGE_ROWS", 500)
    rows = sessions(2000, tie_groups=280)
    server = UnstableList(rows)
    listing = SessionListing(server, page_size=50, what="test list")

    got = read(listing)

    assert sorted(keys(got)) == sorted(keys(rows))
    repairs = server.requests[math.ceil(2000 / 50):]
    assert len(repairs) == listing.report.repair_pages >= 2
    assert all(size <= 500 for _, size in repairs)

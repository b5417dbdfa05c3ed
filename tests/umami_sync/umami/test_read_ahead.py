"""The read-ahead: the next item made in a helper thread while the caller works, an error raised where it
happened, and a listing read ahead giving the same pages as read alone."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from tests.umami_sync.umami.test_listing import UnstableList, keys, sessions
from umami_sync.umami.errors import UmamiPagingError
from umami_sync.umami.listing import SessionListing
from umami_sync.umami.read_ahead import ReadAhead

if TYPE_CHECKING:
    from collections.abc import Iterator


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

    pages = [keys(page.rows) for page in
             SessionListing(alone, page_size=7, what="alone")]
    read_ahead = [keys(page.rows) for page in
                  ReadAhead(SessionListing(ahead, page_size=7, what="ahead"))]

    assert read_ahead == pages and alone.requests == ahead.requests

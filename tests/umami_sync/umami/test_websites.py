"""The website list, pure: all_websites against a scripted hook."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from umami_sync.umami.api import WebsitePage
from umami_sync.umami.models import UmamiWebsite
from umami_sync.umami.websites import WEBSITES_PAGE_SIZE, all_websites

DAY = datetime(2026, 11, 10, tzinfo=UTC)


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

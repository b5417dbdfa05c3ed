"""The website list, read whole: the hook (:mod:`umami_sync.umami.api`) makes one request per call, and
:func:`all_websites` reads the list page by page until ``count`` rows came."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from umami_sync.umami.api import UmamiHook
    from umami_sync.umami.models import UmamiWebsite

WEBSITES_PAGE_SIZE = 100
"""Websites asked for per page of the website list."""


def all_websites(hook: UmamiHook, *, include_teams: bool = False) -> list[UmamiWebsite]:
    """Websites the connection's user can see (and its teams' when asked), deleted ones left out."""
    websites: dict[str, UmamiWebsite] = {}
    received = 0
    for number in itertools.count(1):
        page = hook.websites_page(number, WEBSITES_PAGE_SIZE, include_teams=include_teams)
        websites.update((website.id, website) for website in page.entries if website.deleted_at is None)
        received += len(page.entries)
        if received >= page.count or not page.entries:
            break
    return list(websites.values())

"""Reading one item ahead in a helper thread: over a session list (:mod:`umami_sync.umami.listing`), the next page
is fetched while the caller works on the current one."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from concurrent.futures import Future

_Item = TypeVar("_Item")


class ReadAhead(Generic[_Item]):
    """Iterates ``items`` with the next item already being made in a helper thread, one item ahead and no more:
    over a :class:`~umami_sync.umami.listing.SessionListing`, the next page is fetched while the caller works on
    the current one. The listing runs as it would alone (its pages, repair and restarts in the same order), only
    one step earlier.

    A one-thread executor rather than a library: the read-ahead packages wrap these same few lines.
    """

    def __init__(self, items: Iterable[_Item]) -> None:
        self.items = items

    def __iter__(self) -> Iterator[_Item]:
        iterator = iter(self.items)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="umami-sync-reader") as reader:
            ahead = reader.submit(_pull, iterator)
            while item := self._wait(ahead):
                ahead = reader.submit(_pull, iterator)
                yield item[0]

    def _wait(self, ahead: Future[tuple[_Item, ...]]) -> tuple[_Item, ...]:
        """The next item, once made (an error making it is raised here); ``()`` at the end. (A method of its own:
        the benchmark times how long the caller waits here.)"""
        return ahead.result()


def _pull(iterator: Iterator[_Item]) -> tuple[_Item, ...]:
    """The next item of ``iterator`` as a 1-tuple; ``()`` at its end."""
    return tuple(itertools.islice(iterator, 1))

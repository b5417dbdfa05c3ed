"""The figure rules of stage 2 (pure): which rows of Umami's session list give a session's exact analytics, and
which sessions must be read from their events instead.

A session with one row in the window is that row. A session with rows on several hostnames (in one page, or
one came in an earlier page) is read from its events, once: the rows cannot give its visits (one visit can
span hostnames).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

from umami_sync.results import failed_most
from umami_sync.users.updates import Analytics

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence, Set

    from umami_sync.umami.activity import ActivityFigures
    from umami_sync.umami.listing import ListedPage
    from umami_sync.umami.models import InvalidRow, SessionRow


def analytics_of(row: SessionRow, figures: ActivityFigures | None = None) -> Analytics:
    """A session's analytics: the attributes of one of its rows, and the figures of that row (a session with one
    hostname in the window; its times in ``datetime.UTC``) or of its events (``figures``)."""
    if figures is None:
        first_at, last_at = row["first_at"].astimezone(UTC), row["last_at"].astimezone(UTC)
        visits, views = row["visits"], row["views"]
    else:
        first_at, last_at, visits, views = figures.first_at, figures.last_at, figures.visits, figures.views
    return Analytics(row["id"], row["website_id"], row["browser"], row["os"], row["device"], row["screen"],
                     row["language"], row["country"], row["region"], row["city"], first_at, last_at, visits, views)


@dataclass(frozen=True)
class PagePlan:
    """What one page of the listing gives.

    :param exact: the rows of sessions whose one row is exact (their analytics).
    :param earlier: of the sessions to read, those whose first row came in an earlier page (already handed on).
    :param new_sessions: sessions this page shows for the first time in this pass.
    :param listed: each session to read from its events (not read before in this pass), in the page's order, with
        every row of it in this page (what its events must give, hostname by hostname).
    """

    exact: list[SessionRow]
    earlier: frozenset[str]
    new_sessions: int
    listed: dict[str, list[SessionRow]] = field(default_factory=dict)

    @property
    def to_read(self) -> list[SessionRow]:
        """The first row of each session to read from its events."""
        return [rows[0] for rows in self.listed.values()]


def plan_page(page: ListedPage, merged: Set[str]) -> PagePlan:
    """Sort the rows of ``page``: exact analytics, and sessions to read from their events (``merged``: the
    sessions of this pass already read so)."""
    rows = page.rows
    ids = [row["id"] for row in rows]
    first = dict(zip(reversed(ids), range(len(ids) - 1, -1, -1), strict=True))  # each session's first row here
    several: dict[str, list[SessionRow]] = {}  # the sessions with more than one row in this page
    if len(first) < len(ids):
        for position, session_id in enumerate(ids):
            if (at := first[session_id]) != position:
                several.setdefault(session_id, [rows[at]]).append(rows[position])
    earlier = {ids[position] for position in page.another_row_before if first[ids[position]] == position}
    if not several and not earlier:  # the usual page: every row is its session's one row
        return PagePlan(list(rows), frozenset(), len(first))
    exact = [row for row in rows if row["id"] not in several and row["id"] not in earlier]
    to_read = [rows[at] for at in sorted(first[session_id] for session_id in several.keys() | earlier)
               if ids[at] not in merged]  # not yet read from its events (a third hostname would be)
    return PagePlan(exact, frozenset(earlier & {row["id"] for row in to_read}), len(first) - len(earlier),
                    {row["id"]: several.get(row["id"], [row]) for row in to_read})


@dataclass(frozen=True)
class PageAnalytics:
    """The sessions of one page whose analytics are known: ``exact``, those whose one row gives them, and ``read``,
    those read from their events (with their figures). ``refined`` are sessions whose earlier row (another hostname)
    was handed on before and is now replaced by the whole session; ``unread`` are sessions listed without events to
    read. The analytics themselves are made for the sessions that have users only (:meth:`analytics`)."""

    exact: list[SessionRow]
    read: list[tuple[SessionRow, ActivityFigures]]
    refined: frozenset[str]
    unread: list[str]

    @property
    def sessions(self) -> list[str]:
        """The page's sessions with analytics, in order."""
        return [row["id"] for row in self.exact] + [row["id"] for row, _ in self.read]

    def analytics(self, owners: Mapping[str, Sequence[Any]]) -> list[Analytics]:
        """The analytics of the page's sessions that have an owner in ``owners``, in order."""
        return [*(analytics_of(row) for row in self.exact if owners.get(row["id"])),
                *(analytics_of(row, figures) for row, figures in self.read if owners.get(row["id"]))]


def page_analytics(plan: PagePlan, read: Mapping[str, ActivityFigures | None]) -> PageAnalytics:
    """The page's analytics once the sessions of ``plan.to_read`` were read (``read``: their figures, None for
    a session with no events in the window)."""
    to_read = plan.to_read
    from_events = [(row, figures) for row in to_read if (figures := read.get(row["id"])) is not None]
    unread = [row["id"] for row in to_read if read.get(row["id"]) is None]
    refined = frozenset(row["id"] for row, _ in from_events if row["id"] in plan.earlier)
    return PageAnalytics(plan.exact, from_events, refined, unread)


@dataclass
class InvalidFields:
    """The fields the invalid rows of one pass over a list failed on: rows per field, and the first reason."""

    rows: Counter[str] = field(default_factory=Counter)
    reasons: dict[str, str] = field(default_factory=dict)

    def add(self, row: InvalidRow) -> None:
        """Count one invalid row."""
        self.rows.update(row.fields)
        for name in row.fields:
            self.reasons.setdefault(name, row.error)

    @property
    def most_failed(self) -> str | None:
        """The field the most invalid rows failed on; None when no row was invalid."""
        return failed_most(self.rows)

    def failure(self, rows: int, invalid: int, *, max_share: float, what: str) -> str | None:
        """Why a window whose ``rows`` are ``invalid`` beyond ``max_share`` fails, naming the field that failed
        most; None when they are not."""
        if not rows or invalid <= max_share * rows or self.most_failed is None:
            return None
        name, failed = self.most_failed, self.rows[self.most_failed]
        return (f"{invalid} of {rows} rows of Umami's session list for {what} are invalid, more than "
                f"max_invalid_share {max_share:g} allows; {failed} failed on field {name!r} (first: "
                f"{self.reasons[name]}): an Umami whose list this sync cannot read? Those rows were not written")


def kept_elsewhere(listed: int, connection: str, what: str) -> str:
    """Why a window the API lists rows for cannot be synced from a database that holds none of its sessions."""
    return (f"Umami's API lists {listed} session rows of {what}, but its PostgreSQL database (connection "
            f"{connection!r}) holds no session with an event then: Umami keeps its data in ClickHouse "
            "(CLICKHOUSE_URL is set, and no identity reaches PostgreSQL), or the connection points at another "
            "database")

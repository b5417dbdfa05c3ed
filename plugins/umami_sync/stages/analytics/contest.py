"""Which task of a run writes a user active on several of its websites (or sub-windows), and the changes of one
page of analytics.

The task that holds the user's latest session writes the user, so that every user is written once, whatever
order the tasks run in, and a dry run counts what the real run does. The contest reads through two named
interfaces (:class:`SessionSpans`, :class:`WholeSessions`) that the runner passes in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from umami_sync.users.updates import analytics_change

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from umami_sync.owners import Owners
    from umami_sync.stages.analytics.figures import PageAnalytics
    from umami_sync.users.store import User
    from umami_sync.users.updates import Analytics, Change, Rank
    from umami_sync.windows import DataInterval


class SessionSpans(Protocol):
    """The first and last event, in the run's interval, of sessions on the run's websites."""

    def spans(self, sessions: Sequence[str]) -> dict[str, tuple[datetime, datetime]]:
        """(first, last) event time of each of ``sessions`` that has events; one read for all of them."""


class WholeSessions(Protocol):
    """A session's analytics over the run's whole interval (read from its events)."""

    def whole(self, analytics: Analytics) -> Analytics | None:
        """``analytics`` with the figures of the whole interval; None when it has no events there."""


@dataclass(frozen=True)
class Contest:
    """Decides which users of a page another task of the run writes.

    :param websites: the run's websites.
    :param window: this task's window.
    :param spans: each rival session's first and last event in the run's interval.
    :param whole: the figures over the run's interval of a session that was active in an earlier sub-window.
    """

    websites: tuple[str, ...]
    window: DataInterval
    spans: SessionSpans
    whole: WholeSessions

    def rivals(self, user: User) -> set[str]:
        """The sessions ``user`` is known by on the run's websites (or on a website not recorded)."""
        entries = [entry for entry in user.get("umamiSessions") or [] if isinstance(entry, dict)]
        known = {entry.get("id") for entry in entries if entry.get("websiteId") in (*self.websites, None)}
        known.add(user.get("session_id"))
        return {session for session in known if isinstance(session, str)}

    def decide(self, chosen: Mapping[Any, tuple[Analytics, User]]) -> tuple[set[Any], dict[Any, Analytics]]:
        """The users of ``chosen`` that another task writes, and the winners whose session began in an earlier
        sub-window, with their figures over the run's whole interval.

        Another task writes the user when another of the user's sessions ended later (or in the same millisecond
        with a larger id), or when this session is active again in a later sub-window. Every contestant's last
        event comes from the same read (:class:`SessionSpans`, in whole milliseconds), so that every task of the
        run reaches the same answer and each user has exactly one writer.
        """
        rivals = {user_id: self.rivals(user) for user_id, (_, user) in chosen.items()}
        spans = self.spans.spans(sorted(set().union(*rivals.values())))
        lost: set[Any] = set()
        widened: dict[Any, Analytics] = {}
        for user_id, (item, _) in chosen.items():
            own = spans.get(item.id)
            mine = (own[1] if own else item.last_at, item.id)
            if (own and own[1] >= self.window.end) or any(
                    (spans[session][1], session) > mine for session in rivals[user_id] - {item.id} if session in spans):
                lost.add(user_id)
            elif own and own[0] < self.window.start:
                whole = self.whole.whole(item)
                if whole is not None:
                    widened[user_id] = whole
        return lost, widened


@dataclass(frozen=True)
class PageChanges:
    """The changes one page of analytics calls for, and what deciding them found.

    :param given: the rank of the analytics each changed user is given.
    :param lost: users another task of the run writes.
    :param matched_sessions: sessions of the page (not refinements of one handed on before) that have users.
    """

    changes: list[Change]
    given: dict[Any, Rank]
    lost: set[Any]
    matched_sessions: int


def plan_analytics_changes(page: PageAnalytics, owners: Owners, given: Mapping[Any, Rank], *, now: datetime,
                           contest: Contest) -> PageChanges:
    """One guarded change per user whose analytics one of the page's improves (over what the user holds and
    what this task gave the user before, ``given``), unless ``contest`` gives the user to another task."""
    matched = sum(1 for item in page.analytics if owners.get(item.id) and item.id not in page.refined)
    chosen: dict[Any, tuple[Analytics, User]] = {}
    for item in page.analytics:
        for user in owners.get(item.id, ()):
            user_id = user["_id"]
            earlier = chosen[user_id][0].rank if user_id in chosen else given.get(user_id)
            if earlier is None or item.rank > earlier:
                chosen[user_id] = (item, user)
    lost, widened = contest.decide(chosen)
    changes: list[Change] = []
    ranks: dict[Any, Rank] = {}
    for user_id, (item, user) in chosen.items():
        if user_id in lost:
            continue
        final = widened.get(user_id, item)
        change = analytics_change(user, final, now=now)
        if change is not None:
            ranks[user_id] = final.rank
            changes.append(change)
    return PageChanges(changes, ranks, lost, matched)

"""Which task of a run writes a user active on several of its websites (or sub-windows), and the changes of one
page of analytics.

The task that holds the user's latest session writes the user, so that every user is written once, whatever
order the tasks run in, and a dry run counts what the real run does. The contest reads through named interfaces
(:class:`SessionSpans`, :class:`WholeSessions`, :class:`StoredFiguresCheck`) that the runner passes in, and returns
what it decided with the fallbacks it had to take (:class:`Decision`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from umami_sync.users.updates import analytics_change, blocking

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from umami_sync.owners import Owners
    from umami_sync.stages.analytics.figures import PageAnalytics
    from umami_sync.users.store import User
    from umami_sync.users.updates import Analytics, Change, Rank, StoredAnalytics
    from umami_sync.windows import DataInterval


class SessionSpans(Protocol):
    """The first and last event, in the run's interval, of sessions on the run's websites."""

    def spans(self, sessions: Sequence[str]) -> Mapping[str, tuple[datetime, datetime]] | None:
        """(first, last) event time of each of ``sessions`` that has events; one read for all of them. None when
        nothing was read: no other task of the run can hold a user's session (one website, one window)."""


class WholeSessions(Protocol):
    """Sessions' analytics over the run's whole interval (read from their events)."""

    def whole(self, analytics: Sequence[Analytics]) -> Mapping[str, Analytics]:
        """Each of ``analytics`` with the figures of the whole interval, by session; one with no events there is
        left out. One read for all of them where the source allows."""


class StoredFiguresCheck(Protocol):
    """Whether stored analytics are borne out by their session's events."""

    def disproved(self, stored: Sequence[StoredAnalytics]) -> set[StoredAnalytics]:
        """Those of ``stored`` that their session's events disprove; one read for all of them."""


class TrustStored:
    """The check of a task that cannot read Umami's events (no database): every stored figure is taken as true."""

    def disproved(self, stored: Sequence[StoredAnalytics]) -> set[StoredAnalytics]:
        """None of them."""
        return set()


@dataclass(frozen=True)
class Decision:
    """What the contest decided for a page's users, and the fallbacks it took.

    :param lost: users another task of the run writes.
    :param widened: the winners whose session began in an earlier sub-window, with their figures over the run's
        interval.
    :param unspanned: contested sessions Umami's database gave no first and last event for: the list's ``lastAt``
        stood in for theirs.
    :param unwidened: sessions that began in an earlier sub-window whose figures over the run's interval could not
        be read: this window's figures stood in for them.
    """

    lost: set[Any]
    widened: dict[Any, Analytics]
    unspanned: frozenset[str] = frozenset()
    unwidened: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Contest:
    """Decides which users of a page another task of the run writes.

    :param websites: the run's websites.
    :param window: this task's window.
    :param spans: each rival session's first and last event in the run's interval.
    :param whole: the figures over the run's interval of sessions that were active in an earlier sub-window.
    :param stored: which stored analytics (of the run's websites) their session's events disprove.
    """

    websites: tuple[str, ...]
    window: DataInterval
    spans: SessionSpans
    whole: WholeSessions
    stored: StoredFiguresCheck = field(default_factory=TrustStored)

    def rivals(self, user: User) -> set[str]:
        """The sessions ``user`` is known by on the run's websites (or on a website not recorded)."""
        entries = [entry for entry in user.get("umamiSessions") or [] if isinstance(entry, dict)]
        known = {entry.get("id") for entry in entries if entry.get("websiteId") in (*self.websites, None)}
        known.add(user.get("session_id"))
        return {session for session in known if isinstance(session, str)}

    def decide(self, chosen: Mapping[Any, tuple[Analytics, User]]) -> Decision:
        """Which users of ``chosen`` another task writes, and the winners whose session began in an earlier
        sub-window, with their figures over the run's whole interval.

        Another task writes the user when another of the user's sessions ended later (or in the same millisecond
        with a larger id), or when this session is active again in a later sub-window. Every contestant's last
        event comes from the same read (:class:`SessionSpans`, in whole milliseconds), so that every task of the
        run reaches the same answer and each user has exactly one writer.
        """
        rivals = {user_id: self.rivals(user) for user_id, (_, user) in chosen.items()}
        read = self.spans.spans(sorted(set().union(*rivals.values())))
        spans = read or {}
        lost: set[Any] = set()
        earlier: dict[Any, Analytics] = {}
        unspanned: set[str] = set()
        for user_id, (item, _) in chosen.items():
            own = spans.get(item.id)
            if own is None and read is not None:
                unspanned.add(item.id)
            mine = (own[1] if own else item.last_at, item.id)
            if (own and own[1] >= self.window.end) or any(
                    (spans[session][1], session) > mine for session in rivals[user_id] - {item.id} if session in spans):
                lost.add(user_id)
            elif own and own[0] < self.window.start:
                earlier[user_id] = item
        whole = self.whole.whole(list({item.id: item for item in earlier.values()}.values())) if earlier else {}
        widened = {user_id: whole[item.id] for user_id, item in earlier.items() if item.id in whole}
        unwidened = frozenset(item.id for item in earlier.values() if item.id not in whole)
        return Decision(lost, widened, frozenset(unspanned), unwidened)


@dataclass(frozen=True)
class PageChanges:
    """The changes one page of analytics calls for, and what deciding them found.

    :param given: the rank of the analytics each changed user is given.
    :param lost: users another task of the run writes.
    :param matched_sessions: sessions of the page (not refinements of one handed on before) that have users.
    :param disproved: users whose stored analytics their session's events disprove, replaced by this page's.
    :param unspanned: the contest's sessions judged by the list's ``lastAt`` (see :class:`Decision`).
    :param unwidened: the contest's sessions written with this window's figures (see :class:`Decision`).
    """

    changes: list[Change]
    given: dict[Any, Rank]
    lost: set[Any]
    matched_sessions: int
    disproved: set[Any] = field(default_factory=set)
    unspanned: frozenset[str] = frozenset()
    unwidened: frozenset[str] = frozenset()


def plan_analytics_changes(page: PageAnalytics, owners: Owners, given: Mapping[Any, Rank], *, now: datetime,
                           contest: Contest) -> PageChanges:
    """One guarded change per user whose analytics one of the page's improves (over what the user holds and
    what this task gave the user before, ``given``), unless ``contest`` gives the user to another task.

    Stored analytics of the run's websites that outrank a user's new ones are checked against their session's
    events first (one read for the page): figures the events disprove never block the true ones.
    """
    owned = page.analytics(owners)
    matched = sum(1 for item in owned if item.id not in page.refined)
    chosen: dict[Any, tuple[Analytics, User]] = {}
    for item in owned:
        for user in owners[item.id]:
            user_id = user["_id"]
            earlier = chosen[user_id][0].rank if user_id in chosen else given.get(user_id)
            if earlier is None or item.rank > earlier:
                chosen[user_id] = (item, user)
    decision = contest.decide(chosen)
    final = {user_id: (decision.widened.get(user_id, item), user) for user_id, (item, user) in chosen.items()
             if user_id not in decision.lost}
    blocked = {user_id: stored for user_id, (item, user) in final.items()
               if (stored := blocking(item, user.get("umamiAnalytics"))) and stored.website_id in contest.websites}
    disproved = contest.stored.disproved(list(set(blocked.values()))) if blocked else set()
    changes: list[Change] = []
    ranks: dict[Any, Rank] = {}
    for user_id, (item, user) in final.items():
        change = analytics_change(user, item, now=now, disproved=disproved)
        if change is not None:
            ranks[user_id] = item.rank
            changes.append(change)
    replaced = {user_id for user_id, stored in blocked.items() if stored in disproved}
    return PageChanges(changes, ranks, decision.lost, matched, replaced, decision.unspanned, decision.unwidened)

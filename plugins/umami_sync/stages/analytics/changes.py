"""One job's pass over its listing, page by page: the changes it decides and the figures it keeps
(:class:`JobProgress`). Its reads are passed in; it does no I/O of its own."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from umami_sync.stages.analytics.contest import plan_analytics_changes
from umami_sync.stages.analytics.figures import InvalidFields, page_analytics, plan_page

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable
    from datetime import datetime

    from umami_sync.owners import Owners
    from umami_sync.stages.analytics.contest import Contest, PageChanges
    from umami_sync.stages.analytics.reads import SessionFigures
    from umami_sync.umami.listing import ListedPage
    from umami_sync.users.updates import Change, Rank

log = logging.getLogger(__name__)


@dataclass
class JobProgress:
    """What one job found in the current pass over its listing (a listing that starts again begins a new pass),
    and the rank of the analytics it gave each user and the users whose disproved analytics it replaced (both kept
    across passes)."""

    given: dict[Any, Rank] = field(default_factory=dict)
    disproved: set[Any] = field(default_factory=set)
    merged: set[str] = field(default_factory=set)
    left: set[Any] = field(default_factory=set)
    unspanned: set[str] = field(default_factory=set)
    unwidened: set[str] = field(default_factory=set)
    sessions: int = 0
    merged_sessions: int = 0
    unread_sessions: int = 0
    matched_sessions: int = 0
    invalid: InvalidFields = field(default_factory=InvalidFields)

    def new_pass(self) -> None:
        """The list is read again from the top: count it again, read again what it merged."""
        for found in (self.merged, self.left, self.unspanned, self.unwidened):
            found.clear()
        self.invalid = InvalidFields()
        self.sessions = self.merged_sessions = self.unread_sessions = self.matched_sessions = 0

    def figures(self) -> dict[str, int]:
        """The result's figures of this job's sessions."""
        return {"sessions": self.sessions, "merged_sessions": self.merged_sessions,
                "unread_sessions": self.unread_sessions, "matched_sessions": self.matched_sessions,
                "left_to_other_tasks": len(self.left), "disproved_analytics": len(self.disproved),
                "sessions_without_span": len(self.unspanned), "sessions_not_widened": len(self.unwidened)}


def analytics_changes(pages: Iterable[ListedPage], events: SessionFigures, owners_of: Callable[[list[str]], Owners],
                      contest: Contest, progress: JobProgress, *, now: datetime) -> Generator[Change]:
    """The changes of a listing, page by page, ``progress`` keeping the figures."""
    for page in pages:
        if page.restarted:
            progress.new_pass()
        for invalid in page.invalid:
            log.warning("skipped a malformed session row (id %s): %s", invalid.session_id or "unknown", invalid.error)
            progress.invalid.add(invalid)
        plan = plan_page(page, progress.merged)
        progress.merged.update(plan.listed)
        found = page_analytics(plan, events.figures(plan.listed) if plan.listed else {})
        for session_id in found.unread:
            log.error("session %s is listed but has no events in the window; not written", session_id)
        decided = plan_analytics_changes(found, owners_of(found.sessions), progress.given,
                                         now=now, contest=contest)
        _log_fallbacks(decided)
        progress.given.update(decided.given)
        progress.disproved.update(decided.disproved)
        progress.left.update(decided.lost)
        progress.unspanned.update(decided.unspanned)
        progress.unwidened.update(decided.unwidened)
        progress.sessions += plan.new_sessions
        progress.merged_sessions += len(plan.listed)
        progress.unread_sessions += len(found.unread)
        progress.matched_sessions += decided.matched_sessions
        yield from decided.changes


def _log_fallbacks(decided: PageChanges) -> None:
    """Say what a page's decisions had to fall back on, and which stored figures they found false."""
    for session_id in sorted(decided.unspanned):
        log.warning("session %s: Umami's PostgreSQL holds no event of it in the run's interval; the contest took the "
                    "list's lastAt for its last event", session_id)
    for session_id in sorted(decided.unwidened):
        log.warning("session %s began in an earlier sub-window, but its events over the run's interval could not be "
                    "read; this window's figures are written", session_id)
    for user_id in decided.disproved:
        log.info("user %s: the stored umamiAnalytics is not borne out by its session's events; replaced", user_id)

"""A session's activity: :func:`read_activity` reads a session's events (500 per call at most) and gives its exact
figures across hostnames (the session list has one row per session AND hostname, each with that hostname's
figures), leaving out, and counting, what the answer holds outside the window or of another session.

Performance beacons are never activity: beacon events do not count in a session's figures, on every version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from umami_sync.umami.errors import UmamiActivityError
from umami_sync.umami.models import BEACON
from umami_sync.windows import ApiWindow, from_epoch_ms, to_epoch_ms

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from umami_sync.umami.models import ActivityEvent

ACTIVITY_LIMIT = 500
"""Events Umami returns per activity call, at most."""


@dataclass(frozen=True)
class ActivityFigures:
    """A session's exact figures in a window, from its events."""

    first_at: datetime
    last_at: datetime
    views: int
    visits: int


@dataclass
class _Tally:
    """Figures of the events counted so far."""

    first: datetime
    last: datetime
    views: int = 0
    visits: set[str] = field(default_factory=set)

    def add(self, event: ActivityEvent) -> _Tally:
        self.visits.add(event.visit_id)
        self.views += event.event_type == 1
        self.first, self.last = min(self.first, event.created_at), max(self.last, event.created_at)
        return self

    def figures(self) -> ActivityFigures:
        return ActivityFigures(self.first, self.last, self.views, len(self.visits))


def _tallied(tally: _Tally | None, event: ActivityEvent) -> _Tally:
    """``tally`` (a new one for the first event) with ``event`` counted."""
    return (tally or _Tally(event.created_at, event.created_at)).add(event)


@dataclass(frozen=True)
class ActivityRead:
    """What one session's activity gave: its figures in the window (None when it had no events there), the
    figures per hostname, and the events left out: outside the window, or of another session."""

    figures: ActivityFigures | None
    hostnames: dict[str | None, ActivityFigures]
    left_out: int


def read_activity(fetch: Callable[[ApiWindow], list[ActivityEvent]], window: ApiWindow, *, session_id: str,
                  what: str) -> ActivityRead:
    """Read every event of session ``session_id`` in ``window`` and count them.

    Umami answers at most :data:`ACTIVITY_LIMIT` events, newest first. A full answer is continued with the
    window ending at its oldest event (one millisecond later, so nothing at that instant is skipped),
    events already counted being recognised by id. An answer can hold what was not asked for: Umami's newer
    activity route widens the window to whole months and adds other sessions' events for a session linked to one
    person. An event outside ``window``, or one that names another session (2.x sends ``sessionId``), is left out
    and counted; one that cannot be told apart (3.x sends no session) is the caller's to check.
    """
    seen: set[str] = set()
    total: _Tally | None = None
    hostnames: dict[str | None, _Tally] = {}
    left_out = 0
    end = window.end_ms
    while True:
        batch = fetch(ApiWindow(window.start_ms, end))
        fresh = [event for event in batch if event.event_id not in seen]
        for event in fresh:
            seen.add(event.event_id)
            if (not window.start_ms <= to_epoch_ms(event.created_at) <= window.end_ms
                    or event.session_id not in (None, session_id)):
                left_out += 1
                continue
            if event.event_type == BEACON:  # not activity: newer Umami leaves beacons out of its figures too
                continue
            total = _tallied(total, event)
            hostnames[event.hostname] = _tallied(hostnames.get(event.hostname), event)
        if len(batch) < ACTIVITY_LIMIT:
            break
        oldest = to_epoch_ms(min(event.created_at for event in batch))
        if oldest < window.start_ms:  # the answer reaches back past the window: nothing in it is left to ask for
            break
        if not fresh:
            raise UmamiActivityError(f"{what}: more than {ACTIVITY_LIMIT} events at "
                                     f"{from_epoch_ms(oldest).isoformat()}; its activity cannot be paged")
        end = min(oldest + 1, window.end_ms)
    return ActivityRead(total.figures() if total else None,
                        {name: tally.figures() for name, tally in hostnames.items()}, left_out)

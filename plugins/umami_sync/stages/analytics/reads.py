"""The reads a stage-2 task passes to its pure parts: single sessions' events (Umami's API) and sessions' first
and last events (Umami's database, or the sessions' events when the run reads no database), each behind the
interface its user names."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from umami_sync.umami.paging import read_activity
from umami_sync.windows import ApiWindow

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from umami_sync.stages.analytics.jobs import AnalyticsJob
    from umami_sync.umami.api import UmamiHook
    from umami_sync.umami.db import UmamiDatabase
    from umami_sync.umami.paging import ActivityFigures
    from umami_sync.users.updates import Analytics
    from umami_sync.windows import DataInterval


class SessionFigures(Protocol):
    """A session's exact figures in a job's window, from its events."""

    def figures(self, session_id: str) -> ActivityFigures | None:
        """None when the session has no events in the window."""


class SessionEvents:
    """Reads of single sessions' events for one job: their figures in its window (:class:`SessionFigures`), or
    over the run's interval (the contest's :class:`~.contest.WholeSessions`)."""

    def __init__(self, api: UmamiHook, job: AnalyticsJob, run_interval: DataInterval, *, what: str) -> None:
        self.api = api
        self.job = job
        self.what = what
        self.window = ApiWindow.of(job.interval)
        self.run_window = ApiWindow.of(run_interval)

    def figures(self, session_id: str, window: ApiWindow | None = None) -> ActivityFigures | None:
        """The session's figures in ``window`` (the job's by default); None when it has no events there."""
        return read_activity(lambda span: self.api.session_activity(self.job.website_id, session_id, span),
                             window or self.window, what=f"session {session_id} of {self.what}")

    def whole(self, analytics: Analytics) -> Analytics | None:
        """``analytics`` with its session's figures over the run's interval."""
        figures = self.figures(analytics.id, self.run_window)
        return replace(analytics, first_at=figures.first_at, last_at=figures.last_at, visits=figures.visits,
                       views=figures.views) if figures else None


@dataclass(frozen=True)
class DatabaseSpans:
    """The contest's :class:`~.contest.SessionSpans` from Umami's database; none when nobody competes (one
    website and one window)."""

    database: UmamiDatabase
    interval: DataInterval
    contested: bool

    def spans(self, sessions: Sequence[str]) -> dict[str, tuple[datetime, datetime]]:
        """First and last event of each of ``sessions`` in the run's interval."""
        return self.database.event_spans(sessions, self.interval) if self.contested else {}


@dataclass(frozen=True)
class EventSpans:
    """The contest's :class:`~.contest.SessionSpans` when the run reads no database (Umami Cloud): each session's
    first and last event in the run's interval, from its events on this job's website (a session of another website
    has none there, so it is not compared). Read only when the website's interval is cut into sub-windows
    (``contested``): a session active in two of them is then written once, by the later one, with its whole
    figures. A user active on several websites is written by each website's task, the guard keeping the latest."""

    events: SessionEvents
    contested: bool

    def spans(self, sessions: Sequence[str]) -> dict[str, tuple[datetime, datetime]]:
        """First and last event of each of ``sessions`` on this website in the run's interval."""
        found: dict[str, tuple[datetime, datetime]] = {}
        for session_id in sessions if self.contested else ():
            figures = self.events.figures(session_id, self.events.run_window)
            if figures is not None:
                found[session_id] = (figures.first_at, figures.last_at)
        return found

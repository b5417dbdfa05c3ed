"""The reads a stage-2 task passes to its pure parts, each behind the interface its user names: single sessions'
figures (:class:`SessionFigures`, and the contest's :class:`~.contest.WholeSessions`), the contest's first and last
events (:class:`~.contest.SessionSpans`), and whether stored figures hold (:class:`~.contest.StoredFiguresCheck`).

Where Umami's PostgreSQL is connected, single sessions are read from it (:class:`DatabaseSessions`): one query per
page, of that session's events alone. Without it (Umami Cloud), :class:`SessionEvents` reads the activity route,
asked so that it stays on the one session, and checks what it answers.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from umami_sync.umami.activity import read_activity
from umami_sync.umami.errors import UmamiActivityError
from umami_sync.windows import ApiWindow

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from umami_sync.stages.analytics.jobs import AnalyticsJob
    from umami_sync.umami.activity import ActivityFigures, ActivityRead
    from umami_sync.umami.api import UmamiHook
    from umami_sync.umami.db import UmamiDatabase
    from umami_sync.umami.models import SessionRow
    from umami_sync.users.updates import Analytics, StoredAnalytics
    from umami_sync.windows import DataInterval

log = logging.getLogger(__name__)


class SessionFigures(Protocol):
    """Sessions' exact figures in a job's window, from their events."""

    left_out: int
    """Events the reads were answered and left out (outside the window asked for, or another session's)."""

    def figures(self, rows: Mapping[str, Sequence[SessionRow]]) -> dict[str, ActivityFigures]:
        """The figures of each session of ``rows`` (its list rows of the page at hand) that has events in the
        window; one read for all of them where the source allows."""


def whole_analytics(item: Analytics, figures: ActivityFigures) -> Analytics:
    """``item`` with ``figures`` (its session's over the run's interval)."""
    return replace(item, first_at=figures.first_at, last_at=figures.last_at, visits=figures.visits,
                   views=figures.views)


@dataclass
class DatabaseSessions:
    """Single sessions of one job read from Umami's PostgreSQL, each query on the sessions of one page: their
    figures in the job's window (:class:`SessionFigures`) or over the run's interval (:class:`~.contest.WholeSessions`),
    and which stored figures their events disprove (:class:`~.contest.StoredFiguresCheck`). Counted as Umami's
    session list counts them, from the session's own events only, so another session's never count."""

    database: UmamiDatabase
    job: AnalyticsJob
    run_interval: DataInterval
    left_out: int = 0  # a query of one session's events answers nothing else

    def figures(self, rows: Mapping[str, Sequence[SessionRow]]) -> dict[str, ActivityFigures]:
        """The figures in the job's window of each session of ``rows`` that has events there."""
        return self.database.session_figures(self.job.website_id, list(rows), self.job.interval)

    def whole(self, analytics: Sequence[Analytics]) -> dict[str, Analytics]:
        """Each of ``analytics`` with its session's figures over the run's interval (left out without events)."""
        figures = self.database.session_figures(self.job.website_id, [item.id for item in analytics],
                                                self.run_interval)
        return {item.id: whole_analytics(item, figures[item.id]) for item in analytics if item.id in figures}

    def disproved(self, stored: Sequence[StoredAnalytics]) -> set[StoredAnalytics]:
        """Those of ``stored`` (of websites Umami's database holds) that their session's events do not bear out."""
        checked = [(item, website) for item in stored if (website := item.website_id)]
        positions = self.database.disproved_figures(
            [(item.id, website, item.first_at, item.last_at, item.views, item.visits) for item, website in checked])
        return {checked[position][0] for position in positions}


class SessionEvents:
    """Single sessions of one job read from Umami's activity route, for a server whose database is not connected
    (Umami Cloud): their figures in the job's window (:class:`SessionFigures`) or over the run's interval
    (:class:`~.contest.WholeSessions`).

    Umami's newer route (``.../sessions/{sessionId}/activity/route.ts`` at 188b628c, identity stitching of 3.3) answers,
    for a session linked to exactly one distinct id, the events of every session linked to that id over whole months
    (start of the first link's month to the end of the last one's), unless the request names a ``distinctId``: then
    the sessions linked to that id are added instead. Every request names a fresh random id, which no session is
    linked to, so the route stays on the one session and its window; older servers drop the key unread (zod strips
    what a route's schema does not name). What the answer holds all the same is checked:

    * events outside the window asked for, or naming another session, are left out and counted (:attr:`left_out`);
    * the events on each hostname of the session's list rows at hand must give that row exactly. When they do not,
      the answer holds events that cannot be told apart from the session's own, and the read fails
      (:class:`~umami_sync.umami.errors.UmamiActivityError`): such figures cannot be trusted, so none is written.
    """

    def __init__(self, api: UmamiHook, job: AnalyticsJob, run_interval: DataInterval, *, what: str) -> None:
        self.api = api
        self.job = job
        self.what = what
        self.window = ApiWindow.of(job.interval)
        self.run_window = ApiWindow.of(run_interval)
        self.unlinked_id = str(uuid.uuid4())
        self.left_out = 0
        self._over_run: dict[str, ActivityFigures | None] = {}

    def over_run(self, sessions: Iterable[str]) -> dict[str, ActivityFigures | None]:
        """Each of ``sessions``' figures over the run's interval (None without events). The last call's figures are
        kept, so that the contest's spans and whole figures of one page read a session once."""
        kept = self._over_run
        self._over_run = {session_id: kept[session_id] if session_id in kept
                          else self.read(session_id, self.run_window).figures for session_id in sessions}
        return self._over_run

    def read(self, session_id: str, window: ApiWindow) -> ActivityRead:
        """One session's events in ``window``, what was left out counted."""
        read = read_activity(
            lambda span: self.api.session_activity(self.job.website_id, session_id, span,
                                                   distinct_id=self.unlinked_id),
            window, session_id=session_id, what=f"session {session_id} of {self.what}")
        if read.left_out:
            log.warning("session %s of %s: the activity answered %s events outside the window asked for or of another "
                        "session; left out", session_id, self.what, read.left_out)
        self.left_out += read.left_out
        return read

    def figures(self, rows: Mapping[str, Sequence[SessionRow]]) -> dict[str, ActivityFigures]:
        """The figures in the job's window of each session of ``rows`` that has events there, one read each."""
        found = {}
        for session_id, listed in rows.items():
            read = self.read(session_id, self.window)
            for row in listed:
                self._check(read, row)
            if read.figures is not None:
                found[session_id] = read.figures
        return found

    def whole(self, analytics: Sequence[Analytics]) -> dict[str, Analytics]:
        """Each of ``analytics`` with its session's figures over the run's interval (left out without events)."""
        read = self.over_run(item.id for item in analytics)
        return {item.id: whole_analytics(item, figures) for item in analytics
                if (figures := read[item.id]) is not None}

    def _check(self, read: ActivityRead, row: SessionRow) -> None:
        """Fail when the events of ``row``'s hostname do not give ``row``: the answer holds foreign events."""
        if row["hostname"] is None:  # a list without hostnames (2.x) has one row per session: never read here
            return
        got = read.hostnames.get(row["hostname"])
        gave = (got.first_at, got.last_at, got.views, got.visits) if got else None
        listed = (row["first_at"], row["last_at"], row["views"], row["visits"])
        if gave != listed:
            raise UmamiActivityError(
                f"session {row['id']} of {self.what}: its activity on {row['hostname']} gives (firstAt, lastAt, views, "
                f"visits) {_shown(gave)} where its list row says {_shown(listed)}: the answer holds events of other "
                "sessions (Umami's newer activity route answers every session linked to the same person), so its "
                "figures cannot be trusted and none is written")


def _shown(figures: tuple[datetime, datetime, int, int] | None) -> str:
    if figures is None:
        return "nothing"
    first, last, views, visits = figures
    return f"({first.isoformat()}, {last.isoformat()}, {views}, {visits})"


@dataclass(frozen=True)
class DatabaseSpans:
    """The contest's :class:`~.contest.SessionSpans` from Umami's database; not read when nobody competes (one
    website and one window)."""

    database: UmamiDatabase
    interval: DataInterval
    contested: bool

    def spans(self, sessions: Sequence[str]) -> dict[str, tuple[datetime, datetime]] | None:
        """First and last event of each of ``sessions`` in the run's interval; None when nobody competes."""
        return self.database.event_spans(sessions, self.interval) if self.contested else None


@dataclass(frozen=True)
class EventSpans:
    """The contest's :class:`~.contest.SessionSpans` when the run reads no database (Umami Cloud): each session's
    first and last event in the run's interval, from its events on this job's website (a session of another website
    has none there, so it is not compared). Read only when the website's interval is cut into sub-windows
    (``contested``): a session active in two of them is then written once, by the later one, with its whole
    figures. A user active on several websites is written by each website's task, the guard keeping the latest."""

    events: SessionEvents
    contested: bool

    def spans(self, sessions: Sequence[str]) -> dict[str, tuple[datetime, datetime]] | None:
        """First and last event of each of ``sessions`` on this website in the run's interval; None when nobody
        competes."""
        if not self.contested:
            return None
        return {session_id: (figures.first_at, figures.last_at)
                for session_id, figures in self.events.over_run(sessions).items() if figures is not None}

"""Stage 2, analytics sync: each website's sessions from Umami's API become ``umamiAnalytics`` on users.

:func:`plan_analytics_jobs` decides the mapped tasks (website x sub-window). :func:`sync_analytics_job` runs
one: it reads the website's whole session list for the window (:class:`~umami_sync.umami.paging.SessionListing`),
turns its rows into one exact figure per session (:func:`session_analytics`, pure), finds the users who own
those sessions (by ``session_id`` or a known session id), and sends guarded changes. A window whose list
could not be read completely fails the task, after writing what was read.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from umami_sync.connections import UmamiDatabaseHook, open_users
from umami_sync.results import AnalyticsResult, WriteTotals
from umami_sync.stages.sessions import would_be_owners
from umami_sync.umami.api import UmamiHook
from umami_sync.umami.db import UmamiDatabase
from umami_sync.umami.errors import UmamiAuthError, UmamiCredentialsError, UmamiError
from umami_sync.umami.paging import SessionListing, all_websites, read_activity
from umami_sync.users.updates import Analytics, analytics_change
from umami_sync.windows import ApiWindow, DataInterval, analytics_interval

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from umami_sync.settings import SyncSettings
    from umami_sync.umami.models import UmamiSession
    from umami_sync.umami.paging import ActivityFigures, ListedPage, ListingReport
    from umami_sync.users.store import User, UsersCollection
    from umami_sync.users.updates import Change

log = logging.getLogger(__name__)


class AnalyticsJob(BaseModel):
    """One mapped task of stage 2: a website and one sub-window of the run's interval."""

    model_config = ConfigDict(frozen=True)

    website_id: str
    website_name: str | None = None
    window_start: datetime
    window_end: datetime
    part: int = 1
    parts: int = 1
    run_websites: tuple[str, ...] = ()
    """Every website of the run: a user active on several is written by the task of the latest session."""

    @property
    def label(self) -> str:
        """What the Airflow UI shows for this mapped task: the website and the days it syncs."""
        name = self.website_name or self.website_id
        first, last = self.window_start.date(), (self.window_end - timedelta(milliseconds=1)).date()
        days = first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"
        part = f" {self.part}/{self.parts}" if self.parts > 1 else ""
        return f"{name} · {days}{part}"

    @property
    def interval(self) -> DataInterval:
        """The half-open interval this job reads."""
        return DataInterval(self.window_start, self.window_end)


class UnknownWebsiteError(UmamiError):
    """A configured website id that no website the connection's user can see has."""


def make_hook(settings: SyncSettings) -> UmamiHook:
    """The Umami API hook configured by ``settings``."""
    return UmamiHook(
        settings.umami_api_conn_id,
        timeout=settings.http_timeout_seconds,
        max_retries=settings.http_max_retries,
        max_retry_wait=settings.max_retry_wait_seconds,
        rate_limit_calls=settings.rate_limit_calls,
        rate_limit_period=settings.rate_limit_period_seconds,
    )


def configured_websites(hook: UmamiHook, website_ids: Iterable[str]) -> list[tuple[str, str]]:
    """(id, name) of each configured website, checked against the API: an id no website has, or one the
    connection's user may not view, raises :class:`UnknownWebsiteError` naming it."""
    websites = []
    for website_id in website_ids:
        try:
            website = hook.get_website(website_id)
        except UmamiAuthError as exc:
            if isinstance(exc, UmamiCredentialsError):
                raise
            raise UnknownWebsiteError(f"website {website_id}: the connection's user may not view it "
                                      f"({exc.message})") from None
        if website is None:
            raise UnknownWebsiteError(f"website {website_id}: Umami has no such website (or it was deleted)")
        websites.append((website.id, website.name))
    return websites


def plan_analytics_jobs(settings: SyncSettings, interval: DataInterval,
                        hook: UmamiHook | None = None) -> list[AnalyticsJob]:
    """The jobs of one run: every website (configured and checked, or discovered) x sub-window."""
    hook = hook or make_hook(settings)
    if settings.website_ids:
        websites = configured_websites(hook, settings.website_ids)
    else:
        websites = [(site.id, site.name) for site in all_websites(hook, include_teams=settings.include_team_websites)]
    parts = analytics_interval(interval, days_back=settings.analytics_days_back).split(settings.sub_windows)
    ids = tuple(website_id for website_id, _ in websites)
    return [
        AnalyticsJob(website_id=website_id, website_name=name, window_start=part.start, window_end=part.end,
                     part=number, parts=len(parts), run_websites=ids)
        for website_id, name in websites
        for number, part in enumerate(parts, start=1)
    ]


def analytics_of(row: UmamiSession, figures: UmamiSession | ActivityFigures) -> Analytics:
    """A session's analytics: the attributes of one of its rows, the figures of that row (a session with one
    hostname in the window) or of its events."""
    return Analytics(row.id, row.website_id, row.browser, row.os, row.device, row.screen, row.language, row.country,
                     row.region, row.city, figures.first_at, figures.last_at, figures.visits, figures.views)


@dataclass(frozen=True)
class PageAnalytics:
    """The analytics of one page of the listing; ``refined``: sessions whose earlier row (another hostname)
    was already handed on, now read whole."""

    analytics: list[Analytics]
    refined: set[str]


@dataclass
class JobState:
    """What one job remembers while it reads its list: the rank of the analytics each user was given (so a
    user owning several sessions gets the best, and a dry run counts what a real run writes), the sessions
    read from their events, and the users left to another task."""

    given: dict[Any, tuple[datetime, str, float, int, int]] = field(default_factory=dict)
    merged: set[str] = field(default_factory=set)
    left: set[Any] = field(default_factory=set)

    def restart(self, result: AnalyticsResult) -> None:
        """The list is read again from the top (its count changed): count it again, read again what it merged."""
        self.merged.clear()
        self.left.clear()
        result.sessions = result.merged_sessions = result.matched_sessions = result.left_to_other_tasks = 0


def session_analytics(pages: Iterable[ListedPage], activity: Callable[[str], ActivityFigures | None],
                      result: AnalyticsResult, state: JobState) -> Iterator[PageAnalytics]:
    """One exact :class:`Analytics` per session, page by page of the listing.

    A session with one row in the window is that row. A session with rows on several hostnames (in this
    page, or one came earlier) is read from its events, once: the rows cannot give its visits (one visit can
    span hostnames). Malformed rows are counted and logged, never turned into analytics; a listed session
    whose events cannot be read is counted (``unread_sessions``, the task fails).
    """
    for page in pages:
        if page.restarted:
            state.restart(result)
        for invalid in page.invalid:
            log.warning("skipped a malformed session row (id %s): %s", invalid.session_id or "unknown", invalid.error)
        by_session: dict[str, list[UmamiSession]] = defaultdict(list)
        seen_before: set[str] = set()
        for listed in page.rows:
            if listed.another_row_before and listed.session.id not in by_session:  # came in an earlier page
                seen_before.add(listed.session.id)
            by_session[listed.session.id].append(listed.session)
        out = PageAnalytics([], set())
        for session_id, rows in by_session.items():
            result.sessions += session_id not in seen_before
            if len(rows) == 1 and session_id not in seen_before:
                out.analytics.append(analytics_of(rows[0], rows[0]))
            elif session_id not in state.merged:  # not yet read from its events (a third hostname would be)
                state.merged.add(session_id)
                result.merged_sessions += 1
                figures = activity(session_id)
                if figures is None:
                    result.unread_sessions += 1
                    log.error("session %s is listed but has no events in the window; not written", session_id)
                    continue
                out.analytics.append(analytics_of(rows[0], figures))
                if session_id in seen_before:
                    out.refined.add(session_id)
        yield out


@dataclass(frozen=True)
class Contest:
    """Which task of a run writes a user active on several of its websites (or sub-windows): the one that
    holds the user's latest session, so that every user is written once, whatever order the tasks run in,
    and a dry run counts what the real run does.

    :param websites: the run's websites.
    :param window: this task's window.
    :param spans: the first and last event, in the run's interval, of each of some sessions (Umami's
        database answers it in one query per page).
    :param whole: the analytics of a session over the run's whole interval (read from its events), for a
        session that was active in an earlier sub-window too.
    """

    websites: tuple[str, ...]
    window: DataInterval
    spans: Callable[[list[str]], dict[str, tuple[datetime, datetime]]]
    whole: Callable[[Analytics], Analytics | None]

    def rivals(self, user: User) -> set[str]:
        """The sessions ``user`` is known by on the run's websites (or on a website not recorded)."""
        entries = [entry for entry in user.get("umamiSessions") or [] if isinstance(entry, dict)]
        known = {entry.get("id") for entry in entries if entry.get("websiteId") in (*self.websites, None)}
        known.add(user.get("session_id"))
        return {session for session in known if isinstance(session, str)}

    def decide(self, chosen: dict[Any, tuple[Analytics, User]]) -> tuple[set[Any], dict[Any, Analytics]]:
        """The users of ``chosen`` that another task writes (another session's last event is later, or as
        late with a larger id; or the same session is active again in a later sub-window), and the winners
        whose session began in an earlier sub-window, with their figures over the run's whole interval."""
        rivals = {user_id: self.rivals(user) for user_id, (_, user) in chosen.items()}
        spans = self.spans(sorted(set().union(*rivals.values())))
        lost: set[Any] = set()
        widened: dict[Any, Analytics] = {}
        for user_id, (item, _) in chosen.items():
            if any(self._beats(session, spans.get(session), item) for session in rivals[user_id]):
                lost.add(user_id)
            elif item.id in spans and spans[item.id][0] < self.window.start:
                whole = self.whole(item)
                if whole is not None:
                    widened[user_id] = whole
        return lost, widened

    def _beats(self, session: str, span: tuple[datetime, datetime] | None, item: Analytics) -> bool:
        if span is None:
            return False
        if session == item.id:
            return span[1] >= self.window.end
        return (span[1], session) > (item.last_at, item.id)


def plan_analytics_changes(page: PageAnalytics, owners: dict[str, list[User]], state: JobState, *,
                           now: datetime, result: AnalyticsResult, contest: Contest) -> Iterator[Change]:
    """One guarded change per user whose analytics one of the page's improves, unless ``contest`` gives the
    user to another task of the run."""
    result.matched_sessions += sum(1 for item in page.analytics if owners.get(item.id) and item.id not in page.refined)
    chosen: dict[Any, tuple[Analytics, User]] = {}
    for item in page.analytics:
        for user in owners.get(item.id, ()):
            user_id = user["_id"]
            earlier = chosen[user_id][0].rank if user_id in chosen else state.given.get(user_id)
            if earlier is None or item.rank > earlier:
                chosen[user_id] = (item, user)
    lost, widened = contest.decide(chosen)
    state.left.update(lost)
    result.left_to_other_tasks = len(state.left)
    for user_id, (item, user) in chosen.items():
        if user_id in lost:
            continue
        final = widened.get(user_id, item)
        change = analytics_change(user, final, now=now)
        if change is not None:
            state.given[user_id] = final.rank
            yield change


def _owners(users: UsersCollection, session_ids: list[str],
            overlay: dict[str, list[User]] | None) -> dict[str, list[User]]:
    """Each session's users; in a dry run, as they would be after stage 1 (``overlay``)."""
    owners = users.users_by_session(session_ids)
    if overlay is None:
        return owners
    for session_id in session_ids:
        planned = {user["_id"]: user for user in overlay.get(session_id, ())}
        known = [user for user in owners.get(session_id, ()) if user["_id"] not in planned]
        if planned or known:
            owners[session_id] = [*planned.values(), *known]
    return owners


def sync_analytics_job(settings: SyncSettings, job: AnalyticsJob, *, interval: DataInterval | None = None,
                       now: datetime | None = None, hook: UmamiHook | None = None) -> AnalyticsResult:
    """Read one website's sessions for the job's window and enrich their users.

    ``interval`` is the run's interval (for a dry run, stage 1's would-be writes are planned on it). Any error
    ends the job early, after writing what it decided; it is recorded in the result (``error``), never raised,
    so the caller can hand the figures on before failing the task.
    """
    hook = hook or make_hook(settings)
    name = f"{job.website_name} ({job.website_id})" if job.website_name else job.website_id
    what = f"website {name}, {job.interval}"
    result = AnalyticsResult(website_id=job.website_id, website_name=job.website_name, window_start=job.window_start,
                             window_end=job.window_end, dry_run=settings.dry_run)
    window = ApiWindow.of(job.interval)
    listing = SessionListing(lambda page, size: hook.session_page(job.website_id, window, page, size),
                             page_size=settings.page_size, what=what)
    totals = WriteTotals()
    websites = job.run_websites or (job.website_id,)
    database = UmamiDatabase(UmamiDatabaseHook(postgres_conn_id=settings.umami_db_conn_id), websites=websites)
    run_interval = analytics_interval(interval or job.interval, days_back=settings.analytics_days_back)

    def activity(session_id: str, part: ApiWindow = window) -> ActivityFigures | None:
        return read_activity(lambda span: hook.session_activity(job.website_id, session_id, span), part,
                             what=f"session {session_id} of {what}")

    def whole(item: Analytics) -> Analytics | None:
        figures = activity(item.id, ApiWindow.of(run_interval))
        return replace(item, first_at=figures.first_at, last_at=figures.last_at, visits=figures.visits,
                       views=figures.views) if figures else None

    contested = len(websites) > 1 or job.parts > 1  # with one website and one window nobody competes

    def spans(sessions: list[str]) -> dict[str, tuple[datetime, datetime]]:
        return database.event_spans(sessions, run_interval) if contested else {}

    try:
        users = open_users(settings)
        overlay = would_be_owners(settings, interval or job.interval, job.website_id, users) \
            if settings.dry_run else None
        state, contest = JobState(), Contest(websites, job.interval, spans, whole)
        changes = (change for page in session_analytics(listing, activity, result, state)
                   for change in plan_analytics_changes(page, _owners(users, [a.id for a in page.analytics], overlay),
                                                        state, now=now or datetime.now(UTC), result=result,
                                                        contest=contest))
        users.write(changes, batch_size=settings.batch_size, totals=totals, dry_run=settings.dry_run)
        result.error = _incomplete(listing.report, result, hook.stats.list_pages, what, dry_run=settings.dry_run)
    except UmamiCredentialsError as exc:
        result.error, result.retryable = str(exc), False
    except Exception as exc:  # recorded, and the task fails with it: nothing is lost by catching broadly
        log.exception("analytics sync %s failed", job.label)
        result.stopped_by(exc)
    finally:
        database.close()
    result.record(totals)
    report, stats = listing.report, hook.stats
    result.list_rows, result.rows_read, result.missing_rows = report.count, report.rows, report.missing
    result.repeated_rows, result.invalid_rows, result.restarts = report.repeated, report.invalid, report.restarts
    result.list_pages, result.repair_pages = stats.list_pages, report.repair_pages
    result.session_reads, result.requests, result.retries, result.logins = (
        stats.activity_calls, stats.requests, stats.retries, stats.logins)
    log.info("analytics sync %s: %s%s", job.label, result.summary(), f" error={result.error}" if result.error else "")
    return result


def _incomplete(report: ListingReport, result: AnalyticsResult, list_pages: int, what: str, *,
                dry_run: bool) -> str | None:
    """Why the job cannot say it read everything, if it cannot."""
    done = "nothing was written (dry run)" if dry_run else "the rest was written"
    if report.missing:
        return (f"{report.missing} of {report.count} rows of Umami's session list could not be read for {what} "
                f"after {list_pages} list pages ({report.repair_pages} to repair); {done}")
    if result.unread_sessions:
        return f"{result.unread_sessions} listed sessions of {what} had no events to read; {done}"
    return None

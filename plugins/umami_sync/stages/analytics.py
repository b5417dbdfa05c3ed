"""Stage 2, analytics sync: each website's sessions from Umami's API become ``umamiAnalytics`` on users.

:func:`plan_analytics_jobs` decides the mapped tasks (website x sub-window). :func:`sync_analytics_job`
runs one: it pages through the website's sessions, finds the users who own them (by ``session_id`` or a
known session id), and sends guarded updates. The pure part, :func:`plan_analytics_updates`, turns one
page and its owners into updates.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.mongo.hooks.mongo import MongoHook
from pydantic import BaseModel, ConfigDict
from pymongo.errors import PyMongoError

from umami_sync.results import AnalyticsResult, WriteTotals
from umami_sync.umami.api import UmamiError, UmamiHook
from umami_sync.users.store import UsersCollection
from umami_sync.users.updates import analytics_update
from umami_sync.windows import ApiWindow, DataInterval, analytics_interval

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from umami_sync.settings import SyncSettings
    from umami_sync.umami.api import SessionPage
    from umami_sync.umami.models import UmamiSession
    from umami_sync.users.updates import UserUpdate

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

    @property
    def label(self) -> str:
        """What the Airflow UI shows for this mapped task."""
        name = self.website_name or self.website_id
        return name if self.parts == 1 else f"{name} ({self.part}/{self.parts})"

    @property
    def interval(self) -> DataInterval:
        """The half-open interval this job reads."""
        return DataInterval(self.window_start, self.window_end)


def make_hook(settings: SyncSettings) -> UmamiHook:
    """The Umami API hook configured by ``settings``."""
    return UmamiHook(
        settings.umami_api_conn_id,
        timeout=settings.http_timeout_seconds,
        max_retries=settings.http_max_retries,
        rate_limit_calls=settings.rate_limit_calls,
        rate_limit_period=settings.rate_limit_period_seconds,
    )


def plan_analytics_jobs(settings: SyncSettings, interval: DataInterval,
                        websites: Iterable[tuple[str, str | None]] | None = None) -> list[AnalyticsJob]:
    """The jobs of one run: every website (configured, or discovered through the API) x sub-window."""
    if websites is None:
        if settings.website_ids:
            websites = [(website_id, None) for website_id in settings.website_ids]
        else:
            websites = [(site.id, site.name) for site in
                        make_hook(settings).list_websites(include_teams=settings.include_team_websites)]
    parts = analytics_interval(interval, days_back=settings.analytics_days_back).split(settings.sub_windows)
    return [
        AnalyticsJob(website_id=website_id, website_name=name, window_start=part.start, window_end=part.end,
                     part=number, parts=len(parts))
        for website_id, name in websites
        for number, part in enumerate(parts, start=1)
    ]


def plan_analytics_updates(sessions: Iterable[UmamiSession], owners: dict[str, list[Any]], *,
                           now: datetime) -> Iterator[UserUpdate]:
    """One update per user: the user's newest session among ``sessions`` (by ``lastAt``)."""
    newest: dict[Any, UmamiSession] = {}
    for session in sessions:
        for user_id in owners.get(session.id, ()):
            if user_id not in newest or session.last_at > newest[user_id].last_at:
                newest[user_id] = session
    for user_id, session in newest.items():
        yield analytics_update(user_id, session, now=now)


def _page_updates(pages: Iterable[SessionPage], users: UsersCollection, result: AnalyticsResult,
                  now: datetime) -> Iterator[UserUpdate]:
    for page in pages:
        result.sessions += len(page.rows)
        result.invalid += len(page.invalid)
        for row in page.invalid:
            log.warning("skipped a malformed session row (id %s): %s", row.session_id or "unknown", row.error)
        owners = users.users_by_session([session.id for session in page.rows])
        result.matched += len(owners)
        yield from plan_analytics_updates(page.rows, owners, now=now)


def sync_analytics_job(settings: SyncSettings, job: AnalyticsJob, *, now: datetime | None = None,
                       hook: UmamiHook | None = None) -> AnalyticsResult:
    """Read one website's sessions for the job's window and enrich their users.

    Errors of the API or of MongoDB end the job early; they are recorded in the result (``error``),
    never raised, so the caller can hand the figures on before failing the task.
    """
    hook = hook or make_hook(settings)
    window = ApiWindow.of(job.interval)
    result = AnalyticsResult(website_id=job.website_id, website_name=job.website_name, window_start=job.window_start,
                             window_end=job.window_end, dry_run=settings.dry_run)
    totals = WriteTotals()
    try:
        users = UsersCollection(
            MongoHook(mongo_conn_id=settings.mongo_conn_id).get_collection(settings.users_collection),
            match_field=settings.user_match_field,
        )
        pages = hook.iter_session_pages(job.website_id, window.start_ms, window.end_ms, settings.page_size)
        updates = _page_updates(pages, users, result, now or datetime.now(UTC))
        if settings.dry_run:
            totals.operations = sum(1 for _ in updates)
        else:
            users.write(updates, batch_size=settings.batch_size, totals=totals)
    except (UmamiError, PyMongoError, OSError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:500]
    stats = hook.stats
    result.pages, result.requests, result.retries = stats.pages, stats.requests, stats.retries
    result.logins, result.restarts, result.duplicates = stats.logins, stats.restarts, stats.duplicates
    result.updates, result.modified = totals.operations, totals.modified
    result.failed, result.bulk_writes = totals.failed, totals.bulk_writes
    result.errors = totals.errors
    log.info(
        "analytics sync %s %s..%s%s: sessions=%d pages=%d requests=%d retries=%d invalid=%d duplicates=%d "
        "matched=%d updates=%d modified=%d failed=%d%s",
        job.label, job.window_start.isoformat(), job.window_end.isoformat(), " (dry run)" if settings.dry_run else "",
        result.sessions, result.pages, result.requests, result.retries, result.invalid, result.duplicates,
        result.matched, result.updates, result.modified, result.failed,
        f" error={result.error}" if result.error else "",
    )
    return result

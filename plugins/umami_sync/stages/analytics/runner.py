"""The runner of one stage-2 task: read a website's session list for the task's window, turn it into analytics
(:mod:`.figures`), find the sessions' users (:mod:`umami_sync.owners`), decide the changes (:mod:`.contest`,
page by page in :mod:`.changes`) and write them; then build the task's result once from what each part counted.

A window whose list could not be read completely fails the task, after writing what was read. A window whose
sessions Umami's database does not hold fails before anything is written (:func:`held_by_database`).
"""

from __future__ import annotations

import logging
from contextlib import closing
from typing import TYPE_CHECKING

from umami_sync.collector import collector_spared
from umami_sync.identities import IdentityRule
from umami_sync.owners import dry_run_overlay, session_owners
from umami_sync.results import AnalyticsResult, WriteTotals, stop_reason
from umami_sync.stages.analytics.changes import JobProgress, analytics_changes
from umami_sync.stages.analytics.contest import Contest
from umami_sync.stages.analytics.figures import kept_elsewhere
from umami_sync.stages.analytics.reads import DatabaseSessions, DatabaseSpans, EventSpans, SessionEvents
from umami_sync.umami.errors import UmamiConfigError, UmamiCredentialsError
from umami_sync.umami.listing import SessionListing
from umami_sync.umami.models import CappedListError
from umami_sync.umami.read_ahead import ReadAhead
from umami_sync.windows import ApiWindow

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from datetime import datetime

    from umami_sync.owners import IdentitySource
    from umami_sync.settings import SyncSettings
    from umami_sync.stages.analytics.jobs import AnalyticsJob
    from umami_sync.umami.api import UmamiHook
    from umami_sync.umami.db import UmamiDatabase
    from umami_sync.umami.listing import ListedPage, ListingReport
    from umami_sync.users.store import UsersCollection
    from umami_sync.windows import DataInterval

log = logging.getLogger(__name__)


class KeptElsewhereError(Exception):
    """Umami's database holds none of the sessions the API lists for the window: nothing may be written."""


def held_by_database(pages: Iterable[ListedPage], listing: SessionListing, database: UmamiDatabase,
                     job: AnalyticsJob, what: str) -> Iterator[ListedPage]:
    """``pages``, once Umami's database is known to hold the window's sessions: asked when the first page with rows
    comes, before any of its changes is decided, so before the task's first write. The contest and the first and
    last events of a session come from that database: without its sessions no write could be checked."""
    checked = False
    for page in pages:
        if page.rows and not checked:
            if not database.has_sessions(job.website_id, job.interval):
                raise KeptElsewhereError(kept_elsewhere(listing.report.count, database.hook.postgres_conn_id, what))
            checked = True
        yield page


@collector_spared()
def sync_analytics_job(settings: SyncSettings, job: AnalyticsJob, *, interval: DataInterval, api: UmamiHook,
                       database: UmamiDatabase | None, identities: IdentitySource, users: UsersCollection,
                       now: datetime) -> AnalyticsResult:
    """Read one website's sessions for the job's window and enrich their users.

    ``interval`` is the run's interval (the contest reads rivals over its analytics interval; a dry run plans
    stage 1's writes on it, from ``identities``). Without ``database`` (a run that reads Umami's API only) the
    contest reads spans from the sessions' events, and the check that the database holds the listed sessions is
    skipped. Any error ends the job early, after writing what it decided; it is recorded in the result
    (``error``), never raised, so the caller can hand the figures on before failing the task.
    """
    what = f"website {job.named}, {job.interval}"
    window = ApiWindow.of(job.interval)
    listing = SessionListing(lambda page, size: api.session_page(job.website_id, window, page, size),
                             page_size=settings.page_size, what=what, window=window)
    run_interval = settings.analytics_interval(interval)
    events: DatabaseSessions | SessionEvents
    if database is not None:
        events = DatabaseSessions(database, job, run_interval)
        contest = Contest(job.websites, job.interval, DatabaseSpans(database, run_interval, job.contested), events,
                          events)
    else:  # Umami's API only: the activity route, kept on each session and checked
        events = SessionEvents(api, job, run_interval, what=what)
        contest = Contest(job.websites, job.interval, EventSpans(events, contested=job.parts > 1), events)
    progress, totals = JobProgress(), WriteTotals()
    error, retryable = None, True
    try:
        planned = dry_run_overlay(
            identities.identity_rows(settings.session_window(interval), settings.identity_data_key),
            IdentityRule.from_pattern(settings.identity_pattern), users, job.website_id,
            keep=settings.known_session_ids) if settings.dry_run else None
        pages: Iterable[ListedPage] = ReadAhead(listing)
        if database is not None:
            pages = held_by_database(pages, listing, database, job, what)
        else:
            log.info("%s: no database is read (Umami's API only): the check that it holds the listed sessions is "
                     "skipped", what)
        with closing(analytics_changes(pages, events, lambda ids: session_owners(users, ids, planned),
                                       contest, progress, now=now)) as changes:  # closed: no page is left fetching
            users.write(changes, batch_size=settings.batch_size, totals=totals, dry_run=settings.dry_run)
        error = _incomplete(listing.report, progress.unread_sessions, api.stats.list_pages, what,
                            dry_run=settings.dry_run) or progress.invalid.failure(
            listing.report.rows, listing.report.invalid, max_share=settings.max_invalid_share, what=what)
    except (UmamiCredentialsError, UmamiConfigError, CappedListError, KeptElsewhereError) as exc:  # no retry helps
        error, retryable = str(exc), False
    except Exception as exc:  # recorded, and the task fails with it: nothing is lost by catching broadly
        log.exception("analytics sync %s failed", job.label)
        error = stop_reason(exc)
    report, stats = listing.report, api.stats
    result = AnalyticsResult(
        website_id=job.website_id, website_name=job.website_name, window_start=job.window_start,
        window_end=job.window_end, dry_run=settings.dry_run, mode="api" if database is None else "database",
        list_rows=report.count, rows_read=report.rows,
        missing_rows=report.missing, repeated_rows=report.repeated, invalid_rows=report.invalid,
        restarts=report.restarts, repair_pages=report.repair_pages, list_pages=stats.list_pages,
        session_reads=stats.activity_calls, requests=stats.requests, retries=stats.retries, logins=stats.logins,
        events_left_out=events.left_out, waited_seconds=stats.waited_seconds,
        rate_limited_seconds=stats.rate_limited_seconds, invalid_field=progress.invalid.most_failed, error=error,
        retryable=retryable, **progress.figures(),
        **totals.result_fields())
    log.info("analytics sync %s: %s%s", job.label, result.summary(), f" error={result.error}" if result.error else "")
    return result


def _incomplete(report: ListingReport, unread_sessions: int, list_pages: int, what: str, *,
                dry_run: bool) -> str | None:
    """Why the job cannot say it read everything, if it cannot."""
    done = "nothing was written (dry run)" if dry_run else "the rest was written"
    if report.missing:
        return (f"{report.missing} of {report.count} rows of Umami's session list could not be read for {what} "
                f"after {list_pages} list pages ({report.repair_pages} to repair); {done}")
    if unread_sessions:
        return f"{unread_sessions} listed sessions of {what} had no events to read; {done}"
    return None

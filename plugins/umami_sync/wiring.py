"""The one place that builds hooks and collections from the settings, and runs each stage with them.

Every stage takes the parts it reads and writes through (so its logic can be run with other parts); the
functions below are what a task (or a test, or the benchmark) calls: they build the parts one task needs,
run the stage, and close what they opened. A part that cannot be built (a missing connection, say) is
recorded in the stage's result like any other error.

Each part and stage is imported where it is built or run, not with this module: a task imports only what its own
stage needs (stage 1 no HTTP client unless it reads identities through the API, the status task no PostgreSQL
driver), and every mapped task pays its imports.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from umami_sync.results import AnalyticsResult, SessionSyncResult, stop_reason

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Connection
    from pymongo.collection import Collection

    from umami_sync.connections import UsersMongoHook
    from umami_sync.owners import IdentitySource
    from umami_sync.results import Drop, UmamiReads
    from umami_sync.settings import SyncSettings
    from umami_sync.stages.analytics.jobs import AnalyticsJob
    from umami_sync.stages.status import RunReport
    from umami_sync.umami.api import UmamiHook
    from umami_sync.umami.db import UmamiDatabase
    from umami_sync.umami.identities_api import ApiIdentities
    from umami_sync.users.store import UsersCollection
    from umami_sync.windows import DataInterval


def umami_reads(settings: SyncSettings) -> UmamiReads:
    """How the run reads Umami: the setting ``identities_from``, where ``auto`` reads its API only when no connection
    ``umami_db_conn_id`` is configured. A look-up that fails for any other reason (a secrets backend that cannot be
    read) raises: it never chooses the API."""
    return _umami_reads(settings)[0]


def _umami_reads(settings: SyncSettings) -> tuple[UmamiReads, Connection | None]:
    """:func:`umami_reads`, and the connection of Umami's database when ``auto`` looked it up (so that the hook does
    not look it up again: with a secrets backend each look-up is a request)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    if settings.identities_from != "auto":
        return settings.identities_from, None
    try:
        connection = BaseHook.get_connection(settings.umami_db_conn_id)
    except AirflowNotFoundException:
        return "api", None
    return "database", connection


class Wiring:
    """The hooks and collections of one task, each built once from ``settings`` (one MongoDB client)."""

    def __init__(self, settings: SyncSettings) -> None:
        self.settings = settings
        self._databases: list[UmamiDatabase] = []

    @cached_property
    def _reads(self) -> tuple[UmamiReads, Connection | None]:
        return _umami_reads(self.settings)

    @property
    def mode(self) -> UmamiReads:
        """How this task reads Umami (:func:`umami_reads`), decided once."""
        return self._reads[0]

    def decided_mode(self) -> dict[str, UmamiReads]:
        """``mode`` for a result when it was decided before the task failed; empty before (the result's default)."""
        reads = self.__dict__.get("_reads")  # where the cached property keeps it once decided
        return {"mode": reads[0]} if reads else {}

    @cached_property
    def umami_api(self) -> UmamiHook:
        """The Umami API hook (connection ``umami_api_conn_id``), with the timeouts, the retries and this task's share
        of the DAG's rate limit (:mod:`umami_sync.api_tasks`)."""
        from umami_sync.api_tasks import api_pool, task_share
        from umami_sync.umami.api import UmamiHook

        settings = self.settings
        return UmamiHook(settings.umami_api_conn_id, timeout=settings.http_timeout_seconds,
                         max_retries=settings.http_max_retries, max_retry_wait=settings.max_retry_wait_seconds,
                         rate_limit_calls=task_share(settings.rate_limit_calls, pooled=api_pool() is not None),
                         rate_limit_period=settings.rate_limit_period_seconds)

    def umami_database(self, websites: Sequence[str] = ()) -> UmamiDatabase:
        """Umami's PostgreSQL (connection ``umami_db_conn_id``), read for ``websites`` (empty: every one)."""
        from umami_sync.connections import UmamiDatabaseHook
        from umami_sync.umami.db import UmamiDatabase

        hook = UmamiDatabaseHook(postgres_conn_id=self.settings.umami_db_conn_id, connection=self._reads[1])
        database = UmamiDatabase(hook, websites=websites)
        self._databases.append(database)
        return database

    def api_identities(self, websites: Sequence[str] = ()) -> ApiIdentities:
        """Stage 1's identities of ``websites`` (empty: every one the connection's user sees) through Umami's API."""
        from umami_sync.umami.identities_api import ApiIdentities

        return ApiIdentities(self.umami_api, websites, page_size=self.settings.page_size,
                             include_teams=self.settings.include_team_websites)

    def identities(self, websites: Sequence[str] = ()) -> IdentitySource:
        """Stage 1's identities of ``websites``: from Umami's database, or through its API (:attr:`mode`)."""
        return self.umami_database(websites) if self.mode == "database" else self.api_identities(websites)

    @cached_property
    def mongo(self) -> UsersMongoHook:
        """The application's MongoDB (connection ``mongo_conn_id``); its client is built once."""
        from umami_sync.connections import UsersMongoHook

        return UsersMongoHook(mongo_conn_id=self.settings.mongo_conn_id)

    def collection(self, name: str) -> Collection[dict[str, Any]]:
        """A collection of the connection's database."""
        collection: Collection[dict[str, Any]] = self.mongo.get_collection(name)
        return collection

    @cached_property
    def users(self) -> UsersCollection:
        """The users collection (``mongo_collation``: on, off, or probed on first use)."""
        from umami_sync.users.store import UsersCollection

        collation = {"on": True, "off": False}.get(self.settings.mongo_collation)
        return UsersCollection(self.collection(self.settings.users_collection),
                               match_field=self.settings.user_match_field, collation=collation)

    def close(self) -> None:
        """Close the database connections kept open between reads."""
        for database in self._databases:
            database.close()


def sync_sessions(settings: SyncSettings, interval: DataInterval, *, now: datetime | None = None) -> SessionSyncResult:
    """Stage 1 for a run's ``interval`` (its session window read from Umami's database, or through its API)."""
    from umami_sync.stages import sessions

    window = settings.session_window(interval)
    wiring = Wiring(settings)
    try:
        identities, users = wiring.identities(settings.website_ids), wiring.users
    except Exception as exc:  # recorded like any failure of the stage
        return SessionSyncResult(window_start=window.start, window_end=window.end, dry_run=settings.dry_run,
                                 **wiring.decided_mode(), error=stop_reason(exc))
    try:
        return sessions.sync_sessions(settings, window, source=identities, mode=wiring.mode, users=users,
                                      now=now or datetime.now(UTC))
    finally:
        wiring.close()


def umami_api(settings: SyncSettings) -> UmamiHook:
    """The Umami API hook of the settings, for a caller that reads its counters afterwards (planning's)."""
    return Wiring(settings).umami_api


def plan_analytics_jobs(settings: SyncSettings, interval: DataInterval, *,
                        api: UmamiHook | None = None) -> list[AnalyticsJob]:
    """Stage 2's mapped jobs for a run's ``interval`` (asked through ``api``, whose counters then hold the
    requests planning made; a hook of the settings' own when it is not given)."""
    from umami_sync.stages.analytics import jobs

    return jobs.plan_jobs(settings, interval, api or umami_api(settings))


def sync_analytics_job(settings: SyncSettings, job: AnalyticsJob, *, interval: DataInterval | None = None,
                       now: datetime | None = None) -> AnalyticsResult:
    """One stage-2 task; ``interval`` is the run's (the job's own when it is not given)."""
    from umami_sync.stages.analytics import runner

    wiring = Wiring(settings)
    try:
        api, users = wiring.umami_api, wiring.users
        identities = wiring.identities(job.websites)
        database = cast("UmamiDatabase", identities) if wiring.mode == "database" else None
    except Exception as exc:  # recorded like any failure of the task
        return AnalyticsResult(website_id=job.website_id, website_name=job.website_name,
                               window_start=job.window_start, window_end=job.window_end, dry_run=settings.dry_run,
                               **wiring.decided_mode(), error=stop_reason(exc))
    try:
        return runner.sync_analytics_job(settings, job, interval=interval or job.interval, api=api,
                                         database=database, identities=identities, users=users,
                                         now=now or datetime.now(UTC))
    finally:
        wiring.close()


def write_status(settings: SyncSettings, report: RunReport, *, now: datetime | None = None) -> list[Drop]:
    """Stage 3: record ``report`` in the status collection; the drops found against the websites' last days."""
    from umami_sync.stages import status

    return status.write_status(Wiring(settings).collection(settings.status_collection), report,
                               now=now or datetime.now(UTC), drop_threshold=settings.drop_threshold)

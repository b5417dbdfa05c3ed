"""Stage 1, session sync: identities found in Umami's PostgreSQL become session ids on users.

The core (:func:`group_identities`, :func:`plan_identity_updates`) is pure: rows and owners in,
updates out, figures counted on the way. :func:`sync_sessions` is the thin runner that owns the I/O:
it streams rows, looks up the owners of each chunk of identities, and writes in batches.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook

from umami_sync.identities import IdentityRule
from umami_sync.results import SessionSyncResult, WriteTotals
from umami_sync.umami.db import UmamiDatabase
from umami_sync.users.store import LOOKUP_CHUNK, UsersCollection, batched
from umami_sync.users.updates import KnownSession, UserUpdate, identity_update
from umami_sync.windows import session_window

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from umami_sync.settings import SyncSettings
    from umami_sync.umami.db import IdentityRow
    from umami_sync.windows import DataInterval

log = logging.getLogger(__name__)


def group_identities(rows: Iterable[IdentityRow], rule: IdentityRule, *, keep: int,
                     result: SessionSyncResult) -> Iterator[tuple[str, list[KnownSession]]]:
    """Group consecutive rows of one identity into its ``keep`` most recent distinct sessions.

    Rows must arrive grouped by identity, newest first (the query orders them so). Rows without a
    usable identity are counted as invalid and dropped.
    """
    identity: str | None = None
    sessions: list[KnownSession] = []
    for row in rows:
        result.read += 1
        key = rule.normalise(row.identity)
        if key is None:
            result.invalid += 1
            continue
        if key != identity:
            if identity is not None:
                yield identity, sessions
            identity, sessions = key, []
        if len(sessions) < keep and all(known.id != row.session_id for known in sessions):
            sessions.append(KnownSession(row.session_id, row.website_id, row.seen_at))
    if identity is not None:
        yield identity, sessions


def plan_identity_updates(groups: Iterable[tuple[str, list[KnownSession]]], owners: Mapping[str, list[Any]], *,
                          keep: int, now: datetime, result: SessionSyncResult) -> Iterator[UserUpdate]:
    """One guarded update per user that owns an identity of ``groups``; identities nobody owns are counted."""
    for identity, sessions in groups:
        result.identified += 1
        user_ids = owners.get(identity, [])
        if not user_ids:
            result.unmatched += 1
            continue
        result.matched += 1
        for user_id in user_ids:
            yield identity_update(user_id, sessions, keep=keep, now=now)


def _updates(rows: Iterable[IdentityRow], users: UsersCollection, settings: SyncSettings, *, now: datetime,
             result: SessionSyncResult) -> Iterator[UserUpdate]:
    rule = IdentityRule.from_pattern(settings.identity_pattern)
    groups = group_identities(rows, rule, keep=settings.known_session_ids, result=result)
    for chunk in batched(groups, LOOKUP_CHUNK):
        owners = users.users_by_identity([identity for identity, _ in chunk])
        yield from plan_identity_updates(chunk, owners, keep=settings.known_session_ids, now=now, result=result)


def sync_sessions(settings: SyncSettings, interval: DataInterval, *, now: datetime | None = None) -> SessionSyncResult:
    """Read the identities of ``interval`` from Umami's database and record them on the matching users."""
    window = session_window(
        interval,
        overlap=timedelta(minutes=settings.session_overlap_minutes),
        at_least=timedelta(hours=settings.session_window_hours) if settings.session_window_hours else None,
    )
    result = SessionSyncResult(window_start=window.start, window_end=window.end, dry_run=settings.dry_run)
    database = UmamiDatabase(PostgresHook(postgres_conn_id=settings.umami_db_conn_id))
    users = UsersCollection(
        MongoHook(mongo_conn_id=settings.mongo_conn_id).get_collection(settings.users_collection),
        match_field=settings.user_match_field,
    )
    if settings.ensure_indexes and not settings.dry_run:
        created = users.ensure_indexes()
        if created:
            log.info("created indexes %s", ", ".join(created))

    result.anonymous = database.count_anonymous(window, settings.identity_data_key)
    updates = _updates(database.identity_rows(window, settings.identity_data_key), users, settings,
                       now=now or datetime.now(UTC), result=result)
    totals = WriteTotals()
    if settings.dry_run:
        totals.operations = sum(1 for _ in updates)
    else:
        users.write(updates, batch_size=settings.batch_size, totals=totals)
    result.updates, result.modified, result.failed = totals.operations, totals.modified, totals.failed
    result.bulk_writes, result.errors = totals.bulk_writes, totals.errors
    log.info(
        "session sync %s..%s%s: read=%d identified=%d anonymous=%d invalid=%d matched=%d unmatched=%d "
        "updates=%d modified=%d failed=%d bulk_writes=%d",
        window.start.isoformat(), window.end.isoformat(), " (dry run)" if settings.dry_run else "",
        result.read, result.identified, result.anonymous, result.invalid, result.matched, result.unmatched,
        result.updates, result.modified, result.failed, result.bulk_writes,
    )
    return result

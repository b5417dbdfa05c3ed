"""Stage 1, session sync: identities found in Umami's PostgreSQL become session ids on users.

The core (:func:`group_identities`, :func:`plan_session_changes`) is pure: rows and owners in, changes
out, figures counted on the way. :func:`sync_sessions` is the thin runner that owns the I/O: it streams
rows, looks up the owners of each chunk of identities (reading their fields), and writes in batches.
:func:`would_be_owners` replays the same planning without writing, for a dry run of stage 2.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from umami_sync.connections import UmamiDatabaseHook, open_users
from umami_sync.identities import IdentityRule
from umami_sync.results import SessionSyncResult, WriteTotals
from umami_sync.umami.db import UmamiDatabase
from umami_sync.users.store import LOOKUP_CHUNK, batched
from umami_sync.users.updates import KnownSession, merge_sessions, session_change
from umami_sync.windows import session_window

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from umami_sync.settings import SyncSettings
    from umami_sync.umami.db import IdentityRow
    from umami_sync.users.store import User, UsersCollection
    from umami_sync.users.updates import Change
    from umami_sync.windows import DataInterval

log = logging.getLogger(__name__)

Group = tuple[str, list[KnownSession]]


def group_identities(rows: Iterable[IdentityRow], rule: IdentityRule, *, keep: int,
                     result: SessionSyncResult) -> Iterator[Group]:
    """Group consecutive rows of one identity into its ``keep`` most recent distinct sessions.

    Rows must arrive grouped by identity, newest first (the query orders them so). Rows without a
    usable identity are counted as invalid and dropped.
    """
    identity: str | None = None
    sessions: list[KnownSession] = []
    for row in rows:
        result.rows_read += 1
        key = rule.normalise(row.identity)
        if key is None:
            result.invalid_rows += 1
            continue
        if key != identity:
            if identity is not None:
                yield identity, sessions
            identity, sessions = key, []
        if len(sessions) < keep and all(known.id != row.session_id for known in sessions):
            sessions.append(KnownSession(row.session_id, row.website_id, row.seen_at))
    if identity is not None:
        yield identity, sessions


def plan_session_changes(groups: Iterable[Group], owners: Mapping[str, list[User]], *, keep: int,
                         now: datetime, result: SessionSyncResult) -> Iterator[Change]:
    """One guarded change per user whose sessions ``groups`` would change; identities nobody owns are counted.

    A user reached by several groups (one identity whose rows the database sorted apart) gets one change.
    """
    users: dict[Any, tuple[User, list[KnownSession]]] = {}
    for identity, sessions in groups:
        result.identities += 1
        found = owners.get(identity, [])
        if not found:
            result.unmatched_identities += 1
            continue
        result.matched_identities += 1
        for user in found:
            users.setdefault(user["_id"], (user, []))[1].extend(sessions)
    for user, sessions in users.values():
        change = session_change(user, sessions, keep=keep, now=now)
        if change is not None:
            yield change


def _owned_groups(rows: Iterable[IdentityRow], users: UsersCollection, settings: SyncSettings,
                  result: SessionSyncResult) -> Iterator[tuple[list[Group], dict[str, list[User]]]]:
    """Chunks of identity groups with their owners, as the look-ups find them."""
    rule = IdentityRule.from_pattern(settings.identity_pattern)
    groups = group_identities(rows, rule, keep=settings.known_session_ids, result=result)
    for chunk in batched(groups, LOOKUP_CHUNK):
        yield chunk, users.users_by_identity([identity for identity, _ in chunk])


def _database(settings: SyncSettings, websites: Iterable[str] = ()) -> UmamiDatabase:
    return UmamiDatabase(UmamiDatabaseHook(postgres_conn_id=settings.umami_db_conn_id), websites=list(websites))


def _window(settings: SyncSettings, interval: DataInterval) -> DataInterval:
    return session_window(
        interval,
        overlap=timedelta(minutes=settings.session_overlap_minutes),
        at_least=timedelta(hours=settings.session_window_hours) if settings.session_window_hours else None,
    )


def sync_sessions(settings: SyncSettings, interval: DataInterval, *, now: datetime | None = None) -> SessionSyncResult:
    """Read the identities of ``interval`` from Umami's database and record them on the matching users.

    Any error ends the stage early, after writing what it decided; it is recorded in the result (``error``),
    never raised, so the caller can hand the figures on before failing the task.
    """
    window = _window(settings, interval)
    result = SessionSyncResult(window_start=window.start, window_end=window.end, dry_run=settings.dry_run)
    totals = WriteTotals()
    try:
        database = _database(settings, settings.website_ids)
        users = open_users(settings)
        if settings.ensure_indexes and not settings.dry_run:
            created = users.ensure_indexes()
            if created:
                log.info("created indexes %s", ", ".join(created))
        result.anonymous_sessions = database.count_anonymous(window, settings.identity_data_key)
        keep, moment = settings.known_session_ids, now or datetime.now(UTC)
        changes = (change
                   for chunk, owners in _owned_groups(database.identity_rows(window, settings.identity_data_key),
                                                      users, settings, result)
                   for change in plan_session_changes(chunk, owners, keep=keep, now=moment, result=result))
        users.write(changes, batch_size=settings.batch_size, totals=totals, dry_run=settings.dry_run)
    except Exception as exc:  # recorded, and the task fails with it: nothing is lost by catching broadly
        log.exception("session sync %s failed", window)
        result.stopped_by(exc)
    result.record(totals)
    log.info("session sync %s: %s%s", window, result.summary(), f" error={result.error}" if result.error else "")
    return result


def would_be_owners(settings: SyncSettings, interval: DataInterval, website_id: str,
                    users: UsersCollection) -> dict[str, list[User]]:
    """The users each session of ``website_id`` would belong to once stage 1 has run on ``interval``,
    with the session fields stage 1 would give them (for a faithful dry run of stage 2; writes nothing)."""
    owners: dict[str, list[User]] = {}
    result = SessionSyncResult(window_start=interval.start, window_end=interval.end, dry_run=True)
    database = _database(settings, settings.website_ids)
    rows = database.identity_rows(_window(settings, interval), settings.identity_data_key)
    for chunk, found in _owned_groups(rows, users, settings, result):
        for identity, sessions in chunk:
            if not any(session.website_id == website_id for session in sessions):
                continue
            for user in found.get(identity, []):
                after: dict[str, Any] = {**user, **merge_sessions(user, sessions, keep=settings.known_session_ids)}
                for entry in after["umamiSessions"]:
                    owners.setdefault(entry["id"], []).append(after)
    return owners

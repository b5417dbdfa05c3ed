"""Stage 1, session sync: identities found in Umami (its PostgreSQL, or its API where there is no database to
read) become session ids on users.

The core (:func:`plan_session_changes`) is pure: identity groups and their owners in, changes and counts out; it is
the same whichever source the rows come from. :func:`sync_sessions` is the thin runner that owns the I/O: it
streams rows from its :class:`~umami_sync.owners.IdentitySource`, looks up the owners of each chunk of identities
(:mod:`umami_sync.owners`), writes in batches, and builds the result once at the end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from umami_sync.collector import collector_spared
from umami_sync.identities import IdentityRule
from umami_sync.owners import IdentityGroups, owned_groups
from umami_sync.results import REFUSED_SAMPLE, SessionSyncResult, WriteTotals, stop_reason
from umami_sync.users.updates import session_change

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from datetime import datetime

    from umami_sync.owners import IdentityGroup, IdentitySource, Owners
    from umami_sync.results import UmamiReads
    from umami_sync.settings import SyncSettings
    from umami_sync.users.store import User, UsersCollection
    from umami_sync.users.updates import Change, KnownSession
    from umami_sync.windows import DataInterval

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkPlan:
    """The changes one chunk of identity groups calls for, and what it found."""

    changes: list[Change]
    identities: int
    unmatched: list[str]
    """The identities of the chunk that no user (not deleted) owns."""


def plan_session_changes(groups: Iterable[IdentityGroup], owners: Owners, *, keep: int, now: datetime) -> ChunkPlan:
    """One guarded change per user whose sessions ``groups`` would change; identities nobody owns are counted.

    A user reached by several groups (one identity whose rows the database sorted apart) gets one change.
    """
    users: dict[Any, tuple[User, list[KnownSession]]] = {}
    identities, unmatched = 0, []
    for group in groups:
        identities += 1
        found = owners.get(group.identity, [])
        if not found:
            unmatched.append(group.identity)
        for user in found:
            users.setdefault(user["_id"], (user, []))[1].extend(group.sessions)
    changes = [change for user, sessions in users.values()
               if (change := session_change(user, sessions, keep=keep, now=now)) is not None]
    return ChunkPlan(changes, identities, unmatched)


@collector_spared()
def sync_sessions(settings: SyncSettings, window: DataInterval, *, source: IdentitySource, mode: UmamiReads,
                  users: UsersCollection, now: datetime) -> SessionSyncResult:
    """Read the identities of ``window`` from ``source`` (Umami's database, or its API: ``mode`` says which)
    and record them on the matching users.

    Any error ends the stage early, after writing what it decided; it is recorded in the result (``error``),
    never raised, so the caller can hand the figures on before failing the task.
    """
    totals = WriteTotals()
    groups = IdentityGroups(source.identity_rows(window, settings.identity_data_key),
                            IdentityRule.from_pattern(settings.identity_pattern), keep=settings.known_session_ids)
    identities = unmatched = 0
    sample: list[str] = []  # the first identities nobody owns (the result masks them)
    anonymous, error = 0, None

    def changes() -> Iterator[Change]:
        nonlocal identities, unmatched
        for chunk, owners in owned_groups(groups, users):
            plan = plan_session_changes(chunk, owners, keep=settings.known_session_ids, now=now)
            identities, unmatched = identities + plan.identities, unmatched + len(plan.unmatched)
            sample.extend(plan.unmatched[:REFUSED_SAMPLE - len(sample)])
            yield from plan.changes

    try:
        if settings.ensure_indexes and not settings.dry_run:
            created = users.ensure_indexes()
            if created:
                log.info("created indexes %s", ", ".join(created))
        anonymous = source.count_anonymous(window, settings.identity_data_key)
        users.write(changes(), batch_size=settings.batch_size, totals=totals, dry_run=settings.dry_run)
    except Exception as exc:  # recorded, and the task fails with it: nothing is lost by catching broadly
        log.exception("session sync %s failed", window)
        error = stop_reason(exc)
    result = SessionSyncResult(
        window_start=window.start, window_end=window.end, dry_run=settings.dry_run, mode=mode,
        rows_read=groups.rows_read,
        invalid_rows=groups.invalid_rows, identities=identities, matched_identities=identities - unmatched,
        unmatched_identities=unmatched, unmatched_sample=sample, anonymous_sessions=anonymous, error=error,
        **totals.result_fields())
    log.info("session sync %s (Umami's %s): %s%s", window, mode, result.summary(),
             f" error={result.error}" if result.error else "")
    return result

"""Who owns what: identities and sessions, and the users they belong to. Both stages find users through here.

Stage 1 groups the identity rows it streams (:class:`IdentityGroups`) and finds each identity's users
(:func:`owned_groups`). Stage 2 finds each session's users (:func:`session_owners`); in a dry run it also sees
the users stage 1 would have given the session by then (:func:`planned_owners`, the dry-run overlay), so that
a rehearsal counts what the real run writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from umami_sync.users.store import LOOKUP_CHUNK, batched
from umami_sync.users.updates import KnownSession, merge_sessions

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from umami_sync.identities import IdentityRule
    from umami_sync.umami.identity_row import IdentityRow
    from umami_sync.users.store import User, UsersCollection
    from umami_sync.windows import DataInterval

Owners = dict[str, list[Any]]
"""Users (documents with our fields) by identity or by session id."""


class IdentitySource(Protocol):
    """Where stage 1's identity rows come from: Umami's database (:class:`~umami_sync.umami.db.UmamiDatabase`) or its
    API (:class:`~umami_sync.umami.identities_api.ApiIdentities`). Both yield the rows grouped by folded identity,
    newest first, as :class:`IdentityGroups` needs them."""

    def identity_rows(self, window: DataInterval, data_key: str) -> Iterator[IdentityRow]:
        """The identity rows of ``window`` (``data_key``: the session-data key that carries an identity)."""

    def count_anonymous(self, window: DataInterval, data_key: str) -> int:
        """Sessions of ``window`` that carry no identity."""


@dataclass(frozen=True)
class IdentityGroup:
    """One identity and its most recent distinct sessions, newest first."""

    identity: str
    sessions: list[KnownSession]


class IdentityGroups:
    """Consecutive rows of one identity grouped into its ``keep`` most recent distinct sessions.

    Rows must arrive grouped by identity, newest first (the query orders them so). Rows without a usable
    identity are dropped; ``rows_read`` and ``invalid_rows`` count what the iteration consumed.
    """

    def __init__(self, rows: Iterable[IdentityRow], rule: IdentityRule, *, keep: int) -> None:
        self.rows = rows
        self.rule = rule
        self.keep = keep
        self.rows_read = 0
        self.invalid_rows = 0

    def __iter__(self) -> Iterator[IdentityGroup]:
        rule, keep = self.rule, self.keep
        group: IdentityGroup | None = None
        kept: set[str] = set()  # the group's sessions so far
        raw: object = object()  # the last identity as stored, and its key: each identity is folded once, not per row
        key: str | None = None
        for row in self.rows:
            self.rows_read += 1
            if row.identity != raw:
                raw, key = row.identity, rule.normalise(row.identity)
            if key is None:
                self.invalid_rows += 1
                continue
            if group is None or key != group.identity:
                if group is not None:
                    yield group
                group, kept = IdentityGroup(key, []), set()
            if len(kept) < keep and row.session_id not in kept:
                kept.add(row.session_id)
                group.sessions.append(KnownSession(row.session_id, row.website_id, row.seen_at))
        if group is not None:
            yield group


def owned_groups(groups: Iterable[IdentityGroup],
                 users: UsersCollection) -> Iterator[tuple[list[IdentityGroup], Owners]]:
    """Chunks of identity groups with each identity's users, one look-up per chunk."""
    for chunk in batched(groups, LOOKUP_CHUNK):
        yield chunk, users.users_by_identity([group.identity for group in chunk])


def planned_owners(chunks: Iterable[tuple[list[IdentityGroup], Owners]], website_id: str, *, keep: int) -> Owners:
    """The users each session of ``website_id`` will belong to once stage 1 has recorded ``chunks``, with the
    session fields stage 1 gives them (pure: the dry-run overlay of stage 2)."""
    owners: Owners = {}
    for chunk, found in chunks:
        for group in chunk:
            if not any(session.website_id == website_id for session in group.sessions):
                continue
            for user in found.get(group.identity, []):
                after: dict[str, Any] = {**user, **merge_sessions(user, group.sessions, keep=keep)}
                for entry in after["umamiSessions"]:
                    owners.setdefault(entry["id"], []).append(after)
    return owners


def dry_run_overlay(rows: Iterable[IdentityRow], rule: IdentityRule, users: UsersCollection, website_id: str, *,
                    keep: int) -> Owners:
    """What :func:`planned_owners` gives for stage 1's identity ``rows`` (a dry run of stage 2 reads them too)."""
    return planned_owners(owned_groups(IdentityGroups(rows, rule, keep=keep), users), website_id, keep=keep)


def session_owners(users: UsersCollection, session_ids: list[str],
                   planned: Mapping[str, list[User]] | None = None) -> Owners:
    """Each session's users; with ``planned`` (a dry run), as they will be after stage 1."""
    owners = users.users_by_session(session_ids)
    if planned is None:
        return owners
    for session_id in session_ids:
        overlay = {user["_id"]: user for user in planned.get(session_id, ())}
        known = [user for user in owners.get(session_id, ()) if user["_id"] not in overlay]
        if overlay or known:
            owners[session_id] = [*overlay.values(), *known]
    return owners

"""The users collection: the indexes the sync needs, owner look-ups, and unordered bulk writes.

Users are found first (by identity or by session id) with ``$in`` queries of at most
:data:`LOOKUP_CHUNK` values, then updated by ``_id``. A filter on ``_id`` is the cheapest update on any
server, and short ``$in`` lists keep every look-up on an index (a case-insensitive identity look-up uses
the collated index; a long ``$in`` or an ``$or`` makes some MongoDB-compatible servers scan).

Writing overlaps with reading: while one batch is on the wire, the caller builds the next one. A batch
that fails is recorded (error and counts) and the following batches still go out; the caller decides
what a failure means for its task.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING, Any

from pymongo import UpdateOne
from pymongo.collation import Collation
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError

from umami_sync.identities import fold
from umami_sync.users.updates import NOT_DELETED

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from pymongo.collection import Collection

    from umami_sync.results import WriteTotals
    from umami_sync.users.updates import UserUpdate

log = logging.getLogger(__name__)

INDEX_PREFIX = "umami_sync_"
LOOKUP_CHUNK = 100
"""Values per ``$in`` look-up."""
CASE_INSENSITIVE = Collation(locale="en", strength=2)
"""Collation of identity look-ups: values compare case-insensitively."""
SESSION_FIELDS = ("session_id", "umamiSessions.id")
"""Where a user keeps the session ids the analytics sync matches on."""
_INDEX_OPTIONS_CONFLICT = (85, 86)  # same keys exist under another name / with other options


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most ``size`` items."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class UsersCollection:
    """Guarded writes to the application's users; never inserts or deletes a user."""

    def __init__(self, collection: Collection[dict[str, Any]], *, match_field: str) -> None:
        self.collection = collection
        self.match_field = match_field

    def required_indexes(self) -> list[tuple[str, Collation | None]]:
        """(field, collation) of every index the sync's look-ups need to be fast."""
        return [(self.match_field, CASE_INSENSITIVE), *((name, None) for name in SESSION_FIELDS)]

    def ensure_indexes(self) -> list[str]:
        """Create the missing indexes of :meth:`required_indexes`; return the names created."""
        existing = list(self.collection.list_indexes())
        created = []
        for key, collation in self.required_indexes():
            if any(_covers(index, key, collation) for index in existing):
                continue
            name = f"{INDEX_PREFIX}{key.replace('.', '_')}"
            try:
                self.collection.create_index([(key, 1)], name=name, collation=collation)
            except OperationFailure as exc:
                if exc.code not in _INDEX_OPTIONS_CONFLICT:
                    raise
                log.info("index on %s already exists under another name", key)
                continue
            created.append(name)
        return created

    def users_by_identity(self, identities: list[str]) -> dict[str, list[Any]]:
        """Map each folded identity to the ``_id`` of the users (not deleted) whose match field equals it,
        compared case-insensitively."""
        wanted = set(identities)
        owners: dict[str, list[Any]] = {}
        for chunk in batched(identities, LOOKUP_CHUNK):
            query = {self.match_field: {"$in": chunk}, **NOT_DELETED}
            for user in self.collection.find(query, {self.match_field: 1}, collation=CASE_INSENSITIVE):
                stored = user.get(self.match_field)
                key = fold(stored) if isinstance(stored, str) else None
                if key in wanted:
                    owners.setdefault(key, []).append(user["_id"])
        return owners

    def users_by_session(self, session_ids: list[str]) -> dict[str, list[Any]]:
        """Map each of ``session_ids`` to the ``_id`` of the users (not deleted) that know it."""
        wanted = set(session_ids)
        owners: dict[str, set[Any]] = {}
        projection = dict.fromkeys(SESSION_FIELDS, 1)
        for field in SESSION_FIELDS:
            for chunk in batched(session_ids, LOOKUP_CHUNK):
                for user in self.collection.find({field: {"$in": chunk}, **NOT_DELETED}, projection):
                    known = {user.get("session_id")} | {
                        s.get("id") for s in user.get("umamiSessions") or [] if isinstance(s, dict)}
                    for session_id in wanted.intersection(known):
                        owners.setdefault(session_id, set()).add(user["_id"])
        return {session_id: sorted(ids, key=str) for session_id, ids in owners.items()}

    def write(self, updates: Iterable[UserUpdate], *, batch_size: int, totals: WriteTotals) -> None:
        """Send ``updates`` as unordered ``bulk_write`` batches, one batch in flight while the next is built."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="umami-sync-writer") as writer:
            in_flight = None
            for batch in batched(updates, batch_size):
                requests = [UpdateOne(update.filter, update.pipeline, upsert=False) for update in batch]
                if in_flight is not None:
                    in_flight.result()
                in_flight = writer.submit(self._write_batch, requests, totals)
            if in_flight is not None:
                in_flight.result()

    def _write_batch(self, requests: list[UpdateOne], totals: WriteTotals) -> None:
        totals.operations += len(requests)
        totals.bulk_writes += 1
        try:
            result = self.collection.bulk_write(requests, ordered=False)
        except BulkWriteError as exc:
            details = exc.details
            write_errors = details.get("writeErrors") or [{}]
            totals.modified += details.get("nModified", 0)
            failed = len(details.get("writeErrors", []))
            totals.failed += failed
            totals.add_error(_batch_error(failed, len(requests), write_errors[0].get("code"),
                                          write_errors[0].get("errmsg")))
        except OperationFailure as exc:
            totals.failed += len(requests)
            totals.add_error(_batch_error(len(requests), len(requests), exc.code, (exc.details or {}).get("errmsg")))
        except PyMongoError as exc:
            totals.failed += len(requests)
            totals.add_error(_batch_error(len(requests), len(requests), type(exc).__name__, str(exc)))
        else:
            totals.modified += result.modified_count


def _batch_error(failed: int, size: int, code: object, message: object) -> str:
    return f"bulk_write: {failed} of {size} operations failed (first: {code}: {str(message or '')[:200]})"


def _covers(index: Mapping[str, Any], key: str, collation: Collation | None) -> bool:
    """True when ``index`` starts with ``key`` and compares strings the way the sync's look-ups do."""
    keys = list(index.get("key", {}).keys())
    if not keys or keys[0] != key:
        return False
    have = index.get("collation") or {}
    if collation is None:
        return not have or have.get("locale") == "simple"
    return all(have.get(name) == value for name, value in collation.document.items())

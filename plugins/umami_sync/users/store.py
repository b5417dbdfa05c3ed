"""The users collection: the indexes the sync needs, and unordered bulk writes in batches.

Writing overlaps with reading: while one batch is on the wire, the caller builds the next one.
A batch that fails is recorded (error and counts) and the following batches still go out; the caller
decides what a failure means for its task.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING, Any

from pymongo import UpdateOne
from pymongo.collation import Collation
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError

from umami_sync.users.updates import CASE_INSENSITIVE, NOT_DELETED

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from pymongo.collection import Collection

    from umami_sync.results import WriteTotals
    from umami_sync.users.updates import UserUpdate

log = logging.getLogger(__name__)

INDEX_PREFIX = "umami_sync_"
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

    def required_indexes(self) -> list[tuple[str, dict[str, Any]]]:
        """(field, options) of every index the sync's filters need to be fast."""
        return [
            (self.match_field, {"collation": CASE_INSENSITIVE}),
            ("session_id", {}),
            ("umamiSessions.id", {}),
        ]

    def ensure_indexes(self) -> list[str]:
        """Create the missing indexes of :meth:`required_indexes`; return the names created."""
        existing = list(self.collection.list_indexes())
        created = []
        for key, options in self.required_indexes():
            if any(_covers(index, key, options.get("collation")) for index in existing):
                continue
            name = f"{INDEX_PREFIX}{key.replace('.', '_')}"
            kwargs: dict[str, Any] = {"name": name}
            if options.get("collation"):
                kwargs["collation"] = Collation(**options["collation"])
            try:
                self.collection.create_index([(key, 1)], **kwargs)
            except OperationFailure as exc:
                if exc.code not in _INDEX_OPTIONS_CONFLICT:
                    raise
                log.info("index on %s already exists under another name", key)
                continue
            created.append(name)
        return created

    def write(self, updates: Iterable[UserUpdate], *, batch_size: int, totals: WriteTotals) -> None:
        """Send ``updates`` as unordered ``bulk_write`` batches, one batch in flight while the next is built."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="umami-sync-writer") as writer:
            in_flight = None
            for batch in batched(updates, batch_size):
                requests = [_as_request(update) for update in batch]
                if in_flight is not None:
                    in_flight.result()
                in_flight = writer.submit(self._write_batch, requests, totals)
            if in_flight is not None:
                in_flight.result()

    def count_matches(self, updates: Iterable[UserUpdate], *, batch_size: int, totals: WriteTotals) -> None:
        """Dry run: count the users the updates would match, writing nothing."""
        for batch in batched(updates, batch_size):
            totals.operations += len(batch)
            for collation, filters in _by_collation(batch).items():
                totals.matched += self.collection.count_documents(
                    {"$or": filters}, collation=Collation(**dict(collation)) if collation else None)

    def owners_of_sessions(self, session_ids: list[str]) -> dict[str, list[Any]]:
        """Map each of ``session_ids`` to the ``_id`` of the (not deleted) users that know it."""
        owners: dict[str, list[Any]] = {}
        if not session_ids:
            return owners
        wanted = set(session_ids)
        cursor = self.collection.find(
            {"$or": [{"session_id": {"$in": session_ids}}, {"umamiSessions.id": {"$in": session_ids}}],
             **NOT_DELETED},
            {"session_id": 1, "umamiSessions.id": 1},
        )
        for user in cursor:
            known = {user.get("session_id")} | {
                s.get("id") for s in user.get("umamiSessions") or [] if isinstance(s, dict)}
            for session_id in wanted.intersection(known):
                owners.setdefault(session_id, []).append(user["_id"])
        return owners

    def _write_batch(self, requests: list[UpdateOne], totals: WriteTotals) -> None:
        totals.operations += len(requests)
        totals.bulk_writes += 1
        try:
            result = self.collection.bulk_write(requests, ordered=False)
        except BulkWriteError as exc:
            details = exc.details
            write_errors = details.get("writeErrors") or [{}]
            totals.matched += details.get("nMatched", 0)
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
            totals.matched += result.matched_count
            totals.modified += result.modified_count


def _batch_error(failed: int, size: int, code: object, message: object) -> str:
    return f"bulk_write: {failed} of {size} operations failed (first: {code}: {str(message or '')[:200]})"


def _as_request(update: UserUpdate) -> UpdateOne:
    collation = Collation(**update.collation) if update.collation else None
    return UpdateOne(update.filter, update.pipeline, upsert=False, collation=collation)


def _by_collation(batch: list[UserUpdate]) -> dict[tuple[tuple[str, Any], ...] | None, list[dict[str, Any]]]:
    groups: dict[tuple[tuple[str, Any], ...] | None, list[dict[str, Any]]] = {}
    for update in batch:
        key = tuple(sorted(update.collation.items())) if update.collation else None
        groups.setdefault(key, []).append(update.filter)
    return groups


def _covers(index: Mapping[str, Any], key: str, collation: dict[str, Any] | None) -> bool:
    """True when ``index`` starts with ``key`` and compares strings the way the sync's filters do."""
    keys = list(index.get("key", {}).keys())
    if not keys or keys[0] != key:
        return False
    have = index.get("collation") or {}
    if collation is None:
        return not have or have.get("locale") == "simple"
    return all(have.get(name) == value for name, value in collation.items())

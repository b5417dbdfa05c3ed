"""The users collection: the indexes the sync needs, owner look-ups, and guarded bulk writes.

Users are found first (by identity or by session id) with ``$in`` queries of at most :data:`LOOKUP_CHUNK`
values, reading our fields as they are; the changes are decided in Python (:mod:`umami_sync.users.updates`)
and written by ``_id`` as plain ``$set`` operations guarded by the values read. Nothing here needs an
aggregation-pipeline update or ``$sortArray``, so every MongoDB-compatible server runs it.

Identities are matched case-insensitively in one of two ways (the ``mongo_collation`` setting):

- with a collation (``en``, strength 2) and a collated index: MongoDB and Atlas;
- portably, without one: an exact ``$in`` on the folded identity, plus, for the users whose stored value
  is not already folded (``Frank@Example.com``), a map built by one scan of the match field per task.

Writing overlaps with reading: while one batch is on the wire, the caller builds the next one. A change
whose guard no longer matches (another writer got there first) is merged again on the user as it is now,
up to :data:`CONFLICT_ROUNDS` times. A batch that fails is recorded (error and counts) and the following
batches still go out; the caller decides what a failure means for its task.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING, Any

from pymongo import UpdateOne
from pymongo.collation import Collation
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError

from umami_sync.identities import fold, spellings
from umami_sync.users.updates import NOT_DELETED, read_path

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from pymongo.collection import Collection

    from umami_sync.results import WriteTotals
    from umami_sync.users.updates import Change

log = logging.getLogger(__name__)

INDEX_PREFIX = "umami_sync_"
LOOKUP_CHUNK = 100
"""Values per ``$in`` look-up (a long ``$in`` or an ``$or`` makes some MongoDB-compatible servers scan)."""
CONFLICT_ROUNDS = 3
"""How often a change is merged again after another writer changed the user first."""
CASE_INSENSITIVE = Collation(locale="en", strength=2)
"""Collation of identity look-ups: values compare case-insensitively."""
SESSION_ID_PATHS = ("session_id", "umamiSessions.id")
"""Where a user keeps the session ids the analytics sync matches on."""
SESSION_FIELDS = ("session_id", "umamiSessions", "umamiAnalytics")
"""What the analytics sync reads of a session's users (and ``_id``): our fields that its changes, guards and contest
read."""
OUR_FIELDS = (*SESSION_FIELDS, "updatedAt")
"""Every field the sync writes on a user (nothing else of a user is ever set)."""
REFUSALS = {2: "BadValue", 14: "TypeMismatch", 17: "InvalidLength", 28: "PathNotViable",
            52: "DollarPrefixedFieldName", 66: "ImmutableField", 121: "DocumentValidationFailure",
            10334: "BSONObjectTooLarge", 11000: "DuplicateKey", 11001: "DuplicateKey", 17419: "DocumentTooLarge",
            17420: "DocumentTooLarge"}
"""Write errors a retry cannot change (the user document or the application's rules refuse the change), by code."""
_SAME_KEYS_OTHER_NAME = 85  # IndexOptionsConflict: an equivalent index exists under another name
_MAY_FOLD = "[A-Z]|[^\\x00-\\x7F]"
"""Values folding could change: an ASCII capital, or anything beyond ASCII (the server filters, Python decides)."""

User = dict[str, Any]


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most ``size`` items."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class UsersCollection:
    """Guarded writes to the application's users; never inserts or deletes a user.

    :param collation: match identities through a case-insensitive collation (True), portably (False), or
        as :meth:`collation_works` finds out when first needed (None).
    """

    def __init__(self, collection: Collection[User], *, match_field: str, collation: bool | None) -> None:
        self.collection = collection
        self.match_field = match_field
        self._collation = collation
        self._projection = dict.fromkeys((match_field, *OUR_FIELDS), 1)
        self._session_projection = dict.fromkeys(SESSION_FIELDS, 1)
        self._unfolded: dict[str, list[Any]] | None = None
        self._either_path: bool | None = None

    @property
    def collation(self) -> bool:
        """Whether identities are matched through a collation (probed once when not configured)."""
        if self._collation is None:
            self._collation = self.collation_works()
            log.info("identities are matched %s", "with a case-insensitive collation" if self._collation
                     else "portably (this server does not compare through collations)")
        return self._collation

    # --- indexes ----------------------------------------------------------------------------------

    def required_indexes(self) -> list[tuple[str, Collation | None]]:
        """(field, collation) of every index the sync's look-ups need to be fast."""
        match = (self.match_field, CASE_INSENSITIVE if self.collation else None)
        return [match, *((path, None) for path in SESSION_ID_PATHS)]

    def ensure_indexes(self) -> list[str]:
        """Create the missing indexes of :meth:`required_indexes`; return the names created.

        A server that refuses one (e.g. a collated index on Cosmos DB) gets a log line, not a failed task:
        the look-ups still work, only slower.
        """
        existing = list(self.collection.list_indexes())
        created = []
        for key, collation in self.required_indexes():
            if any(_covers(index, key, collation) for index in existing):
                continue
            name = f"{INDEX_PREFIX}{key.replace('.', '_')}{'_ci' if collation else ''}"
            try:
                self.collection.create_index([(key, 1)], name=name, collation=collation)
            except OperationFailure as exc:
                if exc.code == _SAME_KEYS_OTHER_NAME:
                    log.info("an index on %s exists under another name", key)
                else:
                    log.warning("the server refused index %s on %s (%s: %s); look-ups on it will be slower",
                                name, key, exc.code, (exc.details or {}).get("errmsg", exc))
                continue
            created.append(name)
        return created

    def collation_works(self) -> bool:
        """Whether this server compares through a case-insensitive collation (probed on a real user).

        Some servers refuse collations, some ignore them silently: one user's match value is looked up
        with its letter case swapped. No user with letters to swap: False (the portable way is safe).
        """
        sample = self.collection.find_one({self.match_field: {"$regex": "[A-Za-z]"}}, {self.match_field: 1})
        if sample is None or not isinstance(value := sample.get(self.match_field), str):
            return False
        try:
            found = self.collection.find_one({"_id": sample["_id"], self.match_field: value.swapcase()},
                                             {"_id": 1}, collation=CASE_INSENSITIVE)
        except OperationFailure as exc:
            log.info("the server refuses collations (%s); identities are matched portably", exc.code)
            return False
        return found is not None

    # --- look-ups ---------------------------------------------------------------------------------

    def users_by_identity(self, identities: list[str]) -> dict[str, list[User]]:
        """Each folded identity's users (not deleted) whose match field equals it case-insensitively,
        with our fields as they are now."""
        wanted = set(identities)
        owners: dict[str, list[User]] = {}
        for chunk in batched(identities, LOOKUP_CHUNK):
            values = [spelling for identity in chunk for spelling in spellings(identity)]
            query: dict[str, Any] = {self.match_field: {"$in": values}, **NOT_DELETED}
            found = list(self.collection.find(query, self._projection,
                                              collation=CASE_INSENSITIVE if self.collation else None))
            if not self.collation:
                found += self._unfolded_users(chunk, {user["_id"] for user in found})
            for user in found:
                stored = read_path(user, self.match_field)
                if not isinstance(stored, str):
                    continue
                key = stored if stored in wanted else fold(stored)  # a value stored folded is its own key
                if key in wanted:
                    owners.setdefault(key, []).append(user)
        return owners

    def _unfolded_users(self, identities: list[str], have: set[Any]) -> list[User]:
        """Users of ``identities`` whose stored value is not folded (an exact look-up cannot find them)."""
        if self._unfolded is None:
            self._unfolded = self._scan_unfolded()
        ids = [user_id for identity in identities for user_id in self._unfolded.get(identity, ())
               if user_id not in have]
        return list(self.collection.find({"_id": {"$in": ids}, **NOT_DELETED}, self._projection)) if ids else []

    def _scan_unfolded(self) -> dict[str, list[Any]]:
        """One pass over the users' match values that folding could change (the server filters them with a
        case-sensitive ``$regex``, which every compatible server has): the ``_id`` of those not stored folded."""
        unfolded: dict[str, list[Any]] = {}
        for user in self.collection.find({self.match_field: {"$regex": _MAY_FOLD}, **NOT_DELETED},
                                         {self.match_field: 1}, batch_size=10_000):
            stored = read_path(user, self.match_field)
            if isinstance(stored, str) and fold(stored) != stored:
                unfolded.setdefault(fold(stored), []).append(user["_id"])
        log.info("portable matching: %d users store %s in another letter case or Unicode form",
                 sum(map(len, unfolded.values())), self.match_field)
        return unfolded

    def users_by_session(self, session_ids: list[str]) -> dict[str, list[User]]:
        """Each of ``session_ids``' users (not deleted) that know it, with our fields as they are now (several users of
        one session in the order of their ``_id`` as text). One query per chunk of sessions where the server serves an
        ``$or`` of both paths from their indexes, else one per path and chunk, each leaving out the users the chunk's
        queries before it found: a chunk reads each of its users once."""
        owners: dict[str, list[User]] = {}
        for chunk in batched(dict.fromkeys(session_ids), LOOKUP_CHUNK):
            wanted = set(chunk)
            for query in self._session_queries(chunk):
                for user in self.collection.find({**query, **NOT_DELETED}, self._session_projection):
                    known = {entry.get("id") for entry in user.get("umamiSessions") or [] if isinstance(entry, dict)}
                    known.add(user.get("session_id"))
                    for session_id in wanted.intersection(known):
                        owners.setdefault(session_id, []).append(user)
        for users in owners.values():
            if len(users) > 1:
                users.sort(key=lambda user: str(user["_id"]))
        return owners

    def _session_queries(self, chunk: list[str]) -> list[dict[str, Any]]:
        """The queries of the users that know a session of ``chunk``."""
        if self._either_path is None:
            self._either_path = self.or_uses_indexes()
            log.info("owners of sessions are looked up with %s", "one query per chunk (an indexed $or)"
                     if self._either_path else "one query per path and chunk (this server would scan for an $or)")
        if self._either_path:
            return [{"$or": [{path: {"$in": chunk}} for path in SESSION_ID_PATHS]}]
        # the users an earlier path found are left out (a query reads the index of its path, the rest is a filter)
        return [{path: {"$in": chunk}, **{before: {"$nin": chunk} for before in SESSION_ID_PATHS[:n]}}
                for n, path in enumerate(SESSION_ID_PATHS)]

    def or_uses_indexes(self) -> bool:
        """Whether this server answers an ``$or`` of the session paths from their indexes (asked once, with
        ``explain``). MongoDB does; a server that would scan the collection for it (SecantusDB does), or that
        cannot explain, is asked one path at a time."""
        probe = {"$or": [{path: {"$in": ["umami-sync-probe"]}} for path in SESSION_ID_PATHS], **NOT_DELETED}
        try:
            plan = self.collection.find(probe, {"_id": 1}).explain().get("queryPlanner", {}).get("winningPlan", {})
        except PyMongoError as exc:
            log.info("the server cannot explain a query (%s); sessions are looked up one path at a time", exc)
            return False
        stages = set(_plan_stages(plan))
        return "IXSCAN" in stages and "COLLSCAN" not in stages

    # --- writes -----------------------------------------------------------------------------------

    def write(self, changes: Iterable[Change], *, batch_size: int, totals: WriteTotals, dry_run: bool = False) -> None:
        """Send ``changes`` as unordered ``bulk_write`` batches, one batch in flight while the next is built;
        in a dry run only count them.

        When ``changes`` fails while a batch is being built (a read behind it broke), what was built is
        written first and then the error is raised: a task fails after writing what it could.
        """
        if dry_run:
            for _ in changes:
                totals.operations += 1
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="umami-sync-writer") as writer:
            in_flight = None
            batch: list[Change] = []
            try:
                for change in changes:
                    batch.append(change)
                    if len(batch) == batch_size:
                        if in_flight is not None:
                            in_flight.result()
                        in_flight, batch = writer.submit(self._write_batch, batch, totals), []
            finally:
                if in_flight is not None:
                    in_flight.result()
                if batch:
                    self._write_batch(batch, totals)

    def _write_batch(self, batch: list[Change], totals: WriteTotals) -> None:
        totals.bulk_writes += 1
        totals.operations += len(batch)
        for attempt in range(1, CONFLICT_ROUNDS + 1):
            missed = self._send(batch, totals)
            if not missed:
                return
            batch = self._merge_again(missed)
            if not batch:
                return
            if attempt < CONFLICT_ROUNDS:
                totals.conflicts += len(batch)
        totals.failed += len(batch)
        totals.add_error(f"{len(batch)} users kept changing while being written ({CONFLICT_ROUNDS} tries); "
                         "not written this time")

    def _send(self, batch: list[Change], totals: WriteTotals) -> list[Change]:
        """One unordered ``bulk_write``; the changes to merge again (their guard may have missed)."""
        requests = [UpdateOne({"_id": change.user_id, **NOT_DELETED, **change.guard}, {"$set": change.fields})
                    for change in batch]
        try:
            result = self.collection.bulk_write(requests, ordered=False)
        except BulkWriteError as exc:
            return self._partly_written(batch, exc.details, totals)
        except OperationFailure as exc:
            totals.failed += len(requests)
            totals.add_error(_batch_error(len(requests), len(requests), exc.code, (exc.details or {}).get("errmsg")))
        except PyMongoError as exc:
            totals.failed += len(requests)
            totals.add_error(_batch_error(len(requests), len(requests), type(exc).__name__, str(exc)))
        else:
            totals.modified += result.modified_count
            return batch if result.matched_count < len(batch) else []
        return []

    def _partly_written(self, batch: list[Change], details: Mapping[str, Any], totals: WriteTotals) -> list[Change]:
        """Account for a ``bulk_write`` the server answered with errors: a change it refused for good is recorded
        with its user (a retry cannot change the answer), any other failed change fails the batch, and a
        write-concern error fails it with the server's message although the changes were applied. The changes
        without an error are merged again when some guard missed."""
        totals.modified += details.get("nModified", 0)
        failed_at: set[int] = set()
        retryable = []
        for error in details.get("writeErrors") or []:
            index, code = error.get("index"), error.get("code")
            failed_at.add(index)
            if code in REFUSALS:
                totals.refuse(batch[index].user_id, code, REFUSALS[code], _server_reason(error.get("errmsg")))
            else:
                retryable.append(error)
        if retryable:
            totals.failed += len(retryable)
            totals.add_error(_batch_error(len(retryable), len(batch), retryable[0].get("code"),
                                          retryable[0].get("errmsg")))
        for error in details.get("writeConcernErrors") or []:  # nMatched: the updates the server did apply
            totals.add_error(f"bulk_write: the server applied {details.get('nMatched', 0)} of {len(batch)} operations "
                             f"but could not confirm them (write concern {error.get('code')}: "
                             f"{str(error.get('errmsg') or '')[:200]}); the task fails so that they are checked again")
        written = [change for index, change in enumerate(batch) if index not in failed_at]
        return written if details.get("nMatched", 0) < len(written) else []

    def _merge_again(self, batch: list[Change]) -> list[Change]:
        """The changes still to make, merged on the users as they are now (deleted users drop out)."""
        current = {user["_id"]: user for user in self.collection.find(
            {"_id": {"$in": [change.user_id for change in batch]}, **NOT_DELETED}, self._projection)}
        again = []
        for change in batch:
            user = current.get(change.user_id)
            redone = change.redo(user) if user is not None else None
            if redone is not None:
                again.append(redone)
        return again


def _server_reason(message: object) -> str:
    """The server's reason for refusing a change, without the values it may quote (a duplicate key's value is
    the application's data)."""
    text = str(message or "").rsplit(" :: caused by :: ", 1)[-1]
    return text.split(" dup key:", 1)[0][:200]


def _batch_error(failed: int, size: int, code: object, message: object) -> str:
    return f"bulk_write: {failed} of {size} operations failed (first: {code}: {str(message or '')[:200]})"


def _plan_stages(plan: Mapping[str, Any]) -> Iterator[str]:
    """Every stage of an ``explain`` plan (MongoDB nests them as ``inputStage``, ``inputStages`` and, in the
    slot-based engine's output, ``queryPlan``)."""
    if isinstance(stage := plan.get("stage"), str):
        yield stage
    for key in ("inputStage", "queryPlan"):
        if isinstance(child := plan.get(key), dict):
            yield from _plan_stages(child)
    for child in plan.get("inputStages") or []:
        if isinstance(child, dict):
            yield from _plan_stages(child)


def _covers(index: Mapping[str, Any], key: str, collation: Collation | None) -> bool:
    """True when ``index`` starts with ``key`` and compares strings the way the sync's look-ups do."""
    keys = list(index.get("key", {}).keys())
    if not keys or keys[0] != key:
        return False
    have = index.get("collation") or {}
    if collation is None:
        return not have or have.get("locale") == "simple"
    return all(have.get(name) == value for name, value in collation.document.items())


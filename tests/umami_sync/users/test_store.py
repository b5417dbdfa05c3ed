"""The users collection against a real MongoDB wire server, on both ways of matching identities (a collation,
or portably), the portable one watched for commands that other servers refuse (``mongo_collation``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from tests.factories import add_user
from umami_sync.results import WriteTotals
from umami_sync.users.store import CONFLICT_ROUNDS, UsersCollection
from umami_sync.users.updates import KnownSession, session_change

if TYPE_CHECKING:
    from pymongo.database import Database

    from umami_sync.users.updates import Change

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 1, tzinfo=UTC)
SEEN = datetime(2026, 11, 27, 9, tzinfo=UTC)


def store(db: Database, mode: str) -> UsersCollection:
    return UsersCollection(db["users"], match_field="email", collation=mode == "on")


def owner_emails(found: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {identity: sorted(user["email"] for user in users) for identity, users in found.items()}


def test_identities_match_whatever_letter_case_or_unicode_form_the_user_was_stored_in(
        users_db: Database, mongo_collation: str) -> None:
    for email in ("frank@example.com", "Gail@Example.COM", "Zoe\u0308@Example.com", "zo\u00eb@example.com",
                  " hal@example.com", "Ian@example.com"):
        add_user(users_db["users"], email)
    add_user(users_db["users"], "ian@EXAMPLE.com", isDeleted=True)

    found = store(users_db, mongo_collation).users_by_identity(
        ["frank@example.com", "gail@example.com", "zo\u00eb@example.com", "hal@example.com", "ian@example.com"])

    assert owner_emails(found) == {
        "frank@example.com": ["frank@example.com"], "gail@example.com": ["Gail@Example.COM"],
        "zo\u00eb@example.com": sorted(["Zoe\u0308@Example.com", "zo\u00eb@example.com"]),
        "ian@example.com": ["Ian@example.com"]}  # a stored value with spaces is not this identity; deleted: never
    assert all({"_id", "email"} <= set(user) for users in found.values() for user in users)


def test_indexes_follow_the_way_identities_are_matched(users_db: Database, mongo_collation: str) -> None:
    users = store(users_db, mongo_collation)

    created = users.ensure_indexes()

    email = "umami_sync_email_ci" if mongo_collation == "on" else "umami_sync_email"
    assert created == [email, "umami_sync_session_id", "umami_sync_umamiSessions_id"]
    index = next(i for i in users_db["users"].list_indexes() if i["name"] == email)
    assert (index.get("collation") or {}).get("strength") == (2 if mongo_collation == "on" else None)
    assert users.ensure_indexes() == []


def test_an_index_the_server_refuses_is_logged_and_the_sync_goes_on(
        users_db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real = Collection.create_index

    def refuse_collations(self: Collection[Any], keys: Any, **options: Any) -> str:
        if options.get("collation") is not None:  # as Cosmos DB for MongoDB answers
            raise OperationFailure("case-insensitive indexes are not supported", code=115)
        return real(self, keys, **options)

    monkeypatch.setattr(Collection, "create_index", refuse_collations)

    created = store(users_db, "on").ensure_indexes()

    assert created == ["umami_sync_session_id", "umami_sync_umamiSessions_id"]
    assert "the server refused index umami_sync_email_ci on email (115" in caplog.text


class _Answers:
    """A collection stand-in for the probe: how a server answers a find with a collation."""

    def __init__(self, real: Collection[Any], *, collation: str) -> None:
        self.real, self.collation = real, collation

    def find_one(self, query: Any, projection: Any = None, **options: Any) -> Any:
        if options.get("collation") is None:
            return self.real.find_one(query, projection)
        if self.collation == "refused":
            raise OperationFailure("collation not supported", code=115)
        if self.collation == "ignored":
            return self.real.find_one(query, projection)  # compared case-sensitively: finds nothing
        return self.real.find_one(query, projection, **options)


@pytest.mark.parametrize(("server", "works"), [("honoured", True), ("refused", False), ("ignored", False)])
def test_the_probe_tells_whether_the_server_really_compares_through_a_collation(
        users_db: Database, server: str, works: bool) -> None:
    add_user(users_db["users"], "Mixed@Example.com")
    answers: Any = _Answers(users_db["users"], collation=server)

    assert UsersCollection(answers, match_field="email", collation=None).collation is works


def test_the_probe_picks_the_portable_way_when_no_user_can_tell(users_db: Database) -> None:
    add_user(users_db["users"], "1234@5678.90")

    assert UsersCollection(users_db["users"], match_field="email", collation=None).collation is False


def test_users_by_session_read_our_fields_as_they_are(users_db: Database, mongo_collation: str) -> None:
    one = add_user(users_db["users"], "a@x.io", session_id="s1")
    two = add_user(users_db["users"], "b@x.io", umamiSessions=[{"id": "s1"}, {"id": "s2"}], umamiAnalytics={"id": "s2"})
    add_user(users_db["users"], "c@x.io", session_id="s2", isDeleted=True)

    found = store(users_db, mongo_collation).users_by_session(["s1", "s2", "s3"])

    assert {session: [user["_id"] for user in users] for session, users in found.items()} == {
        "s1": sorted([one, two], key=str), "s2": [two]}
    assert found["s2"][0]["umamiAnalytics"] == {"id": "s2"}


@pytest.mark.parametrize("either_path", [True, False], ids=["one $or per chunk", "one query per path"])
def test_both_ways_of_looking_sessions_up_find_the_same_owners(users_db: Database, mongo_collation: str,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               either_path: bool) -> None:
    one = add_user(users_db["users"], "a@x.io", session_id="s1", umamiSessions=[{"id": "s1"}])
    two = add_user(users_db["users"], "b@x.io", umamiSessions=[{"id": "s0"}, {"id": "s150"}])
    add_user(users_db["users"], "c@x.io", session_id="s150", isDeleted=True)
    sent: list[dict[str, Any]] = []
    find = Collection.find
    monkeypatch.setattr(Collection, "find", lambda self, *args, **kwargs: sent.append(args[0]) or find(
        self, *args, **kwargs))
    users = store(users_db, mongo_collation)
    monkeypatch.setattr(users, "or_uses_indexes", lambda: either_path)

    found = users.users_by_session([f"s{n}" for n in range(200)])

    assert {session: [user["_id"] for user in owners] for session, owners in found.items()} == {
        "s0": [two], "s1": [one], "s150": [two]}
    assert len(sent) == (2 if either_path else 4)  # 200 ids: two chunks of 100


def test_a_chunk_reads_each_of_its_users_once_when_sessions_are_looked_up_one_path_at_a_time(
        users_db: Database, mongo_collation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user stage 1 wrote knows a session by both paths (``session_id`` and ``umamiSessions.id``): the second
    path's query leaves out whom the first found, so no user is read (and decoded) twice."""
    both = add_user(users_db["users"], "a@x.io", session_id="s1", umamiSessions=[{"id": "s1"}, {"id": "s2"}])
    legacy = add_user(users_db["users"], "b@x.io", session_id="s2")  # the original tool's field only
    listed = add_user(users_db["users"], "c@x.io", umamiSessions=[{"id": "s3"}])
    read: list[Any] = []
    find = Collection.find

    def recorded(self: Collection, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        found = list(find(self, *args, **kwargs))
        read.extend(user["_id"] for user in found)
        return found

    monkeypatch.setattr(Collection, "find", recorded)
    users = store(users_db, mongo_collation)
    monkeypatch.setattr(users, "or_uses_indexes", lambda: False)

    found = users.users_by_session(["s1", "s2", "s3", "s2"])

    assert sorted(read, key=str) == sorted([both, legacy, listed], key=str)
    assert {session: [user["_id"] for user in owners] for session, owners in found.items()} == {
        "s1": [both], "s2": sorted([both, legacy], key=str), "s3": [listed]}


def test_sessions_are_looked_up_one_path_at_a_time_on_a_server_that_would_scan_for_an_or(
        users_db: Database, mongo_collation: str) -> None:
    add_user(users_db["users"], "a@x.io", session_id="s1")
    users = store(users_db, mongo_collation)
    users.ensure_indexes()

    assert users.or_uses_indexes() is False  # SecantusDB explains a collection scan for the $or


MONGODB_OR_PLAN = {"stage": "FETCH", "filter": {"isDeleted": {"$not": {"$eq": True}}}, "inputStage": {
    "stage": "OR", "inputStages": [
        {"stage": "IXSCAN", "keyPattern": {"session_id": 1}, "indexName": "umami_sync_session_id"},
        {"stage": "IXSCAN", "keyPattern": {"umamiSessions.id": 1}, "indexName": "umami_sync_umamiSessions_id"}]}}
"""The winning plan MongoDB (6.0, classic engine) explains for the sync's ``$or`` of the two indexed paths."""


@pytest.mark.parametrize(("plan", "indexed"), [
    (MONGODB_OR_PLAN, True),
    ({"queryPlan": MONGODB_OR_PLAN, "slotBasedPlan": {"stages": "..."}}, True),  # the slot-based engine's shape
    ({"stage": "COLLSCAN", "filter": {}}, False),
    ({"stage": "SUBPLAN", "inputStage": {"stage": "OR", "inputStages": [
        {"stage": "IXSCAN"}, {"stage": "COLLSCAN"}]}}, False),
    ({}, False),
])
def test_an_or_is_sent_only_when_the_plan_reads_indexes_and_scans_nothing(users_db: Database,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          plan: dict[str, Any], indexed: bool) -> None:
    monkeypatch.setattr("pymongo.cursor.Cursor.explain",
                        lambda self: {"queryPlanner": {"winningPlan": plan}})

    assert store(users_db, "on").or_uses_indexes() is indexed


def test_a_server_that_cannot_explain_gets_one_query_per_path(users_db: Database,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Any) -> dict[str, Any]:
        raise OperationFailure("explain is not supported", code=115)

    monkeypatch.setattr("pymongo.cursor.Cursor.explain", refuse)

    assert store(users_db, "off").or_uses_indexes() is False


def _planned(users: UsersCollection, email: str) -> Change:
    """The session change stage 1 would send for ``email``'s user as it is now: session ``s1`` of ``w1``."""
    change = session_change(users.users_by_identity([email])[email][0], [KnownSession("s1", "w1", SEEN)],
                            keep=5, now=NOW)
    assert change is not None
    return change


def _write(users: UsersCollection, changes: list[Any]) -> WriteTotals:
    totals = WriteTotals()
    users.write(changes, batch_size=10, totals=totals)
    return totals


def test_a_concurrent_write_is_never_lost_and_our_fields_still_end_right(
        users_db: Database, mongo_collation: str) -> None:
    """Between the look-up and the write the application renames the user and another sync records a
    session: the rename stays, and our change is merged again on the user as it is then."""
    collection = users_db["users"]
    user_id = add_user(collection, "kim@example.com", session_id="legacy")
    users = store(users_db, mongo_collation)
    read = users.users_by_identity(["kim@example.com"])["kim@example.com"][0]
    change = session_change(read, [KnownSession("s-new", "w1", SEEN)], keep=5, now=NOW)
    assert change is not None
    collection.update_one({"_id": user_id}, {"$set": {"name": "Kim B.", "session_id": "s-other",
                                                      "updatedAt": datetime(2026, 11, 27, 23, 59)}})

    totals = _write(users, [change])

    kim = collection.find_one({"_id": user_id})
    assert kim is not None
    assert kim["name"] == "Kim B."
    assert kim["session_id"] == "s-new"
    assert [entry["id"] for entry in kim["umamiSessions"]] == ["s-new", "s-other"]  # the other sync's id kept
    assert (totals.operations, totals.modified, totals.conflicts, totals.failed) == (1, 1, 1, 0)


def test_the_applications_own_writes_are_no_conflict(users_db: Database, mongo_collation: str) -> None:
    collection = users_db["users"]
    user_id = add_user(collection, "ned@example.com")
    users = store(users_db, mongo_collation)
    change = _planned(users, "ned@example.com")
    collection.update_one({"_id": user_id}, {"$set": {"plan": "pro", "updatedAt": datetime(2026, 11, 27, 23)}})

    totals = _write(users, [change])

    ned = collection.find_one({"_id": user_id})
    assert ned is not None and (ned["plan"], ned["session_id"]) == ("pro", "s1")
    assert (totals.modified, totals.conflicts) == (1, 0)


def test_a_user_deleted_meanwhile_is_left_alone(users_db: Database, mongo_collation: str) -> None:
    collection = users_db["users"]
    user_id = add_user(collection, "lou@example.com")
    users = store(users_db, mongo_collation)
    change = _planned(users, "lou@example.com")
    collection.update_one({"_id": user_id}, {"$set": {"isDeleted": True}})

    totals = _write(users, [change])

    assert "session_id" not in (collection.find_one({"_id": user_id}) or {})
    assert (totals.modified, totals.failed) == (0, 0)


def test_a_user_that_keeps_changing_is_reported_not_forced(users_db: Database, monkeypatch: pytest.MonkeyPatch,
                                                           mongo_collation: str) -> None:
    collection = users_db["users"]
    user_id = add_user(collection, "max@example.com")
    users = store(users_db, mongo_collation)
    change = _planned(users, "max@example.com")
    real = Collection.bulk_write
    rounds = []

    def busy(self: Collection[Any], requests: Any, **options: Any) -> Any:
        rounds.append(1)  # another sync gets there first, every time
        collection.update_one({"_id": user_id}, {"$set": {"session_id": f"other-{len(rounds)}"}})
        return real(self, requests, **options)

    monkeypatch.setattr(Collection, "bulk_write", busy)

    totals = _write(users, [change])

    assert len(rounds) == CONFLICT_ROUNDS
    assert (totals.modified, totals.failed, totals.conflicts) == (0, 1, CONFLICT_ROUNDS - 1)
    assert totals.errors == [f"1 users kept changing while being written ({CONFLICT_ROUNDS} tries); "
                             "not written this time"]


def test_refusals_a_retry_cannot_change_are_recorded_with_the_user_and_the_rest_written(
        users_db: Database, mongo_collation: str) -> None:
    """Real refusals of the test server: a unique index of the application's on ``session_id`` (two accounts of
    one person), and a document that our change would take past 16 MB."""
    collection = users_db["users"]
    collection.create_index("session_id", unique=True, sparse=True)
    first = add_user(collection, "dup@example.com")
    second = add_user(collection, "Dup@Example.com")
    big = add_user(collection, "big@example.com", blob="x" * (16 * 1024 * 1024 - 200))
    fine = add_user(collection, "fine@example.com")
    users = store(users_db, mongo_collation)
    found = users.users_by_identity(["dup@example.com", "big@example.com", "fine@example.com"])
    changes = [session_change(user, [KnownSession(f"s-{identity[:3]}", "w1", SEEN)], keep=5, now=NOW)
               for identity, owners in sorted(found.items()) for user in owners]

    totals = _write(users, changes)

    assert (totals.modified, totals.refused, totals.failed, totals.errors) == (2, 2, 0, [])
    assert totals.refused_by_reason == {"10334 BSONObjectTooLarge": 1, "11000 DuplicateKey": 1}
    refused = {user.user_id: user for user in totals.refused_users}
    assert str(big) in refused and len({str(first), str(second)} & set(refused)) == 1  # one of the two accounts
    assert all("s-dup" not in user.reason and "dup@" not in user.reason.lower() for user in refused.values())
    assert (collection.find_one({"_id": fine}) or {}).get("session_id") == "s-fin"


def test_a_write_concern_error_names_the_operations_the_server_applied(users_db: Database,
                                                                       mongo_collation: str) -> None:
    """The server's own write-concern error: the MongoDB wire server (one node) applies the updates, then answers a
    write concern of ``w: 3`` with ``UnsatisfiableWriteConcern``, as a replica set with too few members answers. One
    guard missed (another writer changed that user first), so the server applied 2 of the 3 operations."""
    from pymongo import WriteConcern

    collection = users_db["users"]
    ids = [add_user(collection, f"w{n}@example.com") for n in range(3)]
    users = UsersCollection(collection.with_options(write_concern=WriteConcern(w=3, wtimeout=100)),
                            match_field="email", collation=mongo_collation == "on")
    changes = [_planned(users, f"w{n}@example.com") for n in range(3)]
    collection.update_one({"_id": ids[2]}, {"$set": {"session_id": "someone-elses"}})

    totals = _write(users, changes)

    assert [error.split(" (write concern ")[0] for error in totals.errors] == [
        "bulk_write: the server applied 2 of 3 operations but could not confirm them",
        "bulk_write: the server applied 1 of 1 operations but could not confirm them"]  # the missed one, merged again
    assert [(collection.find_one({"_id": i}) or {}).get("session_id") for i in ids] == ["s1", "s1", "s1"]


def test_a_write_concern_error_fails_the_batch_with_the_servers_words_and_drops_nothing(
        users_db: Database, mongo_collation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server cannot produce one here: the batch is written for real, then answered the way a replica set
    answers when ``w: majority`` times out, while another writer changed one user first (its guard missed)."""
    from pymongo.errors import BulkWriteError

    collection = users_db["users"]
    ids = [add_user(collection, f"w{n}@example.com") for n in range(3)]
    users = store(users_db, mongo_collation)
    changes = [_planned(users, f"w{n}@example.com") for n in range(3)]
    collection.update_one({"_id": ids[2]}, {"$set": {"session_id": "someone-elses"}})
    real = Collection.bulk_write
    answered: list[int] = []

    def unconfirmed(self: Collection[Any], requests: Any, **options: Any) -> Any:
        result = real(self, requests, **options)
        if answered:
            return result
        answered.append(result.matched_count)
        raise BulkWriteError({"writeErrors": [], "writeConcernErrors": [{
            "code": 64, "codeName": "WriteConcernFailed", "errmsg": "waiting for replication timed out"}],
            "nInserted": 0, "nUpserted": 0, "nMatched": result.matched_count, "nModified": result.modified_count,
            "nRemoved": 0, "upserted": []})

    monkeypatch.setattr(Collection, "bulk_write", unconfirmed)

    totals = _write(users, changes)

    assert answered == [2]
    assert totals.errors == ["bulk_write: the server applied 2 of 3 operations but could not confirm them (write "
                             "concern 64: waiting for replication timed out); the task fails so that they are checked "
                             "again"]  # the guard of the third missed: the server matched 2
    assert (totals.modified, totals.conflicts, totals.failed) == (3, 1, 0)  # the missed one was merged again
    assert [(collection.find_one({"_id": i}) or {}).get("session_id") for i in ids] == ["s1", "s1", "s1"]

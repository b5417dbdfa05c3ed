"""Stage 1 against a real PostgreSQL (Umami's schema) and a real MongoDB wire server, every test on both ways
of matching identities (``mongo_collation``: a collation, or the portable path watched for commands that
other servers refuse)."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from tests.conftest import documents
from tests.factories import OTHER_WEBSITE, WEBSITE, UmamiRows, add_user, at
from umami_sync.settings import SyncSettings
from umami_sync.windows import DataInterval
from umami_sync.wiring import sync_sessions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from pymongo.database import Database

    from umami_sync.results import SessionSyncResult

    Run = Callable[..., SessionSyncResult]

pytestmark = pytest.mark.integration

DAY = DataInterval(at(0), at(0, day=28))
RUN_AT = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
LATER_RUN_AT = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)


@pytest.fixture
def rows(connections: Database, umami_db: str, umami_level: str) -> Iterator[UmamiRows]:
    umami = UmamiRows(umami_db, umami_level)
    yield umami
    umami.close()


def users(db: Database) -> Any:
    return db["users"]


def user(db: Database, email: str) -> dict[str, Any]:
    found = users(db).find_one({"email": email})
    assert found is not None
    return found


@pytest.fixture
def run(mongo_collation: str) -> Run:
    """Stage 1 with ``overrides`` as settings, on the test's write path."""

    def sync(**overrides: Any) -> SessionSyncResult:
        now = overrides.pop("now", RUN_AT)
        interval = overrides.pop("interval", DAY)
        return sync_sessions(SyncSettings(mongo_collation=mongo_collation, **overrides), interval, now=now)

    return sync


def test_real_fixture_rows_reach_their_users(run: Run, connections: Database, umami_db: str,
                                             umami_fixtures: Path) -> None:
    """The rows a real Umami 3.1.0 wrote: Alice by distinct id (+ e-mail data), Bob by e-mail data only,
    Carol by distinct id; the anonymous Chrome session has no identity."""
    import psycopg

    with psycopg.connect(umami_db) as conn:
        conn.execute((umami_fixtures / "rows.sql").read_text())
    add_user(users(connections), "alice@example.com")
    add_user(users(connections), "Bob@Example.com")
    add_user(users(connections), "carol@example.com", isDeleted=True)

    result = run()

    assert (result.rows_read, result.identities, result.anonymous_sessions, result.invalid_rows) == (4, 3, 1, 0)
    assert (result.matched_identities, result.modified, result.unmatched_identities, result.failed) == (2, 2, 1, 0)
    assert result.unmatched_sample == ["c***@example.com"]  # Carol is deleted: her identity owns no user
    alice = user(connections, "alice@example.com")
    assert alice["session_id"] == "8b046da9-3d41-5054-8060-170787f99fe0"
    assert alice["umamiSessions"] == [{"id": "8b046da9-3d41-5054-8060-170787f99fe0", "websiteId": WEBSITE,
                                       "seenAt": datetime(2026, 11, 27, 15, 46, 32, 409000)}]
    assert user(connections, "Bob@Example.com")["session_id"] == "23fbc8b7-769e-5606-8fca-3643d50f5683"
    carol = user(connections, "carol@example.com")
    assert "session_id" not in carol and "umamiSessions" not in carol


def test_identities_are_trimmed_and_case_insensitive(run: Run, rows: UmamiRows, connections: Database) -> None:
    add_user(users(connections), "dave@example.com")
    add_user(users(connections), "Erin@Example.org")
    dave = rows.session(at(9), distinct_id="  Dave@EXAMPLE.com ")
    anonymous = rows.session(at(10))
    rows.session_data(anonymous, at(10, 5), value="\terin@example.ORG\n")

    result = run()

    assert (result.identities, result.matched_identities, result.modified, result.invalid_rows) == (2, 2, 2, 0)
    assert user(connections, "dave@example.com")["session_id"] == dave
    assert user(connections, "Erin@Example.org")["session_id"] == anonymous


def test_null_empty_and_malformed_identities_are_counted_not_written(run: Run, rows: UmamiRows,
                                                                     connections: Database) -> None:
    add_user(users(connections), "frank@example.com")
    for value in (None, "", "   ", "not-an-email", "frank@example.com\x07"):
        rows.session_data(rows.session(at(11)), at(11, 1), value=value)
    rows.session(at(12), distinct_id="   ")
    rows.session(at(12, 30))  # anonymous: no distinct id, no e-mail data

    result = run()

    assert (result.rows_read, result.invalid_rows, result.identities, result.anonymous_sessions) == (6, 6, 0, 1)
    assert result.bulk_writes == 0
    assert "session_id" not in user(connections, "frank@example.com")


def test_several_sessions_keep_the_newest_as_session_id(run: Run, rows: UmamiRows, connections: Database) -> None:
    add_user(users(connections), "gina@example.com")
    first = rows.session(at(8), distinct_id="gina@example.com")
    second = rows.session(at(14), distinct_id="gina@example.com", website_id=OTHER_WEBSITE)
    third = rows.session(at(11), distinct_id="Gina@example.com")

    result = run()

    gina = user(connections, "gina@example.com")
    assert (result.identities, result.modified) == (1, 1)
    assert gina["session_id"] == second
    assert [s["id"] for s in gina["umamiSessions"]] == [second, third, first]
    assert gina["umamiSessions"][0]["websiteId"] == OTHER_WEBSITE


def test_known_session_ids_are_bounded_to_the_most_recent(run: Run, rows: UmamiRows, connections: Database) -> None:
    add_user(users(connections), "hal@example.com")
    ids = [rows.session(at(hour), distinct_id="hal@example.com") for hour in range(1, 6)]

    run(known_session_ids=3)

    assert [s["id"] for s in user(connections, "hal@example.com")["umamiSessions"]] == ids[:1:-1]


def test_deleted_users_are_never_touched_and_users_never_created(run: Run, rows: UmamiRows,
                                                                 connections: Database) -> None:
    add_user(users(connections), "ivy@example.com", isDeleted=True)
    rows.session(at(9), distinct_id="ivy@example.com")
    rows.session(at(9), distinct_id="nobody@example.com")
    before = list(users(connections).find())

    result = run()

    assert (result.identities, result.matched_identities, result.unmatched_identities) == (2, 0, 2)
    assert list(users(connections).find()) == before


def test_rerun_is_idempotent_and_leaves_other_fields_alone(run: Run, rows: UmamiRows, connections: Database) -> None:
    add_user(users(connections), "jo@example.com", profile={"theme": "dark"}, tags=["a"])
    rows.session(at(9), distinct_id="jo@example.com")
    rows.session(at(10), distinct_id="jo@example.com")

    first = run()
    after_first = user(connections, "jo@example.com")
    second = run(now=LATER_RUN_AT)

    assert (first.modified, second.matched_identities, second.changes, second.modified) == (1, 1, 0, 0)
    assert user(connections, "jo@example.com") == after_first
    assert after_first["updatedAt"] == RUN_AT.replace(tzinfo=None)
    assert {k: after_first[k] for k in ("profile", "tags", "plan", "name", "createdAt", "isDeleted")} == {
        "profile": {"theme": "dark"}, "tags": ["a"], "plan": "free", "name": "Jo",
        "createdAt": datetime(2026, 1, 1), "isDeleted": False}


def test_older_backfill_never_replaces_a_newer_session_id(run: Run, rows: UmamiRows, connections: Database) -> None:
    add_user(users(connections), "kim@example.com")
    newer = rows.session(at(9, day=27), distinct_id="kim@example.com")
    older = rows.session(at(9, day=20), distinct_id="kim@example.com")

    run()
    backfill = run(interval=DataInterval(at(0, day=20), at(0, day=21)), now=LATER_RUN_AT)

    kim = user(connections, "kim@example.com")
    assert backfill.modified == 1
    assert kim["session_id"] == newer
    assert [s["id"] for s in kim["umamiSessions"]] == [newer, older]


def test_a_session_id_written_by_the_original_tool_stays_known(run: Run, rows: UmamiRows,
                                                               connections: Database) -> None:
    legacy = "0b7a0c8e-0000-4000-8000-000000000001"
    add_user(users(connections), "lee@example.com", session_id=legacy)
    new = rows.session(at(9), distinct_id="lee@example.com")

    run()

    lee = user(connections, "lee@example.com")
    assert lee["session_id"] == new
    assert [s["id"] for s in lee["umamiSessions"]] == [new, legacy]


def test_window_is_the_interval_widened_by_the_overlap(run: Run, rows: UmamiRows, connections: Database) -> None:
    add_user(users(connections), "max@example.com")
    add_user(users(connections), "ned@example.com")
    add_user(users(connections), "oz@example.com")
    late = rows.session(at(23, 30, day=26), distinct_id="max@example.com")  # 30 min before the interval
    rows.session(at(21, 0, day=26), distinct_id="ned@example.com")  # before the overlap
    rows.session(at(0, 0, day=28), distinct_id="oz@example.com")  # the interval's end is excluded

    result = run(session_overlap_minutes=60)

    assert (result.identities, result.window_start) == (1, at(23, day=26))
    assert user(connections, "max@example.com")["session_id"] == late
    assert "session_id" not in user(connections, "ned@example.com")
    assert "session_id" not in user(connections, "oz@example.com")


def test_session_data_identity_is_taken_in_its_own_time(run: Run, rows: UmamiRows, connections: Database) -> None:
    """An e-mail attached today to a session created yesterday is found by today's run."""
    add_user(users(connections), "pia@example.com")
    old_session = rows.session(at(9, day=25))
    rows.session_data(old_session, at(9), value="pia@example.com")

    run(session_overlap_minutes=0)

    assert user(connections, "pia@example.com")["session_id"] == old_session


def test_match_field_and_identity_key_are_configurable(run: Run, rows: UmamiRows, connections: Database) -> None:
    add_user(users(connections), "quinn@example.com", userId="U-1001")
    session = rows.session(at(9))
    rows.session_data(session, at(9, 1), key="userId", value="u-1001")

    result = run(user_match_field="userId", identity_data_key="userId")

    assert (result.identities, result.modified) == (1, 1)
    assert user(connections, "quinn@example.com")["session_id"] == session


def test_a_failed_batch_is_reported_and_the_others_go_on(run: Run, rows: UmamiRows, connections: Database,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for email in ("amy@example.com", "bad@example.com", "zed@example.com"):
        add_user(users(connections), email)
        rows.session(at(9), distinct_id=email)
    bad = user(connections, "bad@example.com")["_id"]
    real = Collection.bulk_write

    def refuse_bad(self: Collection[Any], requests: list[Any], **options: Any) -> Any:
        if any(request._filter["_id"] == bad for request in requests):  # e.g. a server that is shutting down
            raise BulkWriteError({"writeErrors": [{"index": 0, "code": 11600, "errmsg": "interrupted at "
                                                   "shutdown"}], "nModified": 0})
        return real(self, requests, **options)

    monkeypatch.setattr(Collection, "bulk_write", refuse_bad)

    result = run(batch_size=1)

    assert (result.bulk_writes, result.modified, result.failed) == (3, 2, 1)
    assert result.errors == ["bulk_write: 1 of 1 operations failed (first: 11600: interrupted at shutdown)"]
    assert not result.succeeded and result.worth_retrying
    assert "session_id" not in user(connections, "bad@example.com")
    assert "session_id" in user(connections, "zed@example.com")


def test_users_the_server_refuses_for_good_are_named_and_the_others_written(
        run: Run, rows: UmamiRows, connections: Database) -> None:
    """A validator the application installed (real, on the test server) refuses one user's change; so does a
    unique index of the application's, whose duplicate value is not repeated in the reason."""
    connections.create_collection("users", validator={"$jsonSchema": {"bsonType": "object", "properties": {
        "session_id": {"bsonType": "string", "pattern": "^[0-9a-f-]+$"}, "plan": {"enum": ["free", "pro"]}}}})
    users(connections).create_index("nick", unique=True, sparse=True)
    for email in ("amy@example.com", "val@example.com", "zed@example.com"):
        add_user(users(connections), email)
        rows.session(at(9), distinct_id=email)
    users(connections).update_one({"email": "val@example.com"}, {"$set": {"plan": "legacy"}},
                                  bypass_document_validation=True)  # invalid before we came: any change fails
    refused = user(connections, "val@example.com")["_id"]

    result = run(batch_size=2)

    assert (result.modified, result.failed, result.refused) == (2, 0, 1)
    assert result.refused_by_reason == {"121 DocumentValidationFailure": 1}
    assert [(u.user_id, u.code) for u in result.refused_users] == [(str(refused), 121)]
    assert "failed validation" in result.refused_users[0].reason
    assert not result.succeeded and not result.worth_retrying  # red, and no retry of the try for it
    failure = result.failure()
    assert failure is not None and str(refused) in failure and "a retry cannot change" in failure
    assert "session_id" not in user(connections, "val@example.com")
    assert all("session_id" in user(connections, e) for e in ("amy@example.com", "zed@example.com"))


def test_indexes_are_ensured_once(run: Run, rows: UmamiRows, connections: Database, mongo_collation: str) -> None:
    add_user(users(connections), "ray@example.com")
    run()
    names = {index["name"] for index in users(connections).list_indexes()}
    email = "umami_sync_email_ci" if mongo_collation == "on" else "umami_sync_email"
    assert {email, "umami_sync_session_id", "umami_sync_umamiSessions_id"} <= names
    email_index = next(i for i in users(connections).list_indexes() if i["name"] == email)
    assert (email_index.get("collation") or {}).get("strength") == (2 if mongo_collation == "on" else None)

    run()
    assert {index["name"] for index in users(connections).list_indexes()} == names


def test_dry_run_counts_matches_and_writes_nothing(run: Run, rows: UmamiRows, connections: Database) -> None:
    add_user(users(connections), "sam@example.com")
    rows.session(at(9), distinct_id="SAM@example.com")
    rows.session(at(9), distinct_id="nobody@example.com")
    before = list(users(connections).find())

    result = run(dry_run=True)

    assert (result.dry_run, result.identities, result.matched_identities, result.unmatched_identities) == (
        True, 2, 1, 1)
    assert result.changes == 1
    assert (result.modified, result.bulk_writes) == (0, 0)
    assert list(users(connections).find()) == before
    assert [i["name"] for i in users(connections).list_indexes()] == ["_id_"]


def test_every_user_whose_email_differs_only_in_case_gets_the_session(run: Run, rows: UmamiRows,
                                                                       connections: Database) -> None:
    add_user(users(connections), "Tess@Example.com")
    add_user(users(connections), "tess@example.com")
    session = rows.session(at(9), distinct_id="TESS@example.com")

    result = run()

    assert (result.identities, result.matched_identities, result.changes, result.modified) == (1, 1, 2, 2)
    assert {u["session_id"] for u in users(connections).find()} == {session}


def test_website_ids_limit_the_session_sync_too(run: Run, rows: UmamiRows, connections: Database) -> None:
    add_user(users(connections), "uma@example.com")
    add_user(users(connections), "vic@example.com")
    mine = rows.session(at(9), distinct_id="uma@example.com")
    rows.session(at(9), distinct_id="vic@example.com", website_id=OTHER_WEBSITE)

    result = run(website_ids=[WEBSITE])

    assert (result.identities, result.modified) == (1, 1)
    assert user(connections, "uma@example.com")["session_id"] == mine
    assert "session_id" not in user(connections, "vic@example.com")


def test_an_identity_sent_in_nfc_finds_a_user_stored_in_nfd(run: Run, rows: UmamiRows,
                                                            connections: Database) -> None:
    add_user(users(connections), "Zoe\u0308@Example.com")  # e + combining diaeresis, other letter case
    session = rows.session(at(9), distinct_id="zo\u00eb@example.com")  # one code point

    result = run()

    assert (result.matched_identities, result.modified) == (1, 1)
    assert user(connections, "Zoe\u0308@Example.com")["session_id"] == session


def test_a_rerun_sends_no_change_at_all(run: Run, rows: UmamiRows, connections: Database) -> None:
    for n in range(5):
        add_user(users(connections), f"w{n}@example.com")
        rows.session(at(9, n), distinct_id=f"W{n}@example.com")
    first = run()

    again = run(now=LATER_RUN_AT)

    assert (first.changes, first.modified) == (5, 5)
    assert (again.matched_identities, again.changes, again.bulk_writes, again.modified) == (5, 0, 0, 0)


def test_both_write_paths_end_in_the_same_documents_byte_for_byte(mongo_uri: str, umami_db: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import pymongo

    from tests.conftest import mongo_connection, postgres_connection

    rows = UmamiRows(umami_db)
    for n, email in enumerate(("ann@example.com", "Bea@Example.com", "cy@example.com", "Zoe\u0308@example.com")):
        rows.session(at(8 + n), distinct_id=email.swapcase())
        rows.session(at(14 + n), distinct_id=email, website_id=OTHER_WEBSITE)
    rows.close()
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", postgres_connection(umami_db))
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_uri)
    ends = []
    for mode in ("on", "off"):
        database = client[f"t_paths_{mode}"]
        client.drop_database(database.name)
        for n, email in enumerate(("ann@example.com", "Bea@Example.com", "cy@example.com",
                                   "Zoe\u0308@example.com", "other@example.com")):
            add_user(database["users"], email, _id=n, session_id="legacy" if n == 2 else None)
        monkeypatch.setenv("AIRFLOW_CONN_USERS_MONGO", mongo_connection(mongo_uri, database.name))
        sync_sessions(SyncSettings(mongo_collation=mode), DAY, now=RUN_AT)
        sync_sessions(SyncSettings(mongo_collation=mode), DAY, now=LATER_RUN_AT)
        ends.append(documents(database["users"]))
        client.drop_database(database.name)
    client.close()
    assert ends[0] == ends[1]
    assert len(ends[0]) == 5


# --- every place an Umami version keeps identities, each at its own time (checked against its rows) -------------

def seen(db: Database, email: str) -> dict[str, datetime]:
    """The sessions a user is known by, and when each was last identified."""
    return {entry["id"]: entry["seenAt"] for entry in user(db, email).get("umamiSessions", [])}


def links(dsn: str, session: str) -> list[tuple[str, datetime]]:
    """The people a session is linked to in Umami 3.3's ``session_link``, and when, as MongoDB keeps times."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute("select distinct_id, created_at from session_link where session_id = %s"
                             " order by created_at", (session,)).fetchall()
    return [(person, moment.astimezone(UTC).replace(tzinfo=None)) for person, moment in found]


YESTERDAY = DataInterval(at(0, day=26), at(0, day=27))


@pytest.mark.umami_levels("3.3")
def test_a_session_identified_on_the_day_after_it_began_is_synced_on_that_day(
        run: Run, rows: UmamiRows, connections: Database, umami_db: str) -> None:
    add_user(users(connections), "nia@example.com")
    session = rows.session(at(20, day=26))  # anonymous yesterday evening
    rows.event(session, at(20, day=26))
    yesterday = run(interval=YESTERDAY, session_overlap_minutes=0)
    rows.identify(session, "nia@example.com", at(9, 30))  # today, on the same session
    rows.event(session, at(9, 30))

    today = run(session_overlap_minutes=0, now=LATER_RUN_AT)

    assert (yesterday.identities, yesterday.anonymous_sessions, today.identities, today.modified) == (0, 1, 1, 1)
    assert links(umami_db, session) == [("nia@example.com", datetime(2026, 11, 27, 9, 30))]
    assert seen(connections, "nia@example.com") == {session: datetime(2026, 11, 27, 9, 30)}
    assert user(connections, "nia@example.com")["session_id"] == session


@pytest.mark.umami_levels("3.3")
def test_two_people_on_one_session_are_both_written(run: Run, rows: UmamiRows, connections: Database,
                                                    umami_db: str) -> None:
    """Issue #4512: behind one NAT and browser, the second identify overwrites ``session.distinct_id``;
    ``session_link`` keeps both people."""
    add_user(users(connections), "ola@example.com")
    add_user(users(connections), "pam@example.com")
    shared = rows.session(at(8))
    rows.identify(shared, "ola@example.com", at(9))
    rows.identify(shared, "pam@example.com", at(10))

    result = run()

    assert rows.conn.execute("select distinct_id from session where session_id = %s", (shared,)).fetchone() == (
        "pam@example.com",)
    assert links(umami_db, shared) == [("ola@example.com", datetime(2026, 11, 27, 9)),
                                       ("pam@example.com", datetime(2026, 11, 27, 10))]
    assert (result.identities, result.matched_identities, result.modified) == (2, 2, 2)
    assert seen(connections, "ola@example.com") == {shared: datetime(2026, 11, 27, 9)}
    assert seen(connections, "pam@example.com") == {shared: datetime(2026, 11, 27, 10)}


@pytest.mark.umami_levels("3.3")
def test_an_anonymous_session_that_is_claimed_is_written_at_the_claim(run: Run, rows: UmamiRows,
                                                                     connections: Database, umami_db: str) -> None:
    add_user(users(connections), "quy@example.com")
    add_user(users(connections), "ron@example.com")
    session = rows.session(at(8))
    rows.event(session, at(8))

    claimed = rows.claim(session, "quy@example.com", at(12))
    rows.identify(session, "quy@example.com", at(12))  # the identify that follows a claim changes nothing
    refused = rows.claim(session, "ron@example.com", at(13))  # held by someone else: not Ron's to claim

    result = run()

    assert (claimed, refused) == (True, False)
    assert links(umami_db, session) == [("quy@example.com", datetime(2026, 11, 27, 12))]
    assert (result.identities, result.modified, result.anonymous_sessions) == (1, 1, 0)
    assert seen(connections, "quy@example.com") == {session: datetime(2026, 11, 27, 12)}  # the claim, not 08:00
    assert "umamiSessions" not in user(connections, "ron@example.com")


@pytest.mark.umami_levels("3.3")
def test_a_session_claimed_by_a_link_alone_is_written_at_the_claim(run: Run, rows: UmamiRows,
                                                                   connections: Database, umami_db: str) -> None:
    """The claim of another 3.3 release writes the link only: ``session.distinct_id`` stays NULL, and the link
    is the only place the identity is."""
    add_user(users(connections), "sal@example.com")
    add_user(users(connections), "tom@example.com")
    session = rows.session(at(7))
    rows.event(session, at(7))

    claimed = rows.claim(session, "sal@example.com", at(11), link_only=True)
    refused = rows.claim(session, "tom@example.com", at(12), link_only=True)  # Sal's link is there first

    result = run()

    assert (claimed, refused) == (True, False)
    assert rows.conn.execute("select distinct_id from session where session_id = %s", (session,)).fetchone() == (
        None,)
    assert links(umami_db, session) == [("sal@example.com", datetime(2026, 11, 27, 11))]
    assert (result.identities, result.modified, result.anonymous_sessions) == (1, 1, 0)
    assert seen(connections, "sal@example.com") == {session: datetime(2026, 11, 27, 11)}
    assert "umamiSessions" not in user(connections, "tom@example.com")


@pytest.mark.umami_levels
def test_an_identity_upserted_twice_moves_session_id_to_its_session(run: Run, rows: UmamiRows,
                                                                     connections: Database) -> None:
    """Seen on a real 3.1.0 server over a sequence of runs: a returning visitor's older session is identified
    again on the next day; ``session_id`` moves to it (where ``umamiAnalytics`` goes too)."""
    add_user(users(connections), "sia@example.com")
    older = rows.session(at(10, day=26))
    rows.session_data(older, at(10, 5, day=26), value="sia@example.com")
    newer = rows.session(at(12, day=26))
    rows.session_data(newer, at(12, 5, day=26), value="sia@example.com")
    run(interval=YESTERDAY, session_overlap_minutes=0)
    assert user(connections, "sia@example.com")["session_id"] == newer

    rows.session_data(older, at(9), value="Sia@example.com")  # identify({email}) again, today

    today = run(session_overlap_minutes=0, now=LATER_RUN_AT)

    stored = rows.conn.execute("select count(*), max(created_at) from session_data where session_id = %s"
                               " and data_key = 'email'", (older,)).fetchone()
    assert stored == (1, at(9))  # one row per key, its time moved to the latest write
    assert (today.identities, today.modified) == (1, 1)
    assert user(connections, "sia@example.com")["session_id"] == older
    assert seen(connections, "sia@example.com") == {older: datetime(2026, 11, 27, 9),
                                                    newer: datetime(2026, 11, 26, 12, 5)}


def test_the_stage_runs_with_the_objects_alive_before_it_out_of_the_collectors_passes(
        run: Run, rows: UmamiRows, connections: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stage 1's rows set off the collector's full passes over everything imported: measured, a third of its CPU."""
    from umami_sync.users.store import UsersCollection

    frozen: list[int] = []
    look_up = UsersCollection.users_by_identity

    def counted(self: UsersCollection, identities: list[str]) -> dict[str, list[Any]]:
        frozen.append(gc.get_freeze_count())
        return look_up(self, identities)

    monkeypatch.setattr(UsersCollection, "users_by_identity", counted)
    add_user(users(connections), "gus@example.com")
    rows.session(at(9), distinct_id="gus@example.com")

    assert run().modified == 1
    assert frozen and min(frozen) > 10_000  # Airflow and the product as imported
    assert gc.get_freeze_count() == 0

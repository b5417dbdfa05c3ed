"""Stage 1 through Umami's API only (``identities_from: api``, or ``auto`` without a ``umami_db`` connection),
against the local API in Umami Cloud mode (``/v1``, ``x-umami-api-key``, a per-key rate limit) over a real
PostgreSQL with Umami's schema, and a real MongoDB wire server. Each case is also run through the database, and
the two leave the same users, but for what the README ("Umami Cloud") says differs."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from local_stack.umami_api import FakeUmami
from tests.conftest import postgres_connection
from tests.factories import OTHER_WEBSITE, WEBSITE, UmamiRows, add_user, at
from umami_sync.api_tasks import API_TASKS
from umami_sync.settings import SyncSettings
from umami_sync.windows import DataInterval
from umami_sync.wiring import sync_sessions

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from pymongo.database import Database

    from umami_sync.results import SessionSyncResult

pytestmark = pytest.mark.integration

DAY = DataInterval(at(0), at(0, day=28))
RUN_AT = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
API_KEY = "cloud-key-1"
ALICE = "8b046da9-3d41-5054-8060-170787f99fe0"
BOB = "23fbc8b7-769e-5606-8fca-3643d50f5683"


def cloud_connection(fake: FakeUmami) -> str:
    """Connection ``umami_api`` for the local API in Cloud mode: the ``/v1`` base and the API key."""
    return json.dumps({"conn_type": "http", "host": f"{fake.url}/v1", "extra": {"api_key": API_KEY}})


@pytest.fixture
def rows(connections: Database, umami_db: str, umami_level: str) -> Iterator[UmamiRows]:
    umami = UmamiRows(umami_db, umami_level)
    umami.website()
    umami.website(OTHER_WEBSITE, "Other Site")
    yield umami
    umami.close()


@pytest.fixture
def cloud(connections: Database, umami_db: str, umami_level: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUmami]:
    """The local API in Cloud mode (as connection ``umami_api``); ``umami_db`` stays configured, so each test says
    which way it reads."""
    with FakeUmami(umami_db, version=umami_level, api_key=API_KEY, rate_limit=10_000) as fake:
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", cloud_connection(fake))
        yield fake


def users_of(db: Database, collection: str) -> dict[str, dict[str, Any]]:
    """Every user of ``collection`` by e-mail, without ``_id``."""
    return {user["email"]: {k: v for k, v in user.items() if k != "_id"} for user in db[collection].find()}


def both_modes(db: Database, emails: list[str], **settings: Any) -> tuple[SessionSyncResult, SessionSyncResult]:
    """Stage 1 through the database (into ``users``), then through the API (into ``users_api``), each collection
    seeded with the same users (``isDeleted`` for those whose e-mail starts with ``deleted``)."""
    results = []
    for mode, collection in (("database", "users"), ("api", "users_api")):
        for email in emails:
            add_user(db[collection], email, isDeleted=email.startswith("deleted"))
        results.append(sync_sessions(SyncSettings(identities_from=mode, users_collection=collection, **settings),
                                     DAY, now=RUN_AT))
    return results[0], results[1]


def test_auto_reads_the_api_when_no_database_connection_is_configured(
        cloud: FakeUmami, connections: Database, umami_db: str, umami_fixtures: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows a real Umami 3.1.0 wrote. Alice: identify(id, data) then a page view; Bob: a page view, then
    identify({email}) without an id; Carol: identified, but without any event, which no route of the API shows."""
    import psycopg

    with psycopg.connect(umami_db) as conn:
        conn.execute((umami_fixtures / "rows.sql").read_text())
    monkeypatch.delenv("AIRFLOW_CONN_UMAMI_DB")
    for email in ("alice@example.com", "Bob@Example.com", "carol@example.com"):
        add_user(connections["users"], email)

    result = sync_sessions(SyncSettings(), DAY, now=RUN_AT)

    assert (result.mode, result.error, result.modified) == ("api", None, 2)
    assert (result.rows_read, result.identities, result.anonymous_sessions) == (3, 2, 1)
    alice = connections["users"].find_one({"email": "alice@example.com"})
    assert alice is not None and alice["session_id"] == ALICE
    # The identify that created her session wrote her data at the session's own time: exact, as in the database.
    assert alice["umamiSessions"] == [{"id": ALICE, "websiteId": WEBSITE,
                                       "seenAt": datetime(2026, 11, 27, 15, 46, 32, 409000)}]
    bob = connections["users"].find_one({"email": "Bob@Example.com"})
    assert bob is not None and bob["session_id"] == BOB
    carol = connections["users"].find_one({"email": "carol@example.com"})
    assert carol is not None and "session_id" not in carol
    assert {request.path.split("/")[1] for request in cloud.requests} == {"v1"}


@pytest.mark.umami_levels("2.20.2", "3.1.0")
def test_distinct_id_only_key_only_anonymous_and_deleted_users_as_through_the_database(
        cloud: FakeUmami, rows: UmamiRows, connections: Database) -> None:
    dina = rows.session(at(9), distinct_id="Dina@Example.com")  # identify(id) without data, then page views
    rows.event(dina, at(9, 5))
    rows.event(dina, at(9, 40))
    erin = rows.session(at(10))  # a page view, then identify({email}) without an id
    rows.event(erin, at(10))
    rows.session_data(erin, at(10, 2), value=" erin@example.com")
    anonymous = rows.session(at(11))
    rows.event(anonymous, at(11))
    gone = rows.session(at(12), distinct_id="deleted.gil@example.com")  # a deleted user's session
    rows.event(gone, at(12))
    hal = rows.session(at(13), distinct_id="hal@example.com", website_id=OTHER_WEBSITE)  # identify(id, data)
    rows.session_data(hal, at(13), value="hal@example.com", website_id=OTHER_WEBSITE, distinct_id="hal@example.com")
    rows.event(hal, at(13, 0) + timedelta(milliseconds=120), website_id=OTHER_WEBSITE)
    emails = ["dina@example.com", "erin@example.com", "deleted.gil@example.com", "hal@example.com",
              "ivy@example.com"]

    database, api = both_modes(connections, emails)

    assert (database.mode, api.mode, database.error, api.error) == ("database", "api", None, None)
    for figure in ("rows_read", "invalid_rows", "identities", "matched_identities", "unmatched_identities",
                   "anonymous_sessions", "changes", "modified"):
        assert getattr(api, figure) == getattr(database, figure), figure
    assert (api.matched_identities, api.unmatched_identities, api.anonymous_sessions) == (3, 1, 1)
    through_database, through_api = users_of(connections, "users"), users_of(connections, "users_api")
    # The one difference, by design: a distinct id counts at its session's first event or oldest session data;
    # Dina's session was created by an identify without data, 5 minutes before its first page view.
    assert through_database["dina@example.com"]["umamiSessions"][0]["seenAt"] == at(9).replace(tzinfo=None)
    assert through_api["dina@example.com"]["umamiSessions"][0]["seenAt"] == at(9, 5).replace(tzinfo=None)
    through_api["dina@example.com"]["umamiSessions"][0]["seenAt"] = at(9).replace(tzinfo=None)
    assert through_api == through_database
    assert through_api["dina@example.com"]["session_id"] == dina
    assert through_api["erin@example.com"]["session_id"] == erin
    assert through_api["hal@example.com"]["umamiSessions"] == [{"id": hal, "websiteId": OTHER_WEBSITE,
                                                               "seenAt": at(13).replace(tzinfo=None)}]
    assert "session_id" not in through_api["deleted.gil@example.com"]
    assert "session_id" not in through_api["ivy@example.com"]


def test_requests_per_identified_session_and_per_page(cloud: FakeUmami, rows: UmamiRows,
                                                      connections: Database) -> None:
    """Three sessions with a distinct id, one with the e-mail only, three anonymous; pages of 2 rows. The e-mail-only
    session is the third of the whole list without a distinct id, so the anonymous session after it is never read."""
    for hour in (9, 10, 11):
        session = rows.session(at(hour), distinct_id=f"d{hour}@example.com")
        rows.session_data(session, at(hour), value=f"d{hour}@example.com", distinct_id=f"d{hour}@example.com")
        rows.event(session, at(hour, 1))
    for hour in (19, 18, 8):
        rows.event(rows.session(at(hour)), at(hour))
    keyed = rows.session(at(17))
    rows.event(keyed, at(17))
    rows.session_data(keyed, at(17, 1), value="k@example.com")
    for email in ("d9@example.com", "d10@example.com", "d11@example.com", "k@example.com"):
        add_user(connections["users"], email)

    result = sync_sessions(SyncSettings(identities_from="api", website_ids=[WEBSITE], page_size=2), DAY, now=RUN_AT)

    assert (result.error, result.modified, result.anonymous_sessions) == (None, 4, 3)
    routes = Counter(("/".join(part if part in {"sessions", "properties", "stats", "session-data"} else "*"
                               for part in request.path.split("/")[4:]), "distinctId" in request.query)
                     for request in cloud.requests)
    assert routes == {
        ("session-data/properties", False): 1,  # which keys the window's sessions have: 3 + 1 with e-mail
        ("sessions", True): 2,  # sessions with a distinct id: 3 rows, pages of 2
        ("sessions/*", False): 3,  # their details
        ("sessions/*/properties", False): 3 + 3,  # theirs, then the list's others until the e-mail one is found
        ("sessions", False): 2,  # the whole list as far as the e-mail session (the fourth row): 2 pages
        ("sessions/stats", False): 1,  # the window's sessions, for the anonymous count
    }
    assert all(request.status == 200 for request in cloud.requests)


def test_the_rate_limit_holds_and_429s_are_waited_out(cloud: FakeUmami, rows: UmamiRows,
                                                      connections: Database) -> None:
    cloud.rate_limit, cloud.rate_window_seconds = 3, 0.5  # one more than the task's share: timing jitter
    for n in range(3):
        session = rows.session(at(9, n), distinct_id=f"r{n}@example.com")
        rows.event(session, at(9, n))
        add_user(connections["users"], f"r{n}@example.com")
    settings = SyncSettings(identities_from="api", website_ids=[WEBSITE], rate_limit_calls=2 * API_TASKS,
                            rate_limit_period_seconds=0.5)  # the task's share: 2 per period

    within = sync_sessions(settings, DAY, now=RUN_AT)
    assert [request.status for request in cloud.requests] == [200] * 6  # keys, 1 list page, 3 details, stats
    cloud.reset()
    cloud.faults.throttle_next, cloud.faults.retry_after_seconds = 2, 1
    throttled = sync_sessions(settings.model_copy(update={"users_collection": "again"}), DAY, now=RUN_AT)

    assert (within.error, within.modified) == (None, 3)
    assert (throttled.error, throttled.identities) == (None, 3)
    assert [request.status for request in cloud.requests].count(429) == 2


def test_a_list_that_cannot_be_read_whole_fails_and_writes_nothing(cloud: FakeUmami, rows: UmamiRows,
                                                                   connections: Database) -> None:
    for n in range(2):
        session = rows.session(at(9, n), distinct_id=f"s{n}@example.com")
        rows.event(session, at(9, n))
        add_user(connections["users"], f"s{n}@example.com")
    cloud.faults.hidden_ids = {session}  # counted, never served

    result = sync_sessions(SyncSettings(identities_from="api", website_ids=[WEBSITE]), DAY, now=RUN_AT)

    assert result.error is not None and "1 of 2 rows" in result.error and "distinct id" in result.error
    assert (result.mode, result.modified, result.succeeded) == ("api", 0, False)


def test_database_mode_needs_its_connection_and_api_mode_never_reads_it(
        cloud: FakeUmami, rows: UmamiRows, connections: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    session = rows.session(at(9), distinct_id="uma@example.com")
    rows.event(session, at(9))
    add_user(connections["users"], "uma@example.com")
    monkeypatch.delenv("AIRFLOW_CONN_UMAMI_DB")

    database = sync_sessions(SyncSettings(identities_from="database"), DAY, now=RUN_AT)
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", postgres_connection("postgresql://nobody:x@127.0.0.1:9/none"))
    api = sync_sessions(SyncSettings(identities_from="api"), DAY, now=RUN_AT)

    assert database.error is not None and "umami_db" in database.error and database.modified == 0
    assert (api.mode, api.error, api.modified) == ("api", None, 1)


@pytest.mark.umami_levels("3.3")
def test_umami_3_3_links_are_not_seen_the_last_identity_counts_at_the_sessions_time(
        cloud: FakeUmami, rows: UmamiRows, connections: Database) -> None:
    """A session that began anonymous, was identified as Ann at 10:00, then shared with Ben at 11:00 (#4512): the
    database writes both, each at its link's time; the API shows only the last identity, at the session's first
    event (README, "Umami Cloud")."""
    shared = rows.session(at(9))
    rows.event(shared, at(9))
    rows.identify(shared, "ann@example.com", at(10))
    rows.identify(shared, "ben@example.com", at(11))
    rows.event(shared, at(11, 30))

    database, api = both_modes(connections, ["ann@example.com", "ben@example.com"])

    through_database, through_api = users_of(connections, "users"), users_of(connections, "users_api")
    assert (database.matched_identities, api.matched_identities) == (2, 1)
    assert [entry["seenAt"] for entry in through_database["ann@example.com"]["umamiSessions"]] == [
        at(10).replace(tzinfo=None)]
    assert [entry["seenAt"] for entry in through_database["ben@example.com"]["umamiSessions"]] == [
        at(11).replace(tzinfo=None)]
    assert "umamiSessions" not in through_api["ann@example.com"]
    assert through_api["ben@example.com"]["umamiSessions"] == [{"id": shared, "websiteId": WEBSITE,
                                                               "seenAt": at(9).replace(tzinfo=None)}]

"""FakeUmami over real HTTP: its bodies equal a real Umami 3.1.0's for the same rows, and it behaves like one.

The contract tests load the rows a real 3.1.0 server wrote (``rows.sql``) and compare FakeUmami's answers
with that server's recorded answers (``api_*.json``), whole bodies. The behaviour tests cover the range,
paging, auth and the injected faults the sync must survive.
"""

from __future__ import annotations

import json
import ssl
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import requests
import trustme

from local_stack.postgres import run_sql_file
from local_stack.umami_api import FakeUmami, RequestRecord
from tests.factories import UmamiRows, at

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

WEBSITE = "266abb41-957e-4dd3-8229-6a601f80a9db"
ALICE = "8b046da9-3d41-5054-8060-170787f99fe0"  # identified, with session_data
BERLIN = "23fbc8b7-769e-5606-8fca-3643d50f5683"  # a page view then a custom event
FIRST = "178c4898-da39-5b0e-a3ca-e86167683dfe"  # the earliest page view
HOUR_START = datetime(2026, 11, 27, 15, tzinfo=UTC)
SESSIONS = f"/api/websites/{WEBSITE}/sessions"
CREDENTIALS = {"username": "admin", "password": "umami"}


def epoch_ms(moment: datetime) -> int:
    """Umami's startAt/endAt for ``moment``."""
    return int(moment.timestamp() * 1000)


def event_time(dsn: str, session_id: str, event_type: int) -> datetime:
    """When the (single) event of that type of that session happened, as stored."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select created_at from website_event where session_id = %s and event_type = %s",
                           (session_id, event_type)).fetchone()
    assert row is not None
    moment: datetime = row[0]
    return moment


def hour_range(**extra: Any) -> dict[str, Any]:
    """2026-11-27 15:00-16:00 UTC, when the fixture traffic happened."""
    return {"startAt": epoch_ms(HOUR_START), "endAt": epoch_ms(HOUR_START + timedelta(hours=1)), **extra}


def fixture_body(folder: Path, name: str) -> Any:
    return json.loads((folder / name).read_text())


# --- contract: bodies equal the real server's -----------------------------------------------------

def test_login_answers_like_the_real_server(fake_umami: FakeUmami, umami_fixtures: Path) -> None:
    recorded = fixture_body(umami_fixtures, "login.json")
    reply = requests.post(f"{fake_umami.url}/api/auth/login", json=CREDENTIALS,
                          timeout=10)
    assert reply.status_code == 200
    body = reply.json()
    assert body.keys() == recorded.keys()
    assert body["user"] == recorded["user"]
    assert len(body["token"]) >= 300
    assert body["token"] != recorded["token"]


def test_websites_equal_the_recorded_body(umami_http: requests.Session, fake_umami: FakeUmami,
                                          umami_fixtures: Path) -> None:
    reply = umami_http.get(f"{fake_umami.url}/api/websites", params={"pageSize": 10}, timeout=10)
    assert reply.status_code == 200
    assert reply.json() == fixture_body(umami_fixtures, "api_websites.json")


@pytest.mark.parametrize(("page", "recorded"), [(1, "api_sessions_p1.json"), (2, "api_sessions_p2.json")])
def test_session_pages_equal_the_recorded_bodies(umami_http: requests.Session, fake_umami: FakeUmami,
                                                 umami_fixtures: Path, page: int, recorded: str) -> None:
    reply = umami_http.get(fake_umami.url + SESSIONS, params=hour_range(page=page, pageSize=2), timeout=10)
    assert reply.status_code == 200
    assert reply.json() == fixture_body(umami_fixtures, recorded)


def test_session_detail_equals_the_recorded_body(umami_http: requests.Session, fake_umami: FakeUmami,
                                                 umami_fixtures: Path) -> None:
    reply = umami_http.get(f"{fake_umami.url}{SESSIONS}/{ALICE}", timeout=10)
    assert reply.status_code == 200
    assert reply.json() == fixture_body(umami_fixtures, "api_session_detail.json")


def test_session_properties_equal_the_recorded_body(umami_http: requests.Session, fake_umami: FakeUmami,
                                                    umami_fixtures: Path) -> None:
    reply = umami_http.get(f"{fake_umami.url}{SESSIONS}/{ALICE}/properties", timeout=10)
    assert reply.status_code == 200
    assert reply.json() == fixture_body(umami_fixtures, "api_session_properties.json")


def test_session_activity_equals_the_recorded_body(umami_http: requests.Session, fake_umami: FakeUmami,
                                                   umami_fixtures: Path) -> None:
    reply = umami_http.get(f"{fake_umami.url}{SESSIONS}/{ALICE}/activity", params=hour_range(), timeout=10)
    assert reply.status_code == 200
    assert reply.json() == fixture_body(umami_fixtures, "api_session_activity.json")


def test_website_by_id_and_unknown_ids(umami_http: requests.Session, fake_umami: FakeUmami,
                                       umami_fixtures: Path) -> None:
    listed = fixture_body(umami_fixtures, "api_websites.json")["data"][0]
    reply = umami_http.get(f"{fake_umami.url}/api/websites/{WEBSITE}", timeout=10)
    assert reply.status_code == 200
    assert reply.json() == {key: value for key, value in listed.items() if key != "user"}
    unknown = umami_http.get(f"{fake_umami.url}/api/websites/{uuid.uuid4()}", timeout=10)
    assert (unknown.status_code, unknown.json()) == (200, None)  # an admin may ask; getWebsite finds nothing


# --- contract: the listing captures (rows per hostname, unstable offset paging under ties) --------

LISTING_WEBSITE = "73683464-8e85-469a-b6b2-39b566028ce9"
TWO_HOSTNAMES = "382d62a3-22a9-5e7e-a654-b0a3ef7e83d2"


@pytest.fixture
def listing(umami_db: str, umami_fixtures: Path) -> Iterator[tuple[FakeUmami, requests.Session, dict[str, Any]]]:
    """FakeUmami over the rows behind the ``listing_*`` captures, a logged-in session, and the day's range."""
    run_sql_file(umami_db, umami_fixtures / "listing_rows.sql")
    summary = fixture_body(umami_fixtures, "listing_summary.json")
    with FakeUmami(umami_db) as fake, requests.Session() as http:
        token = http.post(f"{fake.url}/api/auth/login", json=CREDENTIALS, timeout=10).json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        yield fake, http, {"startAt": summary["startAt"], "endAt": summary["endAt"]}


def listing_page(listing: tuple[FakeUmami, requests.Session, dict[str, Any]], **params: Any) -> Any:
    fake, http, day = listing
    reply = http.get(f"{fake.url}/api/websites/{LISTING_WEBSITE}/sessions", params={**day, **params}, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_a_session_on_two_hostnames_is_two_rows_as_on_the_real_server(
        listing: tuple[FakeUmami, requests.Session, dict[str, Any]], umami_fixtures: Path) -> None:
    body = listing_page(listing, page=1, pageSize=1000)
    assert body == fixture_body(umami_fixtures, "listing_whole_day.json")
    rows = [row for row in body["data"] if row["id"] == TWO_HOSTNAMES]
    assert [(row["hostname"], row["views"], row["visits"]) for row in rows] == [
        ("b.fixture.test", 3, 3), ("a.fixture.test", 2, 1)]
    assert body["count"] == len(body["data"]) == 62  # count counts rows, not sessions


def test_offset_paging_under_ties_repeats_and_loses_the_very_rows_the_real_server_did(
        listing: tuple[FakeUmami, requests.Session, dict[str, Any]], umami_fixtures: Path) -> None:
    recorded = fixture_body(umami_fixtures, "listing_paged_7.json")
    served = [listing_page(listing, page=page, pageSize=7) for page in range(1, len(recorded) + 1)]
    assert served == recorded  # every body, so the same rows repeat and the same rows go missing
    keys = [(row["id"], row["hostname"]) for body in served for row in body["data"]]
    summary = fixture_body(umami_fixtures, "listing_summary.json")
    assert (len(keys), len(set(keys))) == (summary["rows_paged_7"], summary["distinct_rows_paged_7"])
    again = [listing_page(listing, page=page, pageSize=7) for page in range(1, len(recorded) + 1)]
    assert again == served  # the same requests give the same pages: re-reading a page does not help


def test_activity_lists_every_event_of_the_range_newest_first(
        listing: tuple[FakeUmami, requests.Session, dict[str, Any]], umami_fixtures: Path) -> None:
    fake, http, day = listing
    reply = http.get(f"{fake.url}/api/websites/{LISTING_WEBSITE}/sessions/{TWO_HOSTNAMES}/activity", params=day,
                     timeout=10)
    assert reply.status_code == 200
    assert reply.json() == fixture_body(umami_fixtures, "listing_activity_two_hostnames.json")


def test_activity_stops_at_500_events_and_needs_its_range(umami_http: requests.Session, fake_umami: FakeUmami,
                                                          umami_rows_db: str) -> None:
    with psycopg.connect(umami_rows_db, autocommit=True) as conn:
        for n in range(620):
            conn.execute(
                "INSERT INTO website_event (event_id, website_id, session_id, visit_id, created_at, url_path,"
                " event_type, hostname) VALUES (%s, %s, %s, %s, %s, '/', 1, 'probe.example.com')",
                (str(uuid.uuid4()), WEBSITE, ALICE, str(uuid.uuid4()), HOUR_START + timedelta(seconds=n)))
    url = f"{fake_umami.url}{SESSIONS}/{ALICE}/activity"
    events = umami_http.get(url, params=hour_range(), timeout=10).json()
    times = [event["createdAt"] for event in events]
    assert len(events) == 500
    assert times == sorted(times, reverse=True)
    assert times[0] == "2026-11-27T15:46:32.531Z"  # the newest: the fixture's own page view
    missing = umami_http.get(url, params={"startAt": epoch_ms(HOUR_START)}, timeout=10)
    assert missing.status_code == 400
    assert missing.json()["error"]["properties"]["endAt"]["errors"] == ["Invalid input: expected number, received NaN"]


# --- the session list -----------------------------------------------------------------------------

def session_page(http: requests.Session, fake: FakeUmami, **params: Any) -> dict[str, Any]:
    """A 200 session-list body of the fixture website."""
    reply = http.get(fake.url + SESSIONS, params=params, timeout=10)
    assert reply.status_code == 200, reply.text
    page: dict[str, Any] = reply.json()
    return page


def session_ids(http: requests.Session, fake: FakeUmami, **params: Any) -> list[str]:
    return [row["id"] for row in session_page(http, fake, **params)["data"]]


def test_the_range_is_inclusive_at_both_ends(umami_http: requests.Session, fake_umami: FakeUmami,
                                             umami_rows_db: str) -> None:
    first = epoch_ms(event_time(umami_rows_db, FIRST, 1))
    custom_event = epoch_ms(event_time(umami_rows_db, BERLIN, 2))
    assert session_ids(umami_http, fake_umami, startAt=first, endAt=first) == [FIRST]
    assert session_ids(umami_http, fake_umami, startAt=first + 1, endAt=first + 10) == []

    reply = umami_http.get(fake_umami.url + SESSIONS, params={"startAt": first, "endAt": custom_event - 1},
                           timeout=10)
    berlin = next(row for row in reply.json()["data"] if row["id"] == BERLIN)
    assert (berlin["events"], berlin["lastAt"]) == (0, berlin["firstAt"])
    reply = umami_http.get(fake_umami.url + SESSIONS, params={"startAt": first, "endAt": custom_event},
                           timeout=10)
    berlin = next(row for row in reply.json()["data"] if row["id"] == BERLIN)
    assert berlin["events"] == 1
    assert berlin["lastAt"] == berlin["createdAt"] != berlin["firstAt"]


def test_every_event_type_counts_in_the_list_as_in_umami_3_1(umami_http: requests.Session, fake_umami: FakeUmami,
                                                               umami_rows_db: str) -> None:
    """getWebsiteSessions has no event-type filter: a performance event (type 5) alone lists the session."""
    when = HOUR_START + timedelta(minutes=59)
    with psycopg.connect(umami_rows_db, autocommit=True) as conn:
        conn.execute("INSERT INTO website_event (event_id, website_id, session_id, visit_id, created_at, url_path,"
                     " event_type, hostname) VALUES (%s, %s, %s, %s, %s, '/', 5, 'probe.example.com')",
                     (str(uuid.uuid4()), WEBSITE, FIRST, str(uuid.uuid4()), when))
    page = session_page(umami_http, fake_umami, startAt=epoch_ms(when), endAt=epoch_ms(when))
    assert [(row["id"], row["views"], row["events"], row["visits"]) for row in page["data"]] == [(FIRST, 0, 0, 1)]


def test_seconds_instead_of_milliseconds_give_an_empty_page(umami_http: requests.Session,
                                                            fake_umami: FakeUmami) -> None:
    seconds = {key: value // 1000 for key, value in hour_range().items()}
    reply = umami_http.get(fake_umami.url + SESSIONS, params=seconds, timeout=10)
    assert reply.status_code == 200
    assert reply.json() == {"data": [], "count": 0, "page": 1, "pageSize": 20}


def test_paging_defaults_and_no_maximum(umami_http: requests.Session, fake_umami: FakeUmami) -> None:
    default = umami_http.get(fake_umami.url + SESSIONS, params=hour_range(), timeout=10).json()
    assert (default["page"], default["pageSize"], default["count"], len(default["data"])) == (1, 20, 3, 3)
    huge = umami_http.get(fake_umami.url + SESSIONS, params=hour_range(pageSize=100_000), timeout=10).json()
    assert huge["pageSize"] == 100_000
    assert huge["data"] == default["data"]
    beyond = session_page(umami_http, fake_umami, **hour_range(page=3, pageSize=2))
    assert (beyond["data"], beyond["count"]) == ([], 3)


def test_search_matches_distinct_id_and_city(umami_http: requests.Session, fake_umami: FakeUmami) -> None:
    assert session_ids(umami_http, fake_umami, **hour_range(search="alice@")) == [ALICE]
    assert session_ids(umami_http, fake_umami, **hour_range(search="BERLIN")) == [BERLIN]


def test_reset_at_moves_the_start_of_the_range(umami_http: requests.Session, fake_umami: FakeUmami,
                                               umami_rows_db: str) -> None:
    with psycopg.connect(umami_rows_db) as conn:
        conn.execute("update website set reset_at = %s", (event_time(umami_rows_db, ALICE, 1),))
    assert session_ids(umami_http, fake_umami, **hour_range()) == [BERLIN, ALICE]


@pytest.mark.parametrize(("params", "problem"), [
    ({}, {"errors": ["Either startAt+endAt or startDate+endDate must be provided"]}),
    ({"startAt": 1}, {"errors": ["Either startAt+endAt or startDate+endDate must be provided"]}),
    (hour_range(pageSize=0), {"errors": [], "properties": {"pageSize": {"errors": [
        "Too small: expected number to be >0"]}}}),
    (hour_range(page=0), {"errors": [], "properties": {"page": {"errors": [
        "Too small: expected number to be >0"]}}}),
    (hour_range(startAt="soon"), {"errors": [], "properties": {"startAt": {"errors": [
        "Invalid input: expected number, received NaN"]}}}),
])
def test_invalid_queries_get_umamis_400(fake_umami: FakeUmami, params: dict[str, Any],
                                        problem: dict[str, Any]) -> None:
    """Validation runs before authentication in Umami, so no token is needed to get the 400."""
    reply = requests.get(fake_umami.url + SESSIONS, params=params, timeout=10)
    assert reply.status_code == 400
    assert reply.json() == {"error": {"message": "Bad request", "code": "bad-request", "status": 400,
                                      **problem}}


# --- authentication -------------------------------------------------------------------------------

UNAUTHORIZED = {"error": {"message": "Unauthorized", "code": "unauthorized", "status": 401}}


@pytest.mark.parametrize(("method", "path", "params"), [
    ("POST", "/api/auth/verify", {}),
    ("GET", "/api/websites", {}),
    ("GET", SESSIONS, hour_range()),
    ("GET", f"{SESSIONS}/{ALICE}", {}),
    ("GET", f"{SESSIONS}/{ALICE}/properties", {}),
])
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "not-even-bearer"])
def test_every_route_needs_a_token_from_login(fake_umami: FakeUmami, method: str, path: str,
                                              params: dict[str, Any], authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    reply = requests.request(method, fake_umami.url + path, params=params, headers=headers, timeout=10)
    assert (reply.status_code, reply.json()) == (401, UNAUTHORIZED)


def test_wrong_credentials_and_a_missing_body(fake_umami: FakeUmami) -> None:
    wrong = requests.post(f"{fake_umami.url}/api/auth/login", json={"username": "admin", "password": "nope"},
                          timeout=10)
    assert (wrong.status_code, wrong.json()) == (401, {"error": {
        "message": "Unauthorized", "code": "incorrect-username-password", "status": 401}})
    missing = requests.post(f"{fake_umami.url}/api/auth/login", timeout=10)
    assert missing.status_code == 400
    assert missing.json()["error"]["errors"] == ["Invalid input: expected object, received undefined"]


def test_verify_returns_the_user_of_the_token(umami_http: requests.Session, fake_umami: FakeUmami,
                                              umami_fixtures: Path) -> None:
    reply = umami_http.post(f"{fake_umami.url}/api/auth/verify", timeout=10)
    assert reply.json() == fixture_body(umami_fixtures, "login.json")["user"]


def test_revoked_tokens_fail_until_the_next_login(umami_http: requests.Session,
                                                   fake_umami: FakeUmami) -> None:
    assert umami_http.get(f"{fake_umami.url}/api/websites", timeout=10).status_code == 200
    fake_umami.revoke_tokens()
    assert umami_http.get(f"{fake_umami.url}/api/websites", timeout=10).status_code == 401
    login = umami_http.post(f"{fake_umami.url}/api/auth/login", json=CREDENTIALS, timeout=10)
    umami_http.headers["Authorization"] = f"Bearer {login.json()['token']}"
    assert umami_http.get(f"{fake_umami.url}/api/websites", timeout=10).status_code == 200


# --- Umami 3.4's authentication: self-hosted API keys, CLOUD_MODE, two-factor accounts -----------------------------

KEY = "umami_" + "k" * 32  # a self-hosted key's shape: umami_ and 32 characters


def keyed_get(fake: FakeUmami, path: str, key: str, **params: Any) -> int:
    """The status of a GET of ``path`` with ``key`` as the bearer."""
    return requests.get(fake.url + path, params=params, headers={"Authorization": f"Bearer {key}"},
                        timeout=10).status_code


def test_a_self_hosted_key_reads_websites_and_sessions_but_never_auth_or_users(umami_rows_db: str) -> None:
    with FakeUmami(umami_rows_db, api_keys={KEY}) as fake:
        user_websites = f"/api/users/{fake.user_id}/websites"
        assert [keyed_get(fake, path, KEY, **params) for path, params in [
            ("/api/websites", {}), (f"/api/websites/{WEBSITE}", {}), (SESSIONS, hour_range()),
            (f"{SESSIONS}/{ALICE}/activity", hour_range()),
        ]] == [200, 200, 200, 200]
        verify = requests.post(f"{fake.url}/api/auth/verify", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        assert (verify.status_code, verify.json()) == (401, UNAUTHORIZED)
        assert keyed_get(fake, user_websites, KEY) == 401
        assert keyed_get(fake, "/api/websites", "umami_" + "x" * 32) == 401  # a key the server does not have
        token = requests.post(f"{fake.url}/api/auth/login", json=CREDENTIALS, timeout=10).json()["token"]
        assert keyed_get(fake, user_websites, token) == 200  # the route is there: a login token reads it
        assert keyed_get(fake, f"/api/users/{uuid.uuid4()}/websites", token) == 401


def test_keys_are_off_in_cloud_mode_while_logins_work(umami_rows_db: str) -> None:
    with FakeUmami(umami_rows_db, api_keys={KEY}, cloud_mode=True) as fake:
        assert keyed_get(fake, "/api/websites", KEY) == 401
        token = requests.post(f"{fake.url}/api/auth/login", json=CREDENTIALS, timeout=10).json()["token"]
        assert keyed_get(fake, "/api/websites", token) == 200
    with FakeUmami(umami_rows_db, api_key="cloud-key") as cloud:  # Umami Cloud runs in CLOUD_MODE too
        assert keyed_get(cloud, "/v1/websites", KEY) == 401


def test_a_two_factor_account_gets_a_partial_token_that_no_route_takes(umami_rows_db: str) -> None:
    with FakeUmami(umami_rows_db, two_factor=True) as fake:
        login = requests.post(f"{fake.url}/api/auth/login", json=CREDENTIALS, timeout=10)
        body = login.json()
        assert (login.status_code, sorted(body)) == (200, ["partialToken", "requiresTwoFactor"])
        assert body["requiresTwoFactor"] is True
        assert keyed_get(fake, "/api/websites", body["partialToken"]) == 401
        wrong = requests.post(f"{fake.url}/api/auth/login", json={**CREDENTIALS, "password": "nope"}, timeout=10)
        assert wrong.status_code == 401  # the password is checked first


def test_an_admin_reads_any_website_id_another_role_only_its_own(umami_rows_db: str,
                                                                  umami_http: requests.Session,
                                                                  fake_umami: FakeUmami) -> None:
    unknown = f"/api/websites/{uuid.uuid4()}/sessions"
    empty = umami_http.get(fake_umami.url + unknown, params=hour_range(), timeout=10)
    assert (empty.status_code, empty.json()["data"], empty.json()["count"]) == (200, [], 0)
    assert umami_http.get(f"{fake_umami.url}{SESSIONS}/{uuid.uuid4()}", timeout=10).json() == {}
    assert umami_http.get(f"{fake_umami.url}/api/websites/not-a-uuid/sessions", params=hour_range(),
                          timeout=10).status_code == 500

    with FakeUmami(umami_rows_db, role="user") as member, requests.Session() as http:
        login = http.post(f"{member.url}/api/auth/login", json=CREDENTIALS,
                          timeout=10)
        assert login.json()["user"]["isAdmin"] is False
        http.headers["Authorization"] = f"Bearer {login.json()['token']}"
        assert http.get(member.url + unknown, params=hour_range(), timeout=10).status_code == 401
        assert http.get(member.url + SESSIONS, params=hour_range(), timeout=10).json()["count"] == 3


# --- websites -------------------------------------------------------------------------------------

def add_website(dsn: str, name: str, *, user_id: str | None, team_id: str | None = None,
                deleted: bool = False) -> str:
    website_id = str(uuid.uuid4())
    with psycopg.connect(dsn) as conn:
        conn.execute("insert into website (website_id, name, user_id, team_id, deleted_at) "
                     "values (%s, %s, %s, %s, case when %s then now() end)",
                     (website_id, name, user_id, team_id, deleted))
    return website_id


def test_websites_lists_owned_live_websites_and_team_ones_on_request(umami_rows_db: str,
                                                                     umami_http: requests.Session,
                                                                     fake_umami: FakeUmami) -> None:
    rows = UmamiRows(umami_rows_db)
    team = add_website(umami_rows_db, "Team site", user_id=None, team_id=rows.team("team-owner"))
    rows.close()
    add_website(umami_rows_db, "Gone", user_id=fake_umami.user_id, deleted=True)
    add_website(umami_rows_db, "Someone else's", user_id=str(uuid.uuid4()))
    owned = umami_http.get(f"{fake_umami.url}/api/websites", timeout=10).json()
    assert [site["id"] for site in owned["data"]] == [WEBSITE]
    assert (owned["page"], owned["pageSize"], owned["count"]) == (1, 20, 1)
    with_teams = umami_http.get(f"{fake_umami.url}/api/websites", params={"includeTeams": "true"},
                                timeout=10).json()
    assert [site["id"] for site in with_teams["data"]] == [WEBSITE, team]
    assert "user" in owned["data"][0] and "user" not in with_teams["data"][0]  # the team query includes nothing
    searched = umami_http.get(f"{fake_umami.url}/api/websites", params={"search": "PROBE.example"},
                              timeout=10).json()
    assert ([site["id"] for site in searched["data"]], searched["search"]) == ([WEBSITE], "PROBE.example")


@pytest.mark.parametrize("role", ["team-member", "team-manager", "team-view-only"])
def test_a_team_website_is_listed_only_to_the_teams_owner_as_a_real_3_1_0_lists_it(
        umami_db: str, role: str) -> None:
    """Umami 3.1.0's ``getAllUserWebsitesIncludingTeamOwner``: ``includeTeams`` adds the websites of the teams in which
    the user is team-owner (a team not deleted); a member in another role sees none of them listed, though it may
    read them (``canViewWebsite`` asks only for membership)."""
    rows = UmamiRows(umami_db)
    member_of = add_website(umami_db, "Member's team site", user_id=None, team_id=rows.team(role))
    owned_team = rows.team("team-owner")
    owner_of = add_website(umami_db, "Owner's team site", user_id=None, team_id=owned_team)
    add_website(umami_db, "Deleted team's site", user_id=None, team_id=rows.team("team-owner", deleted=True))
    add_website(umami_db, "Another team's site", user_id=None, team_id=rows.team("team-owner", user_id=str(
        uuid.uuid4())))
    rows.close()
    with FakeUmami(umami_db, role="user") as fake, requests.Session() as http:
        login = http.post(f"{fake.url}/api/auth/login", json={"username": fake.username, "password": fake.password},
                          timeout=10)
        http.headers["Authorization"] = f"Bearer {login.json()['token']}"

        listed = http.get(f"{fake.url}/api/websites", params={"includeTeams": "true"}, timeout=10).json()

        assert [site["id"] for site in listed["data"]] == [owner_of]
        assert http.get(f"{fake.url}/api/websites/{member_of}", timeout=10).status_code == 200  # a member reads it


# --- faults ---------------------------------------------------------------------------------------

def test_throttle_next_answers_429_with_retry_after(umami_http: requests.Session,
                                                    fake_umami: FakeUmami) -> None:
    fake_umami.faults.throttle_next = 2
    fake_umami.faults.retry_after_seconds = 0.2
    replies = [umami_http.get(f"{fake_umami.url}/api/websites", timeout=10) for _ in range(3)]
    assert [reply.status_code for reply in replies] == [429, 429, 200]
    assert [reply.headers.get("Retry-After") for reply in replies] == ["0.2", "0.2", None]
    assert replies[0].json()["error"]["code"] == "too-many-requests"


def test_fail_next_breaks_only_session_lists(umami_http: requests.Session, fake_umami: FakeUmami) -> None:
    fake_umami.faults.fail_next = 1
    assert umami_http.get(f"{fake_umami.url}/api/websites", timeout=10).status_code == 200
    failed = umami_http.get(fake_umami.url + SESSIONS, params=hour_range(), timeout=10)
    assert (failed.status_code, failed.json()) == (500, {"error": {
        "message": "Server error", "code": "server-error", "status": 500}})
    assert umami_http.get(fake_umami.url + SESSIONS, params=hour_range(), timeout=10).status_code == 200


def test_delay_next_outlasts_a_client_timeout(umami_http: requests.Session, fake_umami: FakeUmami) -> None:
    fake_umami.faults.delay_next = 1
    fake_umami.faults.delay_seconds = 0.5
    with pytest.raises(requests.Timeout):
        umami_http.get(f"{fake_umami.url}/api/websites", timeout=0.05)
    assert umami_http.get(f"{fake_umami.url}/api/websites", timeout=10).status_code == 200


def test_malformed_and_id_less_rows(umami_http: requests.Session, fake_umami: FakeUmami) -> None:
    fake_umami.faults.malformed_ids = {ALICE}
    fake_umami.faults.drop_id_ids = {FIRST}
    rows = umami_http.get(fake_umami.url + SESSIONS, params=hour_range(), timeout=10).json()["data"]
    alice = next(row for row in rows if row.get("id") == ALICE)
    assert (alice["visits"], alice["lastAt"]) == ("many", "not-a-date")
    assert [row.get("id") for row in rows] == [BERLIN, ALICE, None]
    assert rows[2]["browser"] == "chrome"


def test_rows_inserted_between_pages_shift_the_next_page(umami_rows_db: str, umami_http: requests.Session,
                                                         fake_umami: FakeUmami) -> None:
    newest = event_time(umami_rows_db, BERLIN, 2) + timedelta(seconds=1)
    late_session = str(uuid.uuid4())

    def insert_a_newer_session(page: int) -> None:
        if page == 1:
            with psycopg.connect(umami_rows_db) as conn:
                conn.execute("insert into session (session_id, website_id, created_at) values (%s, %s, %s)",
                             (late_session, WEBSITE, newest))
                conn.execute("insert into website_event (event_id, website_id, session_id, created_at,"
                             " url_path, visit_id) values (%s, %s, %s, %s, '/', %s)",
                             (str(uuid.uuid4()), WEBSITE, late_session, newest, str(uuid.uuid4())))

    fake_umami.faults.on_session_page = insert_a_newer_session
    first = session_page(umami_http, fake_umami, **hour_range(page=1, pageSize=2))
    second = session_page(umami_http, fake_umami, **hour_range(page=2, pageSize=2))
    assert ([row["id"] for row in first["data"]], first["count"]) == ([BERLIN, ALICE], 3)
    assert ([row["id"] for row in second["data"]], second["count"]) == ([ALICE, FIRST], 4)


def test_the_request_log_and_reset(umami_http: requests.Session, fake_umami: FakeUmami) -> None:
    fake_umami.reset()
    fake_umami.faults.fail_next = 5
    umami_http.get(fake_umami.url + SESSIONS, params=hour_range(page=1), timeout=10)
    sent = {name: str(value) for name, value in hour_range(page=1).items()}
    assert fake_umami.requests == [RequestRecord("GET", SESSIONS, sent, 500)]
    fake_umami.reset()
    assert (fake_umami.requests, fake_umami.faults.fail_next) == ([], 0)
    assert umami_http.get(fake_umami.url + SESSIONS, params=hour_range(), timeout=10).status_code == 200


# --- Umami Cloud mode and HTTPS -------------------------------------------------------------------

@pytest.fixture
def cloud_umami(umami_rows_db: str) -> Iterator[FakeUmami]:
    with FakeUmami(umami_rows_db, api_key="key-1", rate_limit=3, rate_window_seconds=60) as fake:
        yield fake


def test_cloud_mode_serves_v1_with_an_api_key(cloud_umami: FakeUmami, umami_fixtures: Path) -> None:
    key = {"x-umami-api-key": "key-1"}
    websites = requests.get(f"{cloud_umami.url}/v1/websites", params={"pageSize": 10}, headers=key,
                            timeout=10)
    assert websites.json() == fixture_body(umami_fixtures, "api_websites.json")
    page = requests.get(f"{cloud_umami.url}/v1/websites/{WEBSITE}/sessions",
                        params=hour_range(page=1, pageSize=2), headers=key, timeout=10)
    assert page.json() == fixture_body(umami_fixtures, "api_sessions_p1.json")
    wrong_key = requests.get(f"{cloud_umami.url}/v1/websites", headers={"x-umami-api-key": "other"},
                             timeout=10)
    assert (wrong_key.status_code, wrong_key.json()) == (401, UNAUTHORIZED)
    assert requests.get(f"{cloud_umami.url}/api/websites", headers=key, timeout=10).status_code == 404
    assert requests.post(f"{cloud_umami.url}/v1/auth/login", json=CREDENTIALS,
                         headers=key, timeout=10).status_code == 404


def test_cloud_mode_rate_limits_each_key(cloud_umami: FakeUmami) -> None:
    key = {"x-umami-api-key": "key-1"}
    replies = [requests.get(f"{cloud_umami.url}/v1/websites", headers=key, timeout=10) for _ in range(4)]
    assert [reply.status_code for reply in replies] == [200, 200, 200, 429]
    retry_after = replies[3].headers["Retry-After"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= 60
    cloud_umami.reset()
    assert requests.get(f"{cloud_umami.url}/v1/websites", headers=key, timeout=10).status_code == 200


def test_https_with_a_certificate_the_client_trusts(umami_rows_db: str, tmp_path: Path) -> None:
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with FakeUmami(umami_rows_db, ssl_context=context) as fake:
        assert fake.url.startswith("https://127.0.0.1:")
        reply = requests.post(f"{fake.url}/api/auth/login", json=CREDENTIALS,
                              verify=str(tmp_path / "ca.pem"), timeout=10)
        assert reply.status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{fake.url}/api/websites", timeout=10)


# --- each Umami version's shapes (Umami's source at v2.20.2, v3.1.0 and the newer getWebsiteSessions.ts) --------

@pytest.fixture
def versioned(umami_db: str, umami_level: str) -> Iterator[tuple[FakeUmami, requests.Session, dict[str, str]]]:
    """The fake of the test's version over a day of its rows: a session with page views on two hostnames and
    (from 3.1) performance beacons, and a session with one custom event; with a logged-in HTTP session."""
    rows = UmamiRows(umami_db, umami_level)
    rows.website()
    two = rows.session(at(9))
    rows.event(two, at(9), hostname="a.example.com")
    rows.event(two, at(10), hostname="b.example.com")
    if umami_level != "2.20.2":
        rows.beacon(two, at(10, 1))
    custom = rows.session(at(11))
    rows.event(custom, at(11), event_type=2)
    rows.close()
    with FakeUmami(umami_db, version=umami_level) as fake, requests.Session() as http:
        http.headers["Authorization"] = "Bearer " + http.post(f"{fake.url}/api/auth/login", json=CREDENTIALS,
                                                              timeout=10).json()["token"]
        yield fake, http, {"two": two, "custom": custom}


DAY_RANGE = {"startAt": epoch_ms(at(0)), "endAt": epoch_ms(at(0, day=28)) - 1}


@pytest.mark.umami_levels
def test_each_version_lists_sessions_in_its_own_shape(versioned: tuple[FakeUmami, requests.Session, dict[str, str]],
                                                       umami_level: str) -> None:
    fake, http, ids = versioned

    page = session_page(http, fake, **DAY_RANGE)

    shape = {(row["id"], row.get("hostname", "-"), row["views"], row.get("events", "-")) for row in page["data"]}
    two, custom = ids["two"], ids["custom"]
    assert shape == {
        "2.20.2": {(two, "-", 2, "-"), (custom, "-", 0, "-")},  # one row per session, no hostname, no events
        "3.1.0": {(two, "a.example.com", 1, 0), (two, "b.example.com", 1, 0), (two, None, 0, 0),  # beacons
                  (custom, "probe.example.com", 0, 1)},
        "3.3": {(two, "a.example.com", 1, 0), (two, "b.example.com", 1, 0), (custom, "probe.example.com", 0, 1)},
    }[umami_level]
    assert page["count"] == len(page["data"])
    assert page["pageSize"] == (10 if umami_level == "2.20.2" else 20)
    ordered = http.get(fake.url + SESSIONS, params={**DAY_RANGE, "orderBy": "lastAt"}, timeout=10)
    assert ordered.status_code == (500 if umami_level == "2.20.2" else 200)


@pytest.mark.umami_levels
def test_each_version_answers_activity_in_its_own_shape(
        versioned: tuple[FakeUmami, requests.Session, dict[str, str]], umami_level: str) -> None:
    fake, http, ids = versioned

    events = http.get(f"{fake.url}{SESSIONS}/{ids['two']}/activity", params=DAY_RANGE, timeout=10).json()

    assert [event["eventType"] for event in events] == {"2.20.2": [1, 1], "3.1.0": [5, 1, 1], "3.3": [1, 1]}[
        umami_level]
    if umami_level == "2.20.2":  # the whole stored event, as Prisma returns it
        assert "eventId" not in events[0] and "hasData" not in events[0]
        assert {"id", "sessionId", "visitId", "urlPath", "utmSource", "lifatid", "tag"} <= events[0].keys()
    else:
        assert list(events[0]) == ["createdAt", "urlPath", "urlQuery", "referrerDomain", "eventId", "eventType",
                                   "eventName", "visitId", "hostname", "hasData"]


@pytest.mark.umami_levels
def test_each_version_has_its_own_website_fields(versioned: tuple[FakeUmami, requests.Session, dict[str, str]],
                                                 umami_level: str) -> None:
    fake, http, _ = versioned

    website = http.get(f"{fake.url}/api/websites", timeout=10).json()["data"][0]

    assert {"2.20.2": "shareId", "3.1.0": "replayEnabled", "3.3": "recorderEnabled"}[umami_level] in website
    assert ("replayEnabled" in website) == (umami_level == "3.1.0")


# --- Umami after 3.3 ("3.4", on the 3.3 schema level): linked activity, the list's tie-breaker and cap ---------------

@pytest.fixture
def linked(umami_db: str) -> Iterator[tuple[FakeUmami, requests.Session, dict[str, str]]]:
    """The 3.4 fake over one person's sessions linked to one distinct id: ``today`` (page views at 09:00 and
    10:00 on the 27th), ``before`` (the 24th, linked then) and ``after`` (December 17th, linked then); and
    ``pair``, linked to two people, and ``alone``, the only session of its person."""
    rows = UmamiRows(umami_db, "3.3")
    rows.website()
    ids = {}
    for name, moment in (("today", at(9)), ("before", at(9, day=24)), ("after", at(9, day=27) + timedelta(days=20)),
                         ("pair", at(12)), ("alone", at(13))):
        ids[name] = rows.session(moment)
        rows.event(ids[name], moment)
    rows.event(ids["today"], at(10))
    for name in ("today", "before", "after"):
        rows.identify(ids[name], "pat@example.com", rows.conn.execute(
            "select created_at from session where session_id = %s", (ids[name],)).fetchone()[0])
    rows.identify(ids["pair"], "ann@example.com", at(12))
    rows.identify(ids["pair"], "bo@example.com", at(12, 1))
    rows.identify(ids["alone"], "cy@example.com", at(13))
    rows.close()
    with FakeUmami(umami_db, version="3.4") as fake, requests.Session() as http:
        http.headers["Authorization"] = "Bearer " + http.post(f"{fake.url}/api/auth/login", json=CREDENTIALS,
                                                              timeout=10).json()["token"]
        yield fake, http, ids


def activity_times(http: requests.Session, fake: FakeUmami, session: str, **params: Any) -> list[datetime]:
    reply = http.get(f"{fake.url}{SESSIONS}/{session}/activity", params={**DAY_RANGE, **params}, timeout=10)
    assert reply.status_code == 200, reply.text
    return [datetime.fromisoformat(event["createdAt"]) for event in reply.json()]


@pytest.mark.umami_levels("3.3")
def test_3_4_activity_of_a_linked_session_answers_its_persons_sessions_over_whole_months(
        linked: tuple[FakeUmami, requests.Session, dict[str, str]]) -> None:
    """188b628c's route: asked for the 27th, the session linked to pat answers pat's three sessions, November 1st
    to December 31st; naming a distinct id linked to no session keeps it on the session and the day."""
    fake, http, ids = linked
    today = [at(10), at(9)]

    assert activity_times(http, fake, ids["today"]) == [at(9, day=27) + timedelta(days=20), *today, at(9, day=24)]
    assert activity_times(http, fake, ids["today"], distinctId=str(uuid.uuid4())) == today
    assert activity_times(http, fake, ids["today"], distinctId="") == activity_times(http, fake, ids["today"])
    assert activity_times(http, fake, ids["pair"]) == [at(12)]  # linked to two people: no stitching
    assert activity_times(http, fake, ids["alone"]) == [at(13)]  # its person has no other session: no widening
    too_long = http.get(f"{fake.url}{SESSIONS}/{ids['today']}/activity", params={**DAY_RANGE, "distinctId": "x" * 51},
                        timeout=10)
    assert too_long.status_code == 400


@pytest.mark.umami_levels("3.3")
def test_3_4_lists_with_a_tie_breaker_and_caps_the_count_when_asked(
        linked: tuple[FakeUmami, requests.Session, dict[str, str]], umami_db: str) -> None:
    fake, http, ids = linked
    with psycopg.connect(umami_db, autocommit=True) as conn:  # every last event at one instant
        conn.execute("update website_event set created_at = %s where created_at >= %s and created_at < %s",
                     (at(14), at(0), at(0, day=28)))

    whole = session_page(http, fake, **DAY_RANGE)
    capped = session_page(http, fake, **DAY_RANGE, maxResults=2)

    assert [row["id"] for row in whole["data"]] == sorted(ids[name] for name in ("today", "pair", "alone"))
    assert (whole["count"], whole["isCapped"]) == (3, False)
    assert (capped["count"], capped["isCapped"], len(capped["data"])) == (2, True, 3)  # the page is not cut
    assert session_page(http, fake, **DAY_RANGE, maxResults=3)["isCapped"]  # at the cap: not proven complete
    assert not session_page(http, fake, **DAY_RANGE, maxResults=4)["isCapped"]
    assert http.get(fake.url + SESSIONS, params={**DAY_RANGE, "maxResults": 0}, timeout=10).status_code == 400
    with FakeUmami(umami_db, version="3.4", max_results=1) as capping, requests.Session() as other:
        other.headers["Authorization"] = "Bearer " + other.post(f"{capping.url}/api/auth/login", json=CREDENTIALS,
                                                                timeout=10).json()["token"]
        assert {key: session_page(other, capping, **DAY_RANGE)[key] for key in ("count", "isCapped")} == {
            "count": 1, "isCapped": True}

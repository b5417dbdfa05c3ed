"""UmamiHook's endpoints, one request each, over real HTTP against FakeUmami and a scripted server: login and
its token, websites, session pages, activity, refused credentials and answers that are not Umami's."""

from __future__ import annotations

import json
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from local_stack.umami_api import FakeUmami
from tests.factories import OTHER_WEBSITE, WEBSITE
from tests.umami_sync.umami.conftest import (
    API_KEY,
    PASSWORD,
    WINDOW,
    SessionMaker,
    cloud_umami,
    current_token,
    exception_texts,
    integration,
    login_reply,
    read_all,
    session_calls,
    umami_connection,
)
from umami_sync.umami.api import UmamiHook
from umami_sync.umami.errors import UmamiApiError, UmamiAuthError, UmamiCredentialsError
from umami_sync.umami.websites import all_websites
from umami_sync.windows import ApiWindow

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.umami_sync.umami.conftest import Handler, LogCapture


@pytest.mark.parametrize(("start", "end"), [
    (1_764_201_600, 1_764_288_000),  # seconds, not milliseconds
    (1_764_288_000_000, 1_764_201_600_000),  # end before start
])
def test_window_arguments_are_checked_before_any_request(start: int, end: int) -> None:
    hook = UmamiHook()

    with pytest.raises(ValueError, match="epoch milliseconds"):
        hook.session_page(WEBSITE, ApiWindow(start, end), 1, 100)
    with pytest.raises(ValueError, match="epoch milliseconds"):
        hook.session_activity(WEBSITE, str(uuid.uuid4()), ApiWindow(start, end))
    assert hook.stats.requests == 0


def _fixture_sessions(folder: Path) -> list[dict[str, Any]]:
    return [row for name in ("api_sessions_p1.json", "api_sessions_p2.json")
            for row in json.loads((folder / name).read_text())["data"]]


@integration
def test_login_once_then_bearer_and_rows_as_the_real_server_returned(
    self_hosted: FakeUmami, make_hook: Callable[..., UmamiHook], umami_fixtures: Path
) -> None:
    hook = make_hook()

    websites = all_websites(hook)
    pages = [hook.session_page(WEBSITE, WINDOW, page, 2) for page in (1, 2)]

    assert [website.id for website in websites] == [WEBSITE]
    assert [row["id"] for page in pages for row in page.entries if isinstance(row, dict)] == [
        row["id"] for row in _fixture_sessions(umami_fixtures)]
    assert [(page.page, page.page_size, page.count) for page in pages] == [(1, 2, 3), (2, 2, 3)]
    calls = [(record.method, record.path, record.status) for record in self_hosted.requests]
    assert calls[0] == ("POST", "/api/auth/login", 200)
    assert [call for call in calls if call[0] == "POST"] == [calls[0]]
    assert all(status == 200 for _, _, status in calls)  # only a valid bearer token gets 200 here
    assert (hook.stats.logins, hook.stats.list_pages, hook.stats.requests) == (1, 2, len(calls))


@integration
def test_website_by_id_known_unknown_and_not_viewable(
    self_hosted: FakeUmami, umami_pg: str, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., UmamiHook]
) -> None:
    hook = make_hook()
    website = hook.get_website(WEBSITE)
    assert website is not None
    assert (website.id, website.name) == (WEBSITE, "Probe Site")
    assert hook.get_website(str(uuid.uuid4())) is None  # an admin sees every id; Umami finds no website
    with FakeUmami(umami_pg, password=PASSWORD, role="user", user_id=str(uuid.uuid4())) as fake:
        umami_connection(monkeypatch, fake.url, login="admin", password=PASSWORD)
        with pytest.raises(UmamiAuthError, match=rf"GET /api/websites/{WEBSITE} -> HTTP 401") as caught:
            make_hook().get_website(WEBSITE)
    assert not isinstance(caught.value, UmamiCredentialsError)


@integration
def test_activity_of_a_session(self_hosted: FakeUmami, make_hook: Callable[..., UmamiHook],
                               umami_fixtures: Path) -> None:
    recorded = json.loads((umami_fixtures / "api_session_activity.json").read_text())
    alice = "8b046da9-3d41-5054-8060-170787f99fe0"
    hook = make_hook()

    events = hook.session_activity(WEBSITE, alice, WINDOW)

    assert [event.event_id for event in events] == [event["eventId"] for event in recorded]
    assert hook.stats.activity_calls == 1


@integration
def test_a_fresh_token_is_handed_to_airflows_secrets_masker(self_hosted: FakeUmami,
                                                           make_hook: Callable[..., UmamiHook]) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    hook = make_hook()
    all_websites(hook)
    token = current_token(hook)

    assert redact(f"a line that quotes {token}") == "a line that quotes ***"


@integration
def test_revoked_token_mid_paging_means_one_new_login_and_nothing_lost(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook]
) -> None:
    made = make_sessions(10)
    self_hosted.faults.on_session_page = lambda page: self_hosted.revoke_tokens() if page == 2 else None
    hook = make_hook()

    ids = read_all(hook, OTHER_WEBSITE, page_size=3)

    assert sorted(ids) == sorted(made)
    assert session_calls(self_hosted, OTHER_WEBSITE) == [("1", 200), ("2", 200), ("3", 401), ("3", 200),
                                                          ("4", 200)]
    assert [record.path for record in self_hosted.requests].count("/api/auth/login") == 2
    assert (hook.stats.logins, hook.stats.retries) == (2, 0)


@integration
def test_a_401_right_after_a_fresh_login_is_a_clear_error(
    umami_pg: str, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., UmamiHook]
) -> None:
    # A non-admin user that owns no website: Umami answers 401 to any session list.
    with FakeUmami(umami_pg, password=PASSWORD, role="user", user_id=str(uuid.uuid4())) as fake:
        umami_connection(monkeypatch, fake.url, login="admin", password=PASSWORD)
        hook = make_hook()

        with pytest.raises(UmamiAuthError, match=rf"GET /api/websites/{WEBSITE}/sessions -> HTTP 401: "
                                                 r"Unauthorized \(unauthorized\)"):
            hook.session_page(WEBSITE, WINDOW, 1, 10)

        assert [(record.method, record.status) for record in fake.requests] == [
            ("POST", 200), ("GET", 401), ("POST", 200), ("GET", 401)]
        assert hook.stats.logins == 2


@integration
def test_a_refused_login_fails_at_once_naming_the_connection_not_the_password(
    fake_umami: FakeUmami, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., UmamiHook],
    sleeps: list[float],
) -> None:
    umami_connection(monkeypatch, fake_umami.url, login="admin", password="not-the-password")
    hook = make_hook()

    with pytest.raises(UmamiCredentialsError) as caught:
        all_websites(hook)

    assert str(caught.value) == ("Umami POST /api/auth/login -> HTTP 401: connection 'umami_api': Umami refused "
                                 "the login of user 'admin' (Unauthorized (incorrect-username-password))")
    assert len(fake_umami.requests) == 1  # no retry: a wrong password is not transient
    assert sleeps == []


@integration
def test_a_refused_api_key_fails_at_once_and_other_4xx_too(
    umami_pg: str, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., UmamiHook], sleeps: list[float],
) -> None:
    with cloud_umami(umami_pg, monkeypatch) as fake:
        umami_connection(monkeypatch, f"{fake.url}/v1", extra={"api_key": "key-of-someone-else"})
        with pytest.raises(UmamiCredentialsError, match=r"GET /v1/websites -> HTTP 401: connection 'umami_api': "
                                                        r"Umami refused the API key"):
            all_websites(make_hook())
        # Cloud's API behind a base that does not end in /v1 (the override says it is Cloud): a 404 is no retry either
        umami_connection(monkeypatch, fake.url, extra={"api_key": API_KEY, "umami_cloud": True})
        with pytest.raises(UmamiApiError,
                           match=r"GET /websites -> HTTP 404: Not found \(not-found\)") as caught:
            all_websites(make_hook())

        assert [record.status for record in fake.requests] == [401, 404]
    assert type(caught.value) is UmamiApiError
    assert sleeps == []


@integration
def test_on_umami_cloud_a_website_the_key_may_not_read_is_not_a_refused_key(
    umami_pg: str, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., UmamiHook]
) -> None:
    with cloud_umami(umami_pg, monkeypatch, role="user", user_id=str(uuid.uuid4())), \
            pytest.raises(UmamiAuthError) as caught:
        make_hook().session_page(WEBSITE, WINDOW, 1, 10)

    assert not isinstance(caught.value, UmamiCredentialsError)  # the key works: the website is not the key's


@integration
def test_websites_leave_out_deleted_ones(
    scripted_server: Callable[[Handler], str], make_hook: Callable[..., UmamiHook], umami_fixtures: Path
) -> None:
    live = json.loads((umami_fixtures / "api_websites.json").read_text())["data"][0]
    deleted = {**live, "id": str(uuid.uuid4()), "deletedAt": "2026-11-27T16:00:00.000Z"}

    def serve(method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Any:
        if path == "/api/auth/login":
            return login_reply()
        return 200, {}, json.dumps({"data": [live, deleted], "count": 2, "page": 1, "pageSize": 100}).encode()

    scripted_server(serve)

    assert [website.id for website in all_websites(make_hook())] == [live["id"]]


@integration
def test_answers_that_are_not_umamis_are_clear_errors(scripted_server: Callable[[Handler], str],
                                                      make_hook: Callable[..., UmamiHook]) -> None:
    def serve(method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Any:
        if path == "/api/auth/login":
            return login_reply()
        if path.endswith("/activity"):
            return 200, {}, json.dumps([{"createdAt": "yesterday"}]).encode()
        if query.get("page") == "2":
            return 200, {}, b"<html>a proxy's page</html>"
        return 200, {}, json.dumps({"data": "rows", "count": -1}).encode()

    scripted_server(serve)
    hook = make_hook()

    with pytest.raises(UmamiApiError, match=r"GET websites/.*/sessions -> HTTP 200: not what Umami answers "
                                            r"\(data: Input should be a valid list"):
        hook.session_page(WEBSITE, WINDOW, 1, 10)
    with pytest.raises(UmamiApiError, match=r"GET /api/websites/.*/sessions -> HTTP 200: not JSON"):
        hook.session_page(WEBSITE, WINDOW, 2, 10)
    with pytest.raises(UmamiApiError, match=r"activity -> HTTP 200: not what Umami answers \(createdAt"):
        hook.session_activity(WEBSITE, str(uuid.uuid4()), WINDOW)


@integration
def test_team_websites_only_when_asked(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook]
) -> None:
    team_site = make_sessions.rows.website(str(uuid.uuid4()), "Team Site", user_id=None,
                                           team_id=make_sessions.rows.team("team-owner"))  # one the user owns
    hook = make_hook()

    own = {website.id for website in all_websites(hook)}
    with_teams = {website.id for website in all_websites(hook, include_teams=True)}

    assert own == {WEBSITE, OTHER_WEBSITE}
    assert with_teams == own | {team_site}
    assert [record.query.get("includeTeams") for record in self_hosted.requests
            if record.path == "/api/websites"] == [None, "true"]


@integration
def test_cloud_mode_sends_the_api_key_to_v1_paths_without_login(
    umami_pg: str, make_sessions: SessionMaker, monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., UmamiHook],
) -> None:
    made = make_sessions(5)
    with cloud_umami(umami_pg, monkeypatch) as fake:
        hook = make_hook()

        websites = all_websites(hook)
        ids = read_all(hook, OTHER_WEBSITE, page_size=2)

        calls = fake.requests
    assert {website.id for website in websites} == {WEBSITE, OTHER_WEBSITE}
    assert sorted(ids) == sorted(made)
    sessions_path = f"/v1/websites/{OTHER_WEBSITE}/sessions"
    assert [record.path for record in calls] == ["/v1/websites", sessions_path, sessions_path, sessions_path]
    assert all(record.status == 200 for record in calls)  # the fake checks x-umami-api-key on each
    assert hook.stats.logins == 0



# --- Umami 3.4: self-hosted API keys, and accounts with two-factor authentication --------------------------------

SELF_HOSTED_KEY = "umami_" + "Qx7neverlogged" * 2 + "cd"
ENDPOINTS = {"login", "websites_page", "get_website", "session_page", "session_activity", "session_detail",
             "session_properties", "session_data_keys", "session_stats"}
"""The hook's endpoint methods: a new one must be added to the key test below (Umami refuses keys on some paths)."""
KEY_REFUSED = ("/api/me/password", "/api/me/api-keys", "/api/2fa", "/api/auth", "/api/users", "/api/admin",
               "/api/oauth")


def test_the_endpoints_a_key_test_covers_are_all_the_hooks() -> None:
    public = {name for name, value in vars(UmamiHook).items() if callable(value) and not name.startswith("_")}
    assert public - {"get_conn"} == ENDPOINTS


@integration
def test_a_self_hosted_key_reads_every_endpoint_without_a_login_and_off_the_paths_keys_are_refused_on(
    umami_pg: str, make_sessions: SessionMaker, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., UmamiHook],
) -> None:
    made = make_sessions(3)
    with FakeUmami(umami_pg, password=PASSWORD, api_keys={SELF_HOSTED_KEY}) as fake:
        umami_connection(monkeypatch, fake.url, extra={"api_key": SELF_HOSTED_KEY})
        hook = make_hook()

        websites = all_websites(hook, include_teams=True)
        website = hook.get_website(OTHER_WEBSITE)
        ids = read_all(hook, OTHER_WEBSITE, page_size=2)
        events = hook.session_activity(OTHER_WEBSITE, made[0], WINDOW)
        detail = hook.session_detail(OTHER_WEBSITE, made[0])  # the reads of identities through the API
        properties = hook.session_properties(OTHER_WEBSITE, made[0])
        keys = hook.session_data_keys(OTHER_WEBSITE, WINDOW)
        stats = hook.session_stats(OTHER_WEBSITE, WINDOW)

        calls = fake.requests
    assert {site.id for site in websites} == {WEBSITE, OTHER_WEBSITE}
    assert website is not None and website.name == "Other Site"
    assert sorted(ids) == sorted(made) and len(events) == 1
    assert detail is not None and detail.id == made[0] and properties == [] and keys == []
    assert stats.visitors.value == 3
    assert all(record.status == 200 for record in calls)  # the fake checks the key on each, with 3.4's rules
    assert not [record.path for record in calls if record.path.startswith(KEY_REFUSED)]  # login included
    assert hook.stats.logins == 0


@integration
@pytest.mark.parametrize("server", ["unknown key", "CLOUD_MODE"])
def test_a_refused_self_hosted_key_fails_at_once_naming_the_connection_and_what_keys_need(
    server: str, umami_pg: str, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., UmamiHook],
    sleeps: list[float],
) -> None:
    options: dict[str, Any] = ({"api_keys": {"umami_" + "o" * 32}} if server == "unknown key"
                               else {"api_keys": {SELF_HOSTED_KEY}, "cloud_mode": True})
    with FakeUmami(umami_pg, password=PASSWORD, **options) as fake:
        umami_connection(monkeypatch, fake.url, extra={"api_key": SELF_HOSTED_KEY})

        with pytest.raises(UmamiCredentialsError) as caught:
            make_hook().session_page(WEBSITE, WINDOW, 1, 10)

        calls = [(record.path, record.status) for record in fake.requests]
    assert str(caught.value) == (
        f"Umami GET /api/websites/{WEBSITE}/sessions -> HTTP 401: connection 'umami_api': Umami refused the API key "
        "(Unauthorized (unauthorized)); self-hosted API keys need Umami 3.4 or later, on a server without CLOUD_MODE")
    assert calls == [(f"/api/websites/{WEBSITE}/sessions", 401), ("/api/websites", 401)]  # the read, one probe
    assert sleeps == []
    assert not any(SELF_HOSTED_KEY in text for text in exception_texts(caught.value))


@integration
def test_a_two_factor_account_fails_at_once_naming_the_account_and_the_fix_and_its_partial_token_stays_unseen(
    umami_pg: str, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., UmamiHook], sleeps: list[float],
    logged: LogCapture,
) -> None:
    with FakeUmami(umami_pg, password=PASSWORD, two_factor=True) as fake:
        umami_connection(monkeypatch, fake.url, login="admin", password=PASSWORD)
        hook = make_hook()

        with pytest.raises(UmamiCredentialsError) as caught:
            all_websites(hook)

        calls = [(record.path, record.status) for record in fake.requests]
        (partial,) = fake.partial_tokens
    assert str(caught.value) == (
        "Umami POST /api/auth/login -> HTTP 200: connection 'umami_api': user 'admin' has two-factor "
        "authentication, which the sync cannot complete. Give the connection an API key of that user instead "
        "(extra {\"api_key\": \"umami_...\"}, Umami 3.4+; no login or password), or a user without two-factor "
        "authentication")
    assert calls == [("/api/auth/login", 200)] and sleeps == []  # no retry, no read with a partial token
    for text in [*exception_texts(caught.value), logged.text(), repr(vars(hook)), repr(vars(hook.transport))]:
        assert partial not in text and PASSWORD not in text


# --- two threads, one hook (a listing's reader thread and the main thread) ------------------------------------------

@integration
def test_two_threads_on_one_hook_log_in_once_log_in_again_once_after_a_401_both_saw_and_count_exactly(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook],
) -> None:
    made = make_sessions(4)
    hook = make_hook()
    rounds = 20

    def revoke_while_both_wait() -> None:  # as a change of APP_SECRET does; the next request of each thread
        self_hosted.revoke_tokens()         # is held a moment, so both are in flight with the old token
        self_hosted.faults.delay_seconds, self_hosted.faults.delay_next = 0.3, 2

    start, halfway = threading.Barrier(2), threading.Barrier(2, action=revoke_while_both_wait)

    def read(kind: str) -> None:
        start.wait()  # both ask for their first page at once, with no token yet
        for number in range(rounds):
            if number == rounds // 2:
                halfway.wait()
            if kind == "list":
                hook.session_page(OTHER_WEBSITE, WINDOW, 1, 2)
            else:
                hook.session_activity(OTHER_WEBSITE, made[0], WINDOW)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: a race shows if there is one
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(read, ["list", "activity"]))
    finally:
        sys.setswitchinterval(switch)

    calls = self_hosted.requests
    assert [record.path for record in calls].count("/api/auth/login") == 2 == hook.stats.logins
    assert [record.status for record in calls].count(401) == 2  # one per thread, both with the revoked token
    assert (hook.stats.list_pages, hook.stats.activity_calls) == (rounds, rounds)
    assert hook.stats.requests == len(calls) == 2 * rounds + 2 + 2  # the reads, two logins, two refused reads
    assert hook.stats.retries == 0

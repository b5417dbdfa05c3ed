"""UmamiHook's endpoints, one request each, over real HTTP against FakeUmami and a scripted server: login and
its token, websites, session pages, activity, refused credentials and answers that are not Umami's."""

from __future__ import annotations

import json
import uuid
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
    integration,
    login_reply,
    read_all,
    session_calls,
    umami_connection,
)
from umami_sync.umami.api import UmamiHook
from umami_sync.umami.errors import UmamiApiError, UmamiAuthError, UmamiCredentialsError
from umami_sync.umami.paging import all_websites
from umami_sync.windows import ApiWindow

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.umami_sync.umami.conftest import Handler


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
    assert [row.model_dump(by_alias=True, mode="json")["id"] for page in pages for row in page.entries] == [
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
        umami_connection(monkeypatch, fake.url, extra={"api_key": API_KEY})  # base URL lacks /v1
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
        return 200, {}, json.dumps({"data": "rows", "count": -1}).encode()

    scripted_server(serve)
    hook = make_hook()

    with pytest.raises(UmamiApiError, match=r"GET websites/.*/sessions -> HTTP 200: not what Umami answers "
                                            r"\(data: Input should be a valid list"):
        hook.session_page(WEBSITE, WINDOW, 1, 10)
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


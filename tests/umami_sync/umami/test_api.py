"""UmamiHook: pure parts first (backoff, Retry-After, connection rule), then real HTTP against FakeUmami, a
scripted server (gateways that echo requests) and a trickling TCP proxy."""

from __future__ import annotations

import json
import logging
import random
import time
import traceback
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import pytest
from tenacity import RetryCallState, Retrying

from local_stack.tcp_proxy import Mode, TcpProxy
from local_stack.umami_api import FakeUmami
from tests.factories import OTHER_WEBSITE, WEBSITE
from tests.umami_sync.umami.conftest import (
    API_KEY,
    PASSWORD,
    WINDOW_END_MS,
    WINDOW_START_MS,
    SessionMaker,
    login_reply,
    umami_connection,
)
from umami_sync.umami.api import (
    API_KEY_HEADER,
    UmamiApiError,
    UmamiAuthError,
    UmamiConfigError,
    UmamiCredentialsError,
    UmamiHook,
    UmamiRetryError,
    _Transient,
    _WaitRetryAfter,
    parse_retry_after,
)
from umami_sync.umami.listing import SessionListing
from umami_sync.windows import ApiWindow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.umami_sync.umami.conftest import Handler, LogCapture

WINDOW = ApiWindow(WINDOW_START_MS, WINDOW_END_MS)
integration = pytest.mark.integration

# --- pure parts -------------------------------------------------------------------------------------


def _wait(attempt: int, failure: BaseException, *, base: float = 0.5, cap: float = 3.0) -> float:
    """The wait tenacity would take before retry ``attempt`` after ``failure``."""
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(failure), failure, None))
    return _WaitRetryAfter(multiplier=base, max=cap)(state)


def test_backoff_is_full_jitter_doubling_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    assert [_wait(n, _Transient("HTTP 500")) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    assert [_wait(n, _Transient("HTTP 500")) for n in range(1, 6)] == [0.0] * 5


def test_backoff_is_spread_over_the_whole_range() -> None:
    delays = [_wait(4, _Transient("HTTP 503"), base=1.0, cap=60.0) for _ in range(300)]

    assert all(0.0 <= d <= 8.0 for d in delays)
    assert min(delays) < 1.0
    assert max(delays) > 7.0


def test_retry_after_wins_over_a_shorter_backoff() -> None:
    assert _wait(1, _Transient("HTTP 429", retry_after=7.0)) == 7.0
    assert _wait(1, _Transient("ConnectionError")) <= 0.5


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), (" 12 ", 12.0), ("0", 0.0), (None, None),
                                                  ("", None), ("soon", None), ("-3", None), ("1.", None)])
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date() -> None:
    in_30_s = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28.0 <= (parse_retry_after(in_30_s) or 0.0) <= 30.0
    assert parse_retry_after(format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)) == 0.0


def test_self_hosted_connection_sends_no_basic_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    umami_connection(monkeypatch, host="http://127.0.0.1:9/", login="admin", password=PASSWORD,
                     extra={"X-Team": "analytics"})
    hook = UmamiHook()

    session = hook.get_conn()

    assert hook.cloud is False
    assert session.auth is None
    assert session.headers["X-Team"] == "analytics"
    assert API_KEY_HEADER not in session.headers


def test_cloud_connection_sends_the_key_once_under_its_header(monkeypatch: pytest.MonkeyPatch) -> None:
    umami_connection(monkeypatch, host="https://api.umami.is/v1", extra={"api_key": API_KEY})
    hook = UmamiHook()

    session = hook.get_conn()

    assert hook.cloud is True
    assert session.auth is None
    assert session.headers[API_KEY_HEADER] == API_KEY
    assert [value for value in session.headers.values() if value == API_KEY] == [API_KEY]
    assert "api_key" not in session.headers


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"login": "admin", "password": PASSWORD, "extra": {"api_key": API_KEY}}, "not both"),
        ({"login": "admin"}, "needs login and password"),
        ({}, "needs login and password"),
        ({"extra": {"X-Umami-Api-Key": API_KEY}}, "X-Umami-Api-Key"),
        ({"login": "admin", "password": PASSWORD, "extra": {"Authorization": f"Bearer {API_KEY}"}},
         "Authorization"),
    ],
)
def test_connection_rule_violations_are_clear_and_secret_free(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, object], complaint: str
) -> None:
    umami_connection(monkeypatch, host="http://127.0.0.1:9", **fields)

    with pytest.raises(UmamiConfigError, match=complaint) as caught:
        UmamiHook().get_conn()

    assert API_KEY not in str(caught.value)
    assert PASSWORD not in str(caught.value)


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


# --- against FakeUmami over real HTTP ---------------------------------------------------------------


def _read_all(hook: UmamiHook, website_id: str, page_size: int) -> list[str]:
    """The session ids of the test window's whole list, in the order they were read."""
    listing = SessionListing(lambda page, size: hook.session_page(website_id, WINDOW, page, size),
                             page_size=page_size, what=f"website {website_id}")
    return [listed.session.id for page in listing for listed in page.rows]


def _session_calls(fake: FakeUmami, website_id: str) -> list[tuple[str, int]]:
    """(page, status) of the fake's session-list requests for one website."""
    return [(record.query.get("page", ""), record.status) for record in fake.requests
            if record.path.endswith(f"/websites/{website_id}/sessions")]


@contextmanager
def _cloud_umami(dsn: str, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Iterator[FakeUmami]:
    """A FakeUmami in Umami Cloud mode, with ``umami_api`` set to its ``/v1`` base and the API key."""
    with FakeUmami(dsn, api_key=API_KEY, **options) as fake:
        umami_connection(monkeypatch, f"{fake.url}/v1/", extra={"api_key": API_KEY})  # a trailing / is fine
        yield fake


def _fixture_sessions(folder: Path) -> list[dict[str, Any]]:
    return [row for name in ("api_sessions_p1.json", "api_sessions_p2.json")
            for row in json.loads((folder / name).read_text())["data"]]


@integration
def test_login_once_then_bearer_and_rows_as_the_real_server_returned(
    self_hosted: FakeUmami, make_hook: Callable[..., UmamiHook], umami_fixtures: Path
) -> None:
    hook = make_hook()

    websites = hook.list_websites()
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
    hook.list_websites()
    token = _current_token(hook)

    assert redact(f"a line that quotes {token}") == "a line that quotes ***"


@integration
def test_revoked_token_mid_paging_means_one_new_login_and_nothing_lost(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook]
) -> None:
    made = make_sessions(10)
    self_hosted.faults.on_session_page = lambda page: self_hosted.revoke_tokens() if page == 2 else None
    hook = make_hook()

    ids = _read_all(hook, OTHER_WEBSITE, page_size=3)

    assert sorted(ids) == sorted(made)
    assert _session_calls(self_hosted, OTHER_WEBSITE) == [("1", 200), ("2", 200), ("3", 401), ("3", 200),
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
        hook.list_websites()

    assert str(caught.value) == ("Umami POST /api/auth/login -> HTTP 401: connection 'umami_api': Umami refused "
                                 "the login of user 'admin' (Unauthorized (incorrect-username-password))")
    assert len(fake_umami.requests) == 1  # no retry: a wrong password is not transient
    assert sleeps == []


@integration
def test_429_waits_at_least_retry_after(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook],
    sleeps: list[float],
) -> None:
    made = make_sessions(4)
    self_hosted.faults.on_session_page = lambda page: setattr(self_hosted.faults, "throttle_next", 2) \
        if page == 1 else None
    self_hosted.faults.retry_after_seconds = 2  # above backoff_max (0.05): Retry-After must win
    hook = make_hook()

    ids = _read_all(hook, OTHER_WEBSITE, page_size=2)

    assert sorted(ids) == sorted(made)
    assert _session_calls(self_hosted, OTHER_WEBSITE) == [("1", 200), ("2", 429), ("2", 429), ("2", 200)]
    assert sleeps == [2.0, 2.0]
    assert hook.stats.retries == 2


@integration
def test_a_retry_after_past_the_cap_fails_the_try_instead_of_sleeping(
    self_hosted: FakeUmami, make_hook: Callable[..., UmamiHook], sleeps: list[float]
) -> None:
    self_hosted.faults.throttle_next, self_hosted.faults.retry_after_seconds = 1, 3600
    hook = make_hook(max_retry_wait=300)

    with pytest.raises(UmamiRetryError, match=r"POST /api/auth/login: HTTP 429; waiting 3600 s more would take "
                                              r"this task's waiting past max_retry_wait_seconds \(300 s\); "
                                              r"failing this try"):
        hook.list_websites()

    assert sleeps == []
    assert len(self_hosted.requests) == 1


@integration
def test_the_cap_holds_for_all_the_waiting_of_a_task(self_hosted: FakeUmami, make_sessions: SessionMaker,
                                                     make_hook: Callable[..., UmamiHook], sleeps: list[float]) -> None:
    """Every answer asks for 200 s: the first wait fits in 300 s, the second would not."""
    make_sessions(3)
    hook = make_hook(max_retry_wait=300, max_retries=5)
    hook.list_websites()
    self_hosted.faults.throttle_next, self_hosted.faults.retry_after_seconds = 10, 200

    with pytest.raises(UmamiRetryError, match="waiting 200 s more would take this task's waiting past"):
        hook.session_page(OTHER_WEBSITE, WINDOW, 1, 10)

    assert sleeps == [200.0]
    assert hook.stats.waited_seconds == 200.0


@integration
def test_500s_are_retried_with_backoff_then_succeed(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook],
    sleeps: list[float],
) -> None:
    made = make_sessions(3)
    self_hosted.faults.fail_next = 2
    hook = make_hook(backoff_base=0.01, backoff_max=0.02)

    ids = _read_all(hook, OTHER_WEBSITE, page_size=5)

    assert sorted(ids) == sorted(made)
    assert _session_calls(self_hosted, OTHER_WEBSITE) == [("1", 500), ("1", 500), ("1", 200)]
    assert len(sleeps) == 2
    assert all(0.0 <= slept <= 0.02 for slept in sleeps)
    assert hook.stats.retries == 2


@integration
def test_exhausted_retries_raise_a_clear_error(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook],
    sleeps: list[float],
) -> None:
    make_sessions(3)
    self_hosted.faults.fail_next = 100
    hook = make_hook(max_retries=2)

    with pytest.raises(UmamiRetryError, match=rf"GET /api/websites/{OTHER_WEBSITE}/sessions failed 3 times, "
                                              r"last with HTTP 500; giving up"):
        _read_all(hook, OTHER_WEBSITE, page_size=5)

    assert _session_calls(self_hosted, OTHER_WEBSITE) == [("1", 500)] * 3
    assert len(sleeps) == 2


@integration
def test_a_request_slower_than_the_timeout_is_retried(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook],
    sleeps: list[float],
) -> None:
    made = make_sessions(3)
    hook = make_hook(timeout=0.3)
    hook.list_websites()  # log in first, so the slow request is the session list
    self_hosted.faults.delay_next, self_hosted.faults.delay_seconds = 1, 1.5

    ids = _read_all(hook, OTHER_WEBSITE, page_size=5)

    assert sorted(ids) == sorted(made)
    assert hook.stats.retries == 1
    assert len(sleeps) == 1


@integration
def test_an_answer_trickled_byte_by_byte_is_cut_off_at_the_timeout(
    self_hosted: FakeUmami, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., UmamiHook],
    sleeps: list[float],
) -> None:
    """Each byte arrives well within the timeout, so only a bound on the whole exchange stops it."""
    port = int(self_hosted.url.rsplit(":", 1)[1])
    with TcpProxy("127.0.0.1", port) as proxy:
        umami_connection(monkeypatch, f"http://{proxy.address}", login="admin", password=PASSWORD)
        proxy.set_mode(Mode.TRICKLE, trickle_interval=0.05)
        hook = make_hook(timeout=1.0, max_retries=1)
        started = time.monotonic()

        with pytest.raises(UmamiRetryError, match=r"POST /api/auth/login failed 2 times, last with Timeout"):
            hook.list_websites()

        assert time.monotonic() - started < 4.0  # two tries of 1 s, not minutes of trickle
        proxy.set_mode(Mode.PASS)
        assert [website.id for website in make_hook().list_websites()] == [WEBSITE]  # the same path, healthy


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

    assert [website.id for website in make_hook().list_websites()] == [live["id"]]


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
    team_site = make_sessions.rows.website(str(uuid.uuid4()), "Team Site", user_id=str(uuid.uuid4()),
                                           team_id=str(uuid.uuid4()))
    hook = make_hook()

    own = {website.id for website in hook.list_websites()}
    with_teams = {website.id for website in hook.list_websites(include_teams=True)}

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
    with _cloud_umami(umami_pg, monkeypatch) as fake:
        hook = make_hook()

        websites = hook.list_websites()
        ids = _read_all(hook, OTHER_WEBSITE, page_size=2)

        calls = fake.requests
    assert {website.id for website in websites} == {WEBSITE, OTHER_WEBSITE}
    assert sorted(ids) == sorted(made)
    sessions_path = f"/v1/websites/{OTHER_WEBSITE}/sessions"
    assert [record.path for record in calls] == ["/v1/websites", sessions_path, sessions_path, sessions_path]
    assert all(record.status == 200 for record in calls)  # the fake checks x-umami-api-key on each
    assert hook.stats.logins == 0


@integration
def test_cloud_rate_limit_429_is_waited_out(
    umami_pg: str, make_sessions: SessionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_sessions(3)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)  # really wait: the fake's rate-limit window runs on real time

    with _cloud_umami(umami_pg, monkeypatch, rate_limit=2, rate_window_seconds=1.0) as fake:
        hook = UmamiHook(backoff_base=0.01, backoff_max=0.05, sleep=sleep)

        ids = _read_all(hook, OTHER_WEBSITE, page_size=1)

        statuses = [record.status for record in fake.requests]
    assert sorted(ids) == sorted(made)
    assert statuses == [200, 200, 429, 200]
    assert len(slept) == 1
    assert slept[0] >= 1.0  # the fake's whole-second Retry-After


@integration
def test_a_refused_api_key_fails_at_once_and_other_4xx_too(
    umami_pg: str, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., UmamiHook], sleeps: list[float],
) -> None:
    with _cloud_umami(umami_pg, monkeypatch) as fake:
        umami_connection(monkeypatch, f"{fake.url}/v1", extra={"api_key": "key-of-someone-else"})
        with pytest.raises(UmamiCredentialsError, match=r"GET /v1/websites -> HTTP 401: connection 'umami_api': "
                                                        r"Umami refused the API key"):
            make_hook().list_websites()
        umami_connection(monkeypatch, fake.url, extra={"api_key": API_KEY})  # base URL lacks /v1
        with pytest.raises(UmamiApiError,
                           match=r"GET /websites -> HTTP 404: Not found \(not-found\)") as caught:
            make_hook().list_websites()

        assert [record.status for record in fake.requests] == [401, 404]
    assert type(caught.value) is UmamiApiError
    assert sleeps == []


@integration
def test_on_umami_cloud_a_website_the_key_may_not_read_is_not_a_refused_key(
    umami_pg: str, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., UmamiHook]
) -> None:
    with _cloud_umami(umami_pg, monkeypatch, role="user", user_id=str(uuid.uuid4())), \
            pytest.raises(UmamiAuthError) as caught:
        make_hook().session_page(WEBSITE, WINDOW, 1, 10)

    assert not isinstance(caught.value, UmamiCredentialsError)  # the key works: the website is not the key's


@integration
def test_a_password_echoed_escaped_is_scrubbed_too(scripted_server: Callable[[Handler], str],
                                                   make_hook: Callable[..., UmamiHook],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    password = 'p"a\\ss w/rd+' + uuid.uuid4().hex

    def serve(method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Any:
        from urllib.parse import quote

        echoed = f"{body.decode()} {quote(password)} {password!r}"  # JSON-escaped, URL-encoded, repr-escaped
        return 400, {}, json.dumps({"error": {"message": echoed, "code": "bad"}}).encode()

    url = scripted_server(serve)
    umami_connection(monkeypatch, url, login="admin", password=password)

    with pytest.raises(UmamiApiError) as caught:
        make_hook().list_websites()

    message = caught.value.message
    assert message.count("***") == 3
    for form in (password, json.dumps(password)[1:-1], "p%22a", "a\\\\ss"):
        assert form not in message


@integration
def test_client_rate_limit_spaces_calls(
    umami_pg: str, make_sessions: SessionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_sessions(7)
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # an injected clock: waiting only moves it forward
        slept.append(seconds)
        now[0] += seconds

    with _cloud_umami(umami_pg, monkeypatch) as fake:
        sent_at: list[float] = []
        fake.faults.on_session_page = lambda page: sent_at.append(now[0])
        hook = UmamiHook(rate_limit_calls=3, rate_limit_period=10.0, clock=lambda: now[0], sleep=sleep)

        ids = _read_all(hook, OTHER_WEBSITE, page_size=1)

    assert sorted(ids) == sorted(made)
    assert len(sent_at) == 7
    assert sent_at[:3] == [0.0, 0.0, 0.0]  # no waiting while under the limit
    assert all(later - earlier >= 10.0 for earlier, later in zip(sent_at, sent_at[3:], strict=False))
    assert sum(slept) == sent_at[-1]  # it waited only as long as the limit required


def _current_token(hook: UmamiHook) -> str:
    """The hook keeps its token private; the test reads it only to search for it."""
    assert hook._token is not None
    return hook._token.get_secret_value()


@integration
def test_error_bodies_that_echo_secrets_are_reduced_to_umamis_message(
    scripted_server: Callable[[Handler], str], make_hook: Callable[..., UmamiHook], logged: LogCapture
) -> None:
    """A login endpoint that echoes the request body, and a gateway that echoes the Authorization header:
    only Umami's error message and code may be kept, without the password or the token."""
    token = "tok3n-" + uuid.uuid4().hex * 2
    logins = []

    def serve(method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Any:
        if path == "/api/auth/login":
            logins.append(body)
            if len(logins) == 1:  # the first login is answered by an echoing proxy
                return 400, {}, json.dumps({"error": {"message": f"bad request {body.decode()}",
                                                      "code": "bad-request"}, "echo": body.decode()}).encode()
            return login_reply(token)
        echoed = headers.get("authorization", "")
        return 403, {}, json.dumps({"error": f"forbidden for {echoed}", "headers": headers}).encode()

    scripted_server(serve)
    with pytest.raises(UmamiApiError) as refused:
        make_hook().list_websites()
    with pytest.raises(UmamiApiError) as forbidden:
        make_hook().list_websites()

    texts = [str(refused.value), "".join(traceback.format_exception(refused.value)),
             str(forbidden.value), "".join(traceback.format_exception(forbidden.value)), logged.text()]
    assert refused.value.message.startswith("bad request")
    assert forbidden.value.message == "forbidden for Bearer ***"
    assert all(len(exc.message) <= 200 for exc in (refused.value, forbidden.value))
    for secret in (PASSWORD, token):
        assert not any(secret in text for text in texts)


@integration
def test_secrets_never_reach_logs_errors_or_results(
    umami_pg: str, make_sessions: SessionMaker, monkeypatch: pytest.MonkeyPatch,
    make_hook: Callable[..., UmamiHook], logged: LogCapture,
) -> None:
    made = make_sessions(6)
    texts: list[str] = []
    tokens: set[str] = set()

    def keep(exc: BaseException) -> None:
        texts.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])

    with FakeUmami(umami_pg, password=PASSWORD) as fake:
        umami_connection(monkeypatch, fake.url, login="admin", password=PASSWORD)
        hook = make_hook(max_retries=2)
        hook.log.info("canary %s", PASSWORD)  # proves the capture sees secrets unmasked
        logging.getLogger("canary").info("canary %s", API_KEY)
        canary = logged.text()
        assert PASSWORD in canary
        assert API_KEY in canary
        logged.clear()

        fake.faults.throttle_next, fake.faults.retry_after_seconds = 1, 0
        fake.faults.malformed_ids = {made[2]}
        fake.faults.on_session_page = lambda page: fake.revoke_tokens() if page == 2 else None
        texts.append(repr(hook.session_page(OTHER_WEBSITE, WINDOW, 1, 2)))
        tokens.add(_current_token(hook))
        texts.append(repr([hook.session_page(OTHER_WEBSITE, WINDOW, page, 2) for page in (2, 3)]))
        tokens.add(_current_token(hook))
        fake.faults.on_session_page = None
        fake.faults.fail_next = 10
        with pytest.raises(UmamiRetryError) as retried:
            _read_all(hook, OTHER_WEBSITE, 2)
        keep(retried.value)
        texts.extend([repr(hook.stats), repr(hook.list_websites()), repr(hook.__dict__)])

        umami_connection(monkeypatch, fake.url, login="admin", password=PASSWORD + "-typo")
        with pytest.raises(UmamiAuthError) as rejected:
            make_hook().list_websites()
        keep(rejected.value)
        fake.reset()
        fake.faults.delay_next, fake.faults.delay_seconds = 10, 1.0
        umami_connection(monkeypatch, fake.url, login="admin", password=PASSWORD)
        with pytest.raises(UmamiRetryError) as timed_out:
            make_hook(timeout=0.2, max_retries=1).list_websites()
        keep(timed_out.value)

    with _cloud_umami(umami_pg, monkeypatch) as cloud:
        hook = make_hook()
        texts.append(repr(hook.list_websites()))
        cloud.faults.throttle_next = 1
        texts.append(repr(_read_all(hook, OTHER_WEBSITE, 4)))
        texts.append(repr(hook.__dict__))

    assert len(tokens) == 2
    everything = logged.text() + "\n".join(texts)
    assert "retry 1/2" in everything  # the failures above were logged
    for secret in (PASSWORD, API_KEY, *tokens):
        assert secret not in everything

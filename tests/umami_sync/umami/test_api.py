"""UmamiHook: pure parts first (backoff, Retry-After, connection rule), then real HTTP against FakeUmami."""

from __future__ import annotations

import json
import logging
import math
import random
import time
import traceback
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import pytest

from local_stack.umami_api import FakeUmami
from tests.factories import OTHER_WEBSITE, WEBSITE
from tests.umami_sync.umami.conftest import (
    API_KEY,
    PASSWORD,
    WINDOW_END_MS,
    WINDOW_START_MS,
    SessionMaker,
    umami_connection,
)
from umami_sync.umami.api import (
    API_KEY_HEADER,
    SessionPage,
    UmamiApiError,
    UmamiAuthError,
    UmamiConfigError,
    UmamiHook,
    UmamiPagingError,
    UmamiRetryError,
    full_jitter_backoff,
    parse_retry_after,
)
from umami_sync.umami.models import validate_sessions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.umami_sync.umami.conftest import LogCapture, ScriptedUmami

# --- pure parts -------------------------------------------------------------------------------------


def test_backoff_upper_bound_doubles_up_to_the_cap() -> None:
    upper = [full_jitter_backoff(n, base=0.5, cap=3.0, uniform=lambda low, high: high) for n in range(1, 6)]
    lower = [full_jitter_backoff(n, base=0.5, cap=3.0, uniform=lambda low, high: low) for n in range(1, 6)]

    assert upper == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert lower == [0.0] * 5


def test_backoff_is_spread_over_the_whole_range() -> None:
    rng = random.Random(7)
    delays = [full_jitter_backoff(4, base=1.0, cap=60.0, uniform=rng.uniform) for _ in range(200)]

    assert all(0.0 <= d <= 8.0 for d in delays)
    assert min(delays) < 1.0
    assert max(delays) > 7.0


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), (" 12 ", 12.0), ("0", 0.0), (None, None),
                                                  ("", None), ("soon", None), ("-3", None),
                                                  ("0.25", 0.25), ("1.", None)])
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after("Fri, 27 Nov 2026 12:00:45 -0000", now) == 45.0
    assert parse_retry_after(format_datetime(now - timedelta(minutes=5), usegmt=True), now) == 0.0


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


@pytest.mark.parametrize(("start", "end", "page_size"), [
    (1_764_201_600, 1_764_288_000, 100),  # seconds, not milliseconds
    (1_764_288_000_000, 1_764_201_600_000, 100),  # end before start
    (1_764_201_600_000, 1_764_288_000_000, 0),
])
def test_session_window_arguments_are_checked(start: int, end: int, page_size: int) -> None:
    hook = UmamiHook()

    with pytest.raises(ValueError, match="epoch milliseconds"):
        hook.iter_session_pages("266abb41-957e-4dd3-8229-6a601f80a9db", start, end, page_size)

    assert hook.stats.requests == 0


# --- against FakeUmami over real HTTP ------------------------------------------------------------------

integration = pytest.mark.integration


def _read_all(hook: UmamiHook, website_id: str, page_size: int) -> tuple[list[str], list[SessionPage]]:
    """Every page of the test window, and the ids yielded, in order."""
    pages = list(hook.iter_session_pages(website_id, WINDOW_START_MS, WINDOW_END_MS, page_size))
    return [row.id for page in pages for row in page.rows], pages


def _session_calls(fake: FakeUmami, website_id: str) -> list[tuple[str, int]]:
    """(page, status) of the fake's session-list requests for one website."""
    return [(record.query.get("page", ""), record.status) for record in fake.requests
            if record.path.endswith(f"/websites/{website_id}/sessions")]


def _assert_each_once(ids: list[str], expected: list[str]) -> None:
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == sorted(expected)


@contextmanager
def _cloud_umami(dsn: str, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Iterator[FakeUmami]:
    """A FakeUmami in Umami Cloud mode, with ``umami_api`` set to its ``/v1`` base and the API key."""
    with FakeUmami(dsn, api_key=API_KEY, **options) as fake:
        umami_connection(monkeypatch, f"{fake.url}/v1/", extra={"api_key": API_KEY})  # a trailing / is fine
        yield fake


def _fixture_sessions(folder: Path) -> list[dict[str, Any]]:
    return [row for name in ("api_sessions_p1.json", "api_sessions_p2.json")
            for row in json.loads((folder / name).read_text())["data"]]


def _scripted_rows(folder: Path, count: int) -> list[dict[str, Any]]:
    """``count`` copies of a real session row with fresh ids."""
    template = _fixture_sessions(folder)[0]
    return [{**template, "id": str(uuid.uuid4())} for _ in range(count)]


@integration
def test_login_once_then_bearer_and_rows_as_the_real_server_returned(
    self_hosted: FakeUmami, make_hook: Callable[..., UmamiHook], umami_fixtures: Path
) -> None:
    expected, _ = validate_sessions(_fixture_sessions(umami_fixtures))
    hook = make_hook()

    websites = hook.list_websites()
    _, pages = _read_all(hook, WEBSITE, page_size=2)

    assert [website.id for website in websites] == [WEBSITE]
    assert [row for page in pages for row in page.rows] == expected
    assert [page.page for page in pages] == [1, 2]
    calls = [(record.method, record.path, record.status) for record in self_hosted.requests]
    assert calls[0] == ("POST", "/api/auth/login", 200)
    assert [call for call in calls if call[0] == "POST"] == [calls[0]]
    assert all(status == 200 for _, _, status in calls)  # only a valid bearer token gets 200 here
    assert hook.stats.logins == 1
    assert hook.stats.requests == len(calls)


@integration
@pytest.mark.parametrize(("sessions", "page_size"), [(7, 3), (6, 3), (1, 100), (0, 5)])
def test_requests_per_website_are_pages_plus_login_on_a_healthy_server(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook],
    sessions: int, page_size: int,
) -> None:
    made = make_sessions(sessions)
    hook = make_hook()

    ids, pages = _read_all(hook, OTHER_WEBSITE, page_size)

    expected_pages = max(1, math.ceil(sessions / page_size))  # an empty list still takes one page
    _assert_each_once(ids, made)
    assert ids == made[::-1]  # newest last event first
    assert len(pages) == expected_pages
    assert hook.stats.requests == expected_pages + 1 == len(self_hosted.requests)
    assert _session_calls(self_hosted, OTHER_WEBSITE) == [(str(n), 200) for n in range(1, expected_pages + 1)]
    stats = hook.stats
    assert (stats.retries, stats.restarts, stats.duplicates, stats.invalid_rows) == (0, 0, 0, 0)


@integration
def test_revoked_token_mid_paging_means_one_new_login_and_nothing_lost(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook]
) -> None:
    made = make_sessions(10)
    self_hosted.faults.on_session_page = lambda page: self_hosted.revoke_tokens() if page == 2 else None
    hook = make_hook()

    ids, _ = _read_all(hook, OTHER_WEBSITE, page_size=3)

    _assert_each_once(ids, made)
    assert _session_calls(self_hosted, OTHER_WEBSITE) == [("1", 200), ("2", 200), ("3", 401), ("3", 200),
                                                          ("4", 200)]
    assert [record.path for record in self_hosted.requests].count("/api/auth/login") == 2
    assert (hook.stats.logins, hook.stats.retries, hook.stats.duplicates) == (2, 0, 0)


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
            next(hook.iter_session_pages(WEBSITE, WINDOW_START_MS, WINDOW_END_MS, 10))

        assert [(record.method, record.status) for record in fake.requests] == [
            ("POST", 200), ("GET", 401), ("POST", 200), ("GET", 401)]
        assert hook.stats.logins == 2


@integration
def test_wrong_password_fails_at_once_with_umamis_reason(
    fake_umami: FakeUmami, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., UmamiHook],
    sleeps: list[float],
) -> None:
    umami_connection(monkeypatch, fake_umami.url, login="admin", password="not-the-password")
    hook = make_hook()

    with pytest.raises(UmamiAuthError, match=r"POST /api/auth/login -> HTTP 401: Unauthorized "
                                             r"\(incorrect-username-password\)") as caught:
        hook.list_websites()

    assert caught.value.status == 401
    assert len(fake_umami.requests) == 1
    assert sleeps == []


@integration
def test_429_waits_at_least_retry_after(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook],
    sleeps: list[float],
) -> None:
    made = make_sessions(4)
    self_hosted.faults.on_session_page = lambda page: setattr(self_hosted.faults, "throttle_next", 2) \
        if page == 1 else None
    self_hosted.faults.retry_after_seconds = 0.25  # above backoff_max (0.05): Retry-After must win
    hook = make_hook()

    ids, _ = _read_all(hook, OTHER_WEBSITE, page_size=2)

    _assert_each_once(ids, made)
    assert _session_calls(self_hosted, OTHER_WEBSITE) == [("1", 200), ("2", 429), ("2", 429), ("2", 200)]
    assert len(sleeps) == 2
    assert all(slept >= 0.25 for slept in sleeps)
    assert hook.stats.retries == 2


@integration
def test_500s_are_retried_with_backoff_then_succeed(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook],
    sleeps: list[float],
) -> None:
    made = make_sessions(3)
    self_hosted.faults.fail_next = 2
    hook = make_hook(backoff_base=0.01, backoff_max=0.02)

    ids, _ = _read_all(hook, OTHER_WEBSITE, page_size=5)

    _assert_each_once(ids, made)
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
                                              r"last with HTTP 500"):
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

    ids, _ = _read_all(hook, OTHER_WEBSITE, page_size=5)

    _assert_each_once(ids, made)
    assert hook.stats.retries == 1
    assert len(sleeps) == 1


@integration
def test_malformed_rows_are_reported_with_their_id_and_the_rest_kept(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook]
) -> None:
    made = make_sessions(5)
    corrupted, without_id = made[1], made[3]
    self_hosted.faults.malformed_ids = {corrupted}
    self_hosted.faults.drop_id_ids = {without_id}
    hook = make_hook()

    ids, pages = _read_all(hook, OTHER_WEBSITE, page_size=2)

    invalid = {row.session_id: row.error for page in pages for row in page.invalid}
    _assert_each_once(ids, [session for session in made if session not in (corrupted, without_id)])
    assert set(invalid) == {corrupted, None}
    assert "visits" in invalid[corrupted]
    assert "lastAt" in invalid[corrupted]
    assert invalid[None].startswith("id:")
    assert hook.stats.invalid_rows == 2
    assert len(pages) == 3  # bad rows still count towards the reported total


@integration
def test_count_change_between_pages_restarts_and_yields_every_session_once(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook]
) -> None:
    made = make_sessions(9)
    added: list[str] = []

    def add_two_during_page_2(page: int) -> None:
        if page == 2 and not added:
            added.extend(make_sessions(2))

    self_hosted.faults.on_session_page = add_two_during_page_2
    hook = make_hook()

    ids, pages = _read_all(hook, OTHER_WEBSITE, page_size=3)

    _assert_each_once(ids, made + added)
    assert [page.page for page in pages] == [1, 2, 1, 2, 3, 4]
    yielded_before_restart = sum(len(page.rows) for page in pages[:2])
    assert hook.stats.restarts == 1
    assert hook.stats.duplicates == sum(page.duplicates for page in pages) == yielded_before_restart
    # The page that showed the new count is dropped and read again in the second pass.
    requested = [page for page, _ in _session_calls(self_hosted, OTHER_WEBSITE)]
    assert requested == ["1", "2", "3", "1", "2", "3", "4"]


@integration
def test_a_count_that_keeps_changing_gives_up_after_the_restart_limit(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook]
) -> None:
    make_sessions(4)

    def add_one_per_page(page: int) -> None:
        make_sessions(1)

    self_hosted.faults.on_session_page = add_one_per_page
    hook = make_hook(max_restarts=3)

    with pytest.raises(UmamiPagingError, match=r"count changed while paging .* more than 3 times"):
        _read_all(hook, OTHER_WEBSITE, page_size=2)

    assert hook.stats.restarts == 4


@integration
def test_a_row_seen_twice_within_a_pass_is_counted_not_yielded_twice(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook]
) -> None:
    made = make_sessions(6)  # served newest first: made[5] .. made[0]
    moved = made[1]

    def move_to_top_after_page_1(page: int) -> None:
        if page == 1:
            make_sessions.touch(moved)  # same count; every row before it shifts one place down

    self_hosted.faults.on_session_page = move_to_top_after_page_1
    hook = make_hook()

    ids, pages = _read_all(hook, OTHER_WEBSITE, page_size=3)

    assert len(set(ids)) == len(ids)
    assert [page.duplicates for page in pages] == [0, 1]
    assert hook.stats.duplicates == 1
    assert hook.stats.restarts == 0
    # Offset paging cannot see a row that jumped over the read position while the count stayed the same;
    # the analytics stage reads closed windows (end in the past), where rows do not move.
    assert set(ids) == set(made) - {moved}


@integration
def test_a_short_page_alone_does_not_end_the_list(
    scripted_umami: Callable[..., ScriptedUmami], make_hook: Callable[..., UmamiHook], umami_fixtures: Path
) -> None:
    rows = _scripted_rows(umami_fixtures, 5)
    script = scripted_umami(count=5, pages={1: rows[:2], 2: rows[2:3], 3: rows[3:], 4: rows[:1]})

    ids, _ = _read_all(make_hook(), WEBSITE, page_size=2)

    assert ids == [row["id"] for row in rows]
    assert script.requested_pages == [1, 2, 3]  # page 2 was short; the count ended the list after page 3


@integration
def test_an_empty_page_ends_the_list_before_the_count(
    scripted_umami: Callable[..., ScriptedUmami], make_hook: Callable[..., UmamiHook], umami_fixtures: Path,
    logged: LogCapture,
) -> None:
    rows = _scripted_rows(umami_fixtures, 5)
    script = scripted_umami(count=5, pages={1: rows[:2], 3: rows[2:]})

    ids, pages = _read_all(make_hook(), WEBSITE, page_size=2)

    assert ids == [row["id"] for row in rows[:2]]
    assert script.requested_pages == [1, 2]
    assert [page.rows for page in pages][-1] == []
    assert "page 2 is empty after 2 of 5 rows" in logged.text()


@integration
def test_websites_leave_out_deleted_ones(
    scripted_umami: Callable[..., ScriptedUmami], make_hook: Callable[..., UmamiHook], umami_fixtures: Path
) -> None:
    live = json.loads((umami_fixtures / "api_websites.json").read_text())["data"][0]
    deleted = {**live, "id": str(uuid.uuid4()), "deletedAt": "2026-11-27T16:00:00.000Z"}
    scripted_umami(count=2, pages={1: [live, deleted]})

    websites = make_hook().list_websites()

    assert [website.id for website in websites] == [live["id"]]


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
        ids, _ = _read_all(hook, OTHER_WEBSITE, page_size=2)

        calls = fake.requests
    assert {website.id for website in websites} == {WEBSITE, OTHER_WEBSITE}
    _assert_each_once(ids, made)
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

        ids, _ = _read_all(hook, OTHER_WEBSITE, page_size=1)

        statuses = [record.status for record in fake.requests]
    _assert_each_once(ids, made)
    assert statuses == [200, 200, 429, 200]
    assert len(slept) == 1
    assert slept[0] >= 1.0  # the fake's whole-second Retry-After


@integration
def test_wrong_api_key_and_other_4xx_fail_at_once(
    umami_pg: str, monkeypatch: pytest.MonkeyPatch, make_hook: Callable[..., UmamiHook], sleeps: list[float],
) -> None:
    with _cloud_umami(umami_pg, monkeypatch) as fake:
        umami_connection(monkeypatch, f"{fake.url}/v1", extra={"api_key": "key-of-someone-else"})
        with pytest.raises(UmamiAuthError, match=r"GET /v1/websites -> HTTP 401"):
            make_hook().list_websites()
        umami_connection(monkeypatch, fake.url, extra={"api_key": API_KEY})  # base URL lacks /v1
        with pytest.raises(UmamiApiError,
                           match=r"GET /websites -> HTTP 404: Not found \(not-found\)") as caught:
            make_hook().list_websites()

        assert [record.status for record in fake.requests] == [401, 404]
    assert type(caught.value) is UmamiApiError
    assert sleeps == []


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

        ids, _ = _read_all(hook, OTHER_WEBSITE, page_size=1)

    _assert_each_once(ids, made)
    assert len(sent_at) == 7
    assert sent_at[:3] == [0.0, 0.0, 0.0]  # no waiting while under the limit
    assert all(later - earlier >= 10.0 for earlier, later in zip(sent_at, sent_at[3:], strict=False))
    assert sum(slept) == sent_at[-1]  # it waited only as long as the limit required


def _current_token(hook: UmamiHook) -> str:
    """The hook keeps its token private; the test reads it only to search for it."""
    assert hook._token is not None
    return hook._token.get_secret_value()


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

        fake.faults.throttle_next, fake.faults.retry_after_seconds = 1, 0.01
        fake.faults.malformed_ids = {made[2]}
        fake.faults.on_session_page = lambda page: fake.revoke_tokens() if page == 2 else None
        pages = hook.iter_session_pages(OTHER_WEBSITE, WINDOW_START_MS, WINDOW_END_MS, 2)
        results = [next(pages)]
        tokens.add(_current_token(hook))
        results.extend(pages)
        tokens.add(_current_token(hook))
        fake.faults.on_session_page = None
        fake.faults.fail_next = 10
        with pytest.raises(UmamiRetryError) as retried:
            _read_all(hook, OTHER_WEBSITE, 2)
        keep(retried.value)
        texts.extend([repr(results), repr(hook.stats), repr(hook.list_websites()), repr(hook.__dict__)])

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
        texts.append(repr(list(hook.iter_session_pages(OTHER_WEBSITE, WINDOW_START_MS, WINDOW_END_MS, 4))))
        texts.append(repr(hook.__dict__))

    assert len(tokens) == 2
    everything = logged.text() + "\n".join(texts)
    assert "retry 1/2" in everything  # the failures above were logged
    for secret in (PASSWORD, API_KEY, *tokens):
        assert secret not in everything

"""Transport: pure parts first (backoff, Retry-After, retries and the rate limit through a real requests session
with scripted answers and a fake clock, no socket), then real HTTP through the hook against FakeUmami and a
trickling TCP proxy."""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from tenacity import RetryCallState, Retrying

from local_stack.tcp_proxy import Mode, TcpProxy
from tests.factories import OTHER_WEBSITE, WEBSITE
from tests.umami_sync.umami.conftest import (
    PASSWORD,
    WINDOW,
    SessionMaker,
    cloud_umami,
    exception_texts,
    integration,
    read_all,
    session_calls,
    umami_connection,
)
from umami_sync.umami.api import UmamiHook
from umami_sync.umami.errors import UmamiRequestError, UmamiRetryError
from umami_sync.umami.models import InvalidRow
from umami_sync.umami.redact import Redactor
from umami_sync.umami.transport import Transport, _Transient, _WaitRetryAfter, parse_retry_after
from umami_sync.umami.websites import all_websites

if TYPE_CHECKING:
    from collections.abc import Callable

    from requests import PreparedRequest

    from local_stack.umami_api import FakeUmami

# --- pure parts -------------------------------------------------------------------------------------


@dataclass
class FakeTime:
    """A clock that only waiting moves forward; every wait is recorded."""

    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


Scripted = tuple[int, dict[str, str]] | Exception


class ScriptedAdapter(BaseAdapter):
    """Answers each request with the next ``(status, headers)`` of a script, or raises the next exception, without
    a socket, and notes the fake time each request came at."""

    def __init__(self, time: FakeTime, *answers: Scripted, takes: float = 0.0) -> None:
        super().__init__()
        self.time = time
        self.answers = list(answers)
        self.takes = takes  # fake seconds each exchange lasts
        self.sent_at: list[float] = []

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent_at.append(self.time.now)
        self.time.now += self.takes
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, headers = answer
        response = requests.Response()
        response.status_code, response.headers, response._content = status, CaseInsensitiveDict(headers), b"{}"
        response.request, response.url = request, request.url or ""
        return response

    def close(self) -> None:
        """Nothing to close."""


def scripted(fake_time: FakeTime, *answers: Scripted, takes: float = 0.0,
             **options: Any) -> tuple[Transport, ScriptedAdapter]:
    """A transport whose session answers from ``answers`` on ``fake_time``, each exchange lasting ``takes`` fake
    seconds; ``options`` override its settings."""
    adapter = ScriptedAdapter(fake_time, *answers, takes=takes)

    def session() -> requests.Session:
        made = requests.Session()
        made.mount("http://", adapter)
        return made

    settings: dict[str, Any] = {"timeout": 5.0, "max_retries": 3, "backoff_base": 0.01, "backoff_max": 0.05,
                                "max_retry_wait": 300.0, "rate_limit_calls": None, "rate_limit_period": 15.0,
                                **options}
    return Transport(session, sleep=fake_time.sleep, clock=fake_time.clock, **settings), adapter


URL = "http://umami.test/api/websites"


def test_a_5xx_is_retried_until_an_answer_and_every_wait_is_counted() -> None:
    fake_time = FakeTime()
    transport, adapter = scripted(fake_time, (503, {}), (500, {"Retry-After": "2"}), (200, {}))

    answer = transport.send("GET", URL)

    assert answer.status == 200
    assert (transport.stats.requests, transport.stats.retries, len(adapter.sent_at)) == (3, 2, 3)
    assert fake_time.slept[1] == 2.0  # Retry-After wins over the backoff (at most 0.05 s)
    assert transport.stats.waited_seconds == sum(fake_time.slept)


def test_an_answer_not_worth_a_retry_is_returned_as_it_came() -> None:
    fake_time = FakeTime()
    transport, _ = scripted(fake_time, (404, {}))

    assert transport.send("GET", URL).status == 404
    assert (transport.stats.requests, transport.stats.retries, fake_time.slept) == (1, 0, [])


def test_a_fractional_retry_after_is_waited_out() -> None:
    fake_time = FakeTime()
    transport, _ = scripted(fake_time, (429, {"Retry-After": "1.5"}), (200, {}))

    assert transport.send("GET", URL).status == 200
    assert fake_time.slept == [1.5]  # not the backoff (at most 0.05 s)


def test_each_wait_is_judged_alone_and_a_longer_one_fails_the_try_at_once() -> None:
    """Two requests each wait 200 s (each wait fits in max_retry_wait, 300 s; the waits of earlier requests do
    not count); the third request's answer asks for more than 300 s and fails the try without waiting."""
    fake_time = FakeTime()
    transport, adapter = scripted(fake_time, (429, {"Retry-After": "200"}), (200, {}),
                                  (503, {"Retry-After": "200"}), (200, {}), (429, {"Retry-After": "300.5"}),
                                  max_retry_wait=300.0)

    assert [transport.send("GET", URL).status for _ in range(2)] == [200, 200]
    with pytest.raises(UmamiRetryError, match=r"^Umami GET /api/websites: HTTP 429 asks to wait 300.5 s, longer than "
                                              r"max_retry_wait_seconds \(300 s\); failing this try so that Airflow "
                                              r"retries the task later$"):
        transport.send("GET", URL)

    assert fake_time.slept == [200.0, 200.0]
    assert (len(adapter.sent_at), transport.stats.waited_seconds) == (5, 400.0)


def test_one_request_waits_at_most_max_retries_times() -> None:
    """Every answer asks for 250 s: the request waits max_retries times (750 s, within 3 x max_retry_wait), then
    gives up."""
    fake_time = FakeTime()
    transport, adapter = scripted(fake_time, *[(429, {"Retry-After": "250"})] * 4, max_retries=3,
                                  max_retry_wait=300.0)

    with pytest.raises(UmamiRetryError, match="failed 4 times, last with HTTP 429; giving up"):
        transport.send("GET", URL)

    assert fake_time.slept == [250.0] * 3
    assert len(adapter.sent_at) == 4


def test_the_backoff_never_waits_longer_than_max_retry_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    fake_time = FakeTime()
    transport, _ = scripted(fake_time, (503, {}), (503, {}), (200, {}), backoff_base=10.0, backoff_max=60.0,
                            max_retry_wait=1.0)

    assert transport.send("GET", URL).status == 200
    assert fake_time.slept == [1.0, 1.0]


def test_an_error_requests_raises_leaves_the_transport_scrubbed() -> None:
    """A header requests refuses quotes its value; the transport wraps the error and keeps only scrubbed text."""
    secret = "hdr-s3cret-value"
    redact = Redactor()
    redact.add(secret)
    transport, _ = scripted(FakeTime(), requests.exceptions.InvalidHeader(f"bad header value: {secret!r}"),
                            redact=redact)

    with pytest.raises(UmamiRequestError, match=r"^Umami GET /api/websites: InvalidHeader: bad header value: "
                                                r"'\*\*\*'$") as caught:
        transport.send("GET", URL)

    assert not any(secret in text for text in exception_texts(caught.value))


def test_retried_errors_are_chained_scrubbed() -> None:
    """The error a request gave up on is kept as the cause, scrubbed (a proxy's refusal may quote its URL)."""
    secret = "proxy-s3cret"
    redact = Redactor()
    redact.add(secret)
    refused = [requests.ConnectionError(f"http://sync:{secret}@proxy.internal refused, Bearer {'t' * 40}")
               for _ in range(3)]
    transport, _ = scripted(FakeTime(), *refused, max_retries=2, redact=redact)

    with pytest.raises(UmamiRetryError, match="failed 3 times, last with ConnectionError; giving up") as caught:
        transport.send("GET", URL)

    assert str(caught.value.__cause__) == "ConnectionError: http://***@proxy.internal refused, Bearer ***"  # one rule
    assert not any(secret in text or "t" * 40 in text for text in exception_texts(caught.value))


def test_the_rate_limit_spaces_sends_on_a_fake_clock() -> None:
    fake_time = FakeTime()
    transport, adapter = scripted(fake_time, *[(200, {})] * 5, rate_limit_calls=2, rate_limit_period=10.0)

    for _ in range(5):
        transport.send("GET", URL)

    assert adapter.sent_at == [0.0, 0.0, 10.0, 10.0, 20.0]
    assert transport.stats.waited_seconds == 0.0  # the rate limit is not a retry
    assert transport.stats.rate_limited_seconds == 20.0  # but a wait of its own, counted


def test_a_request_counts_for_the_rate_limit_from_when_its_answer_came() -> None:
    """The server counts a request when it arrives, which may be as late as its answer: the next one waits a whole
    period from there, or the server would see two in less than a period."""
    fake_time = FakeTime()
    transport, adapter = scripted(fake_time, *[(200, {})] * 3, takes=3.0, rate_limit_calls=1, rate_limit_period=10.0)

    for _ in range(3):
        transport.send("GET", URL)

    assert adapter.sent_at == [0.0, 13.0, 26.0]
    assert transport.stats.rate_limited_seconds == 20.0


class TimedAdapter(BaseAdapter):
    """Answers 200 after up to a tenth of a second, noting the real monotonic time each request came at."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[tuple[float, float]] = []  # (sent, answered)
        self._lock = threading.Lock()

    @property
    def sent_at(self) -> list[float]:
        return [sent for sent, _ in self.exchanges]

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        sent = time.monotonic()
        time.sleep(random.uniform(0.0, 0.1))
        with self._lock:
            self.exchanges.append((sent, time.monotonic()))
        response = requests.Response()
        response.status_code, response._content, response.request = 200, b"{}", request
        return response

    def close(self) -> None:
        """Nothing to close."""


def test_the_rate_limit_holds_for_two_threads_sending_through_one_transport() -> None:
    # The listing's reader thread (ReadAhead) and the main thread (session reads) share the hook's transport.
    adapter = TimedAdapter()
    sessions: dict[str, list[requests.Session]] = {}

    def session() -> requests.Session:
        made = requests.Session()
        made.mount("http://", adapter)
        sessions.setdefault(threading.current_thread().name, []).append(made)
        return made

    period = 0.2
    transport = Transport(session, timeout=5.0, max_retries=0, backoff_base=0.01, backoff_max=0.05,
                          max_retry_wait=1.0, rate_limit_calls=2, rate_limit_period=period, sleep=time.sleep,
                          clock=time.monotonic)

    def send_eight(start_after: float) -> None:
        time.sleep(start_after)
        for _ in range(8):
            transport.send("GET", URL)

    threads = [threading.Thread(target=send_eight, args=(start_after,), name=f"sender-{start_after}")
               for start_after in (0.0, period / 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(adapter.exchanges) == transport.stats.requests == 16
    # The server counts a request when it arrives, at any moment between its send and its answer: no three may
    # arrive within one period however late or early each one arrived (less a little for the clock's grain).
    closest = min(max(sent for sent, _ in three) - min(answered for _, answered in three)
                  for three in itertools.combinations(adapter.exchanges, 3))
    assert closest >= period - 0.01
    # each thread sends through a session of its own (requests' sessions are not made for sharing)
    assert sorted(len(made) for made in sessions.values()) == [1, 1]


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
                                                  ("", None), ("soon", None), ("-3", None), ("1.", None),
                                                  ("1.5", 1.5), (" 0.25 ", 0.25), ("2.50", 2.5), (".5", None),
                                                  ("1.5.2", None), ("1e3", None), ("nan", None), ("inf", None)])
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_http_date() -> None:
    in_30_s = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28.0 <= (parse_retry_after(in_30_s) or 0.0) <= 30.0
    assert parse_retry_after(format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)) == 0.0


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

    ids = read_all(hook, OTHER_WEBSITE, page_size=2)

    assert sorted(ids) == sorted(made)
    assert session_calls(self_hosted, OTHER_WEBSITE) == [("1", 200), ("2", 429), ("2", 429), ("2", 200)]
    assert sleeps == [2.0, 2.0]
    assert hook.stats.retries == 2


@integration
def test_a_retry_after_past_the_cap_fails_the_try_instead_of_sleeping(
    self_hosted: FakeUmami, make_hook: Callable[..., UmamiHook], sleeps: list[float]
) -> None:
    self_hosted.faults.throttle_next, self_hosted.faults.retry_after_seconds = 1, 3600
    hook = make_hook(max_retry_wait=300)

    with pytest.raises(UmamiRetryError, match=r"POST /api/auth/login: HTTP 429 asks to wait 3600 s, longer than "
                                              r"max_retry_wait_seconds \(300 s\); failing this try"):
        all_websites(hook)

    assert sleeps == []
    assert len(self_hosted.requests) == 1


@integration
def test_each_wait_is_judged_alone(self_hosted: FakeUmami, make_sessions: SessionMaker,
                                   make_hook: Callable[..., UmamiHook], sleeps: list[float]) -> None:
    """Two answers ask for 200 s each: each fits in max_retry_wait (300 s), so the request waits 400 s in all."""
    made = make_sessions(3)
    hook = make_hook(max_retry_wait=300, max_retries=5)
    all_websites(hook)
    self_hosted.faults.throttle_next, self_hosted.faults.retry_after_seconds = 2, 200

    page = hook.session_page(OTHER_WEBSITE, WINDOW, 1, 10)

    assert sorted(row["id"] for row in page.entries if not isinstance(row, InvalidRow)) == sorted(made)
    assert sleeps == [200.0, 200.0]
    assert hook.stats.waited_seconds == 400.0


@integration
def test_500s_are_retried_with_backoff_then_succeed(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook],
    sleeps: list[float],
) -> None:
    made = make_sessions(3)
    self_hosted.faults.fail_next = 2
    hook = make_hook(backoff_base=0.01, backoff_max=0.02)

    ids = read_all(hook, OTHER_WEBSITE, page_size=5)

    assert sorted(ids) == sorted(made)
    assert session_calls(self_hosted, OTHER_WEBSITE) == [("1", 500), ("1", 500), ("1", 200)]
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
        read_all(hook, OTHER_WEBSITE, page_size=5)

    assert session_calls(self_hosted, OTHER_WEBSITE) == [("1", 500)] * 3
    assert len(sleeps) == 2


@integration
def test_a_request_slower_than_the_timeout_is_retried(
    self_hosted: FakeUmami, make_sessions: SessionMaker, make_hook: Callable[..., UmamiHook],
    sleeps: list[float],
) -> None:
    made = make_sessions(3)
    hook = make_hook(timeout=0.3)
    all_websites(hook)  # log in first, so the slow request is the session list
    self_hosted.faults.delay_next, self_hosted.faults.delay_seconds = 1, 1.5

    ids = read_all(hook, OTHER_WEBSITE, page_size=5)

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
            all_websites(hook)

        assert time.monotonic() - started < 4.0  # two tries of 1 s, not minutes of trickle
        proxy.set_mode(Mode.PASS)
        assert [website.id for website in all_websites(make_hook())] == [WEBSITE]  # the same path, healthy


@integration
def test_cloud_rate_limit_429_is_waited_out(
    umami_pg: str, make_sessions: SessionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_sessions(3)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)  # really wait: the fake's rate-limit window runs on real time

    with cloud_umami(umami_pg, monkeypatch, rate_limit=2, rate_window_seconds=1.0) as fake:
        hook = UmamiHook(backoff_base=0.01, backoff_max=0.05, sleep=sleep)

        ids = read_all(hook, OTHER_WEBSITE, page_size=1)

        statuses = [record.status for record in fake.requests]
    assert sorted(ids) == sorted(made)
    assert statuses == [200, 200, 429, 200]
    assert len(slept) == 1
    assert slept[0] >= 1.0  # the fake's whole-second Retry-After


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

    with cloud_umami(umami_pg, monkeypatch) as fake:
        sent_at: list[float] = []
        fake.faults.on_session_page = lambda page: sent_at.append(now[0])
        hook = UmamiHook(rate_limit_calls=3, rate_limit_period=10.0, clock=lambda: now[0], sleep=sleep)

        ids = read_all(hook, OTHER_WEBSITE, page_size=1)

    assert sorted(ids) == sorted(made)
    assert len(sent_at) == 7
    assert sent_at[:3] == [0.0, 0.0, 0.0]  # no waiting while under the limit
    assert all(later - earlier >= 10.0 for earlier, later in zip(sent_at, sent_at[3:], strict=False))
    assert sum(slept) == sent_at[-1]  # it waited only as long as the limit required


"""Umami REST API client (self-hosted 3.x and Umami Cloud), built on the http provider's ``HttpHook``.

Connection (default id ``umami_api``), in JSON form with the host as a full base URL (a URI with a path
gets mangled by Airflow). Which kind of server it is follows from one rule: the extra ``api_key``.

* Self-hosted (no ``api_key``): login and password are required::

      {"conn_type": "http", "host": "https://umami.example.com", "login": "admin", "password": "..."}

  The hook logs in lazily with ``POST /api/auth/login`` and sends ``Authorization: Bearer <token>``.
* Umami Cloud (extra ``api_key`` set, login left empty)::

      {"conn_type": "http", "host": "https://api.umami.is/v1", "extra": {"api_key": "..."}}

  The key goes in the ``x-umami-api-key`` header and paths lose their ``/api`` prefix.

``HttpHook`` turns every unknown extra into an HTTP header and login/password into Basic auth. This hook
therefore sends ``api_key`` only as ``x-umami-api-key``, never sends Basic auth, and refuses extras named
``Authorization`` or ``x-umami-api-key`` (secrets belong in the password or ``api_key``, which Airflow
masks). Other extras keep their ``HttpHook`` meaning (``verify``, ``proxies``, plain headers...).

Every call is bounded: at most ``timeout`` seconds for the whole exchange (a server that trickles its
answer byte by byte is cut off too), retried with full-jitter backoff (tenacity) on connection errors,
timeouts, 429 and 5xx, honouring ``Retry-After`` up to ``max_retry_wait``. Refused credentials fail at once.
Secrets never appear in log lines, exception messages or return values: an error body is reduced to
Umami's ``error.message`` and ``error.code``, capped, and scrubbed of the password, key and token.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, quote_plus, urlsplit

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk.log import mask_secret
from pydantic import BaseModel, ValidationError
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential
from tenacity.stop import stop_base
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from umami_sync.umami.models import (
    ActivityEvent,
    InvalidRow,
    LoginResponse,
    UmamiPageEnvelope,
    UmamiSession,
    UmamiWebsite,
    validate_session_rows,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import SecretStr
    from requests import Session
    from requests.structures import CaseInsensitiveDict
    from tenacity import RetryCallState

    from umami_sync.windows import ApiWindow

API_KEY_EXTRA = "api_key"
API_KEY_HEADER = "x-umami-api-key"
_RESERVED_HEADER_EXTRAS = frozenset({"authorization", API_KEY_HEADER})
_TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout)
_WEBSITES_PAGE_SIZE = 100
_MIN_EPOCH_MS = 10**11  # 1973-03-03 in milliseconds; a seconds timestamp of today is far below it
_MAX_MESSAGE_CHARS = 200
_BEARER = re.compile(r"(?i)\bbearer\s+\S+")
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9+/_.=-]{32,}")
_RETRY_AFTER = Retry()  # only for its Retry-After parser (delay-seconds or HTTP-date)
_Model = TypeVar("_Model", bound=BaseModel)


class UmamiError(Exception):
    """Base class of the errors this client raises."""


class UmamiConfigError(UmamiError):
    """The Airflow connection does not follow the rule in this module's docstring."""


class UmamiApiError(UmamiError):
    """Umami answered with a non-retryable error status."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"Umami {method} {path} -> HTTP {status}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message

    def __reduce__(self) -> tuple[type[UmamiApiError], tuple[str, str, int, str]]:
        return type(self), (self.method, self.path, self.status, self.message)


class UmamiAuthError(UmamiApiError):
    """Umami answered 401 although the hook had just logged in: the user may not read this."""


class UmamiCredentialsError(UmamiAuthError):
    """Umami refused the connection's credentials (login or Cloud API key): retrying cannot help."""


class UmamiRetryError(UmamiError):
    """A request kept failing (connection error, timeout, 429 or 5xx), or asked for a longer wait than allowed."""


@dataclass
class ApiStats:
    """Counters of one hook instance (plain ints, ready for an XCom result)."""

    requests: int = 0
    retries: int = 0
    logins: int = 0
    list_pages: int = 0  # session-list pages requested, repair pages and restarts included
    activity_calls: int = 0  # per-session activity reads
    waited_seconds: float = 0.0  # slept before retries


@dataclass(frozen=True)
class SessionPage:
    """One page of a session list, its rows validated one by one and kept in the server's order."""

    page: int
    page_size: int
    count: int
    entries: list[UmamiSession | InvalidRow]


@dataclass(frozen=True)
class _Answer:
    """An HTTP answer read in full."""

    status: int
    headers: CaseInsensitiveDict[str]
    body: bytes


class _Transient(Exception):  # noqa: N818 - internal signal for tenacity, never leaves this module
    """A failure worth retrying; ``retry_after`` is what the server asked for, in seconds."""

    def __init__(self, failure: str, retry_after: float | None = None) -> None:
        super().__init__(failure)
        self.failure = failure
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Credentials:
    username: str | None
    password: str | None = field(repr=False)
    api_key: str | None = field(repr=False)


class _WaitRetryAfter(wait_random_exponential):
    """Full-jitter exponential backoff, but never shorter than the server's ``Retry-After``."""

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = super().__call__(retry_state)
        failure = retry_state.outcome.exception() if retry_state.outcome else None
        asked = failure.retry_after if isinstance(failure, _Transient) else None
        return max(backoff, asked or 0.0)


class _WaitBudget(stop_base):
    """Stops retrying when the next wait would take a hook's waiting past its ``max_retry_wait`` (tenacity
    computes the next wait before it asks whether to stop)."""

    def __init__(self, hook: UmamiHook) -> None:
        self.hook = hook
        self.spent = False
        self.asked = 0.0

    def __call__(self, retry_state: RetryCallState) -> bool:
        self.asked = retry_state.upcoming_sleep
        self.spent = self.hook.stats.waited_seconds + self.asked > self.hook.max_retry_wait
        return self.spent


def parse_retry_after(value: str | None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delay-seconds or HTTP-date); None if absent or bad."""
    if not value or not value.strip():
        return None
    try:
        return max(0.0, _RETRY_AFTER.parse_retry_after(value))
    except InvalidHeader:
        return None


class _RateLimiter:
    """At most ``calls`` sends in any sliding window of ``period`` seconds of ``clock``.

    Written here rather than taken from a library: a dozen lines with an injectable clock and sleep,
    where the rate-limit packages bring their own clocks, storage back-ends and a dependency.
    """

    def __init__(self, calls: int, period: float, clock: Callable[[], float], sleep: Callable[[float], None]):
        self._sent: deque[float] = deque(maxlen=calls)
        self._period = period
        self._clock = clock
        self._sleep = sleep

    def wait(self) -> None:
        """Sleep until one more call fits in the window, then record it."""
        if len(self._sent) == self._sent.maxlen:
            wait = self._sent[0] + self._period - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._sent.append(self._clock())


def _bounded(call: Callable[[], _Answer], seconds: float) -> _Answer:
    """Run ``call`` in a helper thread and give up after ``seconds`` in all.

    requests' timeout bounds each socket read, not the exchange: a server that sends one byte per read
    never trips it. Waiting on the thread bounds the whole exchange (``UmamiHook._exchange`` then shuts the
    cut-off exchange's socket and drops its session).
    """
    outcome: Future[_Answer] = Future()

    def run() -> None:
        try:
            outcome.set_result(call())
        except BaseException as exc:  # handed to the waiting caller
            outcome.set_exception(exc)

    threading.Thread(target=run, name="umami-http", daemon=True).start()
    try:
        return outcome.result(timeout=seconds)
    except FutureTimeout:
        raise requests.Timeout(f"no complete answer within {seconds:g} s") from None


class UmamiHook(HttpHook):
    """Read websites, session lists and session activity from Umami; one session and one token per instance.

    :param umami_conn_id: Airflow connection id (see the module docstring for its form).
    :param timeout: seconds per request, for the whole exchange (connect, headers and body).
    :param max_retries: retries after a connection error, timeout, 429 or 5xx (0 = try once).
    :param backoff_base: first retry waits up to this many seconds; doubles per retry (full jitter).
    :param backoff_max: cap of the backoff; a longer ``Retry-After`` still wins, up to ``max_retry_wait``.
    :param max_retry_wait: how long, in all, this hook may wait before retries (backoff and ``Retry-After``);
        a wait past it fails the request at once, so that Airflow's own retry delay takes over and the worker
        slot is freed.
    :param rate_limit_calls: at most this many requests per ``rate_limit_period`` (None = no limit;
        Umami Cloud allows 50 per 15 s).
    :param rate_limit_period: window of the client-side rate limit, in seconds.
    :param sleep: how to wait (injectable for tests).
    :param clock: monotonic seconds for the rate limiter (injectable for tests).
    """

    conn_name_attr = "umami_conn_id"
    default_conn_name = "umami_api"
    conn_type = "http"
    hook_name = "Umami API"

    def __init__(
        self,
        umami_conn_id: str = default_conn_name,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        max_retry_wait: float = 300.0,
        rate_limit_calls: int | None = None,
        rate_limit_period: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(method="GET", http_conn_id=umami_conn_id)
        self.umami_conn_id = umami_conn_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.stats = ApiStats()
        self._wait = _WaitRetryAfter(multiplier=backoff_base, max=backoff_max)
        self._sleep = sleep
        self._limiter = (
            _RateLimiter(rate_limit_calls, rate_limit_period, clock, sleep) if rate_limit_calls else None
        )
        self._token: SecretStr | None = None
        self._session: Session | None = None

    @cached_property
    def _credentials(self) -> _Credentials:
        conn = self.get_connection(self.umami_conn_id)
        extra = conn.extra_dejson
        reserved = sorted(key for key in extra if key.lower() in _RESERVED_HEADER_EXTRAS)
        if reserved:
            raise UmamiConfigError(
                f"connection {self.umami_conn_id!r}: extras {reserved} would be sent as raw headers; put a "
                f"Cloud key in extra {API_KEY_EXTRA!r} or self-hosted credentials in login/password"
            )
        api_key = extra.get(API_KEY_EXTRA) or None
        if api_key and conn.login:
            raise UmamiConfigError(
                f"connection {self.umami_conn_id!r}: set either extra {API_KEY_EXTRA!r} (Umami Cloud) "
                "or login/password (self-hosted), not both"
            )
        if not api_key and not (conn.login and conn.password):
            raise UmamiConfigError(
                f"connection {self.umami_conn_id!r}: needs login and password (self-hosted) "
                f"or extra {API_KEY_EXTRA!r} (Umami Cloud)"
            )
        return _Credentials(username=conn.login, password=conn.password, api_key=api_key)

    @property
    def cloud(self) -> bool:
        """True for Umami Cloud (API key), False for a self-hosted server (login)."""
        return self._credentials.api_key is not None

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> Session:
        """HttpHook's session without Basic auth or a raw ``api_key`` header; with the Cloud key header."""
        credentials = self._credentials
        session: Session = super().get_conn(headers, extra_options)
        session.auth = None
        session.headers.pop(API_KEY_EXTRA, None)
        if credentials.api_key:
            session.headers[API_KEY_HEADER] = credentials.api_key
        return session

    # --- reads --------------------------------------------------------------------------------------

    def list_websites(self, include_teams: bool = False) -> list[UmamiWebsite]:
        """Websites the connection's user can see (and its teams' when asked), deleted ones left out."""
        params: dict[str, Any] = {"includeTeams": "true"} if include_teams else {}
        websites: dict[str, UmamiWebsite] = {}
        page, received = 1, 0
        while True:
            body = self._call("GET", "websites", params={**params, "page": page, "pageSize": _WEBSITES_PAGE_SIZE})
            envelope = _validated(UmamiPageEnvelope, body, "websites")
            for row in envelope.data:
                website = _validated(UmamiWebsite, row, "websites")
                if website.deleted_at is None:
                    websites[website.id] = website
            received += len(envelope.data)
            if received >= envelope.count or not envelope.data:
                return list(websites.values())
            page += 1

    def get_website(self, website_id: str) -> UmamiWebsite | None:
        """The website, or None when Umami has no live website of that id. A website the user may not
        view raises :class:`UmamiAuthError`."""
        body = self._call("GET", f"websites/{website_id}")
        if not body:
            return None
        website = _validated(UmamiWebsite, body, f"websites/{website_id}")
        return website if website.deleted_at is None else None

    def session_page(self, website_id: str, window: ApiWindow, page: int, page_size: int) -> SessionPage:
        """One page of the website's session list for ``window`` (one row per session and hostname)."""
        _check_window(window)
        if page < 1 or page_size < 1:
            raise ValueError(f"need page >= 1 and page_size >= 1, got page={page} page_size={page_size}")
        body = self._call("GET", f"websites/{website_id}/sessions", params={
            "startAt": window.start_ms, "endAt": window.end_ms, "page": page, "pageSize": page_size})
        self.stats.list_pages += 1
        envelope = _validated(UmamiPageEnvelope, body, f"websites/{website_id}/sessions")
        return SessionPage(page, page_size, envelope.count, validate_session_rows(envelope.data))

    def session_activity(self, website_id: str, session_id: str, window: ApiWindow) -> list[ActivityEvent]:
        """The session's events in ``window``, newest first; Umami returns at most 500 per call."""
        _check_window(window)
        body = self._call("GET", f"websites/{website_id}/sessions/{session_id}/activity",
                          params={"startAt": window.start_ms, "endAt": window.end_ms})
        self.stats.activity_calls += 1
        what = f"websites/{website_id}/sessions/{session_id}/activity"
        if not isinstance(body, list):
            raise UmamiApiError("GET", what, 200, "not a list of events")
        return [_validated(ActivityEvent, event, what) for event in body]

    # --- plumbing -----------------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None,
        payload: dict[str, Any] | None = None, authenticated: bool = True,
    ) -> Any:
        """One API call to ``path`` (relative, without ``api/``); logs in lazily, and again once on a 401."""
        url = self.url_from_endpoint(path if self.cloud else f"api/{path}")
        shown = urlsplit(url).path
        if authenticated and not self.cloud and self._token is None:
            self._login()
        answer = self._send(method, url, params, payload, authenticated)
        if authenticated and not self.cloud and answer.status == 401:
            self.log.info("Umami refused the token for %s %s; logging in again", method, shown)
            self._login()
            answer = self._send(method, url, params, payload, authenticated)
        if answer.status == 401 and (not authenticated or (self.cloud and not self._key_works(path))):
            raise UmamiCredentialsError(method, shown, 401, self._refusal(answer))
        if not 200 <= answer.status < 300:
            error = UmamiAuthError if answer.status == 401 else UmamiApiError
            raise error(method, shown, answer.status, self._error_text(answer))
        try:
            return json.loads(answer.body)
        except ValueError:
            raise UmamiApiError(method, shown, answer.status, "not JSON") from None

    def _key_works(self, refused_path: str) -> bool:
        """Whether Umami Cloud accepts the API key at all (it answers 401 for a website the key may not read
        too): one website list of one row tells."""
        if refused_path == "websites":
            return False
        probe = self._send("GET", self.url_from_endpoint("websites"), {"pageSize": 1}, None, True)
        return 200 <= probe.status < 300

    def _login(self) -> None:
        credentials = self._credentials
        body = self._call(
            "POST", "auth/login", payload={"username": credentials.username, "password": credentials.password},
            authenticated=False,
        )
        self._token = _validated(LoginResponse, body, "auth/login", "POST").token
        mask_secret(self._token.get_secret_value())
        self.stats.logins += 1
        self.log.info("Logged in to Umami as %s", credentials.username)

    def _refusal(self, answer: _Answer) -> str:
        who = "the API key" if self.cloud else f"the login of user {self._credentials.username!r}"
        return f"connection {self.umami_conn_id!r}: Umami refused {who} ({self._error_text(answer)})"

    def _error_text(self, answer: _Answer) -> str:
        """What is safe to keep of an error body: Umami's ``error.message`` and ``error.code``, capped and
        scrubbed of the connection's secrets and anything token-like (some gateways echo requests back)."""
        try:
            body = json.loads(answer.body)
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            message, code = error.get("message"), error.get("code")
            text = f"{message} ({code})" if code else str(message)
        elif isinstance(error, str):
            text = error
        else:
            text = "no Umami error in the body"
        credentials = self._credentials
        for secret in (credentials.password, credentials.api_key,
                       self._token.get_secret_value() if self._token else None):
            for form in _echoed_forms(secret):
                text = text.replace(form, "***")
        text = _TOKEN_LIKE.sub("***", _BEARER.sub("Bearer ***", text))
        return text[:_MAX_MESSAGE_CHARS]

    def _send(self, method: str, url: str, params: dict[str, Any] | None, payload: dict[str, Any] | None,
              authenticated: bool) -> _Answer:
        """Send with the rate limit, the whole-exchange timeout and retries (connection errors, timeouts,
        429, 5xx), backing off with full jitter and at least as long as ``Retry-After`` asks; all the waiting of
        this hook stays within ``max_retry_wait``."""
        path = urlsplit(url).path
        budget = _WaitBudget(self)
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1) | budget,
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(method, path, state),
        )
        try:
            return retrying(self._attempt, method, url, path, params, payload, authenticated)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            if budget.spent:
                raise UmamiRetryError(
                    f"Umami {method} {path}: {last}; waiting {budget.asked:.0f} s more would take this task's "
                    f"waiting past max_retry_wait_seconds ({self.max_retry_wait:.0f} s); failing this try so "
                    "that Airflow retries the task later") from None
            raise UmamiRetryError(
                f"Umami {method} {path} failed {exc.last_attempt.attempt_number} times, last with "
                f"{last}; giving up") from last.__cause__ if last else None

    def _attempt(self, method: str, url: str, path: str, params: dict[str, Any] | None,
                 payload: dict[str, Any] | None, authenticated: bool) -> _Answer:
        """One try; :class:`_Transient` for what is worth retrying."""
        if self._limiter is not None:
            self._limiter.wait()
        headers = {}
        if authenticated and self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        self.stats.requests += 1
        try:
            answer = self._exchange(method, url, params=params, json=payload, headers=headers)
        except _TRANSIENT_ERRORS as exc:
            raise _Transient(type(exc).__name__) from exc
        if answer.status == 429 or answer.status >= 500:
            raise _Transient(f"HTTP {answer.status}", parse_retry_after(answer.headers.get("Retry-After")))
        return answer

    def _exchange(self, method: str, url: str, **kwargs: Any) -> _Answer:
        """One HTTP exchange within ``timeout`` seconds in all. A cut-off exchange loses its session, and its
        socket is shut when its headers had come (a body that trickles stops at once)."""
        session = self._session or self.get_conn()
        self._session = session
        started: list[requests.Response] = []

        def call() -> _Answer:
            response = session.request(method, url, timeout=self.timeout, stream=True, **kwargs)
            started.append(response)
            return _Answer(response.status_code, response.headers, response.content)

        try:
            return _bounded(call, self.timeout)
        except requests.Timeout:
            self._session = None
            for response in started:
                connection = response.raw.connection
                if connection is not None and connection.sock is not None:
                    with contextlib.suppress(OSError):
                        connection.sock.shutdown(socket.SHUT_RDWR)
            raise

    def _log_retry(self, method: str, path: str, state: RetryCallState) -> None:
        self.stats.retries += 1
        self.stats.waited_seconds += state.upcoming_sleep
        failure = state.outcome.exception() if state.outcome else None
        self.log.warning("Umami %s %s: %s; retry %s/%s in %.2f s",
                         method, path, failure, state.attempt_number, self.max_retries, state.upcoming_sleep)


def _echoed_forms(secret: str | None) -> list[str]:
    """The forms a secret takes when a server echoes it: as is, escaped in JSON or a repr, URL-encoded."""
    if not secret:
        return []
    forms = {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], quote(secret), quote(secret, safe=""),
             quote_plus(secret)}
    return sorted(forms, key=len, reverse=True)


def _validated(model: type[_Model], body: Any, path: str, method: str = "GET") -> _Model:
    """``body`` as ``model``; an answer that is not what Umami sends is a clear, value-free error."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, error['loc'])) or 'body'}: {error['msg']}"
                             for error in exc.errors(include_url=False, include_input=False)[:3])
        raise UmamiApiError(method, path, 200, f"not what Umami answers ({problems})"[:_MAX_MESSAGE_CHARS]) from None


def _check_window(window: ApiWindow) -> None:
    """Refuse, before any request, what Umami would silently answer with nothing (e.g. seconds)."""
    if window.start_ms < _MIN_EPOCH_MS or window.end_ms < window.start_ms:
        raise ValueError(f"need epoch milliseconds with start <= end, got start={window.start_ms} "
                         f"end={window.end_ms}")


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
Secrets never appear in log lines, exception messages or return values.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests
from airflow.providers.http.hooks.http import HttpHook

from umami_sync.umami.models import (
    InvalidRow,
    LoginResponse,
    UmamiPageEnvelope,
    UmamiSession,
    UmamiWebsite,
    validate_sessions,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pydantic import SecretStr
    from requests import Response, Session

API_KEY_EXTRA = "api_key"
API_KEY_HEADER = "x-umami-api-key"
_RESERVED_HEADER_EXTRAS = frozenset({"authorization", API_KEY_HEADER})
_TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout)
_WEBSITES_PAGE_SIZE = 100
_MIN_EPOCH_MS = 10**11  # 1973-03-03 in milliseconds; a seconds timestamp of today is far below it
_MAX_MESSAGE_CHARS = 200
_DELAY_SECONDS = re.compile(r"\d+(\.\d+)?")

_T = TypeVar("_T")


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
    """Umami answered 401: wrong credentials, or a token refused right after a fresh login."""


class UmamiRetryError(UmamiError):
    """A request kept failing (connection error, timeout, 429 or 5xx) after every retry."""


class UmamiPagingError(UmamiError):
    """A list kept changing its ``count`` while being paged, beyond the restart limit."""


@dataclass
class ApiStats:
    """Counters of one hook instance (plain ints, ready for an XCom result)."""

    requests: int = 0
    retries: int = 0
    pages: int = 0  # list pages used (websites and sessions), not counting ones dropped by a restart
    logins: int = 0
    restarts: int = 0
    duplicates: int = 0
    invalid_rows: int = 0


@dataclass(frozen=True)
class SessionPage:
    """One page of a session list: rows not yielded before in this call, bad rows, repeated rows."""

    page: int
    rows: list[UmamiSession]
    invalid: list[InvalidRow]
    duplicates: int


@dataclass(frozen=True)
class _Credentials:
    username: str | None
    password: str | None = field(repr=False)
    api_key: str | None = field(repr=False)


def full_jitter_backoff(
    attempt: int, base: float, cap: float, uniform: Callable[[float, float], float] = random.uniform
) -> float:
    """Delay before retry ``attempt`` (1-based): uniform in ``[0, min(cap, base * 2 ** (attempt - 1))]``."""
    return uniform(0.0, min(cap, base * 2 ** (attempt - 1)))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delay-seconds or HTTP-date); None if absent or bad.

    Delay-seconds with a fraction (``"0.5"``) are accepted too, though servers send whole seconds.
    """
    if not value:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" dates; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _umami_message(response: Response) -> str:
    """Umami's own error text: ``{"error": {"message", "code"}}``, ``{"error": "..."}`` or the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:_MAX_MESSAGE_CHARS] or response.reason
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = f"{error.get('message')} ({code})" if code else str(error.get("message"))
    else:
        message = str(error if error is not None else body)
    return message[:_MAX_MESSAGE_CHARS]


def _raise_for_status(method: str, path: str, response: Response) -> None:
    if response.ok:
        return
    error_cls = UmamiAuthError if response.status_code == 401 else UmamiApiError
    raise error_cls(method, path, response.status_code, _umami_message(response))


def _is_retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _first_sightings(
    items: list[_T], session_id: Callable[[_T], str | None], seen: set[int]
) -> tuple[list[_T], int]:
    """Items whose session id was not seen yet (remembering it), and how many were repeats.

    ``seen`` keeps 64-bit hashes, not the ids: half the memory per session, and a false repeat needs a
    hash collision (about 1 in 10^8 for a million sessions). Items without an id are always new.
    """
    fresh: list[_T] = []
    for item in items:
        item_id = session_id(item)
        if item_id is None:
            fresh.append(item)
            continue
        digest = hash(item_id)
        if digest not in seen:
            seen.add(digest)
            fresh.append(item)
    return fresh, len(items) - len(fresh)


class _RateLimiter:
    """At most ``calls`` sends in any sliding window of ``period`` seconds of ``clock``."""

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


class UmamiHook(HttpHook):
    """Read websites and session lists from Umami; one requests session and one token per instance.

    :param umami_conn_id: Airflow connection id (see the module docstring for its form).
    :param timeout: seconds per request, for connecting and for reading.
    :param max_retries: retries after a connection error, timeout, 429 or 5xx (0 = try once).
    :param backoff_base: first retry waits up to this many seconds; doubles per retry (full jitter).
    :param backoff_max: cap of the backoff; a longer ``Retry-After`` still wins.
    :param rate_limit_calls: at most this many requests per ``rate_limit_period`` (None = no limit;
        Umami Cloud allows 50 per 15 s).
    :param rate_limit_period: window of the client-side rate limit, in seconds.
    :param max_restarts: how often a paged list may restart because its ``count`` changed.
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
        rate_limit_calls: int | None = None,
        rate_limit_period: float = 15.0,
        max_restarts: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(method="GET", http_conn_id=umami_conn_id)
        self.umami_conn_id = umami_conn_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_restarts = max_restarts
        self.stats = ApiStats()
        self._sleep = sleep
        self._limiter = (
            _RateLimiter(rate_limit_calls, rate_limit_period, clock, sleep) if rate_limit_calls else None
        )
        self._token: SecretStr | None = None

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

    @cached_property
    def _session(self) -> Session:
        return self.get_conn()

    def list_websites(self, include_teams: bool = False) -> list[UmamiWebsite]:
        """Websites the connection's user can see (and its teams' when asked), deleted ones left out."""
        params = {"includeTeams": "true"} if include_teams else {}
        websites: dict[str, UmamiWebsite] = {}
        for envelope in self._iter_envelopes("websites", params, _WEBSITES_PAGE_SIZE):
            for row in envelope.data:
                website = UmamiWebsite.model_validate(row)
                if website.deleted_at is None:
                    websites[website.id] = website
        return list(websites.values())

    def iter_session_pages(
        self, website_id: str, start_ms: int, end_ms: int, page_size: int
    ) -> Iterator[SessionPage]:
        """Page through the sessions with events in ``[start_ms, end_ms]`` (epoch ms, both inclusive).

        Every session id is yielded once per call, even across restarts; repeats are counted.
        Bad arguments (e.g. seconds instead of milliseconds) raise ``ValueError`` here, before any request.
        """
        if start_ms < _MIN_EPOCH_MS or end_ms < start_ms or page_size < 1:
            raise ValueError(
                f"need epoch milliseconds with start <= end and page_size >= 1, "
                f"got start={start_ms} end={end_ms} page_size={page_size}"
            )
        params = {"startAt": start_ms, "endAt": end_ms}
        return self._session_pages(self._iter_envelopes(f"websites/{website_id}/sessions", params, page_size))

    def _session_pages(self, envelopes: Iterator[UmamiPageEnvelope]) -> Iterator[SessionPage]:
        seen: set[int] = set()
        for envelope in envelopes:
            valid, invalid = validate_sessions(envelope.data)
            rows, repeated_rows = _first_sightings(valid, lambda row: row.id, seen)
            bad, repeated_bad = _first_sightings(invalid, lambda row: row.session_id, seen)
            page = SessionPage(envelope.page, rows, bad, repeated_rows + repeated_bad)
            self.stats.duplicates += page.duplicates
            self.stats.invalid_rows += len(page.invalid)
            for row in page.invalid:
                self.log.warning("Skipping malformed Umami session %s: %s", row.session_id, row.error)
            yield page

    def _iter_envelopes(
        self, path: str, params: dict[str, Any], page_size: int
    ) -> Iterator[UmamiPageEnvelope]:
        """Pages until ``count`` rows came or a page is empty; from page 1 again when ``count`` changes."""
        restarts = 0
        page, received, expected = 1, 0, None
        while True:
            body = self._call("GET", path, params={**params, "page": page, "pageSize": page_size})
            envelope = UmamiPageEnvelope.model_validate(body)
            if expected is not None and envelope.count != expected:
                restarts += 1
                self.stats.restarts += 1
                if restarts > self.max_restarts:
                    raise UmamiPagingError(
                        f"Umami {path}: count changed while paging ({expected} -> {envelope.count}) "
                        f"more than {self.max_restarts} times; giving up"
                    )
                self.log.warning("Umami %s: count changed %s -> %s at page %s; restarting from page 1",
                                 path, expected, envelope.count, page)
                page, received, expected = 1, 0, None
                continue
            expected = envelope.count
            self.stats.pages += 1
            yield envelope
            received += len(envelope.data)
            if received >= envelope.count:
                return
            if not envelope.data:
                self.log.warning("Umami %s: page %s is empty after %s of %s rows; ending the list",
                                 path, page, received, envelope.count)
                return
            page += 1

    def _call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None, authenticated: bool = True,
    ) -> Any:
        """One API call to ``path`` (relative, without ``api/``); logs in lazily, and again once on a 401."""
        url = self.url_from_endpoint(path if self.cloud else f"api/{path}")
        if authenticated and not self.cloud and self._token is None:
            self._login()
        response = self._send(method, url, params, json, authenticated)
        if authenticated and not self.cloud and response.status_code == 401:
            self.log.info("Umami refused the token for %s %s; logging in again", method, urlsplit(url).path)
            self._login()
            response = self._send(method, url, params, json, authenticated)
        _raise_for_status(method, urlsplit(url).path, response)
        try:
            return response.json()
        except ValueError:
            raise UmamiApiError(method, urlsplit(url).path, response.status_code, "not JSON") from None

    def _login(self) -> None:
        credentials = self._credentials
        body = self._call(
            "POST", "auth/login", json={"username": credentials.username, "password": credentials.password},
            authenticated=False,
        )
        self._token = LoginResponse.model_validate(body).token
        self.stats.logins += 1
        self.log.info("Logged in to Umami as %s", credentials.username)

    def _send(
        self, method: str, url: str, params: dict[str, Any] | None, json: dict[str, Any] | None,
        authenticated: bool,
    ) -> Response:
        """Send with rate limit, timeout and retries (connection errors, timeouts, 429, 5xx)."""
        session = self._session
        path = urlsplit(url).path
        attempt = 0
        while True:
            if self._limiter is not None:
                self._limiter.wait()
            headers = {}
            if authenticated and self._token is not None:
                headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
            self.stats.requests += 1
            retry_after: float | None = None
            cause: Exception | None = None
            try:
                response = session.request(
                    method, url, params=params, json=json, headers=headers, timeout=self.timeout
                )
            except _TRANSIENT_ERRORS as exc:
                failure, cause = type(exc).__name__, exc
            else:
                if not _is_retryable(response.status_code):
                    return response
                failure = f"HTTP {response.status_code}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            attempt += 1
            if attempt > self.max_retries:
                raise UmamiRetryError(
                    f"Umami {method} {path} failed {attempt} times, last with {failure}; giving up"
                ) from cause
            delay = max(full_jitter_backoff(attempt, self.backoff_base, self.backoff_max), retry_after or 0.0)
            self.stats.retries += 1
            self.log.warning("Umami %s %s: %s; retry %s/%s in %.2f s",
                             method, path, failure, attempt, self.max_retries, delay)
            self._sleep(delay)

"""Umami REST API hook (self-hosted 2.x and 3.x, and Umami Cloud), built on the http provider's ``HttpHook``.

Connection (default id ``umami_api``), in JSON form with the host as a full base URL (a URI with a path
gets mangled by Airflow); the rule it follows is in :mod:`umami_sync.umami.auth`::

    {"conn_type": "http", "host": "https://umami.example.com", "login": "admin", "password": "..."}
    {"conn_type": "http", "host": "https://umami.example.com", "extra": {"api_key": "umami_..."}}
    {"conn_type": "http", "host": "https://api.umami.is/v1", "extra": {"api_key": "..."}}

With a login, the hook logs in lazily with ``POST /api/auth/login`` and sends ``Authorization: Bearer <token>``;
with a self-hosted API key (Umami 3.4+) it sends the key as that bearer and never logs in; on Umami Cloud the key
goes in the ``x-umami-api-key`` header and paths lose their ``/api`` prefix. A key reads only paths Umami allows
keys on (``/api/websites/...``; never ``/api/auth``, ``/api/users``, ``/api/admin``, ``/api/me/...``, ``/api/2fa``
or ``/api/oauth``).

The hook is a thin adapter: one method per endpoint, one request each (:mod:`umami_sync.umami.websites`,
:mod:`umami_sync.umami.listing` and :mod:`umami_sync.umami.activity` page through them). Every request goes
through a :class:`~umami_sync.umami.transport.Transport` (bounded, retried,
rate-limited). Refused credentials, and an account with two-factor authentication, fail at once. A listing's
reader thread and the main thread may call one hook together: they log in once (again once after a 401 both
saw), and the counters stay exact. Secrets never appear in log lines, exception messages or return values: an
error body is reduced to Umami's ``error.message`` and ``error.code``, capped, and scrubbed of the password, key
and token (:mod:`umami_sync.umami.redact`); an error of the exchange keeps only its text, scrubbed the same way;
the partial token of a two-factor login is never kept.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk.log import mask_secret
from pydantic import BaseModel, ValidationError

from umami_sync.umami.auth import API_KEY_EXTRA, SELF_HOSTED_KEY_PREFIX, AuthMode, Credentials
from umami_sync.umami.errors import UmamiApiError, UmamiAuthError, UmamiCredentialsError
from umami_sync.umami.identity_models import SessionDataKey, SessionDetail, SessionProperty, SessionStats
from umami_sync.umami.models import (
    ActivityEvent,
    InvalidRow,
    LoginResponse,
    SessionRow,
    UmamiPageEnvelope,
    UmamiWebsite,
    session_page_rows,
    validate_session_rows,
)
from umami_sync.umami.redact import Redactor, cap
from umami_sync.umami.transport import Transport, TransportStats

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from pydantic import SecretStr
    from requests import Session

    from umami_sync.umami.transport import Answer
    from umami_sync.windows import ApiWindow

_MIN_EPOCH_MS = 10**11  # 1973-03-03 in milliseconds; a seconds timestamp of today is far below it
_Model = TypeVar("_Model", bound=BaseModel)
_Entry = TypeVar("_Entry")


@dataclass
class ApiStats(TransportStats):
    """The transport's counters plus the hook's, of one hook instance (plain numbers, ready for an XCom result)."""

    logins: int = 0
    list_pages: int = 0  # session-list pages requested, repair pages and restarts included
    activity_calls: int = 0  # per-session activity reads


@dataclass(frozen=True)
class Page(Generic[_Entry]):
    """One page of a paged list, its rows validated and kept in the server's order."""

    page: int
    page_size: int
    count: int
    entries: Sequence[_Entry]


SessionPage = Page[SessionRow | InvalidRow]
"""One page of a session list (one row per session and hostname; a malformed row is an :class:`InvalidRow`)."""
WebsitePage = Page[UmamiWebsite]
"""One page of the website list (deleted websites included)."""


class UmamiHook(HttpHook):
    """Read websites, session lists and session activity from Umami; one session and one token per instance.

    :param umami_conn_id: Airflow connection id (see the module docstring for its form).
    :param timeout: seconds per request, for the whole exchange (connect, headers and body).
    :param max_retries: retries of one request after a connection error, timeout, 429 or 5xx (0 = try once).
    :param backoff_base: first retry waits up to this many seconds; doubles per retry (full jitter).
    :param backoff_max: cap of the backoff (``max_retry_wait`` when that is lower); a longer ``Retry-After`` wins.
    :param max_retry_wait: the longest single wait before a retry. An answer whose ``Retry-After`` asks for longer
        fails the request at once, so that Airflow's own retry delay takes over and the worker slot is freed.
        Each wait is judged alone: one request waits at most ``max_retries`` x ``max_retry_wait`` in all.
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
        self.stats = ApiStats()
        self._redact = Redactor()
        self.transport = Transport(
            self.get_conn, timeout=timeout, max_retries=max_retries, backoff_base=backoff_base,
            backoff_max=backoff_max, max_retry_wait=max_retry_wait, rate_limit_calls=rate_limit_calls,
            rate_limit_period=rate_limit_period, sleep=sleep, clock=clock, stats=self.stats, redact=self._redact,
        )
        self._token: SecretStr | None = None
        self._login_lock = threading.Lock()  # one login at a time, and none when another thread just logged in

    @cached_property
    def credentials(self) -> Credentials:
        """The connection's credentials, read once (and scrubbed from every error text from then on)."""
        credentials = Credentials.from_connection(self.get_connection(self.umami_conn_id))
        self._redact.add(credentials.password, credentials.api_key)
        return credentials

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> Session:
        """HttpHook's session without Basic auth or raw ``api_key``/``umami_cloud`` headers; with the key's
        header when the connection has one."""
        credentials = self.credentials
        session: Session = super().get_conn(headers, extra_options)
        credentials.apply(session)
        return session

    # --- endpoints: one request each ----------------------------------------------------------------

    def login(self) -> None:
        """``POST /api/auth/login`` with the connection's login and password (self-hosted); the token it
        returns is sent with every later call, and handed to Airflow's secrets masker. An account with two-factor
        authentication fails with :class:`~umami_sync.umami.errors.UmamiCredentialsError`."""
        with self._login_lock:
            self._login()

    def websites_page(self, page: int, page_size: int, *, include_teams: bool = False) -> WebsitePage:
        """One page of the websites the connection's user can see (and its teams' with ``include_teams``)."""
        params: dict[str, Any] = {"includeTeams": "true"} if include_teams else {}
        body = self._call("GET", "websites", params={**params, "page": page, "pageSize": page_size})
        envelope = _validated(UmamiPageEnvelope, body, "websites")
        return WebsitePage(page, page_size, envelope.count,
                           [_validated(UmamiWebsite, row, "websites") for row in envelope.data])

    def get_website(self, website_id: str) -> UmamiWebsite | None:
        """The website, or None when Umami has no live website of that id. A website the user may not
        view raises :class:`~umami_sync.umami.errors.UmamiAuthError`."""
        body = self._call("GET", f"websites/{website_id}")
        if not body:
            return None
        website = _validated(UmamiWebsite, body, f"websites/{website_id}")
        return website if website.deleted_at is None else None

    def session_page(self, website_id: str, window: ApiWindow, page: int, page_size: int,
                     filters: Mapping[str, str] | None = None) -> SessionPage:
        """One page of the website's session list for ``window`` (one row per session and hostname), narrowed by
        Umami's ``filters`` when given (e.g. ``{"distinctId": "re.."}``: a server that does not know a filter
        answers the whole list)."""
        _check_window(window)
        if page < 1 or page_size < 1:
            raise ValueError(f"need page >= 1 and page_size >= 1, got page={page} page_size={page_size}")
        path = f"websites/{website_id}/sessions"
        answer = self._answer("GET", path, params={
            "startAt": window.start_ms, "endAt": window.end_ms, "page": page, "pageSize": page_size, **(filters or {})})
        self.stats.add(list_pages=1)
        if (whole := session_page_rows(answer.body)) is not None:  # the usual page: validated in one call
            return SessionPage(page, page_size, *whole)
        envelope = _validated(UmamiPageEnvelope, self._decoded("GET", path, answer), path)
        return SessionPage(page, page_size, envelope.count, validate_session_rows(envelope.data))

    def session_activity(self, website_id: str, session_id: str, window: ApiWindow, *,
                         distinct_id: str | None = None) -> list[ActivityEvent]:
        """The session's events in ``window``, newest first; Umami returns at most 500 per call. ``distinct_id`` is
        sent as ``distinctId``: Umami's newer route then answers the sessions linked to that id instead of the
        person the session is linked to (older servers drop the key unread)."""
        _check_window(window)
        params: dict[str, Any] = {"startAt": window.start_ms, "endAt": window.end_ms}
        if distinct_id is not None:
            params["distinctId"] = distinct_id
        path = f"websites/{website_id}/sessions/{session_id}/activity"
        body = self._call("GET", path, params=params)
        self.stats.add(activity_calls=1)
        return [_validated(ActivityEvent, event, path) for event in _listed(body, path)]

    # --- what identities are read from without the database (Umami Cloud) ---------------------------

    def session_detail(self, website_id: str, session_id: str) -> SessionDetail | None:
        """The session's distinct id and first event; None when Umami answers ``{}`` (no such session, or one
        without any event)."""
        path = f"websites/{website_id}/sessions/{session_id}"
        body = self._call("GET", path)
        return _validated(SessionDetail, body, path) if body else None

    def session_properties(self, website_id: str, session_id: str) -> list[SessionProperty]:
        """Every ``session_data`` row of the session (of any time), each with its time."""
        path = f"websites/{website_id}/sessions/{session_id}/properties"
        return [_validated(SessionProperty, row, path) for row in _listed(self._call("GET", path), path)]

    def session_data_keys(self, website_id: str, window: ApiWindow) -> list[SessionDataKey]:
        """Each ``session_data`` key of the website, and how many sessions with an event in ``window`` have it."""
        _check_window(window)
        path = f"websites/{website_id}/session-data/properties"
        body = self._call("GET", path, params={"startAt": window.start_ms, "endAt": window.end_ms})
        return [_validated(SessionDataKey, row, path) for row in _listed(body, path)]

    def session_stats(self, website_id: str, window: ApiWindow) -> SessionStats:
        """The website's session figures for ``window`` (``visitors``: sessions with an event in it)."""
        _check_window(window)
        path = f"websites/{website_id}/sessions/stats"
        body = self._call("GET", path, params={"startAt": window.start_ms, "endAt": window.end_ms})
        return _validated(SessionStats, body, path)

    # --- plumbing -----------------------------------------------------------------------------------

    def _login(self) -> None:
        """:meth:`login`, with the lock held."""
        credentials = self.credentials
        path = "auth/login"
        body = self._call("POST", path, payload={"username": credentials.username, "password": credentials.password},
                          authenticated=False)
        if LoginResponse.asks_for_two_factor(body):
            del body  # it holds the partial token, a secret: nothing of it is kept
            raise UmamiCredentialsError(
                "POST", self._shown(path), 200,
                f"connection {self.umami_conn_id!r}: {credentials.who} has two-factor authentication, which the "
                f"sync cannot complete. Give the connection an API key of that user instead (extra "
                f"{{\"{API_KEY_EXTRA}\": \"{SELF_HOSTED_KEY_PREFIX}...\"}}, Umami 3.4+; no login or password), or a "
                "user without two-factor authentication")
        token = _validated(LoginResponse, body, path, "POST").token
        mask_secret(token.get_secret_value())
        self._redact.add(token.get_secret_value())
        self._token = token
        self.stats.add(logins=1)
        self.log.info("Logged in to Umami as %s", credentials.username)

    def _session_token(self, refused: SecretStr | None = None) -> SecretStr:
        """The token to send: the current one, after a login when there is none yet, or when Umami refused
        ``refused`` and no other thread has logged in again since."""
        with self._login_lock:
            if self._token is None or self._token is refused:
                self._login()
            assert self._token is not None  # set by _login, or it raised
            return self._token

    def _shown(self, path: str) -> str:
        """The URL path of ``path`` (relative, without ``api/``), as messages show it."""
        return urlsplit(self.url_from_endpoint(self.credentials.endpoint(path))).path

    def _call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None,
        payload: dict[str, Any] | None = None, authenticated: bool = True,
    ) -> Any:
        """One API call to ``path`` (relative, without ``api/``), its JSON answer decoded."""
        return self._decoded(method, path, self._answer(method, path, params=params, payload=payload,
                                                        authenticated=authenticated))

    def _decoded(self, method: str, path: str, answer: Answer) -> Any:
        """The JSON of ``answer`` (of a call to ``path``)."""
        try:
            return json.loads(answer.body)
        except ValueError:
            raise UmamiApiError(method, self._shown(path), answer.status, "not JSON") from None

    def _answer(
        self, method: str, path: str, *, params: dict[str, Any] | None = None,
        payload: dict[str, Any] | None = None, authenticated: bool = True,
    ) -> Answer:
        """One API call to ``path`` (relative, without ``api/``), its 2xx answer as it came; logs in lazily, and again
        once on a 401."""
        credentials = self.credentials
        url = self.url_from_endpoint(credentials.endpoint(path))
        shown = urlsplit(url).path
        token = self._session_token() if authenticated and credentials.logs_in else None
        answer = self._send(method, url, params, payload, token)
        if token is not None and answer.status == 401:
            self.log.info("Umami refused the token for %s %s; logging in again", method, shown)
            answer = self._send(method, url, params, payload, self._session_token(refused=token))
        if answer.status == 401 and (not authenticated or (not credentials.logs_in and not self._key_works(path))):
            raise UmamiCredentialsError(method, shown, 401, self._refusal(answer))
        if not 200 <= answer.status < 300:
            error = UmamiAuthError if answer.status == 401 else UmamiApiError
            raise error(method, shown, answer.status, self._error_text(answer))
        return answer

    def _send(self, method: str, url: str, params: dict[str, Any] | None, payload: dict[str, Any] | None,
              token: SecretStr | None) -> Answer:
        """Send through the transport, with ``token`` as the bearer when there is one (an API key is on the
        session already)."""
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}
        return self.transport.send(method, url, params=params, json=payload, headers=headers)

    def _key_works(self, refused_path: str) -> bool:
        """Whether Umami accepts the API key at all (it answers 401 for a website the key may not read too): one
        website list of one row tells."""
        if refused_path == "websites":
            return False
        probe = self._send("GET", self.url_from_endpoint(self.credentials.endpoint("websites")), {"pageSize": 1},
                           None, None)
        return 200 <= probe.status < 300

    def _refusal(self, answer: Answer) -> str:
        credentials = self.credentials
        who = f"the login of {credentials.who}" if credentials.logs_in else credentials.who
        hint = ("; self-hosted API keys need Umami 3.4 or later, on a server without CLOUD_MODE"
                if credentials.mode is AuthMode.API_KEY else "")
        return f"connection {self.umami_conn_id!r}: Umami refused {who} ({self._error_text(answer)}){hint}"

    def _error_text(self, answer: Answer) -> str:
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
        return self._redact(text)


def _validated(model: type[_Model], body: Any, path: str, method: str = "GET") -> _Model:
    """``body`` as ``model``; an answer that is not what Umami sends is a clear, value-free error."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, error['loc'])) or 'body'}: {error['msg']}"
                             for error in exc.errors(include_url=False, include_input=False)[:3])
        raise UmamiApiError(method, path, 200, cap(f"not what Umami answers ({problems})")) from None


def _listed(body: Any, path: str) -> list[Any]:
    """``body`` when it is a JSON list, as Umami answers ``path``; a clear error otherwise."""
    if not isinstance(body, list):
        raise UmamiApiError("GET", path, 200, "not a list")
    return body


def _check_window(window: ApiWindow) -> None:
    """Refuse, before any request, what Umami would silently answer with nothing (e.g. seconds)."""
    if window.start_ms < _MIN_EPOCH_MS or window.end_ms < window.start_ms:
        raise ValueError(f"need epoch milliseconds with start <= end, got start={window.start_ms} "
                         f"end={window.end_ms}")

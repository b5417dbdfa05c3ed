"""The HTTP exchange under the Umami hook: bounded, retried and rate-limited; it knows no endpoint and no auth.

* Bounded: one exchange (connect, headers and body) takes at most ``timeout`` seconds in all. requests' own
  timeout bounds each socket read, so a server trickling its answer byte by byte is cut off here too.
* Retried (tenacity): connection errors, timeouts, 429 and 5xx, at most ``max_retries`` times per request, with
  full-jitter exponential backoff (never longer than ``max_retry_wait``), never sooner than the server's
  ``Retry-After`` (seconds, fractions too, or an HTTP-date). Each wait is judged alone: an answer whose
  ``Retry-After`` is longer than ``max_retry_wait`` fails the request at once, so one request waits at most
  ``max_retries`` x ``max_retry_wait`` in all, and the next request starts afresh.
* Rate-limited: at most ``rate_limit_calls`` requests in any window of ``rate_limit_period`` seconds, each counted
  from when its exchange ended (the latest moment the server can have counted it), so that the server never sees
  more, whatever the network's delays.
* Safe for threads: a listing's reader thread (``read_ahead.ReadAhead``) and the main thread send through one transport.
  Each thread has its own requests session (a ``requests.Session`` is not made for sharing), the rate limit holds for
  both together, and the counters are exact.
* Scrubbed: an error from the exchange (requests refusing a header quotes its value) never leaves as it is: a
  :class:`UmamiRequestError` (or the cause of a :class:`UmamiRetryError`) keeps its text, passed through
  ``redact``, and nothing else of it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import socket
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential
from tenacity.stop import stop_base
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from umami_sync.umami.errors import UmamiRequestError, UmamiRetryError
from umami_sync.umami.redact import Redactor

if TYPE_CHECKING:
    from collections.abc import Callable

    from requests import Session
    from requests.structures import CaseInsensitiveDict
    from tenacity import RetryCallState

log = logging.getLogger(__name__)

_TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout)
_RETRY_AFTER = Retry()  # only for its Retry-After parser of HTTP-dates
_DELAY_SECONDS = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*")


@dataclass
class TransportStats:
    """Counters of one transport (plain numbers, ready for an XCom result); :meth:`add` counts from any thread."""

    requests: int = 0
    retries: int = 0
    waited_seconds: float = 0.0  # slept before retries
    rate_limited_seconds: float = 0.0  # slept for the rate limit (by every thread, summed)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def add(self, **counts: float) -> None:
        """Add ``counts`` to the counters of those names, as one step (other threads may be counting too)."""
        with self._lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer read in full."""

    status: int
    headers: CaseInsensitiveDict[str] = field(repr=False)
    body: bytes = field(repr=False)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header: delay-seconds (with a fraction too, as some servers send it)
    or an HTTP-date; None if absent or bad."""
    if not value or not value.strip():
        return None
    if delay := _DELAY_SECONDS.fullmatch(value):
        return float(delay[1])
    try:
        return max(0.0, _RETRY_AFTER.parse_retry_after(value))
    except InvalidHeader:
        return None


class _Transient(Exception):  # noqa: N818 - internal signal for tenacity, never leaves this module
    """A failure worth retrying; ``retry_after`` is what the server asked for, in seconds; ``cause`` the scrubbed
    error underneath, if any."""

    def __init__(self, failure: str, retry_after: float | None = None, cause: UmamiRequestError | None = None):
        super().__init__(failure)
        self.retry_after = retry_after
        self.cause = cause


class _WaitRetryAfter(wait_random_exponential):
    """Full-jitter exponential backoff, but never shorter than the server's ``Retry-After``."""

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = super().__call__(retry_state)
        failure = retry_state.outcome.exception() if retry_state.outcome else None
        asked = failure.retry_after if isinstance(failure, _Transient) else None
        return max(backoff, asked or 0.0)


class _WaitCap(stop_base):
    """Stops retrying when the next wait would be longer than ``max_retry_wait`` (tenacity computes it before it
    asks whether to stop); ``asked`` keeps that wait."""

    def __init__(self, max_retry_wait: float) -> None:
        self.max_retry_wait = max_retry_wait
        self.asked: float | None = None

    def __call__(self, retry_state: RetryCallState) -> bool:
        if retry_state.upcoming_sleep > self.max_retry_wait:
            self.asked = retry_state.upcoming_sleep
        return self.asked is not None


class _RateLimiter:
    """At most ``calls`` requests in any sliding window of ``period`` seconds of ``clock``, shared by every thread.

    The server counts a request when it arrives, at the latest when it answers: so a request holds its place from
    when it is admitted until a whole period after its answer came (:meth:`answered`). When every place is held by
    a request still in flight, the next one waits for an answer; otherwise it sleeps until the oldest answer is a
    period old, without holding the lock, and looks again (another thread's answer may have come meanwhile).

    Written here rather than taken from a library: a few lines with an injectable clock and sleep, where the
    rate-limit packages bring their own clocks, storage back-ends and a dependency.
    """

    def __init__(self, calls: int, period: float, clock: Callable[[], float], sleep: Callable[[float], None]):
        self._calls = calls
        self._period = period
        self._clock = clock
        self._sleep = sleep
        self._answered = threading.Condition()
        self._held: dict[int, float | None] = {}  # ticket -> when its answer came (None: in flight)
        self._tickets = itertools.count()

    def admit(self) -> tuple[int, float]:
        """Wait until one more request fits in the window, then hold a place for it: its ticket, and the seconds
        waited."""
        started = self._clock()
        while True:
            with self._answered:
                now = self._clock()
                for ticket, answered in list(self._held.items()):
                    if answered is not None and answered + self._period <= now:
                        del self._held[ticket]
                if len(self._held) < self._calls:
                    ticket = next(self._tickets)
                    self._held[ticket] = None
                    return ticket, now - started
                answers = [answered for answered in self._held.values() if answered is not None]
                if not answers:
                    self._answered.wait()
                    continue
                wait = min(answers) + self._period - now
            self._sleep(wait)

    def answered(self, ticket: int) -> None:
        """The exchange of ``ticket`` ended (answered or not): its place is free a period from now."""
        with self._answered:
            self._held[ticket] = self._clock()
            self._answered.notify_all()


def _bounded(call: Callable[[], Answer], seconds: float) -> Answer:
    """Run ``call`` in a helper thread and give up after ``seconds`` in all.

    requests' timeout bounds each socket read, not the exchange: a server that sends one byte per read
    never trips it. Waiting on the thread bounds the whole exchange (``Transport._exchange`` then shuts the
    cut-off exchange's socket and drops its session).
    """
    outcome: Future[Answer] = Future()

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


class Transport:
    """Bounded, retried, rate-limited HTTP exchanges, through one requests session per thread (see the module
    docstring).

    :param session_factory: makes a thread's session to send through (again after an exchange was cut off).
    :param timeout: seconds per exchange, in all (connect, headers and body).
    :param max_retries: retries of one request after a connection error, timeout, 429 or 5xx (0 = try once).
    :param backoff_base: first retry waits up to this many seconds; doubles per retry (full jitter).
    :param backoff_max: cap of the backoff (``max_retry_wait`` when that is lower); a longer ``Retry-After`` wins.
    :param max_retry_wait: the longest single wait before a retry; a longer ``Retry-After`` fails the request.
    :param rate_limit_calls: at most this many requests per ``rate_limit_period`` seconds, every thread's together
        (None = no limit).
    :param rate_limit_period: window of the rate limit, in seconds.
    :param sleep: how to wait (injectable for tests).
    :param clock: monotonic seconds for the rate limiter (injectable for tests).
    :param stats: the counters to count into (a new :class:`TransportStats` by default).
    :param redact: scrubs the text of an error from the exchange (a :class:`Redactor` without secrets by default).
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        *,
        timeout: float,
        max_retries: int,
        backoff_base: float,
        backoff_max: float,
        max_retry_wait: float,
        rate_limit_calls: int | None,
        rate_limit_period: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        stats: TransportStats | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.stats = stats if stats is not None else TransportStats()
        self.redact = redact or Redactor()
        self._wait = _WaitRetryAfter(multiplier=backoff_base, max=min(backoff_max, max_retry_wait))
        self._sleep = sleep
        self.rate_limit_calls = rate_limit_calls
        self._limiter = _RateLimiter(rate_limit_calls, rate_limit_period, clock, sleep) if rate_limit_calls else None
        self._sessions = threading.local()  # each thread's session (None after a cut-off exchange)

    def send(self, method: str, url: str, *, params: dict[str, Any] | None = None,
             json: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Answer:
        """Send with the rate limit, the whole-exchange timeout and retries; any answer that is not retried
        (2xx, 4xx but 429) is returned. Retries that run out raise :class:`UmamiRetryError`, an error that a retry
        does not change :class:`UmamiRequestError`."""
        path = urlsplit(url).path
        cap = _WaitCap(self.max_retry_wait)
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1) | cap,
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(method, path, state),
        )
        try:
            return retrying(self._attempt, method, url, path, params=params, json=json, headers=headers or {})
        except RetryError as exc:
            attempts, last = exc.last_attempt.attempt_number, exc.last_attempt.exception()
        # raised outside the handler, so that no error underneath stays attached as the context
        if cap.asked is not None:
            raise UmamiRetryError(
                f"Umami {method} {path}: {last} asks to wait {cap.asked:g} s, longer than max_retry_wait_seconds "
                f"({self.max_retry_wait:g} s); failing this try so that Airflow retries the task later")
        cause = last.cause if isinstance(last, _Transient) else None
        raise UmamiRetryError(f"Umami {method} {path} failed {attempts} times, last with {last}; giving up") from cause

    def _attempt(self, method: str, url: str, path: str, **kwargs: Any) -> Answer:
        """One try; :class:`_Transient` for what is worth retrying, :class:`UmamiRequestError` for any other
        error of the exchange."""
        limiter = self._limiter
        ticket, slept = limiter.admit() if limiter is not None else (0, 0.0)
        self.stats.add(requests=1, rate_limited_seconds=slept)
        failure: Exception | None = None
        try:
            answer = self._exchange(method, url, **kwargs)
        except _TRANSIENT_ERRORS as exc:
            failure = _Transient(type(exc).__name__, cause=UmamiRequestError(self._scrubbed(exc)))
        except Exception as exc:  # requests refused the request (a header, the URL...): its text may quote a secret
            failure = UmamiRequestError(f"Umami {method} {path}: {self._scrubbed(exc)}")
        else:
            if answer.status == 429 or answer.status >= 500:
                failure = _Transient(f"HTTP {answer.status}", parse_retry_after(answer.headers.get("Retry-After")))
        finally:
            if limiter is not None:
                limiter.answered(ticket)
        if failure is None:
            return answer
        raise failure  # outside the handler: the error underneath is not attached as its context

    def _scrubbed(self, exc: Exception) -> str:
        """What is kept of an error of the exchange: its type and its scrubbed text."""
        return f"{type(exc).__name__}: {self.redact(str(exc))}"

    def _session(self) -> Session:
        """The calling thread's session, made on its first request (and again after a cut-off exchange)."""
        session: Session | None = getattr(self._sessions, "session", None)
        if session is None:
            session = self._sessions.session = self.session_factory()
        return session

    def _exchange(self, method: str, url: str, **kwargs: Any) -> Answer:
        """One HTTP exchange through the thread's session, within ``timeout`` seconds in all. A cut-off exchange
        loses its session, and its socket is shut when its headers had come (a body that trickles stops at once)."""
        session = self._session()
        started: list[requests.Response] = []

        def call() -> Answer:
            response = session.request(method, url, timeout=self.timeout, stream=True, **kwargs)
            started.append(response)
            return Answer(response.status_code, response.headers, response.content)

        try:
            return _bounded(call, self.timeout)
        except requests.Timeout:
            self._sessions.session = None
            for response in started:
                connection = response.raw.connection
                if connection is not None and connection.sock is not None:
                    with contextlib.suppress(OSError):
                        connection.sock.shutdown(socket.SHUT_RDWR)
            raise

    def _log_retry(self, method: str, path: str, state: RetryCallState) -> None:
        self.stats.add(retries=1, waited_seconds=state.upcoming_sleep)
        failure = state.outcome.exception() if state.outcome else None
        log.warning("Umami %s %s: %s; retry %s/%s in %.2f s",
                    method, path, failure, state.attempt_number, self.max_retries, state.upcoming_sleep)

"""Fixtures for the Umami API client: Umami's PostgreSQL with the real 3.1.0 rows, FakeUmami over HTTP,
a scripted server for what FakeUmami does not do, and the ``umami_api`` connection through
``AIRFLOW_CONN_UMAMI_API``; and the helpers the test files share.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from local_stack.postgres import run_sql_file
from local_stack.umami_api import FakeUmami
from tests.factories import OTHER_WEBSITE, UmamiRows
from umami_sync.umami.api import UmamiHook
from umami_sync.umami.listing import SessionListing
from umami_sync.windows import ApiWindow

if TYPE_CHECKING:
    from pathlib import Path

PASSWORD = "pw-Zq8-never-logged"
API_KEY = "key-Vt3-never-logged"
DAY_START = datetime(2026, 11, 27, tzinfo=UTC)
# The caller passes an inclusive window in epoch milliseconds: the whole of 2026-11-27.
WINDOW_START_MS = int(DAY_START.timestamp() * 1000)
WINDOW_END_MS = int((DAY_START + timedelta(days=1)).timestamp() * 1000) - 1
WINDOW = ApiWindow(WINDOW_START_MS, WINDOW_END_MS)
integration = pytest.mark.integration


@pytest.fixture
def umami_pg(umami_db: str, umami_fixtures: Path) -> str:
    """Umami's database holding exactly the rows a real 3.1.0 server wrote (``rows.sql``)."""
    run_sql_file(umami_db, umami_fixtures / "rows.sql")
    return umami_db


@dataclass
class SessionMaker:
    """Inserts sessions with one page view each, newest last, on a second website."""

    rows: UmamiRows
    website_id: str = OTHER_WEBSITE
    _made: int = 0

    def __call__(self, count: int) -> list[str]:
        """Add ``count`` sessions with events inside the test window; return their ids."""
        ids = []
        for _ in range(count):
            self._made += 1
            when = DAY_START + timedelta(hours=1, minutes=self._made)
            session_id = self.rows.session(when, website_id=self.website_id)
            self.rows.event(session_id, when, website_id=self.website_id)
            ids.append(session_id)
        return ids

    def touch(self, session_id: str) -> None:
        """Give a session a new page view later than every other in the window (it moves to page 1)."""
        self.rows.event(session_id, DAY_START + timedelta(hours=20), website_id=self.website_id,
                        visit_id=str(uuid.uuid4()))


@pytest.fixture
def make_sessions(umami_pg: str) -> Iterator[SessionMaker]:
    """Insert extra sessions (and their website row) straight into Umami's PostgreSQL."""
    rows = UmamiRows(umami_pg)
    rows.website(OTHER_WEBSITE, "Other Site")
    yield SessionMaker(rows)
    rows.close()


@pytest.fixture
def fake_umami(umami_pg: str) -> Iterator[FakeUmami]:
    """A self-hosted FakeUmami (admin / ``PASSWORD``) for one test."""
    with FakeUmami(umami_pg, password=PASSWORD) as fake:
        yield fake


def umami_connection(monkeypatch: pytest.MonkeyPatch, host: str, **fields: Any) -> None:
    """Set the ``umami_api`` connection (JSON form, host as a full base URL)."""
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", json.dumps({"conn_type": "http", "host": host, **fields}))


@pytest.fixture
def sleeps() -> list[float]:
    """What the hook asked to sleep (the injected sleep records instead of waiting)."""
    return []


@pytest.fixture
def make_hook(sleeps: list[float]) -> Callable[..., UmamiHook]:
    """A hook with small timeouts and backoff whose sleeps are recorded; kwargs override."""

    def build(**overrides: Any) -> UmamiHook:
        options: dict[str, Any] = {"timeout": 5.0, "max_retries": 3, "backoff_base": 0.01,
                                   "backoff_max": 0.05, "sleep": sleeps.append, **overrides}
        return UmamiHook(**options)

    return build


@pytest.fixture
def self_hosted(monkeypatch: pytest.MonkeyPatch, fake_umami: FakeUmami) -> FakeUmami:
    """``umami_api`` pointing at the self-hosted fake with its credentials."""
    umami_connection(monkeypatch, fake_umami.url, login=fake_umami.username, password=PASSWORD)
    return fake_umami


@dataclass
class LogCapture:
    """Everything logged in a test, as text: Airflow's hook loggers print through structlog to stdout,
    other libraries (urllib3...) go through ``logging``."""

    caplog: pytest.LogCaptureFixture
    capfd: pytest.CaptureFixture[str]
    printed: list[str] = field(default_factory=list)

    def text(self) -> str:
        """All captured so far (since the last ``clear``)."""
        self.printed.extend(self.capfd.readouterr())
        return self.caplog.text + "".join(self.printed)

    def clear(self) -> None:
        """Forget what was captured so far."""
        self.text()
        self.caplog.clear()
        self.printed.clear()


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> LogCapture:
    """Capture every log line of the test, DEBUG and up."""
    caplog.set_level(logging.DEBUG)
    return LogCapture(caplog, capfd)


Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[[str, str, dict[str, str], dict[str, str], bytes], Reply]


@pytest.fixture
def scripted_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Handler], str]]:
    """A server whose every answer comes from ``handler(method, path, query, headers, body)``, for what
    FakeUmami does not do (gateways that echo requests, bodies that are not Umami's). Calling the fixture
    starts it, points ``umami_api`` at it (admin / ``PASSWORD``) and returns its URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(handler: Handler) -> str:
        class Serve(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = urlsplit(self.path)
                status, headers, payload = handler(self.command, target.path, dict(parse_qsl(target.query)),
                                                   {k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve  # noqa: N815 - names http.server dispatches on

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Serve)
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        umami_connection(monkeypatch, url, login="admin", password=PASSWORD)
        return url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def login_reply(token: str = "scripted-token-" + "t" * 40) -> Reply:
    """A 200 login answer as Umami gives it."""
    return 200, {}, json.dumps({"token": token, "user": {"id": str(uuid.uuid4()), "username": "admin"}}).encode()


def read_all(hook: UmamiHook, website_id: str, page_size: int) -> list[str]:
    """The session ids of the test window's whole list, in the order they were read."""
    listing = SessionListing(lambda page, size: hook.session_page(website_id, WINDOW, page, size),
                             page_size=page_size, what=f"website {website_id}")
    return [listed["id"] for page in listing for listed in page.rows]


def session_calls(fake: FakeUmami, website_id: str) -> list[tuple[str, int]]:
    """(page, status) of the fake's session-list requests for one website."""
    return [(record.query.get("page", ""), record.status) for record in fake.requests
            if record.path.endswith(f"/websites/{website_id}/sessions")]


@contextmanager
def cloud_umami(dsn: str, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Iterator[FakeUmami]:
    """A FakeUmami in Umami Cloud mode, with ``umami_api`` set to its ``/v1`` base and the API key."""
    with FakeUmami(dsn, api_key=API_KEY, **options) as fake:
        umami_connection(monkeypatch, f"{fake.url}/v1/", extra={"api_key": API_KEY})  # a trailing / is fine
        yield fake


def current_token(hook: UmamiHook) -> str:
    """The hook keeps its token private; the test reads it only to search for it."""
    assert hook._token is not None
    return hook._token.get_secret_value()


def exception_texts(exc: BaseException) -> list[str]:
    """Every text an exception carries (its str, repr, args, attributes and traceback), and those of every exception
    chained to it as cause or context."""
    texts: list[str] = []
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args), repr(vars(current)),
                  "".join(traceback.format_exception(current))]
        pending += [current.__cause__, current.__context__]
    return texts

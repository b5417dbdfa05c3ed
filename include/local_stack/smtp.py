"""A local SMTP server on 127.0.0.1 that keeps every message it receives (aiosmtpd): where the tests and the demo
send the alerts' e-mails, so that they can be read back.

Plain by default (no TLS, no login: the demo's). With ``secure=True`` it speaks as a submission server does in
production (port 587): STARTTLS with a certificate of a CA made for it (``trustme``; :attr:`LocalSmtp.ca_path`),
required before anything else, then AUTH LOGIN (the only mechanism it offers) with :attr:`LocalSmtp.login`.
"""

from __future__ import annotations

import email
import email.policy
import json
import secrets
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from local_stack._proc import free_port
from local_stack.tls import loopback_tls

if TYPE_CHECKING:
    from email.message import EmailMessage
    from types import TracebackType

FROM_EMAIL = "airflow@example.com"


class _Keep:
    """aiosmtpd handler: keep each message, parsed."""

    def __init__(self, server: LocalSmtp) -> None:
        self.server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        """Keep the message; 250."""
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.server.received:
            self.server.messages.append(message)
            self.server.received.notify_all()
        return "250 Message accepted for delivery"


class LocalSmtp:
    """SMTP on 127.0.0.1:``port`` (0: a free port), messages kept in ``messages``; plain, or (``secure``) STARTTLS and
    AUTH LOGIN required, each login kept in ``logins`` as (mechanism, user, accepted)."""

    def __init__(self, port: int = 0, *, secure: bool = False) -> None:
        self.port = port or free_port()
        self.secure = secure
        self.messages: list[EmailMessage] = []
        self.logins: list[tuple[str, str, bool]] = []
        self.received = threading.Condition()
        self.login = ("alerts", secrets.token_urlsafe(12))
        self._folder = tempfile.TemporaryDirectory(prefix="umami-smtp-") if secure else None
        self.ca_path = Path(self._folder.name) / "ca.pem" if self._folder else None
        tls: dict[str, Any] = {}
        if self.ca_path is not None:
            tls = {"tls_context": loopback_tls(self.ca_path), "require_starttls": True, "auth_require_tls": True,
                   "auth_required": True, "auth_exclude_mechanism": ["PLAIN"], "authenticator": self._authenticate}
        self._controller = Controller(_Keep(self), hostname="127.0.0.1", port=self.port, **tls)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        accepted = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(), auth_data.password.decode()) == self.login
        user = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else ""
        self.logins.append((mechanism, user, accepted))
        return AuthResult(success=accepted, handled=False)

    def start(self) -> LocalSmtp:
        """Listen (returns once the server answers)."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening (and remove the certificate's folder)."""
        self._controller.stop()
        if self._folder is not None:
            self._folder.cleanup()

    def __enter__(self) -> LocalSmtp:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def connection(self) -> str:
        """An Airflow ``smtp`` connection (JSON form) to this server: plain (no SSL, no STARTTLS, no login), or as a
        production submission server takes it (STARTTLS on, SSL off, login and password)."""
        if self.secure:
            return json.dumps({"conn_type": "smtp", "host": "localhost", "port": self.port, "login": self.login[0],
                               "password": self.login[1], "extra": {"disable_ssl": True, "from_email": FROM_EMAIL}})
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                           "extra": {"disable_ssl": True, "disable_tls": True, "from_email": FROM_EMAIL}})

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """The messages once ``count`` have come (fewer after ``timeout`` seconds)."""
        with self.received:
            self.received.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            return list(self.messages)

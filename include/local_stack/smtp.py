"""A local SMTP server on 127.0.0.1 that keeps every message it receives (aiosmtpd): where the tests and the demo
send the alerts' e-mails, so that they can be read back."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller

from local_stack._proc import free_port

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
    """Plain SMTP (no TLS, no login) on 127.0.0.1:``port`` (0: a free port), messages kept in ``messages``."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.received = threading.Condition()
        self._controller = Controller(_Keep(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> LocalSmtp:
        """Listen (returns once the server answers)."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()

    def __enter__(self) -> LocalSmtp:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def connection(self) -> str:
        """An Airflow ``smtp`` connection (JSON form) to this server: no SSL, no STARTTLS, no login."""
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                           "extra": {"disable_ssl": True, "disable_tls": True, "from_email": FROM_EMAIL}})

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """The messages once ``count`` have come (fewer after ``timeout`` seconds)."""
        with self.received:
            self.received.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            return list(self.messages)

"""The connection rule of the Umami hook, and the credentials it yields.

Which kind of server a connection points at follows from one rule, the extra ``api_key``:

* Self-hosted (no ``api_key``): login and password are required; the hook logs in with them.
* Umami Cloud (extra ``api_key`` set, login left empty): the key goes in the ``x-umami-api-key`` header.

``HttpHook`` turns every unknown extra into an HTTP header and login/password into Basic auth. The hook
therefore sends ``api_key`` only as ``x-umami-api-key``, never sends Basic auth, and a connection with an extra
named ``Authorization`` or ``x-umami-api-key`` is refused (secrets belong in the password or ``api_key``, which
Airflow masks). Other extras keep their ``HttpHook`` meaning (``verify``, ``proxies``, plain headers...).

Login, password and API key are checked when they are read, before any request: white space at their ends is
trimmed (a secret store's trailing newline), and one with a control character inside (a line break, a tab) is
refused, naming the connection and the field, never the value: requests would refuse it as a header and quote it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from umami_sync.umami.errors import UmamiConfigError

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from requests import Session

API_KEY_EXTRA = "api_key"
API_KEY_HEADER = "x-umami-api-key"
_RESERVED_HEADER_EXTRAS = frozenset({"authorization", API_KEY_HEADER})


@dataclass(frozen=True)
class Credentials:
    """What a connection authenticates with: a login and password (self-hosted) or an API key (Cloud)."""

    username: str | None
    password: str | None = field(repr=False)
    api_key: str | None = field(repr=False)

    @classmethod
    def from_connection(cls, conn: Connection) -> Credentials:
        """The credentials of ``conn``; a connection that breaks the rule raises :class:`UmamiConfigError`."""
        extra = conn.extra_dejson
        reserved = sorted(key for key in extra if key.lower() in _RESERVED_HEADER_EXTRAS)
        if reserved:
            raise UmamiConfigError(
                f"connection {conn.conn_id!r}: extras {reserved} would be sent as raw headers; put a "
                f"Cloud key in extra {API_KEY_EXTRA!r} or self-hosted credentials in login/password"
            )
        login = _checked(conn.conn_id, "login", conn.login)
        password = _checked(conn.conn_id, "password", conn.password)
        api_key = _checked(conn.conn_id, f"extra {API_KEY_EXTRA!r}", extra.get(API_KEY_EXTRA))
        if api_key and login:
            raise UmamiConfigError(
                f"connection {conn.conn_id!r}: set either extra {API_KEY_EXTRA!r} (Umami Cloud) "
                "or login/password (self-hosted), not both"
            )
        if not api_key and not (login and password):
            raise UmamiConfigError(
                f"connection {conn.conn_id!r}: needs login and password (self-hosted) "
                f"or extra {API_KEY_EXTRA!r} (Umami Cloud)"
            )
        return cls(username=login, password=password, api_key=api_key)

    @property
    def cloud(self) -> bool:
        """True for Umami Cloud (API key), False for a self-hosted server (login)."""
        return self.api_key is not None

    def apply(self, session: Session) -> None:
        """Make ``session`` (as ``HttpHook`` built it) send these credentials only as the rule says: no Basic
        auth, no raw ``api_key`` header, the Cloud key under its own header."""
        session.auth = None
        session.headers.pop(API_KEY_EXTRA, None)
        if self.api_key:
            session.headers[API_KEY_HEADER] = self.api_key


def _checked(conn_id: str, name: str, value: object) -> str | None:
    """``value`` trimmed of white space at its ends (None when nothing is left). A value that is not text, or
    holds a control character inside, raises :class:`UmamiConfigError` naming the field, never the value."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise UmamiConfigError(f"connection {conn_id!r}: {name} must be text")
    value = value.strip()
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise UmamiConfigError(f"connection {conn_id!r}: {name} holds a control character (a line break, a tab...) "
                               "inside; fix the connection")
    return value or None

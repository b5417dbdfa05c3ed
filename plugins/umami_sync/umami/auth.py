"""The connection rule of the Umami hook, and the credentials it yields.

How the hook authenticates follows from the connection, by one rule:

* **Login** (no extra ``api_key``): a self-hosted server. Login and password are required; the hook logs in with
  ``POST /api/auth/login`` and sends the token it gets as ``Authorization: Bearer <token>`` to ``/api/...``.
* **Umami Cloud** (extra ``api_key``, and the host's path ends in ``/v1``, as Cloud's ``https://api.umami.is/v1``):
  the key goes in the ``x-umami-api-key`` header, and paths have no ``/api`` prefix.
* **Self-hosted API key** (extra ``api_key`` on any other host: ``https://umami.example.com``, or a server behind a
  path prefix, ``https://example.com/analytics``): Umami 3.4+ takes the key as ``Authorization: Bearer <key>`` on
  the ``/api/...`` paths; the hook never logs in. Such keys start with ``umami_`` (Umami's ``src/lib/api-key.ts``
  at 65bf19e0; its server treats any other bearer value as a login token), so another key fails here, before any
  request.

The extra ``umami_cloud`` (``true`` or ``false``) overrides the ``/v1`` test for the rare host it misjudges: a
self-hosted server behind a path prefix that ends in ``/v1``, or Cloud's API behind a gateway of your own. Cloud's
host ``api.umami.is`` without ``/v1`` is refused, naming the base to use.

``HttpHook`` turns every unknown extra into an HTTP header and login/password into Basic auth. The hook therefore
sends ``api_key`` only as the rule says, never sends ``umami_cloud`` or Basic auth, and a connection with an extra
named ``Authorization`` or ``x-umami-api-key`` is refused (secrets belong in the password or ``api_key``, which
Airflow masks). Other extras keep their ``HttpHook`` meaning (``verify``, ``proxies``, plain headers...).

Login, password and API key are checked when they are read, before any request: white space at their ends is
trimmed (a secret store's trailing newline), and one with a control character inside (a line break, a tab) is
refused, naming the connection and the field, never the value: requests would refuse it as a header and quote it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from umami_sync.umami.errors import UmamiConfigError

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from requests import Session

API_KEY_EXTRA = "api_key"
CLOUD_EXTRA = "umami_cloud"
API_KEY_HEADER = "x-umami-api-key"
CLOUD_HOST = "api.umami.is"
CLOUD_BASE = f"https://{CLOUD_HOST}/v1"
SELF_HOSTED_KEY_PREFIX = "umami_"
"""How a self-hosted API key starts (Umami's ``API_KEY_PREFIX``)."""
_RESERVED_HEADER_EXTRAS = frozenset({"authorization", API_KEY_HEADER})


class AuthMode(StrEnum):
    """How the hook authenticates (see the module docstring)."""

    LOGIN = "login"
    API_KEY = "self-hosted API key"
    CLOUD = "Umami Cloud API key"


@dataclass(frozen=True)
class Credentials:
    """What a connection authenticates with, and how: a login and password, or an API key (Cloud or self-hosted)."""

    mode: AuthMode
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
                f"connection {conn.conn_id!r}: extras {reserved} would be sent as raw headers; put an API key in "
                f"extra {API_KEY_EXTRA!r} or self-hosted credentials in login/password"
            )
        login = _checked(conn.conn_id, "login", conn.login)
        password = _checked(conn.conn_id, "password", conn.password)
        api_key = _checked(conn.conn_id, f"extra {API_KEY_EXTRA!r}", extra.get(API_KEY_EXTRA))
        if api_key and login:
            raise UmamiConfigError(
                f"connection {conn.conn_id!r}: set either extra {API_KEY_EXTRA!r} (an API key: Umami Cloud, or "
                "self-hosted Umami 3.4+) or login/password (self-hosted), not both"
            )
        if not api_key and not (login and password):
            raise UmamiConfigError(
                f"connection {conn.conn_id!r}: needs login and password (self-hosted) "
                f"or extra {API_KEY_EXTRA!r} (an API key: Umami Cloud, or self-hosted Umami 3.4+)"
            )
        mode = _mode(conn, extra.get(CLOUD_EXTRA), has_key=api_key is not None)
        if mode is AuthMode.API_KEY and not (api_key or "").startswith(SELF_HOSTED_KEY_PREFIX):
            raise UmamiConfigError(
                f"connection {conn.conn_id!r}: extra {API_KEY_EXTRA!r} is not a self-hosted Umami API key (those "
                f"start with {SELF_HOSTED_KEY_PREFIX!r}, Umami 3.4+). For an Umami Cloud key set the host to "
                f"{CLOUD_BASE}"
            )
        return cls(mode=mode, username=login, password=password, api_key=api_key)

    @property
    def cloud(self) -> bool:
        """True for Umami Cloud (paths without ``/api``)."""
        return self.mode is AuthMode.CLOUD

    @property
    def logs_in(self) -> bool:
        """True when the hook logs in (login and password) rather than sending an API key."""
        return self.mode is AuthMode.LOGIN

    @property
    def who(self) -> str:
        """Whom Umami knows the connection as, for messages (never a secret)."""
        return f"user {self.username!r}" if self.logs_in else "the API key"

    def endpoint(self, path: str) -> str:
        """Where ``path`` (relative, without ``api/``) lies under the connection's base URL."""
        return path if self.cloud else f"api/{path}"

    def apply(self, session: Session) -> None:
        """Make ``session`` (as ``HttpHook`` built it) send these credentials only as the rule says: no Basic
        auth, no raw ``api_key`` or ``umami_cloud`` header; a key under its header."""
        session.auth = None
        session.headers.pop(API_KEY_EXTRA, None)
        session.headers.pop(CLOUD_EXTRA, None)
        if self.mode is AuthMode.CLOUD and self.api_key:
            session.headers[API_KEY_HEADER] = self.api_key
        elif self.mode is AuthMode.API_KEY:
            session.headers["Authorization"] = f"Bearer {self.api_key}"


def _mode(conn: Connection, cloud: object, *, has_key: bool) -> AuthMode:
    """The rule of the module docstring: login without a key; with one, Cloud for a ``/v1`` base (or as
    ``umami_cloud`` says), a self-hosted key otherwise."""
    if cloud is not None and not isinstance(cloud, bool):
        raise UmamiConfigError(f"connection {conn.conn_id!r}: extra {CLOUD_EXTRA!r} must be true or false (JSON)")
    if not has_key:
        if cloud:
            raise UmamiConfigError(f"connection {conn.conn_id!r}: Umami Cloud needs extra {API_KEY_EXTRA!r}")
        return AuthMode.LOGIN
    host = conn.host or ""
    base = urlsplit(host if "://" in host else f"http://{host}")
    if cloud is None and base.hostname == CLOUD_HOST and base.path.rstrip("/") != "/v1":
        raise UmamiConfigError(f"connection {conn.conn_id!r}: Umami Cloud's API is {CLOUD_BASE}; set the host to it")
    if cloud is None:
        cloud = base.path.rstrip("/").endswith("/v1")
    return AuthMode.CLOUD if cloud else AuthMode.API_KEY


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

"""A local double of Azure Key Vault's secrets REST API over HTTPS, with a managed-identity token endpoint.

It serves what the real ``azure.keyvault.secrets.SecretClient`` asks when Airflow's
``AzureKeyVaultBackend`` reads a secret, the way Key Vault answers it:

- the first request carries no token and gets ``401`` with the ``WWW-Authenticate`` challenge that names
  the tenant; the client then asks its credential for a token and repeats the request with it;
- ``GET /secrets/{name}/`` (or ``/secrets/{name}/{version}``) -> ``{"value", "id", "attributes"}``;
- an unknown name -> ``404`` with the ``SecretNotFound`` error body.

Only the Azure AD token is fake. It comes from the App Service managed-identity endpoint
(``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``) that azure-identity's real ``DefaultAzureCredential`` calls,
so no Airflow or Azure code is patched and a subprocess configured by environment alone works as well.
"""

from __future__ import annotations

import contextlib
import enum
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

from local_stack.tls import loopback_tls

if TYPE_CHECKING:
    import ssl
    from pathlib import Path
    from types import TracebackType

TENANT_ID = "00000000-0000-0000-0000-000000000000"
KEY_VAULT_RESOURCE = "https://vault.azure.net"
CHALLENGE = (f'Bearer authorization="https://login.microsoftonline.com/{TENANT_ID}", '
             f'resource="{KEY_VAULT_RESOURCE}"')


class Outage(enum.Enum):
    """How the vault misbehaves while it is down."""

    SERVICE_UNAVAILABLE = "every request is answered with 503"
    CONNECTION_DROPPED = "new connections are closed before TLS starts, open ones without an answer"


@dataclass(frozen=True)
class VaultRequest:
    """One request the vault received: the secret it named, whether it carried the token, the status
    answered (0: the connection was dropped)."""

    secret: str
    authorized: bool
    status: int


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], double: KeyVaultDouble,
                 tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.double = double
        self.tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Runs in the connection's own thread, so a slow TLS handshake never blocks accept().
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # or each request waits ~45 ms
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        if self.double.outage is Outage.CONNECTION_DROPPED:
            self.double.log(VaultRequest(secret="", authorized=False, status=0))
            request.close()
            return
        with self.tls.wrap_socket(request, server_side=True) as tls_request:
            super().finish_request(tls_request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-request are part of the tests, not server errors."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def double(self) -> KeyVaultDouble:
        return cast("_Server", self.server).double

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the double keeps its own request log."""

    def send_json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _VaultHandler(_Handler):
    def do_GET(self) -> None:
        double = self.double
        # /secrets/{name}/ or /secrets/{name}/{version}
        kind, name, version = [*urlsplit(self.path).path.strip("/").split("/"), "", ""][:3]
        authorized = self.headers.get("Authorization") == f"Bearer {double.access_token}"
        if double.outage is Outage.CONNECTION_DROPPED:  # a kept-alive connection goes down too
            double.log(VaultRequest(secret=name, authorized=authorized, status=0))
            self.close_connection = True
            return
        status, body, headers = double.answer(kind, name, version, authorized=authorized,
                                              host=self.headers["Host"])
        double.log(VaultRequest(secret=name, authorized=authorized, status=status))
        self.send_json(status, body, headers)


class _IdentityHandler(_Handler):
    def do_GET(self) -> None:
        double = self.double
        if self.headers.get("X-IDENTITY-HEADER") != double.identity_header:
            self.send_json(401, {"statusCode": 401, "message": "wrong X-IDENTITY-HEADER"})
            return
        resource = parse_qs(urlsplit(self.path).query).get("resource", [""])[0]
        double.token_requests += 1
        self.send_json(200, {"access_token": double.access_token, "expires_on": str(int(time.time()) + 3600),
                             "resource": resource, "token_type": "Bearer"})


class KeyVaultDouble:
    """The vault on ``https://127.0.0.1:<port>/`` and its token endpoint on plain loopback HTTP.

    ``cert_dir`` receives ``ca.pem``, the CA that signed the vault's certificate (SANs 127.0.0.1 and
    localhost): give it to the client as ``connection_verify``.
    """

    def __init__(self, cert_dir: Path) -> None:
        self.cert_path = cert_dir / "ca.pem"
        self.identity_header = secrets.token_hex(16)
        self.access_token = secrets.token_urlsafe(24)
        self.outage: Outage | None = None
        self.requests: list[VaultRequest] = []
        self.token_requests = 0
        self._secrets: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._servers: list[_Server] = []

    @property
    def url(self) -> str:
        """The vault URL, as ``vault_url`` takes it."""
        return f"https://127.0.0.1:{self._servers[0].server_address[1]}/"

    @property
    def identity_endpoint(self) -> str:
        """Value for ``IDENTITY_ENDPOINT``."""
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}/msi/token"

    def set_secret(self, name: str, value: str) -> None:
        """Create or replace a secret (a new version each time)."""
        with self._lock:
            self._secrets[name] = (value, secrets.token_hex(16))

    def reset(self) -> None:
        """Forget secrets, the request log and any outage."""
        with self._lock:
            self._secrets.clear()
            self.requests.clear()
            self.outage = None
            self.token_requests = 0

    def log(self, request: VaultRequest) -> None:
        """Record a request."""
        with self._lock:
            self.requests.append(request)

    def lookups(self, name: str) -> list[VaultRequest]:
        """The requests made for the secret ``name``."""
        with self._lock:
            return [request for request in self.requests if request.secret == name]

    def answer(self, kind: str, name: str, version: str, *, authorized: bool,
               host: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status, JSON body and headers for ``GET /{kind}/{name}/{version}``."""
        if self.outage is Outage.SERVICE_UNAVAILABLE:
            return 503, _error("ServiceUnavailable", "The service is unavailable."), {}
        if not authorized:
            return 401, _error("Unauthorized", "Request is missing a Bearer token."), {
                "WWW-Authenticate": CHALLENGE}
        if kind != "secrets" or not name:
            return 400, _error("BadParameter", f"only secrets are served, not {kind!r}"), {}
        with self._lock:
            stored = self._secrets.get(name)
        if stored is None or version not in ("", stored[1]):
            message = f"A secret with (name/id) {name} was not found in this key vault."
            return 404, _error("SecretNotFound", message), {}
        value, current_version = stored
        now = int(time.time())
        return 200, {"value": value, "id": f"https://{host}/secrets/{name}/{current_version}",
                     "attributes": {"enabled": True, "created": now, "updated": now,
                                    "recoveryLevel": "Recoverable+Purgeable"}}, {}

    def start(self) -> KeyVaultDouble:
        """Issue the certificate and start both servers on loopback."""
        tls = loopback_tls(self.cert_path)
        self._servers = [_Server(_VaultHandler, self, tls), _Server(_IdentityHandler, self, None)]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, name="keyvault-double", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop both servers."""
        for server in self._servers:
            with contextlib.suppress(OSError):
                server.shutdown()
                server.server_close()
        self._servers = []

    def __enter__(self) -> KeyVaultDouble:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

"""Fixtures for the Key Vault integration tests: the vault double, Airflow configured to read from it,
and a small HTTP server standing in for Umami's API."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.configuration import clear_secrets_backends_cache

from tests.integration.keyvault_server import KeyVaultDouble

if TYPE_CHECKING:
    from collections.abc import Iterator

KEY_VAULT_BACKEND = "umami_sync.secrets_backend.FailClosedAzureKeyVaultBackend"
# Where the backend's package lives; the image puts the same folder on PYTHONPATH (see the Dockerfile).
PLUGINS_FOLDER = Path(__file__).resolve().parents[2] / "plugins"
# The backend kwargs the Dockerfile sets; the vault URL comes per key at run time, as in production.
IMAGE_BACKEND_KWARGS: dict[str, Any] = {
    "connections_prefix": "airflow-connections",
    "variables_prefix": "airflow-variables",
    "config_prefix": None,
}
# Credential settings a developer's shell may carry; each would change what DefaultAzureCredential tries.
AZURE_CREDENTIAL_VARIABLES = (
    "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_USERNAME", "AZURE_PASSWORD",
    "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
)


@pytest.fixture(scope="session")
def keyvault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyVaultDouble]:
    """The Key Vault double, one per session."""
    with KeyVaultDouble(tmp_path_factory.mktemp("keyvault")) as double:
        yield double


@pytest.fixture
def keyvault(keyvault_server: KeyVaultDouble) -> KeyVaultDouble:
    """The Key Vault double with no secrets, no outage and an empty request log."""
    keyvault_server.reset()
    return keyvault_server


@pytest.fixture
def keyvault_backend(keyvault: KeyVaultDouble, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyVaultDouble]:
    """Airflow reading connections and variables from the double, configured by environment only.

    The settings are the image's plus three the double needs: trust its CA (``connection_verify``),
    accept a challenge whose resource is not the vault's own host (``verify_challenge_resource``), and
    retry without the production back-off so an outage test takes milliseconds, not seconds. The token
    comes from the double's managed-identity endpoint through azure-identity's ``DefaultAzureCredential``.
    Subprocesses started by the test inherit the same environment, ``PYTHONPATH`` included, as in the image.
    """
    for name in AZURE_CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(PLUGINS_FOLDER))
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", KEY_VAULT_BACKEND)
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND_KWARGS", json.dumps({
        **IMAGE_BACKEND_KWARGS,
        "connection_verify": str(keyvault.cert_path),
        "verify_challenge_resource": False,
        "retry_backoff_factor": 0.01,
    }))
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND_KWARG__VAULT_URL", keyvault.url)
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
    monkeypatch.setenv("IDENTITY_ENDPOINT", keyvault.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", keyvault.identity_header)
    # The Task SDK builds the backends once per process; make it build them from this configuration.
    clear_secrets_backends_cache()
    yield keyvault
    clear_secrets_backends_cache()


class UmamiApiStub:
    """A loopback HTTP server that answers every GET with ``{"ok": true}`` and keeps the
    ``Authorization`` headers it received."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.authorizations.append(self.headers.get("Authorization"))
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="umami-api-stub", daemon=True).start()

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def received_basic_auth(self) -> list[str]:
        """``login:password`` of every request that sent Basic credentials."""
        return [base64.b64decode(header.removeprefix("Basic ")).decode()
                for header in self.authorizations if header and header.startswith("Basic ")]

    def close(self) -> None:
        """Stop the server."""
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def umami_api_stub() -> Iterator[UmamiApiStub]:
    """A stand-in for Umami's API that records the credentials it is sent."""
    stub = UmamiApiStub()
    yield stub
    stub.close()

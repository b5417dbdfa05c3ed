"""Connections and Variables from Azure Key Vault, through the image's secrets backend (Airflow's
``AzureKeyVaultBackend`` made to fail closed, ``umami_sync.secrets_backend``) and Azure's real
``SecretClient`` over HTTPS.

The vault is a local double that speaks Key Vault's REST API (``keyvault_server.py``); the token it
accepts comes from its managed-identity endpoint. Nothing in Airflow or the Azure SDK is patched.
Secret names are written out here on purpose: they are what the README tells operators to create.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.sdk import BaseHook, Variable
from airflow.sdk.configuration import clear_secrets_backends_cache
from airflow.sdk.exceptions import AirflowNotFoundException, AirflowSecretsBackendAccessDenied
from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError, ServiceRequestError

from local_stack._proc import free_port
from tests.conftest import mongo_connection, postgres_connection
from tests.integration.keyvault_server import Outage

if TYPE_CHECKING:
    from tests.integration.conftest import UmamiApiStub
    from tests.integration.keyvault_server import KeyVaultDouble

pytestmark = pytest.mark.integration

UMAMI_DB_SECRET = "airflow-connections-umami-db"
UMAMI_API_SECRET = "airflow-connections-umami-api"
USERS_MONGO_SECRET = "airflow-connections-users-mongo"
SETTINGS_SECRET = "airflow-variables-umami-sync-settings"
CONNECTION_VARIABLES = ("AIRFLOW_CONN_UMAMI_DB", "AIRFLOW_CONN_UMAMI_API", "AIRFLOW_CONN_USERS_MONGO")
STOCK_KEY_VAULT_BACKEND = "airflow.providers.microsoft.azure.secrets.key_vault.AzureKeyVaultBackend"


def http_connection(url: str) -> str:
    """The ``umami_api`` connection (JSON form) for the API at ``url``."""
    return json.dumps({"conn_type": "http", "host": url, "login": "admin", "password": "umami"})


@pytest.fixture
def vault_connections(keyvault_backend: KeyVaultDouble, postgres_dsn: str, mongo_uri: str,
                      umami_api_stub: UmamiApiStub, monkeypatch: pytest.MonkeyPatch) -> KeyVaultDouble:
    """The DAG's three connections, stored in the vault and nowhere else."""
    for name in CONNECTION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    keyvault_backend.set_secret(UMAMI_DB_SECRET, postgres_connection(postgres_dsn))
    keyvault_backend.set_secret(USERS_MONGO_SECRET, mongo_connection(mongo_uri, "app"))
    keyvault_backend.set_secret(UMAMI_API_SECRET, http_connection(umami_api_stub.url))
    return keyvault_backend


def statuses(keyvault: KeyVaultDouble, secret: str) -> list[int]:
    """The statuses the vault answered for ``secret``, in order."""
    return [request.status for request in keyvault.lookups(secret)]


class TestConnectionsFromKeyVault:
    def test_postgres_hook_queries_umami_db(self, vault_connections: KeyVaultDouble,
                                            postgres_dsn: str) -> None:
        dsn = urlsplit(postgres_dsn)

        row = PostgresHook(postgres_conn_id="umami_db").get_first("SELECT current_database(), current_user")

        assert row == (dsn.path.lstrip("/"), dsn.username)
        assert statuses(vault_connections, UMAMI_DB_SECRET)[-1] == 200

    def test_mongo_hook_pings_users_mongo(self, vault_connections: KeyVaultDouble) -> None:
        with MongoHook(mongo_conn_id="users_mongo") as hook:
            reply = hook.get_conn().admin.command("ping")

            assert reply["ok"] == 1.0
            assert hook.connection.schema == "app"
        assert statuses(vault_connections, USERS_MONGO_SECRET)[-1] == 200

    def test_http_hook_calls_umami_api_with_the_vault_credentials(
            self, vault_connections: KeyVaultDouble, umami_api_stub: UmamiApiStub) -> None:
        response = HttpHook(method="GET", http_conn_id="umami_api").run("/api/heartbeat")

        assert response.json() == {"ok": True}
        assert umami_api_stub.received_basic_auth()[-1] == "admin:umami"
        assert statuses(vault_connections, UMAMI_API_SECRET)[-1] == 200

    def test_a_fresh_airflow_process_authenticates_and_reads_the_vault(
            self, vault_connections: KeyVaultDouble, postgres_dsn: str) -> None:
        """As in a container: configuration from the environment only, read when Airflow starts."""
        result = subprocess.run(
            [sys.executable, "-m", "airflow", "connections", "get", "umami_db", "-o", "json"],
            capture_output=True, text=True, timeout=120, check=False,
        )

        assert result.returncode == 0, result.stderr
        [shown] = json.loads(result.stdout)
        dsn = urlsplit(postgres_dsn)
        assert (shown["conn_type"], shown["host"], shown["port"], shown["schema"]) == (
            "postgres", dsn.hostname, str(dsn.port), dsn.path.lstrip("/"))
        # Key Vault's handshake: a token-less request draws the challenge, then one token is fetched.
        assert [(r.authorized, r.status) for r in vault_connections.lookups(UMAMI_DB_SECRET)] == [
            (False, 401), (True, 200)]
        assert vault_connections.token_requests == 1


class TestFallbackToEnvironment:
    def test_a_missing_secret_falls_back_to_the_environment_variable(
            self, keyvault_backend: KeyVaultDouble, umami_api_stub: UmamiApiStub,
            monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", http_connection(umami_api_stub.url))

        connection = BaseHook.get_connection("umami_api")

        assert connection.host == umami_api_stub.url
        assert statuses(keyvault_backend, UMAMI_API_SECRET)[-1] == 404  # the vault was asked first

    def test_the_vault_secret_wins_over_the_environment_variable(
            self, vault_connections: KeyVaultDouble, umami_api_stub: UmamiApiStub,
            monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", http_connection("http://env.invalid:9"))

        assert BaseHook.get_connection("umami_api").host == umami_api_stub.url

    def test_neither_vault_nor_environment_means_not_found(self, keyvault_backend: KeyVaultDouble,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("AIRFLOW_CONN_UMAMI_DB", raising=False)

        with pytest.raises(AirflowNotFoundException, match="umami_db"):
            BaseHook.get_connection("umami_db")
        assert statuses(keyvault_backend, UMAMI_DB_SECRET)[-1] == 404


STALE_DB_CONNECTION = postgres_connection("postgresql://stale:stale-password@stale-env.invalid:5432/umami")
STALE_API_CONNECTION = http_connection("http://stale-env.invalid:9")
outages = pytest.mark.parametrize("outage", list(Outage), ids=lambda outage: outage.name.lower())


def unreadable(vault_url: str, kind: str, secret_id: str, error: BaseException | None) -> str:
    """The error the fail-closed backend raises when the vault cannot be read."""
    return (f"Azure Key Vault {vault_url} could not be read for {kind} {secret_id!r} "
            f"({type(error).__name__}); not falling back to environment variables or the metastore.")


class TestKeyVaultOutage:
    """The vault cannot answer: the lookup fails and says so, even where an environment variable could answer."""

    @outages
    def test_a_connection_lookup_fails_although_the_environment_has_the_same_id(
            self, outage: Outage, vault_connections: KeyVaultDouble, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", STALE_API_CONNECTION)
        vault_connections.outage = outage

        with pytest.raises(AirflowSecretsBackendAccessDenied) as raised:
            BaseHook.get_connection("umami_api")

        assert isinstance(raised.value.__cause__, AzureError)
        assert str(raised.value) == unreadable(vault_connections.url, "connection", "umami_api",
                                               raised.value.__cause__)
        attempts = vault_connections.lookups("" if outage is Outage.CONNECTION_DROPPED else UMAMI_API_SECRET)
        assert len(attempts) > 1  # Azure's client retried before the lookup failed
        assert all(attempt.status in (0, 503) for attempt in attempts)

    @outages
    def test_the_settings_variable_lookup_fails_although_the_environment_has_it(
            self, outage: Outage, keyvault_backend: KeyVaultDouble, monkeypatch: pytest.MonkeyPatch) -> None:
        keyvault_backend.set_secret(SETTINGS_SECRET, '{"stored_in": "key vault"}')
        monkeypatch.setenv("AIRFLOW_VAR_UMAMI_SYNC_SETTINGS", '{"stored_in": "environment"}')
        keyvault_backend.outage = outage

        with pytest.raises(AirflowSecretsBackendAccessDenied) as raised:
            Variable.get("umami_sync_settings", default=None)  # as the DAG's plan_run reads it

        assert isinstance(raised.value.__cause__, AzureError)
        assert str(raised.value) == unreadable(keyvault_backend.url, "variable", "umami_sync_settings",
                                               raised.value.__cause__)

    def test_the_cli_exits_with_the_error_instead_of_showing_the_environment_connection(
            self, vault_connections: KeyVaultDouble, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", STALE_DB_CONNECTION)
        vault_connections.outage = Outage.SERVICE_UNAVAILABLE

        result = subprocess.run(
            [sys.executable, "-m", "airflow", "connections", "get", "umami_db", "-o", "json"],
            capture_output=True, text=True, timeout=120, check=False,
        )

        assert result.returncode != 0
        error = unreadable(vault_connections.url, "connection", "umami_db", HttpResponseError())
        assert f"AirflowSecretsBackendAccessDenied: {error}" in result.stderr
        assert "stale-env.invalid" not in result.stdout + result.stderr
        assert statuses(vault_connections, UMAMI_DB_SECRET)[-1] == 503

    def test_airflows_own_backend_would_use_the_environment_silently(
            self, vault_connections: KeyVaultDouble, monkeypatch: pytest.MonkeyPatch) -> None:
        """Why the image configures the fail-closed subclass: with the stock backend, Airflow treats the
        failure like a missing secret (logged at DEBUG) and takes the stale environment variable."""
        monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", STOCK_KEY_VAULT_BACKEND)
        clear_secrets_backends_cache()
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", STALE_API_CONNECTION)
        vault_connections.outage = Outage.SERVICE_UNAVAILABLE

        connection = BaseHook.get_connection("umami_api")

        assert type(ensure_secrets_backend_loaded()[0]).__name__ == "AzureKeyVaultBackend"
        assert connection.host == "http://stale-env.invalid:9"
        assert statuses(vault_connections, UMAMI_API_SECRET)[-1] == 503


class TestKeyVaultUnusable:
    """A vault that cannot be used at all fails every lookup the same way, naming the vault and the error."""

    @pytest.mark.parametrize(("setting", "value", "error"), [
        ("AIRFLOW__SECRETS__BACKEND_KWARG__VAULT_URL", "", ValueError),  # the run-time vault URL was not given
        ("AIRFLOW__SECRETS__BACKEND_KWARG__VAULT_URL", "https://127.0.0.1:{free_port}/", ServiceRequestError),
        ("IDENTITY_HEADER", "not-the-identity-header", ClientAuthenticationError),  # no token for this identity
    ], ids=["no_vault_url", "nothing_listening", "identity_refused"])
    def test_a_lookup_fails_instead_of_using_the_environment(
            self, setting: str, value: str, error: type[Exception], keyvault_backend: KeyVaultDouble,
            monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(setting, value.format(free_port=free_port()))
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", STALE_DB_CONNECTION)
        vault_url = os.environ["AIRFLOW__SECRETS__BACKEND_KWARG__VAULT_URL"] or "(no vault_url configured)"

        with pytest.raises(AirflowSecretsBackendAccessDenied) as raised:
            BaseHook.get_connection("umami_db")

        assert type(raised.value.__cause__) is error
        assert str(raised.value) == unreadable(vault_url, "connection", "umami_db", raised.value.__cause__)


class TestVariablesFromKeyVault:
    def test_settings_variable_resolves_from_the_vault(self, keyvault_backend: KeyVaultDouble,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("AIRFLOW_VAR_UMAMI_SYNC_SETTINGS", raising=False)
        stored = {"stored_in": "key vault", "numbers": [1, 2]}
        keyvault_backend.set_secret(SETTINGS_SECRET, json.dumps(stored))

        assert Variable.get("umami_sync_settings", deserialize_json=True) == stored
        assert statuses(keyvault_backend, SETTINGS_SECRET)[-1] == 200

    def test_a_missing_variable_falls_back_to_the_environment(self, keyvault_backend: KeyVaultDouble,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AIRFLOW_VAR_UMAMI_SYNC_SETTINGS", '{"stored_in": "environment"}')

        assert Variable.get("umami_sync_settings", deserialize_json=True) == {"stored_in": "environment"}
        assert statuses(keyvault_backend, SETTINGS_SECRET)[-1] == 404

"""``identities_from: auto`` behind the image's fail-closed Key Vault backend (the local vault double, the real
``AzureKeyVaultBackend`` underneath): a vault without the ``umami_db`` secret means "no database", a vault that
cannot be read never does."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

from tests.conftest import postgres_connection
from tests.factories import at
from tests.integration.keyvault_server import Outage
from umami_sync.settings import SyncSettings
from umami_sync.windows import DataInterval
from umami_sync.wiring import sync_sessions, umami_reads

if TYPE_CHECKING:
    from tests.integration.keyvault_server import KeyVaultDouble

pytestmark = pytest.mark.integration

DAY = DataInterval(at(0), at(0, day=28))


def test_auto_reads_the_api_only_when_the_vault_and_the_environment_have_no_database_connection(
        keyvault_backend: KeyVaultDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_UMAMI_DB", raising=False)

    assert umami_reads(SyncSettings()) == "api"  # the vault answered 404
    keyvault_backend.set_secret("airflow-connections-umami-db",
                                postgres_connection("postgresql://umami:x@db.internal:5432/umami"))
    assert umami_reads(SyncSettings(umami_db_conn_id="umami_db")) == "database"
    assert 404 in [request.status for request in keyvault_backend.lookups("airflow-connections-umami-db")]


def test_auto_fails_when_the_vault_cannot_be_read(keyvault_backend: KeyVaultDouble,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_UMAMI_DB", raising=False)
    keyvault_backend.outage = Outage.SERVICE_UNAVAILABLE

    with pytest.raises(AirflowSecretsBackendAccessDenied, match="could not be read for connection 'umami_db'"):
        umami_reads(SyncSettings())
    result = sync_sessions(SyncSettings(), DAY)

    assert result.error is not None and result.error.startswith("AirflowSecretsBackendAccessDenied")
    assert (result.modified, result.succeeded) == (0, False)
    assert [request.status for request in keyvault_backend.lookups("airflow-connections-umami-db")][-1] == 503

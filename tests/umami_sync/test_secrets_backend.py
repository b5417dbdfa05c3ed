"""The fail-closed Key Vault backend without a vault (the vault double's tests are in tests/integration)."""

from __future__ import annotations

import inspect

import pytest
from airflow.providers.microsoft.azure.secrets.key_vault import AzureKeyVaultBackend
from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

from umami_sync.secrets_backend import FailClosedAzureKeyVaultBackend


@pytest.mark.parametrize("method", ["get_conn_value", "get_variable"])
def test_overrides_keep_the_signature_airflow_dispatches_on(method: str) -> None:
    """Airflow inspects the signature to decide whether to pass ``team_name``."""
    assert inspect.signature(getattr(FailClosedAzureKeyVaultBackend, method)) == inspect.signature(
        getattr(AzureKeyVaultBackend, method))


def test_a_backend_without_vault_url_refuses_instead_of_answering_not_found() -> None:
    backend = FailClosedAzureKeyVaultBackend()  # the image's default: the URL is given at run time

    with pytest.raises(AirflowSecretsBackendAccessDenied) as raised:
        backend.get_variable("umami_sync_settings")

    assert isinstance(raised.value.__cause__, ValueError)  # raised by Azure's client before any request
    assert str(raised.value) == (
        "Azure Key Vault (no vault_url configured) could not be read for variable 'umami_sync_settings' "
        "(ValueError); not falling back to environment variables or the metastore.")

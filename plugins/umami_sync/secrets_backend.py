"""Azure Key Vault as Airflow's secrets backend, failing closed when the vault cannot be read.

Airflow asks its secrets backends in turn (the configured one, then ``AIRFLOW_CONN_*``/``AIRFLOW_VAR_*``
environment variables, then the metastore) and treats any exception from one of them like "not found": it
logs it at DEBUG and asks the next. With the stock ``AzureKeyVaultBackend`` a vault outage, a wrong vault URL
or an expired identity therefore hands tasks whatever stale connection the environment or the metastore
still holds, silently. :class:`FailClosedAzureKeyVaultBackend` turns those failures into
``AirflowSecretsBackendAccessDenied``, the one exception Airflow's lookups re-raise instead of moving on.
A secret that does not exist (404) still returns ``None``, so the documented fallback keeps working.

Configure it with ``AIRFLOW__SECRETS__BACKEND=umami_sync.secrets_backend.FailClosedAzureKeyVaultBackend``
and the same kwargs as the stock backend. Airflow imports the backend while its configuration module loads,
before it puts the plugins folder on ``sys.path``: the plugins folder must be on ``PYTHONPATH``.
"""

from __future__ import annotations

from airflow.providers.microsoft.azure.secrets.key_vault import AzureKeyVaultBackend
from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied
from azure.core.exceptions import AzureError


class FailClosedAzureKeyVaultBackend(AzureKeyVaultBackend):
    """``AzureKeyVaultBackend`` that raises ``AirflowSecretsBackendAccessDenied`` when the vault cannot be
    read, instead of letting Airflow fall back to environment variables or the metastore."""

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        """The connection's secret value; ``None`` if the vault has no such secret."""
        try:
            return super().get_conn_value(conn_id, team_name=team_name)
        except (AzureError, ValueError) as exc:
            raise self._unreadable("connection", conn_id, exc) from exc

    def get_variable(self, key: str, team_name: str | None = None) -> str | None:
        """The Variable's secret value; ``None`` if the vault has no such secret."""
        try:
            return super().get_variable(key, team_name=team_name)
        except (AzureError, ValueError) as exc:
            raise self._unreadable("variable", key, exc) from exc

    def _unreadable(self, kind: str, secret_id: str, exc: Exception) -> AirflowSecretsBackendAccessDenied:
        # Names what failed, never a value: the chained cause carries the Azure SDK's own message.
        return AirflowSecretsBackendAccessDenied(
            f"Azure Key Vault {self.vault_url or '(no vault_url configured)'} could not be read for {kind} "
            f"{secret_id!r} ({type(exc).__name__}); not falling back to environment variables or the metastore."
        )

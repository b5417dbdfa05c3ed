# The umami-mongo-sync DAG package on the official Airflow image.
# The Airflow version below must equal the apache-airflow pin in requirements.txt
# (tests/deployment/test_dockerfile.py checks it, together with the paths and settings below).
FROM apache/airflow:3.3.2-python3.11

# Pinning apache-airflow to the image's own version makes pip fail instead of up- or downgrading it.
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt

COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root include/ /opt/airflow/include/

# Connections and Variables come from Azure Key Vault; nothing secret is in the image.
# Give the vault at run time:  AIRFLOW__SECRETS__BACKEND_KWARG__VAULT_URL=https://<vault>.vault.azure.net/
# and the identity through the standard AZURE_* variables (or a managed / workload identity).
# The backend is Airflow's Key Vault backend made to fail closed (plugins/umami_sync/secrets_backend.py):
# an unreachable vault fails the lookup instead of falling back to AIRFLOW_CONN_* or the metastore.
# Airflow imports it while loading its configuration, before it adds the plugins folder to sys.path,
# hence PYTHONPATH.
ARG KEY_VAULT_URL=""
ENV AIRFLOW__CORE__LOAD_EXAMPLES=False \
    PYTHONPATH=/opt/airflow/plugins \
    AIRFLOW__SECRETS__BACKEND=umami_sync.secrets_backend.FailClosedAzureKeyVaultBackend \
    AIRFLOW__SECRETS__BACKEND_KWARGS='{"connections_prefix": "airflow-connections", "variables_prefix": "airflow-variables", "config_prefix": null}' \
    AIRFLOW__SECRETS__BACKEND_KWARG__VAULT_URL=${KEY_VAULT_URL}

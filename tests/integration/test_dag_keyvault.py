"""The whole DAG run through ``dag.test()`` with its connections and settings in Key Vault only.

Airflow reads them through the image's fail-closed Key Vault backend from the local vault double; the
connections point at the suite's real PostgreSQL (rows a real Umami 3.1.0 wrote), MongoDB wire server and a
local Umami API. No ``AIRFLOW_CONN_*`` variable is set, except in the outage test, where stale ones must be
ignored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pymongo
import pytest

from local_stack.postgres import run_sql_file
from local_stack.smtp import LocalSmtp
from local_stack.umami_api import FakeUmami
from tests.conftest import mongo_connection, postgres_connection
from tests.factories import add_user
from tests.integration.conftest import IMAGE_BACKEND_KWARGS
from tests.integration.keyvault_server import Outage

if TYPE_CHECKING:
    from collections.abc import Iterator

    from pymongo.database import Database

    from tests.integration.keyvault_server import KeyVaultDouble

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

DAGS = Path(__file__).resolve().parents[2] / "dags"
LOGICAL_DATE = datetime(2026, 11, 28, tzinfo=UTC)  # syncs 2026-11-27, the day of the fixture rows
CONNECTION_SECRETS = ("airflow-connections-umami-db", "airflow-connections-umami-api",
                      "airflow-connections-users-mongo")
SETTINGS_SECRET = "airflow-variables-umami-sync-settings"
ENVIRONMENT_SOURCES = ("AIRFLOW_CONN_UMAMI_DB", "AIRFLOW_CONN_UMAMI_API", "AIRFLOW_CONN_USERS_MONGO",
                       "AIRFLOW_VAR_UMAMI_SYNC_SETTINGS")


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils import db

    db.initdb()


@pytest.fixture(scope="module")
def dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS)).dags["umami_mongo_sync"]


@pytest.fixture
def umami_api(umami_db: str) -> Iterator[FakeUmami]:
    """Umami's API over the test's Umami database."""
    with FakeUmami(umami_db) as server:
        yield server


@pytest.fixture
def vault_world(keyvault_backend: KeyVaultDouble, umami_db: str, umami_api: FakeUmami, mongo_uri: str,
                users_db: Database, umami_fixtures: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    """Umami's rows and three users; the DAG's connections and settings in the vault and nowhere else."""
    for name in ENVIRONMENT_SOURCES:
        monkeypatch.delenv(name, raising=False)
    run_sql_file(umami_db, umami_fixtures / "rows.sql")
    add_user(users_db["users"], "alice@example.com")
    add_user(users_db["users"], "Bob@Example.com")
    add_user(users_db["users"], "carol@example.com", isDeleted=True)
    keyvault_backend.set_secret("airflow-connections-umami-db", postgres_connection(umami_db))
    keyvault_backend.set_secret("airflow-connections-users-mongo", mongo_connection(mongo_uri, users_db.name))
    keyvault_backend.set_secret("airflow-connections-umami-api", json.dumps({
        "conn_type": "http", "host": umami_api.url, "login": umami_api.username, "password": umami_api.password}))
    keyvault_backend.set_secret(SETTINGS_SECRET, json.dumps({"page_size": 1}))
    return users_db


def run_dag(dag: Any) -> Any:
    return dag.test(logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE)


def states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def test_a_run_reads_everything_from_the_vault_and_enriches_users(dag: Any, vault_world: Database,
                                                                  keyvault_backend: KeyVaultDouble) -> None:
    run = run_dag(dag)

    assert str(run.state) == "success", states(run)
    alice = vault_world["users"].find_one({"email": "alice@example.com"})
    assert alice["session_id"] == "8b046da9-3d41-5054-8060-170787f99fe0"
    assert alice["umamiAnalytics"]["city"] == "San Francisco"
    bob = vault_world["users"].find_one({"email": "Bob@Example.com"})
    assert bob["umamiAnalytics"]["id"] == "23fbc8b7-769e-5606-8fca-3643d50f5683"
    assert "umamiAnalytics" not in vault_world["users"].find_one({"email": "carol@example.com"})
    [plan] = [ti for ti in run.get_task_instances() if ti.task_id == "plan_run"]
    assert plan.xcom_pull(task_ids="plan_run")["settings"]["page_size"] == 1  # the vault's Variable
    [analytics] = [ti for ti in run.get_task_instances() if ti.task_id == "analytics_sync"]
    figures = analytics.xcom_pull(task_ids="analytics_sync", key="result", map_indexes=analytics.map_index)
    assert figures["list_pages"] == figures["sessions"] == 3  # one session per page, as the Variable says
    for secret in (*CONNECTION_SECRETS, SETTINGS_SECRET):
        assert 200 in [request.status for request in keyvault_backend.lookups(secret)], secret


def test_a_run_during_an_outage_fails_without_touching_stale_environment_connections(
        dag: Any, vault_world: Database, keyvault_backend: KeyVaultDouble, umami_db: str, umami_api: FakeUmami,
        mongo_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for task in dag.tasks:  # dag.test() would wait out the real retry delays
        monkeypatch.setattr(task, "retries", 0)
    stale_database = f"{vault_world.name}_stale"
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", postgres_connection(umami_db))
    monkeypatch.setenv("AIRFLOW_CONN_USERS_MONGO", mongo_connection(mongo_uri, stale_database))
    monkeypatch.setenv("AIRFLOW_CONN_UMAMI_API", json.dumps(
        {"conn_type": "http", "host": umami_api.url, "login": umami_api.username, "password": umami_api.password}))
    monkeypatch.setenv("AIRFLOW_VAR_UMAMI_SYNC_SETTINGS", "{}")
    users_before = list(vault_world["users"].find())
    keyvault_backend.outage = Outage.SERVICE_UNAVAILABLE

    run = run_dag(dag)

    assert str(run.state) == "failed"
    task_log = capsys.readouterr().out  # dag.test() runs the tasks in this process and logs to stdout
    assert (f"AirflowSecretsBackendAccessDenied: Azure Key Vault {keyvault_backend.url} could not be read for "
            "variable 'umami_sync_settings' (HttpResponseError); not falling back") in task_log
    assert states(run) == {"plan_run": "failed", "session_sync": "upstream_failed",
                           "plan_analytics": "upstream_failed", "analytics_sync": "upstream_failed",
                           "record_status": "failed", "check_run": "upstream_failed"}
    assert list(vault_world["users"].find()) == users_before
    with pymongo.MongoClient(mongo_uri) as client:
        assert stale_database not in client.list_database_names()  # the stale connection was never used
    assert [request.status for request in keyvault_backend.lookups(SETTINGS_SECRET)][-1] == 503


def test_a_red_run_during_an_outage_is_announced_by_the_configurations_notifiers_and_recorded(
        dag: Any, keyvault_backend: KeyVaultDouble, users_db: Database, mongo_uri: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Variable lives in the vault and the vault is down: plan_run cannot read it, and neither can the DAG's
    failure callback. The alert goes to the notifiers of Airflow's option ``[umami_sync] alerts`` all the same, by
    e-mail as production sends it (STARTTLS, a checked certificate, AUTH LOGIN), saying why; the run is recorded
    in the status document with the default settings. (The connections here are kept out of the vault: with them
    in it, an outage hides the SMTP and MongoDB connections too, and the callback's log says so.)"""
    from airflow.sdk.configuration import clear_secrets_backends_cache

    for task in dag.tasks:  # dag.test() would wait out the real retry delays
        monkeypatch.setattr(task, "retries", 0)
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND_KWARGS", json.dumps({
        **IMAGE_BACKEND_KWARGS, "connections_prefix": None, "connection_verify": str(keyvault_backend.cert_path),
        "verify_challenge_resource": False, "retry_backoff_factor": 0.01}))
    clear_secrets_backends_cache()
    for name in ENVIRONMENT_SOURCES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_USERS_MONGO", mongo_connection(mongo_uri, users_db.name))
    keyvault_backend.set_secret(SETTINGS_SECRET, json.dumps({"alerts": {"on_failure": [
        {"type": "email", "to": ["never-read@example.com"]}]}}))
    keyvault_backend.outage = Outage.SERVICE_UNAVAILABLE
    with LocalSmtp(secure=True) as smtp:
        assert smtp.ca_path is not None
        monkeypatch.setenv("SSL_CERT_FILE", str(smtp.ca_path))
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.connection())
        monkeypatch.setenv("AIRFLOW__UMAMI_SYNC__ALERTS", json.dumps(
            {"on_failure": [{"type": "email", "to": ["oncall@example.com"]}]}))

        run = run_dag(dag)

        [mail] = smtp.wait_for(1)
    assert str(run.state) == "failed"
    assert states(run)["record_status"] == "success" and states(run)["check_run"] == "failed"
    assert (mail["To"], mail["Subject"]) == (
        "oncall@example.com", "[umami_mongo_sync] run of 2026-11-27 failed: the run could not be planned")
    assert smtp.logins == [("LOGIN", "alerts", True)]
    body = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert ("First error: the run could not be planned: AirflowSecretsBackendAccessDenied: Azure Key Vault "
            f"{keyvault_backend.url} could not be read for variable &#x27;umami_sync_settings&#x27;") in body
    assert ("(Sent to the notifiers of Airflow&#x27;s option [umami_sync] alerts: the Variable "
            "&#x27;umami_sync_settings&#x27; could not be read (AirflowSecretsBackendAccessDenied: Azure Key Vault "
            f"{keyvault_backend.url} could not be read") in body
    last_run = users_db["systemconfigs"].find_one({"_id": "global"})["umamiSync"]["lastRun"]
    assert (last_run["status"], last_run["dataIntervalStart"]) == ("failed", datetime(2026, 11, 27))
    assert "AirflowSecretsBackendAccessDenied" in last_run["problems"][0]

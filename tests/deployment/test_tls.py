"""The connection extras the README documents for TLS really give TLS connections.

Both servers only speak TLS with a certificate from a throwaway CA (127.0.0.1 / localhost): MongoDB is a
SecantusDB server with TLS on, PostgreSQL a local cluster with ``ssl = on``. The hooks are the real
provider hooks, configured through ``AIRFLOW_CONN_*`` as in production.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import trustme
from airflow.providers.mongo.hooks.mongo import MongoHook
from airflow.providers.postgres.hooks.postgres import PostgresHook
from pymongo.errors import ServerSelectionTimeoutError
from secantus.server import SecantusDBServer

from local_stack._proc import wait_until
from local_stack.postgres import LocalPostgres

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

SERVER_SELECTION_MS = 1500  # fail fast where a test expects the TLS handshake to fail


class TlsFiles:
    """A CA and a server certificate it signed, in a folder the database server may read."""

    def __init__(self, folder: Path) -> None:
        self.ca = folder / "ca.pem"
        self.cert = folder / "server.crt"
        self.key = folder / "server.key"
        authority = trustme.CA()
        issued = authority.issue_cert("127.0.0.1", "localhost")
        authority.cert_pem.write_to_path(str(self.ca))
        issued.cert_chain_pems[0].write_to_path(str(self.cert))
        issued.private_key_pem.write_to_path(str(self.key))
        self.key.chmod(0o600)  # PostgreSQL refuses a key others can read
        if os.geteuid() == 0:  # LocalPostgres then runs the cluster as 'postgres'
            for path in (folder, self.cert, self.key):
                shutil.chown(path, user="postgres")


@pytest.fixture(scope="module")
def tls_files() -> Iterator[TlsFiles]:
    """Certificate files for one module's servers."""
    with tempfile.TemporaryDirectory(prefix="umami-tls-") as folder:
        yield TlsFiles(Path(folder))


@pytest.fixture(scope="module")
def tls_mongo(tls_files: TlsFiles) -> Iterator[int]:
    """Port of a MongoDB wire server that accepts TLS connections only."""
    with SecantusDBServer(storage_path=":memory:", tls_cert_file=str(tls_files.cert),
                          tls_key_file=str(tls_files.key)) as server:
        yield server.port


@pytest.fixture(scope="module")
def tls_postgres(tls_files: TlsFiles) -> Iterator[LocalPostgres]:
    """A PostgreSQL cluster with TLS switched on."""
    with LocalPostgres() as server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET ssl_cert_file = '{tls_files.cert}'")
            conn.execute(f"ALTER SYSTEM SET ssl_key_file = '{tls_files.key}'")
            conn.execute("ALTER SYSTEM SET ssl = on")
            conn.execute("SELECT pg_reload_conf()")
        wait_until(lambda: ssl_is_on(server.dsn), timeout=10, what="PostgreSQL with TLS")
        yield server


def ssl_is_on(dsn: str) -> bool:
    """Whether a new session of the server at ``dsn`` sees ``ssl = on`` (after the reload)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SHOW ssl").fetchone()
    return row == ("on",)


def set_mongo_connection(monkeypatch: pytest.MonkeyPatch, port: int, extra: dict[str, Any]) -> None:
    """``users_mongo`` on the local server with ``extra``."""
    monkeypatch.setenv("AIRFLOW_CONN_USERS_MONGO", json.dumps(
        {"conn_type": "mongo", "host": "127.0.0.1", "port": port, "schema": "app", "extra": extra}))


class TestMongoTls:
    def test_documented_extras_turn_tls_on_and_the_server_answers(
            self, tls_mongo: int, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
        set_mongo_connection(monkeypatch, tls_mongo, {"tls": True, "tlsCAFile": str(tls_files.ca)})

        with MongoHook(mongo_conn_id="users_mongo") as hook:
            client = hook.get_conn()
            tls_context = client.options.pool_options._ssl_context  # None when TLS is off

            assert tls_context is not None
            assert tls_context.verify_mode == ssl.CERT_REQUIRED
            assert client.admin.command("ping")["ok"] == 1.0  # the server speaks nothing but TLS

    def test_tls_verifies_the_server_certificate(self, tls_mongo: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
        set_mongo_connection(monkeypatch, tls_mongo,
                             {"tls": True, "serverSelectionTimeoutMS": SERVER_SELECTION_MS})

        with MongoHook(mongo_conn_id="users_mongo") as hook, \
                pytest.raises(ServerSelectionTimeoutError, match="CERTIFICATE_VERIFY_FAILED"):
            hook.get_conn().admin.command("ping")

    @pytest.mark.parametrize(("extra", "tls_on"), [
        ({"tls": True, "allow_insecure": True}, True),
        ({"ssl": True, "allow_insecure": True}, False),  # the provider pops "ssl" here: plain text
    ], ids=["tls", "ssl"])
    def test_allow_insecure_keeps_tls_only_when_spelled_tls(
            self, extra: dict[str, Any], tls_on: bool, tls_mongo: int,
            monkeypatch: pytest.MonkeyPatch) -> None:
        set_mongo_connection(monkeypatch, tls_mongo,
                             {**extra, "serverSelectionTimeoutMS": SERVER_SELECTION_MS})

        with MongoHook(mongo_conn_id="users_mongo") as hook:
            client = hook.get_conn()
            try:
                answered = client.admin.command("ping")["ok"] == 1.0
            except ServerSelectionTimeoutError:
                answered = False

            assert (client.options.pool_options._ssl_context is not None) is tls_on
            assert answered is tls_on

    def test_any_srv_value_even_false_selects_a_seed_list_uri(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_USERS_MONGO", json.dumps(
            {"conn_type": "mongo", "host": "cluster0.example.net", "schema": "app",
             "extra": {"srv": "false"}}))

        assert MongoHook(mongo_conn_id="users_mongo").uri == "mongodb+srv://cluster0.example.net/app"


class TestPostgresTls:
    @pytest.mark.parametrize(("sslmode", "encrypted"), [("verify-full", True), ("disable", False)])
    def test_sslmode_in_extra_decides_the_connection(
            self, sslmode: str, encrypted: bool, tls_postgres: LocalPostgres, tls_files: TlsFiles,
            monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", json.dumps(
            {"conn_type": "postgres", "host": "127.0.0.1", "port": tls_postgres.port, "schema": "umami",
             "login": "umami", "extra": {"sslmode": sslmode, "sslrootcert": str(tls_files.ca)}}))

        row = PostgresHook(postgres_conn_id="umami_db").get_first(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")

        assert row == (encrypted,)

    def test_verify_full_needs_the_ca(self, tls_postgres: LocalPostgres, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.postgresql/root.crt to fall back on
        monkeypatch.setenv("AIRFLOW_CONN_UMAMI_DB", json.dumps(
            {"conn_type": "postgres", "host": "127.0.0.1", "port": tls_postgres.port, "schema": "umami",
             "login": "umami", "extra": {"sslmode": "verify-full"}}))

        with pytest.raises(psycopg.OperationalError, match="root certificate file"):
            PostgresHook(postgres_conn_id="umami_db").get_conn()

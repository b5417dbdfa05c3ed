"""The Dockerfile, docker-compose.yml, requirements.txt and the README tell the same story.

Docker cannot run here, so these tests read the files and check them against the installed Airflow:
versions, copied paths, the secrets backend settings, the services' commands and connections.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import airflow
import yaml
from airflow.cli.cli_parser import get_parser
from airflow.providers.microsoft.azure.secrets.key_vault import AzureKeyVaultBackend
from airflow.sdk import BaseHook
from airflow.sdk.configuration import clear_secrets_backends_cache
from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded
from airflow.secrets import BaseSecretsBackend

from tests.integration.conftest import IMAGE_BACKEND_KWARGS
from umami_sync.secrets_backend import FailClosedAzureKeyVaultBackend

if TYPE_CHECKING:
    import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_HOME = "/opt/airflow"
PACKAGE_FOLDERS = ("dags", "plugins", "include")
# Secret names an operator creates in Key Vault (tests/integration/test_keyvault.py reads them through
# the real backend); connection ids come from airflow_settings.yaml.
SETTINGS_VARIABLE_SECRET = "airflow-variables-umami-sync-settings"
AIRFLOW_COMMANDS = {"airflow-init": "db migrate", "airflow-apiserver": "api-server",
                    "airflow-scheduler": "scheduler", "airflow-dag-processor": "dag-processor"}
COMPOSE_DEFAULT = re.compile(r"\$\{(\w+):-([^}]*)\}")


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def instructions(name: str) -> list[str]:
    """Arguments of every ``name`` instruction."""
    return [arguments for instruction, arguments in dockerfile() if instruction == name]


def image_env() -> dict[str, str]:
    """The image's ENV settings (values unquoted as Docker does; ARG references left as written)."""
    return dict(pair.split("=", 1) for arguments in instructions("ENV") for pair in shlex.split(arguments))


def requirement_pins() -> dict[str, str]:
    """``name -> version`` of the ``name==version`` lines of requirements.txt (extras dropped)."""
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[re.sub(r"\[.*\]", "", name).strip().lower()] = version.strip()
    return pins


def import_string(dotted_path: str) -> Any:
    """The object a dotted path names, as Airflow resolves a configured class."""
    module, _, name = dotted_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def settings_connections() -> dict[str, dict[str, Any]]:
    """The connections of airflow_settings.yaml by id."""
    settings = yaml.safe_load((REPO / "airflow_settings.yaml").read_text())
    return {conn["conn_id"]: conn for conn in settings["airflow"]["connections"]}


def connection_secret_names() -> list[str]:
    """The Key Vault secret names the image's backend reads the project's connections from."""
    env = image_env()
    backend = import_string(env["AIRFLOW__SECRETS__BACKEND"])(**json.loads(env["AIRFLOW__SECRETS__BACKEND_KWARGS"]))
    assert isinstance(backend, AzureKeyVaultBackend)
    return [backend.build_path(backend.connections_prefix or "", conn_id, backend.sep)
            for conn_id in settings_connections()]


def compose() -> dict[str, Any]:
    """docker-compose.yml, with ``${VAR:-default}`` replaced by its default as ``docker compose`` does
    when nothing overrides it."""
    text = COMPOSE_DEFAULT.sub(lambda match: match.group(2), (REPO / "docker-compose.yml").read_text())
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def container_ports(service: dict[str, Any]) -> set[int]:
    """Container-side ports a compose service publishes."""
    return {int(str(mapping).rsplit(":", 1)[-1]) for mapping in service.get("ports", [])}


class TestVersions:
    def test_base_image_carries_the_pinned_airflow_on_the_project_python(self) -> None:
        python = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]["python_version"]
        airflow_pin = requirement_pins()["apache-airflow"]

        assert instructions("FROM") == [f"apache/airflow:{airflow_pin}-python{python}"]
        assert airflow.__version__ == airflow_pin  # the tests run the Airflow the image carries

    def test_requirements_are_installed_with_airflow_held_at_the_image_version(self) -> None:
        assert "requirements.txt /requirements.txt" in instructions("COPY")
        [install] = instructions("RUN")
        assert shlex.split(install) == ["pip", "install", "--no-cache-dir",
                                        "apache-airflow==${AIRFLOW_VERSION}", "-r", "/requirements.txt"]


class TestPaths:
    def test_package_folders_are_copied_into_airflow_home(self) -> None:
        copies = {tuple(shlex.split(arguments)[-2:]) for arguments in instructions("COPY")}

        for folder in PACKAGE_FOLDERS:
            assert (REPO / folder).is_dir()
            assert (f"{folder}/", f"{AIRFLOW_HOME}/{folder}/") in copies

    def test_the_build_context_lets_the_copied_paths_in(self) -> None:
        rules = [rule for rule in (REPO / ".dockerignore").read_text().splitlines()
                 if rule and not rule.startswith("#")]

        assert rules[0] == "*"  # everything is left out first, then let in by name
        for path in (*(f"{folder}/" for folder in PACKAGE_FOLDERS), "requirements.txt"):
            assert f"!{path}" in rules

    def test_nothing_the_dag_imports_is_left_out_of_the_image(self) -> None:
        excluded = [rule.rstrip("/") for rule in (REPO / ".dockerignore").read_text().splitlines()
                    if rule.startswith("include/")]
        modules = [Path(rule).name for rule in excluded if any((REPO / rule).rglob("*.py"))]
        sources = [*(REPO / "dags").rglob("*.py"), *(REPO / "plugins").rglob("*.py")]

        assert excluded == ["include/local_stack", "include/docs"]
        assert modules == ["local_stack"]
        assert not [source for source in sources
                    if re.search(rf"^\s*(from|import)\s+({'|'.join(modules)})\b", source.read_text(), re.M)]


class TestSecretsBackend:
    def test_key_vault_backend_imports_and_takes_the_image_kwargs(self) -> None:
        env = image_env()
        backend_class = import_string(env["AIRFLOW__SECRETS__BACKEND"])
        kwargs = json.loads(env["AIRFLOW__SECRETS__BACKEND_KWARGS"])

        assert backend_class is FailClosedAzureKeyVaultBackend  # Airflow's Key Vault backend, failing closed
        assert issubclass(backend_class, AzureKeyVaultBackend)
        assert issubclass(backend_class, BaseSecretsBackend)
        assert set(kwargs) <= set(inspect.signature(backend_class).parameters)
        assert kwargs == IMAGE_BACKEND_KWARGS  # what the Key Vault integration tests run with

    def test_the_vault_url_is_given_at_run_time_and_no_credential_is_baked_in(self) -> None:
        env = image_env()
        kwargs = json.loads(env["AIRFLOW__SECRETS__BACKEND_KWARGS"])

        assert env["AIRFLOW__SECRETS__BACKEND_KWARG__VAULT_URL"] == "${KEY_VAULT_URL}"
        assert instructions("ARG") == ['KEY_VAULT_URL=""']
        assert not {"vault_url", "tenant_id", "client_id", "client_secret"} & set(kwargs)
        assert not [name for name in env if name.startswith(("AZURE_", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))]

    def test_the_backend_is_importable_from_the_plugins_folder_on_pythonpath(self) -> None:
        env = image_env()
        module = env["AIRFLOW__SECRETS__BACKEND"].rpartition(".")[0]

        assert env["PYTHONPATH"] == f"{AIRFLOW_HOME}/plugins"
        assert (REPO / "plugins" / Path(*module.split("."))).with_suffix(".py").is_file()

    def test_airflow_imports_the_backend_before_it_puts_the_plugins_folder_on_sys_path(
            self, tmp_path: Path) -> None:
        """Why the image sets PYTHONPATH: without it, no Airflow process starts with this backend."""
        environment = {**{name: value for name, value in os.environ.items() if name != "PYTHONPATH"},
                       "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                       "AIRFLOW__SECRETS__BACKEND": image_env()["AIRFLOW__SECRETS__BACKEND"]}

        def start_airflow(**extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-c", "import airflow"], cwd=tmp_path, env={**environment, **extra},
                                  capture_output=True, text=True, timeout=120, check=False)

        without_pythonpath = start_airflow()
        with_pythonpath = start_airflow(PYTHONPATH=str(REPO / "plugins"))

        assert without_pythonpath.returncode != 0
        assert "No module named 'umami_sync'" in without_pythonpath.stderr
        assert with_pythonpath.returncode == 0, with_pythonpath.stderr

    def test_secret_names_follow_prefix_separator_and_id(self) -> None:
        assert connection_secret_names() == ["airflow-connections-umami-db", "airflow-connections-umami-api",
                                             "airflow-connections-users-mongo"]


class TestCompose:
    def test_airflow_services_run_the_image_of_this_dockerfile(self) -> None:
        services = compose()["services"]
        parser = get_parser()

        for name, command in AIRFLOW_COMMANDS.items():
            assert services[name]["build"] == "."
            assert services[name]["command"] == command
            parser.parse_args(command.split())  # an entry point of the installed (= image) Airflow

    def test_the_services_the_dag_talks_to_are_there(self) -> None:
        services = compose()["services"]

        assert re.fullmatch(r"ghcr\.io/umami-software/umami:3\.1\.\d+", services["umami"]["image"])
        assert services["mongo"]["image"] == "mongo:7"
        assert services["umami-db"]["image"].startswith("postgres:")
        assert services["umami"]["environment"]["DATABASE_URL"].startswith("postgresql://")

    def test_connections_resolve_to_compose_services_with_key_vault_off(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        stack = compose()
        services = stack["services"]
        environment = {**image_env(), **services["airflow-scheduler"]["environment"]}
        for name, value in environment.items():
            if name.startswith(("AIRFLOW__SECRETS__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")):  # what lookups read
                monkeypatch.setenv(name, str(value))
        clear_secrets_backends_cache()
        try:
            backends = [type(backend).__name__ for backend in ensure_secrets_backend_loaded()]
            connections = {conn_id: BaseHook.get_connection(conn_id) for conn_id in settings_connections()}
        finally:
            clear_secrets_backends_cache()

        assert backends == ["EnvironmentVariablesBackend"]
        for conn_id, conn in connections.items():
            host = urlsplit(conn.host).hostname if "://" in (conn.host or "") else conn.host
            port = urlsplit(conn.host).port if "://" in (conn.host or "") else conn.port
            assert conn.conn_type == settings_connections()[conn_id]["conn_type"]
            assert host in services, conn_id
            assert port in container_ports(services[host]), conn_id
        umami_db = services["umami-db"]["environment"]
        assert (connections["umami_db"].schema, connections["umami_db"].login,
                connections["umami_db"].password) == (
            umami_db["POSTGRES_DB"], umami_db["POSTGRES_USER"], umami_db["POSTGRES_PASSWORD"])


    def test_the_stack_publishes_the_ports_of_the_local_settings(self) -> None:
        services = compose()["services"]
        published = {int(str(mapping).split(":", 1)[0])
                     for service in services.values() for mapping in service.get("ports", [])}

        for conn_id, conn in settings_connections().items():
            port = conn.get("conn_port") or urlsplit(conn["conn_host"]).port
            assert port in published, conn_id
        umami_db = services["umami-db"]["environment"]
        assert {key: settings_connections()["umami_db"][key] for key in ("conn_schema", "conn_login",
                                                                           "conn_password")} == {
            "conn_schema": umami_db["POSTGRES_DB"], "conn_login": umami_db["POSTGRES_USER"],
            "conn_password": umami_db["POSTGRES_PASSWORD"]}


def readme_strings() -> list[str]:
    """What the README must state, taken from the files it describes."""
    env = image_env()
    return [
        instructions("FROM")[0],
        *connection_secret_names(),
        SETTINGS_VARIABLE_SECRET,
        env["AIRFLOW__SECRETS__BACKEND"],
        "AIRFLOW__SECRETS__BACKEND_KWARGS",
        "AIRFLOW__SECRETS__BACKEND_KWARG__VAULT_URL",
        "python include/load_airflow_settings.py",
        "docker compose up --build",
        compose()["services"]["umami"]["image"],
        '"tls": true',
        '"sslmode": "verify-full"',
    ]


def test_readme_documents_the_deployment() -> None:
    readme = REPO / "README.md"
    text = readme.read_text() if readme.is_file() else ""

    missing = [needed for needed in readme_strings() if needed not in text]

    assert not missing, f"README.md does not mention: {missing}"

"""Load an Astro CLI ``airflow_settings.yaml`` into plain Airflow.

    python include/load_airflow_settings.py [airflow_settings.yaml] [--print | --out DIR]

Converts the file's connections and variables into the JSON files that ``airflow connections import``
and ``airflow variables import`` read, then runs both commands (existing entries are overwritten), so
the metadata database of the current ``AIRFLOW_HOME`` ends up with what ``astro dev start`` would load.
``--print`` only prints the two documents; ``--out DIR`` only writes ``connections.json`` and
``variables.json`` into DIR.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_SETTINGS = Path(__file__).resolve().parent.parent / "airflow_settings.yaml"
CONNECTIONS_FILE = "connections.json"
VARIABLES_FILE = "variables.json"


class AstroConnection(BaseModel):
    """One entry of ``airflow.connections`` (field names as the Astro CLI reads them)."""

    model_config = ConfigDict(extra="forbid")

    conn_id: str = Field(min_length=1)
    conn_type: str | None = None
    conn_host: str | None = None
    conn_schema: str | None = None
    conn_login: str | None = None
    conn_password: str | None = None
    conn_port: int | None = None
    conn_uri: str | None = None
    conn_extra: dict[str, Any] | str | None = None

    def airflow_form(self) -> dict[str, Any]:
        """The connection as ``airflow connections import`` takes it from a JSON file."""
        fields = {"conn_type": self.conn_type, "host": self.conn_host, "schema": self.conn_schema,
                  "login": self.conn_login, "password": self.conn_password, "port": self.conn_port,
                  "uri": self.conn_uri, "extra": self.conn_extra}
        return {name: value for name, value in fields.items() if value not in (None, "", {})}


class AstroVariable(BaseModel):
    """One entry of ``airflow.variables``; the value is a string, as Astro stores it."""

    model_config = ConfigDict(extra="forbid")

    variable_name: str = Field(min_length=1)
    variable_value: str


class AstroAirflowSettings(BaseModel):
    """The ``airflow`` section of the file."""

    model_config = ConfigDict(extra="forbid")

    connections: list[AstroConnection] = []
    variables: list[AstroVariable] = []
    pools: list[dict[str, Any]] = []

    @field_validator("pools")
    @classmethod
    def _no_pools(cls, pools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if pools:
            raise ValueError("pools are not loaded by this command: create them with `airflow pools set`")
        return pools


class AstroSettingsFile(BaseModel):
    """``airflow_settings.yaml``."""

    model_config = ConfigDict(extra="forbid")

    airflow: AstroAirflowSettings


def read_settings(path: Path) -> AstroAirflowSettings:
    """Parse and validate an ``airflow_settings.yaml``."""
    return AstroSettingsFile.model_validate(yaml.safe_load(path.read_text()) or {}).airflow


def import_documents(settings: AstroAirflowSettings) -> dict[str, dict[str, Any]]:
    """The two JSON documents, by file name: connections by id, variables by name."""
    return {
        CONNECTIONS_FILE: {conn.conn_id: conn.airflow_form() for conn in settings.connections},
        VARIABLES_FILE: {var.variable_name: var.variable_value for var in settings.variables},
    }


def write_documents(documents: dict[str, dict[str, Any]], folder: Path) -> None:
    """Write each document as ``folder/<file name>``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        (folder / name).write_text(json.dumps(document, indent=2) + "\n")


def run_imports(folder: Path) -> None:
    """Run ``airflow connections import`` and ``airflow variables import`` on the files in ``folder``."""
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "connections", "import", "--overwrite", str(folder / CONNECTIONS_FILE)],
                   check=True)
    subprocess.run([*airflow, "variables", "import", "--action-on-existing-key", "overwrite",
                    str(folder / VARIABLES_FILE)], check=True)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("settings", nargs="?", type=Path, default=DEFAULT_SETTINGS,
                        help="the Astro settings file (default: the repository's airflow_settings.yaml)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--print", action="store_true", help="print the import documents, import nothing")
    only.add_argument("--out", type=Path, metavar="DIR",
                      help="write the import files into DIR, import nothing")
    args = parser.parse_args(argv)

    documents = import_documents(read_settings(args.settings))
    if args.print:
        print(json.dumps(documents, indent=2))
    elif args.out:
        write_documents(documents, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="airflow-settings-") as folder:
            write_documents(documents, Path(folder))
            run_imports(Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())

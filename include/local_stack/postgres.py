"""A throwaway PostgreSQL cluster from the machine's server binaries, and Umami's tables as Umami's own
migrations leave them (``include/sql/umami``, see its README) at one of three levels: 2.20.2, 3.1.0 and 3.3."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import psycopg

from local_stack._proc import free_port, port_open, wait_until

if TYPE_CHECKING:
    from types import TracebackType

SCHEMAS = Path(__file__).resolve().parent.parent / "sql" / "umami"
SCHEMA_LEVELS: dict[str, tuple[str, ...]] = {
    "2.20.2": ("2.20.2",),
    "3.1.0": ("2.20.2", "3.1.0"),
    "3.3": ("2.20.2", "3.1.0", "3.3"),
}
"""The files of ``include/sql/umami`` that build each schema level, in order (each later one a change of the
tables the earlier ones made, as Umami's migrations of that release change them)."""
DEFAULT_LEVEL = "3.1.0"
"""The level of the demo and the benchmark, and of every test that does not ask for another."""
_CLUSTER_USER = "postgres"


def _run_as() -> str | None:
    """initdb refuses to run as root: use the ``postgres`` account then."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_CLUSTER_USER)
    except KeyError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError("running as root needs a 'postgres' account to own the cluster") from exc
    return _CLUSTER_USER


class LocalPostgres:
    """Start ``initdb`` + ``postgres`` in a temporary folder; stop and remove it on exit.

    The database ``umami`` is created and owned by the role ``umami`` (trust auth on loopback).
    """

    def __init__(self, port: int | None = None, database: str = "umami") -> None:
        self.port = port or free_port()
        self.database = database
        self.user = "umami"
        self._dir: Path | None = None
        self._user = _run_as()

    @property
    def dsn(self) -> str:
        """libpq URI of the database."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _bin(self, name: str) -> str:
        found = shutil.which(name)
        if found is None:
            candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
            if not candidates:
                raise RuntimeError(f"PostgreSQL binary {name!r} not found on PATH or in /usr/lib/postgresql")
            found = str(candidates[-1])
        return found

    def _call(self, *args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, user=self._user)

    def start(self) -> LocalPostgres:
        """Create and start the cluster, then create the database; on failure remove it all and say why."""
        try:
            return self._start()
        except (subprocess.CalledProcessError, OSError, psycopg.Error) as exc:
            log = self._dir / "log" if self._dir else None
            tail = log.read_text(errors="replace")[-2000:] if log and log.is_file() else ""
            stderr = exc.stderr.decode(errors="replace")[-2000:] if isinstance(exc, subprocess.CalledProcessError) \
                and exc.stderr else ""
            self.stop()
            raise RuntimeError(f"PostgreSQL on port {self.port} did not start: {exc}\n{stderr}{tail}".strip()) from exc

    def _start(self) -> LocalPostgres:
        self._dir = Path(tempfile.mkdtemp(prefix="umami-pg-"))
        data = self._dir / "data"
        if self._user:
            shutil.chown(self._dir, user=self._user)
        self._call(self._bin("initdb"), "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                   "--no-sync")
        options = (
            f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        )
        self._call(self._bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(self._dir / "log"),
                   "-w", "start")
        wait_until(lambda: port_open(self.port), timeout=30, what="PostgreSQL")
        create_database(f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres", self.database)
        return self

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        if self._dir is None:
            return
        subprocess.run([self._bin("pg_ctl"), "-D", str(self._dir / "data"), "-m", "immediate", "stop"],
                       capture_output=True, user=self._user, check=False)
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def load_umami_schema(dsn: str, level: str = DEFAULT_LEVEL) -> None:
    """Build Umami's tables at ``level`` in the (empty) database at ``dsn``, one file after another, each in its own
    transaction."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in SCHEMA_LEVELS[level]:
            with conn.transaction():
                conn.execute((SCHEMAS / f"{name}.sql").read_text())


def create_database(dsn: str, name: str) -> str:
    """Create the empty database ``name`` on the server of ``dsn``; its DSN."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def run_sql_file(dsn: str, path: Path) -> None:
    """Execute every statement of an SQL file in one transaction."""
    with psycopg.connect(dsn) as conn:
        conn.execute(path.read_text())

"""A throwaway PostgreSQL cluster from the machine's server binaries, loaded with Umami's schema."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from local_stack._proc import free_port, port_open, wait_until

if TYPE_CHECKING:
    from types import TracebackType

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
UMAMI_SCHEMA = SQL_DIR / "umami_schema.sql"
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
        with psycopg.connect(f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
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


def load_umami_schema(dsn: str) -> None:
    """Create Umami's tables (as its own migrations leave them) in the database at ``dsn``."""
    run_sql_file(dsn, UMAMI_SCHEMA)


def run_sql_file(dsn: str, path: Path) -> None:
    """Execute every statement of an SQL file in one transaction."""
    with psycopg.connect(dsn) as conn:
        conn.execute(path.read_text())

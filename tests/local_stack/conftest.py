"""Fixtures for the local Umami stack: the real 3.1.0 rows in PostgreSQL, and FakeUmami over them.

The fixture folder itself comes from the suite-wide ``umami_fixtures`` fixture (``tests/conftest.py``),
which resolves ``tests/fixtures/umami/3.1.0`` inside the repository.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from local_stack.postgres import run_sql_file
from local_stack.umami_api import FakeUmami

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def umami_rows_db(umami_db: str, umami_fixtures: Path) -> str:
    """Umami's database holding exactly the rows a real 3.1.0 server wrote (``rows.sql``, unchanged)."""
    run_sql_file(umami_db, umami_fixtures / "rows.sql")
    return umami_db


@pytest.fixture
def fake_umami(umami_rows_db: str) -> Iterator[FakeUmami]:
    """A self-hosted FakeUmami over ``umami_rows_db`` with its default admin user."""
    with FakeUmami(umami_rows_db) as fake:
        yield fake


@pytest.fixture
def umami_http(fake_umami: FakeUmami) -> Iterator[requests.Session]:
    """An HTTP session logged in to ``fake_umami`` (``Authorization: Bearer <token>`` set)."""
    with requests.Session() as http:
        reply = http.post(f"{fake_umami.url}/api/auth/login",
                          json={"username": "admin", "password": "umami"}, timeout=10)
        reply.raise_for_status()
        http.headers["Authorization"] = f"Bearer {reply.json()['token']}"
        yield http


@pytest.fixture
def scratch() -> Iterator[Path]:
    """An empty folder to be the demo's TMPDIR (world-traversable, as the PostgreSQL cluster needs)."""
    folder = Path(tempfile.mkdtemp(prefix="umami-demo-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)

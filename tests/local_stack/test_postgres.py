"""The throwaway PostgreSQL: a start that fails says why and leaves nothing behind."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from local_stack.postgres import LocalPostgres

pytestmark = pytest.mark.integration


def test_a_cluster_that_cannot_start_is_removed_and_its_log_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    own = Path(tempfile.mkdtemp(prefix="umami-pg-test-"))  # other test runs may start clusters in /tmp meanwhile
    own.chmod(0o755)  # the cluster's owner (``postgres`` when run as root) must reach its folder
    monkeypatch.setattr(tempfile, "tempdir", str(own))
    try:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            server = LocalPostgres(port=busy.getsockname()[1])

            with pytest.raises(RuntimeError, match=rf"PostgreSQL on port {server.port} did not start") as caught:
                server.start()

        assert "could not" in str(caught.value).lower()  # PostgreSQL's own words from its log
        assert list(own.iterdir()) == []
    finally:
        shutil.rmtree(own, ignore_errors=True)

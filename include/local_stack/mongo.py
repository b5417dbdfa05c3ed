"""A MongoDB wire-compatible server (SecantusDB) in its own process, in memory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from local_stack._proc import free_port, port_open, wait_until

if TYPE_CHECKING:
    from types import TracebackType


class LocalMongo:
    """Run ``secantusd-py`` on loopback with in-memory storage; stop it on exit."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """``mongodb://`` URI of the server."""
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> LocalMongo:
        """Start the server and wait until it accepts connections."""
        exe = shutil.which("secantusd-py") or str(Path(sys.executable).with_name("secantusd-py"))
        self._proc = subprocess.Popen(
            [exe, "--host", "127.0.0.1", "--port", str(self.port), "--storage-path", ":memory:"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.port), timeout=30, what="the MongoDB wire server")
        return self

    def stop(self) -> None:
        """Stop the server."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None

    def __enter__(self) -> LocalMongo:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

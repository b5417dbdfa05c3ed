"""TcpProxy in front of a loopback echo server and an ``http.server``: each mode, switched on open connections."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest
import requests

from local_stack.tcp_proxy import Mode, TcpProxy

if TYPE_CHECKING:
    from collections.abc import Iterator

TIMEOUT = 2.0  # the longest any single wait in this file may take
QUIET = 0.3  # how long "nothing arrives" is watched for


class EchoServer:
    """Send back whatever each connection sends, on 127.0.0.1, one thread per connection."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._echo, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _echo(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        with conn:
            while not self._stopped.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                with contextlib.suppress(OSError):
                    conn.sendall(data)

    def stop(self) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=TIMEOUT)
        self._listener.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.stop()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", echo.port) as running:
        yield running


def connect(proxy: TcpProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def receive(sock: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes from ``sock`` (fewer only if it closes)."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def assert_passes_again(proxy: TcpProxy, payload: bytes) -> None:
    """Switched back to PASS, a new connection echoes ``payload``."""
    proxy.set_mode(Mode.PASS)
    with connect(proxy) as sock:
        sock.sendall(payload)
        assert receive(sock, len(payload)) == payload


def assert_quiet(sock: socket.socket) -> None:
    """Nothing arrives on ``sock`` for QUIET seconds, and it is not closed either."""
    sock.settimeout(QUIET)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    sock.settimeout(TIMEOUT)


def test_pass_forwards_both_ways_and_counts_connections(proxy: TcpProxy) -> None:
    assert proxy.address == f"127.0.0.1:{proxy.port}"
    assert proxy.mode is Mode.PASS
    with connect(proxy) as one, connect(proxy) as two:
        one.sendall(b"hello")
        two.sendall(b"world" * 10000)
        assert receive(one, 5) == b"hello"
        assert receive(two, 50000) == b"world" * 10000
    assert proxy.accepted == 2


def test_pass_forwards_the_close(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"bye")
        sock.shutdown(socket.SHUT_WR)
        assert receive(sock, 10) == b"bye"  # then b"": the echo server saw the FIN and closed


def test_stall_holds_bytes_until_pass(proxy: TcpProxy) -> None:
    with connect(proxy) as open_before:
        open_before.sendall(b"ping")
        assert receive(open_before, 4) == b"ping"
        proxy.set_mode(Mode.STALL)
        open_before.sendall(b"held")
        assert_quiet(open_before)
        with connect(proxy) as opened_during:  # new connections are accepted, but stall too
            opened_during.sendall(b"new")
            assert_quiet(opened_during)
            proxy.set_mode(Mode.PASS)
            assert receive(open_before, 4) == b"held"
            assert receive(opened_during, 3) == b"new"
            opened_during.sendall(b"again")
            assert receive(opened_during, 5) == b"again"
    assert proxy.accepted == 2


def test_reset_resets_open_and_new_connections(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"ping")
        assert receive(sock, 4) == b"ping"
        started = time.monotonic()
        proxy.set_mode(Mode.RESET)
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
        assert time.monotonic() - started < 1
    with pytest.raises(ConnectionResetError), connect(proxy) as sock:  # from connect() or from recv()
        sock.recv(1)
    assert_passes_again(proxy, b"back")
    assert proxy.accepted == 3


def test_trickle_sends_one_byte_per_interval(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        proxy.set_mode(Mode.TRICKLE, trickle_interval=0.1)
        sock.sendall(b"abcde")
        started = time.monotonic()
        chunks = [sock.recv(100) for _ in range(5)]
        elapsed = time.monotonic() - started
    assert chunks == [b"a", b"b", b"c", b"d", b"e"]
    assert 0.35 < elapsed < 1.5  # the first byte goes at once, then one per 0.1 s


def test_refuse_closes_the_listener_and_listens_again(proxy: TcpProxy) -> None:
    with connect(proxy) as open_before:
        proxy.set_mode(Mode.REFUSE)
        with pytest.raises(ConnectionRefusedError):
            connect(proxy)
        open_before.sendall(b"still")  # open connections keep working
        assert receive(open_before, 5) == b"still"
        assert_passes_again(proxy, b"again")
    assert proxy.accepted == 2


def test_refuse_before_start_listens_only_when_switched_back(echo: EchoServer) -> None:
    proxy = TcpProxy("127.0.0.1", echo.port)
    proxy.set_mode(Mode.REFUSE)
    with proxy:
        with pytest.raises(ConnectionRefusedError):
            connect(proxy)
        assert_passes_again(proxy, b"up")


def test_stall_after_lets_exactly_n_bytes_through(proxy: TcpProxy) -> None:
    with connect(proxy) as open_before:
        open_before.sendall(b"login")
        assert receive(open_before, 5) == b"login"
        proxy.stall_after(3)
        open_before.sendall(b"abcdef")  # client->server still flows until the 3 bytes came back
        assert receive(open_before, 3) == b"abc"
        assert_quiet(open_before)
        with connect(proxy) as opened_after:  # counted from the start on new connections
            opened_after.sendall(b"xy")
            assert receive(opened_after, 2) == b"xy"
            opened_after.sendall(b"z12")
            assert receive(opened_after, 1) == b"z"
            assert_quiet(opened_after)
            proxy.set_mode(Mode.PASS)
            assert receive(open_before, 3) == b"def"
            assert receive(opened_after, 2) == b"12"


def test_set_mode_rejects_options_of_other_modes(proxy: TcpProxy) -> None:
    with pytest.raises(ValueError, match="trickle_interval"):
        proxy.set_mode(Mode.STALL, trickle_interval=0.1)
    with pytest.raises(ValueError, match="stall_after"):
        proxy.set_mode(Mode.PASS, stall_after=1)


def test_stop_is_prompt_with_open_connections(echo: EchoServer) -> None:
    proxy = TcpProxy("127.0.0.1", echo.port).start()
    socks = [connect(proxy) for _ in range(3)]
    try:
        socks[0].sendall(b"ping")
        assert receive(socks[0], 4) == b"ping"
        proxy.stall_after(0)
        socks[1].sendall(b"stalled")
        started = time.monotonic()
        proxy.stop()
        assert time.monotonic() - started < 1
        for sock in socks[::2]:
            assert sock.recv(1) == b""  # closed by the proxy with a FIN...
        with pytest.raises(ConnectionResetError):
            socks[1].recv(1)  # ... or an RST, as the kernel does when unread bytes are left
        assert not [t for t in threading.enumerate() if t.name.startswith(f"tcp-proxy-{proxy.port}")]
        with pytest.raises(ConnectionRefusedError):
            connect(proxy)
    finally:
        for sock in socks:
            sock.close()


class Hello(BaseHTTPRequestHandler):
    timeout = TIMEOUT

    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_proxy() -> Iterator[TcpProxy]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with TcpProxy("127.0.0.1", httpd.server_address[1]) as proxy:
            yield proxy
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=TIMEOUT)


def test_requests_through_the_proxy(http_proxy: TcpProxy) -> None:
    url = f"http://{http_proxy.address}/"
    assert requests.get(url, timeout=TIMEOUT).text == "hello"
    http_proxy.set_mode(Mode.STALL)
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        requests.get(url, timeout=0.5)
    assert time.monotonic() - started < 1.5
    http_proxy.set_mode(Mode.PASS)
    assert requests.get(url, timeout=TIMEOUT).text == "hello"

"""A fault-injecting TCP proxy on loopback, for testing clients against servers that stall, reset or trickle.

:class:`TcpProxy` forwards 127.0.0.1:port to a target server. Its :class:`Mode` can be changed while it runs
and applies at once to the connections already open and to new ones::

    with TcpProxy("127.0.0.1", pg_port) as proxy:
        conn = psycopg.connect(f"postgresql://user@{proxy.address}/db")  # PASS: logs in
        proxy.stall_after(0)         # every connection now hangs, both ways
        proxy.set_mode(Mode.RESET)   # every connection gets an RST
        proxy.set_mode(Mode.REFUSE)  # nothing listens on the port any more

When :meth:`TcpProxy.set_mode` returns, every open connection and the listener are in the new mode.
Each accepted connection gets its own connection to the target and one daemon thread that waits on a selector.
"""

from __future__ import annotations

import contextlib
import enum
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from local_stack._proc import free_port

if TYPE_CHECKING:
    from types import TracebackType

CONNECT_TIMEOUT = 2.0  # seconds to connect to the target before the client gets an RST
JOIN_TIMEOUT = 1.0  # how long stop() and set_mode() wait for the serving threads
CHUNK = 65536  # the most bytes read at once, and held per direction
DEFAULT_TRICKLE_INTERVAL = 0.1
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST


class Mode(enum.StrEnum):
    """What the proxy does with its connections."""

    PASS = "pass"
    """Forward both ways."""
    STALL = "stall"
    """Keep connections open (and accept new ones) but forward nothing, either way."""
    RESET = "reset"
    """Close every connection with an RST, new ones as soon as they are accepted."""
    TRICKLE = "trickle"
    """Forward server->client one byte per ``trickle_interval`` seconds; client->server as in PASS."""
    REFUSE = "refuse"
    """Close the listener, so connects are refused; open connections are forwarded as in PASS."""


@dataclass(frozen=True)
class _State:
    mode: Mode
    generation: int  # bumped by every set_mode(): connections restart their stall budget
    trickle_interval: float = DEFAULT_TRICKLE_INTERVAL
    stall_after: int = 0


def _abort(sock: socket.socket) -> None:
    """Close ``sock`` with an RST instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    sock.close()


class _Waker:
    """A socket pair that wakes up a selector from another thread."""

    def __init__(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # full (already woken) or closed (already gone)
            self._writer.send(b"\0")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            while self.reader.recv(CHUNK):
                pass

    def close(self) -> None:
        self.reader.close()
        self._writer.close()


class _Pipe:
    """One direction of a connection: bytes read from ``src`` and held until they may go to ``dst``."""

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src, self.dst = src, dst
        self.held = bytearray()
        self.eof = False  # src has sent its FIN
        self.shut = False  # ... and it was passed on to dst
        self.blocked = False  # dst could not take all it was offered

    def wants_read(self) -> bool:
        return not self.eof and len(self.held) < CHUNK

    def read(self) -> None:
        try:
            data = self.src.recv(CHUNK)
        except BlockingIOError:
            return
        if data:
            self.held += data
        else:
            self.eof = True

    def forward(self, limit: int) -> int:
        """Send up to ``limit`` held bytes (then the FIN, once all is sent); return how many were sent."""
        offered = min(limit, len(self.held))
        sent = 0
        if offered:
            with contextlib.suppress(BlockingIOError):
                sent = self.dst.send(self.held[:offered])
            del self.held[:sent]
        self.blocked = sent < offered
        if self.eof and not self.held and not self.shut:
            self.dst.shutdown(socket.SHUT_WR)
            self.shut = True
        return sent


class _Link:
    """One proxied connection, served by its own thread."""

    def __init__(self, proxy: TcpProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.waker = _Waker()
        self.seen: int | None = None  # generation of the state last acted on; None while connecting
        self.thread = threading.Thread(target=self._run, name=f"tcp-proxy-{proxy.port}-link", daemon=True)

    def _run(self) -> None:
        server: socket.socket | None = None
        clean = False
        try:
            server = socket.create_connection((self.proxy.target_host, self.proxy.target_port),
                                              timeout=CONNECT_TIMEOUT)
            for sock in (self.client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(False)
            clean = self._serve(server)
        except OSError:
            pass
        finally:
            close = socket.socket.close if clean else _abort
            close(self.client)
            if server is not None:
                close(server)
            self.waker.close()
            self.proxy._forget(self)

    def _serve(self, server: socket.socket) -> bool:
        """Forward until both sides are done (True) or the connection must be reset (False)."""
        up, down = _Pipe(self.client, server), _Pipe(server, self.client)
        generation, budget, next_byte = -1, 0, 0.0
        with selectors.DefaultSelector() as sel:
            sel.register(self.waker.reader, selectors.EVENT_READ)
            while True:
                state = self.proxy._ack(self)
                if state is None or state.mode is Mode.RESET:
                    return state is None  # stop() closes with a FIN
                if state.generation != generation:
                    generation, budget, next_byte = state.generation, state.stall_after, 0.0
                stalled = state.mode is Mode.STALL and budget == 0
                timeout: float | None = None
                if not stalled:
                    up.forward(CHUNK)
                    if state.mode is Mode.TRICKLE:
                        now = time.monotonic()
                        if down.forward(1 if now >= next_byte else 0):
                            next_byte = now + state.trickle_interval
                        if down.held:
                            timeout = max(0.0, next_byte - now)
                    elif state.mode is Mode.STALL:
                        budget -= down.forward(budget)
                        stalled = budget == 0
                    else:
                        down.forward(CHUNK)
                if up.shut and down.shut:
                    return True
                up.blocked = up.blocked and not stalled
                down.blocked = down.blocked and not stalled
                read = selectors.EVENT_READ
                _watch(sel, self.client, (read if up.wants_read() and not stalled else 0)
                       | (selectors.EVENT_WRITE if down.blocked else 0))
                _watch(sel, server, (read if down.wants_read() and not stalled else 0)
                       | (selectors.EVENT_WRITE if up.blocked else 0))
                for key, events in sel.select(timeout):
                    if key.fileobj is self.waker.reader:
                        self.waker.drain()
                    elif events & selectors.EVENT_READ:
                        (up if key.fileobj is self.client else down).read()


def _watch(sel: selectors.BaseSelector, sock: socket.socket, events: int) -> None:
    """Make ``sel`` wait for exactly ``events`` on ``sock`` (none: not at all)."""
    try:
        current = sel.get_key(sock).events
    except KeyError:
        current = 0
    if events == current:
        return
    if not events:
        sel.unregister(sock)
    elif not current:
        sel.register(sock, events)
    else:
        sel.modify(sock, events)


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``target_host:target_port``, with faults set by :meth:`set_mode`."""

    def __init__(self, target_host: str, target_port: int, *, port: int | None = None) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = port or free_port()
        self._lock = threading.Lock()  # guards the fields below
        self._changed = threading.Condition(self._lock)  # a link acknowledged a state, or ended
        self._state = _State(Mode.PASS, 0)
        self._accepted = 0
        self._links: set[_Link] = set()
        self._running = False
        self._control = threading.Lock()  # serialises start, stop and set_mode; guards the listener
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._acceptor_waker: _Waker | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:port``, where clients connect."""
        return f"127.0.0.1:{self.port}"

    @property
    def mode(self) -> Mode:
        """The current mode."""
        with self._lock:
            return self._state.mode

    @property
    def accepted(self) -> int:
        """How many connections the proxy accepted since it was created (reset ones included)."""
        with self._lock:
            return self._accepted

    def start(self) -> TcpProxy:
        """Listen on 127.0.0.1:port (unless the mode is REFUSE) and serve in daemon threads."""
        with self._control:
            with self._lock:
                if self._running:
                    raise RuntimeError("the proxy is already running")
                self._running = True
                refuse = self._state.mode is Mode.REFUSE
            if not refuse:
                self._listen()
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, and wait (at most ~1 s) for the threads.

        Connections are closed with a FIN, but the kernel sends an RST instead where it holds bytes the
        proxy has not read (a stalled connection with bytes in flight).
        """
        with self._control:
            self._close_listener()
            with self._lock:
                self._running = False
                links = list(self._links)
            for link in links:
                link.waker.wake()
            deadline = time.monotonic() + JOIN_TIMEOUT
            for link in links:
                link.thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def set_mode(self, mode: Mode, *, trickle_interval: float | None = None, stall_after: int | None = None) -> None:
        """Switch to ``mode`` for open and new connections; returns once all of them are in it.

        ``trickle_interval`` (seconds, TRICKLE only; default 0.1) is the delay between two bytes.
        ``stall_after`` (STALL only; default 0) lets that many more bytes from the server through on each
        connection (counted from now for open ones, from the start for new ones) before it stalls; until then
        the connection forwards both ways.
        """
        if trickle_interval is not None and mode is not Mode.TRICKLE:
            raise ValueError("trickle_interval only applies to Mode.TRICKLE")
        if stall_after is not None and mode is not Mode.STALL:
            raise ValueError("stall_after only applies to Mode.STALL")
        interval = DEFAULT_TRICKLE_INTERVAL if trickle_interval is None else trickle_interval
        if interval < 0 or (stall_after or 0) < 0:
            raise ValueError("trickle_interval and stall_after must not be negative")
        with self._control:
            with self._lock:
                generation = self._state.generation + 1
                self._state = _State(mode, generation, interval, stall_after or 0)
                running = self._running
                links = list(self._links)
            if running and mode is Mode.REFUSE:
                self._close_listener()
            elif running and self._listener is None:
                self._listen()
            for link in links:
                link.waker.wake()
            with self._lock:
                done = self._changed.wait_for(
                    lambda: all(link.seen in (None, generation) for link in self._links), timeout=JOIN_TIMEOUT)
            if not done:
                raise TimeoutError(f"the proxy's connections did not switch to {mode} within {JOIN_TIMEOUT} s")

    def stall_after(self, n_bytes: int) -> None:
        """Let ``n_bytes`` more bytes from the server through on each connection, then stall both ways."""
        self.set_mode(Mode.STALL, stall_after=n_bytes)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the listener (only touched under self._control) ---------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        waker = _Waker()
        self._listener, self._acceptor_waker = listener, waker
        self._acceptor = threading.Thread(target=self._accept_loop, args=(listener, waker),
                                          name=f"tcp-proxy-{self.port}-accept", daemon=True)
        self._acceptor.start()

    def _close_listener(self) -> None:
        if self._listener is None or self._acceptor is None or self._acceptor_waker is None:
            return
        self._acceptor_waker.wake()
        self._acceptor.join(timeout=JOIN_TIMEOUT)
        # Connections the kernel completed but nobody accepted yet would get an RST when the listener
        # closes: a client that connected before set_mode(REFUSE) or stop() must see the same as the others.
        with contextlib.suppress(OSError):
            while True:
                self._admit(self._listener.accept()[0])
        self._listener.close()
        self._acceptor_waker.close()
        self._listener = self._acceptor = self._acceptor_waker = None

    def _accept_loop(self, listener: socket.socket, waker: _Waker) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            sel.register(waker.reader, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in sel.select()}
                if waker.reader in ready:
                    return
                try:
                    client, _ = listener.accept()
                except (BlockingIOError, ConnectionAbortedError):
                    continue
                self._admit(client)

    def _admit(self, client: socket.socket) -> None:
        with self._lock:
            self._accepted += 1
            if not self._running or self._state.mode is Mode.RESET:
                link = None
            else:
                link = _Link(self, client)
                self._links.add(link)
        if link is None:
            _abort(client)
        else:
            link.thread.start()

    # -- called by the links -----------------------------------------------------------------------------

    def _ack(self, link: _Link) -> _State | None:
        """The state ``link`` must act on now (None: the proxy stops); records that it has seen it."""
        with self._lock:
            if not self._running:
                return None
            if self._state.mode is not Mode.RESET:  # a link being reset is done once _forget() ran
                link.seen = self._state.generation
                self._changed.notify_all()
            return self._state

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)
            self._changed.notify_all()

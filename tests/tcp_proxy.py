"""A TCP proxy for tests: clients connect to it on a free port, and it forwards bytes
both ways between each of them and one upstream address, until a test drops every open
connection at once (a network blip) while it goes on accepting new ones.

It can also hold back what the upstream answers past a point the test chooses: the
client then has seen exactly that much when its connection drops, however fast the
upstream is.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator

ReplyCut = Callable[[bytes], int | None]
"""Given what the upstream sent on a connection since the hold began, how many of those
bytes may reach the client (None: all of them)."""

_CHUNK = 65536


class _Link:
    """One client connection and the upstream connection opened for it."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self._directions_left = 2
        self._closed = False
        self._lock = threading.Lock()

    def drop(self) -> None:
        """Reset both sides: linger 0 makes the close send RST, and the shutdown wakes the
        threads blocked reading them (a close alone would not)."""
        with self._lock:
            if self._closed:
                return
            for side in (self.client, self.upstream):
                try:
                    side.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    side.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # the peer went first

    def direction_done(self) -> bool:
        """Note that one direction has ended; once both have, close both sides (True)."""
        with self._lock:
            self._directions_left -= 1
            if self._directions_left > 0:
                return False
            self._closed = True
            self.client.close()
            self.upstream.close()
            return True


class TcpProxy:
    """Listens on a free port of 127.0.0.1 and forwards each connection to ``upstream``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._cut: ReplyCut | None = None
        self._threads: list[threading.Thread] = []
        self._start(self._accept)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold_replies(self, cut: ReplyCut) -> None:
        """From now until the next ``drop_all``, forward from each upstream answer only
        the bytes ``cut`` lets through; the rest is read and kept from the client."""
        with self._lock:
            self._cut = cut

    def drop_all(self) -> int:
        """Drop every open connection, both sides, and lift the hold; new connections are
        still accepted. Returns how many were dropped."""
        with self._lock:
            links = list(self._links)
            self._links.clear()
            self._cut = None
        for link in links:
            link.drop()
        return len(links)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept()
        self._listener.close()
        self.drop_all()
        for thread in list(self._threads):
            thread.join(timeout=10)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self._upstream)
            except OSError:
                client.close()
                continue
            link = _Link(client, upstream)
            with self._lock:
                self._links.add(link)
            self._start(self._forward_requests, link)
            self._start(self._forward_replies, link)

    def _forward_requests(self, link: _Link) -> None:
        try:
            while data := link.client.recv(_CHUNK):
                link.upstream.sendall(data)
            link.upstream.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # dropped
        self._finish(link)

    def _forward_replies(self, link: _Link) -> None:
        # A connection held once stays held: lifting the hold (in drop_all) never lets
        # through what it kept back, even in the moment before the connection drops.
        cut: ReplyCut | None = None
        since_hold = bytearray()  # what the upstream sent since the hold began
        passed = 0  # how much of it went on to the client
        try:
            while data := link.upstream.recv(_CHUNK):
                if cut is None:
                    with self._lock:
                        cut = self._cut
                if cut is None:
                    link.client.sendall(data)
                    continue
                since_hold += data
                allowed = cut(bytes(since_hold))
                end = len(since_hold) if allowed is None else min(allowed, len(since_hold))
                if end > passed:
                    link.client.sendall(since_hold[passed:end])
                    passed = end
            link.client.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # dropped
        self._finish(link)

    def _finish(self, link: _Link) -> None:
        if link.direction_done():
            with self._lock:
                self._links.discard(link)


@contextlib.contextmanager
def tcp_proxy(upstream: tuple[str, int]) -> Iterator[TcpProxy]:
    """A proxy to ``upstream``, closed afterwards."""
    proxy = TcpProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()

"""A TCP proxy in front of a real server that a test can cut and restore: a source outage."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class Proxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``; ``down()`` drops every connection and
    refuses new ones until ``up()``; ``cut_after(n)`` drops the first connection that
    receives more than ``n`` bytes from the server (a connection lost mid-query)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut_after: int | None = None
        self.cuts = 0

    def cut_after(self, size: int) -> None:
        """Drop the next connection that receives more than ``size`` bytes, once."""
        self._cut_after = size

    def up(self) -> None:
        """Accept connections again."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Close the listener and every forwarded connection (as a crashed server would)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)
        with self._lock:
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, server))
            for a, b, downstream in ((client, server, False), (server, client, True)):
                threading.Thread(target=self._pump, args=(a, b, downstream), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        received = 0
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                received += len(data)
                if downstream and self._over_limit(received):
                    break
                sink.sendall(data)
        _close(source)
        _close(sink)

    def _over_limit(self, received: int) -> bool:
        with self._lock:
            if self._cut_after is None or received <= self._cut_after:
                return False
            self._cut_after = None
            self.cuts += 1
            return True

    def __enter__(self) -> Proxy:
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()

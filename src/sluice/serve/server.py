"""``sluice serve``: one local uvicorn server for the HTTP API, stopped cleanly by a signal."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

from sluice.errors import SluiceError

if TYPE_CHECKING:
    from sluice.config import PgEndpointConfig, QueryLimits
    from sluice.project import Project


class ServeError(SluiceError):
    """The server cannot start (for example, its port is taken)."""

    code = "serve_error"


def bind(host: str, port: int, *, flag: str = "--port") -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Answers go out as soon as they are written: with Nagle's algorithm a response's body
    # waited for the client's delayed ACK of its headers, 40 ms per keep-alive request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
            hint=f"Pick another port with {flag} (0 picks a free one).",
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """The base URL a listening socket serves."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    project: Project,
    *,
    host: str | None = None,
    port: int | None = None,
    limits: QueryLimits | None = None,
    pg: PgEndpointConfig | None = None,
    on_ready: Callable[[str], None] | None = None,
    on_pg_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``project`` until SIGINT or SIGTERM; ``on_ready`` gets the URL once listening.

    ``host``, ``port``, ``limits`` and ``pg`` default to the project file's ``serve:``
    section. With ``pg.port`` set, the PostgreSQL endpoint listens too (refused unless its
    password variable is set) and ``on_pg_ready`` gets its ``postgresql://`` URL.

    Requests are logged by uvicorn's access log. On a signal the server stops taking
    requests, cancels running queries and returns normally.
    """
    import uvicorn

    from sluice.serve.app import create_app

    settings = project.config.serve
    pg = settings.pg if pg is None else pg
    host = settings.host if host is None else host
    with _pg_endpoint(project, host, pg, limits or settings.queries) as pg_url:
        app = create_app(project, limits=limits)
        sock = bind(host, settings.port if port is None else port)
        url = url_of(sock)

        class _Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                if on_ready is not None and self.started:
                    on_ready(url)
                if on_pg_ready is not None and self.started and pg_url is not None:
                    on_pg_ready(pg_url)

        _run(_Server, app, sock)


@contextmanager
def _pg_endpoint(
    project: Project, host: str, pg: PgEndpointConfig, limits: QueryLimits
) -> Iterator[str | None]:
    """The PostgreSQL endpoint while the block runs (nothing when ``pg.port`` is None)."""
    if pg.port is None:
        yield None
        return
    from sluice.serve.pgsession import PgQueries
    from sluice.serve.pgwire import PgServer, password_from_env

    password = password_from_env(pg.password_env)
    queries = PgQueries(project.query_engine, limits)
    sock = bind(host, pg.port, flag="--pg-port")
    server = PgServer(sock, queries, user=pg.user, password=password)
    server.start()
    address, port = sock.getsockname()[:2]
    shown = f"[{address}]" if ":" in address else address
    try:
        yield f"postgresql://{pg.user}@{shown}:{port}/gold"
    finally:
        server.stop()


def _run(server_class: type[Any], app: Any, sock: socket.socket) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="info",
        access_log=True,
        timeout_graceful_shutdown=5,
    )
    try:
        with _stopped_by_signals():
            server_class(config).run(sockets=[sock])
    finally:
        sock.close()


class _Stopped(BaseException):
    """Raised by the signal uvicorn passes on once it has shut down."""


@contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """Turn the SIGINT/SIGTERM that uvicorn re-raises after its shutdown into a return."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stopped(signum)

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, stop) for sig in handled}
    try:
        yield
    except _Stopped:
        return
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

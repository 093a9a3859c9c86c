"""A child process that makes a job run's catalog writes: Iceberg commits and publications.

pyiceberg and SQLAlchemy take about 0.4 CPU-seconds to import, and a commit is mostly
Python (pydantic models, Avro manifests). In the run's own process that work competes for
the GIL and the cores with DuckDB, which by then uses both. A command about to run a job
calls ``forked_catalog()`` first thing: it forks a child that imports them on the core that
is idle while the command starts, and the run sends each write to it (``call``).

The child takes a call as a pickled bound method: a ``Lake`` or ``PublicationStore``
pickles as its settings, and the child keeps one instance per settings, so its catalog
connection is opened once. Its log records and errors come back with the reply. It dies
with its parent (``PR_SET_PDEATHSIG``), so a killed run never leaves it committing, and a
failpoint reached in it kills the parent first, as if the write had happened there.
``InProcess`` makes the same calls directly, for callers that did not fork one (the Python
API, tests, other platforms than Linux).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pickle
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from sluice.errors import LakeError
from sluice.observe import failpoints

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

ENV_VAR = "SLUICE_CATALOG_PROCESS"
WARM_UP = (
    "pyiceberg.catalog.sql",
    "pyiceberg.table.update.snapshot",
    "sluice.lake.catalog",
    "sluice.lake.publications",
)
PR_SET_PDEATHSIG = 1
P = ParamSpec("P")
R = TypeVar("R")
Reply = tuple[bool, Any, list[tuple[str, int, str]]]


class CatalogCalls(Protocol):
    """Runs a run's catalog writes: here or in a ``CatalogProcess``."""

    forked: bool

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)``, wherever this runs it."""
        ...


class InProcess:
    """Catalog writes made in this process."""

    forked = False

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)``."""
        return fn(*args, **kwargs)


class CatalogProcess:
    """A forked child that runs catalog writes sent to it, one at a time."""

    forked = True

    def __init__(self, pid: int, connection: Connection) -> None:
        self.pid = pid
        self._connection = connection
        self._lock = threading.Lock()
        self._broken = False

    @classmethod
    def fork(cls) -> CatalogProcess | None:
        """Fork the child; None where that is unsafe or off: off Linux (macOS's system
        libraries do not survive a fork), with other threads running (a fork copies none of
        them, but may copy a lock one holds), or when ``SLUICE_CATALOG_PROCESS=0``."""
        if (
            not sys.platform.startswith("linux")
            or threading.active_count() > 1
            or os.environ.get(ENV_VAR, "1") == "0"
        ):
            return None
        # Forked before multiprocessing is imported (~20 ms), which each side then does.
        ours, theirs = socket.socketpair()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            ours.close()
            _serve(_connection(theirs), parent)
        theirs.close()
        return cls(pid, _connection(ours))

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` in the child and return its result or raise its error."""
        with self._lock:
            if self._broken:
                raise LakeError(
                    f"The catalog process (pid {self.pid}) stopped answering after an "
                    "interrupted call.",
                    hint="Nothing was published; rerun the job.",
                )
            try:
                self._connection.send((fn, args, kwargs))
                reply: Reply = self._connection.recv()
            except (EOFError, OSError) as exc:
                self._broken = True
                raise LakeError(
                    f"The catalog process (pid {self.pid}) ended during a catalog write: {exc}",
                    hint="Nothing was published; rerun the job.",
                ) from exc
            except BaseException:
                self._broken = True  # its reply, if any, would answer the next call
                raise
        ok, value, records = reply
        for name, level, message in records:
            logging.getLogger(name).log(level, "%s", message)
        if not ok:
            raise value
        result: R = value
        return result

    def close(self) -> None:
        """End the child (it exits when its end of the pipe closes) and wait for it."""
        self._connection.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


@contextlib.contextmanager
def forked_catalog() -> Iterator[CatalogCalls]:
    """A forked ``CatalogProcess`` for the block, or ``InProcess`` when none can be; the child
    is ended and waited for when the block exits."""
    process = CatalogProcess.fork()
    if process is None:
        yield InProcess()
        return
    try:
        yield process
    finally:
        process.close()


def _connection(sock: socket.socket) -> Connection:
    from multiprocessing.connection import Connection

    return Connection(sock.detach())


def _serve(connection: Connection, parent: int) -> None:
    """The child's whole life: never returns into the caller's code."""
    code = 0
    try:
        _die_with(parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        failpoints.kill_first(parent)
        records = _capture_logs()
        _warm_up()
        while True:
            try:
                fn, args, kwargs = connection.recv()
            except EOFError:
                break
            records.clear()
            try:
                reply: Reply = (True, fn(*args, **kwargs), list(records))
            except Exception as exc:
                reply = (False, _sendable(exc), list(records))
            try:
                connection.send(reply)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                connection.send((False, LakeError(f"Unsendable result: {exc}"), list(records)))
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when its parent dies, and exit now if the parent is
    already gone."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def _capture_logs() -> list[tuple[str, int, str]]:
    """Send this process's log records back with each reply instead of writing them."""
    handler = _Records()
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    logging.getLogger("sluice").setLevel(logging.INFO)
    return handler.records


def _warm_up() -> None:
    """Import what a commit and a publication use, while the parent starts its run; a module
    that fails to import fails the call that needs it, with its own error."""
    for module in WARM_UP:
        with contextlib.suppress(Exception):
            importlib.import_module(module)


def _sendable(exc: Exception) -> Exception:
    """``exc`` with the child's traceback as a note, or a LakeError with its text when it
    does not survive pickling."""
    import traceback

    exc.add_note("In the catalog process:\n" + "".join(traceback.format_exception(exc)))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return LakeError(f"{type(exc).__name__}: {exc}")
    return exc

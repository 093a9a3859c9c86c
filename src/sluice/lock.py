"""An exclusive, process-wide lock on a file that holds the holder's pid.

It is an ``fcntl.flock``: the operating system releases it when the holder exits or dies,
so a lock left by a crashed process never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from sluice.errors import LockedError, SluiceError


class ProcessLock:
    """Hold ``path`` exclusively for the life of a ``with`` block, or raise ``LockedError``.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.lock"
    >>> with ProcessLock(path, what="demo"):
    ...     ProcessLock(path, what="demo").__enter__()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sluice.errors.LockedError: Another demo is running (pid ...).
    """

    def __init__(self, path: Path, *, what: str, hint: str | None = None) -> None:
        self.path = path
        self.what = what
        self.hint = hint
        self.stale_pid: int | None = None
        """The pid a holder that died left in the file (a clean exit empties it)."""
        self._fd: int | None = None

    def holder(self) -> int | None:
        """The pid written by the process that holds (or last held) the lock."""
        with contextlib.suppress(OSError, ValueError):
            return int(self.path.read_text(encoding="ascii").strip())
        return None

    def __enter__(self) -> ProcessLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self.refused(self.holder()) from None
        self.stale_pid = self.holder()
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def refused(self, pid: int | None) -> SluiceError:
        """The error for a lock that the live process ``pid`` holds."""
        return LockedError(
            f"Another {self.what} is running (pid {pid if pid else 'unknown'}).", hint=self.hint
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

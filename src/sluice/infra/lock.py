"""``.sluice/apply.lock``: one apply at a time per project.

A ``ProcessLock``: the kernel releases it when its process dies, so a lock file that still
names a pid but is free was left by an apply that did not finish. The next apply takes it
over and ``stale_pid`` says whose it was.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sluice.errors import ApplyLockedError, SluiceError
from sluice.lock import ProcessLock

log = logging.getLogger(__name__)


class ApplyLock(ProcessLock):
    """Hold the project's apply lock in a ``with`` block, or raise ApplyLockedError."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, what="apply")

    def refused(self, pid: int | None) -> SluiceError:
        """The error naming the apply that holds the lock."""
        return ApplyLockedError(
            f"Another apply (pid {pid or 'unknown'}) is running on this project ({self.path}).",
            hint="Wait for it to finish, then run 'sluice plan' again.",
        )

    def __enter__(self) -> ApplyLock:
        super().__enter__()
        if self.stale_pid is not None:
            log.warning(
                "Took over a stale apply lock left by pid %s, which is no longer running; "
                "run 'sluice plan' to see what it did not finish.",
                self.stale_pid,
            )
        return self

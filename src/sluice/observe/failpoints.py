"""Failpoints: kill this process at a named point, to prove crash safety with real kills.

Set ``SLUICE_FAILPOINTS`` to a comma-separated list of point names (for example
``transform:dim_customers,publish``); when a run reaches one, the process sends itself
SIGKILL, exactly as if the machine had lost power at that point. Set
``SLUICE_FAILPOINTS_LOG`` to a file path to have every point reached appended to it, one
name a line: the list a test picks kill points from. Unset, a failpoint costs two
dictionary lookups.

A job run passes, for each task: ``extract:<table>``, ``transform:<model>`` or
``check:<n>`` once the task's work is done; for each table it writes, in the committing
thread: ``before-commit:<db.table>`` (data files written, nothing committed),
``in-commit:<db.table>`` (Iceberg manifests written, table metadata not yet swapped),
``after-commit:<db.table>`` (the Iceberg commit, cursor included, is done; the run's task
record does not know it yet) and ``commit:<db.table>`` (the task record has the commit);
then ``publish`` (before the publication record) and ``published`` (after it). In a
helper process (``sluice.lake.catalog_process``) a failpoint kills the helper's parent first.
"""

from __future__ import annotations

import os
import signal
import threading

from sluice.errors import SourceUnavailableError

ENV_VAR = "SLUICE_FAILPOINTS"
LOG_VAR = "SLUICE_FAILPOINTS_LOG"
_kill_first: list[int] = []


def failpoint(name: str) -> None:
    """Kill the process if ``name`` is listed in ``SLUICE_FAILPOINTS``; append ``name`` to
    the file ``SLUICE_FAILPOINTS_LOG`` names, if set."""
    log_path = os.environ.get(LOG_VAR)
    if log_path:
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"{name}\n")
    points = os.environ.get(ENV_VAR)
    if points and name in points.split(","):
        for pid in _kill_first:
            os.kill(pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def kill_first(pid: int) -> None:
    """Have every failpoint reached in this process kill ``pid`` before this process: a
    helper process's failpoint then stops the run it works for."""
    _kill_first.append(pid)


FAULTS_VAR = "SLUICE_FAULTS"
_faults_seen: dict[str, int] = {}
_faults_lock = threading.Lock()


def transient_fault(name: str) -> None:
    """Raise a transient error the first N times ``name`` is reached in this process, when
    ``SLUICE_FAULTS`` lists ``name=N`` (for example ``extract:orders=2``): a source that
    drops the connection, on demand."""
    faults = os.environ.get(FAULTS_VAR)
    if not faults:
        return
    for entry in faults.split(","):
        point, _, times = entry.rpartition("=")
        if point == name:
            with _faults_lock:
                seen = _faults_seen.get(name, 0)
                _faults_seen[name] = seen + 1
            if seen < int(times):
                raise SourceUnavailableError(f"Injected connection loss at {name} ({seen + 1})")

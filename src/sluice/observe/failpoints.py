"""Failpoints: kill this process at a named point, to prove crash safety with real kills.

Set ``SLUICE_FAILPOINTS`` to a comma-separated list of point names (for example
``transform:dim_customers,publish``); when a run reaches one, the process sends itself
SIGKILL, exactly as if the machine had lost power at that point. Unset, a failpoint costs
one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import threading

from sluice.errors import SourceUnavailableError

ENV_VAR = "SLUICE_FAILPOINTS"


def failpoint(name: str) -> None:
    """Kill the process if ``name`` is listed in ``SLUICE_FAILPOINTS``."""
    points = os.environ.get(ENV_VAR)
    if points and name in points.split(","):
        os.kill(os.getpid(), signal.SIGKILL)


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

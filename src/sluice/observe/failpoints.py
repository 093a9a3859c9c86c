"""Failpoints: kill this process at a named point, to prove crash safety with real kills.

Set ``SLUICE_FAILPOINTS`` to a comma-separated list of point names (for example
``transform:dim_customers,publish``); when a run reaches one, the process sends itself
SIGKILL, exactly as if the machine had lost power at that point. Unset, a failpoint costs
one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "SLUICE_FAILPOINTS"


def failpoint(name: str) -> None:
    """Kill the process if ``name`` is listed in ``SLUICE_FAILPOINTS``."""
    points = os.environ.get(ENV_VAR)
    if points and name in points.split(","):
        os.kill(os.getpid(), signal.SIGKILL)

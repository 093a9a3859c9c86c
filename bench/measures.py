"""Figures over the timed runs of one contender, shared by the sections of ``make bench``."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class Measured(Protocol):
    """One measured child process (``bench/run.py``'s ``Run``)."""

    wall_s: float
    max_rss_kib: int
    other_cores: float
    stdout: Path

    @property
    def ok(self) -> bool: ...


def median_s(runs: Sequence[Measured]) -> float | None:
    """The median wall time in seconds (None without runs)."""
    return statistics.median(r.wall_s for r in runs) if runs else None


def peak_rss_mib(runs: Sequence[Measured]) -> float | None:
    """The largest peak RSS of the runs in MiB."""
    return max(r.max_rss_kib for r in runs) / 1024 if runs else None


def other_cores(runs: Sequence[Measured]) -> float | None:
    """The most CPU other processes used during one of the runs, in cores."""
    return max(r.other_cores for r in runs) if runs else None

"""Progress events from long work. The library reports; front ends decide how to show them."""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("sluice.progress")


class Progress(Protocol):
    """Receives progress of a job run, stage by stage."""

    def stage_started(self, stage: str, total: int) -> None:
        """A stage began; it has ``total`` items (tables, models, checks)."""

    def item_done(self, stage: str, item: str, rows: int | None = None) -> None:
        """One item of a stage finished."""

    def stage_finished(self, stage: str) -> None:
        """A stage ended."""


class LogProgress:
    """Progress written to the ``sluice.progress`` logger (the run's log file)."""

    def stage_started(self, stage: str, total: int) -> None:
        """Log the start of a stage."""
        log.info("%s: started (%d items)", stage, total)

    def item_done(self, stage: str, item: str, rows: int | None = None) -> None:
        """Log one finished item."""
        suffix = f" ({rows:,} rows)" if rows is not None else ""
        log.info("%s: %s done%s", stage, item, suffix)

    def stage_finished(self, stage: str) -> None:
        """Log the end of a stage."""
        log.info("%s: finished", stage)


class FanOut:
    """Sends every event to several receivers."""

    def __init__(self, *receivers: Progress) -> None:
        self.receivers = receivers

    def stage_started(self, stage: str, total: int) -> None:
        """Forward a stage start."""
        for r in self.receivers:
            r.stage_started(stage, total)

    def item_done(self, stage: str, item: str, rows: int | None = None) -> None:
        """Forward a finished item."""
        for r in self.receivers:
            r.item_done(stage, item, rows)

    def stage_finished(self, stage: str) -> None:
        """Forward a stage end."""
        for r in self.receivers:
            r.stage_finished(stage)

"""How the CLI shows results: rich tables for people, CSV and JSON for machines."""

from __future__ import annotations

import csv
import io
import json
import sys
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

__all__ = [
    "RichProgress",
    "Table",
    "arrow_table",
    "err",
    "out",
    "runs_table",
    "write_csv",
    "write_json",
]

if TYPE_CHECKING:
    import pyarrow as pa

    from sluice.jobs.store import JobRun

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

STAGE_UNITS = {"extract": "tables", "transform": "models", "check": "checks", "publish": "commits"}


class RichProgress:
    """One progress bar per job stage, drawn on stderr."""

    def __init__(self) -> None:
        self.bars = Progress(
            TextColumn("{task.fields[stage]:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]:<7} {task.fields[rows]}"),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.rows: dict[str, int] = {}

    def __enter__(self) -> RichProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def stage_started(self, stage: str, total: int) -> None:
        """Add a bar for the stage."""
        self.rows[stage] = 0
        self.tasks[stage] = self.bars.add_task(
            stage, total=total, stage=stage, unit=STAGE_UNITS.get(stage, ""), rows=""
        )

    def item_done(self, stage: str, item: str, rows: int | None = None) -> None:
        """Advance the stage's bar."""
        if stage not in self.tasks:
            return
        if rows is not None and stage != "check":
            self.rows[stage] += rows
        label = f"{self.rows[stage]:,} rows" if self.rows[stage] else ""
        self.bars.update(self.tasks[stage], advance=1, rows=label)

    def stage_finished(self, stage: str) -> None:
        """Complete the stage's bar."""
        if stage in self.tasks:
            task = self.tasks[stage]
            self.bars.update(task, completed=self.bars.tasks[task].total)


def runs_table(runs: list[JobRun]) -> Table:
    """Job run history as a table."""
    table = Table()
    table.add_column("run id", no_wrap=True, min_width=15)
    table.add_column("started (UTC)")
    table.add_column("duration", no_wrap=True)
    table.add_column("state", no_wrap=True, min_width=9)
    for name in ("rows read", "rows written", "error"):
        table.add_column(name)
    for run in runs:
        table.add_row(
            run.run_id[:15],
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{run.duration_seconds:.1f}s",
            run.state.value,
            f"{run.rows_read:,}",
            f"{run.rows_written:,}",
            (run.error or "")[:80],
        )
    return table


def arrow_table(data: pa.Table, *, title: str | None = None) -> Table:
    """Query rows as a rich table, numbers right-aligned."""
    import pyarrow as pa

    table = Table(title=title)
    for field in data.schema:
        numeric = (
            pa.types.is_integer(field.type)
            or pa.types.is_floating(field.type)
            or pa.types.is_decimal(field.type)
        )
        table.add_column(field.name, justify="right" if numeric else "left")
    for row in data.to_pylist():
        table.add_row(*(_cell(v) for v in row.values()))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, Decimal):
        return f"{value:,}"
    return str(value)


def write_csv(data: pa.Table) -> None:
    """Rows as CSV on stdout."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(data.column_names)
    for row in data.to_pylist():
        writer.writerow(["" if v is None else v for v in row.values()])
    sys.stdout.write(buffer.getvalue())


def write_json(data: pa.Table) -> None:
    """Rows as a JSON array of objects on stdout (decimals as numbers)."""

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            return float(value)
        return str(value)

    sys.stdout.write(json.dumps(data.to_pylist(), default=default, ensure_ascii=False) + "\n")

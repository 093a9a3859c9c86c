"""How the CLI shows results: rich tables for people, CSV and JSON for machines."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime
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
    "crawl_lines",
    "drift_lines",
    "err",
    "out",
    "queries_table",
    "runs_table",
    "schedules_table",
    "tasks_table",
    "write_csv",
    "write_json",
]

if TYPE_CHECKING:
    import pyarrow as pa

    from sluice.catalog.crawler import CrawlReport
    from sluice.jobs.scheduler import ScheduleStatus
    from sluice.jobs.store import JobRun, TaskRecord
    from sluice.query.history import QueryExecution

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


def task_note(task: TaskRecord) -> str:
    """A task's error or note; for a check that ran, what it found and on which rows.

    >>> from sluice.jobs.store import TaskRecord, TaskState
    >>> out = {"check": "unique(id)", "model": "dim_x", "failing_rows": 0, "scope": "new rows"}
    >>> task_note(TaskRecord("check:3", TaskState.SUCCEEDED, None, None, 1, None, None, out))
    '0 bad rows (new rows): dim_x unique(id)'
    """
    if task.error or task.detail:
        return task.error or task.detail or ""
    out = task.output or {}
    if "check" not in out:
        return ""
    scope = out.get("scope", "all rows")
    return f"{out['failing_rows']:,} bad rows ({scope}): {out['model']} {out['check']}"


def tasks_table(tasks: list[TaskRecord]) -> Table:
    """A run's tasks: state, times, attempts, error or what a skipped task reuses, and what
    each check found."""
    table = Table()
    table.add_column("task", no_wrap=True)
    table.add_column("state", no_wrap=True, min_width=9)
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("duration", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("error / note", min_width=24)
    for task in tasks:
        duration = task.duration_seconds
        table.add_row(
            task.task,
            task.state.value,
            task.started_at.strftime("%H:%M:%S") if task.started_at else "",
            f"{duration:.1f}s" if duration is not None else "",
            str(task.attempts),
            task_note(task)[:100],
        )
    return table


def schedules_table(schedules: list[ScheduleStatus]) -> Table:
    """Job schedules: cron and time zone, next slots, the last slot handled and its outcome."""
    table = Table()
    table.add_column("job", no_wrap=True)
    table.add_column("cron, time zone", no_wrap=True)
    table.add_column("next runs", no_wrap=True)
    table.add_column("last slot, outcome", min_width=20)
    for status in schedules:
        last = status.last
        zone = status.next_slots[0].tzinfo if status.next_slots else None
        handled = "-"
        if last is not None:
            handled = f"{_slot_time(last.slot.astimezone(zone))}\n{last.outcome.value}"
            handled += f" {last.run_id[:15]}" if last.run_id else ""
            handled += f": {last.reason}" if last.reason else ""
        table.add_row(
            status.job,
            f"{status.schedule.cron}\n{status.schedule.timezone}",
            "\n".join(_slot_time(s) for s in status.next_slots),
            handled,
        )
    return table


def _slot_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M" + (":%S" if moment.second else ""))


def queries_table(executions: list[QueryExecution]) -> Table:
    """Query execution history as a table."""
    table = Table()
    table.add_column("query id", no_wrap=True)
    table.add_column("submitted (UTC)")
    table.add_column("state", no_wrap=True, min_width=9)
    for name in ("elapsed", "rows", "input bytes", "sql", "error"):
        table.add_column(name)
    for execution in executions:
        rows = f"{execution.rows:,}" + (" (capped)" if execution.truncated else "")
        table.add_row(
            execution.query_id,
            execution.submitted_at.strftime("%Y-%m-%d %H:%M:%S"),
            execution.state.value,
            f"{execution.elapsed_seconds:.3f}s",
            rows,
            f"{execution.input_bytes:,}",
            " ".join(execution.sql.split())[:60],
            (execution.error.message if execution.error else "")[:80],
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
    """A value as the table shows it: integers as they are (order numbers, years), decimal
    measures with thousands separators."""
    if value is None:
        return "NULL"
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


def drift_lines(drift: dict[str, Any]) -> list[str]:
    """One line per schema change a run met (its report's ``schema_drift``)."""
    return [
        f"schema drift: {table}: {change['description']} ({entry['action']})"
        for table, entry in sorted(drift.items())
        for change in entry["changes"]
    ]


def crawl_lines(report: CrawlReport) -> list[str]:
    """A crawl report as a person reads it: a line per table, conflict and skipped file."""
    lines = []
    for change in report.tables:
        details = []
        if change.files_added:
            rows = "" if report.dry_run else f", {change.rows_added:,} rows"
            details.append(f"+{change.files_added} files{rows}")
        if change.files_removed:
            details.append(f"-{change.files_removed} files")
        if change.partitions_added:
            details.append(f"partitions added: {', '.join(change.partitions_added)}")
        if change.columns_added:
            details.append(f"columns added: {', '.join(change.columns_added)}")
        if change.columns_logged:
            details.append(f"new columns logged, not added: {', '.join(change.columns_logged)}")
        if change.restored:
            details.append("its folder is back: no longer deprecated")
        suffix = f"  ({'; '.join(details)})" if details else ""
        lines.append(f"{change.action:<10} {change.table}{suffix}")
    lines += [f"conflict   {issue.path}: {issue.reason}" for issue in report.conflicts]
    lines += [f"skipped    {issue.path}: {issue.reason}" for issue in report.skipped]
    created = sum(c.action == "created" for c in report.tables)
    updated = sum(c.action == "updated" for c in report.tables)
    if report.dry_run:
        outcome = "dry run: nothing was changed."
    elif report.crawl_id:
        outcome = f"published as {report.crawl_id}."
    else:
        outcome = "nothing new to publish."
    lines.append(
        f"{created} tables created, {updated} updated, {len(report.conflicts)} conflicts, "
        f"{len(report.skipped)} files skipped; {outcome}"
    )
    return lines

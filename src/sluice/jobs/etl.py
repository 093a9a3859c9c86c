"""The ETL job: extract every source table to raw, build the models, check, publish.

Nothing is visible to readers until the final publication record is written; a failure
or interruption at any earlier point leaves them on the previous published snapshots.
"""

from __future__ import annotations

import graphlib
import logging
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sluice import duck
from sluice.config import CheckSpec, JobConfig
from sluice.core import CheckResult, TableCommit, TableName, WrittenTable
from sluice.errors import CheckFailedError, ConfigError, TransformError, did_you_mean
from sluice.ingest.extract import extract_table, write_parquet
from sluice.jobs.graph import run_graph
from sluice.jobs.store import utcnow
from sluice.lake.catalog import Lake
from sluice.lake.publications import PublicationStore
from sluice.lake.types import lake_select
from sluice.observe.failpoints import failpoint
from sluice.observe.progress import Progress
from sluice.quality.checks import Check, compile_check, run_check
from sluice.sources.base import Source, SourceTable
from sluice.transform.models import Model, load_models

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("sluice.jobs.etl")
SOURCE_ALIAS = "src"
KEEP_PUBLICATIONS = 3


class Checkpoint(Protocol):
    """Lets a run be stopped between steps and interrupts DuckDB mid-step."""

    def check(self) -> None:
        """Raise if the run must stop now."""

    def watch(self, con: duckdb.DuckDBPyConnection) -> None:
        """Interrupt this connection when the run must stop."""

    def unwatch(self, con: duckdb.DuckDBPyConnection) -> None:
        """Stop watching a connection that is about to close."""

    def interrupt_all(self) -> None:
        """Interrupt every watched connection now (a sibling task failed)."""


class Counters(Protocol):
    """Receives the stage and the row counts as a run goes."""

    def __call__(self, *, stage: str, rows_read: int, rows_written: int) -> None:
        """Record progress."""


@dataclass
class EtlRun:
    """Everything one ETL job run needs."""

    run_id: str
    job_name: str
    job: JobConfig
    root: Path
    lake: Lake
    publications: PublicationStore
    source: Source
    checks: dict[str, list[CheckSpec]]
    progress: Progress
    checkpoint: Checkpoint
    counters: Counters
    temp_dir: Path
    started_at: datetime = field(default_factory=utcnow)
    rows_read: int = 0
    rows_written: int = 0
    written_files: list[str] = field(default_factory=list)
    committed: set[str] = field(default_factory=set)
    _files_lock: threading.Lock = field(default_factory=threading.Lock)

    def note_file(self, path: Path) -> None:
        """Remember a file this run writes, to delete it if the run fails before committing."""
        with self._files_lock:
            self.written_files.append(str(path))


@dataclass(frozen=True)
class EtlResult:
    """What a successful run produced."""

    rows_read: int
    rows_written: int
    commits: tuple[TableCommit, ...]
    checks: tuple[CheckResult, ...]

    def report(self) -> dict[str, Any]:
        """A JSON-ready summary for the run record."""
        return {
            "tables": {
                str(c.table): {"rows": c.rows, "snapshot_id": c.snapshot_id} for c in self.commits
            },
            "checks": [
                {
                    "model": c.model,
                    "name": c.name,
                    "severity": c.severity,
                    "failing_rows": c.failing_rows,
                    "message": c.message,
                }
                for c in self.checks
            ],
        }


def run_etl(run: EtlRun) -> EtlResult:
    """Execute the job; on any failure, delete the files this run wrote but never committed."""
    try:
        return _run(run)
    except BaseException:
        _remove_uncommitted(run.written_files, run.committed)
        raise
    finally:
        shutil.rmtree(run.temp_dir, ignore_errors=True)


def _run(run: EtlRun) -> EtlResult:
    run.temp_dir.mkdir(parents=True, exist_ok=True)
    con = duck.connect(
        extensions=("sqlite_scanner",),
        threads=run.job.threads,
        memory_limit=run.job.memory_limit,
        temp_directory=str(run.temp_dir),
    )
    run.checkpoint.watch(con)
    # Lake tables are unordered sets of rows: let DuckDB write Parquet in parallel.
    con.execute("SET preserve_insertion_order = false")
    try:
        tables = _select_tables(run)
        run.source.attach(con, SOURCE_ALIAS)
        for database in sorted({run.job.raw_database, run.job.gold_database}):
            con.execute(f"CREATE SCHEMA {database}")
        models = load_models(
            run.root / run.job.models,
            database=run.job.gold_database,
            available={TableName(run.job.raw_database, t.name) for t in tables},
        )
        checks = _compile_checks(run, models)
        # Tables are committed to Iceberg as soon as they are written, in the background.
        # Readers only see them once the publication record is written, after every check.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sluice-commit") as committer:
            committer.submit(run.lake.prepare, {run.job.raw_database, run.job.gold_database})
            pending: list[Future[TableCommit]] = []
            results = _execute(
                run,
                con,
                tables=tables,
                models=models,
                checks=checks,
                commit=lambda w: pending.append(_commit_later(committer, run, w)),
            )
            failed = [r for r in results if not r.passed and r.severity == "error"]
            if failed:
                raise CheckFailedError(
                    "; ".join(r.message for r in failed),
                    hint="Nothing was published; fix the model and rerun the job.",
                )
            run.checkpoint.check()
            run.counters(stage="publish", rows_read=run.rows_read, rows_written=run.rows_written)
            run.progress.stage_started("publish", len(pending) + 1)
            commits = []
            for future in pending:
                commit = future.result()
                commits.append(commit)
                run.progress.item_done("publish", str(commit.table), commit.rows)
        run.checkpoint.check()
        failpoint("publish")
        run.publications.publish(run.run_id, run.job_name, commits)
        failpoint("published")
        run.progress.item_done("publish", "publication record")
        run.progress.stage_finished("publish")
        _remove_old_files(run, commits)
        return EtlResult(run.rows_read, run.rows_written, tuple(commits), tuple(results))
    finally:
        run.checkpoint.unwatch(con)
        con.close()


def _select_tables(run: EtlRun) -> list[SourceTable]:
    available = run.source.tables()
    if run.job.tables == "all":
        return available
    by_name = {t.name: t for t in available}
    missing = [n for n in run.job.tables if n not in by_name]
    if missing:
        raise ConfigError(
            f"Job {run.job_name} lists table '{missing[0]}', which the source does not have."
            f"{did_you_mean(missing[0], by_name)}"
        )
    return [by_name[n] for n in run.job.tables]


def _compile_checks(run: EtlRun, models: list[Model]) -> list[Check]:
    names = {m.name for m in models}
    for model in run.checks:
        if model not in names:
            raise ConfigError(
                f"Checks are declared for '{model}', which is not a model."
                f"{did_you_mean(model, names)}"
            )
    return [
        compile_check(TableName(run.job.gold_database, model), spec)
        for model, specs in run.checks.items()
        for spec in specs
    ]


def _file_for(run: EtlRun, table: TableName) -> Path:
    return run.lake.data_dir(table) / f"{run.run_id}.parquet"


Task = SourceTable | Model | Check


def _execute(
    run: EtlRun,
    con: duckdb.DuckDBPyConnection,
    *,
    tables: list[SourceTable],
    models: list[Model],
    checks: list[Check],
    commit: Callable[[WrittenTable], None],
) -> list[CheckResult]:
    """Extract, build and check as one task graph: a model starts as soon as the tables it
    reads exist, a check as soon as the tables it reads are built."""
    tasks: dict[str, Task] = {f"extract:{t.name}": t for t in tables}
    tasks.update({f"transform:{m.name}": m for m in models})
    tasks.update({f"check:{i}": c for i, c in enumerate(checks)})
    producers = {TableName(run.job.raw_database, t.name): f"extract:{t.name}" for t in tables}
    producers.update({m.table: f"transform:{m.name}" for m in models})
    graph: dict[str, set[str]] = {f"extract:{t.name}": set() for t in tables}
    for m in models:
        graph[f"transform:{m.name}"] = {producers[ref] for ref in m.reads if ref in producers}
    for i, c in enumerate(checks):
        graph[f"check:{i}"] = {producers[ref] for ref in c.reads if ref in producers}
    remaining = {"extract": len(tables), "transform": len(models), "check": len(checks)}
    for stage, total in remaining.items():
        run.progress.stage_started(stage, total)
    lock = threading.Lock()
    extracted_at = utcnow()

    def work(name: str) -> WrittenTable | CheckResult:
        run.checkpoint.check()
        task = tasks[name]
        cursor = con.cursor()
        run.checkpoint.watch(cursor)
        try:
            if isinstance(task, SourceTable):
                result: WrittenTable | CheckResult = _extract_one(run, cursor, task, extracted_at)
            elif isinstance(task, Model):
                result = _build_model(run, cursor, task)
            else:
                result = run_check(cursor, task)
        finally:
            run.checkpoint.unwatch(cursor)
            cursor.close()
        stage, _, item = name.partition(":")
        with lock:
            if isinstance(result, WrittenTable):
                commit(result)
                run.rows_written += result.rows
                if stage == "extract":
                    run.rows_read += result.rows
                rows: int | None = result.rows
            else:
                item = f"{result.model}: {result.name}"
                rows = result.failing_rows
                if not result.passed:
                    log.warning("check %s on %s: %s", result.name, result.model, result.message)
            run.progress.item_done(stage, item, rows)
            remaining[stage] -= 1
            if not remaining[stage]:
                run.progress.stage_finished(stage)
            # Stages overlap; a run is in the earliest one that still has work.
            current = next((s for s, left in remaining.items() if left), "check")
            run.counters(stage=current, rows_read=run.rows_read, rows_written=run.rows_written)
        failpoint(name)
        return result

    results = run_graph(
        graph,
        work,
        workers=run.job.concurrency or os.cpu_count() or 2,
        priority=_critical_path(graph, tasks),
        on_error=lambda exc: run.checkpoint.interrupt_all(),
    )
    return [r for r in results.values() if isinstance(r, CheckResult)]


def _critical_path(graph: dict[str, set[str]], tasks: dict[str, Task]) -> Callable[[str], float]:
    """Priority of a task: its own estimated cost plus the longest chain that waits on it."""
    cost: dict[str, float] = {}
    for name in graphlib.TopologicalSorter(graph).static_order():
        task = tasks[name]
        if isinstance(task, SourceTable):
            cost[name] = float(task.estimated_rows or 0)
        elif isinstance(task, Model):
            cost[name] = sum(cost[dep] for dep in graph[name]) or 1.0
        else:
            cost[name] = 1.0
    dependents: dict[str, list[str]] = {name: [] for name in graph}
    for name, deps in graph.items():
        for dep in deps:
            dependents[dep].append(name)
    priority: dict[str, float] = {}
    for name in reversed(list(graphlib.TopologicalSorter(graph).static_order())):
        priority[name] = cost[name] + max((priority[d] for d in dependents[name]), default=0.0)
    return priority.__getitem__


def _extract_one(
    run: EtlRun, cursor: duckdb.DuckDBPyConnection, table: SourceTable, extracted_at: datetime
) -> WrittenTable:
    target = TableName(run.job.raw_database, table.name)
    path = _file_for(run, target)
    run.note_file(path)
    written = extract_table(
        cursor,
        alias=SOURCE_ALIAS,
        table=table,
        target=target,
        path=path,
        run_id=run.run_id,
        extracted_at=extracted_at,
    )
    _expose(cursor, target, path)
    return written


def _build_model(run: EtlRun, cursor: duckdb.DuckDBPyConnection, model: Model) -> WrittenTable:
    import duckdb

    path = _file_for(run, model.table)
    run.note_file(path)
    try:
        rows = write_parquet(cursor, lake_select(cursor, model.sql), path)
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        raise TransformError(
            f"Model {model.name} ({model.path.name}) failed: {str(exc).splitlines()[0]}",
            hint=f"Fix {model.path} and rerun the job.",
        ) from exc
    _expose(cursor, model.table, path)
    return WrittenTable(model.table, (str(path),), rows)


def _commit_later(
    pool: ThreadPoolExecutor, run: EtlRun, written: WrittenTable
) -> Future[TableCommit]:
    def commit() -> TableCommit:
        import pyarrow.parquet as pq

        schema = pq.read_schema(written.files[0])
        result = run.lake.commit(written, schema=schema, run_id=run.run_id)
        with run._files_lock:
            run.committed.update(written.files)
        failpoint(f"commit:{written.table}")
        return result

    return pool.submit(commit)


def _expose(con: duckdb.DuckDBPyConnection, table: TableName, path: Path) -> None:
    con.execute(
        f"CREATE OR REPLACE VIEW {table.database}.{duck.quote_ident(table.name)} AS "
        f"SELECT * FROM read_parquet({duck.quote_literal(str(path))})"
    )


def _remove_old_files(run: EtlRun, commits: list[TableCommit]) -> None:
    """Delete data files that neither the retained snapshots nor recent publications use."""
    keep = run.publications.recent_runs(KEEP_PUBLICATIONS) | {run.run_id}
    started = run.started_at.timestamp()
    removed = 0
    for commit in commits:
        try:
            removed += len(
                run.lake.remove_unreferenced(
                    commit.table, keep_runs=keep | commit.retained_runs, older_than=started
                )
            )
        except OSError as exc:
            log.warning("could not remove old files of %s: %s", commit.table, exc)
    if removed:
        log.info("removed %d data files no snapshot or recent publication uses", removed)


def _remove_uncommitted(files: list[str], committed: set[str]) -> None:
    for name in files:
        if name not in committed:
            Path(name).unlink(missing_ok=True)

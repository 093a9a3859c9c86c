"""The ETL job: extract every source table to raw, build the models, check, publish.

Nothing is visible to readers until the final publication record is written; a failure
or interruption at any earlier point leaves them on the previous published snapshots.
"""

from __future__ import annotations

import contextlib
import graphlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sluice import duck
from sluice.config import CheckSpec, JobConfig
from sluice.core import (
    CheckResult,
    Cursor,
    ParquetFooter,
    TableCommit,
    TableName,
    TaskState,
    WrittenTable,
)
from sluice.duck import write_parquet
from sluice.errors import CheckFailedError, ConfigError, LockedError, SourceError, did_you_mean
from sluice.ingest.cdc import CDC_CURSOR, check_cdc_spec, extract_changes
from sluice.ingest.drift import DriftPlan, blocked, log_drift, plan_drift
from sluice.ingest.extract import extract_table
from sluice.ingest.incremental import cursor_column, extract_incremental
from sluice.jobs.attempts import run_task
from sluice.jobs.dag import TaskGraph, build_graph
from sluice.jobs.graph import run_graph
from sluice.jobs.retry import retrying
from sluice.jobs.store import RunTasks, utcnow
from sluice.lake.catalog import Lake
from sluice.lake.catalog_process import CatalogCalls, InProcess
from sluice.lake.datafiles import read_footer
from sluice.lake.merge import parquet_list
from sluice.lake.publications import PublicationStore, PublishedTable
from sluice.lake.types import lake_select
from sluice.lock import ProcessLock
from sluice.observe.failpoints import failpoint
from sluice.observe.progress import Progress
from sluice.quality.checks import Check, compile_check, references_kept, run_check
from sluice.sources.base import (
    Attached,
    RowsAbove,
    RowsAmong,
    Source,
    SourceColumn,
    SourceTable,
)
from sluice.sources.cdc import CHANGE_LOG, LogPosition, log_position
from sluice.transform.incremental import build_increment, built_from, state_summary
from sluice.transform.models import Model, load_models, model_failure

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("sluice.jobs.etl")
SOURCE_ALIAS = "src"
KEEP_PUBLICATIONS = 3
MERGE_LOCK_POLL_SECONDS = 0.05
ABANDON_POLL_SECONDS = 0.1
T = TypeVar("T")


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

    def sleep(self, seconds: float) -> None:
        """Wait before a retry; raise if the run must stop meanwhile."""


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
    tasks: RunTasks
    catalog: CatalogCalls = field(default_factory=InProcess)
    selection: dict[str, list[str]] = field(default_factory=dict)
    reuse: dict[str, dict[str, Any]] = field(default_factory=dict)
    reused_from: str | None = None
    started_at: datetime = field(default_factory=utcnow)
    rows_read: int = 0
    rows_written: int = 0
    written_files: list[str] = field(default_factory=list)
    committed: set[str] = field(default_factory=set)
    cursor_columns: dict[str, SourceColumn] = field(default_factory=dict)
    captured: frozenset[str] = frozenset()
    cursor_moves: dict[str, dict[str, Any]] = field(default_factory=dict)
    merge_locks: dict[TableName, ProcessLock] = field(default_factory=dict)
    drift: DriftPlan = field(default_factory=lambda: DriftPlan("", "", {}))
    model_builds: dict[str, dict[str, Any]] = field(default_factory=dict)
    exposed: dict[TableName, tuple[str, ...]] = field(default_factory=dict)
    unchanged: list[TableCommit] = field(default_factory=list)
    kept_tables: set[TableName] = field(default_factory=set)  # exposed as readers have them
    merged: dict[TableName, tuple[frozenset[str], tuple[str, ...]]] = field(default_factory=dict)
    """Models merged by key this run: their key columns and the files merged into."""
    _published: dict[TableName, PublishedTable] | None = None
    _log_end: LogPosition | SourceError | None = None
    _passed: dict[str, frozenset[tuple[str, str, str]]] = field(default_factory=dict)
    _files_lock: threading.Lock = field(default_factory=threading.Lock)
    _published_lock: threading.Lock = field(default_factory=threading.Lock)
    _log_lock: threading.Lock = field(default_factory=threading.Lock)

    def published(self, table: TableName) -> PublishedTable | None:
        """The snapshot of ``table`` readers use now (read from the catalog once a run)."""
        with self._published_lock:
            if self._published is None:
                self._published = self.catalog.call(self.publications.current)
            return self._published.get(table)

    def passed_checks(self, run_id: str) -> frozenset[tuple[str, str, str]]:
        """The checks (model, name, SQL) that run ``run_id`` ran and found no bad rows in."""
        with self._published_lock:
            if run_id not in self._passed:
                self._passed[run_id] = frozenset(
                    (o["model"], o["check"], o["sql"])
                    for o in self.tasks.outputs(run_id)
                    if "check" in o and o["failing_rows"] == 0
                )
            return self._passed[run_id]

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
    cursors: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)
    reused: tuple[str, ...] = ()
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

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
                    "scope": c.scope,
                }
                for c in self.checks
            ],
            "incremental": self.cursors,
            "models": self.models,
            "schema_drift": self.drift,
            "reused": list(self.reused),
        }


def run_etl(run: EtlRun) -> EtlResult:
    """Execute the job; on any failure, delete the files this run wrote but never committed."""
    try:
        return _run(run)
    except BaseException:
        _remove_uncommitted(run.written_files, run.committed)
        raise
    finally:
        for table in list(run.merge_locks):
            _release_merge_lock(run, table)
        shutil.rmtree(run.temp_dir, ignore_errors=True)


def _run(run: EtlRun) -> EtlResult:
    run.temp_dir.mkdir(parents=True, exist_ok=True)
    # Tables are committed to Iceberg as soon as they are written, in the background.
    # Readers only see them once the publication record is written, after every check.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sluice-commit") as committer:
        return _run_committing(run, committer)


def _run_committing(run: EtlRun, committer: ThreadPoolExecutor) -> EtlResult:
    databases = {run.job.raw_database, run.job.gold_database}
    if run.catalog.forked:
        # The catalog process opens the catalog on the other core while the run is planned;
        # in this process that would import pyiceberg here, holding the GIL.
        committer.submit(run.catalog.call, run.lake.open_if_present)
    # DuckDB is opened and the source attached (loading its 30 MB scanner extension, ~0.1 s,
    # and for a server connecting to it) while the run is planned. A server's tables are
    # listed through that attachment: one connection, not a second attach (~0.1 s).
    planning_failed = threading.Event()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sluice-open") as opener:
        opening = opener.submit(_open_duckdb, run, planning_failed)
        try:
            listing = run.source.lists_tables_when_attached
            tables, models, checks = _definitions(
                run, (opening.result(), SOURCE_ALIAS) if listing else None
            )
            run.lake.ensure_owned(
                [TableName(run.job.raw_database, t.name) for t in tables]
                + [m.table for m in models]
            )
            run.drift = _plan_drift(run, tables)
            run.cursor_columns = _cursor_columns(run, tables)
            run.captured = _captured(run, tables)
            tables, models, checks = _without_quarantined(run.drift, tables, models, checks)
            graph = job_graph(run.job, tables, models, checks)
            selected, reused = _plan(run, graph)
        except BaseException:
            planning_failed.set()  # no more attempts to reach a source that is down
            with contextlib.suppress(Exception):
                _close(run, opening.result())
            raise
        con = opening.result()
    try:
        for database in sorted(databases):
            con.execute(f"CREATE SCHEMA {database}")
        for commit in reused.values():
            if isinstance(commit, TableCommit):
                _expose(con, commit.table, commit.files, exposed=run.exposed)
                run.kept_tables.add(commit.table)
        committer.submit(run.catalog.call, run.lake.prepare, databases)
        pending: list[Future[TableCommit]] = []
        results = _execute(
            run,
            con,
            graph=graph,
            selected=selected,
            tasks=_task_objects(tables, models, checks),
            commit=lambda name, w: pending.append(_commit_later(committer, run, name, w)),
        )
        results += [r for r in reused.values() if isinstance(r, CheckResult)]
        if run.drift.quarantined:
            raise run.drift.error()
        failed = [r for r in results if not r.passed and r.severity == "error"]
        if failed:
            raise CheckFailedError(
                "; ".join(r.message for r in failed),
                hint="Nothing was published; fix the model and rerun the job.",
            )
        run.checkpoint.check()
        run.counters(stage="publish", rows_read=run.rows_read, rows_written=run.rows_written)
        run.progress.stage_started("publish", len(pending) + 1)
        commits: list[TableCommit] = []
        for future in pending:
            commit = future.result()
            commits.append(commit)
            run.progress.item_done("publish", str(commit.table), commit.rows)
        run.checkpoint.check()
        failpoint("publish")
        kept = [c for c in reused.values() if isinstance(c, TableCommit)] + run.unchanged
        run.catalog.call(run.publications.publish, run.run_id, run.job_name, commits + kept)
        failpoint("published")
        run.progress.item_done("publish", "publication record")
        run.progress.stage_finished("publish")
        _remove_old_files(run, commits)
        return EtlResult(
            run.rows_read,
            run.rows_written,
            tuple(commits + kept),
            tuple(results),
            run.cursor_moves,
            drift=run.drift.report(),
            reused=tuple(str(c.table) for c in kept),
            models=run.model_builds,
        )
    finally:
        _close(run, con)


def _open_duckdb(run: EtlRun, abandoned: threading.Event) -> duckdb.DuckDBPyConnection:
    """The run's DuckDB connection, watched by the checkpoint, with the source attached and
    the lake readable; attempts to attach stop once ``abandoned`` is set."""

    def sleep(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if abandoned.is_set():
                raise InterruptedError("the run failed while it was planned")
            run.checkpoint.sleep(min(left, ABANDON_POLL_SECONDS))

    con = duck.connect(
        threads=run.job.threads,
        memory_limit=run.job.memory_limit,
        temp_directory=str(run.temp_dir),
    )
    run.checkpoint.watch(con)
    try:
        # Lake tables are unordered sets of rows: let DuckDB write Parquet in parallel.
        con.execute("SET preserve_insertion_order = false")
        run.lake.prepare_duckdb(con)  # an incremental merge reads the current files
        retrying(
            lambda: run.source.attach(con, SOURCE_ALIAS),
            policy=run.job.retry,
            what="Connecting to the source",
            sleep=sleep,
        )
    except BaseException:
        _close(run, con)
        raise
    return con


def _close(run: EtlRun, con: duckdb.DuckDBPyConnection) -> None:
    run.checkpoint.unwatch(con)
    con.close()


def _with_retries(run: EtlRun, what: str, fn: Callable[[], T]) -> T:
    """Run a step that talks to the source, retrying while the source is unavailable."""
    return retrying(fn, policy=run.job.retry, what=what, sleep=run.checkpoint.sleep)


def _definitions(
    run: EtlRun, attached: Attached | None
) -> tuple[list[SourceTable], list[Model], list[Check]]:
    return job_definitions(
        run.job_name,
        run.job,
        root=run.root,
        source=run.source,
        checks=run.checks,
        retry=lambda what, fn: _with_retries(run, what, fn),
        attached=attached,
    )


def job_definitions(
    job_name: str,
    job: JobConfig,
    *,
    root: Path,
    source: Source,
    checks: dict[str, list[CheckSpec]],
    retry: Callable[[str, Callable[[], list[SourceTable]]], list[SourceTable]],
    attached: Attached | None = None,
) -> tuple[list[SourceTable], list[Model], list[Check]]:
    """The source tables a job extracts, its models and its compiled checks (``attached``:
    see ``Source.tables``)."""
    tables = retry(
        "Reading the source's tables",
        lambda: _select_tables(job_name, job, source.tables(attached)),
    )
    models = load_models(
        root / job.models,
        database=job.gold_database,
        available={TableName(job.raw_database, t.name) for t in tables},
    )
    return tables, models, _compile_checks(job, checks, models)


def job_graph(
    job: JobConfig, tables: list[SourceTable], models: list[Model], checks: list[Check]
) -> TaskGraph:
    """The job's task graph."""
    return build_graph(
        tables=[TableName(job.raw_database, t.name) for t in tables],
        models=[(m.name, m.table, m.reads) for m in models],
        checks=[(f"{c.model}: {c.name}", c.reads) for c in checks],
    )


def _select_tables(
    job_name: str, job: JobConfig, available: list[SourceTable]
) -> list[SourceTable]:
    if job.tables == "all":
        return available
    by_name = {t.name: t for t in available}
    missing = [n for n in job.tables if n not in by_name]
    if missing:
        raise ConfigError(
            f"Job {job_name} lists table '{missing[0]}', which the source does not have."
            f"{did_you_mean(missing[0], by_name)}"
        )
    return [by_name[n] for n in job.tables]


Reused = TableCommit | CheckResult


def _plan(run: EtlRun, graph: TaskGraph) -> tuple[frozenset[str], dict[str, Reused]]:
    """The tasks to run, and for the others what they reuse: a previous attempt's output
    (``run.reuse``, when resuming a failed run) or the table readers have now. The tasks are
    recorded: PENDING, or SKIPPED with what they reuse."""
    wanted = graph.select(
        start_from=run.selection.get("from", ()),
        only=run.selection.get("only", ()),
        exclude=run.selection.get("exclude", ()),
    )
    reused: dict[str, Reused] = {}
    details: dict[str, str] = {}
    for name in graph.order():
        output = run.reuse.get(name)
        usable = output is not None and all(d in reused for d in graph.dependencies[name])
        if usable and output is not None and (value := _from_output(output, run.lake)) is not None:
            reused[name] = value
            details[name] = f"reuses the output of run {run.reused_from}"
    left_out = sorted(set(graph.dependencies) - wanted - set(reused))
    published = run.catalog.call(run.publications.current) if left_out else {}
    for name in left_out:
        table = graph.outputs.get(name)
        current = published.get(table) if table is not None else None
        if current is not None:
            reused[name] = current.commit()
            details[name] = f"reuses the published snapshot of run {current.run_id}"
        elif table is not None and any(name in graph.dependencies[t] for t in wanted):
            raise ConfigError(
                f"Task {name} is not selected, but {table} has never been published and "
                f"{', '.join(sorted(t for t in wanted if name in graph.dependencies[t]))} "
                "reads it.",
                hint=f"Select {name} too, or run the whole job first.",
            )
        else:
            details[name] = "not selected"
    selected = wanted - set(reused)
    run.tasks.planned(
        {n: TaskState.PENDING if n in selected else TaskState.SKIPPED for n in graph.order()},
        details=details,
        outputs={n: _to_output(v) for n, v in reused.items()},
    )
    return selected, reused


def _to_output(value: Reused | WrittenTable) -> dict[str, Any]:
    if isinstance(value, TableCommit):
        return {
            "table": str(value.table),
            "snapshot_id": value.snapshot_id,
            "metadata_location": value.metadata_location,
            "files": list(value.files),
            "rows": value.rows,
        }
    if isinstance(value, CheckResult):
        return {
            "check": value.name,
            "model": value.model,
            "severity": value.severity,
            "sql": value.sql,
            "failing_rows": value.failing_rows,
            "message": value.message,
            "scope": value.scope,
        }
    return {"table": str(value.table), "files": list(value.files), "rows": value.rows}


def _from_output(output: dict[str, Any], lake: Lake) -> Reused | None:
    """What a recorded output holds, or None when it cannot be reused (no commit recorded,
    or a data file is gone)."""
    if "check" in output:
        return CheckResult(
            output["check"],
            output["model"],
            output["severity"],
            output["sql"],
            int(output["failing_rows"]),
            message=output["message"],
        )
    if "snapshot_id" not in output or not lake.files_exist(output["files"]):
        return None
    database, _, name = output["table"].partition(".")
    return TableCommit(
        TableName(database, name),
        int(output["snapshot_id"]),
        output["metadata_location"],
        tuple(output["files"]),
        int(output["rows"]),
    )


def _plan_drift(run: EtlRun, tables: list[SourceTable]) -> DriftPlan:
    """Compare each source table with its raw table under the job's drift policies."""
    raw = {t.name: run.lake.raw_schema(TableName(run.job.raw_database, t.name)) for t in tables}
    keys = {name: spec.primary_key for name, spec in run.job.incremental.items()}
    keys.update({name: spec.primary_key for name, spec in run.job.cdc.items()})
    plan = plan_drift(
        tables,
        raw,
        config=run.job.schema_drift,
        keys=keys,
        job=run.job_name,
        raw_database=run.job.raw_database,
    )
    log_drift(plan)
    return plan


def _without_quarantined(
    drift: DriftPlan, tables: list[SourceTable], models: list[Model], checks: list[Check]
) -> tuple[list[SourceTable], list[Model], list[Check]]:
    """Leave out quarantined tables and the models and checks that read them."""
    quarantined = drift.quarantined
    if not quarantined:
        return tables, models, checks
    skipped = quarantined | blocked({m.table: m.reads for m in models}, quarantined)
    return (
        [t for t in tables if TableName(drift.raw_database, t.name) not in quarantined],
        [m for m in models if m.table not in skipped],
        [c for c in checks if not (c.reads & skipped)],
    )


def _cursor_columns(run: EtlRun, tables: list[SourceTable]) -> dict[str, SourceColumn]:
    """Check the job's incremental specs; the cursor column of each incremental table.

    The cursors themselves are read when a table is extracted, under its merge lock."""
    specs = run.job.incremental
    by_name = {t.name: t for t in tables}
    unknown = [name for name in specs if name not in by_name]
    if unknown:
        raise ConfigError(
            f"jobs.{run.job_name}.incremental names table '{unknown[0]}', which the job does "
            f"not extract.{did_you_mean(unknown[0], by_name)}"
        )
    cursors = {}
    for name, spec in specs.items():
        if TableName(run.job.raw_database, name) in run.drift.quarantined:
            continue
        cursors[name] = cursor_column(by_name[name], spec, job=run.job_name)
    return cursors


def _captured(run: EtlRun, tables: list[SourceTable]) -> frozenset[str]:
    """Check the job's CDC specs; the tables whose logged changes are applied (up to the
    log position ``_log_position`` reads when the first of them is extracted)."""
    by_name = {t.name: t for t in tables}
    captured = set()
    for name, spec in run.job.cdc.items():
        if name not in by_name:
            raise ConfigError(
                f"jobs.{run.job_name}.cdc names table '{name}', which the job does not "
                f"extract.{did_you_mean(name, by_name)}"
            )
        if name in run.job.incremental:
            raise ConfigError(
                f"Table {name} is under both jobs.{run.job_name}.cdc and "
                f"jobs.{run.job_name}.incremental; keep it under one."
            )
        check_cdc_spec(by_name[name], spec, job=run.job_name)
        if TableName(run.job.raw_database, name) not in run.drift.quarantined:
            captured.add(name)
    return frozenset(captured)


def _compile_checks(
    job: JobConfig, specs: dict[str, list[CheckSpec]], models: list[Model]
) -> list[Check]:
    names = {m.name for m in models}
    for model in specs:
        if model not in names:
            raise ConfigError(
                f"Checks are declared for '{model}', which is not a model."
                f"{did_you_mean(model, names)}"
            )
    return [
        compile_check(TableName(job.gold_database, model), spec)
        for model, model_specs in specs.items()
        for spec in model_specs
    ]


def _file_for(run: EtlRun, table: TableName) -> Path:
    return run.lake.data_dir(table) / f"{run.run_id}.parquet"


Task = SourceTable | Model | Check


def _task_objects(
    tables: list[SourceTable], models: list[Model], checks: list[Check]
) -> dict[str, Task]:
    tasks: dict[str, Task] = {f"extract:{t.name}": t for t in tables}
    tasks.update({f"transform:{m.name}": m for m in models})
    tasks.update({f"check:{i}": c for i, c in enumerate(checks)})
    return tasks


def _execute(
    run: EtlRun,
    con: duckdb.DuckDBPyConnection,
    *,
    graph: TaskGraph,
    selected: frozenset[str],
    tasks: dict[str, Task],
    commit: Callable[[str, WrittenTable], None],
) -> list[CheckResult]:
    """Extract, build and check the selected tasks as one task graph: a model starts as soon
    as the tables it reads exist, a check as soon as the tables it reads are built."""
    dependencies = {name: set(graph.dependencies[name] & selected) for name in selected}
    remaining = {
        stage: sum(1 for name in selected if name.startswith(f"{stage}:"))
        for stage in ("extract", "transform", "check")
    }
    for stage, total in remaining.items():
        run.progress.stage_started(stage, total)
        if not total:
            run.progress.stage_finished(stage)
    lock = threading.Lock()
    extracted_at = utcnow()

    def build(
        task: Task, cursor: duckdb.DuckDBPyConnection
    ) -> WrittenTable | TableCommit | CheckResult:
        if isinstance(task, SourceTable):
            return _extract_one(run, cursor, task, extracted_at)
        if isinstance(task, Model):
            return _build_model(run, cursor, task)
        return _run_check(run, cursor, task)

    def work(name: str) -> WrittenTable | TableCommit | CheckResult:
        run.checkpoint.check()
        task = tasks[name]
        result = run_task(
            name,
            lambda cursor: build(task, cursor),
            con=con,
            watcher=run.checkpoint,
            policy=run.job.retry,
            timeout_minutes=run.job.task_timeout_minutes,
            log=run.tasks,
            verdict=_verdict,
        )
        stage, _, item = name.partition(":")
        with lock:
            if isinstance(result, WrittenTable):
                commit(name, result)
                run.rows_written += result.rows_written
                if stage == "extract":
                    run.rows_read += result.rows if result.rows_read is None else result.rows_read
                rows: int | None = result.rows
            elif isinstance(result, TableCommit):
                run.unchanged.append(result)
                run.tasks.committed(name, _to_output(result))
                rows = result.rows
            else:
                run.tasks.committed(name, _to_output(result))
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
        dependencies,
        work,
        workers=run.job.concurrency or os.cpu_count() or 2,
        priority=_critical_path(dependencies, tasks),
        on_error=lambda exc: run.checkpoint.interrupt_all(),
    )
    return [r for r in results.values() if isinstance(r, CheckResult)]


def _verdict(result: WrittenTable | TableCommit | CheckResult) -> str | None:
    """A check that found bad rows and blocks the publish fails its task."""
    if isinstance(result, CheckResult) and not result.passed and result.severity == "error":
        return result.message
    return None


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
) -> WrittenTable | TableCommit:
    target = TableName(run.job.raw_database, table.name)
    path = _file_for(run, target)
    run.note_file(path)
    column = run.cursor_columns.get(table.name)
    if table.name in run.captured:
        _hold_merge_lock(run, target)
        cursor_before, files = _cursor(run, target, CDC_CURSOR)
        position = _log_position(run, table.name, cursor_before)
        written = extract_changes(
            cursor,
            relation=run.source.relation(SOURCE_ALIAS, table),
            log_relation=run.source.relation(SOURCE_ALIAS, SourceTable(CHANGE_LOG, ())),
            table=table,
            spec=run.job.cdc[table.name],
            cursor=cursor_before,
            position=position,
            current=files,
            target=target,
            path=path,
            work_dir=run.temp_dir,
            run_id=run.run_id,
            extracted_at=extracted_at,
            kept=run.drift.kept(table.name),
            narrow=lambda column, values: run.source.relation_holding(
                SOURCE_ALIAS, table, RowsAmong(column, tuple(values)), run.temp_dir
            ),
        )
        run.cursor_moves[table.name] = {
            "cursor": CDC_CURSOR,
            "from": cursor_before.value,
            "to": position.cursor(),
            "rows_read": written.rows_read,
        }
        if kept := _unchanged_snapshot(run, written, cursor_before, files):
            return _keep(run, cursor, kept)
    elif column is None:
        written = extract_table(
            cursor,
            relation=run.source.relation(SOURCE_ALIAS, table),
            table=table,
            target=target,
            path=path,
            run_id=run.run_id,
            extracted_at=extracted_at,
            kept=run.drift.kept(table.name),
        )
    else:
        spec = run.job.incremental[table.name]
        _hold_merge_lock(run, target)
        before, files = _cursor(run, target, spec.cursor)
        written = extract_incremental(
            cursor,
            relation=run.source.relation(SOURCE_ALIAS, table),
            table=table,
            spec=spec,
            column=column,
            cursor=before,
            current=files,
            target=target,
            path=path,
            batch=run.temp_dir / f"{table.name}.batch.parquet",
            run_id=run.run_id,
            extracted_at=extracted_at,
            kept=run.drift.kept(table.name),
            narrow=lambda bound: run.source.relation_holding(
                SOURCE_ALIAS, table, RowsAbove(spec.cursor, bound), run.temp_dir
            ),
        )
        assert written.cursor is not None
        run.cursor_moves[table.name] = {
            "cursor": written.cursor.column,
            "from": before.value,
            "to": written.cursor.value,
            "rows_read": written.rows_read,
        }
        if kept := _unchanged_snapshot(run, written, before, files):
            return _keep(run, cursor, kept)
    _expose(cursor, target, written.all_files, exposed=run.exposed)
    return replace(written, footers=_footers(cursor, written))


def _unchanged_snapshot(
    run: EtlRun, written: WrittenTable, before: Cursor, current: tuple[str, ...]
) -> TableCommit | None:
    """The published snapshot of a merged table when the merge changed nothing (no new
    file, every current file kept, the cursor where it was, no column to evolve), so that
    nothing is committed: history keeps only snapshots that changed something."""
    if written.files or not current or set(written.kept) != set(current):
        return None
    if written.cursor is None or not _unmoved(before.value, written.cursor.value):
        return None
    drift = run.drift.tables.get(written.table.name)
    if drift is not None and drift.changes:
        return None
    published = run.published(written.table)
    if published is None or set(published.files) != set(current):
        return None
    return published.commit()


def _log_position(run: EtlRun, table: str, before: Cursor) -> LogPosition:
    """Where the source's change log ends: read once a run for all its captured tables (one
    connection, not one per table), and again for a table whose committed position is
    ahead of that (another run applied its changes meanwhile) or when that read failed."""
    with run._log_lock:
        if run._log_end is None:
            try:
                run._log_end = log_position(run.source.url, sorted(run.captured), base_dir=run.root)
            except SourceError as exc:
                run._log_end = exc
        shared = run._log_end
    if isinstance(shared, LogPosition) and _covers(shared, LogPosition.parse(before.value)):
        return shared
    return log_position(run.source.url, [table], base_dir=run.root)


def _covers(end: LogPosition, committed: LogPosition | None) -> bool:
    """Whether a table whose cursor is ``committed`` can read up to ``end`` without moving
    its cursor back.

    >>> end = LogPosition("e1", 10)
    >>> _covers(end, None), _covers(end, LogPosition("e1", 9)), _covers(end, end)
    (True, True, True)
    >>> _covers(end, LogPosition("e1", 11)), _covers(end, LogPosition("e1", 10, (7,)))
    (False, False)
    >>> _covers(end, LogPosition("e0", 99))  # of another log: the table is read afresh
    True
    """
    return (
        committed is None
        or committed.epoch != end.epoch
        or committed.seq < end.seq
        or committed == end
    )


def _unmoved(before: str | None, after: str | None) -> bool:
    """Whether a cursor stayed where it was. A change log's position also lists the
    transactions open at the time (PostgreSQL, any database on the server): when no change
    was logged since, reading again from the old position misses nothing."""
    if before == after:
        return True
    old, new = LogPosition.parse(before), LogPosition.parse(after)
    return old is not None and new is not None and (old.epoch, old.seq) == (new.epoch, new.seq)


def _keep(run: EtlRun, cursor: duckdb.DuckDBPyConnection, kept: TableCommit) -> TableCommit:
    """Keep ``kept`` for readers: this run commits nothing to its table."""
    _release_merge_lock(run, kept.table)
    _expose(cursor, kept.table, kept.files, exposed=run.exposed)
    with run._files_lock:
        run.kept_tables.add(kept.table)
    return kept


def _up_to_date(
    run: EtlRun, model: Model, inputs: dict[TableName, tuple[str, ...]]
) -> TableCommit | None:
    """The published snapshot of a model whose last build read exactly these input files
    with the same SQL, so that building it again would give the same rows; None when it
    must be built (an input changed, its SQL is volatile, or the run names its tasks)."""
    if run.selection or not model.deterministic:
        return None
    with run._files_lock:
        if not model.reads <= run.kept_tables:
            return None  # an input was rewritten by this run
    published = run.published(model.table)
    if published is None:
        return None
    previous, files = _summary(run, model.table)
    if set(files) != set(published.files) or not built_from(previous, model.sql, inputs):
        return None
    return published.commit()


def _cursor(run: EtlRun, table: TableName, column: str) -> tuple[Cursor, tuple[str, ...]]:
    """The table's committed cursor and current files: read here when Sluice recorded them
    in the snapshot (no wait for the catalog process to load pyiceberg), else there."""
    recorded = run.lake.recorded_cursor(table, column)
    return recorded or run.catalog.call(run.lake.cursor, table, column)


def _summary(run: EtlRun, table: TableName) -> tuple[dict[str, str], tuple[str, ...]]:
    """The table's current snapshot summary and files, read as ``_cursor`` reads."""
    recorded = run.lake.recorded_state(table)
    if recorded is not None:
        return recorded.summary, recorded.files
    return run.catalog.call(run.lake.summary, table)


def _hold_merge_lock(run: EtlRun, table: TableName) -> None:
    """Wait until no other run merges into ``table`` (incremental or CDC) and hold it until
    this run has committed it; the caller then reads the table's cursor again, as another
    run may have moved it meanwhile."""
    if table in run.merge_locks:
        return
    lock = run.lake.merge_lock(table)
    while True:
        try:
            lock.__enter__()
            break
        except LockedError:
            run.checkpoint.sleep(MERGE_LOCK_POLL_SECONDS)
    with run._files_lock:
        run.merge_locks[table] = lock


def _release_merge_lock(run: EtlRun, table: TableName) -> None:
    with run._files_lock:
        lock = run.merge_locks.pop(table, None)
    if lock is not None:
        lock.__exit__(None, None, None)


def _build_model(
    run: EtlRun, cursor: duckdb.DuckDBPyConnection, model: Model
) -> WrittenTable | TableCommit:
    """Build a model's table: kept as published when its SQL and input files are those of
    its last build, merged from the rows whose inputs changed when the model is incremental
    and its previous build allows, fully otherwise."""
    import duckdb

    inputs = {table: run.exposed[table] for table in sorted(model.reads)}
    if kept := _up_to_date(run, model, inputs):
        run.model_builds[model.name] = {
            "build": "kept",
            "reason": "its SQL and inputs are unchanged",
        }
        return _keep(run, cursor, kept)
    path = _file_for(run, model.table)
    run.note_file(path)
    try:
        written = _merge_model(run, cursor, model, inputs, path)
        if written is None:
            rows = write_parquet(cursor, lake_select(cursor, model.sql), path)
            written = WrittenTable(model.table, (str(path),), rows)
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        raise model_failure(model, str(exc)) from exc
    build = run.model_builds.setdefault(model.name, {"build": "full"})["build"]
    summary = state_summary(model.sql, inputs, build=build)
    _expose(cursor, model.table, written.all_files, exposed=run.exposed)
    return replace(written, footers=_footers(cursor, written), summary=summary)


def _merge_model(
    run: EtlRun,
    cursor: duckdb.DuckDBPyConnection,
    model: Model,
    inputs: dict[TableName, tuple[str, ...]],
    path: Path,
) -> WrittenTable | None:
    """An incremental model's table merged from its changed rows; None when the model must
    be built fully (recorded with the reason in ``run.model_builds``)."""
    if model.incremental is None:
        return None
    previous, gold_files = _summary(run, model.table)
    built = build_increment(
        cursor,
        model.incremental,
        model.sql,
        previous=previous,
        gold_files=gold_files,
        inputs=inputs,
        path=path,
    )
    if isinstance(built, str):
        run.model_builds[model.name] = {"build": "full", "reason": built}
        return None
    merged, recomputed = built
    run.model_builds[model.name] = {"build": "incremental", "keys": recomputed}
    with run._files_lock:
        run.merged[model.table] = (frozenset(model.incremental.unique_key), gold_files)
    return WrittenTable(
        model.table, merged.written, merged.rows, kept=merged.kept, new_rows=merged.new_rows
    )


def _run_check(run: EtlRun, cursor: duckdb.DuckDBPyConnection, check: Check) -> CheckResult:
    """Run a check on the rows of its table that no earlier run has checked it on, when the
    rest are known to pass (``_unchecked_files``), else on the whole table."""
    files = _unchecked_files(run, cursor, check)
    if files is None:
        return run_check(cursor, check)
    if not files:
        return CheckResult(
            check.name, check.model, check.severity, check.sql, failing_rows=0, scope="none"
        )
    scoped = run_check(cursor, check.on_rows(_files_relation(files)))
    return replace(scoped, sql=check.sql, scope="new rows")


def _unchecked_files(
    run: EtlRun, cursor: duckdb.DuckDBPyConnection, check: Check
) -> tuple[str, ...] | None:
    """The data files of the check's table that the run publishing its current snapshot did
    not check, when checking only them decides the check for the whole table; else None.

    That needs the check (same SQL) to have passed in that run and to be decided row by row
    (``not_null``; ``foreign_key`` when the referenced table kept every key it had then), or to be
    ``unique`` on the key the table was merged by this run, from that run's files: a merge
    keeps the files without the changed keys, so any repeat would be among the new files.
    A run that names its tasks checks whole tables.
    """
    table = check.table
    if run.selection or table is None or not (check.row_by_row or check.unique_columns):
        return None
    published = run.published(table)
    if published is None or (check.model, check.name, check.sql) not in run.passed_checks(
        published.run_id
    ):
        return None
    old = set(published.files)
    files = run.exposed.get(table, ())
    unchecked = tuple(f for f in files if f not in old)
    if len(unchecked) == len(files):
        return None  # rebuilt: every row is new
    for other in check.reads - {table}:
        same = run.published(other)
        if same is None or same.run_id != published.run_id:
            return None
        if set(run.exposed.get(other, ())) != set(same.files) and not (
            # the check's SQL also tests the changed table's keys: it must run
            unchecked
            and check.kind == "foreign_key"
            and references_kept(cursor, check, _files_relation(same.files))
        ):
            return None
    if check.unique_columns and unchecked:
        key, merged_into = run.merged.get(table, (frozenset(), ()))
        if key != check.unique_columns or set(merged_into) != old:
            return None
    return unchecked


def _footers(cursor: duckdb.DuckDBPyConnection, written: WrittenTable) -> tuple[ParquetFooter, ...]:
    return tuple(read_footer(cursor, Path(f)) for f in written.files)


def _commit_later(
    pool: ThreadPoolExecutor, run: EtlRun, task: str, written: WrittenTable
) -> Future[TableCommit]:
    def commit() -> TableCommit:
        failpoint(f"before-commit:{written.table}")
        if written.cursor is None:
            result = run.catalog.call(run.lake.commit, written, run_id=run.run_id)
        else:
            name = written.table.name
            spec = run.job.incremental.get(name) or run.job.cdc[name]
            try:
                result = run.catalog.call(
                    run.lake.commit_incremental,
                    written,
                    run_id=run.run_id,
                    primary_key=spec.primary_key,
                )
            finally:
                _release_merge_lock(run, written.table)
        failpoint(f"after-commit:{written.table}")
        with run._files_lock:
            run.committed.update(written.files)
        run.tasks.committed(task, _to_output(result))
        failpoint(f"commit:{written.table}")
        return result

    return pool.submit(commit)


def _expose(
    con: duckdb.DuckDBPyConnection,
    table: TableName,
    files: tuple[str, ...],
    *,
    exposed: dict[TableName, tuple[str, ...]],
) -> None:
    """Make ``table`` a view over its data files; ``exposed`` records which."""
    con.execute(
        f"CREATE OR REPLACE VIEW {table.database}.{duck.quote_ident(table.name)} AS "
        f"SELECT * FROM {_files_relation(files)}"
    )
    exposed[table] = files


def _files_relation(files: tuple[str, ...]) -> str:
    """The rows of Parquet data files, as a DuckDB FROM item."""
    return f"read_parquet({parquet_list(files)})"


def _remove_old_files(run: EtlRun, commits: list[TableCommit]) -> None:
    """Delete data files that neither the retained snapshots nor recent publications use."""
    keep = run.catalog.call(run.publications.recent_runs, KEEP_PUBLICATIONS) | {run.run_id}
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

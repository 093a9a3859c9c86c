"""The ETL job: extract every source table to raw, build the models, check, publish.

Nothing is visible to readers until the final publication record is written; a failure
or interruption at any earlier point leaves them on the previous published snapshots.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sluice import duck
from sluice.config import CheckSpec, JobConfig
from sluice.core import CheckResult, TableCommit, TableName, WrittenTable
from sluice.errors import CheckFailedError, ConfigError, TransformError, did_you_mean
from sluice.ingest.extract import extract_table, write_parquet
from sluice.jobs.store import utcnow
from sluice.lake.catalog import Lake
from sluice.lake.publications import PublicationStore
from sluice.lake.types import lake_select
from sluice.observe.failpoints import failpoint
from sluice.observe.progress import Progress
from sluice.quality.checks import compile_check, run_check
from sluice.sources.base import Source, SourceTable
from sluice.transform.models import Model, load_models

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("sluice.jobs.etl")
SOURCE_ALIAS = "src"


class Checkpoint(Protocol):
    """Lets a run be stopped between steps and interrupts DuckDB mid-step."""

    def check(self) -> None:
        """Raise if the run must stop now."""

    def watch(self, con: duckdb.DuckDBPyConnection) -> None:
        """Interrupt this connection when the run must stop."""


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
    rows_read: int = 0
    rows_written: int = 0
    written_files: list[str] = field(default_factory=list)


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
            "tables": {str(c.table): {"rows": c.rows, "snapshot_id": c.snapshot_id} for c in self.commits},
            "checks": [
                {"model": c.model, "name": c.name, "severity": c.severity, "failing_rows": c.failing_rows,
                 "message": c.message}
                for c in self.checks
            ],
        }


def run_etl(run: EtlRun) -> EtlResult:
    """Execute the job; on any failure, delete the files this run wrote but never committed."""
    committed: set[str] = set()
    try:
        result = _run(run, committed)
    except BaseException:
        _remove_uncommitted(run.written_files, committed)
        raise
    return result


def _run(run: EtlRun, committed: set[str]) -> EtlResult:
    run.temp_dir.mkdir(parents=True, exist_ok=True)
    con = duck.connect(
        extensions=("sqlite_scanner",),
        threads=run.job.threads,
        memory_limit=run.job.memory_limit,
        temp_directory=str(run.temp_dir),
    )
    run.checkpoint.watch(con)
    try:
        tables = _select_tables(run)
        run.source.attach(con, SOURCE_ALIAS)
        con.execute(f"CREATE SCHEMA {run.job.raw_database}")
        if run.job.gold_database != run.job.raw_database:
            con.execute(f"CREATE SCHEMA {run.job.gold_database}")
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sluice-commit") as committer:
            raw = _extract(run, con, tables)
            raw_commits = [_commit_later(committer, run, w, committed) for w in raw]
            models = load_models(
                run.root / run.job.models,
                database=run.job.gold_database,
                available={w.table for w in raw},
            )
            gold = _transform(run, con, models)
            results = _check(run, con, models)
            run.checkpoint.check()
            run.counters(stage="publish", rows_read=run.rows_read, rows_written=run.rows_written)
            run.progress.stage_started("publish", len(raw) + len(gold) + 1)
            gold_commits = [_commit_later(committer, run, w, committed) for w in gold]
            commits = []
            for future in raw_commits + gold_commits:
                commit = future.result()
                commits.append(commit)
                run.progress.item_done("publish", str(commit.table), commit.rows)
        run.checkpoint.check()
        failpoint("publish")
        run.publications.publish(run.run_id, run.job_name, commits)
        failpoint("published")
        run.progress.item_done("publish", "publication record")
        run.progress.stage_finished("publish")
        return EtlResult(run.rows_read, run.rows_written, tuple(commits), tuple(results))
    finally:
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


def _file_for(run: EtlRun, table: TableName) -> Path:
    return run.lake.data_dir(table) / f"{run.run_id}.parquet"


def _extract(run: EtlRun, con: duckdb.DuckDBPyConnection, tables: list[SourceTable]) -> list[WrittenTable]:
    run.progress.stage_started("extract", len(tables))
    extracted_at = utcnow()
    written = []
    for table in tables:
        run.checkpoint.check()
        target = TableName(run.job.raw_database, table.name)
        path = _file_for(run, target)
        run.written_files.append(str(path))
        result = extract_table(
            con, alias=SOURCE_ALIAS, table=table, target=target, path=path,
            run_id=run.run_id, extracted_at=extracted_at,
        )
        _expose(con, target, path)
        run.rows_read += result.rows
        run.rows_written += result.rows
        run.counters(stage="extract", rows_read=run.rows_read, rows_written=run.rows_written)
        run.progress.item_done("extract", table.name, result.rows)
        failpoint(f"extract:{table.name}")
        written.append(result)
    run.progress.stage_finished("extract")
    return written


def _transform(run: EtlRun, con: duckdb.DuckDBPyConnection, models: list[Model]) -> list[WrittenTable]:
    import duckdb

    run.progress.stage_started("transform", len(models))
    written = []
    for model in models:
        run.checkpoint.check()
        path = _file_for(run, model.table)
        run.written_files.append(str(path))
        try:
            rows = write_parquet(con, lake_select(con, model.sql), path)
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            raise TransformError(
                f"Model {model.name} ({model.path.name}) failed: {str(exc).splitlines()[0]}",
                hint=f"Fix {model.path} and rerun the job.",
            ) from exc
        _expose(con, model.table, path)
        run.rows_written += rows
        run.counters(stage="transform", rows_read=run.rows_read, rows_written=run.rows_written)
        run.progress.item_done("transform", model.name, rows)
        failpoint(f"transform:{model.name}")
        written.append(WrittenTable(model.table, (str(path),), rows))
    run.progress.stage_finished("transform")
    return written


def _check(run: EtlRun, con: duckdb.DuckDBPyConnection, models: list[Model]) -> list[CheckResult]:
    names = {m.name for m in models}
    for model in run.checks:
        if model not in names:
            raise ConfigError(
                f"Checks are declared for '{model}', which is not a model.{did_you_mean(model, names)}"
            )
    compiled = [
        compile_check(TableName(run.job.gold_database, model), spec)
        for model, specs in run.checks.items()
        for spec in specs
    ]
    run.progress.stage_started("check", len(compiled))
    run.counters(stage="check", rows_read=run.rows_read, rows_written=run.rows_written)
    results = []
    for check in compiled:
        run.checkpoint.check()
        result = run_check(con, check)
        results.append(result)
        if not result.passed:
            log.warning("check %s on %s: %s", check.name, check.model, result.message)
        run.progress.item_done("check", f"{check.model}: {check.name}", result.failing_rows)
    run.progress.stage_finished("check")
    failed = [r for r in results if not r.passed and r.severity == "error"]
    if failed:
        raise CheckFailedError(
            "; ".join(r.message for r in failed),
            hint="Nothing was published; fix the model and rerun the job.",
        )
    return results


def _commit_later(
    pool: ThreadPoolExecutor, run: EtlRun, written: WrittenTable, committed: set[str]
) -> Future[TableCommit]:
    def commit() -> TableCommit:
        import pyarrow.parquet as pq

        run.lake.ensure_database(written.table.database)
        schema = pq.read_schema(written.files[0])
        result = run.lake.commit(written, schema=schema, run_id=run.run_id)
        committed.update(written.files)
        failpoint(f"commit:{written.table}")
        return result

    return pool.submit(commit)


def _expose(con: duckdb.DuckDBPyConnection, table: TableName, path: Path) -> None:
    con.execute(
        f"CREATE OR REPLACE VIEW {table.database}.{duck.quote_ident(table.name)} AS "
        f"SELECT * FROM read_parquet({duck.quote_literal(str(path))})"
    )


def _remove_uncommitted(files: list[str], committed: set[str]) -> None:
    for name in files:
        if name not in committed:
            Path(name).unlink(missing_ok=True)

"""Orchestration of a job with incremental tables: --from reuses the published raw tables
without extracting, a retry after a kill never re-reads rows whose cursor was committed,
and runs of one job at once are refused, queued or both run, as the job says."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import pytest

from sluice.core import TableName, TaskState
from sluice.errors import JobError
from sluice.jobs.store import JobRun
from sluice.project import Project
from tests.conftest import sluice_cli
from tests.ingest.test_incremental import (
    INCREMENTAL,
    T1,
    T2,
    add_updated_at,
    assert_gold_reconciles,
    assert_raw_equals_source,
    change_source,
    configure,
    ok,
    sqlite_source,
)
from tests.ingest.test_kill_anywhere import assert_lake_equals_source, live_source
from tests.jobs.helpers import (
    lake_totals,
    published_run,
    run_killed_at,
    source_path,
    wait_for,
    wait_queued,
)
from tests.jobs.test_orchestration import by_task, published_files

RAW_TABLES = ("orders", "orderdetails", "customers", "payments", "products")


@pytest.fixture
def incremental(project: Project) -> Project:
    """A scale-1 project whose orders and order lines load incrementally on updated_at,
    after its first run."""
    with sqlite_source(project) as execute:
        add_updated_at(execute)
    project = configure(project, INCREMENTAL)
    first = project.run_job("etl")
    assert first.state == "SUCCEEDED", first.error
    return project


def cursors(project: Project) -> dict[str, tuple[str | None, int | None]]:
    """Each incremental table's committed cursor value and the snapshot it lives in."""
    found = {}
    for table in INCREMENTAL:
        cursor, _ = project.lake.cursor(TableName("raw", table), "updated_at")
        found[table] = (cursor.value, cursor.snapshot_id)
    return found


def cli_run(project: Project, *args: str) -> JobRun:
    """Run ``sluice job ARGS --wait`` in a real CLI process; return the newest run."""
    result = sluice_cli("job", *args, "--wait", "-q", "--project", project.root)
    assert result.returncode == 0, result.stderr
    run = project.jobs.runs("etl")[0]
    assert run.state == "SUCCEEDED", run.error
    return run


def test_from_fact_orders_rebuilds_it_from_the_published_raw_without_extracting(
    incremental: Project,
) -> None:
    project = incremental
    before, totals = cursors(project), lake_totals(project)
    raw_files = {t: published_files(project, f"raw.{t}") for t in INCREMENTAL}
    with sqlite_source(project) as execute:
        changed = change_source(execute)

    rebuilt = cli_run(project, "start", "etl", "--from", "fact_orders")
    tasks = by_task(project, rebuilt.run_id)
    extracts = {n: t for n, t in tasks.items() if n.startswith("extract:")}
    assert {t.state for t in extracts.values()} == {TaskState.SKIPPED}
    assert {t.attempts for t in extracts.values()} == {0}
    assert tasks["transform:fact_orders"].state == TaskState.SUCCEEDED
    assert rebuilt.rows_read == 0 and rebuilt.report["incremental"] == {}
    assert cursors(project) == before
    assert {t: published_files(project, f"raw.{t}") for t in INCREMENTAL} == raw_files
    # fact_orders is incremental: its inputs as published have not changed, so nothing is
    # recomputed and its files stay those of the build before.
    assert rebuilt.report["models"]["fact_orders"] == {
        "build": "incremental",
        "keys": 0,
    }
    assert published_run(project) == {rebuilt.run_id}
    # Built from the raw tables as published, not from the source that has moved since.
    assert lake_totals(project) == totals

    caught_up = project.run_job("etl")
    assert caught_up.state == "SUCCEEDED", caught_up.error
    for table in INCREMENTAL:
        moved = caught_up.report["incremental"][table]
        assert (moved["from"], moved["to"], moved["rows_read"]) == (T1, T2, changed[table])
    assert_raw_equals_source(project, (*INCREMENTAL, "products"))
    assert_gold_reconciles(project)


def test_a_model_is_kept_only_while_its_sql_and_inputs_are_those_of_its_last_build(
    incremental: Project,
) -> None:
    """dim_date reads raw.orders alone, which an unchanged source leaves as it was."""
    project = incremental
    models = project.root / "models"
    (models / "orders_seen.sql").write_text(
        "SELECT count(*) AS orders, now() AS seen_at FROM raw.orders"
    )
    project = Project.open(project.root)
    built = ok(project.run_job("etl"))
    assert built.report["models"]["dim_date"]["build"] == "kept"

    def snapshots(model: str) -> list[str | None]:
        return [s.run_id for s in project.lake.describe(TableName("gold", model)).snapshots]

    dim_date, fact_orders = snapshots("dim_date"), snapshots("fact_orders")
    again = ok(project.run_job("etl"))
    assert again.report["models"]["dim_date"]["build"] == "kept"
    assert snapshots("dim_date") == dim_date
    # now() differs from run to run: such a model is built every time.
    assert snapshots("orders_seen")[-1] == again.run_id
    # fact_orders reads the dimensions, which the customers and products reloads rebuild.
    assert snapshots("fact_orders") == [*fact_orders, again.run_id]

    sql = models / "dim_date.sql"
    sql.write_text(sql.read_text().replace("AS isWeekend", "AS is_weekend"))
    changed = ok(Project.open(project.root).run_job("etl"))
    assert changed.report["models"]["dim_date"]["build"] == "full"
    assert snapshots("dim_date") == [*dim_date, changed.run_id]
    columns = project.query("SELECT * FROM dim_date LIMIT 1").table.column_names
    assert "is_weekend" in columns and "isWeekend" not in columns
    assert_gold_reconciles(project)


@pytest.mark.parametrize("point", ["after-commit:raw.orderdetails", "commit:gold.fact_orders"])
def test_a_retry_after_a_kill_never_re_reads_rows_whose_cursor_was_committed(
    incremental: Project, point: str
) -> None:
    project = incremental
    first = published_run(project)
    with sqlite_source(project) as execute:
        changed = change_source(execute)

    killed = run_killed_at(project, point)
    assert killed.state == "FAILED"
    assert published_run(project) == first
    committed = cursors(project)
    # The kill came after order lines' commit: their rows and cursor are in raw.
    assert committed["orderdetails"][0] == T2
    tasks = by_task(project, killed.run_id)
    recorded = {t for t in INCREMENTAL if (tasks[f"extract:{t}"].output or {}).get("snapshot_id")}
    assert ("orderdetails" in recorded) == (point == "commit:gold.fact_orders")

    retry = cli_run(project, "retry", "etl", killed.run_id)
    assert retry.retry_of == killed.run_id
    after = by_task(project, retry.run_id)
    for table in INCREMENTAL:
        task = after[f"extract:{table}"]
        moved = retry.report["incremental"].get(table)
        if table in recorded:
            # Reused from the killed run: nothing read again, its snapshot is published.
            assert task.state == TaskState.SKIPPED and task.attempts == 0, table
            assert moved is None, table
            assert Path(published_files(project, f"raw.{table}")[0]).stem == killed.run_id
        else:
            # Extracted again, from the cursor the killed run committed (if it did).
            assert task.state == TaskState.SUCCEEDED, table
            assert moved is not None and moved["from"] == committed[table][0], table
            expected = 0 if committed[table][0] == T2 else changed[table]
            assert moved["rows_read"] == expected, (table, moved)
    assert published_run(project) == {retry.run_id}
    assert_raw_equals_source(project, RAW_TABLES)
    assert_gold_reconciles(project)

    again = project.run_job("etl")
    assert again.state == "SUCCEEDED", again.error
    assert {t: again.report["incremental"][t]["rows_read"] for t in INCREMENTAL} == {
        t: 0 for t in INCREMENTAL
    }
    assert_raw_equals_source(project, RAW_TABLES)


def limit_runs(project: Project, limit: int, when_busy: str) -> Project:
    """Allow ``limit`` runs at once; retry a locked source quickly."""
    path = project.root / "sluice.yml"
    path.write_text(
        path.read_text().replace(
            "    timeout_minutes: 30\n",
            f"    timeout_minutes: 30\n    max_concurrent_runs: {limit}\n"
            f"    when_busy: {when_busy}\n"
            "    retry: {attempts: 100, initial_seconds: 0.1, max_seconds: 0.3, "
            "budget_seconds: 120}\n",
        )
    )
    return Project.open(project.root)


def wait_running(project: Project, runs: list[JobRun]) -> None:
    """Wait until every run has started working (RUNNING, no longer queued)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [project.jobs.get("etl", r.run_id).state for r in runs]
        if all(s == "RUNNING" for s in states):
            return
        time.sleep(0.1)
    raise AssertionError(f"runs did not all start: {states}")


@pytest.mark.parametrize("when_busy", ["refuse", "queue"])
def test_two_runs_at_once_both_publish_and_a_third_is_refused_or_queued(
    incremental: Project, when_busy: str
) -> None:
    project = limit_runs(incremental, 2, when_busy)
    with sqlite_source(project) as execute:
        change_source(execute)
    # The source is locked: both runs wait for it, retrying, while they are both RUNNING.
    lock = sqlite3.connect(source_path(project))
    lock.execute("BEGIN EXCLUSIVE")
    try:
        pair = [project.jobs.start("etl"), project.jobs.start("etl")]
        wait_running(project, pair)
        if when_busy == "refuse":
            with pytest.raises(JobError, match="at most 2 at a time"):
                project.jobs.start("etl")
            third = None
        else:
            third = project.jobs.start("etl")
            wait_queued(project, third.run_id)
    finally:
        lock.rollback()
        lock.close()
    ended = [wait_for(project, r.run_id, final=True, timeout=120) for r in pair]
    assert [r.state for r in ended] == ["SUCCEEDED", "SUCCEEDED"], [r.error for r in ended]
    assert all(project.publications.is_published(r.run_id) for r in ended)
    assert {r.run_id for r in ended} >= published_run(project)
    if third is not None:
        done = wait_for(project, third.run_id, final=True, timeout=120)
        assert done.state == "SUCCEEDED", done.error
    # Whichever published last, readers see one run's tables, equal to the source (the
    # other run may have committed some raw tables after them: not necessarily current).
    assert len(published_run(project)) == 1
    with contextlib.closing(live_source(project)) as con:
        assert_lake_equals_source(project, con, current=False)
    again = project.run_job("etl")
    assert again.state == "SUCCEEDED", again.error
    assert {t: again.report["incremental"][t]["rows_read"] for t in INCREMENTAL} == {
        t: 0 for t in INCREMENTAL
    }
    assert_raw_equals_source(project, RAW_TABLES)

"""The query execution manager without HTTP: queued cancels, orphans, result retention."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sluice.config import QueryLimits
from sluice.project import Project
from sluice.query.executions import QueryTimeoutError, ResultsExpiredError
from sluice.query.history import QueryExecution, QueryState
from tests.serve.conftest import SLOW_SQL


def test_executions_left_by_a_dead_server_end_failed(served_project: Project) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    history = served_project.query_history
    orphan = QueryExecution(
        "orphan-" + str(dead.pid), "SELECT 1", "gold", None, QueryState.QUEUED, datetime.now(UTC)
    )
    history.add(orphan, server_pid=dead.pid)
    assert history.transition(orphan.query_id, QueryState.RUNNING, expect=(QueryState.QUEUED,))
    executions = served_project.query_executions()
    try:
        found = executions.get(orphan.query_id)
    finally:
        executions.close()
    assert found.state == QueryState.FAILED
    assert found.error is not None and found.error.code == "server_stopped"
    assert found.started_at is not None and found.ended_at is not None


def test_only_the_newest_results_are_kept(project: Project) -> None:
    assert project.run_job("etl").state == "SUCCEEDED"
    executions = project.query_executions(QueryLimits(keep_results=2))
    try:
        ids = []
        for n in range(3):
            started = executions.start("SELECT ? AS n, count(*) AS c FROM dim_date", parameters=[n])
            ids.append(started.query_id)
            assert executions.wait(started.query_id, 30).state == QueryState.SUCCEEDED
        oldest = executions.get(ids[0])
        assert oldest.result_path is None and oldest.rows == 1
        assert not (project.state_dir / "queries" / f"{ids[0]}.arrow").exists()
        with pytest.raises(ResultsExpiredError, match="only the latest 2"):
            executions.results(ids[0])
        expected = project.query("SELECT count(*) AS c FROM dim_date").table.column("c")
        for n, query_id in enumerate(ids[1:], start=1):
            page = executions.results(query_id)
            assert page.table.to_pylist() == [{"n": n, "c": expected[0].as_py()}]
            assert Path(str(page.execution.result_path)).is_file()
    finally:
        executions.close()


def test_executions_older_than_the_history_window_are_forgotten(project: Project) -> None:
    assert project.run_job("etl").state == "SUCCEEDED"
    executions = project.query_executions(QueryLimits(keep_history_days=45))
    try:
        old, recent = (executions.start(f"SELECT {n} AS n") for n in (1, 2))
        for started in (old, recent):
            assert executions.wait(started.query_id, 30).state == QueryState.SUCCEEDED
        old_file = Path(str(executions.get(old.query_id).result_path))
        assert old_file.is_file()
        days_ago = (datetime.now(UTC) - timedelta(days=46)).isoformat()
        with sqlite3.connect(project.state_dir / "runs.db") as con:
            con.execute(
                "UPDATE query_executions SET submitted_at = ? WHERE query_id = ?",
                (days_ago, old.query_id),
            )
        newest = executions.start("SELECT 3 AS n")
        assert executions.wait(newest.query_id, 30).state == QueryState.SUCCEEDED
        kept = {e.query_id for e in executions.list(limit=1000)}
        assert old.query_id not in kept and {recent.query_id, newest.query_id} <= kept
        assert not old_file.exists()
        assert executions.results(recent.query_id).table.to_pylist() == [{"n": 2}]
    finally:
        executions.close()


def test_a_queued_execution_is_cancelled_before_it_runs(served_project: Project) -> None:
    executions = served_project.query_executions(QueryLimits(workers=1, threads=1))
    try:
        running = executions.start(SLOW_SQL)
        queued = executions.start("SELECT count(*) FROM fact_orders")
        deadline = time.monotonic() + 10
        while executions.get(running.query_id).state != QueryState.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert executions.get(queued.query_id).state == QueryState.QUEUED
        cancelled = executions.cancel(queued.query_id)
        assert cancelled.state == QueryState.CANCELLED
        assert cancelled.started_at is None and cancelled.engine_seconds is None
        assert executions.cancel(running.query_id).state == QueryState.CANCELLED
        assert executions.wait(running.query_id, 10).state == QueryState.CANCELLED
        after = executions.start("SELECT count(*) AS n FROM fact_orders")
        assert executions.wait(after.query_id, 30).state == QueryState.SUCCEEDED
        assert executions.get(queued.query_id).state == QueryState.CANCELLED
        rows = executions.results(after.query_id).table.to_pylist()
        assert (
            rows == served_project.query("SELECT count(*) AS n FROM fact_orders").table.to_pylist()
        )
    finally:
        executions.close()


def test_read_runs_statements_now_unrecorded_and_under_the_timeout(
    served_project: Project,
) -> None:
    executions = served_project.query_executions(QueryLimits(timeout_seconds=0.5, threads=1))
    try:
        recorded = len(executions.list(limit=1000))
        lines, orders = executions.read(
            [
                ("SELECT count(*) AS n FROM fact_orders WHERE quantityOrdered >= ?", [30]),
                ("SELECT count(*) AS n FROM gold.fact_orders", None),
            ]
        )
        expected = served_project.query(
            "SELECT count(*) AS n FROM fact_orders WHERE quantityOrdered >= 30"
        )
        assert lines.table.to_pylist() == expected.table.to_pylist()
        assert 0 < lines.table.column("n")[0].as_py() < orders.table.column("n")[0].as_py()
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError, match=r"0\.5 s timeout"):
            executions.read([(SLOW_SQL, None)])
        assert time.monotonic() - started < 10
        assert len(executions.list(limit=1000)) == recorded
    finally:
        executions.close()

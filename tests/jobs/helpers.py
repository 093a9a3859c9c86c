"""Helpers for job tests: change the source between runs, read what readers see."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

from sluice.jobs.store import JobRun
from sluice.project import Project
from tests.conftest import sluice_cli

SLOW_MODEL = "SELECT sum(hash(i)) AS h FROM range(100000000000) AS t(i)\n"


def source_path(project: Project) -> Path:
    return Path(project.config.sources["classicmodels"].url.removeprefix("sqlite:///"))


def drop_orders(project: Project, count: int) -> None:
    """Delete the newest ``count`` orders (and their lines) from the source."""
    with sqlite3.connect(source_path(project)) as con:
        newest = [
            r[0]
            for r in con.execute("SELECT orderNumber FROM orders ORDER BY 1 DESC LIMIT ?", (count,))
        ]
        marks = ",".join("?" * len(newest))
        con.execute(f"DELETE FROM orderdetails WHERE orderNumber IN ({marks})", newest)
        con.execute(f"DELETE FROM orders WHERE orderNumber IN ({marks})", newest)


def source_totals(project: Project) -> tuple[int, int]:
    """Order lines and total sales in cents, computed on the source."""
    with sqlite3.connect(source_path(project)) as con:
        lines, cents = con.execute(
            "SELECT COUNT(*), SUM(quantityOrdered * CAST(ROUND(priceEach * 100) AS INTEGER)) FROM orderdetails"
        ).fetchone()
    return int(lines), int(cents)


def lake_totals(project: Project) -> tuple[int, int]:
    """Order lines and total sales in cents, as readers see them."""
    row = project.query(
        "SELECT count(*) AS n, sum(orderAmount) AS s FROM fact_orders"
    ).table.to_pylist()[0]
    return int(row["n"]), int(row["s"] * 100)


def published_run(project: Project) -> set[str]:
    """Run ids of the snapshots readers use (one per consistent publish)."""
    return {p.run_id for p in project.publications.current().values()}


def wait_for(
    project: Project,
    run_id: str,
    *,
    stage: str | None = None,
    final: bool = False,
    timeout: float = 60,
) -> JobRun:
    """Poll a run until it reaches a stage or a final state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = project.jobs.get("etl", run_id)
        if final and run.state.is_final:
            return run
        if stage is not None and run.stage == stage and run.state == "RUNNING":
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not reach {stage or 'a final state'}: {run}")


def wait_queued(project: Project, run_id: str, *, timeout: float = 60) -> JobRun:
    """Poll a run until it waits in the queue (STARTING, stage ``queued``)."""
    deadline = time.monotonic() + timeout
    record = project.jobs.get("etl", run_id)
    while record.stage != "queued" and time.monotonic() < deadline:
        time.sleep(0.05)
        record = project.jobs.get("etl", run_id)
    assert (record.state, record.stage) == ("STARTING", "queued"), record
    return record


def run_killed_at(project: Project, point: str) -> JobRun:
    """Run the job in a real CLI process that SIGKILLs itself at failpoint ``point``."""
    killed = sluice_cli(
        "job",
        "start",
        "etl",
        "--wait",
        "--quiet",
        "--project",
        project.root,
        env={"SLUICE_FAILPOINTS": point},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    return project.jobs.runs("etl")[0]

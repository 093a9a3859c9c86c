"""Runs killed at any point leave readers on the previous snapshots; the next run succeeds."""

from __future__ import annotations

import os
import signal

import pytest

from sluice.project import Project
from tests.jobs.helpers import (
    SLOW_MODEL,
    drop_orders,
    lake_totals,
    published_run,
    run_killed_at,
    source_totals,
    wait_for,
)

KILL_POINTS = [
    "extract:customers",
    "extract:orderdetails",
    "transform:dim_locations",
    "transform:dim_customers",
    "transform:fact_orders",
    "commit:raw.orderdetails",
    "commit:gold.dim_customers",
    "commit:gold.fact_orders",
    "publish",
]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_run_killed_before_publishing_changes_nothing_readers_see(
    project: Project, point: str
) -> None:
    first = project.run_job("etl")
    assert first.state == "SUCCEEDED"
    before = lake_totals(project)
    assert before == source_totals(project)
    drop_orders(project, 5)
    assert source_totals(project) != before

    run = run_killed_at(project, point)
    assert run.state == "FAILED"
    assert "died" in (run.error or "")
    assert lake_totals(project) == before
    # Marking the dead run FAILED deleted what it left in its temporary folder.
    assert (project.state_dir / "tmp").is_dir()
    assert not (project.state_dir / "tmp" / run.run_id).exists()
    assert published_run(project) == {first.run_id}

    again = project.run_job("etl")
    assert again.state == "SUCCEEDED", again.error
    assert lake_totals(project) == source_totals(project)
    assert published_run(project) == {again.run_id}


def test_a_run_killed_right_after_publishing_counts_as_succeeded(project: Project) -> None:
    project.run_job("etl")
    drop_orders(project, 3)
    run = run_killed_at(project, "published")
    assert run.state == "SUCCEEDED"
    assert lake_totals(project) == source_totals(project)
    assert published_run(project) == {run.run_id}


def test_sigkill_in_the_middle_of_a_model_leaves_previous_snapshot(project: Project) -> None:
    first = project.run_job("etl")
    before = lake_totals(project)
    drop_orders(project, 5)
    slow = project.root / "models" / "zz_slow.sql"
    slow.write_text(SLOW_MODEL)

    started = project.jobs.start("etl")
    running = wait_for(project, started.run_id, stage="transform")
    assert running.pid is not None
    os.kill(running.pid, signal.SIGKILL)
    ended = wait_for(project, started.run_id, final=True)
    assert ended.state == "FAILED"
    assert lake_totals(project) == before
    assert published_run(project) == {first.run_id}

    slow.unlink()
    again = project.run_job("etl")
    assert again.state == "SUCCEEDED"
    assert lake_totals(project) == source_totals(project)


def test_rerunning_never_duplicates_rows(project: Project) -> None:
    for _ in range(3):
        assert project.run_job("etl").state == "SUCCEEDED"
    assert lake_totals(project) == source_totals(project)
    counts = project.query("SELECT count(*) AS n FROM orders", database="raw").table.to_pylist()
    assert counts == [{"n": 326}]
    assert [t.rows for t in project.tables("gold") if t.table.name == "fact_orders"] == [2996]

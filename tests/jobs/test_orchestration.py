"""Orchestration: the task graph, task states, task timeouts and retries, --from/--only/
--exclude, resuming a failed run, queued runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sluice.core import TableName, TaskState
from sluice.errors import ConfigError, JobError
from sluice.jobs.store import TaskRecord
from sluice.observe import failpoints
from sluice.project import Project
from tests.conftest import sluice_cli
from tests.jobs.helpers import (
    SLOW_MODEL,
    drop_orders,
    lake_totals,
    published_run,
    run_killed_at,
    source_totals,
    wait_for,
    wait_queued,
)

EXTRACTS = 8
MODELS = 6
CHECKS = 15


def configure(project: Project, **settings: object) -> Project:
    """Add settings under jobs.etl in sluice.yml and reopen the project."""
    path = project.root / "sluice.yml"
    lines = "".join(f"    {key}: {value}\n" for key, value in settings.items())
    text = path.read_text().replace(
        "    timeout_minutes: 30\n", f"    timeout_minutes: 30\n{lines}"
    )
    path.write_text(text)
    return Project.open(project.root)


def by_task(project: Project, run_id: str) -> dict[str, TaskRecord]:
    return {t.task: t for t in project.jobs.tasks("etl", run_id)}


def published(project: Project) -> dict[str, str]:
    """Published table -> the run whose publication record names it last."""
    return {str(t): p.run_id for t, p in project.publications.current().items()}


def published_files(project: Project, table: str) -> tuple[str, ...]:
    database, _, name = table.partition(".")
    return project.publications.current()[TableName(database, name)].files


def test_graph_of_the_example_project_as_text_dot_and_mermaid(project: Project) -> None:
    graph = project.jobs.graph("etl")
    assert len(graph.dependencies) == EXTRACTS + MODELS + CHECKS
    text = graph.render("text").splitlines()
    fact = next(line for line in text if line.startswith("transform:fact_orders "))
    assert fact.split("after ")[1] == (
        "extract:orderdetails, extract:orders, transform:dim_customers, "
        "transform:dim_employees, transform:dim_products"
    )
    assert text[-1].startswith("publish ")
    order = [line.split()[0] for line in text]
    assert order.index("transform:dim_locations") < order.index("transform:dim_customers")
    assert order.index("transform:dim_customers") < order.index("transform:fact_orders")
    dot = graph.render("dot")
    assert dot.startswith("digraph job {")
    assert '  "transform:dim_customers" -> "transform:fact_orders";' in dot.splitlines()
    assert (
        dot.count('" -> "') == sum(map(len, graph.dependencies.values())) + text[-1].count(",") + 1
    )
    shown = sluice_cli("job", "graph", "etl", "--format", "mermaid", "--project", project.root)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    assert "  transform_dim_customers --> transform_fact_orders" in lines
    assert '  publish["publish"]' in lines
    wrong = sluice_cli("job", "graph", "etl", "--format", "svg", "--project", project.root)
    assert wrong.returncode == 2
    assert "Unknown graph format 'svg'" in wrong.stderr


def test_every_task_state_is_recorded_and_shown(project: Project) -> None:
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    tasks = by_task(project, run.run_id)
    assert len(tasks) == EXTRACTS + MODELS + CHECKS
    assert {t.state for t in tasks.values()} == {TaskState.SUCCEEDED}
    assert {t.attempts for t in tasks.values()} == {1}
    assert all(t.ended_at and t.started_at and t.ended_at >= t.started_at for t in tasks.values())
    fact = tasks["transform:fact_orders"]
    assert fact.output is not None and fact.output["rows"] == source_totals(project)[0]
    assert tasks["extract:customers"].ended_at <= tasks["transform:dim_customers"].started_at  # type: ignore[operator]
    shown = sluice_cli("job", "status", "etl", run.run_id, "--tasks", "--project", project.root)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == "SUCCEEDED"
    rows = [line for line in shown.stdout.splitlines() if "transform:fact_orders" in line]
    assert len(rows) == 1 and "SUCCEEDED" in rows[0]
    checks = [line for line in shown.stdout.splitlines() if "│ check:" in line]
    assert len(checks) == CHECKS
    assert sum("0 bad rows (all rows)" in line for line in checks) == CHECKS
    assert any("fact_orders unique(orderNumber, orderLineNumber)" in line for line in checks)


def test_from_reruns_a_task_and_what_follows_and_publishes_one_consistent_set(
    project: Project,
) -> None:
    first = project.run_job("etl")
    customers = published_files(project, "raw.customers")
    mtime = os.stat(customers[0]).st_mtime_ns
    drop_orders(project, 10)
    rerun = project.jobs.start("etl", wait=True, start_from=["orders", "extract:orderdetails"])
    assert rerun.state == "SUCCEEDED", rerun.error
    assert lake_totals(project) == source_totals(project)
    now = published(project)
    rerun_tables = {"raw.orders", "raw.orderdetails", "gold.dim_date", "gold.fact_orders"}
    assert {t for t, r in now.items() if r == rerun.run_id} == set(now)  # one record names all
    assert len(now) == EXTRACTS + MODELS
    for table, files in ((t, published_files(project, t)) for t in now):
        owner = Path(files[0]).stem
        assert owner == (rerun.run_id if table in rerun_tables else first.run_id), table
    assert published_files(project, "raw.customers") == customers
    assert os.stat(customers[0]).st_mtime_ns == mtime
    tasks = by_task(project, rerun.run_id)
    assert tasks["extract:customers"].state == TaskState.SKIPPED
    assert tasks["extract:customers"].attempts == 0
    assert f"published snapshot of run {first.run_id}" in (tasks["extract:customers"].detail or "")
    assert tasks["transform:fact_orders"].state == TaskState.SUCCEEDED
    assert tasks["transform:dim_customers"].state == TaskState.SKIPPED
    ran = {n for n, t in tasks.items() if t.state == TaskState.SUCCEEDED}
    assert {n for n in ran if not n.startswith("check:")} == {
        "extract:orders",
        "extract:orderdetails",
        "transform:dim_date",
        "transform:fact_orders",
    }
    assert rerun.report["reused"] and "raw.customers" in rerun.report["reused"]


def test_only_and_exclude_validate_names_and_inputs(project: Project) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'fact_orders'"):
        project.jobs.start("etl", only=["fact_order"])
    with pytest.raises(ConfigError, match="never been published"):
        project.jobs.start("etl", only=["fact_orders"])
    unknown = sluice_cli(
        "job", "start", "etl", "--exclude", "extract:paymnts", "--project", project.root
    )
    assert unknown.returncode == 2
    assert "Did you mean 'extract:payments'" in unknown.stderr
    first = project.run_job("etl")
    run = project.jobs.start("etl", wait=True, exclude=["payments"])
    assert run.state == "SUCCEEDED", run.error
    assert published(project)["raw.payments"] == run.run_id
    assert Path(published_files(project, "raw.payments")[0]).stem == first.run_id
    assert Path(published_files(project, "raw.orders")[0]).stem == run.run_id
    only = project.jobs.start("etl", wait=True, only=["dim_products"])
    assert only.state == "SUCCEEDED", only.error
    tasks = by_task(project, only.run_id)
    assert sorted(n for n, t in tasks.items() if t.state == TaskState.SUCCEEDED) == [
        "check:10",
        "check:11",
        "check:4",
        "transform:dim_products",
    ]
    assert lake_totals(project) == source_totals(project)


def test_a_task_past_its_timeout_is_interrupted_and_fails_the_run(project: Project) -> None:
    first = project.run_job("etl")
    project = configure(project, task_timeout_minutes=0.02)
    (project.root / "models" / "zz_slow.sql").write_text(SLOW_MODEL)
    run = project.run_job("etl")
    assert run.state == "FAILED"
    assert "Task transform:zz_slow ran longer than its timeout of 0.02 minutes" in (run.error or "")
    assert run.duration_seconds < 30
    slow = by_task(project, run.run_id)["transform:zz_slow"]
    assert slow.state == TaskState.FAILED and slow.attempts == 1
    assert slow.duration_seconds is not None and 1.0 <= slow.duration_seconds < 20
    assert published_run(project) == {first.run_id}


def test_transient_task_errors_are_retried_and_a_wrong_sql_is_not(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project.root / "sluice.yml"
    path.write_text(
        path.read_text().replace(
            "    timeout_minutes: 30\n",
            "    timeout_minutes: 30\n    retry: {initial_seconds: 0.05, max_seconds: 0.1}\n",
        )
    )
    project = Project.open(project.root)
    monkeypatch.setenv(failpoints.FAULTS_VAR, "extract:orders=2")
    monkeypatch.setattr(failpoints, "_faults_seen", {})
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    tasks = by_task(project, run.run_id)
    assert tasks["extract:orders"].attempts == 3
    assert tasks["extract:orders"].state == TaskState.SUCCEEDED
    assert tasks["extract:customers"].attempts == 1
    assert lake_totals(project) == source_totals(project)

    (project.root / "models" / "zz_wrong.sql").write_text(
        "SELECT no_such_column FROM gold.dim_date\n"
    )
    failed = project.run_job("etl")
    assert failed.state == "FAILED"
    assert "Model zz_wrong" in (failed.error or "")
    wrong = by_task(project, failed.run_id)["transform:zz_wrong"]
    assert wrong.state == TaskState.FAILED and wrong.attempts == 1
    assert "no_such_column" in (wrong.error or "")
    assert published_run(project) == {run.run_id}


def test_retry_resumes_a_failed_run_without_redoing_finished_tasks(project: Project) -> None:
    (project.root / "models" / "zz_late.sql").write_text(
        "SELECT count(*) AS n, no_such_column FROM gold.fact_orders\n"
    )
    failed = project.run_job("etl")
    assert failed.state == "FAILED"
    before = by_task(project, failed.run_id)
    finished = {n for n, t in before.items() if t.state == TaskState.SUCCEEDED}
    assert {f"transform:{m}" for m in ("fact_orders", "dim_customers")} <= finished
    assert before["transform:zz_late"].state == TaskState.FAILED
    orders_file = before["extract:orders"].output["files"][0]  # type: ignore[index]
    mtime = os.stat(orders_file).st_mtime_ns
    assert Path(orders_file).stem == failed.run_id

    (project.root / "models" / "zz_late.sql").write_text(
        "SELECT count(*) AS n FROM gold.fact_orders\n"
    )
    shown = sluice_cli(
        "job", "retry", "etl", failed.run_id, "--wait", "-q", "--project", project.root
    )
    assert shown.returncode == 0, shown.stderr
    resumed = project.jobs.runs("etl")[0]
    assert resumed.state == "SUCCEEDED" and resumed.retry_of == failed.run_id
    after = by_task(project, resumed.run_id)
    for name in finished:
        assert after[name].state == TaskState.SKIPPED, name
        assert after[name].attempts == 0, name
        assert f"output of run {failed.run_id}" in (after[name].detail or ""), name
    assert after["transform:zz_late"].state == TaskState.SUCCEEDED
    assert after["transform:zz_late"].attempts == 1
    assert os.stat(orders_file).st_mtime_ns == mtime
    assert published_files(project, "raw.orders") == (orders_file,)
    assert set(published(project).values()) == {resumed.run_id}
    assert lake_totals(project) == source_totals(project)
    n = project.query("SELECT n FROM zz_late").table.to_pylist()[0]["n"]
    assert n == source_totals(project)[0]

    with pytest.raises(JobError, match="only a FAILED, TIMEOUT or STOPPED run"):
        project.jobs.retry("etl", resumed.run_id)
    with pytest.raises(JobError, match="published after run"):
        project.jobs.retry("etl", failed.run_id)


def test_a_second_start_is_queued_when_the_job_says_so(project: Project) -> None:
    project = configure(project, when_busy="queue")
    slow = project.root / "models" / "zz_slow.sql"
    slow.write_text(SLOW_MODEL)
    first = project.jobs.start("etl")
    wait_for(project, first.run_id, stage="transform")
    queued = project.jobs.start("etl")
    wait_queued(project, queued.run_id)
    shown = sluice_cli("job", "status", "etl", queued.run_id, "--project", project.root)
    assert shown.stdout.strip() == "STARTING (queued)"
    slow.unlink()
    project.jobs.stop("etl", first.run_id)
    assert wait_for(project, first.run_id, final=True).state == "STOPPED"
    done = wait_for(project, queued.run_id, final=True, timeout=120)
    assert done.state == "SUCCEEDED", done.error
    assert published_run(project) == {queued.run_id}


def test_retry_after_a_kill_reuses_exactly_the_tasks_whose_commit_was_recorded(
    project: Project,
) -> None:
    killed = run_killed_at(project, "commit:gold.fact_orders")
    assert killed.state == "FAILED"
    before = by_task(project, killed.run_id)
    assert TaskState.RUNNING not in {t.state for t in before.values()}
    committed = {n for n, t in before.items() if t.output is not None and "snapshot_id" in t.output}
    # Commits run in order, and the kill comes right after fact_orders' commit was recorded:
    # what it read was committed before it (tasks nothing waits on, like payments, may not be).
    upstream = {"extract:orders", "extract:orderdetails", "transform:dim_customers"}
    assert upstream | {"transform:fact_orders"} <= committed
    mtimes = {n: os.stat(before[n].output["files"][0]).st_mtime_ns for n in committed}  # type: ignore[index]
    resumed = project.jobs.retry("etl", killed.run_id[:10], wait=True)
    assert resumed.state == "SUCCEEDED", resumed.error
    after = by_task(project, resumed.run_id)
    reused = {n for n, t in after.items() if t.state == TaskState.SKIPPED}
    assert {n for n in reused if not n.startswith("check:")} == committed
    assert all(after[n].attempts == 0 for n in reused)
    assert all(after[n].attempts == 1 for n in set(after) - reused)
    for name, mtime in mtimes.items():
        assert os.stat(before[name].output["files"][0]).st_mtime_ns == mtime  # type: ignore[index]
    assert lake_totals(project) == source_totals(project)
    assert published_run(project) == {resumed.run_id}

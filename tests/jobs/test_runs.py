"""Job runs as in Glue: ids, states, legal transitions, stop, timeout, history, logs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sluice.core import RunState
from sluice.errors import JobError, NotFoundError
from sluice.jobs.store import LEGAL_TRANSITIONS, RunStore
from sluice.project import Project
from tests.conftest import sluice_cli
from tests.jobs.helpers import SLOW_MODEL, lake_totals, published_run, source_totals, wait_for


def test_every_illegal_transition_is_refused_and_leaves_the_state(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.db")
    for start in RunState:
        for target in RunState:
            run = store.create("etl", timeout_minutes=1, log_dir=tmp_path)
            path = {
                RunState.STARTING: [],
                RunState.RUNNING: [RunState.RUNNING],
                RunState.STOPPING: [RunState.RUNNING, RunState.STOPPING],
                RunState.STOPPED: [RunState.STOPPED],
                RunState.SUCCEEDED: [RunState.RUNNING, RunState.SUCCEEDED],
                RunState.FAILED: [RunState.FAILED],
                RunState.TIMEOUT: [RunState.RUNNING, RunState.TIMEOUT],
            }[start]
            for step in path:
                store.transition(run.run_id, step)
            assert store.get("etl", run.run_id).state == start
            if target in LEGAL_TRANSITIONS[start]:
                store.transition(run.run_id, target)
                assert store.get("etl", run.run_id).state == target
            else:
                with pytest.raises(JobError):
                    store.transition(run.run_id, target)
                assert store.get("etl", run.run_id).state == start
    final = [s for s in RunState if s.is_final]
    assert all(not LEGAL_TRANSITIONS[s] for s in final)


def test_transitions_are_recorded_as_events_and_end_time_set(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.db")
    run = store.create("etl", timeout_minutes=1, log_dir=tmp_path)
    store.transition(run.run_id, RunState.RUNNING)
    store.transition(run.run_id, RunState.FAILED, error="boom")
    events = [(e[1], e[2]) for e in store.events(run.run_id)]
    assert events == [(None, "STARTING"), ("STARTING", "RUNNING"), ("RUNNING", "FAILED")]
    done = store.get("etl", run.run_id)
    assert done.error == "boom"
    assert done.ended_at is not None


def test_store_schema_is_migrated_once(tmp_path: Path) -> None:
    RunStore(tmp_path / "runs.db").create("etl", timeout_minutes=1, log_dir=tmp_path)
    reopened = RunStore(tmp_path / "runs.db")
    assert len(reopened.runs("etl")) == 1


def test_start_returns_a_glue_style_run_id_and_status_follows_it(project: Project) -> None:
    started = sluice_cli("job", "start", "etl", "--project", project.root)
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    assert re.fullmatch(r"jr_[0-9a-f]{64}", run_id)
    final = wait_for(project, run_id, final=True)
    assert final.state == "SUCCEEDED", final.error
    status = sluice_cli("job", "status", "etl", run_id, "--project", project.root)
    assert status.stdout.strip() == "SUCCEEDED"
    assert lake_totals(project) == source_totals(project)

    runs = sluice_cli("job", "runs", "etl", "--project", project.root)
    assert run_id[:15] in runs.stdout
    assert "SUCCEEDED" in runs.stdout
    assert "3,864" in runs.stdout
    logs = sluice_cli("job", "logs", "etl", run_id[:12], "--project", project.root)
    assert "fact_orders done (2,996 rows)" in logs.stdout
    assert "SUCCEEDED" in logs.stdout


def test_stop_ends_a_run_as_stopped_with_nothing_published(project: Project) -> None:
    first = project.run_job("etl")
    (project.root / "models" / "zz_slow.sql").write_text(SLOW_MODEL)
    started = project.jobs.start("etl")
    wait_for(project, started.run_id, stage="transform")
    stopped = sluice_cli("job", "stop", "etl", started.run_id, "--project", project.root)
    # The state right after asking: STOPPING, or STOPPED when the run let go that fast.
    assert stopped.stdout.strip() in {"STOPPING", "STOPPED"}, stopped.stderr
    final = wait_for(project, started.run_id, final=True, timeout=30)
    assert final.state == "STOPPED"
    assert "stopped on request" in (final.error or "")
    assert published_run(project) == {first.run_id}
    with pytest.raises(JobError, match="already ended"):
        project.jobs.stop("etl", started.run_id)


def test_a_run_past_its_timeout_ends_as_timeout_and_publishes_nothing(project: Project) -> None:
    first = project.run_job("etl")
    (project.root / "models" / "zz_slow.sql").write_text(SLOW_MODEL)
    run = project.run_job("etl", timeout_minutes=0.03)
    assert run.state == "TIMEOUT"
    assert "timeout of 0.03 minutes" in (run.error or "")
    assert run.duration_seconds < 30
    assert published_run(project) == {first.run_id}


def test_a_second_start_while_one_runs_is_refused(project: Project) -> None:
    (project.root / "models" / "zz_slow.sql").write_text(SLOW_MODEL)
    started = project.jobs.start("etl")
    try:
        with pytest.raises(JobError, match="already has run"):
            project.jobs.start("etl")
    finally:
        project.jobs.stop("etl", started.run_id)
        assert wait_for(project, started.run_id, final=True).state == "STOPPED"


def test_unknown_job_and_run_are_not_found(project: Project) -> None:
    with pytest.raises(NotFoundError, match="Did you mean 'etl'"):
        project.jobs.start("etl2")
    with pytest.raises(NotFoundError, match="does not exist"):
        project.jobs.get("etl", "jr_0000000000")

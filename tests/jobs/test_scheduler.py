"""The scheduler over a simulated clock, starting real job runs; and as a real process."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sluice.errors import ConfigError, LockedError
from sluice.jobs.scheduler import MAX_SLOTS_PER_TICK, Scheduler
from sluice.jobs.slots import HandledSlot, SlotOutcome
from sluice.lock import ProcessLock
from sluice.project import Project
from tests.conftest import sluice_cli
from tests.jobs.helpers import SLOW_MODEL, wait_for

T0 = datetime(2026, 1, 5, 9, 7, tzinfo=UTC)


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return T0.replace(hour=hour, minute=minute, second=second)


class Clock:
    """A simulated wall clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def write_schedule(project: Project, schedule: str) -> Path:
    """Set ``jobs.etl.schedule`` (flow-style YAML) in the project file."""
    path = project.root / "sluice.yml"
    text = path.read_text(encoding="utf-8")
    anchor = "    timeout_minutes: 30\n"
    assert anchor in text
    path.write_text(text.replace(anchor, f"{anchor}    schedule: {schedule}\n"), encoding="utf-8")
    return path


def scheduled(project: Project, schedule: str) -> Project:
    """The project with ``jobs.etl.schedule`` set, reopened."""
    write_schedule(project, schedule)
    return Project.open(project.root)


def first_started(project: Project, schedule: str) -> tuple[Project, Clock, Scheduler]:
    """The project with a schedule, and a scheduler that first started at ``T0``."""
    proj = scheduled(project, schedule)
    clock = Clock(T0)
    scheduler = proj.scheduler(now=clock)
    assert scheduler.tick() == []
    return proj, clock, scheduler


def run_ids(project: Project) -> list[str]:
    return [r.run_id for r in project.jobs.runs("etl")]


def outcomes(handled: list[HandledSlot]) -> list[tuple[datetime, SlotOutcome]]:
    return [(h.slot, h.outcome) for h in handled]


def test_a_due_slot_starts_one_run_and_a_restart_does_not_run_it_again(
    project: Project,
) -> None:
    proj, clock, scheduler = first_started(project, '{cron: "*/15 * * * *"}')
    clock.now = at(9, 14, 59)
    assert scheduler.tick() == []
    assert run_ids(proj) == []

    clock.now = at(9, 15, 5)
    [handled] = scheduler.tick()
    assert (handled.slot, handled.outcome) == (at(9, 15), SlotOutcome.STARTED)
    assert handled.run_id is not None
    assert run_ids(proj) == [handled.run_id]
    assert wait_for(proj, handled.run_id, final=True).state == "SUCCEEDED"
    listed = sluice_cli("job", "runs", "etl", "--project", proj.root)
    assert handled.run_id[:15] in listed.stdout

    restarted = Project.open(proj.root).scheduler(now=clock)
    assert restarted.tick() == []
    clock.now = at(9, 29, 59)
    assert restarted.tick() == []
    assert run_ids(proj) == [handled.run_id]

    clock.now = at(9, 30)
    [second] = restarted.tick()
    assert (second.slot, second.outcome) == (at(9, 30), SlotOutcome.STARTED)
    assert run_ids(proj) == [second.run_id, handled.run_id]
    assert wait_for(proj, str(second.run_id), final=True).state == "SUCCEEDED"
    assert [s.slot for s in restarted.slots.slots("etl")] == [at(9, 30), at(9, 15)]


def test_missed_slots_under_run_once_give_one_catch_up_run(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    proj, clock, _ = first_started(project, '{cron: "*/15 * * * *", missed: run_once}')

    clock.now = at(10, 20)
    with caplog.at_level(logging.INFO, logger="sluice.scheduler"):
        handled = proj.scheduler(now=clock).tick()
    missed = [at(9, 15), at(9, 30), at(9, 45), at(10, 0)]
    assert outcomes(handled) == [
        *((s, SlotOutcome.COALESCED) for s in missed),
        (at(10, 15), SlotOutcome.STARTED),
    ]
    [run_id] = run_ids(proj)
    recorded = {s.slot: s for s in proj.scheduler(now=clock).slots.slots("etl")}
    assert {s.run_id for s in recorded.values()} == {run_id}
    assert {recorded[s].into_slot for s in missed} == {at(10, 15)}
    assert recorded[at(10, 15)].reason == "catch-up run for 5 missed slot(s)"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("4 slot(s) from 2026-01-05 09:15:00 UTC" in w for w in warnings), warnings
    assert wait_for(proj, run_id, final=True).state == "SUCCEEDED"

    assert proj.scheduler(now=clock).tick() == []
    assert run_ids(proj) == [run_id]


def test_missed_slots_under_skip_are_recorded_with_a_warning_and_not_run(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    schedule = '{cron: "*/15 * * * *", timezone: Europe/Paris, missed: skip}'
    proj, clock, _ = first_started(project, schedule)

    clock.now = at(10, 20)
    with caplog.at_level(logging.WARNING, logger="sluice.scheduler"):
        handled = Project.open(proj.root).scheduler(now=clock).tick()
    slots = [at(9, 15), at(9, 30), at(9, 45), at(10, 0), at(10, 15)]
    assert outcomes(handled) == [(s, SlotOutcome.SKIPPED) for s in slots]
    assert all("missed: skip" in (h.reason or "") for h in handled)
    assert run_ids(proj) == []
    [warning] = [r.getMessage() for r in caplog.records]
    assert "5 slot(s) from 2026-01-05 09:15:00 UTC to 2026-01-05 10:15:00 UTC" in warning
    assert "skipped" in warning

    listed = sluice_cli("schedule", "list", "--project", proj.root)
    assert listed.returncode == 0, listed.stderr
    cells = [line.split("│")[1:-1] for line in listed.stdout.splitlines() if "│" in line]
    columns = [" ".join(c[i].strip() for c in cells).split() for i in range(4)]
    assert columns[0] == ["etl"]
    assert columns[1] == ["*/15", "*", "*", "*", "*", "Europe/Paris"]
    next_runs = " ".join(columns[2])
    assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:(?:00|15|30|45)\b", next_runs)) == 3
    assert " ".join(columns[3]).startswith("2026-01-05 11:15 SKIPPED: missed: no scheduler")

    clock.now = at(10, 30, 10)
    [on_time] = proj.scheduler(now=clock).tick()
    assert (on_time.slot, on_time.outcome) == (at(10, 30), SlotOutcome.STARTED)
    assert run_ids(proj) == [on_time.run_id]
    assert wait_for(proj, str(on_time.run_id), final=True).state == "SUCCEEDED"


def test_a_slot_that_comes_while_a_run_is_active_is_skipped_with_the_reason(
    project: Project,
) -> None:
    proj, clock, scheduler = first_started(project, '{cron: "*/15 * * * *"}')
    (proj.root / "models" / "zz_slow.sql").write_text(SLOW_MODEL)
    busy = proj.jobs.start("etl")
    try:
        clock.now = at(9, 15, 1)
        [handled] = scheduler.tick()
        assert handled.outcome == SlotOutcome.SKIPPED
        assert handled.run_id is None
        assert busy.run_id in (handled.reason or "")
        assert "was still" in (handled.reason or "")
        assert run_ids(proj) == [busy.run_id]
        assert proj.scheduler(now=clock).slots.last("etl") == handled
    finally:
        proj.jobs.stop("etl", busy.run_id)
        assert wait_for(proj, busy.run_id, final=True).state == "STOPPED"


def test_a_slot_claimed_before_a_crash_is_never_started_twice(project: Project) -> None:
    proj, clock, crashed = first_started(project, '{cron: "*/15 * * * *"}')
    crashed.slots.claim([HandledSlot("etl", at(9, 15), SlotOutcome.PENDING)])
    started = proj.jobs.start("etl")  # the crash came after the start, before the record
    crashed.slots.claim([HandledSlot("etl", at(9, 30), SlotOutcome.PENDING)])

    clock.now = at(9, 30, 20)
    handled = Project.open(proj.root).scheduler(now=clock).tick()
    assert [(h.slot, h.outcome, h.run_id) for h in handled] == [
        (at(9, 15), SlotOutcome.STARTED, started.run_id),
        (at(9, 30), SlotOutcome.SKIPPED, None),
    ]
    assert "stopped after claiming" in (handled[1].reason or "")
    assert run_ids(proj) == [started.run_id]
    assert wait_for(proj, started.run_id, final=True).state == "SUCCEEDED"


def test_bad_cron_or_time_zone_is_a_config_error_naming_key_and_line(project: Project) -> None:
    path = write_schedule(project, '{cron: "61 * * * *"}')
    line = next(
        number
        for number, text in enumerate(path.read_text().splitlines(), 1)
        if "schedule:" in text
    )
    with pytest.raises(ConfigError) as caught:
        Project.open(project.root)
    message = str(caught.value)
    assert f"sluice.yml, line {line}: 'jobs.etl.schedule.cron'" in message
    assert "not a cron expression" in message
    for command in (["schedule", "list"], ["scheduler"]):
        result = sluice_cli(*command, "--project", project.root)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [f"Error: {message}"]
    assert not (project.state_dir / "scheduler.lock").exists()

    path.write_text(path.read_text().replace('"61 * * * *"', '"0 3 * * *", timezone: Mars/Base'))
    with pytest.raises(ConfigError, match=rf"line {line}: 'jobs.etl.schedule.timezone' is not a"):
        Project.open(project.root)


def test_the_scheduler_process_starts_runs_holds_its_lock_and_stops_on_signals(
    project: Project,
) -> None:
    proj = scheduled(project, '{cron: "* * * * * */2"}')
    command = [sys.executable, "-m", "sluice", "scheduler", "--tick-seconds", "0.2"]
    first = subprocess.Popen(
        [*command, "--project", str(proj.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout is not None
        assert "Scheduler running" in first.stdout.readline()
        second = sluice_cli("scheduler", "--project", proj.root, timeout=30)
        assert second.returncode == 1
        assert second.stderr.splitlines() == [
            f"Error: Another scheduler for {proj.root} is running (pid {first.pid}). "
            "Stop it first; one scheduler per project."
        ]
        deadline = time.monotonic() + 15
        while not run_ids(proj) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        first.send_signal(signal.SIGTERM)
        _, log = first.communicate(timeout=30)
    assert first.returncode == 0, log
    started = [s for s in proj.scheduler().slots.slots("etl") if s.outcome == "STARTED"]
    assert started, log
    assert sorted(run_ids(proj)) == sorted(str(s.run_id) for s in started)
    assert f"started run {started[-1].run_id}" in log
    assert "Got SIGTERM; stopping." in log
    for run_id in run_ids(proj):
        assert wait_for(proj, run_id, final=True).state == "SUCCEEDED"

    yearly = (proj.root / "sluice.yml").read_text().replace("* * * * * */2", "0 0 1 1 *")
    (proj.root / "sluice.yml").write_text(yearly)
    interrupted = subprocess.Popen(
        [*command, "--project", str(proj.root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert interrupted.stdout is not None
    assert "Scheduler running" in interrupted.stdout.readline()
    interrupted.send_signal(signal.SIGINT)
    _, log = interrupted.communicate(timeout=30)
    assert interrupted.returncode == 0, log
    assert "Got SIGINT; stopping." in log

    killed = subprocess.Popen(
        [*command, "--project", str(proj.root)], stdout=subprocess.PIPE, text=True
    )
    assert killed.stdout is not None
    assert "Scheduler running" in killed.stdout.readline()
    killed.kill()
    killed.communicate(timeout=30)
    lock = ProcessLock(proj.state_dir / "scheduler.lock", what="scheduler")
    assert lock.holder() == killed.pid
    with lock:
        assert lock.holder() == os.getpid()
        with pytest.raises(LockedError, match=r"pid \d+"):
            ProcessLock(proj.state_dir / "scheduler.lock", what="scheduler").__enter__()
    assert sorted(run_ids(proj)) == sorted(str(s.run_id) for s in started)


def test_a_month_without_a_scheduler_under_skip_records_every_daily_slot(
    project: Project,
) -> None:
    proj, clock, _ = first_started(project, '{cron: "0 3 * * *", missed: skip}')
    clock.now = T0 + timedelta(days=30)
    handled = proj.scheduler(now=clock).tick()
    assert len(handled) == 30
    assert {h.outcome for h in handled} == {SlotOutcome.SKIPPED}
    assert run_ids(proj) == []


def test_without_schedules_the_scheduler_refuses_to_start_and_list_says_so(
    project: Project,
) -> None:
    result = sluice_cli("scheduler", "--project", project.root)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "Error: No job in sluice.yml has a schedule; there is nothing to run. "
        "Add one, e.g. jobs.etl.schedule: {cron: '*/15 * * * *'}."
    ]
    assert not (project.state_dir / "scheduler.lock").exists()
    listed = sluice_cli("schedule", "list", "--project", project.root)
    assert listed.returncode == 0
    assert listed.stdout.startswith("No job has a schedule")


def test_a_year_without_a_scheduler_records_the_latest_slots_and_warns_of_the_rest(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    proj, clock, _ = first_started(project, '{cron: "*/5 * * * *", missed: skip}')
    clock.now = T0 + timedelta(days=365)
    with caplog.at_level(logging.WARNING, logger="sluice.scheduler"):
        handled = proj.scheduler(now=clock).tick()
    assert len(handled) == MAX_SLOTS_PER_TICK
    assert handled[-1].slot == clock.now.replace(minute=5)
    assert handled[0].slot == handled[-1].slot - timedelta(minutes=5 * (MAX_SLOTS_PER_TICK - 1))
    assert run_ids(proj) == []
    first, second = [r.getMessage() for r in caplog.records]
    assert f"more than {MAX_SLOTS_PER_TICK} slots were missed" in first
    assert f"{MAX_SLOTS_PER_TICK} slot(s) from" in second

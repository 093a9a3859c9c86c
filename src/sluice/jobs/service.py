"""Start, watch and stop job runs, as Glue's start-job-run / get-job-run / batch-stop do."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psutil

from sluice.core import RunState
from sluice.errors import JobError, NotFoundError, did_you_mean
from sluice.jobs.runner import RunEnvironment, execute_run, process_identity
from sluice.jobs.store import JobRun, utcnow
from sluice.observe.progress import Progress

STARTING_GRACE = timedelta(seconds=60)
_children: list[subprocess.Popen[bytes]] = []


def _collect_children() -> None:
    """Reap worker processes this process started that have ended (no zombies left)."""
    _children[:] = [child for child in _children if child.poll() is None]


class JobService:
    """Job runs of one project."""

    def __init__(self, env: RunEnvironment, *, logs_dir: Path) -> None:
        self.env = env
        self.logs_dir = logs_dir

    def _job(self, name: str) -> None:
        jobs = self.env.config.jobs
        if name not in jobs:
            raise NotFoundError(
                f"Job '{name}' is not declared in sluice.yml.{did_you_mean(name, jobs)}",
                hint=f"Jobs: {', '.join(sorted(jobs)) or 'none'}.",
            )

    def start(
        self,
        name: str,
        *,
        wait: bool = False,
        progress: Progress | None = None,
        timeout_minutes: float | None = None,
    ) -> JobRun:
        """Start a run. With ``wait`` it runs here and returns the final record; otherwise a
        detached worker process runs it and the STARTING record returns at once."""
        self._job(name)
        self.reap(name)
        busy = self.env.store.active(name)
        if busy:
            raise JobError(
                f"Job {name} already has run {busy[0].run_id} {busy[0].state}; one run at a time.",
                hint=f"Wait for it ('sluice job status {name} {busy[0].run_id}') or stop it "
                f"('sluice job stop {name} {busy[0].run_id}').",
            )
        job = self.env.config.jobs[name]
        timeout = timeout_minutes or job.timeout_minutes
        if timeout <= 0:
            raise JobError(f"Timeout must be positive, got {timeout:g} minutes.")
        log_dir = self.logs_dir / name
        log_dir.mkdir(parents=True, exist_ok=True)
        run = self.env.store.create(name, timeout_minutes=timeout, log_dir=log_dir)
        if wait:
            return execute_run(self.env, run, progress=progress)
        self._spawn(run)
        return self.env.store.get(name, run.run_id)

    def _spawn(self, run: JobRun) -> None:
        with open(run.log_path, "ab") as log_file:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sluice.jobs.worker",
                    str(self.env.root),
                    run.job,
                    run.run_id,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
                close_fds=True,
            )
        _children.append(process)
        with contextlib.suppress(psutil.NoSuchProcess):
            self.env.store.set_process(run.run_id, process.pid, process_identity(process.pid))

    def execute(self, name: str, run_id: str) -> JobRun:
        """Run an existing STARTING run in this process (what the worker does)."""
        return execute_run(self.env, self.env.store.get(name, run_id))

    def get(self, name: str, run_id: str) -> JobRun:
        """A run's current record (a run whose process died is marked FAILED first)."""
        self._job(name)
        self.reap(name)
        return self.env.store.get(name, run_id)

    def runs(self, name: str, *, limit: int = 50) -> list[JobRun]:
        """A job's runs, newest first."""
        self._job(name)
        self.reap(name)
        return self.env.store.runs(name, limit=limit)

    def logs(self, name: str, run_id: str) -> str:
        """The run's log text."""
        run = self.get(name, run_id)
        path = Path(run.log_path)
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    def stop(self, name: str, run_id: str) -> JobRun:
        """Ask a run to stop: STOPPING now, STOPPED once its process has let go."""
        run = self.get(name, run_id)
        if run.state.is_final:
            raise JobError(f"Run {run.run_id} already ended: {run.state}.")
        previous = run.state
        if run.state is not RunState.STOPPING:
            previous = self.env.store.transition(
                run.run_id, RunState.STOPPING, message="stop requested"
            )
        if previous is RunState.STARTING:
            return self.env.store.get(name, run.run_id)
        if _alive(run):
            assert run.pid is not None
            os.kill(run.pid, signal.SIGTERM)
        else:
            self.env.store.transition(
                run.run_id, RunState.STOPPED, message="no process was running it"
            )
        return self.env.store.get(name, run.run_id)

    def reap(self, name: str | None = None) -> None:
        """Mark runs whose process is gone: SUCCEEDED if they had published, else FAILED."""
        _collect_children()
        for run in self.env.store.active(name):
            if run.pid is None:
                if utcnow() - run.started_at < STARTING_GRACE:
                    continue
            elif _alive(run):
                continue
            if self.env.publications.is_published(run.run_id):
                self.env.store.transition(
                    run.run_id, RunState.SUCCEEDED, message="process ended after publishing"
                )
                continue
            if run.state is RunState.STOPPING:
                self.env.store.transition(run.run_id, RunState.STOPPED, message="process ended")
                continue
            self.env.store.transition(
                run.run_id,
                RunState.FAILED,
                error=f"The process running it (pid {run.pid}) died before the run finished "
                "(killed or crashed); nothing was published. Start a new run.",
            )


def _alive(run: JobRun) -> bool:
    if run.pid is None:
        return False
    try:
        process = psutil.Process(run.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return run.pid_started is None or abs(process.create_time() - run.pid_started) < 1.0
    except psutil.NoSuchProcess:
        return False

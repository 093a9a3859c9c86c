"""Start, watch and stop job runs, as Glue's start-job-run / get-job-run / batch-stop do."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psutil

from sluice.core import RunState, TableName
from sluice.errors import ConfigError, JobError, NotFoundError, did_you_mean
from sluice.jobs.dag import TaskGraph, required_inputs
from sluice.jobs.runner import RunEnvironment, execute_run, process_identity
from sluice.jobs.store import JobRun, TaskRecord, utcnow
from sluice.lake.catalog_process import CatalogCalls
from sluice.observe.progress import Progress
from sluice.sources.base import open_source

STARTING_GRACE = timedelta(seconds=60)
QUEUE_POLL_SECONDS = 0.5
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
        start_from: list[str] | None = None,
        only: list[str] | None = None,
        exclude: list[str] | None = None,
        catalog: CatalogCalls | None = None,
    ) -> JobRun:
        """Start a run. With ``wait`` it runs here and returns the final record; otherwise a
        detached worker process runs it and the STARTING record returns at once.

        ``start_from`` reruns those tasks and every task after them, ``only`` runs just those
        tasks (and the checks on their tables), ``exclude`` leaves tasks out; the tasks not
        run keep their published tables, and the run publishes them with the new ones.
        ``catalog`` makes a waited-for run's catalog writes (default: in this process)."""
        selection = {
            key: list(values)
            for key, values in (("from", start_from), ("only", only), ("exclude", exclude))
            if values
        }
        self._job(name)
        if selection:
            self._check_selection(name, selection)
        return self._launch(
            name,
            wait=wait,
            progress=progress,
            timeout_minutes=timeout_minutes,
            selection=selection,
            catalog=catalog,
        )

    def retry(
        self,
        name: str,
        run_id: str,
        *,
        wait: bool = False,
        progress: Progress | None = None,
        catalog: CatalogCalls | None = None,
    ) -> JobRun:
        """Resume a failed run in a new run: tasks it finished (their tables committed) are
        reused, the others run (Glue's start-job-run --job-run-id)."""
        previous = self.get(name, run_id)
        if previous.state not in (RunState.FAILED, RunState.TIMEOUT, RunState.STOPPED):
            raise JobError(
                f"Run {previous.run_id} is {previous.state}; only a FAILED, TIMEOUT or STOPPED "
                "run can be retried.",
                hint=f"Start a new run with 'sluice job start {name}'.",
            )
        later = [
            r
            for r in self.env.store.runs(name, limit=1000)
            if r.started_at > previous.started_at and r.state is RunState.SUCCEEDED
        ]
        if later:
            raise JobError(
                f"Run {later[0].run_id} published after run {previous.run_id} failed; resuming "
                "it would publish its older tables over newer ones.",
                hint=f"Start a new run with 'sluice job start {name}'.",
            )
        return self._launch(
            name,
            wait=wait,
            progress=progress,
            timeout_minutes=previous.timeout_minutes,
            selection=previous.selection or {},
            retry_of=previous.run_id,
            catalog=catalog,
        )

    def _launch(
        self,
        name: str,
        *,
        wait: bool,
        progress: Progress | None,
        timeout_minutes: float | None,
        selection: dict[str, list[str]],
        retry_of: str | None = None,
        catalog: CatalogCalls | None = None,
    ) -> JobRun:
        job = self.env.config.jobs[name]
        busy = self.active(name)
        if len(busy) >= job.max_concurrent_runs and job.when_busy == "refuse":
            raise JobError(
                f"Job {name} already has run {busy[0].run_id} {busy[0].state}; at most "
                f"{job.max_concurrent_runs} at a time (jobs.{name}.max_concurrent_runs).",
                hint=f"Wait for it ('sluice job status {name} {busy[0].run_id}'), stop it "
                f"('sluice job stop {name} {busy[0].run_id}'), or set jobs.{name}.when_busy: "
                "queue.",
            )
        timeout = timeout_minutes or job.timeout_minutes
        if timeout <= 0:
            raise JobError(f"Timeout must be positive, got {timeout:g} minutes.")
        log_dir = self.logs_dir / name
        log_dir.mkdir(parents=True, exist_ok=True)
        run = self.env.store.create(
            name, timeout_minutes=timeout, log_dir=log_dir, retry_of=retry_of, selection=selection
        )
        if wait:
            pid = os.getpid()
            self.env.store.set_process(run.run_id, pid, process_identity(pid))
            self._wait_turn(run)
            return execute_run(self.env, run, progress=progress, catalog=catalog)
        self._spawn(run)
        return self.env.store.get(name, run.run_id)

    def _wait_turn(self, run: JobRun) -> None:
        """Hold a STARTING run (stage ``queued``) while the job's runs started before it fill
        ``max_concurrent_runs``; return at once if it is stopped meanwhile."""
        limit = self.env.config.jobs[run.job].max_concurrent_runs
        while True:
            self.reap(run.job)
            if self.env.store.get(run.job, run.run_id).state is not RunState.STARTING:
                return
            ahead = [
                r
                for r in self.env.store.active(run.job)
                if r.run_id != run.run_id
                and (r.state is not RunState.STARTING or r.started_at < run.started_at)
            ]
            if len(ahead) < limit:
                return
            self.env.store.set_progress(run.run_id, stage="queued", rows_read=0, rows_written=0)
            time.sleep(QUEUE_POLL_SECONDS)

    def graph(self, name: str) -> TaskGraph:
        """The job's task graph (reads the source's table list and the model files)."""
        from sluice.jobs.etl import job_definitions, job_graph

        self._job(name)
        job = self.env.config.jobs[name]
        source_config = self.env.config.sources.get(job.source)
        if source_config is None:
            raise ConfigError(
                f"Job {name} reads source '{job.source}', which sluice.yml does not declare.",
                hint="Add it under 'sources:'.",
            )
        source = open_source(source_config.url, base_dir=self.env.root)
        tables, models, checks = job_definitions(
            name,
            job,
            root=self.env.root,
            source=source,
            checks=self.env.config.checks,
            retry=lambda what, fn: fn(),
        )
        return job_graph(job, tables, models, checks)

    def tasks(self, name: str, run_id: str) -> list[TaskRecord]:
        """A run's tasks: state, start and end, attempts, error."""
        return self.env.store.tasks(self.get(name, run_id).run_id)

    def _check_selection(self, name: str, selection: dict[str, list[str]]) -> None:
        """Refuse unknown task names and selections that need tables never published."""
        graph = self.graph(name)
        selected = graph.select(
            start_from=selection.get("from", ()),
            only=selection.get("only", ()),
            exclude=selection.get("exclude", ()),
        )
        published = self.env.publications.current()
        for task, table in required_inputs(graph, selected).items():
            if table not in published:
                raise ConfigError(
                    f"Task {task} is not selected, but {table} has never been published.",
                    hint=f"Select {task} too, or run the whole job first.",
                )

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

    def active(self, name: str) -> list[JobRun]:
        """The job's runs that have not ended (runs whose process died are marked first)."""
        self._job(name)
        self.reap(name)
        return self.env.store.active(name)

    def execute(self, name: str, run_id: str, *, catalog: CatalogCalls | None = None) -> JobRun:
        """Run an existing STARTING run in this process (what the worker does), once the job
        has room for it."""
        run = self.env.store.get(name, run_id)
        self._wait_turn(run)
        return execute_run(self.env, run, catalog=catalog)

    def reset_cursor(self, name: str, table: str) -> dict[str, str]:
        """Make the next run of job ``name`` read all of incremental ``table``, as Glue's
        reset-job-bookmark does; return the cursors it had (column to value)."""
        self._job(name)
        job = self.env.config.jobs[name]
        if table not in job.incremental and table not in job.cdc:
            raise NotFoundError(
                f"Job {name} has no incremental table '{table}'."
                f"{did_you_mean(table, [*job.incremental, *job.cdc])}",
                hint=f"Incremental tables are declared under jobs.{name}.incremental or "
                f"jobs.{name}.cdc in sluice.yml.",
            )
        self._idle(name, "its cursor cannot be reset")
        try:
            return self.env.lake.reset_cursor(TableName(job.raw_database, table))
        except NotFoundError:
            return {}

    def accept_drift(self, name: str, table: str) -> TableName:
        """Accept the schema change that quarantined ``table``: the next run of job ``name``
        rebuilds its raw table with the source's current columns; return that raw table."""
        self._job(name)
        job = self.env.config.jobs[name]
        if job.tables != "all" and table not in job.tables:
            raise NotFoundError(
                f"Job {name} does not extract table '{table}'.{did_you_mean(table, job.tables)}",
                hint=f"Its tables are listed under jobs.{name}.tables in sluice.yml.",
            )
        self._idle(name, "a schema change cannot be accepted")
        target = TableName(job.raw_database, table)
        self.env.lake.accept_drift(target)
        return target

    def _idle(self, name: str, what: str) -> None:
        """Raise JobError when the job has a run going."""
        self.reap(name)
        busy = self.env.store.active(name)
        if busy:
            raise JobError(
                f"Job {name} has run {busy[0].run_id} {busy[0].state}; {what} meanwhile.",
                hint=f"Wait for it or stop it ('sluice job stop {name} {busy[0].run_id}').",
            )

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
        """Mark runs whose process is gone: SUCCEEDED if they had published, else FAILED; and
        delete what they left in their temporary folder."""
        _collect_children()
        for run in self.env.store.active(name):
            if run.pid is None:
                if utcnow() - run.started_at < STARTING_GRACE:
                    continue
            elif _alive(run):
                continue
            shutil.rmtree(self.env.temp_dir / run.run_id, ignore_errors=True)
            if self.env.publications.is_published(run.run_id):
                self.env.store.transition(
                    run.run_id, RunState.SUCCEEDED, message="process ended after publishing"
                )
                continue
            self.env.store.abandon_tasks(run.run_id, "The process running the run ended.")
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

"""Execute one job run in this process: state transitions, timeout, stop requests, run log."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import psutil

from sluice.config import ProjectConfig
from sluice.core import RunState, TaskState
from sluice.errors import DriftError, JobError, SluiceError
from sluice.jobs.etl import EtlRun, run_etl
from sluice.jobs.store import JobRun, RunStore, RunTasks
from sluice.lake.catalog import Lake
from sluice.lake.catalog_process import CatalogCalls, InProcess
from sluice.lake.publications import PublicationStore
from sluice.observe.progress import FanOut, LogProgress, Progress
from sluice.sources.base import open_source

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("sluice.jobs")
PROGRESS_INTERVAL = 1.0


class RunInterruptedError(SluiceError):
    """The run was stopped on request or by its timeout before it published."""

    def __init__(self, state: RunState, message: str) -> None:
        super().__init__(message)
        self.state = state


class Cancellation:
    """A stop signal shared by the runner, the timeout timer and signal handlers."""

    def __init__(self, timeout_minutes: float) -> None:
        self.timeout_minutes = timeout_minutes
        self.state: RunState | None = None
        self._connections: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()

    def cancel(self, state: RunState) -> None:
        """Ask the run to end in ``state`` (STOPPED or TIMEOUT) and interrupt running SQL."""
        with self._lock:
            if self.state is None:
                self.state = state
        self.interrupt_all()

    def watch(self, con: duckdb.DuckDBPyConnection) -> None:
        """Interrupt this DuckDB connection on cancellation."""
        with self._lock:
            self._connections.append(con)
            if self.state is not None:
                con.interrupt()

    def unwatch(self, con: duckdb.DuckDBPyConnection) -> None:
        """Stop watching a connection that is about to close."""
        with self._lock:
            if con in self._connections:
                self._connections.remove(con)

    def interrupt_all(self) -> None:
        """Interrupt every watched connection without ending the run (a task failed)."""
        import duckdb

        self._wake.set()
        with self._lock:
            connections = list(self._connections)
        for con in connections:
            try:
                con.interrupt()
            except duckdb.Error:
                log.debug("connection closed before it could be interrupted")

    def sleep(self, seconds: float) -> None:
        """Wait before a retry; a stop, a timeout or a failed sibling task ends the wait."""
        if self._wake.wait(seconds):
            self.check()
            raise RunInterruptedError(RunState.FAILED, "Another task failed; not retrying.")

    def check(self) -> None:
        """Raise RunInterruptedError if a stop was asked for."""
        if self.state is RunState.TIMEOUT:
            raise RunInterruptedError(
                RunState.TIMEOUT,
                f"Run exceeded the job's timeout of {self.timeout_minutes:g} minutes; "
                "nothing was published.",
            )
        if self.state is RunState.STOPPED:
            raise RunInterruptedError(
                RunState.STOPPED, "Run stopped on request; nothing was published."
            )


@dataclass(frozen=True)
class RunEnvironment:
    """The parts of a project a run needs."""

    root: Path
    config: ProjectConfig
    store: RunStore
    lake: Lake
    publications: PublicationStore
    temp_dir: Path


def process_identity(pid: int) -> float:
    """The start time of a process, to tell it apart from a later one with the same pid."""
    return psutil.Process(pid).create_time()


def execute_run(
    env: RunEnvironment,
    run: JobRun,
    *,
    progress: Progress | None = None,
    catalog: CatalogCalls | None = None,
) -> JobRun:
    """Run a recorded STARTING run to its end in this process; return its final record.

    ``catalog`` makes its catalog writes (default: this process)."""
    job = env.config.jobs[run.job]
    pid = os.getpid()
    env.store.set_process(run.run_id, pid, process_identity(pid))
    cancellation = Cancellation(run.timeout_minutes)
    with (
        _run_log(Path(run.log_path)),
        _signals(cancellation),
        _timer(cancellation, run.timeout_minutes),
    ):
        log.info("run %s of job %s starting (pid %d)", run.run_id, run.job, pid)
        try:
            env.store.transition(run.run_id, RunState.RUNNING, expect=RunState.STARTING)
        except JobError:
            env.store.transition(run.run_id, RunState.STOPPED, message="stopped before it began")
            return env.store.get(run.job, run.run_id)

        last_stage, last_at = [""], [0.0]

        def counters(*, stage: str, rows_read: int, rows_written: int) -> None:
            now = time.monotonic()
            if stage != last_stage[0] or now - last_at[0] >= PROGRESS_INTERVAL:
                env.store.set_progress(
                    run.run_id, stage=stage, rows_read=rows_read, rows_written=rows_written
                )
                last_stage[0], last_at[0] = stage, now

        try:
            source_config = env.config.sources.get(job.source)
            if source_config is None:
                raise JobError(
                    f"Job {run.job} reads source '{job.source}', "
                    "which sluice.yml does not declare.",
                    hint="Add it under 'sources:'.",
                )
            with closing(RunTasks(env.store, run.run_id)) as tasks:
                etl = EtlRun(
                    run_id=run.run_id,
                    job_name=run.job,
                    job=job,
                    root=env.root,
                    lake=env.lake,
                    publications=env.publications,
                    source=open_source(source_config.url, base_dir=env.root),
                    checks=env.config.checks,
                    progress=FanOut(LogProgress(), progress) if progress else LogProgress(),
                    checkpoint=cancellation,
                    counters=counters,
                    temp_dir=env.temp_dir / run.run_id,
                    tasks=tasks,
                    catalog=catalog or InProcess(),
                    selection=run.selection or {},
                    reuse=_reusable(env.store, run.retry_of),
                    reused_from=run.retry_of,
                )
                result = run_etl(etl)
        except BaseException as exc:
            _record_failure(env, run, cancellation, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            counters(stage="done", rows_read=result.rows_read, rows_written=result.rows_written)
            env.store.transition(run.run_id, RunState.SUCCEEDED, report=result.report())
            log.info(
                "run %s SUCCEEDED: %d rows read, %d written",
                run.run_id,
                result.rows_read,
                result.rows_written,
            )
    return env.store.get(run.job, run.run_id)


def _reusable(store: RunStore, previous: str | None) -> dict[str, dict[str, Any]]:
    """The recorded outputs of a failed run's finished tasks, which its retry reuses."""
    if previous is None:
        return {}
    return {
        t.task: t.output
        for t in store.tasks(previous)
        if t.output is not None and t.state in (TaskState.SUCCEEDED, TaskState.SKIPPED)
    }


def _record_failure(
    env: RunEnvironment, run: JobRun, cancellation: Cancellation, exc: BaseException
) -> None:
    import duckdb

    if isinstance(exc, RunInterruptedError):
        state, message = exc.state, exc.message
    elif cancellation.state is not None and isinstance(
        exc, (duckdb.InterruptException, KeyboardInterrupt)
    ):
        state = cancellation.state
        try:
            cancellation.check()
        except RunInterruptedError as interrupted:
            message = interrupted.message
    elif isinstance(exc, KeyboardInterrupt):
        state, message = RunState.STOPPED, "Run interrupted; nothing was published."
    elif isinstance(exc, SluiceError):
        state, message = RunState.FAILED, exc.message + (f" {exc.hint}" if exc.hint else "")
    else:
        state = RunState.FAILED
        message = (
            f"Internal error {type(exc).__name__}: {exc}. "
            f"See 'sluice job logs {run.job} {run.run_id}'."
        )
        log.exception("run %s failed with an internal error", run.run_id)
    log.error("run %s %s: %s", run.run_id, state, message)
    report = {"schema_drift": exc.report} if isinstance(exc, DriftError) else None
    env.store.transition(run.run_id, state, error=message, report=report)


@contextmanager
def _run_log(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("sluice")
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()


@contextmanager
def _signals(cancellation: Cancellation) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        cancellation.cancel(RunState.STOPPED)

    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _timer(cancellation: Cancellation, minutes: float) -> Iterator[None]:
    timer = threading.Timer(minutes * 60, cancellation.cancel, (RunState.TIMEOUT,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()

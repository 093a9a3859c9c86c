"""One task of a job run: attempts with a timeout each, retries of transient errors, records.

Each attempt gets its own DuckDB cursor; when the task's timeout expires that cursor is
interrupted and the task fails with TaskTimeoutError (not retried). Transient errors are
retried with exponential backoff (``sluice.jobs.retry``); any other error fails at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sluice.config import RetryConfig
from sluice.core import TaskState
from sluice.errors import JobError, SluiceError
from sluice.jobs.retry import retrying
from sluice.jobs.store import RunTasks
from sluice.observe.failpoints import transient_fault

if TYPE_CHECKING:
    import duckdb

T = TypeVar("T")


class TaskTimeoutError(JobError):
    """A task ran longer than the job's ``task_timeout_minutes``."""

    code = "task_timeout"


class Watcher(Protocol):
    """The run's stop signal: interrupts watched cursors, wakes retry waits."""

    def watch(self, con: duckdb.DuckDBPyConnection) -> None:
        """Interrupt this connection when the run must stop."""

    def unwatch(self, con: duckdb.DuckDBPyConnection) -> None:
        """Stop watching a connection that is about to close."""

    def sleep(self, seconds: float) -> None:
        """Wait before a retry; raise if the run must stop meanwhile."""


def run_task(
    name: str,
    fn: Callable[[duckdb.DuckDBPyConnection], T],
    *,
    con: duckdb.DuckDBPyConnection,
    watcher: Watcher,
    policy: RetryConfig,
    timeout_minutes: float | None,
    log: RunTasks,
    verdict: Callable[[T], str | None] = lambda result: None,
    output: Callable[[T], dict[str, Any] | None] = lambda result: None,
) -> T:
    """Run ``fn(cursor)`` as task ``name``: retried while it fails transiently, each attempt
    bounded by ``timeout_minutes``; the task's state is recorded in ``log``. ``verdict``
    returns an error message for a result that fails the task without raising (a check that
    found bad rows); ``output`` what to record as the task's output."""

    def attempt() -> T:
        log.attempt(name)
        transient_fault(name)
        cursor = con.cursor()
        expired = threading.Event()
        timer = None
        if timeout_minutes is not None:
            timer = threading.Timer(timeout_minutes * 60, _expire, (cursor, expired))
            timer.daemon = True
            timer.start()
        watcher.watch(cursor)
        try:
            return fn(cursor)
        except BaseException as exc:
            if expired.is_set():
                raise TaskTimeoutError(
                    f"Task {name} ran longer than its timeout of {timeout_minutes:g} minutes "
                    "and was interrupted; nothing was published.",
                    hint="Raise task_timeout_minutes in the job, or make the task faster.",
                ) from exc
            raise
        finally:
            if timer is not None:
                timer.cancel()
            watcher.unwatch(cursor)
            cursor.close()

    try:
        result = retrying(attempt, policy=policy, what=f"Task {name}", sleep=watcher.sleep)
    except BaseException as exc:
        log.ended(name, TaskState.FAILED, error=_describe(exc))
        raise
    error = verdict(result)
    state = TaskState.FAILED if error else TaskState.SUCCEEDED
    log.ended(name, state, error=error, output=output(result))
    return result


def _expire(cursor: duckdb.DuckDBPyConnection, expired: threading.Event) -> None:
    import duckdb

    expired.set()
    try:
        cursor.interrupt()
    except duckdb.Error:
        return


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SluiceError):
        return exc.message
    import duckdb

    if isinstance(exc, duckdb.InterruptException):
        return "Interrupted: the run was stopped or another task failed."
    return f"{type(exc).__name__}: {exc}".splitlines()[0]

"""Job runs in ``.sluice/runs.db``: a durable state machine (schema: ``sluice.state``).

Every state change is one transaction that checks the transition is legal.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sluice.core import RunState, TaskState
from sluice.errors import JobError, NotFoundError
from sluice.state import StateDB

S = RunState
LEGAL_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.STOPPED, S.FAILED}),
    S.RUNNING: frozenset({S.STOPPING, S.SUCCEEDED, S.FAILED, S.TIMEOUT}),
    S.STOPPING: frozenset({S.STOPPED, S.SUCCEEDED, S.FAILED, S.TIMEOUT}),
    S.STOPPED: frozenset(),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.TIMEOUT: frozenset(),
}


def new_run_id() -> str:
    """A Glue-style job run id: ``jr_`` and 64 hex digits."""
    return "jr_" + secrets.token_hex(32)


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobRun:
    """One run of a job, as recorded."""

    run_id: str
    job: str
    state: RunState
    started_at: datetime
    ended_at: datetime | None
    timeout_minutes: float
    pid: int | None
    pid_started: float | None
    stage: str | None
    rows_read: int
    rows_written: int
    error: str | None
    log_path: str
    report: dict[str, Any]
    retry_of: str | None = None
    selection: dict[str, list[str]] | None = None

    @property
    def duration_seconds(self) -> float:
        """Seconds from start to end (or to now, while running)."""
        return ((self.ended_at or utcnow()) - self.started_at).total_seconds()


@dataclass(frozen=True)
class TaskRecord:
    """One task of a run, as recorded: its state, times, attempts, error and output."""

    task: str
    state: TaskState
    started_at: datetime | None
    ended_at: datetime | None
    attempts: int
    error: str | None
    detail: str | None
    output: dict[str, Any] | None

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from its first attempt to its end, if it ran and ended."""
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class RunStore:
    """The job run records of one project."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = StateDB(path)

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.connect()

    def create(
        self,
        job: str,
        *,
        timeout_minutes: float,
        log_dir: Path,
        retry_of: str | None = None,
        selection: dict[str, list[str]] | None = None,
    ) -> JobRun:
        """Record a new run in state STARTING; its log goes to ``log_dir/<run id>.log``.

        ``retry_of`` names the failed run it resumes; ``selection`` its task selection
        (``from``, ``only``, ``exclude`` lists)."""
        run_id = new_run_id()
        log_path = log_dir / f"{run_id}.log"
        now = utcnow().isoformat()
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute(
                "INSERT INTO job_runs (run_id, job, state, started_at, timeout_minutes, log_path,"
                " retry_of, selection) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    job,
                    RunState.STARTING.value,
                    now,
                    timeout_minutes,
                    str(log_path),
                    retry_of,
                    json.dumps(selection) if selection else None,
                ),
            )
            con.execute(
                "INSERT INTO job_run_events VALUES (?, ?, NULL, ?, 'run created')",
                (run_id, now, RunState.STARTING.value),
            )
            con.execute("COMMIT")
        return self.get(job, run_id)

    def set_process(self, run_id: str, pid: int, pid_started: float) -> None:
        """Record the process that executes a run."""
        with self._connect() as con:
            con.execute(
                "UPDATE job_runs SET pid = ?, pid_started = ? WHERE run_id = ?",
                (pid, pid_started, run_id),
            )

    def set_progress(self, run_id: str, *, stage: str, rows_read: int, rows_written: int) -> None:
        """Record the stage a run is in and its row counts so far."""
        with self._connect() as con:
            con.execute(
                "UPDATE job_runs SET stage = ?, rows_read = ?, rows_written = ? WHERE run_id = ?",
                (stage, rows_read, rows_written, run_id),
            )

    def transition(
        self,
        run_id: str,
        to: RunState,
        *,
        message: str | None = None,
        error: str | None = None,
        report: dict[str, Any] | None = None,
        expect: RunState | None = None,
    ) -> RunState:
        """Move a run to state ``to`` if that is legal from its current state.

        Returns the previous state. ``expect`` makes the change conditional on it.
        """
        now = utcnow().isoformat()
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                row = con.execute(
                    "SELECT state FROM job_runs WHERE run_id = ?", (run_id,)
                ).fetchone()
                if row is None:
                    raise NotFoundError(f"Job run {run_id} does not exist.")
                current = RunState(row[0])
                if expect is not None and current != expect:
                    raise JobError(f"Run {run_id} is {current}, not {expect}.")
                if to not in LEGAL_TRANSITIONS[current]:
                    raise JobError(f"Run {run_id} cannot go from {current} to {to}.")
                ended = now if to.is_final else None
                con.execute(
                    "UPDATE job_runs SET state = ?, ended_at = COALESCE(?, ended_at),"
                    " error = COALESCE(?, error), report = COALESCE(?, report) WHERE run_id = ?",
                    (
                        to.value,
                        ended,
                        error,
                        json.dumps(report, default=str) if report else None,
                        run_id,
                    ),
                )
                con.execute(
                    "INSERT INTO job_run_events VALUES (?, ?, ?, ?, ?)",
                    (run_id, now, current.value, to.value, message or error),
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return current

    def get(self, job: str, run_id: str) -> JobRun:
        """One run of a job, by id or by a unique prefix of at least 6 characters."""
        if not self.path.exists():
            raise NotFoundError(
                f"Job run {run_id} of job {job} does not exist.",
                hint=f"No runs yet; start one with 'sluice job start {job}'.",
            )
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM job_runs WHERE job = ? AND run_id LIKE ? || '%' ESCAPE '\\'"
                " ORDER BY started_at DESC LIMIT 2",
                (job, run_id.replace("_", "\\_") if len(run_id) >= 6 else run_id),
            ).fetchall()
            names = [d[0] for d in con.execute("SELECT * FROM job_runs LIMIT 0").description]
        exact = [r for r in rows if r[0] == run_id]
        if exact:
            rows = exact
        if len(rows) != 1:
            what = "matches more than one run" if rows else "does not exist"
            raise NotFoundError(
                f"Job run {run_id} of job {job} {what}.",
                hint=f"List runs with 'sluice job runs {job}'.",
            )
        return _to_run(dict(zip(names, rows[0], strict=True)))

    def runs(self, job: str | None = None, *, limit: int = 50) -> list[JobRun]:
        """Runs, newest first."""
        if not self.path.exists():
            return []
        with self._connect() as con:
            cursor = con.execute(
                "SELECT * FROM job_runs WHERE ? IS NULL OR job = ?"
                " ORDER BY started_at DESC LIMIT ?",
                (job, job, limit),
            )
            names = [d[0] for d in cursor.description]
            return [_to_run(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def active(self, job: str | None = None) -> list[JobRun]:
        """Runs not in a final state."""
        finals = tuple(s.value for s in RunState if s.is_final)
        return [r for r in self.runs(job, limit=1000) if r.state.value not in finals]

    def abandon_tasks(self, run_id: str, error: str) -> None:
        """Mark a dead run's RUNNING tasks FAILED."""
        with self._connect() as con:
            con.execute(
                "UPDATE job_run_tasks SET state = ?, error = ?, ended_at = ?"
                " WHERE run_id = ? AND state = ?",
                (TaskState.FAILED.value, error, utcnow().isoformat(), run_id, "RUNNING"),
            )

    def tasks(self, run_id: str) -> list[TaskRecord]:
        """A run's tasks in the order they were planned."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT task, state, started_at, ended_at, attempts, error, detail, output"
                " FROM job_run_tasks WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            ).fetchall()
        return [
            TaskRecord(
                task=r[0],
                state=TaskState(r[1]),
                started_at=datetime.fromisoformat(r[2]) if r[2] else None,
                ended_at=datetime.fromisoformat(r[3]) if r[3] else None,
                attempts=int(r[4]),
                error=r[5],
                detail=r[6],
                output=json.loads(r[7]) if r[7] else None,
            )
            for r in rows
        ]

    def events(self, run_id: str) -> list[tuple[str, str | None, str, str | None]]:
        """The run's state changes: (at, from, to, message)."""
        with self._connect() as con:
            return list(
                con.execute(
                    "SELECT at, from_state, to_state, message FROM job_run_events"
                    " WHERE run_id = ? ORDER BY rowid",
                    (run_id,),
                )
            )


def _to_run(row: dict[str, Any]) -> JobRun:
    return JobRun(
        run_id=row["run_id"],
        job=row["job"],
        state=RunState(row["state"]),
        started_at=datetime.fromisoformat(row["started_at"]),
        ended_at=datetime.fromisoformat(row["ended_at"]) if row["ended_at"] else None,
        timeout_minutes=float(row["timeout_minutes"]),
        pid=row["pid"],
        pid_started=row["pid_started"],
        stage=row["stage"],
        rows_read=int(row["rows_read"]),
        rows_written=int(row["rows_written"]),
        error=row["error"],
        log_path=row["log_path"],
        report=json.loads(row["report"]) if row["report"] else {},
        retry_of=row["retry_of"],
        selection=json.loads(row["selection"]) if row["selection"] else None,
    )


class RunTasks:
    """The task records of one run, written as its tasks go over one connection (a write
    costs a fraction of a millisecond, not a connection's setup)."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.run_id = run_id
        self._con = store._db.open()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._con.close()

    def _write(self, sql: str, *params: Any) -> sqlite3.Cursor:
        with self._lock:
            return self._con.execute(sql, params)

    def planned(
        self,
        states: dict[str, TaskState],
        *,
        details: dict[str, str],
        outputs: dict[str, dict[str, Any]],
    ) -> None:
        """Record the run's tasks before any starts: PENDING, or SKIPPED with a detail and
        the output it reuses."""
        rows = [
            (self.run_id, name, state.value, details.get(name), _json(outputs.get(name)))
            for name, state in states.items()
        ]
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            self._con.executemany(
                "INSERT OR REPLACE INTO job_run_tasks (run_id, task, state, detail, output)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            self._con.execute("COMMIT")

    def attempt(self, task: str) -> int:
        """Mark a task RUNNING for one more attempt; return the attempt number."""
        row = self._write(
            "UPDATE job_run_tasks SET state = ?, attempts = attempts + 1, error = NULL,"
            " started_at = COALESCE(started_at, ?) WHERE run_id = ? AND task = ?"
            " RETURNING attempts",
            TaskState.RUNNING.value,
            utcnow().isoformat(),
            self.run_id,
            task,
        ).fetchone()
        return int(row[0]) if row else 0

    def ended(
        self,
        task: str,
        state: TaskState,
        *,
        error: str | None = None,
        output: dict[str, Any] | None = None,
    ) -> None:
        """Record a task's end (SUCCEEDED or FAILED) and, if given, what it produced."""
        self._write(
            "UPDATE job_run_tasks SET state = ?, ended_at = ?, error = ?,"
            " output = COALESCE(?, output) WHERE run_id = ? AND task = ?",
            state.value,
            utcnow().isoformat(),
            error,
            _json(output),
            self.run_id,
            task,
        )

    def outputs(self, run_id: str) -> list[dict[str, Any]]:
        """What the tasks of run ``run_id`` (this run or another) recorded as produced."""
        with self._lock:
            rows = self._con.execute(
                "SELECT output FROM job_run_tasks WHERE run_id = ? AND output IS NOT NULL",
                (run_id,),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def committed(self, task: str, output: dict[str, Any]) -> None:
        """Record what a task produced once it is durable (its Iceberg commit)."""
        self._write(
            "UPDATE job_run_tasks SET output = ? WHERE run_id = ? AND task = ?",
            _json(output),
            self.run_id,
            task,
        )


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, default=str)

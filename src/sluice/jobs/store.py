"""Job runs in ``.sluice/runs.db``: a durable state machine with numbered schema migrations.

Every state change is one transaction that checks the transition is legal.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sluice.core import RunState
from sluice.errors import JobError, NotFoundError

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

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE job_runs (
        run_id TEXT PRIMARY KEY,
        job TEXT NOT NULL,
        state TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        timeout_minutes REAL NOT NULL,
        pid INTEGER,
        pid_started REAL,
        stage TEXT,
        rows_read INTEGER NOT NULL DEFAULT 0,
        rows_written INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        log_path TEXT NOT NULL,
        report TEXT
    );
    CREATE INDEX job_runs_by_job ON job_runs (job, started_at);
    CREATE TABLE job_run_events (
        run_id TEXT NOT NULL REFERENCES job_runs (run_id),
        at TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        message TEXT
    );
    """,
)


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

    @property
    def duration_seconds(self) -> float:
        """Seconds from start to end (or to now, while running)."""
        return ((self.ended_at or utcnow()) - self.started_at).total_seconds()


class RunStore:
    """The job run records of one project."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._migrated = False

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """Open the store, creating and migrating it on first use."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            if not self._migrated:
                self._migrate(con)
                self._migrated = True
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA busy_timeout=30000")
            yield con
        finally:
            con.close()

    @staticmethod
    def _migrate(con: sqlite3.Connection) -> None:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise JobError(
                f"runs.db has schema version {version}, newer than this Sluice knows "
                f"({len(MIGRATIONS)}); upgrade sluice."
            )
        for number in range(version, len(MIGRATIONS)):
            con.execute("BEGIN IMMEDIATE")
            try:
                if con.execute("PRAGMA user_version").fetchone()[0] == number:
                    for statement in MIGRATIONS[number].split(";"):
                        if statement.strip():
                            con.execute(statement)
                    con.execute(f"PRAGMA user_version = {number + 1}")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def create(self, job: str, *, timeout_minutes: float, log_dir: Path) -> JobRun:
        """Record a new run in state STARTING; its log goes to ``log_dir/<run id>.log``."""
        run_id = new_run_id()
        log_path = log_dir / f"{run_id}.log"
        now = utcnow().isoformat()
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute(
                "INSERT INTO job_runs (run_id, job, state, started_at, timeout_minutes, log_path)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, job, RunState.STARTING.value, now, timeout_minutes, str(log_path)),
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
    )

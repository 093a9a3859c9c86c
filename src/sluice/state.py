"""``.sluice/runs.db``: one SQLite file for job runs, query executions and schedule slots.

Its schema is one list of numbered migrations (``PRAGMA user_version`` counts the ones
applied); each is applied once, in one transaction. Append new migrations; never edit one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sluice.errors import SluiceError

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
    """
    CREATE TABLE query_executions (
        query_id TEXT PRIMARY KEY,
        sql TEXT NOT NULL,
        database TEXT NOT NULL,
        parameters TEXT,
        state TEXT NOT NULL,
        submitted_at TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT,
        server_pid INTEGER,
        rows INTEGER NOT NULL DEFAULT 0,
        truncated INTEGER NOT NULL DEFAULT 0,
        input_bytes INTEGER NOT NULL DEFAULT 0,
        columns TEXT,
        result_path TEXT,
        error_code TEXT,
        error_message TEXT,
        error_hint TEXT
    );
    CREATE INDEX query_executions_by_time ON query_executions (submitted_at);
    """,
    """
    CREATE TABLE schedules (
        job TEXT PRIMARY KEY,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL,
        since TEXT NOT NULL
    );
    CREATE TABLE schedule_slots (
        job TEXT NOT NULL,
        slot TEXT NOT NULL,
        outcome TEXT NOT NULL,
        run_id TEXT,
        reason TEXT,
        into_slot TEXT,
        handled_at TEXT NOT NULL,
        PRIMARY KEY (job, slot)
    );
    """,
    """
    CREATE TABLE job_run_tasks (
        run_id TEXT NOT NULL REFERENCES job_runs (run_id),
        task TEXT NOT NULL,
        state TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        detail TEXT,
        output TEXT,
        PRIMARY KEY (run_id, task)
    );
    ALTER TABLE job_runs ADD COLUMN retry_of TEXT;
    ALTER TABLE job_runs ADD COLUMN selection TEXT;
    """,
)


class StateDB:
    """Connections to one project's ``runs.db``, migrated on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._migrated = False
        self._shared: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """The database in autocommit mode, created and migrated on first use.

        One connection is shared by the threads of a process, one at a time: opening a
        connection per statement cost ~1 ms, which a query execution paid some twenty times.
        A transaction left open by an error is rolled back, as closing the connection did.
        """
        with self._lock:
            if self._shared is None:
                self._shared = self.open()
            con = self._shared
            try:
                yield con
            finally:
                if con.in_transaction:
                    con.rollback()

    def open(self) -> sqlite3.Connection:
        """A connection the caller closes (usable from any thread, one at a time)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            if not self._migrated:
                _migrate(con)
                self._migrated = True
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA busy_timeout=30000")
        except BaseException:
            con.close()
            raise
        return con


def _migrate(con: sqlite3.Connection) -> None:
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise SluiceError(
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

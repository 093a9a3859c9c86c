"""Query executions as recorded in ``.sluice/runs.db``: states, numbers, results, failures.

A state only moves forward (QUEUED → RUNNING → SUCCEEDED, FAILED or CANCELLED); each
change is one conditional UPDATE, so a cancel and a finishing worker never both win.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sluice.errors import NotFoundError
from sluice.state import StateDB

JsonParameters = list[Any] | dict[str, Any] | None


class QueryState(enum.StrEnum):
    """Query execution states, as in Athena."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        """True for the states an execution never leaves."""
        return self in (QueryState.SUCCEEDED, QueryState.FAILED, QueryState.CANCELLED)


class QueryExecutionNotFoundError(NotFoundError):
    """No query execution has the given id."""

    code = "query_not_found"


@dataclass(frozen=True)
class QueryFailure:
    """Why an execution failed: the error's stable code, message and hint."""

    code: str
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class QueryExecution:
    """One query execution, as recorded.

    ``input_bytes`` is the total size of the Parquet files of the tables the query names
    (pinned at its start): an upper bound of what it read, since DuckDB skips columns
    and row groups it does not need.
    """

    query_id: str
    sql: str
    database: str
    parameters: JsonParameters
    state: QueryState
    submitted_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    rows: int = 0
    truncated: bool = False
    input_bytes: int = 0
    columns: tuple[tuple[str, str], ...] = ()
    result_path: str | None = None
    error: QueryFailure | None = None

    @property
    def elapsed_seconds(self) -> float:
        """Seconds from submission to the end (or to now, while unfinished)."""
        return ((self.ended_at or datetime.now(UTC)) - self.submitted_at).total_seconds()

    @property
    def engine_seconds(self) -> float | None:
        """Seconds the query ran in the engine (None if it never started)."""
        if self.started_at is None:
            return None
        return ((self.ended_at or datetime.now(UTC)) - self.started_at).total_seconds()


class QueryHistory:
    """The query execution records of one project."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = StateDB(path)

    def add(self, execution: QueryExecution, *, server_pid: int | None = None) -> None:
        """Record a new execution."""
        with self._db.connect() as con:
            con.execute(
                "INSERT INTO query_executions (query_id, sql, database, parameters, state,"
                " submitted_at, ended_at, server_pid, error_code, error_message, error_hint)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    execution.query_id,
                    execution.sql,
                    execution.database,
                    json.dumps(execution.parameters),
                    execution.state.value,
                    execution.submitted_at.isoformat(),
                    execution.ended_at.isoformat() if execution.ended_at else None,
                    server_pid,
                    *_failure_fields(execution.error),
                ),
            )

    def transition(
        self,
        query_id: str,
        to: QueryState,
        *,
        expect: tuple[QueryState, ...],
        error: QueryFailure | None = None,
        **fields: Any,
    ) -> bool:
        """Move an execution from one of the ``expect`` states to ``to``; False if it was not.

        ``fields`` sets columns too (rows, truncated, input_bytes, columns, result_path).
        """
        now = datetime.now(UTC).isoformat()
        values: dict[str, Any] = {"state": to.value, **fields}
        if to == QueryState.RUNNING:
            values["started_at"] = now
        if to.is_final:
            values["ended_at"] = now
        if error is not None:
            code, message, hint = _failure_fields(error)
            values.update(error_code=code, error_message=message, error_hint=hint)
        if "columns" in values:
            values["columns"] = json.dumps(values["columns"])
        assignments = ", ".join(f"{name} = ?" for name in values)
        marks = ", ".join("?" for _ in expect)
        with self._db.connect() as con:
            cursor = con.execute(
                f"UPDATE query_executions SET {assignments}"
                f" WHERE query_id = ? AND state IN ({marks})",
                (*values.values(), query_id, *(s.value for s in expect)),
            )
            return cursor.rowcount == 1

    def get(self, query_id: str) -> QueryExecution:
        """One execution by id."""
        if self.path.exists():
            with self._db.connect() as con:
                con.row_factory = sqlite3.Row
                row = con.execute(
                    "SELECT * FROM query_executions WHERE query_id = ?", (query_id,)
                ).fetchone()
            if row is not None:
                return _to_execution(dict(row))
        raise QueryExecutionNotFoundError(
            f"Query execution {query_id} does not exist.",
            hint="List executions with 'sluice query history' or GET /v1/queries.",
        )

    def recent(self, *, limit: int = 50, state: QueryState | None = None) -> list[QueryExecution]:
        """Executions, newest first."""
        if not self.path.exists():
            return []
        with self._db.connect() as con:
            con.row_factory = sqlite3.Row
            rows = con.execute(
                "SELECT * FROM query_executions WHERE ? IS NULL OR state = ?"
                " ORDER BY submitted_at DESC, rowid DESC LIMIT ?",
                (state, state, limit),
            ).fetchall()
        return [_to_execution(dict(r)) for r in rows]

    def unfinished(self) -> list[tuple[str, int | None]]:
        """(query id, server pid) of every execution still QUEUED or RUNNING."""
        if not self.path.exists():
            return []
        with self._db.connect() as con:
            return list(
                con.execute(
                    "SELECT query_id, server_pid FROM query_executions"
                    " WHERE state IN ('QUEUED', 'RUNNING')"
                )
            )

    def expire_results(self, keep: int, *, keep_days: int | None = None) -> list[str]:
        """Forget the result files of all but the ``keep`` newest, and the finished executions
        submitted more than ``keep_days`` ago; return the paths of the files forgotten."""
        with self._db.connect() as con:
            con.execute("BEGIN IMMEDIATE")
            if keep_days is not None:
                cutoff = datetime.now(UTC) - timedelta(days=keep_days)
                rows = con.execute(
                    "DELETE FROM query_executions WHERE submitted_at < ?"
                    " AND state NOT IN ('QUEUED', 'RUNNING') RETURNING result_path",
                    (cutoff.isoformat(),),
                ).fetchall()
                old_files = [path for (path,) in rows if path is not None]
            else:
                old_files = []
            rows = con.execute(
                "SELECT query_id, result_path FROM query_executions"
                " WHERE result_path IS NOT NULL ORDER BY submitted_at DESC, rowid DESC"
                " LIMIT -1 OFFSET ?",
                (keep,),
            ).fetchall()
            con.executemany(
                "UPDATE query_executions SET result_path = NULL WHERE query_id = ?",
                [(query_id,) for query_id, _ in rows],
            )
            con.execute("COMMIT")
        return old_files + [path for _, path in rows]


def _failure_fields(error: QueryFailure | None) -> tuple[str | None, str | None, str | None]:
    if error is None:
        return None, None, None
    return error.code, error.message, error.hint


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _to_execution(row: dict[str, Any]) -> QueryExecution:
    error = None
    if row["error_code"]:
        error = QueryFailure(row["error_code"], row["error_message"] or "", row["error_hint"])
    submitted = _time(row["submitted_at"])
    assert submitted is not None
    return QueryExecution(
        query_id=row["query_id"],
        sql=row["sql"],
        database=row["database"],
        parameters=json.loads(row["parameters"]) if row["parameters"] else None,
        state=QueryState(row["state"]),
        submitted_at=submitted,
        started_at=_time(row["started_at"]),
        ended_at=_time(row["ended_at"]),
        rows=int(row["rows"]),
        truncated=bool(row["truncated"]),
        input_bytes=int(row["input_bytes"]),
        columns=tuple((name, kind) for name, kind in json.loads(row["columns"] or "[]")),
        result_path=row["result_path"],
        error=error,
    )

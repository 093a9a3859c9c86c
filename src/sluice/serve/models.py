"""The bodies the HTTP API takes and returns; FastAPI publishes them in /openapi.json."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sluice.query.history import QueryExecution, QueryState

MAX_SQL_CHARS = 100_000
IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
Scalar = str | int | float | bool | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartQuery(_Body):
    """A query to start."""

    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS, description="One read-only SELECT.")
    database: str = Field("gold", pattern=IDENT, description="Where unqualified tables are.")
    parameters: list[Scalar] | dict[str, Scalar] | None = Field(
        None, description="Values for ?/$1 placeholders (a list) or $name ones (an object)."
    )


class ErrorBody(_Body):
    """What every error answers."""

    code: str
    message: str
    hint: str | None = None
    query_id: str | None = None


class Column(_Body):
    """A result column."""

    name: str
    type: str


class Execution(_Body):
    """A query execution's state and numbers."""

    query_id: str
    state: QueryState
    sql: str
    database: str
    parameters: list[Any] | dict[str, Any] | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    elapsed_seconds: float = Field(description="From submission to the end (or now).")
    engine_seconds: float | None = Field(description="From the start of running to the end.")
    rows: int
    truncated: bool = Field(description="True when the row cap cut the result short.")
    input_bytes: int = Field(
        description="Size of the Parquet files of the tables the query names: an upper "
        "bound of the bytes it read."
    )
    columns: list[Column]
    error: ErrorBody | None

    @classmethod
    def of(cls, execution: QueryExecution) -> Execution:
        """The API view of a recorded execution."""
        failure = execution.error
        return cls(
            query_id=execution.query_id,
            state=execution.state,
            sql=execution.sql,
            database=execution.database,
            parameters=execution.parameters,
            submitted_at=execution.submitted_at,
            started_at=execution.started_at,
            ended_at=execution.ended_at,
            elapsed_seconds=round(execution.elapsed_seconds, 6),
            engine_seconds=execution.engine_seconds,
            rows=execution.rows,
            truncated=execution.truncated,
            input_bytes=execution.input_bytes,
            columns=[Column(name=n, type=t) for n, t in execution.columns],
            error=None
            if failure is None
            else ErrorBody(code=failure.code, message=failure.message, hint=failure.hint),
        )


class ExecutionList(_Body):
    """Executions, newest first."""

    queries: list[Execution]


class ResultsBody(_Body):
    """One page of a result, in JSON."""

    query_id: str
    columns: list[Column]
    rows: list[list[Any]]
    total_rows: int
    truncated: bool
    next_token: str | None


class Database(_Body):
    """A database (an Iceberg namespace) and how many tables it has."""

    name: str
    tables: int


class DatabaseList(_Body):
    """Databases in the catalog."""

    databases: list[Database]


class TableSummary(_Body):
    """A table as the catalog sees it now."""

    database: str
    name: str
    rows: int
    files: int
    snapshot_id: int | None


class TableList(_Body):
    """Tables of a database."""

    tables: list[TableSummary]


class TableColumn(_Body):
    """A table column."""

    name: str
    type: str
    required: bool


class Snapshot(_Body):
    """One entry of a table's snapshot history."""

    snapshot_id: int
    committed_at: datetime
    operation: str
    rows: int
    run_id: str | None


class TableDetail(TableSummary):
    """A table's columns and snapshot history."""

    location: str
    columns: list[TableColumn]
    snapshots: list[Snapshot]

"""Typed values that the lifecycle stages hand to each other.

Stages depend on this module, never on each other's internals.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class TableName:
    """A table in the lake, addressed as ``database.table`` (an Iceberg namespace and name)."""

    database: str
    name: str

    def __str__(self) -> str:
        return f"{self.database}.{self.name}"

    @classmethod
    def parse(cls, text: str, *, default_database: str = "gold") -> TableName:
        """Parse ``db.table`` or ``table`` (in ``default_database``).

        >>> TableName.parse("raw.orders")
        TableName(database='raw', name='orders')
        >>> str(TableName.parse("fact_orders"))
        'gold.fact_orders'
        """
        database, _, name = text.rpartition(".")
        return cls(database or default_database, name)


@dataclass(frozen=True)
class ColumnChunk:
    """One column of one Parquet row group, as the file's footer describes it.

    ``min`` and ``max`` are DuckDB's text form of the statistics (None when absent).
    """

    column: str
    physical_type: str
    values: int
    nulls: int | None
    min: str | None
    max: str | None
    compressed_size: int
    data_page_offset: int
    dictionary_page_offset: int | None


@dataclass(frozen=True)
class ParquetFooter:
    """What a written Parquet file holds: size, rows, column types and statistics."""

    path: str
    size: int
    rows: int
    columns: tuple[tuple[str, str], ...]
    row_groups: tuple[tuple[ColumnChunk, ...], ...]


@dataclass(frozen=True)
class Cursor:
    """How far incremental extraction of a table got: the largest cursor value read (its
    text form, None before any row) and the raw table snapshot that holds those rows."""

    column: str
    value: str | None
    snapshot_id: int | None = None


@dataclass(frozen=True)
class RawSchema:
    """What a raw table holds now, to compare with its source table before extracting.

    ``columns`` pairs each column name with its Iceberg type (``int``, ``decimal(10, 2)``);
    ``primary_key`` is the key its incremental merges used (None when not recorded);
    ``accepted`` says a schema change was accepted and the next run rebuilds the table.
    """

    columns: tuple[tuple[str, str], ...]
    primary_key: tuple[str, ...] | None = None
    accepted: bool = False


@dataclass(frozen=True)
class WrittenTable:
    """Parquet files one stage wrote for a table, not yet committed to the lake.

    ``footers`` (one per file, when the writer read them back) let the lake commit without
    opening the files again. An incremental extraction sets ``cursor`` (committed with the
    data; its ``snapshot_id`` is the snapshot the files were merged from) and ``rows_read``
    (the rows read from the source, fewer than ``rows``). A merge sets ``kept``: files of the
    table's current snapshot that the new one keeps beside ``files`` (``rows`` counts both,
    ``new_rows`` the rows of ``files`` alone).
    ``summary`` holds properties to record in the new snapshot's summary.
    """

    table: TableName
    files: tuple[str, ...]
    rows: int
    footers: tuple[ParquetFooter, ...] = ()
    cursor: Cursor | None = None
    rows_read: int | None = None
    kept: tuple[str, ...] = ()
    summary: tuple[tuple[str, str], ...] = ()
    new_rows: int | None = None

    @property
    def rows_written(self) -> int:
        """The rows this stage wrote: those of ``files``."""
        return self.rows if self.new_rows is None else self.new_rows

    @property
    def all_files(self) -> tuple[str, ...]:
        """Every data file of the table once committed: the kept ones and the new ones."""
        return self.kept + self.files


@dataclass(frozen=True)
class TableCommit:
    """An Iceberg commit: the snapshot a table now has and the data files it reads."""

    table: TableName
    snapshot_id: int
    metadata_location: str
    files: tuple[str, ...]
    rows: int
    retained_runs: frozenset[str] = frozenset()


class TaskState(enum.StrEnum):
    """States of one task of a job run."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class RunState(enum.StrEnum):
    """Job run states, as in AWS Glue."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"

    @property
    def is_final(self) -> bool:
        """True for the states a run never leaves."""
        return self in FINAL_STATES


FINAL_STATES = frozenset({RunState.STOPPED, RunState.SUCCEEDED, RunState.FAILED, RunState.TIMEOUT})


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one data check: the bad rows it found (none means it passed)."""

    name: str
    model: str
    severity: str
    sql: str
    failing_rows: int
    sample: tuple[dict[str, object], ...] = field(default=())
    message: str = ""
    scope: str = "all rows"
    """The rows it read: ``all rows``; ``new rows`` of a table whose other rows passed it in
    the run that published them; ``none`` when no row changed since."""

    @property
    def passed(self) -> bool:
        """True when the check returned no bad rows."""
        return self.failing_rows == 0

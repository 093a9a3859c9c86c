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
class WrittenTable:
    """Parquet files one stage wrote for a table, not yet committed to the lake."""

    table: TableName
    files: tuple[str, ...]
    rows: int
    retained_runs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TableCommit:
    """An Iceberg commit: the snapshot a table now has and the data files it reads."""

    table: TableName
    snapshot_id: int
    metadata_location: str
    files: tuple[str, ...]
    rows: int
    retained_runs: frozenset[str] = frozenset()


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

    @property
    def passed(self) -> bool:
        """True when the check returned no bad rows."""
        return self.failing_rows == 0

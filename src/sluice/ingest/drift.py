"""Schema drift: compare a source table's columns with its raw table before extracting.

The comparison is pure: a source table and the raw table's schema give a list of typed
changes, each classified. Compatible changes (a column added or dropped, a type widened the
way Iceberg promotes it) evolve the raw table; incompatible ones (any other type change, a
changed primary key) and, under policy ``fail``, any change quarantine the table until
``sluice job accept-drift`` records that the next run may rebuild it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sluice.config import DriftPolicy, SchemaDriftConfig
from sluice.core import RawSchema, TableName
from sluice.errors import ConfigError, DriftError, did_you_mean
from sluice.sources.base import SourceTable

log = logging.getLogger("sluice.ingest.drift")
ChangeKind = Literal["added", "dropped", "widened", "incompatible", "key_changed"]
COMPATIBLE: frozenset[str] = frozenset({"added", "dropped", "widened"})
METADATA_PREFIX = "_sluice_"

_ICEBERG = {
    "INTEGER": "int",
    "BIGINT": "long",
    "FLOAT": "float",
    "DOUBLE": "double",
    "BOOLEAN": "boolean",
    "VARCHAR": "string",
    "BLOB": "binary",
    "DATE": "date",
    "TIME": "time",
    "TIMESTAMP": "timestamp",
    "TIMESTAMPTZ": "timestamptz",
}
_DUCKDB = {iceberg: duck for duck, iceberg in _ICEBERG.items()}
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)", re.IGNORECASE)
_PROMOTIONS = {("int", "long"), ("float", "double")}


def iceberg_type(lake_type: str) -> str:
    """The Iceberg type a column of DuckDB type ``lake_type`` is stored as.

    >>> iceberg_type("BIGINT"), iceberg_type("DECIMAL(10, 2)"), iceberg_type("VARCHAR")
    ('long', 'decimal(10, 2)', 'string')
    """
    decimal = _DECIMAL.fullmatch(lake_type.strip())
    if decimal:
        return f"decimal({decimal[1]}, {decimal[2]})"
    return _ICEBERG.get(lake_type.strip().upper(), lake_type.lower())


def duckdb_type(iceberg: str) -> str:
    """The DuckDB type that writes an Iceberg type back (for columns kept as NULL).

    >>> duckdb_type("long"), duckdb_type("decimal(12, 2)")
    ('BIGINT', 'DECIMAL(12, 2)')
    """
    decimal = _DECIMAL.fullmatch(iceberg.strip())
    if decimal:
        return f"DECIMAL({decimal[1]}, {decimal[2]})"
    return _DUCKDB.get(iceberg.strip(), "VARCHAR")


def widens(old: str, new: str) -> bool:
    """True when Iceberg promotes type ``old`` to ``new`` (int to long, float to double,
    decimal precision up at the same scale).

    >>> widens("int", "long"), widens("decimal(10, 2)", "decimal(12, 2)")
    (True, True)
    >>> widens("decimal(10, 2)", "decimal(12, 3)"), widens("string", "int")
    (False, False)
    """
    if (old, new) in _PROMOTIONS:
        return True
    before, after = _DECIMAL.fullmatch(old), _DECIMAL.fullmatch(new)
    return bool(before and after and after[2] == before[2] and int(after[1]) > int(before[1]))


@dataclass(frozen=True)
class ColumnChange:
    """One difference between a source table and its raw table (types are Iceberg's)."""

    column: str
    kind: ChangeKind
    old_type: str | None = None
    new_type: str | None = None
    source_type: str | None = None

    @property
    def compatible(self) -> bool:
        """True when the raw table can evolve to take the change."""
        return self.kind in COMPATIBLE

    def describe(self) -> str:
        """One phrase naming the column and its old and new types."""
        declared = f" (declared {self.source_type})" if self.source_type else ""
        if self.kind == "added":
            return f"column {self.column} {self.new_type}{declared} added"
        if self.kind == "dropped":
            return f"column {self.column} {self.old_type} dropped (kept in raw, NULL from now on)"
        if self.kind == "key_changed":
            return f"primary key changed from ({self.old_type}) to ({self.new_type})"
        verb = "widened" if self.kind == "widened" else "changed type"
        return f"column {self.column} {verb} from {self.old_type} to {self.new_type}{declared}"


def compare(
    table: SourceTable, raw: RawSchema, *, primary_key: Sequence[str] | None = None
) -> tuple[ColumnChange, ...]:
    """The changes from raw table ``raw`` to source table ``table``, in column order.

    ``primary_key`` is the key an incremental table merges by now; it is compared with the
    key the raw table recorded.
    """
    old = {name: kind for name, kind in raw.columns if not name.startswith(METADATA_PREFIX)}
    changes: list[ColumnChange] = []
    for column in table.columns:
        new = iceberg_type(column.lake_type)
        before = old.get(column.name)
        if before is None:
            changes.append(ColumnChange(column.name, "added", None, new, column.source_type))
        elif before != new:
            kind: ChangeKind = "widened" if widens(before, new) else "incompatible"
            changes.append(ColumnChange(column.name, kind, before, new, column.source_type))
    present = {c.name for c in table.columns}
    changes.extend(
        ColumnChange(name, "dropped", kind) for name, kind in old.items() if name not in present
    )
    if primary_key is not None:
        dropped_key = [c.column for c in changes if c.kind == "dropped" and c.column in primary_key]
        recorded = raw.primary_key
        if dropped_key or (recorded is not None and tuple(primary_key) != recorded):
            changes.append(
                ColumnChange(
                    ", ".join(primary_key),
                    "key_changed",
                    ", ".join(recorded or primary_key),
                    ", ".join(primary_key),
                )
            )
    return tuple(changes)


@dataclass(frozen=True)
class TableDrift:
    """A source table's changes and what its policy makes of them."""

    table: str
    policy: DriftPolicy
    changes: tuple[ColumnChange, ...]
    accepted: bool = False

    @property
    def quarantined(self) -> bool:
        """True when the table must not load until its change is accepted."""
        if self.accepted or not self.changes:
            return False
        return self.policy == "fail" or not all(c.compatible for c in self.changes)

    def kept(self) -> tuple[tuple[str, str], ...]:
        """Dropped columns the raw table keeps: (name, DuckDB type) to write as NULL."""
        if self.accepted or self.quarantined:
            return ()
        return tuple(
            (c.column, duckdb_type(c.old_type or "string"))
            for c in self.changes
            if c.kind == "dropped"
        )


@dataclass(frozen=True)
class DriftPlan:
    """The drift of every table a run extracts."""

    job: str
    raw_database: str
    tables: Mapping[str, TableDrift]

    @property
    def quarantined(self) -> set[TableName]:
        """The raw tables this run must not load."""
        return {
            TableName(self.raw_database, name) for name, d in self.tables.items() if d.quarantined
        }

    def kept(self, table: str) -> tuple[tuple[str, str], ...]:
        """Dropped columns of ``table`` to write as NULL."""
        drift = self.tables.get(table)
        return drift.kept() if drift else ()

    def report(self) -> dict[str, Any]:
        """JSON-ready changes per table, for the run record."""
        return {
            name: {
                "policy": d.policy,
                "action": "rebuilt"
                if d.accepted
                else ("quarantined" if d.quarantined else "evolved"),
                "changes": [
                    {
                        "column": c.column,
                        "change": c.kind,
                        "old_type": c.old_type,
                        "new_type": c.new_type,
                        "source_type": c.source_type,
                        "description": c.describe(),
                    }
                    for c in d.changes
                ],
            }
            for name, d in sorted(self.tables.items())
            if d.changes
        }

    def error(self) -> DriftError:
        """The error that fails a run with quarantined tables, naming each change."""
        parts = []
        for name, d in sorted(self.tables.items()):
            if not d.quarantined:
                continue
            why = "" if any(not c.compatible for c in d.changes) else f" (policy {d.policy})"
            changes = "; ".join(c.describe() for c in d.changes)
            parts.append(
                f"Table {name} is quarantined{why}: {changes}. Accept with "
                f"'sluice job accept-drift {self.job} {name}' (the next run rebuilds "
                f"{self.raw_database}.{name} with the new schema)."
            )
        return DriftError(
            " ".join(parts),
            hint="The other tables were loaded; nothing was published.",
            report=self.report(),
        )


def plan_drift(
    tables: Iterable[SourceTable],
    raw: Mapping[str, RawSchema | None],
    *,
    config: SchemaDriftConfig,
    keys: Mapping[str, Sequence[str]],
    job: str,
    raw_database: str,
) -> DriftPlan:
    """Compare every source table with its raw table (None: not loaded yet) under the job's
    policies; ``keys`` holds the primary key of each incremental table."""
    tables = list(tables)
    names = {t.name for t in tables}
    for name in config.tables:
        if name not in names:
            raise ConfigError(
                f"jobs.{job}.schema_drift.tables names '{name}', which the job does not "
                f"extract.{did_you_mean(name, names)}"
            )
    drifts = {}
    for table in tables:
        schema = raw.get(table.name)
        if schema is None:
            continue
        changes = compare(table, schema, primary_key=keys.get(table.name))
        policy = config.tables.get(table.name, config.default)
        drifts[table.name] = TableDrift(table.name, policy, changes, schema.accepted)
    return DriftPlan(job, raw_database, drifts)


def log_drift(plan: DriftPlan) -> None:
    """Log each change: info when evolved, warning for drops and under ``warn``, error when
    quarantined."""
    for name, drift in sorted(plan.tables.items()):
        for change in drift.changes:
            if drift.quarantined:
                level = logging.ERROR
            elif drift.accepted:
                level = logging.INFO
            elif drift.policy == "warn" or change.kind == "dropped":
                level = logging.WARNING
            else:
                level = logging.INFO
            action = (
                "rebuilt (accepted)"
                if drift.accepted
                else ("quarantined" if drift.quarantined else "evolved")
            )
            log.log(level, "schema drift in %s: %s; %s", name, change.describe(), action)


def blocked(
    reads: Mapping[TableName, Iterable[TableName]], quarantined: set[TableName]
) -> set[TableName]:
    """The tables that read a quarantined table, directly or through other tables.

    >>> a, b, c = TableName("raw", "a"), TableName("gold", "b"), TableName("gold", "c")
    >>> sorted(str(t) for t in blocked({b: [a], c: [b]}, {a}))
    ['gold.b', 'gold.c']
    """
    out: set[TableName] = set()
    changed = True
    while changed:
        changed = False
        for table, inputs in reads.items():
            if table not in out and any(t in quarantined or t in out for t in inputs):
                out.add(table)
                changed = True
    return out

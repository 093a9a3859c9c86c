"""Change data capture: apply the changes a source's change log recorded to a raw table.

The log (see ``sluice.sources.cdc``) lists the keys of inserted, updated and deleted rows in
order. A run reads the changes between the position committed with the raw table and the
log's current position, then the current source rows of those keys: a key whose row exists
gets that row, a key whose row is gone is deleted from raw (or kept with
``_sluice_deleted_at`` set, under ``deletes: mark``). Only the raw files holding a changed
key are rewritten (``sluice.lake.merge``): new keys alone are one appended file. Applying
the latest state of each key is the same as applying its changes in order, and applying it
twice changes nothing, so a change committed in the source while the run reads is simply
applied again by the next run.
The new position is committed in the same Iceberg snapshot as the rows (the cursor
``_sluice_cdc``), so a run that dies before that commit changes nothing. Without a position
(first run, reset cursor, log recreated) the whole table is read. A TRUNCATE logged since
the position (PostgreSQL) deletes every row raw had as of its time, and the whole table is
read again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.config import CdcSpec
from sluice.core import Cursor, TableName, WrittenTable
from sluice.duck import quote_ident, quote_literal, write_parquet
from sluice.errors import ConfigError, IngestError, did_you_mean
from sluice.ingest.extract import extract_table, source_failure
from sluice.lake.merge import merge_files, parquet_list
from sluice.sources.base import SourceColumn, SourceTable
from sluice.sources.cdc import CHANGE_OPS, TRUNCATE_OP, LogPosition

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("sluice.ingest.cdc")

CDC_CURSOR = "_sluice_cdc"
DELETED_AT_COLUMN = "_sluice_deleted_at"
# Up to this many changed keys, their values are also given as a literal IN list on the first
# key column, which DuckDB's MySQL and PostgreSQL scanners send to the server instead of
# scanning the table: applying 50 changed lines of 300,000 took 0.09-0.29 s with it and
# 0.42-1.6 s without it (bench/cdc_pushdown.py).
PUSHDOWN_KEYS = 1000
# Up to this many changed keys, a source that cannot filter on its side (SQLite) is asked for
# a copy of just their rows (``Source.relation_holding``).
NARROW_KEYS = 100_000
_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
             "UINTEGER", "UBIGINT")  # fmt: skip


def check_cdc_spec(table: SourceTable, spec: CdcSpec, *, job: str) -> None:
    """Refuse a CDC spec whose key columns the source table does not have."""
    columns = {c.name for c in table.columns}
    for name in spec.primary_key:
        if name not in columns:
            raise ConfigError(
                f"jobs.{job}.cdc.{table.name}.primary_key names column '{name}', which source "
                f"table {table.name} does not have.{did_you_mean(name, columns)}"
            )


def changes_select(
    log_relation: str, table: SourceTable, key: Sequence[str], after: LogPosition, upto: int
) -> str:
    """The changes of ``table`` past position ``after`` (sequence numbers above its own, or
    made by the transactions it saw open) up to sequence number ``upto``, one row each:
    sequence number, operation, time (UTC) and the key columns with their lake types."""
    types = {c.name: c.lake_type for c in table.columns}
    operations = ", ".join(quote_literal(op) for op in CHANGE_OPS)
    keys = ", ".join(
        f"CAST(json_extract_string(pk, {quote_literal(_json_path(k))}) AS {types[k]}) "
        f"AS {quote_ident(k)}"
        for k in key
    )
    return (
        "SELECT CAST(seq AS BIGINT) AS seq, CAST(op AS VARCHAR) AS op, "
        f"CAST(changed_at AS TIMESTAMP) AS changed_at, {keys} FROM {log_relation} "
        f"WHERE table_name = {quote_literal(table.name)} AND op IN ({operations}) "
        f"AND {_window(after, upto)}"
    )


def truncated_select(log_relation: str, table: SourceTable, after: LogPosition, upto: int) -> str:
    """The time (UTC) of the last TRUNCATE of ``table`` logged past ``after`` up to ``upto``
    (NULL when there was none)."""
    return (
        f"SELECT max(CAST(changed_at AS TIMESTAMP)) FROM {log_relation} "
        f"WHERE table_name = {quote_literal(table.name)} AND op = {quote_literal(TRUNCATE_OP)} "
        f"AND {_window(after, upto)}"
    )


def _window(after: LogPosition, upto: int) -> str:
    """The log rows past position ``after`` (sequence numbers above its own, or made by the
    transactions it saw open) up to sequence number ``upto``."""
    newer = f"seq > {after.seq}"
    if after.pending:
        newer = f"({newer} OR xid IN ({', '.join(map(str, after.pending))}))"
    return f"seq <= {upto} AND {newer}"


def changed_rows_select(
    batch: Path,
    changes: Path,
    current: tuple[str, ...],
    key: Sequence[str],
    *,
    mark: bool,
    extracted_at: datetime,
) -> str:
    """The rows that replace the raw rows of the changed keys: their current source rows
    (``batch``) and, with ``mark``, the raw rows of deleted keys with their deletion time."""
    new = f"read_parquet({quote_literal(str(batch))})"
    logged = f"read_parquet({quote_literal(str(changes))})"
    keys = ", ".join(quote_ident(k) for k in key)
    parts = [f"SELECT * FROM {new}"]
    if current and mark:
        old = f"read_parquet({parquet_list(current)}, union_by_name = true)"
        deleted = (
            f"SELECT {keys}, timezone('UTC', max(changed_at) FILTER (WHERE op = 'D')) "
            f"AS deleted_at FROM {logged} GROUP BY ALL"
        )
        now = f"TIMESTAMPTZ {quote_literal(extracted_at.isoformat())}"
        parts.append(
            f"SELECT old.* REPLACE (coalesce(old.{DELETED_AT_COLUMN}, d.deleted_at, {now}) "
            f"AS {DELETED_AT_COLUMN}) FROM {old} AS old JOIN ({deleted}) AS d USING ({keys}) "
            f"ANTI JOIN {new} AS n USING ({keys})"
        )
    return " UNION ALL BY NAME ".join(parts)


def extract_changes(
    con: duckdb.DuckDBPyConnection,
    *,
    relation: str,
    log_relation: str,
    table: SourceTable,
    spec: CdcSpec,
    cursor: Cursor,
    position: LogPosition,
    current: tuple[str, ...],
    target: TableName,
    path: Path,
    work_dir: Path,
    run_id: str,
    extracted_at: datetime,
    kept: Sequence[tuple[str, str]] = (),
    narrow: Callable[[str, list[int | str]], str] | None = None,
) -> WrittenTable:
    """Write ``table``'s raw rows with the changes up to ``position`` applied to ``path``
    (all its rows when ``cursor`` holds no position of this log, or the ``deletes`` policy
    changed); the result carries the new cursor and the rows and changes read. ``narrow``,
    given a key column and the changed values of it, returns a FROM item to read instead of
    ``relation`` that holds at least those rows (see ``Source.relation_holding``)."""
    columns = [*kept, *([(DELETED_AT_COLUMN, "TIMESTAMPTZ")] if spec.deletes == "mark" else [])]
    previous = LogPosition.parse(cursor.value)
    new_cursor = Cursor(CDC_CURSOR, position.cursor(), cursor.snapshot_id)

    def read(source: str, into: Path) -> WrittenTable:
        return extract_table(
            con,
            relation=source,
            table=table,
            target=target,
            path=into,
            run_id=run_id,
            extracted_at=extracted_at,
            kept=columns,
        )

    if (
        previous is None
        or previous.epoch != position.epoch
        or (spec.deletes == "mark") != _has_deletion_marks(con, current)
    ):
        whole = read(relation, path)
        return WrittenTable(
            target, (str(path),), whole.rows, cursor=new_cursor, rows_read=whole.rows
        )
    changes = work_dir / f"{table.name}.changes.parquet"
    batch = work_dir / f"{table.name}.batch.parquet"
    keys = ", ".join(quote_ident(k) for k in spec.primary_key)
    first_key = next(c for c in table.columns if c.name == spec.primary_key[0])
    logged = f"read_parquet({quote_literal(str(changes))})"
    import duckdb

    try:
        row = con.execute(truncated_select(log_relation, table, previous, position.seq)).fetchone()
        truncated_at = row[0] if row else None
        logged_changes = changes_select(
            log_relation, table, spec.primary_key, previous, position.seq
        )
        if truncated_at is not None and current:
            # Every row the table had is deleted as of the TRUNCATE; the rows it has now
            # are read in full below.
            logged_changes += (
                f" UNION ALL SELECT CAST(NULL AS BIGINT), 'D', "
                f"TIMESTAMP {quote_literal(str(truncated_at))}, {keys} "
                f"FROM read_parquet({parquet_list(current)}, union_by_name = true)"
            )
        write_parquet(con, logged_changes, changes)
        counted = con.execute(f"SELECT count(*) FROM {logged} WHERE seq IS NOT NULL").fetchone()
        count = int(counted[0]) if counted else 0
        unkeyed = con.execute(
            f"SELECT count(*) FROM {logged} WHERE "
            + " OR ".join(f"{quote_ident(k)} IS NULL" for k in spec.primary_key)
        ).fetchone()
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        raise source_failure(
            exc,
            f"reading the logged changes of {table.name}",
            f"Reading the logged changes of {table.name} failed",
            hint="Check the change log with 'sluice source enable-cdc --tables "
            f"{table.name}' (harmless when it is in place).",
        ) from exc
    if unkeyed and unkeyed[0]:
        raise IngestError(
            f"{unkeyed[0]} logged changes of {table.name} have no value for "
            f"jobs.<job>.cdc.{table.name}.primary_key {list(spec.primary_key)}.",
            hint="Make primary_key the source table's primary key (the key its log records).",
        )
    if truncated_at is not None:
        log.info("%s was truncated in the source; reading all its rows", table.name)
        fresh = read(relation, batch)
    else:
        values = _changed_values(con, logged, first_key) if narrow is not None else None
        source = narrow(first_key.name, values) if narrow and values else relation
        if not count:
            # Nothing logged: an empty read, which DuckDB answers without scanning the
            # source (a join with the empty key list still reads much of the table).
            source = f"(SELECT * FROM {relation} WHERE false)"
        fresh = read(
            f"(SELECT s.* FROM {source} AS s "
            f"SEMI JOIN (SELECT DISTINCT {keys} FROM {logged}) AS k USING ({keys})"
            f"{_pushdown(con, logged, first_key)})",
            batch,
        )
    replacing = changed_rows_select(
        batch,
        changes,
        current,
        spec.primary_key,
        mark=spec.deletes == "mark",
        extracted_at=extracted_at,
    )
    try:
        merged = merge_files(
            con,
            current=current,
            batch=replacing,
            keys=f"SELECT DISTINCT {keys} FROM {logged}",
            key_columns=list(spec.primary_key),
            path=path,
        )
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        raise IngestError(
            f"Applying the changes of {table.name} to {target} failed: {str(exc).splitlines()[0]}",
            hint=f"Reset the table with 'sluice job reset-cursor JOB {table.name}'.",
        ) from exc
    return WrittenTable(
        target,
        merged.written,
        merged.rows,
        cursor=new_cursor,
        rows_read=fresh.rows + count,
        kept=merged.kept,
        new_rows=merged.new_rows,
    )


def _has_deletion_marks(con: duckdb.DuckDBPyConnection, current: tuple[str, ...]) -> bool:
    """Whether the raw table's files have the ``_sluice_deleted_at`` column."""
    if not current:
        return False
    files = ", ".join(quote_literal(f) for f in current)
    rows = con.execute(
        f"DESCRIBE SELECT * FROM read_parquet([{files}], union_by_name = true)"
    ).fetchall()
    return any(row[0] == DELETED_AT_COLUMN for row in rows)


def _pushdown(con: duckdb.DuckDBPyConnection, logged: str, column: SourceColumn) -> str:
    """A WHERE clause listing the changed values of a key column, when there are few."""
    name = quote_ident(column.name)
    values = con.execute(
        f"SELECT DISTINCT CAST({name} AS VARCHAR) FROM {logged} LIMIT {PUSHDOWN_KEYS + 1}"
    ).fetchall()
    if not values or len(values) > PUSHDOWN_KEYS:
        return ""
    listed = ", ".join(f"CAST({quote_literal(str(v[0]))} AS {column.lake_type})" for v in values)
    return f" WHERE s.{name} IN ({listed})"


def _changed_values(
    con: duckdb.DuckDBPyConnection, logged: str, column: SourceColumn
) -> list[int | str] | None:
    """The changed values of an integer or text key column, when there are few (values of
    other types might not compare in the source as they do in DuckDB)."""
    kind = column.lake_type.upper()
    if not (kind.startswith(_INTEGERS) or kind.startswith("VARCHAR")):
        return None
    rows = con.execute(
        f"SELECT DISTINCT {quote_ident(column.name)} FROM {logged} "
        f"WHERE {quote_ident(column.name)} IS NOT NULL LIMIT {NARROW_KEYS + 1}"
    ).fetchall()
    if len(rows) > NARROW_KEYS:
        return None
    return [row[0] if isinstance(row[0], int) else str(row[0]) for row in rows]


def _json_path(column: str) -> str:
    """The JSON path of a key column in a logged key object.

    >>> _json_path("orderNumber")
    '$."orderNumber"'
    """
    return '$."' + column.replace('"', '\\"') + '"'

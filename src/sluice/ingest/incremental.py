"""Incremental extraction: read only a table's rows past its cursor and merge them by key.

The merged table is a copy-on-write of the current snapshot at the level of files: the rows
read replace the rows with the same primary key, new keys are added, all other rows are kept
as they were (with the run id and time they were first loaded). Only the files holding a
replaced key are rewritten, so a batch of new rows is one appended file (see
``sluice.lake.merge``). The lake commits the result together with the new cursor, so a run
that dies before that commit changes nothing and one that dies after it has recorded exactly
the rows it merged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.config import IncrementalSpec
from sluice.core import Cursor, TableName, WrittenTable
from sluice.duck import quote_ident, quote_literal
from sluice.errors import ConfigError, IngestError, did_you_mean
from sluice.ingest.extract import extract_table
from sluice.lake.merge import merge_files
from sluice.sources.base import SourceColumn, SourceTable

if TYPE_CHECKING:
    import duckdb

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "DECIMAL", "FLOAT", "DOUBLE")
_TEMPORAL = ("DATE", "TIMESTAMP")


def cursor_column(table: SourceTable, spec: IncrementalSpec, *, job: str) -> SourceColumn:
    """Check a table's incremental spec against its columns; return the cursor column."""
    columns = {c.name: c for c in table.columns}
    key = f"jobs.{job}.incremental.{table.name}"
    for name in (spec.cursor, *spec.primary_key):
        if name not in columns:
            raise ConfigError(
                f"{key} names column '{name}', which source table {table.name} does not have."
                f"{did_you_mean(name, columns)}"
            )
    column = columns[spec.cursor]
    kind = column.lake_type.upper()
    if isinstance(spec.lookback, str) and not kind.startswith(_TEMPORAL):
        raise ConfigError(
            f"{key}.lookback is an interval, but cursor {spec.cursor} is {column.lake_type}; "
            "give a number of cursor units."
        )
    if not isinstance(spec.lookback, str) and spec.lookback and not kind.startswith(_NUMERIC):
        raise ConfigError(
            f"{key}.lookback is a number, but cursor {spec.cursor} is {column.lake_type}; "
            + (
                "give an interval such as '10 minutes'."
                if kind.startswith(_TEMPORAL)
                else "a look-back needs a numeric, date or timestamp cursor."
            )
        )
    return column


def lower_bound(column: SourceColumn, value: str, lookback: float | str) -> str:
    """The SQL expression rows must exceed: the last cursor minus the look-back.

    >>> col = SourceColumn("id", "int(11)", "INTEGER", False)
    >>> lower_bound(col, "10425", 5.0)
    "CAST('10425' AS INTEGER) - 5"
    >>> lower_bound(SourceColumn("t", "datetime", "TIMESTAMP", True), "2026-01-02", "1 hour")
    "CAST('2026-01-02' AS TIMESTAMP) - INTERVAL '1 hour'"
    """
    bound = f"CAST({quote_literal(value)} AS {column.lake_type})"
    if isinstance(lookback, str):
        return f"{bound} - INTERVAL {quote_literal(lookback)}"
    return f"{bound} - {lookback:g}" if lookback else bound


def extract_incremental(
    con: duckdb.DuckDBPyConnection,
    *,
    relation: str,
    table: SourceTable,
    spec: IncrementalSpec,
    column: SourceColumn,
    cursor: Cursor,
    current: tuple[str, ...],
    target: TableName,
    path: Path,
    batch: Path,
    run_id: str,
    extracted_at: datetime,
    kept: Sequence[tuple[str, str]] = (),
    narrow: Callable[[int], str] | None = None,
) -> WrittenTable:
    """Read the rows past ``cursor`` (all rows when it has no value) and merge them into the
    table's ``current`` files, writing ``path``; the result carries the new cursor, the rows
    read and the current files it keeps. ``kept`` columns (dropped in the source) read NULL
    in the new rows. ``narrow``, given an integer below a numeric cursor's lower bound,
    returns a FROM item to read instead of ``relation`` that holds at least its rows above it
    (see ``Source.relation_holding``)."""
    import duckdb

    full = cursor.value is None
    where = None
    if cursor.value is not None:
        bound = lower_bound(column, cursor.value, spec.lookback)
        where = f"{quote_ident(spec.cursor)} > {bound}"
        below = _integer_below(con, bound) if narrow and _is_numeric(column) else None
        if narrow is not None and below is not None:
            relation = narrow(below)
    written_batch = path if full else batch
    read = extract_table(
        con,
        relation=relation,
        table=table,
        target=target,
        path=written_batch,
        run_id=run_id,
        extracted_at=extracted_at,
        where=where,
        kept=kept,
    )
    rows = new_rows = read.rows
    files: tuple[str, ...] = (str(path),)
    kept_files: tuple[str, ...] = ()
    if not full:
        new = f"SELECT * FROM read_parquet({quote_literal(str(batch))})"
        keys = ", ".join(quote_ident(k) for k in spec.primary_key)
        try:
            merged = merge_files(
                con,
                current=current,
                batch=new,
                keys=f"SELECT DISTINCT {keys} FROM ({new})",
                key_columns=spec.primary_key,
                path=path,
            )
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            raise IngestError(
                f"Merging the new rows of {table.name} into {target} failed: "
                f"{str(exc).splitlines()[0]}",
                hint=f"Reset the table with 'sluice job reset-cursor JOB {table.name}'.",
            ) from exc
        rows, files, kept_files = merged.rows, merged.written, merged.kept
        new_rows = merged.new_rows
    value = _new_cursor(con, written_batch, column, cursor.value)
    return WrittenTable(
        target,
        files,
        rows,
        cursor=Cursor(spec.cursor, value, cursor.snapshot_id),
        rows_read=read.rows,
        kept=kept_files,
        new_rows=new_rows,
    )


def _is_numeric(column: SourceColumn) -> bool:
    return column.lake_type.upper().startswith(_NUMERIC)


def _integer_below(con: duckdb.DuckDBPyConnection, bound: str) -> int | None:
    """An integer below the numeric SQL expression ``bound`` (None if it has no such value
    within 64 bits)."""
    import duckdb

    try:
        row = con.execute(f"SELECT CAST(floor({bound}) AS HUGEINT) - 1").fetchone()
    except duckdb.Error:
        return None
    value = None if row is None or row[0] is None else int(row[0])
    return value if value is not None and -(2**63) <= value < 2**63 else None


def _new_cursor(
    con: duckdb.DuckDBPyConnection, batch: Path, column: SourceColumn, previous: str | None
) -> str | None:
    """The largest cursor value read, never below the previous cursor (text, or None)."""
    name = quote_ident(column.name)
    found = f"max({name})"
    if previous is not None:
        found = f"greatest({found}, CAST({quote_literal(previous)} AS {column.lake_type}))"
    row = con.execute(
        f"SELECT CAST({found} AS VARCHAR) FROM read_parquet({quote_literal(str(batch))})"
    ).fetchone()
    return None if row is None or row[0] is None else str(row[0])

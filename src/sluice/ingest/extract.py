"""Full extraction of a source table into a Parquet file, streamed by DuckDB."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.core import TableName, WrittenTable
from sluice.duck import quote_ident, quote_literal
from sluice.errors import IngestError
from sluice.sources.base import SourceTable

if TYPE_CHECKING:
    import duckdb

RUN_ID_COLUMN = "_sluice_run_id"
EXTRACTED_AT_COLUMN = "_sluice_extracted_at"


def extract_select(alias: str, table: SourceTable, *, run_id: str, extracted_at: datetime) -> str:
    """The SELECT that reads a source table with its exact types and the load metadata."""
    columns = [
        f"CAST({quote_ident(c.name)} AS {c.lake_type}) AS {quote_ident(c.name)}"
        for c in table.columns
    ]
    columns.append(f"{quote_literal(run_id)} AS {RUN_ID_COLUMN}")
    columns.append(
        f"TIMESTAMPTZ {quote_literal(extracted_at.isoformat())} AS {EXTRACTED_AT_COLUMN}"
    )
    return f"SELECT {', '.join(columns)} FROM {alias}.{quote_ident(table.name)}"


def write_parquet(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> int:
    """Write a query's rows to one snappy Parquet file; return the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    result = con.execute(
        f"COPY ({sql}) TO {quote_literal(str(path))} (FORMAT parquet, COMPRESSION snappy)"
    ).fetchone()
    return int(result[0]) if result else 0


def extract_table(
    con: duckdb.DuckDBPyConnection,
    *,
    alias: str,
    table: SourceTable,
    target: TableName,
    path: Path,
    run_id: str,
    extracted_at: datetime,
) -> WrittenTable:
    """Extract a whole source table to ``path``."""
    import duckdb

    sql = extract_select(alias, table, run_id=run_id, extracted_at=extracted_at)
    try:
        rows = write_parquet(con, sql, path)
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        raise IngestError(
            f"Extracting source table {table.name} failed: {str(exc).splitlines()[0]}",
            hint="Check that its values match the declared column types.",
        ) from exc
    return WrittenTable(target, (str(path),), rows)

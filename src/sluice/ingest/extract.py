"""Full extraction of a source table into a Parquet file, streamed by DuckDB."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.core import TableName, WrittenTable
from sluice.duck import quote_ident, quote_literal, write_parquet
from sluice.errors import IngestError, SluiceError, SourceUnavailableError
from sluice.sources.base import SourceTable, is_connection_error

if TYPE_CHECKING:
    import duckdb

RUN_ID_COLUMN = "_sluice_run_id"
EXTRACTED_AT_COLUMN = "_sluice_extracted_at"


def extract_select(
    relation: str,
    table: SourceTable,
    *,
    run_id: str,
    extracted_at: datetime,
    kept: Sequence[tuple[str, str]] = (),
) -> str:
    """The SELECT that reads a source table (the DuckDB FROM item ``relation``) with its exact
    types and the load metadata; ``kept`` columns (name, type), dropped in the source but
    kept in the lake, read NULL."""
    columns = [
        f"CAST({(c.read_sql or '{}').format(quote_ident(c.name))} AS {c.lake_type}) "
        f"AS {quote_ident(c.name)}"
        for c in table.columns
    ]
    columns.extend(f"CAST(NULL AS {kind}) AS {quote_ident(name)}" for name, kind in kept)
    columns.append(f"{quote_literal(run_id)} AS {RUN_ID_COLUMN}")
    columns.append(
        f"TIMESTAMPTZ {quote_literal(extracted_at.isoformat())} AS {EXTRACTED_AT_COLUMN}"
    )
    return f"SELECT {', '.join(columns)} FROM {relation}"


def extract_table(
    con: duckdb.DuckDBPyConnection,
    *,
    relation: str,
    table: SourceTable,
    target: TableName,
    path: Path,
    run_id: str,
    extracted_at: datetime,
    where: str | None = None,
    kept: Sequence[tuple[str, str]] = (),
) -> WrittenTable:
    """Extract a source table, read through the DuckDB FROM item ``relation``, to ``path``
    (only the rows matching the SQL condition ``where``, if given)."""
    import duckdb

    sql = extract_select(relation, table, run_id=run_id, extracted_at=extracted_at, kept=kept)
    if where:
        sql = f"{sql} WHERE {where}"
    try:
        rows = write_parquet(con, sql, path)
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        raise source_failure(
            exc,
            f"extracting {table.name}",
            f"Extracting source table {table.name} failed",
            hint="Check that its values match the declared column types.",
        ) from exc
    return WrittenTable(target, (str(path),), rows)


def source_failure(exc: Exception, doing: str, failed: str, *, hint: str) -> SluiceError:
    """The error for a failed read of the source: retried (``SourceUnavailableError``) when
    the connection was lost, else an ``IngestError`` that says ``failed`` and the cause."""
    message = str(exc).splitlines()[0]
    if is_connection_error(message):
        return SourceUnavailableError(f"Lost the source while {doing}: {message}")
    return IngestError(f"{failed}: {message}", hint=hint)

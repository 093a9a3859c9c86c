"""Make query results storable in Iceberg: cast DuckDB types Iceberg lacks to ones it has."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sluice.duck import quote_ident

if TYPE_CHECKING:
    import duckdb

_CASTS = {
    "TINYINT": "INTEGER",
    "SMALLINT": "INTEGER",
    "UTINYINT": "INTEGER",
    "USMALLINT": "INTEGER",
    "UINTEGER": "BIGINT",
    "UBIGINT": "DECIMAL(20, 0)",
    "HUGEINT": "DECIMAL(38, 0)",
    "UHUGEINT": "DECIMAL(38, 0)",
    "TIMESTAMP_S": "TIMESTAMP",
    "TIMESTAMP_MS": "TIMESTAMP",
    "TIMESTAMP_NS": "TIMESTAMP",
    "TIME WITH TIME ZONE": "TIME",
    "UUID": "VARCHAR",
    "BIT": "VARCHAR",
    "INTERVAL": "VARCHAR",
}


def lake_cast(duckdb_type: str) -> str | None:
    """The type to cast a DuckDB column type to before writing it to the lake, or None.

    >>> lake_cast("HUGEINT"), lake_cast("BIGINT"), lake_cast("ENUM('a', 'b')")
    ('DECIMAL(38, 0)', None, 'VARCHAR')
    """
    if duckdb_type.startswith("ENUM("):
        return "VARCHAR"
    return _CASTS.get(duckdb_type)


def lake_select(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """Wrap a query so every output column has a type Iceberg can store."""
    described = con.execute(f"DESCRIBE ({sql})").fetchall()
    casts = [(name, lake_cast(str(kind))) for name, kind, *_ in described]
    if all(cast is None for _, cast in casts):
        return sql
    columns = ", ".join(
        f"CAST({quote_ident(name)} AS {cast}) AS {quote_ident(name)}" if cast else quote_ident(name)
        for name, cast in casts
    )
    return f"SELECT {columns} FROM ({sql}) AS _sluice_model"

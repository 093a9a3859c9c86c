"""DuckDB connections with extensions loaded from pinned pip packages, never downloaded."""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.errors import SluiceError

if TYPE_CHECKING:
    import duckdb

_EXTENSION_PACKAGES = {
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
    "mysql_scanner": "duckdb_extension_mysql_scanner",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
    "httpfs": "duckdb_extension_httpfs",
}

# DuckDB dictionary-encodes a Parquet column chunk until it holds this many distinct values.
# Its own default is large enough that it builds, then discards, dictionaries for key and
# amount columns; at this limit files are as small, read as fast and write ~25% faster.
PARQUET_DICTIONARY_LIMIT = 6144

_NO_DOWNLOADS = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


@cache
def extension_path(name: str) -> Path:
    """Return the path of a DuckDB extension shipped by its ``duckdb-extension-*`` package."""
    package = _EXTENSION_PACKAGES.get(name)
    if package is None:
        raise SluiceError(f"DuckDB extension '{name}' is not one Sluice ships.")
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        pip_name = package.replace("_", "-")
        raise SluiceError(
            f"DuckDB extension '{name}' is not installed.", hint=f"Run: pip install {pip_name}"
        ) from exc
    folder = Path(module.__file__ or "").parent
    found = sorted(folder.rglob(f"{name}.duckdb_extension"))
    if not found:
        raise SluiceError(f"Package {package} has no {name}.duckdb_extension file; reinstall it.")
    return found[-1]


def connect(
    database: str = ":memory:",
    *,
    extensions: tuple[str, ...] = (),
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection that never downloads, with the named extensions loaded by path."""
    import duckdb

    config: dict[str, str | bool | int | float | list[str]] = dict(_NO_DOWNLOADS)
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    if temp_directory:
        config["temp_directory"] = temp_directory
    con = duckdb.connect(database, config=config)
    for name in extensions:
        con.execute(f"LOAD '{extension_path(name)}'")
    return con


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB.

    >>> quote_ident('orderDate')
    '"orderDate"'
    """
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a string literal for DuckDB.

    >>> quote_literal("it's")
    "'it''s'"
    """
    return "'" + value.replace("'", "''") + "'"


def write_parquet(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> int:
    """Write a query's rows to one snappy Parquet file; return the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    result = con.execute(
        f"COPY ({sql}) TO {quote_literal(str(path))} "
        f"(FORMAT parquet, COMPRESSION snappy, DICTIONARY_SIZE_LIMIT {PARQUET_DICTIONARY_LIMIT})"
    ).fetchone()
    return int(result[0]) if result else 0

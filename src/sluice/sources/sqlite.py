"""SQLite files as a source, read through DuckDB's sqlite scanner."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.duck import quote_ident, quote_literal
from sluice.errors import SourceError, SourceUnavailableError
from sluice.sources.base import (
    SourceColumn,
    SourceTable,
    is_connection_error,
    is_internal_table,
)
from sluice.sources.types import lake_type

if TYPE_CHECKING:
    import duckdb

#: The first 16 bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"
_AFFINITY_FALLBACK = {"INTEGER": "BIGINT", "REAL": "DOUBLE", "BLOB": "BLOB"}
# An attached SQLite file is read by one thread; sqlite_scan() reads rowid ranges of
# 122,880 rows on every DuckDB thread, each with its own connection. Worth it for big tables.
PARALLEL_SCAN_ROWS = 500_000


def sqlite_path(url: str, *, base_dir: Path) -> Path:
    """The file a ``sqlite:///path`` URL names (``sqlite:////abs`` is absolute).

    >>> str(sqlite_path("sqlite:///data/src.db", base_dir=Path("/p")))
    '/p/data/src.db'
    >>> str(sqlite_path("sqlite:////tmp/src.db", base_dir=Path("/p")))
    '/tmp/src.db'
    """
    if not url.startswith("sqlite:///"):
        raise SourceError(
            f"SQLite URL '{url}' must look like sqlite:///relative/file.db or sqlite:////abs/file.db."
        )
    path = Path(url.removeprefix("sqlite:///"))
    return path if path.is_absolute() else base_dir / path


class SqliteSource:
    """A SQLite database file. Declared MySQL-style types are kept exactly."""

    def __init__(self, url: str, base_dir: Path) -> None:
        self.url = url
        self.path = sqlite_path(url, base_dir=base_dir)

    def _check_file(self) -> None:
        if not self.path.is_file():
            raise SourceError(
                f"Source file {self.path} does not exist.",
                hint=f"Generate one with 'sluice source generate --out {self.path}' "
                "or point the source URL at an existing file.",
            )
        with self.path.open("rb") as handle:
            if handle.read(16) != SQLITE_MAGIC:
                raise SourceError(
                    f"Source file {self.path} is not a SQLite database.",
                    hint="Point the source URL at a .db file written by SQLite.",
                )

    def tables(self) -> list[SourceTable]:
        """Every user table, with declared types mapped to lake types."""
        self._check_file()
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise SourceError(f"Cannot open source {self.path}: {exc}.") from exc
        try:
            names = [
                row[0]
                for row in con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
                if not is_internal_table(row[0])
            ]
            return [
                SourceTable(name, self._columns(con, name), _estimated_rows(con, name))
                for name in names
            ]
        except sqlite3.DatabaseError as exc:
            error = SourceUnavailableError if is_connection_error(str(exc)) else SourceError
            raise error(f"Cannot read source {self.path}: {exc}.") from exc
        finally:
            con.close()

    @staticmethod
    def _columns(con: sqlite3.Connection, table: str) -> tuple[SourceColumn, ...]:
        columns = []
        for _cid, name, declared, notnull, _default, pk in con.execute(
            f"PRAGMA table_info({quote_literal(table)})"
        ):
            mapped = lake_type(declared) or _affinity_type(declared)
            columns.append(SourceColumn(name, declared, mapped, not (notnull or pk)))
        return tuple(columns)

    def attach(self, con: duckdb.DuckDBPyConnection, alias: str) -> None:
        """Attach the file to DuckDB read-only as ``alias``."""
        self._check_file()
        con.execute(f"ATTACH {quote_literal(str(self.path))} AS {alias} (TYPE sqlite, READ_ONLY)")

    def write_privileges(self) -> list[str]:
        """None: the file is always opened read-only."""
        return []

    def relation(self, alias: str, table: SourceTable) -> str:
        """Big rowid tables are scanned in parallel with ``sqlite_scan``; others via ``alias``.

        >>> source = SqliteSource("sqlite:////data/src.db", Path("/"))
        >>> source.relation("src", SourceTable("orders", (), estimated_rows=326))
        'src."orders"'
        >>> source.relation("src", SourceTable("orderdetails", (), estimated_rows=2_996_000))
        "sqlite_scan('/data/src.db', 'orderdetails')"
        """
        if (table.estimated_rows or 0) >= PARALLEL_SCAN_ROWS:
            return f"sqlite_scan({quote_literal(str(self.path))}, {quote_literal(table.name)})"
        return f"{alias}.{quote_ident(table.name)}"


def _estimated_rows(con: sqlite3.Connection, table: str) -> int | None:
    """The largest rowid: an instant upper bound of the row count (None without rowids)."""
    try:
        row = con.execute(f"SELECT max(rowid) FROM {quote_ident(table)}").fetchone()
    except sqlite3.OperationalError:
        return None
    return int(row[0] or 0) if row else None


def _affinity_type(declared: str) -> str:
    """SQLite's type-affinity rules, for declared types no dialect knows."""
    upper = declared.upper()
    if "INT" in upper:
        return _AFFINITY_FALLBACK["INTEGER"]
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")) or not upper:
        return "VARCHAR"
    if "BLOB" in upper:
        return _AFFINITY_FALLBACK["BLOB"]
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return _AFFINITY_FALLBACK["REAL"]
    return "VARCHAR"

"""SQLite files as a source, read through DuckDB's sqlite scanner."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sluice import duck
from sluice.duck import quote_ident, quote_literal
from sluice.errors import SourceError, SourceUnavailableError
from sluice.sources.base import (
    Attached,
    Rows,
    RowsAbove,
    SourceColumn,
    SourceTable,
    is_connection_error,
    is_internal_table,
)
from sluice.sources.types import lake_type

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("sluice.sources.sqlite")
#: The first 16 bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"
_AFFINITY_FALLBACK = {"INTEGER": "BIGINT", "REAL": "DOUBLE", "BLOB": "BLOB"}
# An attached SQLite file is read by one thread; sqlite_scan() reads rowid ranges of
# 122,880 rows on every DuckDB thread, each with its own connection. Worth it for big tables.
PARALLEL_SCAN_ROWS = 500_000
# DuckDB's sqlite scanner filters only after reading every row: finding 30,000 new order lines
# among 3 million took 0.7 CPU-seconds. From this many rows up, an incremental read first has
# SQLite copy the rows past the cursor (found through the cursor's index) into a small file,
# which took 0.02 s there.
NARROW_ROWS = 100_000


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

    lists_tables_when_attached = False  # sqlite3 reads the schema faster than the scanner loads

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

    def tables(self, attached: Attached | None = None) -> list[SourceTable]:
        """Every user table, with declared types mapped to lake types (read with sqlite3)."""
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
        """Attach the file to DuckDB read-only as ``alias`` (loading the sqlite scanner)."""
        self._check_file()
        con.execute(f"LOAD {quote_literal(str(duck.extension_path('sqlite_scanner')))}")
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

    def relation_holding(self, alias: str, table: SourceTable, rows: Rows, work_dir: Path) -> str:
        """For a big table, a copy of ``rows`` in a new file in ``work_dir`` (see
        ``copy_rows_past`` and ``copy_rows_with``); ``relation`` for a small table, or when
        the copy fails for a reason other than the file being locked."""
        if (table.estimated_rows or 0) < NARROW_ROWS:
            return self.relation(alias, table)
        self._check_file()
        copy = work_dir / f"{table.name}.rows.db"
        try:
            if isinstance(rows, RowsAbove):
                copy_rows_past(self.path, table.name, rows.column, rows.bound, copy)
            else:
                copy_rows_with(self.path, table.name, rows.column, rows.values, copy)
        except sqlite3.Error as exc:
            copy.unlink(missing_ok=True)
            if is_connection_error(str(exc)):
                raise SourceUnavailableError(f"Cannot read source {self.path}: {exc}.") from exc
            log.info("reading all rows of %s: copying the ones needed failed: %s", table.name, exc)
            return self.relation(alias, table)
        return f"sqlite_scan({quote_literal(str(copy))}, {quote_literal(table.name)})"


def copy_rows_past(source: Path, table: str, column: str, bound: int, copy: Path) -> int:
    """Copy the rows of ``table`` whose ``column`` is above the number ``bound`` into a new
    SQLite file ``copy``; return how many.

    The copy's table is created by the source's own CREATE TABLE statement, so DuckDB's
    scanner reads it with the same types. SQLite sorts every text and blob value after every
    number, so rows whose value is not a number are copied too: the copy holds at least the
    rows a DuckDB filter on ``column`` above ``bound`` keeps, and the caller applies that.
    """
    return _copy_rows(source, table, copy, f"{quote_ident(column)} > ?", parameters=(bound,))


def copy_rows_with(
    source: Path, table: str, column: str, values: Sequence[int | str], copy: Path
) -> int:
    """Copy the rows of ``table`` whose ``column`` equals one of ``values`` (SQLite compares
    them under the column's affinity) into a new SQLite file ``copy``, as ``copy_rows_past``;
    return how many."""

    def listed(con: sqlite3.Connection) -> None:
        con.execute("CREATE TEMP TABLE _sluice_values (v)")
        con.executemany("INSERT INTO temp._sluice_values VALUES (?)", ((v,) for v in values))

    where = f"{quote_ident(column)} IN (SELECT v FROM temp._sluice_values)"
    return _copy_rows(source, table, copy, where, prepare=listed)


def _copy_rows(
    source: Path,
    table: str,
    copy: Path,
    where: str,
    *,
    parameters: tuple[object, ...] = (),
    prepare: Callable[[sqlite3.Connection], None] | None = None,
) -> int:
    copy.unlink(missing_ok=True)
    con = sqlite3.connect(copy.resolve().as_uri(), uri=True, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.execute("ATTACH DATABASE ? AS src", (source.resolve().as_uri() + "?mode=ro",))
        found = con.execute(
            "SELECT sql FROM src.sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        if found is None or not found[0]:
            raise sqlite3.OperationalError(f"no such table: {table}")
        con.execute(found[0])
        if prepare is not None:
            prepare(con)
        names = [row[1] for row in con.execute(f"PRAGMA src.table_info({quote_ident(table)})")]
        listed = ", ".join(quote_ident(n) for n in names)
        con.execute("BEGIN")
        copied = con.execute(
            f"INSERT INTO main.{quote_ident(table)} ({listed}) SELECT {listed} "
            f"FROM src.{quote_ident(table)} WHERE {where}",
            parameters,
        ).rowcount
        con.execute("COMMIT")
    finally:
        con.close()
    return int(copied)


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

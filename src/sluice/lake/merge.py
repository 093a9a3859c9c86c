"""Merging rows into a table's data files by key, rewriting only the files that change.

A table is a set of immutable Parquet files. Merging a batch of rows by key replaces the
rows whose key is in a set of keys (the batch's own keys, plus any removed upstream): the
files holding none of those keys are kept as they are, the files holding some are rewritten
without them into one new file together with the batch. A batch of only new keys is thus an
appended file. The whole table is rewritten instead when it has too many files, or when the
batch's columns differ from the table's (schema drift), so readers always see files of one
schema and the file count stays bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.duck import quote_ident, quote_literal, write_parquet

if TYPE_CHECKING:
    import duckdb

MAX_FILES = 16  # a merge that would leave more files than this rewrites the table instead


@dataclass(frozen=True)
class MergedFiles:
    """A table's files after a merge: ``kept`` from the previous snapshot, ``written`` new
    (none when the merge changed nothing).

    ``rows`` counts the whole merged table, ``new_rows`` the rows of ``written``. ``kept`` is
    empty when the table was rewritten.
    """

    kept: tuple[str, ...]
    written: tuple[str, ...]
    rows: int
    new_rows: int


def parquet_list(files: tuple[str, ...] | list[str]) -> str:
    """A DuckDB list literal of file paths.

    >>> parquet_list(["/a.parquet", "/b.parquet"])
    "['/a.parquet', '/b.parquet']"
    """
    return "[" + ", ".join(quote_literal(f) for f in files) + "]"


def merge_files(
    con: duckdb.DuckDBPyConnection,
    *,
    current: tuple[str, ...],
    batch: str,
    keys: str,
    key_columns: list[str],
    path: Path,
) -> MergedFiles:
    """Merge the rows of the SELECT ``batch`` into the table whose files are ``current``:
    rows whose key (``key_columns``) is in the SELECT ``keys`` are dropped, the batch is
    added. Writes one file, ``path``."""
    if not current:
        rows = write_parquet(con, batch, path)
        return MergedFiles((), (str(path),), rows, rows)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _sluice_merge_keys AS {keys}")
    try:
        on = keys_match(
            "old", "k", key_columns, null_safe=has_nulls(con, "_sluice_merge_keys", key_columns)
        )
        touched = _files_with_keys(con, current, on)
        kept = tuple(f for f in current if f not in touched)
        if not _same_columns(con, batch, current) or len(kept) + 1 > MAX_FILES:
            kept, touched = (), set(current)
        sql = batch
        if touched:
            rewritten = f"read_parquet({parquet_list(sorted(touched))}, union_by_name = true)"
            sql = (
                f"SELECT * FROM ({batch}) UNION ALL BY NAME SELECT old.* FROM {rewritten} AS old "
                f"ANTI JOIN _sluice_merge_keys AS k ON {on}"
            )
        written = write_parquet(con, sql, path)
    finally:
        con.execute("DROP TABLE IF EXISTS _sluice_merge_keys")
    if not written and kept:
        # Nothing new: the table keeps its files (Iceberg scans skip empty files anyway).
        path.unlink(missing_ok=True)
        return MergedFiles(kept, (), _row_count(con, kept), 0)
    return MergedFiles(kept, (str(path),), written + _row_count(con, kept), written)


def keys_match(left: str, right: str, columns: Sequence[str], *, null_safe: bool) -> str:
    """The join condition of two aliases on equal ``columns``; NULLs match only if
    ``null_safe``. A plain ``=`` lets DuckDB skip the row groups of the bigger side that
    hold none of the smaller side's keys (0.09 s against 0.005 s for 30,000 keys among
    3 million rows); it is exact whenever one side has no NULL in these columns.

    >>> keys_match("old", "k", ["a", "b"], null_safe=False)
    'old."a" = k."a" AND old."b" = k."b"'
    >>> keys_match("old", "k", ["a"], null_safe=True)
    'old."a" IS NOT DISTINCT FROM k."a"'
    """
    operator = "IS NOT DISTINCT FROM" if null_safe else "="
    return " AND ".join(
        f"{left}.{quote_ident(c)} {operator} {right}.{quote_ident(c)}" for c in columns
    )


def has_nulls(con: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str]) -> bool:
    """Whether a row of ``table`` has a NULL in one of ``columns``."""
    where = " OR ".join(f"{quote_ident(c)} IS NULL" for c in columns)
    return con.execute(f"SELECT 1 FROM {table} WHERE {where} LIMIT 1").fetchone() is not None


def _files_with_keys(con: duckdb.DuckDBPyConnection, files: tuple[str, ...], on: str) -> set[str]:
    """The files holding a row whose key is in ``_sluice_merge_keys`` (join condition ``on``
    between ``old`` and ``k``)."""
    found = con.execute(
        f"SELECT DISTINCT old.filename FROM read_parquet({parquet_list(files)}, filename = true, "
        f"union_by_name = true) AS old SEMI JOIN _sluice_merge_keys AS k ON {on}"
    ).fetchall()
    return {str(row[0]) for row in found}


def _same_columns(con: duckdb.DuckDBPyConnection, batch: str, files: tuple[str, ...]) -> bool:
    """True when the batch has exactly the columns, with the same types, of every file."""
    wanted = con.execute(f"DESCRIBE ({batch})").fetchall()
    for file in files:
        have = con.execute(f"DESCRIBE SELECT * FROM read_parquet({quote_literal(file)})").fetchall()
        if [(r[0], r[1]) for r in have] != [(r[0], r[1]) for r in wanted]:
            return False
    return True


def _row_count(con: duckdb.DuckDBPyConnection, files: tuple[str, ...]) -> int:
    if not files:
        return 0
    row = con.execute(
        f"SELECT sum(num_rows) FROM parquet_file_metadata({parquet_list(files)})"
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0

"""A SQLite source's incremental reads: SQLite copies the rows past the cursor, and DuckDB
reads the copy exactly as it reads the table itself."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pytest

from sluice import duck
from sluice.sources.base import RowsAbove, RowsAmong, SourceTable
from sluice.sources.sqlite import NARROW_ROWS, SqliteSource

BIG = SourceTable("t", (), estimated_rows=NARROW_ROWS)
ROWS = [
    # id, price, name, ratio, at, data
    (1, 1.005, "a", 0.1, "2026-01-01 10:00:00", b"\x00\x01"),
    (2, 3, None, 1e300, None, None),
    (None, 2.5, "no id", None, None, None),
    (7, 0.1 + 0.2, "seven", -0.0, "2026-01-02", b"x"),
    (8, 19.99, "eight", 2.0, None, None),
    (2**62, 9.99, "big", 5e-324, "2026-01-03 00:00:00.123456", b""),
]


@pytest.fixture
def source(tmp_path: Path) -> SqliteSource:
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as con:
        con.execute(
            'CREATE TABLE "t" ("id" int(11), "price" decimal(10,2), "name" varchar(20), '
            '"ratio" double, "at" datetime, "data" blob, "doubled" INTEGER '
            'GENERATED ALWAYS AS ("id" * 2) VIRTUAL, UNIQUE ("id"))'
        )
        con.executemany('INSERT INTO t ("id", price, name, ratio, "at", data) VALUES '
                        "(?, ?, ?, ?, ?, ?)", ROWS)  # fmt: skip
    return SqliteSource(f"sqlite:///{path}", tmp_path)


def read(
    con: duckdb.DuckDBPyConnection, relation: str, bound: str, column: str = "id"
) -> list[tuple[object, ...]]:
    return con.execute(
        f'SELECT * FROM {relation} WHERE "{column}" > {bound} ORDER BY ALL'
    ).fetchall()


@pytest.mark.parametrize(
    ("column", "bound"),
    [
        ("id", "0"),
        ("id", "1"),
        ("id", "6.5"),
        ("id", "7"),
        ("id", "CAST(7.25 AS DECIMAL(4, 2))"),
        ("id", "2e18"),
        ("price", "2"),
        ("price", "2.5"),
        ("price", "CAST(9.99 AS DECIMAL(10, 2))"),
    ],
)
def test_the_copy_of_the_rows_past_a_bound_reads_as_the_table(
    source: SqliteSource, tmp_path: Path, column: str, bound: str
) -> None:
    con = duck.connect(extensions=("sqlite_scanner",))
    source.attach(con, "src")
    below = con.execute(f"SELECT CAST(floor({bound}) AS BIGINT) - 1").fetchone()
    assert below is not None
    copy = source.relation_holding("src", BIG, RowsAbove(column, int(below[0])), tmp_path)
    assert "t.rows.db" in copy
    expected = read(con, source.relation("src", BIG), bound, column)
    assert read(con, copy, bound, column) == expected
    assert expected  # every bound above leaves some rows
    copied = con.execute(f"SELECT count(*) FROM {copy}").fetchone()
    assert copied is not None and copied[0] < len(ROWS)  # the rest was never read


@pytest.mark.parametrize(
    ("column", "values"),
    [("id", [1, 7, 99]), ("id", [2**62]), ("name", ["a", "eight", "missing"])],
)
def test_the_copy_of_the_rows_with_some_values_reads_as_the_table(
    source: SqliteSource, tmp_path: Path, column: str, values: list[int | str]
) -> None:
    con = duck.connect(extensions=("sqlite_scanner",))
    source.attach(con, "src")
    copy = source.relation_holding("src", BIG, RowsAmong(column, tuple(values)), tmp_path)
    assert "t.rows.db" in copy
    wanted = ", ".join(repr(v) for v in values)

    def read(relation: str) -> list[tuple[object, ...]]:
        return con.execute(
            f'SELECT * FROM {relation} WHERE "{column}" IN ({wanted}) ORDER BY ALL'
        ).fetchall()

    expected = read(source.relation("src", BIG))
    assert expected and read(copy) == expected
    copied = con.execute(f"SELECT count(*) FROM {copy}").fetchone()
    assert copied is not None and copied[0] == len(expected)


def test_a_value_duckdb_cannot_read_fails_the_copy_as_the_table(
    source: SqliteSource, tmp_path: Path
) -> None:
    # SQLite sorts text after every number: a text id is copied, and fails as in the table.
    with sqlite3.connect(source.path) as con:
        con.execute("INSERT INTO t (\"id\", name) VALUES ('abc', 'text id')")
    con = duck.connect(extensions=("sqlite_scanner",))
    source.attach(con, "src")
    copy = source.relation_holding("src", BIG, RowsAbove("id", 100), tmp_path)
    for relation in (source.relation("src", BIG), copy):
        with pytest.raises(duckdb.Error, match='"id": column was declared as integer'):
            read(con, relation, "100")


def test_small_tables_and_failed_copies_read_the_table(
    source: SqliteSource, tmp_path: Path
) -> None:
    small = SourceTable("t", (), estimated_rows=NARROW_ROWS - 1)
    assert source.relation_holding("src", small, RowsAbove("id", 1), tmp_path) == source.relation(
        "src", small
    )
    missing = SourceTable("gone", (), estimated_rows=NARROW_ROWS)
    assert source.relation_holding("src", missing, RowsAbove("id", 1), tmp_path) == source.relation(
        "src", missing
    )
    assert not (tmp_path / "gone.rows.db").exists()

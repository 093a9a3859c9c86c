"""Check SQL returns exactly the bad rows, compared with the obvious formulation."""

from __future__ import annotations

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.config import CheckSpec, ForeignKeyCheck
from sluice.core import TableName
from sluice.quality.checks import compile_check, run_check
from sluice.quality.proofs import HASHED_ROWS

small = st.one_of(st.none(), st.integers(min_value=0, max_value=3))


def gold_table(columns: str, rows: list[tuple[object, ...]]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose table ``gold.t`` (``columns``, as in CREATE TABLE) holds
    ``rows``."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA gold")
    con.execute(f"CREATE TABLE gold.t ({columns})")
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        con.executemany(f"INSERT INTO gold.t VALUES ({marks})", rows)
    return con


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(small, small, small), max_size=40), st.integers(min_value=1, max_value=3))
def test_unique_finds_exactly_the_duplicated_keys(
    rows: list[tuple[int | None, ...]], width: int
) -> None:
    con = gold_table("a INTEGER, b INTEGER, c INTEGER", list(rows))
    columns = ["a", "b", "c"][:width]
    check = compile_check(TableName("gold", "t"), CheckSpec(unique=columns))
    expected = con.execute(
        f"SELECT {', '.join(columns)}, count(*) FROM gold.t GROUP BY ALL HAVING count(*) > 1"
    ).fetchall()
    actual = con.execute(check.sql).fetchall()
    assert sorted(actual, key=repr) == sorted(expected, key=repr)
    assert check.proof is not None
    assert check.proof.holds(con) == (not expected)
    result = run_check(con, check)
    assert result.failing_rows == len(expected)
    assert result.passed == (not expected)


texts = st.one_of(st.none(), st.sampled_from(["", "a", "b", "é"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(texts, texts), max_size=30))
def test_unique_proof_on_text_keys_holds_exactly_when_no_key_repeats(
    rows: list[tuple[str | None, str | None]],
) -> None:
    con = gold_table("a VARCHAR, b VARCHAR", list(rows))
    check = compile_check(TableName("gold", "t"), CheckSpec(unique=["a", "b"]))
    repeats = len(rows) != len(set(rows))
    assert check.proof is not None
    assert check.proof.holds(con) == (not repeats)
    assert run_check(con, check).passed == (not repeats)


def test_unique_proof_leaves_float_keys_to_the_sql() -> None:
    con = gold_table("x DOUBLE", [(0.0,), (-0.0,)])
    check = compile_check(TableName("gold", "t"), CheckSpec(unique=["x"]))
    assert check.proof is not None
    assert not check.proof.holds(con)
    assert run_check(con, check).failing_rows == 1


def test_foreign_key_reports_missing_null_and_duplicate_keys() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA gold")
    con.execute("CREATE TABLE gold.dim AS SELECT * FROM (VALUES (1), (2), (2)) v(k)")
    con.execute("CREATE TABLE gold.fact AS SELECT * FROM (VALUES (1), (3), (3), (NULL)) v(k)")
    spec = CheckSpec(foreign_key=ForeignKeyCheck(column="k", references="dim.k"))
    result = run_check(con, compile_check(TableName("gold", "fact"), spec))
    problems = sorted(
        ((row["problem"], row["key"], row["rows"]) for row in result.sample), key=repr
    )
    assert problems == [
        ("missing from dim", "3", 2),
        ("missing from dim", None, 1),
        ("not unique in dim", "2", 2),
    ]
    optional = CheckSpec(
        foreign_key=ForeignKeyCheck(column="k", references="dim.k", required=False)
    )
    lenient = run_check(con, compile_check(TableName("gold", "fact"), optional))
    assert lenient.failing_rows == 2


keys = st.lists(st.one_of(st.none(), st.integers(min_value=-2, max_value=6)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(keys, keys, st.booleans())
def test_foreign_key_proof_never_passes_a_broken_key(
    dim: list[int | None], fact: list[int | None], required: bool
) -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA gold")
    con.execute("CREATE TABLE gold.dim (k BIGINT)")
    con.execute("CREATE TABLE gold.fact (k INTEGER)")
    for table, values in (("dim", dim), ("fact", fact)):
        for k in values:
            con.execute(f"INSERT INTO gold.{table} VALUES (?)", [k])
    spec = CheckSpec(foreign_key=ForeignKeyCheck(column="k", references="dim.k", required=required))
    check = compile_check(TableName("gold", "fact"), spec)
    assert check.proof is not None
    bad_rows = con.execute(check.sql).fetchall()
    proven = check.proof.holds(con)
    if proven:
        assert bad_rows == []
    keys = [k for k in dim if k is not None]
    dense = (
        len(keys) == len(dim) and keys and len(set(keys)) == len(keys) == max(keys) - min(keys) + 1
    )
    if dense and not bad_rows:
        assert proven
    assert run_check(con, check).failing_rows == len(bad_rows)


def test_foreign_key_proof_applies_to_integer_keys_only() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA gold")
    con.execute(
        "CREATE TABLE gold.dim AS SELECT range + 1 AS k, CAST(range + 1 AS VARCHAR) AS s FROM range(5)"
    )
    con.execute(
        "CREATE TABLE gold.fact AS SELECT * FROM (VALUES (1, '1'), (5, '5'), (3, '3')) v(k, s)"
    )
    dense = compile_check(
        TableName("gold", "fact"),
        CheckSpec(foreign_key=ForeignKeyCheck(column="k", references="dim.k")),
    )
    text = compile_check(
        TableName("gold", "fact"),
        CheckSpec(foreign_key=ForeignKeyCheck(column="s", references="dim.s")),
    )
    assert dense.proof is not None and text.proof is not None
    assert dense.proof.holds(con)
    assert not text.proof.holds(con)
    assert run_check(con, dense).passed and run_check(con, text).passed
    con.execute("DELETE FROM gold.dim WHERE k = 3")
    assert not dense.proof.holds(con)
    assert run_check(con, dense).failing_rows == 1


def test_unique_proof_on_order_lines_and_its_limits() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA gold")
    con.execute(
        "CREATE TABLE gold.fact AS SELECT 10100 + range // 17 AS orderNumber, "
        "1 + range % 17 AS orderLineNumber FROM range(200000)"
    )
    check = compile_check(
        TableName("gold", "fact"), CheckSpec(unique=["orderNumber", "orderLineNumber"])
    )
    assert check.proof is not None
    assert check.proof.holds(con)
    assert run_check(con, check).passed
    con.execute("INSERT INTO gold.fact VALUES (10105, 3)")
    assert not check.proof.holds(con)
    result = run_check(con, check)
    assert result.failing_rows == 1
    assert result.sample == ({"orderNumber": 10105, "orderLineNumber": 3, "copies": 2},)
    # Keys spread too thinly for a bitmap are hashed; past HASHED_ROWS the SQL decides.
    con.execute("CREATE TABLE gold.wide AS SELECT * FROM (VALUES (0), (1000000000000)) v(k)")
    con.execute(
        f"CREATE TABLE gold.wider AS SELECT range * 1000000 AS k FROM range({HASHED_ROWS + 1})"
    )
    wide = compile_check(TableName("gold", "wide"), CheckSpec(unique=["k"]))
    wider = compile_check(TableName("gold", "wider"), CheckSpec(unique=["k"]))
    assert wide.proof is not None and wider.proof is not None
    assert wide.proof.holds(con)
    assert not wider.proof.holds(con)
    assert run_check(con, wider).passed
    assert run_check(con, wide).passed

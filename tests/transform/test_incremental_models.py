"""Incremental models: fact_orders merged from the changed order lines equals a full rebuild.

The project loads order lines incrementally (cursor orderNumber: the simulator only adds
lines), everything else fully. Between runs the simulator places orders, ships and cancels
them and reprices products; the tests also move a customer to another sales rep and rename
a sales rep. After every run the gold table is compared, row for row, with the model's SQL
run on the same published inputs, and the number of recomputed lines with the lines the
changes reach, computed on the source.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import yaml

from sluice import duck
from sluice.core import TableName
from sluice.errors import TransformError
from sluice.jobs.store import JobRun
from sluice.lake.merge import merge_files
from sluice.project import Project
from sluice.sources.classicmodels import write_classicmodels
from sluice.sources.simulate import Activity, SimulationReport, simulate
from sluice.transform.models import parse_model
from tests.conftest import SEED

FACT = TableName("gold", "fact_orders")
LINES = TableName("raw", "orderdetails")
LINE_KEY = ["orderNumber", "productCode"]
# The columns of orders fact_orders reads (not comments, say).
ORDER_READ = "orderNumber, customerNumber, orderDate, requiredDate, shippedDate, status"


def ok(run: JobRun) -> JobRun:
    assert run.state == "SUCCEEDED", run.error
    return run


def source_path(project: Project) -> Path:
    return Path(project.config.sources["classicmodels"].url.removeprefix("sqlite:///"))


@pytest.fixture
def incremental(project: Project) -> Project:
    """A scale-1 project whose order lines load incrementally (appended, never updated)."""
    return with_incremental_lines(project)


def with_incremental_lines(project: Project) -> Project:
    """The project, its order lines loaded incrementally on orderNumber."""
    path = project.root / "sluice.yml"
    config = yaml.safe_load(path.read_text())
    config["jobs"]["etl"]["incremental"] = {
        "orderdetails": {"cursor": "orderNumber", "primary_key": LINE_KEY}
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Project.open(project.root)


def simulated(project: Project, *, seed: int) -> SimulationReport:
    """30 simulated seconds: 60 new orders, shipments, cancellations and price changes."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += max(seconds, 0.25)

    activity = Activity(orders_per_minute=120, duration_seconds=30, updates=True, seed=seed)
    url = project.config.sources["classicmodels"].url
    return simulate(
        url,
        activity,
        base_dir=project.root,
        clock=lambda: now[0],
        sleep=sleep,
        today=date(2026, 1, 15),
    )


def reached_lines(before: Path, after: Path) -> int:
    """Order lines of the source ``after`` that are new, or whose order, product, customer
    or sales rep differs from ``before`` in a column fact_orders reads (directly or through
    a dimension's key): the lines an incremental run must recompute."""
    con = duckdb.connect()
    con.execute(f"LOAD '{duck.extension_path('sqlite_scanner')}'")
    con.execute(f"ATTACH '{before}' AS b (TYPE sqlite, READ_ONLY)")
    con.execute(f"ATTACH '{after}' AS a (TYPE sqlite, READ_ONLY)")

    def changed(table: str, key: str, read: str) -> str:
        return (
            f"SELECT {key} FROM (SELECT {read} FROM a.{table} EXCEPT ALL "
            f"SELECT {read} FROM b.{table}) UNION "
            f"SELECT {key} FROM (SELECT {read} FROM b.{table} EXCEPT ALL "
            f"SELECT {read} FROM a.{table})"
        )

    address = "addressLine1, addressLine2, city, state, postalCode, country"
    row = con.execute(
        f"""
        WITH orders AS ({changed("orders", "orderNumber", ORDER_READ)}),
             products AS ({changed("products", "productCode", "productCode, buyPrice, MSRP")}),
             customers AS ({
            changed(
                "customers", "customerNumber", f"customerNumber, salesRepEmployeeNumber, {address}"
            )
        }),
             reps AS ({changed("employees", "employeeNumber", "employeeNumber")})
        SELECT count(*) FROM a.orderdetails AS od
        JOIN a.orders AS o USING (orderNumber)
        LEFT JOIN a.customers AS c USING (customerNumber)
        WHERE (od.orderNumber, od.productCode) NOT IN (
                SELECT (orderNumber, productCode) FROM b.orderdetails)
           OR od.orderNumber IN (FROM orders)
           OR od.productCode IN (FROM products)
           OR o.customerNumber IN (FROM customers)
           OR c.salesRepEmployeeNumber IN (FROM reps)
        """
    ).fetchone()
    assert row is not None
    return int(row[0])


def assert_equals_full_rebuild(project: Project) -> int:
    """gold.fact_orders holds exactly the rows its SQL gives on the published inputs."""
    sql = (project.root / "models" / "fact_orders.sql").read_text()
    full: pa.Table = project.query(sql).table
    merged: pa.Table = project.query("SELECT * FROM fact_orders").table
    con = duckdb.connect()
    con.register("merged", merged)
    con.register("full_rebuild", full)
    row = con.execute(
        "SELECT (SELECT count(*) FROM merged), (SELECT count(*) FROM full_rebuild), "
        "(SELECT count(*) FROM (FROM merged EXCEPT ALL FROM full_rebuild)), "
        "(SELECT count(*) FROM (FROM full_rebuild EXCEPT ALL FROM merged))"
    ).fetchone()
    assert row is not None
    assert row[0] == row[1] and row[2:] == (0, 0), row
    assert merged.schema == full.schema
    return int(row[0])


def test_fact_orders_merged_after_simulated_activity_equals_a_full_rebuild(
    incremental: Project, tmp_path: Path
) -> None:
    project = incremental
    first = ok(project.run_job("etl"))
    assert first.report["models"]["fact_orders"]["build"] == "full"
    lines = assert_equals_full_rebuild(project)
    source, before = source_path(project), tmp_path / "before.db"
    for round_ in range(4):
        shutil.copy(source, before)
        report = simulated(project, seed=round_ + 1)
        assert report.orders == 60 and report.shipped > 0 and report.price_changes > 0
        with sqlite3.connect(source) as con:
            if round_ == 1:  # a customer moves to another sales rep
                con.execute(
                    "UPDATE customers SET salesRepEmployeeNumber = 1741 WHERE customerNumber = 141"
                )
            if round_ == 2:  # a sales rep is renamed: dim_employees changes, in a column
                # fact_orders does not read, so no line is recomputed for it
                con.execute("UPDATE employees SET lastName = 'Renamed' WHERE employeeNumber = 1416")
        expected = reached_lines(before, source)
        run = ok(project.run_job("etl"))
        assert run.report["models"]["fact_orders"] == {
            "build": "incremental",
            "keys": expected,
        }
        assert expected < lines / 2
        lines = assert_equals_full_rebuild(project)
        failing = {c["name"]: c["failing_rows"] for c in run.report["checks"]}
        assert len(failing) == 15 and set(failing.values()) == {0}, failing
    # New lines were appended to the raw table, never rewritten with the whole table, and
    # every file the current snapshots read survived the clean-up of old runs (price changes
    # reach lines in every gold file, so those were rewritten).
    lines_files = project.lake.current_files(LINES)
    assert len(lines_files) == 5 and first.run_id in {Path(f).stem for f in lines_files}
    for table in (LINES, FACT):
        assert all(Path(f).is_file() for f in project.lake.current_files(table))


def test_what_an_incremental_build_cannot_follow_rebuilds_fully(incremental: Project) -> None:
    project = incremental
    ok(project.run_job("etl"))
    # A reset cursor rewrites the raw order lines: the facts are rebuilt from all of them.
    project.jobs.reset_cursor("etl", "orderdetails")
    run = ok(project.run_job("etl"))
    assert run.report["models"]["fact_orders"] == {
        "build": "full",
        "reason": "rows of raw.orderdetails were rewritten or removed",
    }
    assert_equals_full_rebuild(project)
    # Another SQL: the recorded build no longer describes the table.
    model = project.root / "models" / "fact_orders.sql"
    model.write_text(model.read_text().replace("o.status,", "upper(o.status) AS status,"))
    simulated(project, seed=7)
    run = ok(project.run_job("etl"))
    assert run.report["models"]["fact_orders"] == {
        "build": "full",
        "reason": "the model's SQL changed",
    }
    assert_equals_full_rebuild(project)
    statuses = project.query("SELECT DISTINCT status FROM fact_orders").table.column(0)
    assert all(s == s.upper() for s in statuses.to_pylist())
    # Nothing changed: nothing is recomputed and the table keeps its files.
    files = project.lake.current_files(FACT)
    run = ok(project.run_job("etl"))
    assert run.report["models"]["fact_orders"] == {"build": "incremental", "keys": 0}
    assert project.lake.current_files(FACT) == files
    assert_equals_full_rebuild(project)


@pytest.mark.servers
def test_fact_orders_merged_from_a_server_equals_a_full_rebuild(
    tmp_path: Path, target: tuple[str, str]
) -> None:
    _, url = target
    write_classicmodels(url, scale=1, seed=SEED)
    Project.init(tmp_path / "project", source_url=url)
    project = with_incremental_lines(Project.open(tmp_path / "project"))
    ok(project.run_job("etl"))
    report = simulated(project, seed=3)
    run = ok(project.run_job("etl"))
    build = run.report["models"]["fact_orders"]
    assert build["build"] == "incremental"
    assert report.order_lines <= build["keys"] < report.order_lines + 1000
    assert_equals_full_rebuild(project)
    assert len(project.lake.current_files(LINES)) == 2


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT d.k, count(*) AS n FROM raw.d AS d GROUP BY d.k", "uses an aggregate"),
        ("SELECT DISTINCT d.k FROM raw.d AS d", "uses DISTINCT"),
        ("SELECT d.k, row_number() OVER () AS n FROM raw.d AS d", "uses a window function"),
        ("SELECT * FROM raw.d", "uses SELECT *"),
        ("SELECT d.k, d._sluice_run_id FROM raw.d AS d", "reads load metadata columns"),
        ("SELECT e.k FROM raw.d AS d JOIN raw.e AS e ON e.k = d.k", "unique key k must be"),
        ("SELECT d.k FROM raw.d AS d RIGHT JOIN raw.e AS e ON e.k = d.k", "INNER or LEFT"),
    ],
)
def test_a_model_that_cannot_be_merged_by_key_is_refused(
    tmp_path: Path, sql: str, reason: str
) -> None:
    path = tmp_path / "m.sql"
    path.write_text(f"-- sluice: incremental unique_key=k\n{sql}\n")
    with pytest.raises(TransformError, match="cannot be incremental") as caught:
        parse_model(path, database="gold")
    assert reason in caught.value.message


def test_joined_tables_are_compared_on_the_columns_the_model_reads(tmp_path: Path) -> None:
    path = tmp_path / "m.sql"
    path.write_text(
        "-- sluice: incremental unique_key=k\n"
        "SELECT d.k, e.name, upper(f.city) AS city FROM raw.d AS d "
        "LEFT JOIN raw.e AS e ON e.k = d.k LEFT JOIN raw.f AS f ON f.id = e.f_id "
        "WHERE f.active\n"
    )
    spec = parse_model(path, database="gold").incremental
    assert spec is not None
    assert {j.alias: j.columns for j in spec.joins} == {
        "e": {"k", "name", "f_id"},
        "f": {"id", "city", "active"},
    }
    # An unqualified column could be any table's: every column counts.
    path.write_text(
        "-- sluice: incremental unique_key=k\n"
        "SELECT d.k, city FROM raw.d AS d LEFT JOIN raw.e AS e ON e.k = d.k\n"
    )
    spec = parse_model(path, database="gold").incremental
    assert spec is not None and spec.joins[0].columns is None


def test_an_incremental_header_needs_a_unique_key(tmp_path: Path) -> None:
    path = tmp_path / "m.sql"
    path.write_text("-- sluice: incremental key=k\nSELECT d.k FROM raw.d AS d\n")
    with pytest.raises(TransformError, match="without unique_key"):
        parse_model(path, database="gold")
    path.write_text(
        "-- sluice: incremental unique_key=k\n"
        "SELECT d.k, e.v FROM raw.d AS d LEFT JOIN raw.e AS e ON e.k = d.k AND e.n > 0\n"
    )
    spec = parse_model(path, database="gold").incremental
    assert spec is not None and spec.driver == TableName("raw", "d")
    assert spec.joins[0].pairs is None  # changes of raw.e rebuild fully


def test_merging_rewrites_only_the_files_holding_a_replaced_key(tmp_path: Path) -> None:
    con = duckdb.connect()
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    con.execute(f"COPY (SELECT range AS k, 'a' AS v FROM range(0, 100)) TO '{a}'")
    con.execute(f"COPY (SELECT range AS k, 'b' AS v FROM range(100, 200)) TO '{b}'")
    current = (str(a), str(b))

    def merge(batch: str, out: str) -> tuple[tuple[str, ...], dict[str, int]]:
        merged = merge_files(
            con,
            current=current,
            batch=batch,
            keys=f"SELECT k FROM ({batch})",
            key_columns=["k"],
            path=tmp_path / out,
        )
        files = list(merged.kept + merged.written)
        counts = dict(
            con.execute(f"SELECT v, count(*) FROM read_parquet({files}) GROUP BY v").fetchall()
        )
        assert merged.rows == sum(counts.values())
        return merged.kept, counts

    # Only new keys: one appended file.
    kept, counts = merge("SELECT range AS k, 'new' AS v FROM range(200, 210)", "c.parquet")
    assert kept == current and counts == {"a": 100, "b": 100, "new": 10}
    # Key 150 replaced: b.parquet is rewritten, a.parquet kept.
    kept, counts = merge("SELECT 150::BIGINT AS k, 'new' AS v", "d.parquet")
    assert kept == (str(a),) and counts == {"a": 100, "b": 99, "new": 1}
    # Other columns: the whole table is rewritten.
    kept, counts = merge("SELECT 5::BIGINT AS k, 'new' AS v, 1 AS extra", "e.parquet")
    assert kept == () and counts == {"a": 99, "b": 100, "new": 1}


def test_a_null_key_replaces_only_the_row_with_a_null_key(tmp_path: Path) -> None:
    con = duckdb.connect()
    old = tmp_path / "old.parquet"
    con.execute(f"COPY (SELECT * FROM (VALUES (1, 'a'), (NULL, 'a'))  t(k, v)) TO '{old}'")
    current: tuple[str, ...] = (str(old),)
    for batch, expected in [
        ("SELECT 1 AS k, 'b' AS v", [(1, "b"), (None, "a")]),  # keys without NULL: plain =
        ("SELECT NULL::INTEGER AS k, 'c' AS v", [(1, "b"), (None, "c")]),  # NULL matches NULL
    ]:
        out = tmp_path / f"{len(current)}.parquet"
        merged = merge_files(
            con, current=current, batch=batch, keys=f"SELECT k FROM ({batch})",
            key_columns=["k"], path=out,
        )  # fmt: skip
        current = merged.kept + merged.written
        rows = con.execute(f"SELECT k, v FROM read_parquet({list(current)}) ORDER BY k").fetchall()
        assert rows == expected and merged.rows == 2

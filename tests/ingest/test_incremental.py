"""Incremental extraction: only rows past the cursor are read, merged by key, exactly once.

The source gets an ``updated_at`` column on orders and order lines (what a real application
keeps); each test changes the source between runs (new orders with lines, status and price
changes) and compares the raw tables with the source row for row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import yaml

from sluice import duck
from sluice.core import Cursor, TableName, WrittenTable
from sluice.errors import ConfigError, LakeError
from sluice.ingest.extract import EXTRACTED_AT_COLUMN, RUN_ID_COLUMN
from sluice.jobs.store import JobRun
from sluice.project import Project
from sluice.sources.base import open_source
from sluice.sources.classicmodels import write_classicmodels
from tests.conftest import SEED, sluice_cli
from tests.ingest.conftest import counted_copies
from tests.jobs.helpers import lake_totals, published_run, run_killed_at
from tests.sources.conftest import mysql_connect

T1 = "2026-01-01 00:00:00"
T2 = "2026-02-01 00:00:00"
INCREMENTAL = {
    "orders": {"cursor": "updated_at", "primary_key": ["orderNumber"]},
    "orderdetails": {"cursor": "updated_at", "primary_key": ["orderNumber", "productCode"]},
}
ORDER_COLUMNS = (
    '"orderNumber", "orderDate", "requiredDate", "shippedDate", status, comments, "customerNumber"'
)
LINE_COLUMNS = '"orderNumber", "productCode", "quantityOrdered", "priceEach", "orderLineNumber"'

Execute = Callable[[str], list[tuple[Any, ...]]]


def configure(project: Project, incremental: dict[str, Any]) -> Project:
    """Declare the job's incremental tables in sluice.yml and reopen the project."""
    path = project.root / "sluice.yml"
    config = yaml.safe_load(path.read_text())
    config["jobs"]["etl"]["incremental"] = incremental
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Project.open(project.root)


@contextmanager
def sqlite_source(project: Project) -> Iterator[Execute]:
    path = project.config.sources["classicmodels"].url.removeprefix("sqlite:///")
    con = sqlite3.connect(path)
    try:
        yield lambda sql: con.execute(sql).fetchall()
        con.commit()
    finally:
        con.close()


def add_updated_at(execute: Execute, *, column_sql: str = "datetime") -> None:
    for table in ("orders", "orderdetails"):
        execute(f"ALTER TABLE {table} ADD COLUMN updated_at {column_sql}")
        execute(f"UPDATE {table} SET updated_at = '{T1}'")


def change_source(execute: Execute) -> dict[str, int]:
    """New orders with lines, shipped orders and repriced lines, all stamped T2.

    Identifiers are double-quoted (PostgreSQL keeps their case); see ``server_execute``.
    """
    numbers = [row[0] for row in execute('SELECT "orderNumber" FROM orders ORDER BY 1')]
    copied, shipped, repriced = numbers[:5], numbers[10:13], numbers[20:22]
    listed = ",".join(map(str, copied))
    execute(
        f'INSERT INTO orders ({ORDER_COLUMNS}, updated_at) SELECT "orderNumber" + 100000, '
        f'"orderDate", "requiredDate", NULL, \'In Process\', comments, "customerNumber", '
        f"'{T2}' FROM orders WHERE \"orderNumber\" IN ({listed})"
    )
    execute(
        f'INSERT INTO orderdetails ({LINE_COLUMNS}, updated_at) SELECT "orderNumber" + 100000, '
        f'"productCode", "quantityOrdered", "priceEach", "orderLineNumber", \'{T2}\' '
        f'FROM orderdetails WHERE "orderNumber" IN ({listed})'
    )
    execute(
        f'UPDATE orders SET status = \'Shipped\', "shippedDate" = "requiredDate", '
        f"updated_at = '{T2}' WHERE \"orderNumber\" IN ({','.join(map(str, shipped))})"
    )
    execute(
        f'UPDATE orderdetails SET "priceEach" = "priceEach" + 1, updated_at = \'{T2}\' '
        f'WHERE "orderNumber" IN ({",".join(map(str, repriced))})'
    )
    return {
        table: int(execute(f"SELECT count(*) FROM {table} WHERE updated_at > '{T1}'")[0][0])
        for table in ("orders", "orderdetails")
    }


def source_copy(project: Project) -> duckdb.DuckDBPyConnection:
    """A DuckDB database holding a copy of every source table, read through its connector."""
    con = duck.connect(extensions=("sqlite_scanner",))
    source = open_source(project.config.sources["classicmodels"].url, base_dir=project.root)
    source.attach(con, "src")
    for table in source.tables():
        con.execute(f"CREATE TABLE {table.name} AS SELECT * FROM {source.relation('src', table)}")
    con.execute("DETACH src")
    return con


def full_row_counts(project: Project) -> dict[str, int]:
    """Rows of every source table, counted in the source."""
    con = source_copy(project)
    return {
        name: int(con.execute(f"SELECT count(*) FROM {name}").fetchone()[0])
        for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    }


def assert_raw_equals_source(project: Project, tables: tuple[str, ...]) -> None:
    """Each raw table holds exactly the source's rows: same count, EXCEPT ALL empty both ways."""
    con = source_copy(project)
    published = {str(p.table): list(p.files) for p in project.publications.current().values()}
    for name in tables:
        files = list(project.lake.current_files(TableName("raw", name)))
        # The same files; their order means nothing.
        assert sorted(published[f"raw.{name}"]) == sorted(files), f"raw.{name} is not published"
        con.execute(
            f"CREATE TEMP TABLE raw_{name} AS SELECT * EXCLUDE ({RUN_ID_COLUMN}, "
            f"{EXTRACTED_AT_COLUMN}) FROM read_parquet({files})"
        )
        counts = con.execute(
            f"SELECT (SELECT count(*) FROM raw_{name}), (SELECT count(*) FROM {name}), "
            f"(SELECT count(*) FROM (FROM {name} EXCEPT ALL FROM raw_{name})), "
            f"(SELECT count(*) FROM (FROM raw_{name} EXCEPT ALL FROM {name}))"
        ).fetchone()
        assert counts is not None
        assert counts[0] == counts[1] and counts[2:] == (0, 0), (name, counts)


def source_gold_totals(project: Project) -> tuple[int, int, dict[str, int]]:
    """Order lines, sales in cents and lines per order status, computed on the source."""
    con = source_copy(project)
    lines, cents = con.execute(
        "SELECT count(*), sum(quantityOrdered * CAST(round(priceEach * 100) AS BIGINT)) "
        "FROM orderdetails"
    ).fetchone()
    statuses = dict(
        con.execute(
            "SELECT o.status, count(*) FROM orderdetails d "
            "JOIN orders o USING (orderNumber) GROUP BY 1"
        ).fetchall()
    )
    return int(lines), int(cents), statuses


def assert_gold_reconciles(project: Project) -> None:
    lines, cents, statuses = source_gold_totals(project)
    assert lake_totals(project) == (lines, cents)
    gold = project.query("SELECT status, count(*) AS n FROM fact_orders GROUP BY 1").table
    assert dict(zip(*gold.to_pydict().values(), strict=True)) == statuses


def ok(run: JobRun) -> JobRun:
    assert run.state == "SUCCEEDED", run.error
    return run


@pytest.fixture
def incremental(project: Project) -> Project:
    """A scale-1 project whose orders and order lines load incrementally on updated_at."""
    with sqlite_source(project) as execute:
        add_updated_at(execute)
    return configure(project, INCREMENTAL)


def test_an_incremental_run_reads_only_new_and_changed_rows(incremental: Project) -> None:
    project = incremental
    full = full_row_counts(project)
    first = ok(project.run_job("etl"))
    assert first.rows_read == sum(full.values())
    cursor, _ = project.lake.cursor(TableName("raw", "orders"), "updated_at")
    assert cursor.value == T1

    with sqlite_source(project) as execute:
        changed = change_source(execute)
    assert changed == {"orders": 5 + 3, "orderdetails": changed["orderdetails"]}
    assert changed["orderdetails"] > 10
    second = ok(project.run_job("etl"))
    others = sum(n for t, n in full.items() if t not in INCREMENTAL)
    assert second.rows_read == others + changed["orders"] + changed["orderdetails"]
    assert second.rows_read < first.rows_read / 2
    assert second.report["incremental"]["orderdetails"] == {
        "cursor": "updated_at",
        "from": T1,
        "to": T2,
        "rows_read": changed["orderdetails"],
    }
    assert first.report["incremental"]["orders"]["from"] is None
    assert_raw_equals_source(project, ("orders", "orderdetails", "products"))
    assert_gold_reconciles(project)
    description = project.lake.describe(TableName("raw", "orderdetails"))
    assert description.snapshots[-1].run_id == second.run_id
    cursor, _ = project.lake.cursor(TableName("raw", "orderdetails"), "updated_at")
    assert cursor.value == T2

    third = ok(project.run_job("etl"))
    assert third.rows_read == others
    assert_raw_equals_source(project, ("orders", "orderdetails"))
    # Nothing new: the merged tables commit nothing and readers keep the second run's rows;
    # dim_date reads raw.orders alone, so its SQL and inputs are those of its last build.
    kept = [TableName("raw", name) for name in INCREMENTAL] + [TableName("gold", "dim_date")]
    assert_kept(project, kept, third, snapshots_by=[first, second])
    assert third.report["models"]["dim_date"]["build"] == "kept"
    assert_gold_reconciles(project)
    # New orders alone: each raw merge keeps its file and appends one. Rows written are
    # those of the files each run wrote, not of the files a merge kept.
    with sqlite_source(project) as execute:
        for table, columns in (("orders", ORDER_COLUMNS), ("orderdetails", LINE_COLUMNS)):
            renumbered = columns.replace('"orderNumber"', '"orderNumber" + 200000', 1)
            execute(
                f"INSERT INTO {table} ({columns}, updated_at) SELECT {renumbered}, "
                f"'2026-03-01 00:00:00' FROM {table} WHERE \"orderNumber\" < 10110"
            )
    fourth = ok(project.run_job("etl"))
    assert fourth.report["incremental"]["orders"]["rows_read"] > 0
    orders = project.lake.current_files(TableName("raw", "orders"))
    assert len(orders) == 2 and any(second.run_id in f for f in orders)
    for run in (first, second, third, fourth):
        assert run.rows_written == rows_in_files_of(project, run)


def rows_in_files_of(project: Project, run: JobRun) -> int:
    """Rows of every data file ``run`` wrote (each is named after it) that tables still read."""
    files = [str(p) for p in project.lake.warehouse.rglob(f"{run.run_id}.parquet")]
    con = duckdb.connect()
    return int(con.execute(f"SELECT count(*) FROM read_parquet({files})").fetchone()[0])


def assert_kept(
    project: Project, tables: list[TableName], run: JobRun, *, snapshots_by: list[JobRun]
) -> None:
    """``run`` committed nothing to ``tables`` and published the snapshots they had: their
    history holds the snapshots of ``snapshots_by`` alone."""
    for table in tables:
        snapshots = project.lake.describe(table).snapshots
        assert [s.run_id for s in snapshots] == [r.run_id for r in snapshots_by], table
        assert project.publications.current()[table].snapshot_id == snapshots[-1].snapshot_id
        assert str(table) in run.report["reused"]


@pytest.mark.parametrize("copied_by_sqlite", [False, True])
def test_rows_re_read_in_the_look_back_window_are_not_duplicated(
    project: Project, monkeypatch: pytest.MonkeyPatch, copied_by_sqlite: bool
) -> None:
    copies = counted_copies(monkeypatch, "copy_rows_past") if copied_by_sqlite else []
    project = configure(
        project,
        {
            "orders": {"cursor": "orderNumber", "primary_key": ["orderNumber"], "lookback": 10},
            "orderdetails": {
                "cursor": "orderNumber",
                "primary_key": ["orderNumber", "productCode"],
                "lookback": 10,
            },
        },
    )
    full = full_row_counts(project)
    ok(project.run_job("etl"))
    with sqlite_source(project) as execute:
        newest = int(execute("SELECT max(orderNumber) FROM orders")[0][0])
        # A change that commits late, inside the look-back window, is picked up.
        execute(f"UPDATE orders SET status = 'Cancelled' WHERE orderNumber = {newest - 4}")
        window = {
            table: int(
                execute(f"SELECT count(*) FROM {table} WHERE orderNumber > {newest - 10}")[0][0]
            )
            for table in ("orders", "orderdetails")
        }
        # The copy holds the rows above the integer below the bound, one order more.
        copied = sorted(
            int(execute(f"SELECT count(*) FROM {table} WHERE orderNumber > {newest - 11}")[0][0])
            for table in ("orders", "orderdetails")
        )
    assert copies == []  # the first run had no cursor: it read every row
    for _ in range(2):
        run = ok(project.run_job("etl"))
        others = sum(n for t, n in full.items() if t not in ("orders", "orderdetails"))
        assert run.rows_read == others + window["orders"] + window["orderdetails"]
        assert_raw_equals_source(project, ("orders", "orderdetails"))
    assert sorted(copies) == (sorted(copied * 2) if copied_by_sqlite else [])
    status = project.query(
        f"SELECT status FROM orders WHERE orderNumber = {newest - 4}", database="raw"
    ).table.to_pylist()
    assert status == [{"status": "Cancelled"}]
    assert_gold_reconciles(project)


@pytest.mark.parametrize(
    "point", ["extract:orderdetails", "commit:raw.orderdetails", "commit:raw.orders", "publish"]
)
def test_a_run_killed_around_the_raw_commit_loses_and_duplicates_nothing(
    incremental: Project, point: str
) -> None:
    def change() -> None:
        with sqlite_source(incremental) as execute:
            change_source(execute)

    assert_a_killed_run_changes_nothing(incremental, point, change)


def assert_a_killed_run_changes_nothing(
    project: Project, point: str, change: Callable[[], object]
) -> None:
    """After a first run and ``change`` to the source, a run killed at ``point`` leaves the
    lake and the publication as they were, and the next run gives exactly the source."""
    first = ok(project.run_job("etl"))
    before = lake_totals(project)
    change()

    killed = run_killed_at(project, point)
    assert killed.state == "FAILED"
    assert lake_totals(project) == before
    assert published_run(project) == {first.run_id}

    again = ok(project.run_job("etl"))
    assert published_run(project) == {again.run_id}
    assert_raw_equals_source(project, ("orders", "orderdetails"))
    assert_gold_reconciles(project)


def test_rows_of_a_run_whose_checks_failed_are_kept_for_the_next_run(
    incremental: Project,
) -> None:
    """The cursor lives in raw, not in the publication: a run whose raw commit landed but
    whose checks failed published nothing, and the next run still has its rows."""
    project = incremental
    first = ok(project.run_job("etl"))
    before = lake_totals(project)
    with sqlite_source(project) as execute:
        change_source(execute)
        # Lines of a product the source does not have yet: the foreign_key check fails.
        execute(
            "UPDATE orderdetails SET productCode = 'S99_NEW' "
            "WHERE orderNumber > 100000 AND orderLineNumber = 1"
        )
    failed = project.run_job("etl")
    assert failed.state == "FAILED"
    assert "product_key" in (failed.error or "")
    assert lake_totals(project) == before
    assert published_run(project) == {first.run_id}
    cursor, _ = project.lake.cursor(TableName("raw", "orderdetails"), "updated_at")
    assert cursor.value == T2

    with sqlite_source(project) as execute:
        execute(
            "INSERT INTO products SELECT 'S99_NEW', productName || ' (new)', productLine, "
            "productScale, productVendor, productDescription, quantityInStock, buyPrice, MSRP "
            "FROM products LIMIT 1"
        )
    full = full_row_counts(project)
    again = ok(project.run_job("etl"))
    assert again.rows_read == sum(n for t, n in full.items() if t not in INCREMENTAL)
    assert_raw_equals_source(project, ("orders", "orderdetails", "products"))
    assert_gold_reconciles(project)


def test_reset_cursor_makes_the_next_run_read_everything(incremental: Project) -> None:
    project = incremental
    ok(project.run_job("etl"))
    with sqlite_source(project) as execute:
        # A deleted line is invisible to a cursor; a full read after a reset drops it.
        execute("DELETE FROM orderdetails WHERE rowid IN (SELECT rowid FROM orderdetails LIMIT 3)")
    ok(project.run_job("etl"))
    assert project.query("SELECT count(*) AS n FROM fact_orders").table.to_pylist()[0]["n"] == (
        source_gold_totals(project)[0] + 3
    )

    reset = sluice_cli("job", "reset-cursor", "etl", "orderdetails", "--project", project.root)
    assert reset.returncode == 0, reset.stderr
    assert f"was updated_at = {T1}" in reset.stdout
    cursor, _ = project.lake.cursor(TableName("raw", "orderdetails"), "updated_at")
    assert cursor.value is None
    full = full_row_counts(project)
    run = ok(project.run_job("etl"))
    assert run.rows_read == sum(n for t, n in full.items() if t != "orders")
    assert_raw_equals_source(project, ("orders", "orderdetails"))
    assert_gold_reconciles(project)
    cursor, _ = project.lake.cursor(TableName("raw", "orderdetails"), "updated_at")
    assert cursor.value == T1

    unknown = sluice_cli("job", "reset-cursor", "etl", "orderdetail", "--project", project.root)
    assert unknown.returncode == 3
    assert "Did you mean 'orderdetails'?" in unknown.stderr


def test_an_incremental_commit_on_a_table_that_moved_is_refused(incremental: Project) -> None:
    project = incremental
    table = TableName("raw", "orders")
    ok(project.run_job("etl"))
    cursor, files = project.lake.cursor(table, "updated_at")
    with sqlite_source(project) as execute:
        change_source(execute)
    second = ok(project.run_job("etl"))
    current, _ = project.lake.cursor(table, "updated_at")
    assert current.snapshot_id != cursor.snapshot_id
    later = "2026-03-01 00:00:00"
    stale = WrittenTable(table, files, 326, cursor=Cursor("updated_at", later, cursor.snapshot_id))
    with pytest.raises(LakeError, match=r"raw\.orders changed while this run merged new rows"):
        project.lake.commit_incremental(stale, run_id="jr_stale")
    after, _ = project.lake.cursor(table, "updated_at")
    assert after == current and after.value == T2
    assert project.lake.describe(table).snapshots[-1].run_id == second.run_id


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"order": {"cursor": "orderNumber", "primary_key": ["orderNumber"]}},
            "jobs.etl.incremental names table 'order', which the job does not extract. "
            "Did you mean 'orders'?",
        ),
        (
            {"orders": {"cursor": "orderNumbr", "primary_key": ["orderNumber"]}},
            "names column 'orderNumbr', which source table orders does not have",
        ),
        (
            {"orders": {"cursor": "orderNumber", "primary_key": ["id"], "lookback": "1 day"}},
            "names column 'id'",
        ),
        (
            {
                "orders": {
                    "cursor": "orderNumber",
                    "primary_key": ["orderNumber"],
                    "lookback": "1 day",
                }
            },
            "lookback is an interval, but cursor orderNumber is INTEGER",
        ),
    ],
)
def test_a_wrong_incremental_spec_fails_the_run_before_reading(
    project: Project, spec: dict[str, Any], message: str
) -> None:
    project = configure(project, spec)
    run = project.run_job("etl")
    assert run.state == "FAILED"
    assert message in (run.error or "")
    assert run.rows_read == 0
    assert project.lake.tables() == []


def test_a_look_back_that_is_not_an_interval_is_refused_with_its_line(project: Project) -> None:
    with pytest.raises(ConfigError, match="must be a number of cursor units or an interval"):
        configure(project, {"orders": {"cursor": "x", "primary_key": ["x"], "lookback": "soon"}})
    result = sluice_cli("job", "runs", "etl", "--project", project.root)
    assert result.returncode == 2
    assert "'jobs.etl.incremental.orders.lookback'" in result.stderr
    assert "line" in result.stderr


@contextmanager
def server_execute(dialect: str, url: str) -> Iterator[Execute]:
    """Run SQL on a private server database; MariaDB gets backticks for double quotes."""
    if dialect == "mysql":
        con = mysql_connect(url, database=url.rsplit("/", 1)[1])

        def execute(sql: str) -> list[tuple[Any, ...]]:
            with con.cursor() as cur:
                cur.execute(sql.replace('"', "`"))
                return list(cur.fetchall())

        try:
            yield execute
        finally:
            con.close()
        return
    with psycopg.connect(url, autocommit=True) as pg:

        def run(sql: str) -> list[tuple[Any, ...]]:
            cur = pg.execute(sql)
            return list(cur.fetchall()) if cur.description else []

        yield run


@pytest.mark.servers
def test_incremental_from_a_server(tmp_path: Path, target: tuple[str, str]) -> None:
    dialect, url = target
    write_classicmodels(url, scale=1, seed=SEED)
    with server_execute(dialect, url) as execute:
        column_sql = "datetime" if dialect == "mysql" else "timestamp"
        add_updated_at(execute, column_sql=f"{column_sql} NOT NULL DEFAULT '{T1}'")
        Project.init(tmp_path / "project", source_url=url)
        project = configure(Project.open(tmp_path / "project"), INCREMENTAL)
        full = full_row_counts(project)
        first = ok(project.run_job("etl"))
        assert first.rows_read == sum(full.values())
        changed = change_source(execute)
        second = ok(project.run_job("etl"))
    others = sum(n for t, n in full.items() if t not in INCREMENTAL)
    assert second.rows_read == others + changed["orders"] + changed["orderdetails"]
    assert_raw_equals_source(project, ("orders", "orderdetails"))
    assert_gold_reconciles(project)

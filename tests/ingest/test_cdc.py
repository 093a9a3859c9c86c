"""Change data capture: triggers log every change in the source, runs apply them to raw.

Each test runs on SQLite and on private MariaDB and PostgreSQL databases: it enables capture,
changes the source (the activity simulator, or SQL), runs the job and compares raw with the
source row for row; deletes must reach the gold tables.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sluice.core import TableName
from sluice.errors import ConfigError, SourceError
from sluice.ingest.cdc import CDC_CURSOR, DELETED_AT_COLUMN
from sluice.ingest.extract import EXTRACTED_AT_COLUMN, RUN_ID_COLUMN
from sluice.project import Project
from sluice.sources.cdc import (
    CHANGE_LOG,
    TRIGGER_PREFIX,
    LogPosition,
    captured_tables,
    enable_cdc,
)
from sluice.sources.classicmodels import write_classicmodels
from sluice.sources.simulate import Activity, simulate
from tests.conftest import SEED, new_project, sluice_cli
from tests.ingest.conftest import counted_copies
from tests.ingest.test_incremental import (
    Execute,
    assert_a_killed_run_changes_nothing,
    assert_gold_reconciles,
    assert_kept,
    assert_raw_equals_source,
    configure,
    ok,
    server_execute,
    source_copy,
)
from tests.jobs.helpers import lake_totals
from tests.sources.conftest import mysql_connect

CDC = {
    "orders": {"primary_key": ["orderNumber"]},
    "orderdetails": {"primary_key": ["orderNumber", "productCode"]},
    "payments": {"primary_key": ["customerNumber", "checkNumber"], "deletes": "mark"},
}
ORDER_COLUMNS = (
    '"orderNumber", "orderDate", "requiredDate", "shippedDate", status, comments, "customerNumber"'
)
DIALECTS = [
    "sqlite",
    pytest.param("mysql", marks=pytest.mark.servers),
    pytest.param("postgresql", marks=pytest.mark.servers),
]


@dataclass
class Captured:
    """A classicmodels project whose source has CDC enabled for the CDC tables."""

    dialect: str
    project: Project

    @property
    def url(self) -> str:
        return self.project.config.sources["classicmodels"].url

    def sql(self) -> AbstractContextManager[Execute]:
        """Run SQL on the source (double-quoted identifiers, as in PostgreSQL)."""
        if self.dialect == "sqlite":
            return _sqlite_execute(self.url.removeprefix("sqlite:///"))
        return server_execute(self.dialect, self.url)

    def simulate(self, seconds: float, *, seed: int = SEED) -> Any:
        """Seconds of simulated activity with updates and deletes, on a fake clock."""
        now = [0.0]

        def sleep(step: float) -> None:
            now[0] += max(step, 0.25)

        return simulate(
            self.url,
            Activity(
                orders_per_minute=600,
                duration_seconds=seconds,
                updates=True,
                deletes=True,
                seed=seed,
            ),
            base_dir=self.project.root,
            clock=lambda: now[0],
            sleep=sleep,
            today=date(2026, 3, 1),
        )


@contextmanager
def _sqlite_execute(path: str) -> Iterator[Execute]:
    con = sqlite3.connect(path)
    try:
        yield lambda sql: con.execute(sql).fetchall()
        con.commit()
    finally:
        con.close()


@pytest.fixture
def captured(
    request: pytest.FixtureRequest, tmp_path: Path, source_db: Callable[[int], Path]
) -> Captured:
    dialect = request.param
    if dialect == "sqlite":
        project = new_project(tmp_path, source_db(1))
    else:
        url = request.getfixturevalue("mysql_url" if dialect == "mysql" else "postgres_url")
        write_classicmodels(url, scale=1, seed=SEED)
        Project.init(tmp_path / "project", source_url=url)
        project = Project.open(tmp_path / "project")
    project = configure_cdc(project, CDC)
    enabled = project.enable_cdc()
    assert {(t.name, t.primary_key) for t in enabled} == {
        (name, tuple(spec["primary_key"])) for name, spec in CDC.items()
    }
    return Captured(dialect, project)


def configure_cdc(project: Project, cdc: dict[str, Any]) -> Project:
    """Declare the job's CDC tables in sluice.yml and reopen the project."""
    path = project.root / "sluice.yml"
    text = path.read_text()
    import yaml

    config = yaml.safe_load(text)
    config["jobs"]["etl"]["cdc"] = cdc
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Project.open(project.root)


def raw_rows(project: Project, table: str, where: str = "true") -> list[dict[str, Any]]:
    """Rows of a raw table (``_sluice_deleted_at`` as text), without the load metadata."""
    files = list(project.lake.current_files(TableName("raw", table)))
    con = source_copy(project)
    relation = f"read_parquet({files}, union_by_name = true)"
    columns = {row[0] for row in con.execute(f"DESCRIBE FROM {relation}").fetchall()}
    replace = (
        f"REPLACE (CAST({DELETED_AT_COLUMN} AS VARCHAR) AS {DELETED_AT_COLUMN})"
        if DELETED_AT_COLUMN in columns
        else ""
    )
    rows = con.execute(
        f"SELECT * EXCLUDE ({RUN_ID_COLUMN}, {EXTRACTED_AT_COLUMN}) {replace} "
        f"FROM {relation} WHERE {where} ORDER BY ALL"
    ).fetchall()
    return [dict(zip([d[0] for d in con.description], row, strict=True)) for row in rows]


def assert_marked_table_matches(project: Project, table: str, deleted: int) -> None:
    """Live rows of a ``deletes: mark`` table equal the source's; ``deleted`` rows are marked."""
    con = source_copy(project)
    files = list(project.lake.current_files(TableName("raw", table)))
    con.execute(
        f"CREATE TEMP TABLE raw_{table} AS SELECT * FROM read_parquet({files}, "
        "union_by_name = true)"
    )
    live = (
        f"SELECT * EXCLUDE ({RUN_ID_COLUMN}, {EXTRACTED_AT_COLUMN}, {DELETED_AT_COLUMN}) "
        f"FROM raw_{table} WHERE {DELETED_AT_COLUMN} IS NULL"
    )
    counts = con.execute(
        f"SELECT (SELECT count(*) FROM ({live})), (SELECT count(*) FROM {table}), "
        f"(SELECT count(*) FROM (FROM {table} EXCEPT ALL {live})), "
        f"(SELECT count(*) FROM ({live} EXCEPT ALL FROM {table})), "
        f"(SELECT count(*) FROM raw_{table} WHERE {DELETED_AT_COLUMN} IS NOT NULL)"
    ).fetchone()
    assert counts is not None
    assert counts[0] == counts[1] and counts[2:] == (0, 0, deleted), (table, counts)


def log_ops(captured: Captured) -> dict[str, int]:
    with captured.sql() as execute:
        return {
            str(op): int(n)
            for op, n in execute(f"SELECT op, count(*) FROM {CHANGE_LOG} GROUP BY op")
        }


@pytest.mark.parametrize("captured", DIALECTS, indirect=True)
def test_inserts_updates_and_deletes_reach_raw_and_gold(captured: Captured) -> None:
    project = captured.project
    first = ok(project.run_job("etl"))
    assert first.report["incremental"]["orders"]["from"] is None
    before = lake_totals(project)

    report = captured.simulate(20)
    assert report.orders > 100 and report.shipped > 0 and report.price_changes > 0
    assert report.deleted_orders > 0 and report.deleted_payments > 0
    ops = log_ops(captured)
    assert ops["I"] >= report.orders + report.order_lines + report.payments
    assert ops["U"] >= report.shipped and ops["D"] >= report.deleted_orders

    second = ok(project.run_job("etl"))
    moved = second.report["incremental"]["orders"]
    assert moved["cursor"] == CDC_CURSOR
    assert moved["from"] == first.report["incremental"]["orders"]["to"]
    to = LogPosition.parse(moved["to"])
    assert to is not None and to.seq > LogPosition.parse(moved["from"]).seq  # type: ignore[union-attr]
    # Only the changed rows are read from the captured tables (and the log).
    assert moved["rows_read"] < 3 * (report.orders + report.shipped + report.cancelled) + 50
    assert_raw_equals_source(project, ("orders", "orderdetails", "products", "customers"))
    assert_marked_table_matches(project, "payments", report.deleted_payments)
    assert lake_totals(project) != before
    assert_gold_reconciles(project)
    with captured.sql() as execute:
        (orders,) = execute("SELECT count(*) FROM orders")[0]
    gold_orders = project.query("SELECT count(DISTINCT orderNumber) AS n FROM fact_orders")
    assert gold_orders.table.to_pylist()[0]["n"] == orders

    with contextlib.ExitStack() as open_elsewhere:
        if captured.dialect == "postgresql":
            # A transaction open on the server, older than one that committed since, is in
            # the log position's list of open ones: the position text changes.
            other = open_elsewhere.enter_context(psycopg.connect(captured.url))
            other.execute("SELECT pg_current_xact_id()")
            with psycopg.connect(captured.url, autocommit=True) as later:
                later.execute("SELECT pg_current_xact_id()")
        third = ok(project.run_job("etl"))
    moved = third.report["incremental"]["orders"]
    assert moved["rows_read"] == 0
    if captured.dialect == "postgresql":
        assert moved["to"] != moved["from"]
    assert_raw_equals_source(project, ("orders", "orderdetails"))
    # No change logged: the captured tables commit nothing; readers keep the second run's.
    kept = [TableName("raw", name) for name in CDC]
    assert_kept(project, kept, third, snapshots_by=[first, second])
    assert_gold_reconciles(project)


@pytest.mark.parametrize("captured", ["sqlite"], indirect=True)
def test_sqlite_copies_out_only_the_rows_of_changed_keys(
    captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies = counted_copies(monkeypatch, "copy_rows_with")
    project = captured.project
    ok(project.run_job("etl"))
    assert copies == []  # the first run reads every row
    report = captured.simulate(20)
    ok(project.run_job("etl"))
    assert len(copies) == len(CDC)
    with captured.sql() as execute:
        rows = sum(int(execute(f"SELECT count(*) FROM {table}")[0][0]) for table in CDC)
    assert 0 < sum(copies) < rows / 2
    assert_raw_equals_source(project, ("orders", "orderdetails"))
    assert_marked_table_matches(project, "payments", report.deleted_payments)
    assert_gold_reconciles(project)


@pytest.mark.parametrize("captured", DIALECTS, indirect=True)
def test_changes_to_one_key_are_applied_in_order(captured: Captured) -> None:
    project = captured.project
    ok(project.run_job("etl"))
    with captured.sql() as execute:
        customer = execute('SELECT min("customerNumber") FROM customers')[0][0]

        def insert(number: int, status: str) -> None:
            execute(
                f"INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({number}, '2026-03-01', "
                f"'2026-03-08', NULL, '{status}', NULL, {customer})"
            )

        # Insert, update, delete, insert again: the last state wins.
        insert(90001, "In Process")
        execute("UPDATE orders SET status = 'Shipped' WHERE \"orderNumber\" = 90001")
        execute('DELETE FROM orders WHERE "orderNumber" = 90001')
        insert(90001, "On Hold")
        # Inserted then deleted between two runs: never seen.
        insert(90002, "In Process")
        execute('DELETE FROM orders WHERE "orderNumber" = 90002')
        # A key that changes: the old one is gone, the new one is there.
        insert(90003, "In Process")
        execute('UPDATE orders SET "orderNumber" = 90004 WHERE "orderNumber" = 90003')
        # An order loaded by the first run, changed and then deleted.
        oldest = execute('SELECT min("orderNumber") FROM orders')[0][0]
        execute(f"UPDATE orders SET status = 'Cancelled' WHERE \"orderNumber\" = {oldest}")
        execute(f'DELETE FROM orderdetails WHERE "orderNumber" = {oldest}')
        execute(f'DELETE FROM orders WHERE "orderNumber" = {oldest}')

    ok(project.run_job("etl"))
    rows = raw_rows(project, "orders", '"orderNumber" >= 90000 OR "orderNumber" <= ' + str(oldest))
    assert [(r["orderNumber"], r["status"]) for r in rows] == [
        (90001, "On Hold"),
        (90004, "In Process"),
    ]
    assert_raw_equals_source(project, ("orders", "orderdetails"))
    assert_gold_reconciles(project)
    found = project.query(f"SELECT count(*) AS n FROM fact_orders WHERE orderNumber = {oldest}")
    assert found.table.to_pylist() == [{"n": 0}]


@pytest.mark.parametrize("captured", DIALECTS, indirect=True)
def test_deletes_mark_keeps_deleted_rows_with_their_deletion_time(captured: Captured) -> None:
    project = captured.project
    ok(project.run_job("etl"))
    with captured.sql() as execute:
        payments = execute(
            'SELECT "customerNumber", "checkNumber" FROM payments ORDER BY 1, 2 LIMIT 2'
        )
        for customer, check in payments:
            execute(
                f'DELETE FROM payments WHERE "customerNumber" = {customer} '
                f"AND \"checkNumber\" = '{check}'"
            )
    ok(project.run_job("etl"))
    assert_marked_table_matches(project, "payments", 2)
    marked = raw_rows(project, "payments", f"{DELETED_AT_COLUMN} IS NOT NULL")
    assert [(r["customerNumber"], r["checkNumber"]) for r in marked] == sorted(
        (int(c), str(k)) for c, k in payments
    )
    assert all(r["amount"] is not None for r in marked)

    # The same payment comes back: it is live again, the other stays marked.
    customer, check = payments[0]
    with captured.sql() as execute:
        execute(
            'INSERT INTO payments ("customerNumber", "checkNumber", "paymentDate", amount) '
            f"VALUES ({customer}, '{check}', '2026-03-01', 12.34)"
        )
    ok(project.run_job("etl"))
    assert_marked_table_matches(project, "payments", 1)
    back = raw_rows(project, "payments", f"\"checkNumber\" = '{check}'")
    assert [(float(r["amount"]), r[DELETED_AT_COLUMN]) for r in back] == [(12.34, None)]

    # Another policy: the next run reads the table in full, and no row stays marked.
    project = configure_cdc(project, {**CDC, "payments": {**CDC["payments"], "deletes": "delete"}})
    switched = ok(project.run_job("etl"))
    assert switched.report["incremental"]["payments"]["from"] is not None
    with captured.sql() as execute:
        (payments_count,) = execute("SELECT count(*) FROM payments")[0]
    assert switched.report["incremental"]["payments"]["rows_read"] == payments_count
    assert_raw_equals_source(project, ("payments",))


@pytest.mark.servers
@pytest.mark.parametrize("captured", ["postgresql"], indirect=True)
def test_a_truncate_on_postgresql_deletes_or_marks_every_row_it_removed(
    captured: Captured,
) -> None:
    project = captured.project
    ok(project.run_job("etl"))
    with captured.sql() as execute:
        (payments,) = execute("SELECT count(*) FROM payments")[0]
        kept = execute('SELECT "customerNumber", "checkNumber" FROM payments LIMIT 1')[0]
        line = execute(
            'SELECT "orderNumber", "productCode", "quantityOrdered", "priceEach", '
            '"orderLineNumber" FROM orderdetails LIMIT 1'
        )[0]
        execute("TRUNCATE orderdetails")
        execute(  # one line comes back
            'INSERT INTO orderdetails ("orderNumber", "productCode", "quantityOrdered", '
            f'"priceEach", "orderLineNumber") VALUES ({line[0]}, \'{line[1]}\', {line[2]}, '
            f"{line[3]}, {line[4]})"
        )
        execute("TRUNCATE payments")
        execute(  # one payment comes back, one is new
            'INSERT INTO payments ("customerNumber", "checkNumber", "paymentDate", amount) '
            f"VALUES ({kept[0]}, '{kept[1]}', '2026-03-01', 1.00), "
            "(103, 'NEW1', '2026-03-02', 2.00)"
        )
    assert log_ops(captured)["X"] == 2
    run = ok(project.run_job("etl"))
    assert run.report["incremental"]["orderdetails"]["rows_read"] == 1 + 1  # the row, its log
    assert_raw_equals_source(project, ("orderdetails",))
    assert_marked_table_matches(project, "payments", payments - 1)
    marks = {r[DELETED_AT_COLUMN] for r in raw_rows(project, "payments")} - {None}
    assert len(marks) == 1  # every removed payment is marked at the TRUNCATE's time
    assert_gold_reconciles(project)
    # Trimming removes the applied TRUNCATE rows with the other changes.
    assert project.trim_cdc().deleted >= 2 and "X" not in log_ops(captured)


@pytest.mark.parametrize("captured", DIALECTS, indirect=True)
def test_disable_removes_the_triggers_and_the_log_and_enable_is_idempotent(
    captured: Captured,
) -> None:
    project = captured.project
    ok(project.run_job("etl"))
    epoch_rows = f"SELECT pk FROM {CHANGE_LOG} WHERE op = 'E'"
    with captured.sql() as execute:
        epoch = execute(epoch_rows)
    again = project.enable_cdc()
    assert len(again) == len(CDC)
    assert captured_tables(captured.url, base_dir=project.root) == sorted(CDC)
    with captured.sql() as execute:
        assert execute(epoch_rows) == epoch
        execute("UPDATE orders SET status = 'On Hold' WHERE \"orderNumber\" = 10100")
    assert log_ops(captured)["U"] == 1, "enabling twice must not log a change twice"

    assert sorted(project.disable_cdc()) == sorted(CDC)
    assert captured_tables(captured.url, base_dir=project.root) == []
    with captured.sql() as execute:
        tables = {
            "sqlite": "SELECT name FROM sqlite_master WHERE name LIKE '%sluice%'",
            "mysql": "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
            "DATABASE() AND TABLE_NAME LIKE '%sluice%' UNION ALL SELECT TRIGGER_NAME FROM "
            "information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()",
            "postgresql": "SELECT relname FROM pg_class WHERE relnamespace = "
            "current_schema()::regnamespace AND relname LIKE '%sluice%' UNION ALL "
            "SELECT proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace "
            "UNION ALL SELECT tgname FROM pg_trigger JOIN pg_class ON pg_class.oid = tgrelid "
            "WHERE NOT tgisinternal AND relnamespace = current_schema()::regnamespace AND "
            f"tgname LIKE '{TRIGGER_PREFIX}%'",
        }[captured.dialect]
        assert execute(tables) == []
    assert project.disable_cdc() == []

    failed = project.run_job("etl")
    assert failed.state == "FAILED"
    assert "Changes of source table" in (failed.error or "")
    assert "sluice source enable-cdc" in (failed.error or "")

    # Changes made while capture was off are found: a new log means a full read.
    with captured.sql() as execute:
        execute('DELETE FROM orderdetails WHERE "orderNumber" = 10100')
        execute('DELETE FROM orders WHERE "orderNumber" = 10100')
    project.enable_cdc()
    ok(project.run_job("etl"))
    assert_raw_equals_source(project, ("orders", "orderdetails"))
    assert_gold_reconciles(project)


@pytest.mark.parametrize(
    "point", ["extract:orderdetails", "commit:raw.orderdetails", "commit:raw.orders", "publish"]
)
@pytest.mark.parametrize("captured", ["sqlite"], indirect=True)
def test_a_run_killed_around_the_raw_commit_loses_and_repeats_no_change(
    captured: Captured, point: str
) -> None:
    assert_a_killed_run_changes_nothing(captured.project, point, lambda: captured.simulate(10))


@pytest.mark.parametrize("captured", ["sqlite"], indirect=True)
def test_reset_cursor_reads_the_whole_table_again(captured: Captured) -> None:
    project = captured.project
    ok(project.run_job("etl"))
    reset = sluice_cli("job", "reset-cursor", "etl", "orders", "--project", project.root)
    assert reset.returncode == 0, reset.stderr
    assert f"was {CDC_CURSOR} = " in reset.stdout
    run = ok(project.run_job("etl"))
    with captured.sql() as execute:
        (orders,) = execute("SELECT count(*) FROM orders")[0]
    assert run.report["incremental"]["orders"]["from"] is None
    assert run.report["incremental"]["orders"]["rows_read"] == orders
    assert run.report["incremental"]["orderdetails"]["rows_read"] == 0


def test_enable_cdc_refuses_a_table_without_a_primary_key(project: Project) -> None:
    path = project.config.sources["classicmodels"].url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE notes (body TEXT)")
    with pytest.raises(SourceError, match="Source table notes has no primary key"):
        project.enable_cdc(tables=["orders", "notes"])
    assert captured_tables(project.config.sources["classicmodels"].url, base_dir=project.root) == []
    with pytest.raises(SourceError, match=r"Source table 'order' does not exist\. Did you mean"):
        project.enable_cdc(tables=["order"])
    result = sluice_cli("source", "enable-cdc", "--project", project.root)
    assert result.returncode == 1
    assert "No tables to capture changes of" in result.stderr
    assert "--tables" in result.stderr

    done = sluice_cli(
        "source", "enable-cdc", "--tables", "orders,payments", "--project", project.root
    )
    assert done.returncode == 0, done.stderr
    assert "customerNumber, checkNumber" in done.stdout
    removed = sluice_cli("source", "disable-cdc", "--project", project.root)
    assert removed.returncode == 0, removed.stderr
    assert "Removed change capture from orders, payments" in removed.stdout


@pytest.mark.parametrize(
    ("cdc", "incremental", "message"),
    [
        (
            {"order": {"primary_key": ["orderNumber"]}},
            {},
            "jobs.etl.cdc names table 'order', which the job does not extract. "
            "Did you mean 'orders'?",
        ),
        (
            {"orders": {"primary_key": ["orderNumbr"]}},
            {},
            "jobs.etl.cdc.orders.primary_key names column 'orderNumbr', which source table "
            "orders does not have. Did you mean 'orderNumber'?",
        ),
        (
            {"orders": {"primary_key": ["orderNumber"]}},
            {"orders": {"cursor": "orderNumber", "primary_key": ["orderNumber"]}},
            "Table orders is under both jobs.etl.cdc and jobs.etl.incremental",
        ),
        (
            {"orders": {"primary_key": ["status"]}},
            {},
            "logged changes of orders have no value for",
        ),
    ],
)
def test_a_wrong_cdc_spec_fails_the_run(
    project: Project, cdc: dict[str, Any], incremental: dict[str, Any], message: str
) -> None:
    project.enable_cdc(tables=["orders"])
    project = configure_cdc(configure(project, incremental), cdc)
    if "status" in str(cdc):
        ok(project.run_job("etl"))
        path = project.config.sources["classicmodels"].url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as con:
            con.execute("UPDATE orders SET comments = 'x' WHERE orderNumber = 10100")
    run = project.run_job("etl")
    assert run.state == "FAILED"
    assert message in (run.error or "")


def test_a_wrong_deletes_policy_is_refused_with_its_key(project: Project) -> None:
    path = project.root / "sluice.yml"
    path.write_text(
        path.read_text().replace(
            "    timeout_minutes: 30\n",
            "    timeout_minutes: 30\n    cdc:\n      orders: {primary_key: [orderNumber], "
            "deletes: hide}\n",
        )
    )
    result = sluice_cli("job", "runs", "etl", "--project", project.root)
    assert result.returncode == 2
    assert "'jobs.etl.cdc.orders.deletes'" in result.stderr
    assert "'delete' or 'mark'" in result.stderr


@pytest.mark.servers
@pytest.mark.parametrize("dialect", ["mysql", "postgresql"])
def test_a_user_without_write_privileges_is_told_what_cdc_needs(
    request: pytest.FixtureRequest, tmp_path: Path, dialect: str
) -> None:
    url = request.getfixturevalue("mysql_url" if dialect == "mysql" else "postgres_url")
    write_classicmodels(url, scale=1, seed=SEED)
    reader = f"sluice_reader_{secrets.token_hex(4)}"
    with server_execute(dialect, url) as execute:
        if dialect == "mysql":
            execute(f"CREATE USER '{reader}'@'%'")
            execute(f"GRANT SELECT ON `{url.rsplit('/', 1)[1]}`.* TO '{reader}'@'%'")
        else:
            schema = url.rsplit("%3D", 1)[1]
            execute(f"CREATE ROLE {reader} LOGIN")
            execute(f"GRANT USAGE ON SCHEMA {schema} TO {reader}")
            execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {reader}")
        try:
            Project.init(tmp_path / "project", source_url=re.sub("//[^@/]+@", f"//{reader}@", url))
            project = configure_cdc(Project.open(tmp_path / "project"), CDC)
            with pytest.raises(SourceError) as refused:
                project.enable_cdc()
            assert "may not create the change log and its triggers" in refused.value.message
            assert "CDC needs write privileges" in str(refused.value)
            assert captured_tables(url, base_dir=project.root) == []

            # The owner enables it; the reader's job needs SELECT on the log (and on
            # MariaDB the LOCK TABLES privilege), no write privilege.
            enable_cdc(url, sorted(CDC), base_dir=project.root)
            if dialect == "mysql":
                failed = project.run_job("etl")
                assert failed.state == "FAILED"
                assert "may not read where the change log _sluice_changes ends" in (
                    failed.error or ""
                )
                assert "LOCK TABLES privilege" in (failed.error or "")
                execute(f"GRANT LOCK TABLES ON `{url.rsplit('/', 1)[1]}`.* TO '{reader}'@'%'")
            else:
                execute(f"GRANT SELECT ON {schema}.{CHANGE_LOG} TO {reader}")
            ok(project.run_job("etl"))
            execute('DELETE FROM orderdetails WHERE "orderNumber" = 10100')
            execute('DELETE FROM orders WHERE "orderNumber" = 10100')
            run = ok(project.run_job("etl"))
            assert run.report["incremental"]["orders"]["rows_read"] == 1
            assert_raw_equals_source(project, ("orders", "orderdetails"))
        finally:
            if dialect == "mysql":
                execute(f"DROP USER '{reader}'@'%'")
            else:
                execute(f"DROP OWNED BY {reader}")
                execute(f"DROP ROLE {reader}")


@pytest.mark.parametrize(
    "captured",
    [pytest.param(d, marks=pytest.mark.servers) for d in ("mysql", "postgresql")],
    indirect=True,
)
def test_a_change_committed_after_a_later_one_is_not_lost(captured: Captured) -> None:
    """Sequence numbers are taken before commit: a transaction still open when a run reads
    the log may commit a change below the run's position."""
    project = captured.project
    ok(project.run_job("etl"))
    url = captured.url
    insert = (
        f"INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({{}}, '2026-03-01', '2026-03-08', NULL, "
        "'In Process', NULL, 103)"
    )
    if captured.dialect == "mysql":
        slow: Any = mysql_connect(url, database=url.rsplit("/", 1)[1])
        slow.begin()
        slow.cursor().execute(insert.format(91001).replace('"', "`"))
    else:
        slow = psycopg.connect(url)
        slow.execute(insert.format(91001))
    try:
        with captured.sql() as execute:
            execute(insert.format(91002))
        if captured.dialect == "mysql":
            # The run's read of the log's end waits for the open transaction.
            threading.Timer(1.0, slow.commit).start()
        first = ok(project.run_job("etl"))
        numbers = [r["orderNumber"] for r in raw_rows(project, "orders", '"orderNumber" > 91000')]
        if captured.dialect == "postgresql":
            assert numbers == [91002]
            to = LogPosition.parse(first.report["incremental"]["orders"]["to"])
            assert to is not None and to.pending, to
            slow.commit()
        else:
            assert numbers == [91001, 91002]
    finally:
        slow.close()
    ok(project.run_job("etl"))
    numbers = [r["orderNumber"] for r in raw_rows(project, "orders", '"orderNumber" > 91000')]
    assert numbers == [91001, 91002]
    assert_raw_equals_source(project, ("orders", "orderdetails"))


@pytest.mark.parametrize("captured", DIALECTS, indirect=True)
def test_trim_deletes_only_changes_every_table_has_applied(captured: Captured) -> None:
    project = captured.project
    ok(project.run_job("etl"))
    captured.simulate(30)
    before = log_ops(captured)
    assert sum(before.get(op, 0) for op in "IUD") > 0

    dry = project.trim_cdc(dry_run=True)
    assert dry.dry_run and dry.deleted == 0  # the first run read in full; nothing logged since
    assert set(dry.positions) == {f"raw.{t}" for t in CDC}
    assert log_ops(captured) == before

    first = ok(project.run_job("etl"))
    captured.simulate(30, seed=SEED + 1)
    unapplied = log_ops(captured)
    applied = sum(before.get(op, 0) for op in "IUD")
    dry = project.trim_cdc(dry_run=True)
    assert dry.deleted == applied
    assert log_ops(captured) == unapplied

    trim = project.trim_cdc()
    assert trim.deleted == applied and not trim.dry_run
    positions = {t: LogPosition.parse(p) for t, p in trim.positions.items()}
    to = LogPosition.parse(first.report["incremental"]["orders"]["to"])
    assert positions["raw.orders"] == to
    after = log_ops(captured)
    assert after["E"] == 1 and after["T"] == len(CDC)
    assert sum(after.get(op, 0) for op in "IUD") == sum(unapplied.get(op, 0) for op in "IUD") - (
        applied
    )
    with captured.sql() as execute:
        lowest = execute(f"SELECT min(seq) FROM {CHANGE_LOG} WHERE op IN ('I', 'U', 'D')")[0][0]
    assert to is not None and lowest > to.seq

    ok(project.run_job("etl"))
    assert_raw_equals_source(project, ("orders", "orderdetails"))
    assert_marked_table_matches(project, "payments", deleted=_marked(project))
    assert_gold_reconciles(project)
    assert project.trim_cdc().deleted == sum(after.get(op, 0) for op in "IUD")


def _marked(project: Project) -> int:
    return len(raw_rows(project, "payments", f"{DELETED_AT_COLUMN} IS NOT NULL"))


@pytest.mark.servers
@pytest.mark.parametrize("captured", ["postgresql"], indirect=True)
def test_trim_keeps_the_changes_of_a_transaction_still_open_at_the_last_run(
    captured: Captured,
) -> None:
    project = captured.project
    ok(project.run_job("etl"))
    insert = (
        f"INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({{}}, '2026-03-01', '2026-03-08', NULL, "
        "'In Process', NULL, 103)"
    )
    slow = psycopg.connect(captured.url)
    try:
        slow.execute(insert.format(91001))
        with captured.sql() as execute:
            execute(insert.format(91002))
        first = ok(project.run_job("etl"))
        to = LogPosition.parse(first.report["incremental"]["orders"]["to"])
        assert to is not None and to.pending
        slow.commit()
    finally:
        slow.close()
    trim = project.trim_cdc()
    assert trim.deleted >= 1
    with captured.sql() as execute:
        kept = execute(f"SELECT pk FROM {CHANGE_LOG} WHERE op = 'I' AND table_name = 'orders'")
    assert [json.loads(row[0]) for row in kept] == [{"orderNumber": 91001}]
    ok(project.run_job("etl"))
    numbers = [r["orderNumber"] for r in raw_rows(project, "orders", '"orderNumber" > 91000')]
    assert numbers == [91001, 91002]
    assert_raw_equals_source(project, ("orders", "orderdetails"))


def test_trim_needs_cdc_tables_and_a_log(project: Project) -> None:
    with pytest.raises(ConfigError, match="No job reads source 'classicmodels' with CDC"):
        project.trim_cdc()
    project = configure_cdc(project, CDC)
    with pytest.raises(SourceError, match="has no change log"):
        project.trim_cdc()
    done = sluice_cli("source", "trim-cdc", "--project", project.root)
    assert done.returncode != 0
    assert "has no change log" in done.stderr and "Traceback" not in done.stderr

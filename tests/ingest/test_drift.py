"""Schema drift: the source's columns change between runs; raw tables evolve, or the table is
quarantined until the change is accepted, and nothing is lost either way.

SQLite sources change with ALTER TABLE ADD/DROP COLUMN or, for type changes, by rebuilding
the table; MariaDB and PostgreSQL with ALTER TABLE ADD/DROP/MODIFY.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from sluice import duck
from sluice.core import RawSchema, TableName
from sluice.errors import ConfigError
from sluice.ingest.drift import compare, plan_drift
from sluice.jobs.store import JobRun
from sluice.project import Project
from sluice.sources.base import SourceColumn, SourceTable
from sluice.sources.classicmodels import write_classicmodels
from tests.conftest import SEED, sluice_cli
from tests.ingest.test_incremental import Execute, server_execute
from tests.jobs.helpers import published_run


def configure(project: Project, **settings: Any) -> Project:
    """Set keys of the etl job in sluice.yml and reopen the project."""
    path = project.root / "sluice.yml"
    config = yaml.safe_load(path.read_text())
    config["jobs"]["etl"].update(settings)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Project.open(project.root)


def source(project: Project) -> sqlite3.Connection:
    path = project.config.sources["classicmodels"].url.removeprefix("sqlite:///")
    return sqlite3.connect(path, isolation_level=None)


def rebuild(con: sqlite3.Connection, table: str, *, types: dict[str, str] | None = None) -> None:
    """Recreate a SQLite table with some columns declared with other types, keeping rows."""
    info = con.execute(f'PRAGMA table_info("{table}")').fetchall()
    columns = [(row[1], (types or {}).get(row[1], row[2])) for row in info]
    names = ", ".join(f'"{name}"' for name, _ in columns)
    con.execute(f'CREATE TABLE "{table}_new" ({", ".join(f"{n!r} {t}" for n, t in columns)})')
    con.execute(f'INSERT INTO "{table}_new" SELECT {names} FROM "{table}"')
    con.execute(f'DROP TABLE "{table}"')
    con.execute(f'ALTER TABLE "{table}_new" RENAME TO "{table}"')


def raw_rows(project: Project, table: str, sql: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the raw table's current snapshot (published or not) as view ``t``."""
    files = project.lake.current_files(TableName("raw", table))
    con = duck.connect()
    listed = ", ".join(duck.quote_literal(f) for f in files)
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet([{listed}], union_by_name = true)")
    return con.execute(sql).fetchall()


def lake_types(project: Project, table: str) -> dict[str, str]:
    return {c.name: c.type for c in project.describe(f"raw.{table}").columns}


def last_run_of(project: Project, table: str) -> str | None:
    return project.describe(f"raw.{table}").snapshots[-1].run_id


def failure(run: JobRun) -> str:
    """The error of a run that must have FAILED."""
    assert run.state == "FAILED", run.state
    assert run.error is not None
    return run.error


def ok(run: JobRun) -> JobRun:
    assert run.state == "SUCCEEDED", run.error
    return run


def test_compare_classifies_each_change() -> None:
    table = SourceTable(
        "t",
        (
            SourceColumn("id", "bigint", "BIGINT", False),
            SourceColumn("amount", "decimal(12,2)", "DECIMAL(12, 2)", True),
            SourceColumn("rate", "decimal(12,4)", "DECIMAL(12, 4)", True),
            SourceColumn("code", "int", "INTEGER", True),
            SourceColumn("tier", "varchar(10)", "VARCHAR", True),
        ),
    )
    raw = RawSchema(
        (
            ("id", "int"),
            ("amount", "decimal(10, 2)"),
            ("rate", "decimal(10, 2)"),
            ("code", "string"),
            ("gone", "date"),
            ("_sluice_run_id", "string"),
        ),
        primary_key=("id",),
    )
    changes = {c.column: c.kind for c in compare(table, raw, primary_key=["id", "code"])}
    assert changes == {
        "id": "widened",
        "amount": "widened",
        "rate": "incompatible",
        "code": "incompatible",
        "tier": "added",
        "gone": "dropped",
        "id, code": "key_changed",
    }
    assert compare(table, RawSchema(raw.columns[:0]), primary_key=None)[0].kind == "added"


def test_a_policy_for_a_table_the_job_does_not_extract_is_refused() -> None:
    table = SourceTable("offices", (SourceColumn("officeCode", "int", "INTEGER", False),))
    with pytest.raises(ConfigError, match=r"schema_drift\.tables names 'ofices'.*'offices'"):
        plan_drift(
            [table],
            {"offices": None},
            config=configure_policy({"ofices": "fail"}),
            keys={},
            job="etl",
            raw_database="raw",
        )


def configure_policy(tables: dict[str, str]) -> Any:
    from sluice.config import SchemaDriftConfig

    return SchemaDriftConfig.model_validate({"tables": tables})


def test_an_added_column_evolves_the_raw_table_and_earlier_rows_read_null(
    project: Project,
) -> None:
    project = configure(
        project, incremental={"orders": {"cursor": "orderNumber", "primary_key": ["orderNumber"]}}
    )
    ok(project.run_job("etl"))
    with source(project) as con:
        before = con.execute("SELECT count(*) FROM orders").fetchone()[0]
        con.execute("ALTER TABLE orders ADD COLUMN priority INTEGER")
        con.execute(
            "INSERT INTO orders SELECT orderNumber + 100000, orderDate, requiredDate, NULL, "
            "'In Process', comments, customerNumber, 2 FROM orders ORDER BY orderNumber LIMIT 3"
        )
    result = sluice_cli("job", "start", "etl", "--wait", "--quiet", "--project", project.root)
    assert result.returncode == 0, result.stderr
    assert "schema drift: orders: column priority int (declared INTEGER) added (evolved)" in (
        result.stdout
    )
    run = project.jobs.runs("etl")[0]
    assert run.report["schema_drift"]["orders"]["changes"][0]["change"] == "added"
    assert "schema drift in orders: column priority int" in project.jobs.logs("etl", run.run_id)
    assert lake_types(project, "orders")["priority"] == "int"
    counts = project.query(
        "SELECT count(*) FILTER (priority IS NULL), count(*) FILTER (priority = 2), "
        "count(*) FROM orders",
        database="raw",
    ).table.to_pylist()[0]
    assert list(counts.values()) == [before, 3, before + 3]


def test_a_dropped_column_stays_null_and_widened_types_evolve(project: Project) -> None:
    ok(project.run_job("etl"))
    with source(project) as con:
        con.execute("ALTER TABLE customers DROP COLUMN phone")
        rebuild(con, "customers", types={"creditLimit": "decimal(12,2)"})
        con.execute('UPDATE customers SET "creditLimit" = 1234567890.12 WHERE rowid = 1')
        rebuild(con, "products", types={"quantityInStock": "bigint"})
        con.execute('UPDATE products SET "quantityInStock" = 5000000000 WHERE rowid = 1')
        customers, credit = con.execute(
            'SELECT count(*), sum("creditLimit") FROM customers'
        ).fetchone()
        stock = con.execute('SELECT sum("quantityInStock") FROM products').fetchone()[0]
    run = ok(project.run_job("etl"))
    drift = run.report["schema_drift"]
    assert {c["column"]: c["change"] for c in drift["customers"]["changes"]} == {
        "creditLimit": "widened",
        "phone": "dropped",
    }
    assert drift["products"]["changes"][0]["new_type"] == "long"
    log = project.jobs.logs("etl", run.run_id)
    assert (
        "WARNING sluice.ingest.drift: schema drift in customers: column phone string dropped" in log
    )
    assert lake_types(project, "customers")["creditLimit"] == "decimal(12, 2)"
    assert lake_types(project, "products")["quantityInStock"] == "long"
    row = project.query(
        'SELECT count(*), count(phone), sum("creditLimit") FROM customers', database="raw"
    ).table.to_pylist()[0]
    assert list(row.values()) == [customers, 0, Decimal(str(credit)).quantize(Decimal("0.01"))]
    assert project.query(
        'SELECT sum("quantityInStock") AS s FROM products', database="raw"
    ).table.to_pylist() == [{"s": stock}]
    assert project.query("SELECT count(phone) AS n FROM dim_customers").table.to_pylist() == [
        {"n": 0}
    ]


def test_an_incompatible_change_quarantines_the_table_until_accepted(project: Project) -> None:
    first = ok(project.run_job("etl"))
    with source(project) as con:
        rebuild(con, "payments", types={"amount": "decimal(10,3)", "customerNumber": "varchar(20)"})
        payments, amount = con.execute("SELECT count(*), sum(amount) FROM payments").fetchone()
    result = sluice_cli("job", "start", "etl", "--wait", "--quiet", "--project", project.root)
    assert result.returncode == 4
    assert (
        "schema drift: payments: column amount changed type from decimal(10, 2) to "
        "decimal(10, 3) (declared decimal(10,3)) (quarantined)" in result.stdout
    )
    assert result.stderr.startswith("Error: Table payments is quarantined: ")
    failed = project.jobs.runs("etl")[0]
    error = failure(failed)
    assert (
        "Table payments is quarantined: column customerNumber changed type from int to string "
        "(declared varchar(20)); column amount changed type from decimal(10, 2) to "
        "decimal(10, 3) (declared decimal(10,3))." in error
    )
    assert "'sluice job accept-drift etl payments'" in error
    assert "The other tables were loaded; nothing was published." in error
    assert failed.report["schema_drift"]["payments"]["action"] == "quarantined"
    # The other raw tables and models were committed; readers still see the first run.
    assert last_run_of(project, "orders") == failed.run_id
    assert last_run_of(project, "payments") == first.run_id
    assert published_run(project) == {first.run_id}
    assert lake_types(project, "payments")["amount"] == "decimal(10, 2)"

    accepted = sluice_cli("job", "accept-drift", "etl", "payments", "--project", project.root)
    assert accepted.returncode == 0, accepted.stderr
    assert "the next run of etl rebuilds raw.payments" in accepted.stdout
    run = ok(project.run_job("etl"))
    assert run.report["schema_drift"]["payments"]["action"] == "rebuilt"
    types = lake_types(project, "payments")
    assert (types["amount"], types["customerNumber"]) == ("decimal(10, 3)", "string")
    rows = raw_rows(project, "payments", "SELECT count(*), sum(amount) FROM t")
    assert rows == [(payments, Decimal(str(amount)).quantize(Decimal("0.001")))]
    assert published_run(project) == {run.run_id}
    # The next run finds nothing to do.
    assert ok(project.run_job("etl")).report["schema_drift"] == {}


def test_policy_fail_quarantines_any_change_and_warn_evolves_with_warnings(
    project: Project,
) -> None:
    project = configure(project, schema_drift={"default": "warn", "tables": {"offices": "fail"}})
    first = ok(project.run_job("etl"))
    with source(project) as con:
        con.execute("ALTER TABLE offices ADD COLUMN region TEXT")
        con.execute("ALTER TABLE productlines ADD COLUMN season TEXT")
        con.execute("UPDATE productlines SET season = 'summer'")
        lines = con.execute("SELECT count(*) FROM productlines").fetchone()[0]
    failed = project.run_job("etl")
    error = failure(failed)
    assert error.startswith(
        "Table offices is quarantined (policy fail): column region string (declared TEXT) added."
    )
    assert "productlines" not in error
    drift = failed.report["schema_drift"]
    assert (drift["offices"]["action"], drift["productlines"]["action"]) == (
        "quarantined",
        "evolved",
    )
    log = project.jobs.logs("etl", failed.run_id)
    assert "WARNING sluice.ingest.drift: schema drift in productlines: column season" in log
    assert raw_rows(project, "productlines", "SELECT count(season) FROM t") == [(lines,)]
    # dim_employees reads raw.offices, so it was not built; dim_products was.
    assert project.describe("gold.dim_employees").snapshots[-1].run_id == first.run_id
    assert project.describe("gold.dim_products").snapshots[-1].run_id == failed.run_id
    project.jobs.accept_drift("etl", "offices")
    run = ok(project.run_job("etl"))
    assert "region" in lake_types(project, "offices")
    assert run.report["schema_drift"]["offices"]["action"] == "rebuilt"


def test_a_changed_primary_key_quarantines_an_incremental_table(project: Project) -> None:
    spec = {"cursor": "orderNumber", "primary_key": ["orderNumber"]}
    project = configure(project, incremental={"orders": spec})
    ok(project.run_job("etl"))
    project = configure(
        project, incremental={"orders": {**spec, "primary_key": ["orderNumber", "customerNumber"]}}
    )
    failed = project.run_job("etl")
    error = failure(failed)
    assert (
        "Table orders is quarantined: primary key changed from (orderNumber) to "
        "(orderNumber, customerNumber)." in error
    )
    project.jobs.accept_drift("etl", "orders")
    run = ok(project.run_job("etl"))
    with source(project) as con:
        orders = con.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert run.report["incremental"]["orders"]["rows_read"] == orders
    assert raw_rows(project, "orders", 'SELECT count(DISTINCT "orderNumber") FROM t') == [(orders,)]


def test_a_model_reading_a_column_the_source_dropped_names_model_and_column(
    project: Project,
) -> None:
    ok(project.run_job("etl"))
    with source(project) as con:
        con.execute("ALTER TABLE customers DROP COLUMN phone")
    project.jobs.accept_drift("etl", "customers")
    failed = project.run_job("etl")
    error = failure(failed)
    assert error.startswith(
        "Model dim_customers (dim_customers.sql) reads column phone, which gold.dim_locations, "
        "raw.customers does not have (dropped in the source?)."
    )
    assert "phone" not in lake_types(project, "customers")
    with pytest.raises(duckdb.BinderException):
        raw_rows(project, "customers", "SELECT phone FROM t")


def test_accept_drift_names_unknown_jobs_and_tables(project: Project) -> None:
    ok(project.run_job("etl"))
    result = sluice_cli("job", "accept-drift", "etl", "custmers", "--project", project.root)
    assert result.returncode == 3
    assert "Table raw.custmers does not exist. Did you mean 'raw.customers'?" in result.stderr


def alter(dialect: str, table: str, column: str, kind: str) -> str:
    if dialect == "mysql":
        return f'ALTER TABLE {table} MODIFY "{column}" {kind}'
    return f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE {kind}'


@pytest.mark.servers
def test_drift_on_a_server(tmp_path: Path, target: tuple[str, str]) -> None:
    dialect, url = target
    write_classicmodels(url, scale=1, seed=SEED)
    Project.init(tmp_path / "project", source_url=url)
    project = Project.open(tmp_path / "project")
    first = ok(project.run_job("etl"))
    execute: Execute
    with server_execute(dialect, url) as execute:
        execute('ALTER TABLE customers ADD COLUMN "loyaltyTier" varchar(10)')
        execute('UPDATE customers SET "loyaltyTier" = \'gold\' WHERE "customerNumber" < 200')
        gold = execute('SELECT count(*) FROM customers WHERE "customerNumber" < 200')[0][0]
        execute(alter(dialect, "customers", "city", "varchar(200)"))
        execute(alter(dialect, "products", "quantityInStock", "bigint"))
        execute(
            'UPDATE products SET "quantityInStock" = 5000000000 WHERE "productCode" = '
            '(SELECT min(p."productCode") FROM (SELECT * FROM products) AS p)'
        )
        execute('ALTER TABLE employees DROP COLUMN "extension"')
        execute(alter(dialect, "payments", "amount", "decimal(10,3)"))
        stock = execute('SELECT sum("quantityInStock") FROM products')[0][0]
        payments = execute("SELECT count(*), sum(amount) FROM payments")[0]
    failed = project.run_job("etl")
    error = failure(failed)
    assert error.startswith(
        "Table payments is quarantined: column amount changed type from decimal(10, 2) to "
        "decimal(10, 3)"
    )
    assert published_run(project) == {first.run_id}
    assert (
        raw_rows(
            project,
            "customers",
            'SELECT count("loyaltyTier"), count(*) - count("loyaltyTier") FROM t',
        )[0][0]
        == gold
    )
    assert lake_types(project, "products")["quantityInStock"] == "long"
    assert raw_rows(project, "products", 'SELECT sum("quantityInStock") FROM t') == [(stock,)]
    assert raw_rows(project, "employees", 'SELECT count(*), count("extension") FROM t')[0][1] == 0
    project.jobs.accept_drift("etl", "payments")
    run = ok(project.run_job("etl"))
    drift = run.report["schema_drift"]
    # A dropped column is reported on every run until its drop is accepted.
    assert (drift["payments"]["action"], drift["employees"]["action"]) == ("rebuilt", "evolved")
    assert raw_rows(project, "payments", "SELECT count(*), sum(amount) FROM t") == [
        (payments[0], Decimal(payments[1]))
    ]
    assert lake_types(project, "customers")["city"] == "string"


def test_the_simulators_drift_evolves_customers(project: Project) -> None:
    from sluice.sources.simulate import Activity

    ok(project.run_job("etl"))
    project.simulate(Activity(orders_per_minute=60, duration_seconds=2, drift=True, seed=3))
    with source(project) as con:
        tiers = dict(con.execute('SELECT "loyaltyTier", count(*) FROM customers GROUP BY 1'))
    run = ok(project.run_job("etl"))
    change = run.report["schema_drift"]["customers"]["changes"]
    assert [(c["column"], c["change"], c["new_type"]) for c in change] == [
        ("loyaltyTier", "added", "string")
    ]
    rows = project.query(
        'SELECT "loyaltyTier", count(*) FROM customers GROUP BY 1', database="raw"
    ).table.to_pylist()
    assert {r["loyaltyTier"]: r["count_star()"] for r in rows} == tiers
    assert set(tiers) == {"Gold", "Silver"}

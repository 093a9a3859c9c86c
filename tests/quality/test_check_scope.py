"""Checks on an incremental run read only the rows no earlier check has passed.

The project loads order lines incrementally and merges fact_orders by its key. After a run
that only adds order lines, the fact table's row-by-row checks and its unique check read
the new files alone; the rows they already passed keep their verdict. Whatever breaks
that reasoning (a dimension that loses keys, an earlier check that did not pass) sends the
check back to the whole table, and bad new rows fail the run as before.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import yaml

from sluice.core import TableName
from sluice.jobs.store import JobRun
from sluice.project import Project
from tests.transform.test_incremental_models import ok, source_path, with_incremental_lines

FACT = TableName("gold", "fact_orders")


def add_order(source: Path, number: int, lines: list[tuple[str, int]]) -> None:
    """A new order of customer 103 with ``lines`` (product code, line number)."""
    with sqlite3.connect(source) as con:
        con.execute(
            "INSERT INTO orders (orderNumber, orderDate, requiredDate, shippedDate, status, "
            "comments, customerNumber) VALUES (?, '2005-05-01', '2005-05-10', NULL, "
            "'In Process', NULL, 103)",
            (number,),
        )
        con.executemany(
            "INSERT INTO orderdetails (orderNumber, productCode, quantityOrdered, priceEach, "
            "orderLineNumber) VALUES (?, ?, 10, 50.00, ?)",
            [(number, code, line) for code, line in lines],
        )


def a_product(source: Path) -> str:
    with sqlite3.connect(source) as con:
        return str(con.execute("SELECT min(productCode) FROM products").fetchone()[0])


def checks(run: JobRun, model: str = "fact_orders") -> dict[str, tuple[str, int]]:
    """The run's checks on ``model``: name to (scope, failing rows)."""
    report: dict[str, Any] = run.report
    return {
        c["name"]: (c["scope"], c["failing_rows"]) for c in report["checks"] if c["model"] == model
    }


def fact_rows(project: Project) -> int:
    return int(project.query("SELECT count(*) FROM fact_orders").table.column(0)[0].as_py())


def test_new_order_lines_are_checked_alone_and_bad_ones_still_fail(project: Project) -> None:
    project = with_incremental_lines(project)
    first = ok(project.run_job("etl"))
    assert {scope for scope, _ in checks(first).values()} == {"all rows"}
    source = source_path(project)
    with sqlite3.connect(source) as con:
        products = [r[0] for r in con.execute("SELECT productCode FROM products LIMIT 2")]
    add_order(source, 99001, [(products[0], 1), (products[1], 2)])
    run = ok(project.run_job("etl"))
    assert run.report["models"]["fact_orders"] == {"build": "incremental", "keys": 2}
    scopes = {name: scope for name, (scope, _) in checks(run).items()}
    assert scopes.pop("reconcile(raw.orderdetails)") == "all rows"
    assert set(scopes.values()) == {"new rows"} and len(scopes) == 6, scopes
    rows = fact_rows(project)

    # A line of an unknown product: its product key is NULL, found among the new rows.
    add_order(source, 99002, [("S_NOPE", 1)])
    failed = project.run_job("etl")
    assert failed.state == "FAILED"
    assert "foreign_key(product_key -> dim_products.product_key) failed on 1 keys" in str(
        failed.error
    )
    assert fact_rows(project) == rows  # nothing published
    # Two lines numbered 1 in one order: the merged key repeats among the new rows.
    with sqlite3.connect(source) as con:
        con.execute("DELETE FROM orderdetails WHERE productCode = 'S_NOPE'")
        con.execute("DELETE FROM orders WHERE orderNumber = 99002")
    add_order(source, 99003, [(products[0], 1), (products[1], 1)])
    failed = project.run_job("etl")
    assert failed.state == "FAILED"
    assert "unique(orderNumber, orderLineNumber) found 1 bad rows" in str(failed.error)
    assert fact_rows(project) == rows


def test_a_dimension_that_loses_keys_has_every_fact_row_checked(project: Project) -> None:
    project = with_incremental_lines(project)
    ok(project.run_job("etl"))
    before = (
        project.query("SELECT count(*) FROM fact_orders WHERE order_date_key < 20040101")
        .table.column(0)[0]
        .as_py()
    )
    assert before > 0
    # dim_date drops 2003: the facts of 2003, in files no new row touches, lose their date.
    model = project.root / "models" / "dim_date.sql"
    model.write_text(model.read_text() + "WHERE fullDate >= DATE '2004-01-01'\n")
    source = source_path(project)
    add_order(source, 99001, [(a_product(source), 1)])
    failed = project.run_job("etl")
    assert failed.state == "FAILED"
    # Every date of 2003 the old facts use is named, not just the new line's (2005).
    lost = (
        project.query(
            "SELECT count(DISTINCT order_date_key) FROM fact_orders WHERE order_date_key < 20040101"
        )
        .table.column(0)[0]
        .as_py()
    )
    assert lost > 1
    assert f"order_date_key -> dim_date.date_key) failed on {lost} keys" in str(failed.error)


def test_a_check_that_did_not_pass_is_run_on_every_row(project: Project) -> None:
    project = with_incremental_lines(project)
    path = project.root / "sluice.yml"
    config = yaml.safe_load(path.read_text())
    config["checks"]["fact_orders"].append({"not_null": ["shippedDate"], "severity": "warn"})
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    project = Project.open(project.root)
    first = ok(project.run_job("etl"))
    scope, unshipped = checks(first)["not_null(shippedDate)"]
    assert scope == "all rows" and unshipped > 0
    source = source_path(project)
    add_order(source, 99001, [(a_product(source), 1)])
    run = ok(project.run_job("etl"))
    # The earlier verdict was a failure: the old rows are counted again, with the new one.
    assert checks(run)["not_null(shippedDate)"] == ("all rows", unshipped + 1)
    assert checks(run)["unique(orderNumber, orderLineNumber)"] == ("new rows", 0)

"""Reconciliation and key checks catch modelling errors before anything is published."""

from __future__ import annotations

from sluice.project import Project
from tests.jobs.helpers import lake_totals, published_run

LAB_FACT_ORDERS = """
-- The cloud lab's model: locations keyed and joined on postalCode alone.
SELECT od.orderNumber, od.orderLineNumber, dc.customer_key, l.location_key, dp.product_key,
       NULL::BIGINT AS employee_key,
       CAST(strftime(o.orderDate, '%Y%m%d') AS INTEGER) AS order_date_key,
       o.orderDate, o.requiredDate, o.shippedDate, o.status, od.quantityOrdered, od.priceEach,
       CAST(od.quantityOrdered * od.priceEach AS DECIMAL(18, 2)) AS orderAmount,
       dp.buyPrice, dp.MSRP
FROM raw.orderdetails AS od
JOIN raw.orders AS o ON o.orderNumber = od.orderNumber
JOIN raw.customers AS c ON c.customerNumber = o.customerNumber
JOIN gold.dim_customers AS dc ON dc.customerNumber = o.customerNumber
JOIN gold.dim_locations AS l ON l.postalCode = c.postalCode
JOIN gold.dim_products AS dp ON dp.productCode = od.productCode
"""


def test_the_labs_postal_code_join_fails_the_run_and_publishes_nothing(project: Project) -> None:
    good = project.run_job("etl")
    before = lake_totals(project)
    (project.root / "models" / "fact_orders.sql").write_text(LAB_FACT_ORDERS)

    run = project.run_job("etl")

    assert run.state == "FAILED"
    error = run.error or ""
    assert "fact_orders does not reconcile with raw.orderdetails" in error
    assert f"row count expected {before[0]}, actual" in error
    actual_rows = int(error.split(f"row count expected {before[0]}, actual ")[1].split(";")[0])
    assert actual_rows != before[0]
    assert "sum(orderAmount) expected" in error
    assert lake_totals(project) == before
    assert published_run(project) == {good.run_id}
    failed = [c for c in project.jobs.runs("etl") if c.run_id == run.run_id]
    assert failed and failed[0].state == "FAILED"


def test_a_dimension_with_duplicate_keys_fails_the_foreign_key_check(project: Project) -> None:
    project.run_job("etl")
    model = project.root / "models" / "dim_products.sql"
    model.write_text(
        model.read_text().replace("row_number() OVER (ORDER BY p.productCode)", "CAST(1 AS BIGINT)")
    )
    run = project.run_job("etl")
    assert run.state == "FAILED"
    assert "not unique in dim_products: key 1" in (run.error or "")


def test_a_fact_key_missing_from_its_dimension_is_named(project: Project) -> None:
    project.run_job("etl")
    model = project.root / "models" / "dim_customers.sql"
    model.write_text(model.read_text() + "WHERE c.customerNumber % 2 = 0\n")
    run = project.run_job("etl")
    assert run.state == "FAILED"
    error = run.error or ""
    assert "missing from dim_customers" in error
    assert "fact_orders does not reconcile" not in error


def test_warn_checks_are_recorded_without_blocking(project: Project) -> None:
    config = project.root / "sluice.yml"
    config.write_text(
        config.read_text().replace(
            "  dim_locations:\n",
            '  dim_locations:\n    - {sql: "SELECT * FROM gold.dim_locations WHERE postalCode IS NULL",'
            " severity: warn, name: no_postal_code}\n",
        )
    )
    run = Project.open(project.root).run_job("etl")
    assert run.state == "SUCCEEDED"
    checks = {c["name"]: c for c in run.report["checks"]}
    assert checks["no_postal_code"]["failing_rows"] > 0
    assert checks["no_postal_code"]["severity"] == "warn"
    assert all(c["failing_rows"] == 0 for c in checks.values() if c["severity"] == "error")

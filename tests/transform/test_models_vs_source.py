"""Every gold model checked against SQL run directly on the SQLite source.

Money is compared exactly, in integer cents, on both sides.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from sluice.project import Project

CENTS = "CAST(ROUND(od.priceEach * 100) AS INTEGER) * od.quantityOrdered"


def source_rows(
    project: Project, sql: str, params: tuple[object, ...] = ()
) -> list[tuple[object, ...]]:
    path = Path(project.config.sources["classicmodels"].url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as con:
        return [tuple(row) for row in con.execute(sql, params)]


def lake_rows(project: Project, sql: str) -> list[tuple[object, ...]]:
    table = project.query(sql).table
    return [tuple(_plain(v) for v in row.values()) for row in table.to_pylist()]


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value * 100) if value == value.quantize(Decimal("0.01")) else value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


@pytest.fixture(params=[1, 10], ids=["scale1", "scale10"])
def lake(request: pytest.FixtureRequest, built: Callable[[int], Project]) -> Project:
    return built(request.param)


def test_fact_orders_has_every_order_line_exactly_once(lake: Project) -> None:
    expected = source_rows(
        lake,
        f"""SELECT od.orderNumber, od.orderLineNumber, od.productCode, o.customerNumber, o.orderDate,
                   o.shippedDate, o.status, od.quantityOrdered, {CENTS}
            FROM orderdetails od JOIN orders o USING (orderNumber) ORDER BY 1, 2""",
    )
    actual = lake_rows(
        lake,
        """SELECT f.orderNumber, f.orderLineNumber, p.productCode, c.customerNumber, f.orderDate,
                  f.shippedDate, f.status, f.quantityOrdered, f.orderAmount
           FROM fact_orders f JOIN dim_products p USING (product_key)
           JOIN dim_customers c USING (customer_key) ORDER BY 1, 2""",
    )
    assert len(actual) == len(expected) == 2996 * (len(expected) // 2996)
    assert actual == expected


def test_sales_by_country_reconcile_to_the_cent(lake: Project) -> None:
    expected = source_rows(
        lake,
        f"""SELECT c.country, SUM({CENTS}), COUNT(DISTINCT o.orderNumber)
            FROM orderdetails od JOIN orders o USING (orderNumber)
            JOIN customers c USING (customerNumber) GROUP BY c.country ORDER BY c.country""",
    )
    actual = lake_rows(
        lake,
        """SELECT l.country, sum(f.orderAmount), count(DISTINCT f.orderNumber)
           FROM fact_orders f JOIN dim_locations l USING (location_key)
           GROUP BY l.country ORDER BY l.country""",
    )
    assert actual == expected
    assert len(actual) > 10


def test_sales_by_date_product_line_product_and_country(lake: Project) -> None:
    expected = source_rows(
        lake,
        f"""SELECT o.orderDate, p.productLine, p.productName, c.country, SUM({CENTS})
            FROM orderdetails od JOIN orders o USING (orderNumber)
            JOIN customers c USING (customerNumber) JOIN products p USING (productCode)
            GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4""",
    )
    actual = lake_rows(
        lake,
        """SELECT f.orderDate, p.productLine, p.productName, l.country, sum(f.orderAmount)
           FROM fact_orders f JOIN dim_products p USING (product_key)
           JOIN dim_locations l USING (location_key)
           GROUP BY ALL ORDER BY 1, 2, 3, 4""",
    )
    assert actual == expected


def test_top_products_for_a_country_line_and_date_range(lake: Project) -> None:
    country, line, start, end = "USA", "Classic Cars", "2003-06-01", "2004-12-31"
    expected = source_rows(
        lake,
        f"""SELECT p.productName, SUM({CENTS}) AS sales
            FROM orderdetails od JOIN orders o USING (orderNumber)
            JOIN customers c USING (customerNumber) JOIN products p USING (productCode)
            WHERE c.country = ? AND p.productLine = ? AND o.orderDate BETWEEN ? AND ?
            GROUP BY 1 ORDER BY sales DESC, 1 LIMIT 5""",
        (country, line, start, end),
    )
    actual = lake_rows(
        lake,
        f"""SELECT p.productName, sum(f.orderAmount) AS sales
            FROM fact_orders f JOIN dim_products p USING (product_key)
            JOIN dim_locations l USING (location_key)
            WHERE l.country = '{country}' AND p.productLine = '{line}'
              AND f.orderDate BETWEEN DATE '{start}' AND DATE '{end}'
            GROUP BY 1 ORDER BY sales DESC, 1 LIMIT 5""",
    )
    assert len(actual) == 5
    assert actual == expected


def test_dim_customers_matches_customers(lake: Project) -> None:
    expected = source_rows(
        lake,
        """SELECT customerNumber, customerName, phone, CAST(ROUND(creditLimit * 100) AS INTEGER),
                  salesRepEmployeeNumber, addressLine1, addressLine2, city, state, postalCode, country
           FROM customers ORDER BY 1""",
    )
    actual = lake_rows(
        lake,
        """SELECT c.customerNumber, c.customerName, c.phone, c.creditLimit, c.salesRepEmployeeNumber,
                  l.addressLine1, l.addressLine2, l.city, l.state, l.postalCode, l.country
           FROM dim_customers c JOIN dim_locations l USING (location_key) ORDER BY 1""",
    )
    assert actual == expected
    keys = lake_rows(
        lake,
        "SELECT count(DISTINCT customer_key), min(customer_key), max(customer_key) FROM dim_customers",
    )
    assert keys == [(len(expected), 1, len(expected))]


def test_dim_locations_is_one_row_per_distinct_address(lake: Project) -> None:
    expected = source_rows(
        lake,
        """SELECT COUNT(*) FROM (SELECT DISTINCT addressLine1, addressLine2, city, state,
                  postalCode, country FROM customers)""",
    )
    assert lake_rows(lake, "SELECT count(*), count(DISTINCT location_key) FROM dim_locations") == [
        (expected[0][0], expected[0][0])
    ]
    shared = source_rows(
        lake,
        "SELECT COUNT(*) FROM (SELECT postalCode FROM customers WHERE postalCode IS NOT NULL "
        "GROUP BY postalCode HAVING COUNT(DISTINCT city) > 1)",
    )
    assert shared[0][0] >= 1, "the source keeps a postal code shared by several cities"


def test_dim_products_matches_products_with_line_description(lake: Project) -> None:
    expected = source_rows(
        lake,
        """SELECT p.productCode, p.productName, p.productLine, pl.textDescription, p.productScale,
                  p.quantityInStock, CAST(ROUND(p.buyPrice * 100) AS INTEGER),
                  CAST(ROUND(p.MSRP * 100) AS INTEGER)
           FROM products p LEFT JOIN productlines pl USING (productLine) ORDER BY 1""",
    )
    actual = lake_rows(
        lake,
        """SELECT productCode, productName, productLine, productLineDescription, productScale,
                  quantityInStock, buyPrice, MSRP FROM dim_products ORDER BY 1""",
    )
    assert actual == expected


def test_dim_employees_carry_their_office(lake: Project) -> None:
    expected = source_rows(
        lake,
        """SELECT e.employeeNumber, e.lastName, e.jobTitle, e.reportsTo, o.city, o.country, o.territory
           FROM employees e JOIN offices o USING (officeCode) ORDER BY 1""",
    )
    actual = lake_rows(
        lake,
        """SELECT employeeNumber, lastName, jobTitle, reportsTo, officeCity, officeCountry,
                  officeTerritory FROM dim_employees ORDER BY 1""",
    )
    assert actual == expected


def test_dim_date_covers_every_order_date_without_gaps(lake: Project) -> None:
    ((first, last),) = source_rows(
        lake,
        """SELECT MIN(d), MAX(d) FROM (SELECT orderDate d FROM orders UNION ALL
           SELECT requiredDate FROM orders UNION ALL SELECT shippedDate FROM orders)""",
    )
    ((days,),) = source_rows(
        lake, "SELECT CAST(julianday(?) - julianday(?) AS INTEGER) + 1", (last, first)
    )
    actual = lake_rows(
        lake,
        "SELECT count(*), count(DISTINCT date_key), min(fullDate), max(fullDate) FROM dim_date",
    )
    assert actual == [(days, days, first, last)]
    weekend = lake_rows(lake, "SELECT dayName, isWeekend FROM dim_date WHERE date_key = 20040103")
    assert weekend == [("Saturday", True)]


def test_every_fact_key_resolves_to_exactly_one_dimension_row(lake: Project) -> None:
    orphans = lake_rows(
        lake,
        """SELECT count(*) FILTER (WHERE c.customer_key IS NULL),
                  count(*) FILTER (WHERE l.location_key IS NULL),
                  count(*) FILTER (WHERE p.product_key IS NULL),
                  count(*) FILTER (WHERE d.date_key IS NULL), count(*)
           FROM fact_orders f
           LEFT JOIN dim_customers c ON c.customer_key = f.customer_key
           LEFT JOIN dim_locations l ON l.location_key = f.location_key
           LEFT JOIN dim_products p ON p.product_key = f.product_key
           LEFT JOIN dim_date d ON d.date_key = f.order_date_key""",
    )
    ((lines,),) = source_rows(lake, "SELECT COUNT(*) FROM orderdetails")
    assert orphans == [(0, 0, 0, 0, lines)]


def test_raw_tables_keep_source_rows_and_load_metadata(lake: Project) -> None:
    ((orders,),) = source_rows(lake, "SELECT COUNT(*) FROM orders")
    rows = lake.query(
        "SELECT count(*) AS n, count(DISTINCT _sluice_run_id) AS runs, min(_sluice_extracted_at) AS at "
        "FROM orders",
        database="raw",
    ).table.to_pylist()
    assert rows[0]["n"] == orders
    assert rows[0]["runs"] == 1
    assert rows[0]["at"] is not None
    types = {
        f.name: str(f.type)
        for f in lake.query("SELECT * FROM orderdetails LIMIT 1", database="raw").table.schema
    }
    assert types["priceEach"] == "decimal128(10, 2)"
    assert types["orderNumber"] == "int32"
    assert types["productCode"] == "string"

"""Benchmark peer: the classicmodels star schema with plain single-process DuckDB.

Usage: python bench/peers/duckdb_etl.py SOURCE_DB OUT_DIR

Reads the SQLite source directly through DuckDB's sqlite scanner (loaded by path from the
``duckdb_extension_sqlite_scanner`` wheel; DuckDB never downloads anything) and writes the six
star-schema tables as snappy Parquet, one file per table, into OUT_DIR. This is what a competent
engineer writes by hand: one connection, default settings, straightforward SQL.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import duckdb_extension_sqlite_scanner

ADDRESS = ("addressLine1", "addressLine2", "city", "state", "postalCode", "country")

DIM_LOCATIONS = f"""
CREATE TABLE dim_locations AS
SELECT row_number() OVER (ORDER BY {", ".join(f"{c} NULLS LAST" for c in ADDRESS)})
           AS location_key,
       {", ".join(ADDRESS)}
FROM (SELECT DISTINCT {", ".join(ADDRESS)} FROM src.customers)
ORDER BY location_key
"""

DIM_CUSTOMERS = f"""
CREATE TABLE dim_customers AS
SELECT row_number() OVER (ORDER BY c.customerNumber) AS customer_key,
       c.customerNumber, c.customerName, c.contactLastName, c.contactFirstName, c.phone,
       CAST(c.creditLimit AS DECIMAL(10, 2)) AS creditLimit,
       c.salesRepEmployeeNumber, l.location_key
FROM src.customers AS c
LEFT JOIN dim_locations AS l
  ON {" AND ".join(f"c.{c} IS NOT DISTINCT FROM l.{c}" for c in ADDRESS)}
ORDER BY customer_key
"""

DIM_PRODUCTS = """
CREATE TABLE dim_products AS
SELECT row_number() OVER (ORDER BY p.productCode) AS product_key,
       p.productCode, p.productName, p.productLine,
       pl.textDescription AS productLineDescription,
       p.productScale, p.productVendor, p.productDescription, p.quantityInStock,
       CAST(p.buyPrice AS DECIMAL(10, 2)) AS buyPrice,
       CAST(p.MSRP AS DECIMAL(10, 2)) AS MSRP
FROM src.products AS p
LEFT JOIN src.productlines AS pl ON pl.productLine = p.productLine
ORDER BY product_key
"""

DIM_EMPLOYEES = """
CREATE TABLE dim_employees AS
SELECT row_number() OVER (ORDER BY e.employeeNumber) AS employee_key,
       e.employeeNumber, e.lastName, e.firstName, e.email, e.extension, e.jobTitle,
       e.reportsTo, e.officeCode,
       o.city AS officeCity, o.country AS officeCountry, o.territory AS officeTerritory
FROM src.employees AS e
LEFT JOIN src.offices AS o ON o.officeCode = e.officeCode
ORDER BY employee_key
"""

DIM_DATE = """
CREATE TABLE dim_date AS
WITH bounds AS (
    SELECT min(d) AS lo, max(d) AS hi
    FROM (SELECT orderDate AS d FROM src.orders
          UNION ALL SELECT requiredDate FROM src.orders
          UNION ALL SELECT shippedDate FROM src.orders)
),
days AS (
    SELECT CAST(unnest(generate_series(lo, hi, INTERVAL 1 DAY)) AS DATE) AS d FROM bounds
)
SELECT CAST(year(d) * 10000 + month(d) * 100 + day(d) AS INTEGER) AS date_key,
       d AS date,
       CAST(year(d) AS INTEGER) AS year,
       CAST(quarter(d) AS INTEGER) AS quarter,
       CAST(month(d) AS INTEGER) AS month,
       monthname(d) AS monthName,
       CAST(day(d) AS INTEGER) AS day,
       CAST(isodow(d) AS INTEGER) AS dayOfWeek,
       dayname(d) AS dayName,
       isodow(d) >= 6 AS isWeekend
FROM days
ORDER BY date_key
"""

FACT_ORDERS = """
SELECT od.orderNumber,
       od.orderLineNumber,
       c.customer_key,
       c.location_key,
       p.product_key,
       e.employee_key,
       CAST(year(o.orderDate) * 10000 + month(o.orderDate) * 100 + day(o.orderDate) AS INTEGER)
           AS order_date_key,
       o.orderDate,
       o.requiredDate,
       o.shippedDate,
       o.status,
       od.quantityOrdered,
       CAST(od.priceEach AS DECIMAL(10, 2)) AS priceEach,
       CAST(od.quantityOrdered * CAST(od.priceEach AS DECIMAL(10, 2)) AS DECIMAL(18, 2))
           AS orderAmount,
       p.buyPrice,
       p.MSRP
FROM src.orderdetails AS od
JOIN src.orders AS o ON o.orderNumber = od.orderNumber
LEFT JOIN dim_customers AS c ON c.customerNumber = o.customerNumber
LEFT JOIN dim_products AS p ON p.productCode = od.productCode
LEFT JOIN dim_employees AS e ON e.employeeNumber = c.salesRepEmployeeNumber
"""

DIMENSIONS = {
    "dim_locations": DIM_LOCATIONS,
    "dim_customers": DIM_CUSTOMERS,
    "dim_products": DIM_PRODUCTS,
    "dim_employees": DIM_EMPLOYEES,
    "dim_date": DIM_DATE,
}


def sqlite_scanner_path() -> Path:
    """The sqlite scanner extension binary shipped inside the pip package."""
    package_dir = Path(duckdb_extension_sqlite_scanner.__file__).parent
    found = sorted(package_dir.rglob("*.duckdb_extension"))
    if not found:
        raise SystemExit(f"no *.duckdb_extension file under {package_dir}")
    return found[0]


def connect(source_db: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the SQLite source attached read-only as ``src``."""
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.load_extension(str(sqlite_scanner_path()))
    con.execute(f"ATTACH '{source_db}' AS src (TYPE sqlite, READ_ONLY)")
    return con


def copy_to_parquet(con: duckdb.DuckDBPyConnection, relation: str, target: Path) -> None:
    """Write a table name or a parenthesised query as one snappy Parquet file."""
    con.execute(f"COPY {relation} TO '{target}' (FORMAT parquet, COMPRESSION snappy)")


def build(con: duckdb.DuckDBPyConnection, out_dir: Path) -> None:
    """Build the (small) dimensions in memory, then stream the fact table straight to Parquet."""
    for name, ddl in DIMENSIONS.items():
        con.execute(ddl)
        copy_to_parquet(con, name, out_dir / f"{name}.parquet")
    copy_to_parquet(con, f"({FACT_ORDERS})", out_dir / "fact_orders.parquet")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: duckdb_etl.py SOURCE_DB OUT_DIR", file=sys.stderr)
        return 2
    source_db, out_dir = Path(argv[0]).resolve(), Path(argv[1])
    if not source_db.is_file():
        print(f"source database not found: {source_db}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    with connect(source_db) as con:
        build(con, out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Benchmark peer: the classicmodels star schema the way users write it by hand with pandas.

Usage: python bench/peers/pandas_etl.py SOURCE_DB OUT_DIR

``pd.read_sql`` over a plain sqlite3 connection, one table at a time; merges for the joins;
sorting/ranking for the surrogate keys; ``DataFrame.to_parquet(compression="snappy")`` through
pyarrow. Correct (exact decimals, NULL-safe address matching, real DATE columns) but idiomatic,
not hyper-optimised.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa

ADDRESS = ["addressLine1", "addressLine2", "city", "state", "postalCode", "country"]
MONEY = pd.ArrowDtype(pa.decimal128(10, 2))
AMOUNT = pd.ArrowDtype(pa.decimal128(18, 2))
DATE = pd.ArrowDtype(pa.date32())
SOURCE_TABLES = ["customers", "employees", "offices", "orderdetails", "orders", "products"]


def read_source(source_db: Path) -> dict[str, pd.DataFrame]:
    """Every source table the star schema needs, as DataFrames."""
    with sqlite3.connect(source_db) as con:
        frames = {name: pd.read_sql(f"SELECT * FROM {name}", con) for name in SOURCE_TABLES}
        frames["productlines"] = pd.read_sql(
            "SELECT productLine, textDescription FROM productlines", con
        )
    return frames


def money(column: pd.Series) -> pd.Series:
    """decimal(10,2). SQLite keeps whole amounts as INTEGER, so go through float64 first."""
    return column.astype("float64").astype(MONEY)


def surrogate_key(column: pd.Series) -> pd.Series:
    """1..n in the column's sort order (ties broken by position)."""
    return column.rank(method="first").astype("int64")


def dim_locations(customers: pd.DataFrame) -> pd.DataFrame:
    locations = customers[ADDRESS].drop_duplicates()
    locations = locations.sort_values(ADDRESS, na_position="last", ignore_index=True)
    locations.insert(0, "location_key", range(1, len(locations) + 1))
    return locations


def dim_customers(customers: pd.DataFrame, locations: pd.DataFrame) -> pd.DataFrame:
    # merge matches NaN keys with NaN keys, so the address join is NULL-safe.
    df = customers.merge(locations, on=ADDRESS, how="left")
    df["customer_key"] = surrogate_key(df["customerNumber"])
    df["creditLimit"] = money(df["creditLimit"])
    df["salesRepEmployeeNumber"] = df["salesRepEmployeeNumber"].astype("Int64")
    columns = [
        "customer_key", "customerNumber", "customerName", "contactLastName",
        "contactFirstName", "phone", "creditLimit", "salesRepEmployeeNumber", "location_key",
    ]  # fmt: skip
    return df.sort_values("customer_key", ignore_index=True)[columns]


def dim_products(products: pd.DataFrame, productlines: pd.DataFrame) -> pd.DataFrame:
    lines = productlines.rename(columns={"textDescription": "productLineDescription"})
    df = products.merge(lines, on="productLine", how="left")
    df["product_key"] = surrogate_key(df["productCode"])
    df["buyPrice"] = money(df["buyPrice"])
    df["MSRP"] = money(df["MSRP"])
    columns = [
        "product_key", "productCode", "productName", "productLine", "productLineDescription",
        "productScale", "productVendor", "productDescription", "quantityInStock", "buyPrice",
        "MSRP",
    ]  # fmt: skip
    return df.sort_values("product_key", ignore_index=True)[columns]


def dim_employees(employees: pd.DataFrame, offices: pd.DataFrame) -> pd.DataFrame:
    office_cols = {"city": "officeCity", "country": "officeCountry", "territory": "officeTerritory"}
    office = offices[["officeCode", *office_cols]].rename(columns=office_cols)
    df = employees.merge(office, on="officeCode", how="left")
    df["employee_key"] = surrogate_key(df["employeeNumber"])
    df["reportsTo"] = df["reportsTo"].astype("Int64")
    columns = [
        "employee_key", "employeeNumber", "lastName", "firstName", "email", "extension",
        "jobTitle", "reportsTo", "officeCode", "officeCity", "officeCountry", "officeTerritory",
    ]  # fmt: skip
    return df.sort_values("employee_key", ignore_index=True)[columns]


def date_key(dates: pd.Series) -> pd.Series:
    """yyyymmdd as an integer."""
    return (dates.dt.year * 10000 + dates.dt.month * 100 + dates.dt.day).astype("int32")


def dim_date(orders: pd.DataFrame) -> pd.DataFrame:
    all_dates = pd.concat(
        [pd.to_datetime(orders[c]) for c in ("orderDate", "requiredDate", "shippedDate")]
    )
    days = pd.Series(pd.date_range(all_dates.min(), all_dates.max(), freq="D"))
    return pd.DataFrame(
        {
            "date_key": date_key(days),
            "date": days.astype(DATE),
            "year": days.dt.year.astype("int32"),
            "quarter": days.dt.quarter.astype("int32"),
            "month": days.dt.month.astype("int32"),
            "monthName": days.dt.month_name(),
            "day": days.dt.day.astype("int32"),
            "dayOfWeek": (days.dt.day_of_week + 1).astype("int32"),  # ISO: Monday=1 .. Sunday=7
            "dayName": days.dt.day_name(),
            "isWeekend": days.dt.day_of_week >= 5,
        }
    )


def fact_orders(
    source: dict[str, pd.DataFrame],
    customers: pd.DataFrame,
    products: pd.DataFrame,
    employees: pd.DataFrame,
) -> pd.DataFrame:
    orders = source["orders"].drop(columns=["comments"])
    df = source["orderdetails"].merge(orders, on="orderNumber", how="inner")
    df = df.merge(
        customers[["customerNumber", "customer_key", "location_key", "salesRepEmployeeNumber"]],
        on="customerNumber",
        how="left",
    )
    df = df.merge(
        products[["productCode", "product_key", "buyPrice", "MSRP"]], on="productCode", how="left"
    )
    df = df.merge(
        employees[["employeeNumber", "employee_key"]],
        left_on="salesRepEmployeeNumber",
        right_on="employeeNumber",
        how="left",
    )
    for column in ("orderDate", "requiredDate", "shippedDate"):
        df[column] = pd.to_datetime(df[column])
    df["order_date_key"] = date_key(df["orderDate"])
    for column in ("orderDate", "requiredDate", "shippedDate"):
        df[column] = df[column].astype(DATE)
    for column in ("customer_key", "location_key", "product_key", "employee_key"):
        df[column] = df[column].astype("Int64")
    df["priceEach"] = money(df["priceEach"])
    df["orderAmount"] = (df["priceEach"] * df["quantityOrdered"]).astype(AMOUNT)
    columns = [
        "orderNumber", "orderLineNumber", "customer_key", "location_key", "product_key",
        "employee_key", "order_date_key", "orderDate", "requiredDate", "shippedDate", "status",
        "quantityOrdered", "priceEach", "orderAmount", "buyPrice", "MSRP",
    ]  # fmt: skip
    return df[columns]


def build(source: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    locations = dim_locations(source["customers"])
    customers = dim_customers(source["customers"], locations)
    products = dim_products(source["products"], source["productlines"])
    employees = dim_employees(source["employees"], source["offices"])
    return {
        "dim_locations": locations,
        "dim_customers": customers,
        "dim_products": products,
        "dim_employees": employees,
        "dim_date": dim_date(source["orders"]),
        "fact_orders": fact_orders(source, customers, products, employees),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: pandas_etl.py SOURCE_DB OUT_DIR", file=sys.stderr)
        return 2
    source_db, out_dir = Path(argv[0]), Path(argv[1])
    if not source_db.is_file():
        print(f"source database not found: {source_db}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in build(read_source(source_db)).items():
        frame.to_parquet(out_dir / f"{name}.parquet", compression="snappy", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

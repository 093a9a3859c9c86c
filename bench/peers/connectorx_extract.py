"""Benchmark peer: full extraction of the classicmodels source to snappy Parquet with connectorx.

Usage: python bench/peers/connectorx_extract.py SOURCE_URL OUT_DIR

SOURCE_URL is sqlite:////abs/file.db, mysql://user@host:3306/db or
postgresql://user@host:5432/db. Every table is read with ``connectorx.read_sql(...,
return_type="arrow")`` (Rust, straight into Arrow; the fastest plain Python path we found) and
written with ``pyarrow.parquet.write_table(compression="snappy")``, one file per table. Tables
with more than 100,000 rows are read in two partitions (one per core) on their integer key,
which connectorx splits by the key's range; smaller ones in one query.

It prints the rows written and the seconds from the first query to the last file written
(without the interpreter's start and imports), for the harness's extraction-stage figures.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import connectorx as cx
import pyarrow.parquet as pq

TABLES = ("productlines", "products", "offices", "employees", "customers", "payments",
          "orders", "orderdetails")  # fmt: skip
PARTITION_ON = {"customers": "customerNumber", "payments": "customerNumber",
                "orders": "orderNumber", "orderdetails": "orderNumber"}  # fmt: skip
PARTITIONS = 2
BIG = 100_000


def quoted(url: str, name: str) -> str:
    return f"`{name}`" if url.startswith("mysql") else f'"{name}"'


def main(url: str, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    total = 0
    for table in TABLES:
        query = f"SELECT * FROM {quoted(url, table)}"
        count = cx.read_sql(
            url, f"SELECT count(*) AS n FROM {quoted(url, table)}", return_type="arrow"
        )
        rows = int(count.column(0)[0].as_py())
        column = PARTITION_ON.get(table)
        if column is not None and rows > BIG:
            on = quoted(url, column)  # connectorx puts it into its range queries as is
            arrow = cx.read_sql(
                url, query, return_type="arrow", partition_on=on, partition_num=PARTITIONS
            )
        else:
            arrow = cx.read_sql(url, query, return_type="arrow")
        pq.write_table(arrow, out / f"{table}.parquet", compression="snappy")
        total += arrow.num_rows
    print(total, f"{time.perf_counter() - started:.4f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__ or "")
        sys.exit(2)
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))

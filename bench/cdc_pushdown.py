"""CDC on a server: the cost of applying a few changes to a big table, with and without
sending the changed keys to the server as an IN list.

    SLUICE_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306/test \\
    SLUICE_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
    .venv/bin/python bench/cdc_pushdown.py [--scale 100] [--changes 50]

For each server whose URL is set, a private database gets the classicmodels tables at the
given scale and CDC on ``orderdetails``; ``--changes`` lines are repriced; then the changes are
applied with ``sluice.ingest.cdc.extract_changes`` (the code a job runs) three times with the
IN list and three times without, next to one full read of the table. Prints the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pymysql

from sluice import duck
from sluice.config import CdcSpec
from sluice.core import Cursor, TableName
from sluice.ingest import cdc
from sluice.ingest.extract import extract_table
from sluice.sources.base import SourceTable, open_source
from sluice.sources.cdc import CHANGE_LOG, LogPosition, enable_cdc, log_position
from sluice.sources.classicmodels import write_classicmodels
from sluice.sources.dbapi import open_database

RUNS = 3


@contextlib.contextmanager
def private_database(dialect: str, base: str) -> Iterator[str]:
    """A new empty database (MariaDB) or schema (PostgreSQL), dropped afterwards."""
    name = f"sluice_bench_{secrets.token_hex(4)}"
    if dialect == "mysql":
        parts = urlsplit(base)
        con = pymysql.connect(
            host=parts.hostname, port=parts.port or 3306, user=parts.username, autocommit=True
        )
        con.cursor().execute(f"CREATE DATABASE `{name}`")
        try:
            yield base.rsplit("/", 1)[0] + "/" + name
        finally:
            con.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
            con.close()
        return
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{base}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(base, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measure(dialect: str, url: str, *, scale: int, changes: int, work: Path) -> dict[str, float]:
    write_classicmodels(url, scale=scale, seed=7)
    enable_cdc(url, ["orderdetails"], base_dir=work)
    source = open_source(url, base_dir=work)
    table = next(t for t in source.tables() if t.name == "orderdetails")
    con = duck.connect()
    source.attach(con, "src")
    relation = source.relation("src", table)
    target = TableName("raw", "orderdetails")
    now = datetime.now(UTC)
    full = work / "full.parquet"
    start = log_position(url, ["orderdetails"], base_dir=work)

    def read_all() -> None:
        extract_table(
            con, relation=relation, table=table, target=target, path=full, run_id="b",
            extracted_at=now,
        )  # fmt: skip

    full_seconds = timed(read_all)
    db = open_database(url, base_dir=work)
    q = db.quote
    db.execute(
        f"UPDATE {q('orderdetails')} SET {q('priceEach')} = {q('priceEach')} + 1 WHERE "
        f"{q('orderNumber')} IN (SELECT {q('orderNumber')} FROM (SELECT {q('orderNumber')} "
        f"FROM {q('orderdetails')} ORDER BY {q('orderNumber')} LIMIT {changes}) AS picked)"
    )
    db.commit()
    db.close()
    position = log_position(url, ["orderdetails"], base_dir=work)

    def apply() -> None:
        cdc.extract_changes(
            con,
            relation=relation,
            log_relation=source.relation("src", SourceTable(CHANGE_LOG, ())),
            table=table,
            spec=CdcSpec(primary_key=["orderNumber", "productCode"]),
            cursor=Cursor(cdc.CDC_CURSOR, start.cursor()),
            position=position,
            current=(str(full),),
            target=target,
            path=work / "applied.parquet",
            work_dir=work,
            run_id="b",
            extracted_at=now,
        )

    results = {"full read": full_seconds}
    default = cdc.PUSHDOWN_KEYS
    for label, keys in (("changes, IN list", default), ("changes, no IN list", 0)):
        cdc.PUSHDOWN_KEYS = keys
        results[label] = statistics.median(timed(apply) for _ in range(RUNS))
    cdc.PUSHDOWN_KEYS = default
    assert LogPosition.parse(position.cursor()) == position
    con.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args()
    servers = {
        "mysql": os.environ.get("SLUICE_TEST_MYSQL_URL"),
        "postgresql": os.environ.get("SLUICE_TEST_POSTGRES_URL"),
    }
    for dialect, base in servers.items():
        if not base:
            print(f"{dialect}: skipped (its SLUICE_TEST_*_URL is not set)")
            continue
        with private_database(dialect, base) as url, tempfile.TemporaryDirectory() as folder:
            results = measure(
                dialect, url, scale=args.scale, changes=args.changes, work=Path(folder)
            )
        shown = ", ".join(f"{label} {seconds:.3f} s" for label, seconds in results.items())
        print(f"{dialect} scale {args.scale}, {args.changes} lines changed: {shown}")


if __name__ == "__main__":
    main()

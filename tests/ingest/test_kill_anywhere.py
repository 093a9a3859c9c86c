"""Ingestion killed anywhere, on SQLite, MariaDB and PostgreSQL: readers keep the previous
publication, and the next run makes every raw table exactly the source (no row lost, none
duplicated) and the gold tables reconcile with it.

One project per backend, reused across kill points. Its job loads orders and order lines
incrementally, on an ``updated_at`` column the database keeps itself (triggers, or MariaDB's
``ON UPDATE``), and the other tables in full. Before each kill the activity simulator moves
the source (new orders with lines and payments, shipments, cancellations, price changes) and
a payment is deleted. The kill points are drawn from the failpoints a real run of the job
passes; a failure names its point and the seed that replays the draw.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sluice import duck
from sluice.ingest.extract import EXTRACTED_AT_COLUMN, RUN_ID_COLUMN
from sluice.observe.failpoints import LOG_VAR
from sluice.project import Project
from sluice.sources.base import open_source
from sluice.sources.classicmodels import write_classicmodels
from sluice.sources.dbapi import Database, open_database
from sluice.sources.simulate import Activity, simulate
from tests.conftest import SEED
from tests.ingest.test_incremental import configure
from tests.jobs.helpers import lake_totals, published_run, run_killed_at

SEED_VAR = "SLUICE_KILL_SEED"
RANDOM_POINTS = 10
# Right after the data commit of an incremental table (rows and cursor in one snapshot).
ALWAYS = ("after-commit:raw.orderdetails",)
INCREMENTAL = {
    "orders": {"cursor": "updated_at", "primary_key": ["orderNumber"]},
    "orderdetails": {"cursor": "updated_at", "primary_key": ["orderNumber", "productCode"]},
}
# Every source table: its primary key, and a numeric expression to sum (None: no number).
TABLES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "customers": (("customerNumber",), "creditLimit"),
    "employees": (("employeeNumber",), "employeeNumber"),
    "offices": (("officeCode",), None),
    "orderdetails": (("orderNumber", "productCode"), "quantityOrdered * priceEach"),
    "orders": (("orderNumber",), "orderNumber"),
    "payments": (("customerNumber", "checkNumber"), "amount"),
    "productlines": (("productLine",), None),
    "products": (("productCode",), "MSRP"),
}
SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"


def keep_updated_at(db: Database) -> None:
    """Give orders and order lines an ``updated_at`` that the database sets on every insert
    and update, as applications' tables have."""
    q = db.quote
    if db.dialect == "postgresql":
        db.execute(
            "CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$"
        )
    for table, spec in INCREMENTAL.items():
        if db.dialect == "mysql":
            db.execute(
                f"ALTER TABLE {q(table)} ADD COLUMN updated_at DATETIME(6) NOT NULL "
                "DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)"
            )
        elif db.dialect == "postgresql":
            db.execute(
                f"ALTER TABLE {q(table)} ADD COLUMN updated_at timestamp(6) NOT NULL "
                "DEFAULT clock_timestamp()"
            )
            db.execute(
                f"CREATE TRIGGER {table}_touched BEFORE UPDATE ON {q(table)} "
                "FOR EACH ROW EXECUTE FUNCTION touch_updated_at()"
            )
        else:
            same_row = " AND ".join(f"{q(k)} = NEW.{q(k)}" for k in spec["primary_key"])
            touch = f"UPDATE {q(table)} SET updated_at = {SQLITE_NOW} WHERE {same_row};"
            db.execute(f"ALTER TABLE {q(table)} ADD COLUMN updated_at datetime")
            db.execute(f"UPDATE {q(table)} SET updated_at = {SQLITE_NOW}")
            db.execute(
                f"CREATE TRIGGER {table}_inserted AFTER INSERT ON {q(table)} BEGIN {touch} END"
            )
            db.execute(
                f"CREATE TRIGGER {table}_updated AFTER UPDATE ON {q(table)} "
                f"WHEN NEW.updated_at IS OLD.updated_at BEGIN {touch} END"
            )
    db.commit()


class _Instant:
    """A clock that moves only when slept on: the simulator's minute passes at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def move_source(url: str, *, base_dir: Path, step: int) -> None:
    """Ten new orders with lines and payments, shipments, cancellations and price changes
    (the simulator), and the oldest payment deleted (visible only to a full load)."""
    instant = _Instant()
    activity = Activity(orders_per_minute=600, duration_seconds=1, updates=True, seed=step)
    report = simulate(url, activity, base_dir=base_dir, clock=instant.clock, sleep=instant.sleep)
    assert report.orders == 10
    db = open_database(url, base_dir=base_dir)
    try:
        q = db.quote
        customer, check = db.execute(
            f"SELECT {q('customerNumber')}, {q('checkNumber')} FROM {q('payments')} "
            f"ORDER BY {q('paymentDate')}, {q('checkNumber')} LIMIT 1"
        )[0]
        db.execute(
            f"DELETE FROM {q('payments')} WHERE {q('customerNumber')} = ? "
            f"AND {q('checkNumber')} = ?",
            (customer, check),
        )
        db.commit()
    finally:
        db.close()


@dataclass(frozen=True)
class ReadersView:
    """What readers see: the published snapshots, and totals read through queries."""

    snapshots: dict[str, int]
    totals: tuple[int, int]
    raw_counts: dict[str, int]


def readers_view(project: Project) -> ReadersView:
    counts = project.query(
        " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM raw.{t}" for t in TABLES)
    ).table.to_pylist()
    return ReadersView(
        {str(t): p.snapshot_id for t, p in project.publications.current().items()},
        lake_totals(project),
        {row["t"]: row["n"] for row in counts},
    )


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row


def live_source(project: Project) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view of every source table, read live through its
    connector (each query sees the source as it is then)."""
    con = duck.connect(extensions=("sqlite_scanner",))
    source = open_source(project.config.sources["classicmodels"].url, base_dir=project.root)
    source.attach(con, "src")
    for table in source.tables():
        con.execute(f"CREATE VIEW {table.name} AS SELECT * FROM {source.relation('src', table)}")
    return con


def assert_lake_equals_source(
    project: Project, con: duckdb.DuckDBPyConnection, *, current: bool = True
) -> None:
    """Every published raw table holds exactly the source's rows (``con``: see
    ``live_source``) and, if ``current``, is the table's current Iceberg snapshot; the
    published gold tables reconcile with the source."""
    published = project.publications.current()
    for table, publication in published.items():
        files = duck.quote_literal(str(list(publication.files)))
        if table.database == "raw":
            if current:
                assert sorted(publication.files) == sorted(project.lake.current_files(table)), table
            drop = f" EXCLUDE ({RUN_ID_COLUMN}, {EXTRACTED_AT_COLUMN})"
        else:
            drop = ""
        con.execute(
            f"CREATE OR REPLACE VIEW {table.database}_{table.name} AS SELECT *{drop} "
            f"FROM read_parquet({files}::VARCHAR[])"
        )
    assert {t.name for t in published if t.database == "raw"} == set(TABLES)
    for name, (key, number) in TABLES.items():
        keys = ", ".join(key)
        total = f"sum(CAST({number} AS DECIMAL(38, 2)))" if number else "0"
        lake = _one(con, f"SELECT count(*), count(DISTINCT ({keys})), {total} FROM raw_{name}")
        source = _one(con, f"SELECT count(*), count(DISTINCT ({keys})), {total} FROM {name}")
        assert lake == source, f"raw.{name}: (rows, keys, sum) {lake} != source {source}"
        assert lake[0] == lake[1], f"raw.{name} has duplicate keys"
        differ = _one(
            con,
            f"SELECT (SELECT count(*) FROM (SELECT {keys} FROM {name} EXCEPT "
            f"SELECT {keys} FROM raw_{name})), "
            f"(SELECT count(*) FROM (FROM {name} EXCEPT ALL FROM raw_{name})), "
            f"(SELECT count(*) FROM (FROM raw_{name} EXCEPT ALL FROM {name}))",
        )
        assert differ == (0, 0, 0), f"raw.{name}: (missing keys, missing rows, extra) {differ}"
    gold = _one(
        con,
        "SELECT count(*), sum(orderAmount), sum(MSRP), "
        "count(*) FILTER (status = 'Shipped'), count(*) FILTER (status = 'Cancelled') "
        "FROM gold_fact_orders",
    )
    source = _one(
        con,
        "SELECT count(*), sum(CAST(d.quantityOrdered * d.priceEach AS DECIMAL(18, 2))), "
        "sum(CAST(p.MSRP AS DECIMAL(18, 2))), count(*) FILTER (o.status = 'Shipped'), "
        "count(*) FILTER (o.status = 'Cancelled') "
        "FROM orderdetails d JOIN orders o USING (orderNumber) "
        "JOIN products p USING (productCode)",
    )
    assert gold == source, f"gold.fact_orders {gold} != source {source}"


def kill_and_rerun(
    project: Project, url: str, con: duckdb.DuckDBPyConnection, *, point: str, step: int
) -> None:
    """Move the source, kill a run at ``point``, check readers, rerun, check the lake."""
    before = readers_view(project)
    previous = published_run(project)
    move_source(url, base_dir=project.root, step=step)

    killed = run_killed_at(project, point)
    if point == "published":
        # The publication record was written: the run counts as SUCCEEDED.
        assert killed.state == "SUCCEEDED", killed.error
        assert published_run(project) == {killed.run_id}
    else:
        assert killed.state == "FAILED", killed.state
        assert "died" in (killed.error or "")
        assert published_run(project) == previous
        assert readers_view(project) == before

    rerun = project.run_job("etl")
    assert rerun.state == "SUCCEEDED", rerun.error
    assert published_run(project) == {rerun.run_id}
    for table in INCREMENTAL:
        moved = rerun.report["incremental"][table]
        assert moved["from"] is not None, f"{table} was not loaded incrementally: {moved}"
    assert_lake_equals_source(project, con)


@pytest.fixture(params=["sqlite", "mysql", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(name, URL) of a scale-1 classicmodels source whose orders keep ``updated_at``."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.db'}"
    else:
        request.applymarker(pytest.mark.servers)
        url = request.getfixturevalue(f"{'mysql' if request.param == 'mysql' else 'postgres'}_url")
    write_classicmodels(url, scale=1, seed=SEED, base_dir=tmp_path)
    db = open_database(url, base_dir=tmp_path)
    try:
        keep_updated_at(db)
    finally:
        db.close()
    return request.param, url


def kill_points(project: Project, log: Path) -> list[str]:
    """The failpoints a run of the job passes that concern ingestion, in a stable order."""
    os.environ[LOG_VAR] = str(log)
    try:
        first = project.run_job("etl")
    finally:
        del os.environ[LOG_VAR]
    assert first.state == "SUCCEEDED", first.error
    passed = set(log.read_text().split())
    for table in TABLES:
        stages = ("before-commit", "in-commit", "after-commit", "commit")
        expected = {f"extract:{table}"} | {f"{stage}:raw.{table}" for stage in stages}
        assert expected <= passed, expected - passed
    return sorted(
        p for p in passed if p.startswith("extract:") or ":raw." in p or p.startswith("publish")
    )


def test_a_run_killed_anywhere_and_rerun_gives_exactly_the_source(
    backend: tuple[str, str], tmp_path: Path
) -> None:
    name, url = backend
    Project.init(tmp_path / "project", source_url=url)
    project = configure(Project.open(tmp_path / "project"), INCREMENTAL)
    points = kill_points(project, tmp_path / "failpoints.log")
    with contextlib.closing(live_source(project)) as con:
        assert_lake_equals_source(project, con)
        seed = int(os.environ.get(SEED_VAR) or random.SystemRandom().randrange(2**32))
        drawn = random.Random(f"{seed}:{name}").sample(
            [p for p in points if p not in ALWAYS], RANDOM_POINTS
        )
        for step, point in enumerate([*drawn, *ALWAYS], start=1):
            try:
                kill_and_rerun(project, url, con, point=point, step=step)
            except AssertionError as exc:
                raise AssertionError(
                    f"{name}: run killed at {point} (kill {step} of {len(drawn) + len(ALWAYS)}; "
                    f"replay with {SEED_VAR}={seed}): {exc}"
                ) from exc

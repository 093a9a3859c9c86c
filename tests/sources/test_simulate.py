"""The activity simulator moves a real source, and the pipeline keeps up with it.

On SQLite, MariaDB and PostgreSQL: new orders with lines and payments, shipments,
cancellations, price changes, deletes and a schema change, each counted exactly; then the
ETL job reconciles the lake with the moved source. An outage in the middle of a run is
refuses clients while it lasts.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sluice.errors import ConfigError, SourceError
from sluice.project import Project
from sluice.sources.classicmodels import expected_row_counts, write_classicmodels
from sluice.sources.dbapi import open_database
from sluice.sources.simulate import DRIFT_COLUMN, Activity, simulate
from tests.conftest import SEED, sluice_cli

FAST_RETRIES = (
    "    retry: {attempts: 10, initial_seconds: 0.2, max_seconds: 0.5, budget_seconds: 60}\n"
)


@pytest.fixture(params=["sqlite", "mysql", "postgresql"])
def moving(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A scale-1 classicmodels database on each kind of source, ready to be moved."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.db'}"
    else:
        request.applymarker(pytest.mark.servers)
        # Private databases, not schemas: an outage closes every other session of its database.
        fixture = "mysql_url" if request.param == "mysql" else "postgres_database_url"
        url = request.getfixturevalue(fixture)
    write_classicmodels(url, scale=1, seed=SEED, base_dir=tmp_path)
    return url


def _counts(url: str, tmp_path: Path) -> dict[str, Any]:
    db = open_database(url, base_dir=tmp_path)
    q = db.quote
    try:
        counts: dict[str, Any] = {
            table: db.execute(f"SELECT count(*) FROM {q(table)}")[0][0]
            for table in ("orders", "orderdetails", "payments")
        }
        counts["orphan_lines"] = db.execute(
            f"SELECT count(*) FROM {q('orderdetails')} d LEFT JOIN {q('orders')} o "
            f"ON o.{q('orderNumber')} = d.{q('orderNumber')} WHERE o.{q('orderNumber')} IS NULL"
        )[0][0]
        counts["shipped_without_date"] = db.execute(
            f"SELECT count(*) FROM {q('orders')} WHERE {q('status')} = 'Shipped' "
            f"AND {q('shippedDate')} IS NULL"
        )[0][0]
        counts["drift"] = db.has_column("customers", DRIFT_COLUMN)
    finally:
        db.close()
    return counts


def test_activity_is_applied_exactly_and_the_lake_reconciles(moving: str, tmp_path: Path) -> None:
    before = _counts(moving, tmp_path)
    assert before["orders"] == expected_row_counts(1)["orders"] and not before["drift"]
    activity = Activity(
        orders_per_minute=1200, duration_seconds=2, updates=True, deletes=True, drift=True
    )
    report = simulate(moving, activity, base_dir=tmp_path)
    after = _counts(moving, tmp_path)

    assert report.orders >= 30 and report.order_lines >= report.orders
    assert after["orders"] == before["orders"] + report.orders - report.deleted_orders
    assert after["payments"] == before["payments"] + report.payments - report.deleted_payments
    assert report.shipped > 0 and after["shipped_without_date"] == 0
    assert after["orphan_lines"] == 0 and after["drift"]
    assert f"customers.{DRIFT_COLUMN} added (varchar(10))" in report.schema_changes

    Project.init(tmp_path / "project", source_url=moving)
    project = Project.open(tmp_path / "project")
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    facts = project.query("SELECT count(*) AS n FROM fact_orders").table.to_pylist()
    assert facts == [{"n": after["orderdetails"]}]
    tiers = project.query(
        f"SELECT count({DRIFT_COLUMN}) AS n FROM customers", database="raw"
    ).table.to_pylist()
    assert tiers == [{"n": expected_row_counts(1)["customers"]}]


def test_the_same_seed_makes_the_same_choices(tmp_path: Path) -> None:
    reports = []
    for name in ("a", "b"):
        url = f"sqlite:///{tmp_path / name}.db"
        write_classicmodels(url, scale=1, seed=SEED, base_dir=tmp_path)
        ticks = iter(x * 0.25 for x in range(1000))
        reports.append(
            simulate(
                url,
                Activity(orders_per_minute=600, duration_seconds=3, updates=True, seed=5),
                base_dir=tmp_path,
                clock=ticks.__next__,
                sleep=lambda seconds: None,
            )
        )
    assert reports[0] == reports[1] and reports[0].orders == 30


def _usable(url: str, tmp_path: Path) -> bool:
    """Can a client write to the source right now (without waiting for locks)?"""
    try:
        db = open_database(url, base_dir=tmp_path)
    except SourceError:
        return False
    try:
        if db.dialect == "sqlite":
            db.con.execute("PRAGMA busy_timeout = 0")
        db.execute(f"UPDATE {db.quote('offices')} SET {db.quote('city')} = {db.quote('city')}")
        db.commit()
        time.sleep(0.2)  # a server session is closed within 0.05 s of opening
        db.execute("SELECT 1")
        return True
    except SourceError:
        return False
    finally:
        with contextlib.suppress(Exception):
            db.close()


def test_an_outage_makes_the_source_unusable_and_then_it_recovers(
    moving: str, tmp_path: Path
) -> None:
    activity = Activity(orders_per_minute=60, duration_seconds=3, outage_seconds=1.5)
    outcome: dict[str, Any] = {}
    mover = threading.Thread(
        target=lambda: outcome.setdefault("report", simulate(moving, activity, base_dir=tmp_path))
    )
    mover.start()
    time.sleep(1.5)  # the outage runs from 1 s to 2.5 s
    during = _usable(moving, tmp_path)
    mover.join()
    assert outcome["report"].outage_seconds >= 1.4
    assert not during
    assert _usable(moving, tmp_path)


def test_the_cli_reports_the_activity_and_refuses_an_outage_that_does_not_fit(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    write_classicmodels(url, scale=1, seed=SEED, base_dir=tmp_path)
    Project.init(tmp_path / "project", source_url=url)
    shown = sluice_cli(
        "source", "simulate", "--duration", "1s", "--orders-per-minute", "600", "--drift",
        cwd=tmp_path / "project",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "orders placed    │ 10" in shown.stdout
    assert f"customers.{DRIFT_COLUMN} added" in shown.stdout
    refused = sluice_cli(
        "source", "simulate", "--duration", "1", "--outage", "0:02", cwd=tmp_path / "project"
    )
    assert refused.returncode == 2 and "does not fit" in refused.stderr
    with pytest.raises(ConfigError):
        Activity(orders_per_minute=-1)

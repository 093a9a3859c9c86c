"""Many queries at once, and job runs publishing while queries run: never a mix of snapshots."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sluice.project import Project
from tests.conftest import new_project, sluice_cli
from tests.jobs.helpers import drop_orders, source_path, source_totals
from tests.serve.conftest import SLOW_SQL, Server

TOTALS_SQL = """
SELECT (SELECT count(*) FROM fact_orders) AS lines,
       (SELECT CAST(sum(orderAmount) * 100 AS BIGINT) FROM fact_orders) AS cents,
       (SELECT count(*) FROM raw.orderdetails) AS raw_lines,
       (SELECT count(*) FROM raw.orders) AS raw_orders,
       (SELECT count(DISTINCT orderNumber) FROM fact_orders) AS orders
"""


def source_version(project: Project) -> tuple[int, ...]:
    """What TOTALS_SQL must answer for the source as it is now."""
    import sqlite3

    lines, cents = source_totals(project)
    with sqlite3.connect(source_path(project)) as con:
        (orders,) = con.execute("SELECT count(*) FROM orders").fetchone()
        (ordered,) = con.execute("SELECT count(DISTINCT orderNumber) FROM orderdetails").fetchone()
    return (lines, cents, lines, orders, ordered)


def publish_while_asking(
    project: Project, ask: Callable[[threading.Event], None], *, runs: int
) -> list[tuple[int, ...]]:
    """Run ``ask`` in 3 threads (until its event is set) while ``runs`` job runs publish
    a source with fewer orders each time; every version TOTALS_SQL may answer, in order."""
    versions = [source_version(project)]
    stop = threading.Event()
    askers = [threading.Thread(target=ask, args=(stop,)) for _ in range(3)]
    for thread in askers:
        thread.start()
    try:
        for _ in range(runs):
            drop_orders(project, 7)
            versions.append(source_version(project))
            run = sluice_cli("job", "start", "etl", "--wait", "--quiet", "-p", project.root)
            assert run.returncode == 0, run.stderr
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in askers:
            thread.join(timeout=60)
    return versions


def test_a_fast_query_is_answered_while_slow_ones_run(
    server: Server, served_project: Project
) -> None:
    slow = [server.start(SLOW_SQL)["query_id"] for _ in range(2)]
    try:
        deadline = time.monotonic() + 10
        while {server.request("GET", f"/v1/queries/{q}").json()["state"] for q in slow} != {
            "RUNNING"
        }:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        expected = served_project.query("SELECT count(*) AS n FROM dim_products").table
        assert server.rows("SELECT count(*) AS n FROM dim_products") == [
            [expected.column("n")[0].as_py()]
        ]
        states = {server.request("GET", f"/v1/queries/{q}").json()["state"] for q in slow}
        assert states == {"RUNNING"}
    finally:
        for query_id in slow:
            server.request("DELETE", f"/v1/queries/{query_id}")


def test_sixteen_clients_at_once_all_get_the_right_numbers(
    server: Server, served_project: Project
) -> None:
    sql = "SELECT count(*) AS n, sum(quantityOrdered) AS q FROM fact_orders WHERE orderNumber % 16 = ?"
    expected = {
        k: served_project.query(sql, parameters=[k]).table.to_pylist()[0] for k in range(16)
    }
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda k: server.rows(sql, parameters=[k]), range(16)))
    assert answers == [[[expected[k]["n"], expected[k]["q"]]] for k in range(16)]


@pytest.fixture
def changing(tmp_path: Path, source_db: Callable[[int], Path]) -> Iterator[tuple[Project, Server]]:
    """A fresh built project whose source the test changes, with its own server."""
    project = new_project(tmp_path, source_db(1))
    assert project.run_job("etl").state == "SUCCEEDED"
    server = Server(project.root, "--workers", "4", "--threads", "1")
    yield project, server
    assert server.stop() == 0


@pytest.mark.slow
def test_queries_during_publishing_job_runs_see_old_or_new_totals_never_a_mix(
    changing: tuple[Project, Server],
) -> None:
    project, server = changing
    seen: list[tuple[int, ...]] = []

    def ask(stop: threading.Event) -> None:
        while not stop.is_set():
            (row,) = server.rows(TOTALS_SQL)
            seen.append(tuple(row))

    versions = publish_while_asking(project, ask, runs=3)
    assert len(set(versions)) == 4
    assert set(seen) <= set(versions), set(seen) - set(versions)
    assert len(set(seen)) >= 2, "the queries never saw a publish happen"
    assert len(seen) >= 10
    assert server.rows(TOTALS_SQL) == [list(versions[-1])]


@pytest.mark.slow
def test_a_query_that_outlives_a_publish_answers_from_its_own_snapshot(
    changing: tuple[Project, Server],
) -> None:
    project, server = changing
    old_lines, _ = source_totals(project)
    slow_count = (
        "SELECT count(*) AS n FROM fact_orders"
        " WHERE (SELECT count(*) FROM range(2000000000) AS t(x) WHERE x % 7 = 0) > 0"
    )
    query_id = server.start(slow_count)["query_id"]
    deadline = time.monotonic() + 10
    while server.request("GET", f"/v1/queries/{query_id}").json()["state"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    drop_orders(project, 9)
    run = sluice_cli("job", "start", "etl", "--wait", "--quiet", "-p", project.root)
    assert run.returncode == 0, run.stderr
    published_at = datetime.now(UTC)
    new_lines, _ = source_totals(project)
    assert new_lines < old_lines
    assert server.rows("SELECT count(*) FROM fact_orders") == [[new_lines]]

    execution = server.wait(query_id)
    assert execution["state"] == "SUCCEEDED", execution
    assert datetime.fromisoformat(execution["ended_at"]) > published_at
    page = server.request("GET", f"/v1/queries/{query_id}/results").json()
    assert page["rows"] == [[old_lines]]

"""A source that goes down: retried with backoff, then either caught up or failed cleanly.

A TCP proxy in front of the real MariaDB server plays the outage: refused connections, or
a connection dropped in the middle of a table.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sluice.project import Project
from sluice.sources.classicmodels import expected_row_counts, write_classicmodels
from tests.conftest import SEED
from tests.sources.conftest import mysql_connect
from tests.sources.proxy import Proxy

pytestmark = pytest.mark.servers

FAST_RETRIES = (
    "    retry: {attempts: 8, initial_seconds: 0.2, max_seconds: 1, budget_seconds: 60}\n"
)
FEW_RETRIES = (
    "    retry: {attempts: 3, initial_seconds: 0.1, max_seconds: 0.2, budget_seconds: 10}\n"
)
LINES = expected_row_counts(1)["orderdetails"]


@dataclass(frozen=True)
class Outage:
    """A private MariaDB database (``url``) loaded at scale 1, and a proxy in front of it."""

    proxy: Proxy
    url: str


@pytest.fixture
def outage(mysql_url: str) -> Iterator[Outage]:
    write_classicmodels(mysql_url, scale=1, seed=SEED)
    parts = urlsplit(mysql_url)
    with Proxy((parts.hostname or "127.0.0.1", parts.port or 3306)) as proxy:
        yield Outage(proxy, mysql_url)


def _project(tmp_path: Path, outage: Outage, retry: str) -> Project:
    url, proxy = outage.url, outage.proxy
    parts = urlsplit(url)
    through = url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    Project.init(tmp_path / "project", source_url=through)
    config = tmp_path / "project" / "sluice.yml"
    config.write_text(
        config.read_text().replace("    timeout_minutes: 30\n", f"    timeout_minutes: 30\n{retry}")
    )
    return Project.open(tmp_path / "project")


def _fact(project: Project) -> tuple[int, str]:
    row = project.query("SELECT count(*) AS n, sum(orderAmount) AS s FROM fact_orders")
    values = row.table.to_pylist()[0]
    return values["n"], str(values["s"])


def _add_order_line(url: str) -> None:
    con = mysql_connect(url, urlsplit(url).path.lstrip("/"))
    with con.cursor() as cur:
        cur.execute(
            "INSERT INTO orderdetails SELECT o.orderNumber, p.productCode, 1, 100.00, 99 "
            "FROM orders o, products p WHERE NOT EXISTS (SELECT 1 FROM orderdetails d "
            "WHERE d.orderNumber = o.orderNumber AND d.productCode = p.productCode) LIMIT 1"
        )
    con.close()


def test_a_source_that_comes_back_within_the_budget_is_read_in_full(
    tmp_path: Path, outage: Outage
) -> None:
    project, proxy = _project(tmp_path, outage, FAST_RETRIES), outage.proxy
    proxy.down()
    threading.Timer(1.5, proxy.up).start()
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    assert _fact(project)[0] == LINES
    log = project.jobs.logs("etl", run.run_id)
    assert "retrying in" in log


def test_a_connection_lost_mid_table_is_retried_without_duplicates(
    tmp_path: Path, outage: Outage
) -> None:
    project, proxy = _project(tmp_path, outage, FAST_RETRIES), outage.proxy
    # Uncompressed, reading the tables' metadata takes ~60 KB and the job's two connections
    # ~260 KB between them: the first connection past 100 KB is one reading a table.
    proxy.cut_after(100_000)
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    assert proxy.cuts == 1
    assert _fact(project)[0] == LINES
    raw = project.query("SELECT count(*) AS n FROM orderdetails", database="raw")
    assert raw.table.to_pylist() == [{"n": LINES}]
    assert "Lost the source while extracting" in project.jobs.logs("etl", run.run_id)


def test_a_source_that_stays_down_fails_and_the_next_run_catches_up(
    tmp_path: Path, outage: Outage
) -> None:
    project, proxy = _project(tmp_path, outage, FEW_RETRIES), outage.proxy
    first = project.run_job("etl")
    assert first.state == "SUCCEEDED", first.error
    before = _fact(project)

    _add_order_line(outage.url)
    proxy.down()
    failed = project.run_job("etl")
    assert failed.state == "FAILED"
    assert failed.error is not None and "\n" not in failed.error
    assert "gave up after 3 attempts" in failed.error, failed.error
    assert _fact(project) == before

    proxy.up()
    caught_up = project.run_job("etl")
    assert caught_up.state == "SUCCEEDED", caught_up.error
    assert _fact(project)[0] == LINES + 1

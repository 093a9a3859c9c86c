"""The CLI's happy paths, through the real command in a subprocess, checked against the source."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from sluice.project import Project
from sluice.sources.classicmodels import expected_row_counts
from sluice.sources.sqlite import sqlite_path
from tests.conftest import sluice_cli


def _source_scalar(project: Project, sql: str) -> object:
    path = sqlite_path(project.config.sources["classicmodels"].url, base_dir=project.root)
    with sqlite3.connect(path) as con:
        return con.execute(sql).fetchone()[0]


def test_source_generate_writes_the_requested_scale(tmp_path: Path) -> None:
    out = tmp_path / "cm.db"
    result = sluice_cli("source", "generate", "--scale", "2", "--seed", "3", "--out", out)
    assert result.returncode == 0, result.stderr
    expected = expected_row_counts(2)
    with sqlite3.connect(out) as con:
        counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in expected}
    assert counts == expected
    assert f"{expected['orderdetails']:,}" in result.stdout


def test_init_with_a_relative_source_works_from_any_folder(
    tmp_path: Path, source_db: Callable[[int], Path]
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "shop.db").write_bytes(source_db(1).read_bytes())
    created = sluice_cli("init", "shop", "--source", "sqlite:///data/shop.db", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    config = (tmp_path / "shop" / "sluice.yml").read_text()
    assert f"url: sqlite:///{tmp_path / 'data' / 'shop.db'}" in config
    assert not (tmp_path / "shop" / "source").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = sluice_cli(
        "job", "start", "etl", "--wait", "--quiet", "--project", tmp_path / "shop", cwd=elsewhere
    )
    assert run.returncode == 0, run.stderr
    assert "SUCCEEDED" in run.stdout
    assert "3,864 rows read" in run.stdout


def test_catalog_tables_and_describe_show_counts_columns_and_history(
    built: Callable[[int], Project],
) -> None:
    project = built(1)
    listing = sluice_cli("catalog", "tables", "--project", project.root)
    assert listing.returncode == 0, listing.stderr
    lines = [line for line in listing.stdout.splitlines() if "raw." in line or "gold." in line]
    assert len(lines) == 14
    fact_line = next(line for line in lines if "gold.fact_orders" in line)
    assert f"{_source_scalar(project, 'SELECT COUNT(*) FROM orderdetails'):,}" in fact_line

    raw_only = sluice_cli("catalog", "tables", "raw", "--project", project.root)
    assert "gold." not in raw_only.stdout
    assert raw_only.stdout.count("raw.") == 8

    described = sluice_cli("catalog", "describe", "fact_orders", "--project", project.root)
    assert described.returncode == 0, described.stderr
    assert "gold.fact_orders: 2,996 rows" in described.stdout
    for column, kind in [
        ("orderAmount", "decimal(18, 2)"),
        ("orderDate", "date"),
        ("customer_key", "long"),
    ]:
        assert any(column in line and kind in line for line in described.stdout.splitlines())
    run_id = project.jobs.runs("etl")[0].run_id
    assert run_id[:15] in described.stdout


def test_query_csv_and_json_return_the_sources_numbers(built: Callable[[int], Project]) -> None:
    project = built(1)
    sql = (
        "SELECT l.country, sum(f.orderAmount) AS sales FROM fact_orders f "
        "JOIN dim_locations l USING (location_key) GROUP BY 1 ORDER BY 2 DESC, 1"
    )
    expected = {
        country: Decimal(cents) / 100
        for country, cents in sqlite3.connect(
            project.config.sources["classicmodels"].url.removeprefix("sqlite:///")
        ).execute(
            "SELECT c.country, SUM(od.quantityOrdered * CAST(ROUND(od.priceEach * 100) AS INTEGER)) "
            "FROM orderdetails od JOIN orders o USING (orderNumber) JOIN customers c USING (customerNumber) "
            "GROUP BY c.country"
        )
    }
    as_csv = sluice_cli("query", sql, "--format", "csv", "--project", project.root)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {r["country"]: Decimal(r["sales"]) for r in rows} == expected

    as_json = sluice_cli("query", sql, "--format", "json", "--project", project.root)
    records = json.loads(as_json.stdout)
    assert [r["country"] for r in records] == [r["country"] for r in rows]
    assert {r["country"]: round(Decimal(str(r["sales"])), 2) for r in records} == expected

    capped = sluice_cli(
        "query",
        "SELECT * FROM orders",
        "--database",
        "raw",
        "--format",
        "csv",
        "--max-rows",
        "3",
        "--project",
        project.root,
    )
    assert len(capped.stdout.strip().splitlines()) == 4
    assert "first 3 rows" in capped.stderr

    first = (
        sqlite3.connect(project.config.sources["classicmodels"].url.removeprefix("sqlite:///"))
        .execute("SELECT (SELECT min(orderNumber) FROM orders), (SELECT sum(amount) FROM payments)")
        .fetchone()
    )
    table = sluice_cli(
        "query",
        "SELECT (SELECT min(orderNumber) FROM orders) AS first_order, "
        "(SELECT sum(amount) FROM payments) AS paid",
        "--database",
        "raw",
        "--project",
        project.root,
    )
    assert table.returncode == 0, table.stderr
    cells = table.stdout.splitlines()[3].split("│")
    assert cells[1].strip() == str(first[0]), "order numbers are shown as they are"
    assert cells[2].strip() == f"{Decimal(str(first[1])).quantize(Decimal('0.01')):,}"


def test_demo_runs_the_lab_and_shows_the_top_countries(tmp_path: Path) -> None:
    result = sluice_cli("demo", tmp_path / "demo", timeout=180)
    assert result.returncode == 0, result.stderr
    assert "SUCCEEDED" in result.stdout
    assert "Top 10 countries by sales" in result.stdout
    project = Project.open(tmp_path / "demo")
    top = project.query(
        "SELECT l.country, sum(f.orderAmount) AS s FROM fact_orders f JOIN dim_locations l "
        "USING (location_key) GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
    ).table.to_pylist()[0]
    assert f"{top['s']:,}" in result.stdout
    assert _source_scalar(project, "SELECT COUNT(*) FROM orderdetails") == 2996

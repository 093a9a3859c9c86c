"""The Iceberg catalog on a real PostgreSQL server: job runs, queries, plan/apply/destroy and
crawls, and two projects sharing one catalog. Each test gets a private database, dropped
afterwards."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import psycopg
import pytest

from sluice.errors import LakeUnavailableError
from sluice.project import Project
from tests.conftest import new_project, server_url, sluice_cli
from tests.jobs.helpers import lake_totals, source_totals
from tests.lake.conftest import PASSWORD_VAR

pytestmark = pytest.mark.servers


def on_catalog(project: Project, url: str) -> Project:
    """The project with its ``catalog.url`` set to ``url``."""
    path = project.root / "sluice.yml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("url: sqlite:///.sluice/catalog.db", f"url: {url}")
    assert url in text
    path.write_text(text, encoding="utf-8")
    return Project.open(project.root)


def test_a_job_run_and_queries_use_the_postgres_catalog(
    tmp_path: Path, source_db: Callable[[int], Path], catalog_url: str
) -> None:
    project = on_catalog(new_project(tmp_path, source_db(1)), catalog_url)
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    assert not (project.state_dir / "catalog.db").exists()

    assert lake_totals(Project.open(project.root)) == source_totals(project)

    base = server_url("SLUICE_TEST_POSTGRES_URL")
    database = catalog_url.rsplit("/", 1)[1]
    with psycopg.connect(base.rsplit("/", 1)[0] + "/" + database) as con:
        tables = con.execute(
            "SELECT count(*) FROM iceberg_tables WHERE table_namespace = 'gold'"
        ).fetchone()
        published = con.execute("SELECT count(*) FROM sluice_publications").fetchone()
    assert tables == (6,)
    assert published == (1,)

    listed = sluice_cli("catalog", "tables", "gold", cwd=project.root)
    assert listed.returncode == 0, listed.stderr
    assert "fact_orders" in listed.stdout
    assert "unused-by-trust-auth" not in listed.stdout + listed.stderr


def test_two_projects_sharing_the_catalog_see_each_others_tables(
    tmp_path: Path, source_db: Callable[[int], Path], catalog_url: str
) -> None:
    writer = on_catalog(new_project(tmp_path / "a", source_db(1)), catalog_url)
    assert writer.run_job("etl").state == "SUCCEEDED"
    reader = tmp_path / "b"
    reader.mkdir()
    (reader / "sluice.yml").write_text(
        f"name: analysts\ncatalog:\n  url: {catalog_url}\n", encoding="utf-8"
    )
    shared = Project.open(reader)
    assert {str(t.table) for t in shared.tables("gold")} == {
        f"gold.{name}"
        for name in (
            "dim_customers",
            "dim_date",
            "dim_employees",
            "dim_locations",
            "dim_products",
            "fact_orders",
        )
    }
    assert lake_totals(shared) == source_totals(writer)


def test_plan_apply_destroy_and_crawl_on_the_postgres_catalog(
    tmp_path: Path, source_db: Callable[[int], Path], catalog_url: str
) -> None:
    project = on_catalog(new_project(tmp_path, source_db(1)), catalog_url)
    with (project.root / "sluice.yml").open("a", encoding="utf-8") as file:
        file.write("crawlers:\n  landing:\n    target: data/landing\n    database: landing\n")
    landing = project.root / "data/landing/sales"
    landing.mkdir(parents=True)
    duckdb.sql(
        f"COPY (SELECT i AS id, i * 2 AS amount FROM range(1, 11) t(i)) "
        f"TO '{landing / 'part-0.parquet'}' (FORMAT parquet)"
    )

    planned = sluice_cli("plan", cwd=project.root)
    assert planned.returncode == 0, planned.stderr
    assert "  + catalog\n" in planned.stdout
    assert "unused-by-trust-auth" not in planned.stdout
    applied = sluice_cli("apply", "--auto-approve", cwd=project.root)
    assert applied.returncode == 0, applied.stderr
    assert Project.open(project.root).lake.databases() == ["gold", "raw"]
    state = (project.state_dir / "state.json").read_text(encoding="utf-8")
    assert "unused-by-trust-auth" not in state and f"${{env:{PASSWORD_VAR}}}" not in state
    quiet = sluice_cli("plan", "--detailed-exitcode", cwd=project.root)
    assert quiet.returncode == 0, quiet.stdout

    crawled = sluice_cli("crawl", "landing", cwd=project.root)
    assert crawled.returncode == 0, crawled.stderr
    rows = Project.open(project.root).query(
        "SELECT count(*) AS n, sum(amount) AS total FROM sales", database="landing"
    )
    assert rows.table.to_pylist() == [{"n": 10, "total": 110}]

    destroyed = sluice_cli("destroy", "--auto-approve", cwd=project.root)
    assert destroyed.returncode == 0, destroyed.stderr
    assert "gold" not in Project.open(project.root).lake.databases()


def test_an_unreachable_catalog_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_TEST_NO_PW", "hunter2-secret")
    (tmp_path / "sluice.yml").write_text(
        "name: lab\ncatalog:\n  url: postgresql://me:${env:SLUICE_TEST_NO_PW}@127.0.0.1:1/lake\n",
        encoding="utf-8",
    )
    listed = sluice_cli("catalog", "tables", cwd=tmp_path)
    assert listed.returncode == 1
    lines = listed.stderr.strip().splitlines()
    assert len(lines) == 1, listed.stderr
    assert lines[0].startswith(
        "Error: Cannot reach the catalog database at postgresql+psycopg://me:***@127.0.0.1:1/lake"
    )
    assert "catalog.url in sluice.yml" in lines[0]
    assert "hunter2-secret" not in listed.stderr
    with pytest.raises(LakeUnavailableError):
        Project.open(tmp_path).tables()

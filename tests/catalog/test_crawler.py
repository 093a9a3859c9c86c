"""The crawler on real folders: DuckDB-written Parquet, CSV and JSON lines, a real catalog,
publications and queries through the project's query engine."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from sluice.catalog.crawler import DEPRECATED_PROPERTY, CrawlReport, TableChange
from sluice.core import TableName
from sluice.errors import ConfigError, LakeError, LockedError, NotFoundError
from sluice.lock import ProcessLock
from sluice.project import Project
from tests.conftest import sluice_cli


def make_project(root: Path, **policies: str) -> Project:
    """A project with one crawler 'landing' over data/landing, with the given policies."""
    root.mkdir(parents=True, exist_ok=True)
    settings = {"target": "data/landing", "database": "landing", **policies}
    (root / "sluice.yml").write_text(
        "name: lab\ncrawlers:\n  landing: " + json.dumps(settings) + "\n", encoding="utf-8"
    )
    (root / "data/landing").mkdir(parents=True, exist_ok=True)
    return Project.open(root)


def write(path: Path, sql: str, fmt: str = "parquet") -> Path:
    """Write a SELECT's rows to ``path`` with DuckDB (Parquet, CSV or newline-delimited JSON)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"parquet": "FORMAT parquet", "csv": "FORMAT csv, HEADER", "json": "FORMAT json"}
    duckdb.sql(f"COPY ({sql}) TO '{path}' ({options[fmt]})")
    return path


def sales(landing: Path, year: int, month: str, rows: int, *, extra: str = "") -> Path:
    """``rows`` sales of ``amount`` 1..rows in the Hive partition year=/month=."""
    return write(
        landing / f"sales/year={year}/month={month}/part-{year}{month}.parquet",
        f"SELECT i AS id, CAST(i AS DOUBLE) AS amount{extra} FROM range(1, {rows + 1}) t(i)",
    )


def landing_with_three_datasets(project: Project) -> Path:
    """Partitioned Parquet, nested CSV folders, a JSON lines file and a stray text file."""
    landing = project.root / "data/landing"
    sales(landing, 2004, "06", 10)
    sales(landing, 2004, "07", 5)
    sales(landing, 2005, "01", 3)
    write(landing / "customers/eu/fr.csv", "SELECT 1 AS id, 'Paris' AS city", "csv")
    write(
        landing / "customers/us/east/ny.csv",
        "SELECT * FROM (VALUES (2, 'NYC'), (3, 'Albany')) t(id, city)",
        "csv",
    )
    write(landing / "events.jsonl", "SELECT i AS n, 'e' || i AS label FROM range(4) t(i)", "json")
    (landing / "README.txt").write_text("what lands here\n", encoding="utf-8")
    (landing / "sales/_SUCCESS").write_text("", encoding="utf-8")
    return landing


@pytest.fixture
def crawled(tmp_path: Path) -> tuple[Project, Path]:
    """A project with default policies after crawling the three datasets once."""
    project = make_project(tmp_path / "p")
    landing = landing_with_three_datasets(project)
    project.crawl("landing")
    return project, landing


def query(project: Project, sql: str) -> list[tuple[object, ...]]:
    table = Project.open(project.root).query(sql, database="landing").table
    return [tuple(row.values()) for row in table.to_pylist()]


def change(report: CrawlReport, table: str) -> TableChange:
    return next(c for c in report.tables if c.table == TableName("landing", table))


def test_nested_partitioned_and_file_datasets_become_queryable_tables(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    landing_with_three_datasets(project)

    report = project.crawl("landing")

    assert [(c.table.name, c.action, c.files_added) for c in report.tables] == [
        ("customers", "created", 2),
        ("events", "created", 1),
        ("sales", "created", 3),
    ]
    assert change(report, "sales").partitions_added == (
        "year=2004/month=06",
        "year=2004/month=07",
        "year=2005/month=01",
    )
    assert change(report, "sales").rows_added == 18
    assert [(Path(s.path).name, s.reason) for s in report.skipped] == [
        ("README.txt", "not a Parquet, CSV or JSON lines file")
    ]
    assert report.conflicts == ()
    assert report.crawl_id is not None and report.crawl_id.startswith("cr_")
    assert query(
        project, "SELECT year, month, count(*), sum(amount) FROM sales GROUP BY ALL ORDER BY ALL"
    ) == [(2004, "06", 10, 55.0), (2004, "07", 5, 15.0), (2005, "01", 3, 6.0)]
    assert query(project, "SELECT id, city FROM customers ORDER BY id") == [
        (1, "Paris"),
        (2, "NYC"),
        (3, "Albany"),
    ]
    assert query(project, "SELECT count(*), sum(n) FROM events") == [(4, 6)]
    columns = [(c.name, c.type) for c in project.describe("landing.sales").columns]
    assert columns == [("id", "long"), ("amount", "double"), ("year", "long"), ("month", "string")]


def test_parquet_files_are_registered_where_they_are_and_csv_converted_once(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path / "p")
    landing = landing_with_three_datasets(project)
    project.crawl("landing")

    sales_files = Project.open(project.root).lake.current_files(TableName("landing", "sales"))
    assert sorted(sales_files) == sorted(str(p) for p in landing.glob("sales/*/*/*.parquet"))
    customer_files = project.lake.current_files(TableName("landing", "customers"))
    warehouse = project.warehouse.resolve()
    assert len(customer_files) == 2
    assert all(Path(f).is_relative_to(warehouse) for f in customer_files)

    again = Project.open(project.root).crawl("landing")

    assert {c.action for c in again.tables} == {"unchanged"}
    assert again.crawl_id is None
    assert project.lake.current_files(TableName("landing", "customers")) == customer_files
    assert query(project, "SELECT count(*) FROM sales") == [(18,)]
    assert query(project, "SELECT count(*) FROM customers") == [(3,)]


def test_a_recrawl_adds_only_new_files_and_partitions(crawled: tuple[Project, Path]) -> None:
    project, landing = crawled
    sales(landing, 2005, "02", 7)
    write(landing / "customers/eu/de.csv", "SELECT 4 AS id, 'Berlin' AS city", "csv")

    report = Project.open(project.root).crawl("landing")

    assert change(report, "sales").action == "updated"
    assert change(report, "sales").files_added == 1
    assert change(report, "sales").partitions_added == ("year=2005/month=02",)
    assert change(report, "customers").files_added == 1
    assert change(report, "events").action == "unchanged"
    assert query(project, "SELECT count(*), sum(amount) FROM sales") == [(25, 104.0)]
    assert query(project, "SELECT count(DISTINCT id), count(*) FROM customers") == [(4, 4)]


def test_a_rewritten_csv_replaces_its_rows_and_a_deleted_file_leaves_the_table(
    crawled: tuple[Project, Path],
) -> None:
    project, landing = crawled
    csv = landing / "customers/eu/fr.csv"
    csv.write_text("id,city\n1,Lyon\n5,Nice\n", encoding="utf-8")
    os.utime(csv, ns=(csv.stat().st_atime_ns, csv.stat().st_mtime_ns + 10**9))
    (landing / "sales/year=2005/month=01/part-200501.parquet").unlink()

    report = Project.open(project.root).crawl("landing")

    assert (change(report, "customers").files_added, change(report, "customers").files_removed) == (
        1,
        1,
    )
    assert change(report, "sales").files_removed == 1
    assert query(project, "SELECT id, city FROM customers ORDER BY id") == [
        (1, "Lyon"),
        (2, "NYC"),
        (3, "Albany"),
        (5, "Nice"),
    ]
    assert query(project, "SELECT DISTINCT year FROM sales ORDER BY 1") == [(2004,)]


def test_a_partition_value_that_would_change_the_column_type_is_a_conflict(
    crawled: tuple[Project, Path],
) -> None:
    project, landing = crawled
    odd = sales(landing, 2004, "13", 1)
    odd = odd.rename(odd.with_name("odd.parquet"))
    bad = write(
        landing / "sales/year=MMIV/month=06/x.parquet", "SELECT 1 AS id, 1.0::DOUBLE AS amount"
    )

    report = Project.open(project.root).crawl("landing")

    assert [(c.path, c.reason) for c in report.conflicts] == [
        (str(bad), "partition year=MMIV/month=06 does not fit year BIGINT, month VARCHAR")
    ]
    assert change(report, "sales").partitions_added == ("year=2004/month=13",)
    assert query(project, "SELECT year, month, count(*) FROM sales GROUP BY ALL ORDER BY ALL") == [
        (2004, "06", 10),
        (2004, "07", 5),
        (2004, "13", 1),
        (2005, "01", 3),
    ]


def test_a_parquet_file_rewritten_in_place_is_registered_again(
    crawled: tuple[Project, Path],
) -> None:
    project, landing = crawled
    path = landing / "sales/year=2004/month=07/part-200407.parquet"
    write(path, "SELECT 99 AS id, 1000.0::DOUBLE AS amount")

    report = Project.open(project.root).crawl("landing")

    assert (change(report, "sales").files_added, change(report, "sales").files_removed) == (1, 1)
    assert query(project, "SELECT count(*), sum(amount) FROM sales WHERE month = '07'") == [
        (1, 1000.0)
    ]


def test_a_second_crawl_at_the_same_time_is_refused(crawled: tuple[Project, Path]) -> None:
    project, _ = crawled
    with ProcessLock(project.state_dir / "crawler-landing.lock", what="test"):
        with pytest.raises(
            LockedError, match=rf"Another crawl of landing is running \(pid {os.getpid()}\)"
        ):
            Project.open(project.root).crawl("landing")
        assert Project.open(project.root).crawl("landing", dry_run=True).crawl_id is None


def test_mixed_schemas_are_unioned_by_name_under_update_in_database(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", update_behavior="UPDATE_IN_DATABASE")
    landing = project.root / "data/landing"
    sales(landing, 2004, "06", 4)
    sales(landing, 2004, "07", 2, extra=", 'web' AS channel")
    first = project.crawl("landing")
    assert change(first, "sales").columns_added == ()  # a new table: all columns at once
    sales(landing, 2005, "01", 3, extra=", 'shop' AS channel, i * 10 AS points")

    report = Project.open(project.root).crawl("landing")

    assert change(report, "sales").columns_added == ("points",)
    names = [c.name for c in Project.open(project.root).describe("landing.sales").columns]
    assert names == ["id", "amount", "channel", "year", "month", "points"]
    assert query(
        project,
        "SELECT month, count(*), count(channel), sum(points) FROM sales GROUP BY 1 ORDER BY 1",
    ) == [("01", 3, 3, 60), ("06", 4, 0, None), ("07", 2, 2, None)]


def test_new_columns_under_log_are_reported_and_the_table_is_left_as_it_is(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path / "p", update_behavior="LOG")
    landing = project.root / "data/landing"
    sales(landing, 2004, "06", 4)
    project.crawl("landing")
    late = sales(landing, 2004, "07", 2, extra=", 'web' AS channel")

    report = Project.open(project.root).crawl("landing")

    assert change(report, "sales").columns_logged == ("channel",)
    assert change(report, "sales").files_added == 0
    assert [(s.path, s.reason) for s in report.skipped] == [
        (str(late), "adds columns channel; update_behavior LOG leaves landing.sales as it is")
    ]
    names = [c.name for c in Project.open(project.root).describe("landing.sales").columns]
    assert "channel" not in names
    assert query(project, "SELECT count(*) FROM sales") == [(4,)]


@pytest.mark.parametrize("update_behavior", ["LOG", "UPDATE_IN_DATABASE"])
def test_a_file_whose_types_conflict_is_reported_by_name_and_not_merged(
    tmp_path: Path, update_behavior: str
) -> None:
    project = make_project(tmp_path / "p", update_behavior=update_behavior)
    landing = project.root / "data/landing"
    sales(landing, 2004, "06", 4)
    bad = write(
        landing / "sales/year=2004/month=07/bad.parquet", "SELECT 'x' AS id, 'lots' AS amount"
    )

    report = project.crawl("landing")

    assert [(c.path, c.reason) for c in report.conflicts] == [
        (str(bad), "column id is string here but long in landing.sales; not merged")
    ]
    assert change(report, "sales").partitions_added == ("year=2004/month=06",)
    assert query(project, "SELECT count(*), sum(amount) FROM sales") == [(4, 10.0)]
    again = Project.open(project.root).crawl("landing")
    assert [c.path for c in again.conflicts] == [str(bad)]
    assert change(again, "sales").action == "unchanged"


def test_a_file_outside_the_tables_partition_layout_is_a_conflict(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    landing = project.root / "data/landing"
    sales(landing, 2004, "06", 4)
    stray = write(
        landing / "sales/year=2005/stray.parquet", "SELECT 1 AS id, 1.0::DOUBLE AS amount"
    )

    report = project.crawl("landing")

    assert [(c.path, c.reason) for c in report.conflicts] == [
        (str(stray), "partition folders (year) differ from landing.sales's (year, month)")
    ]
    assert query(project, "SELECT count(*) FROM sales") == [(4,)]


def test_dry_run_reports_and_changes_nothing(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    landing = landing_with_three_datasets(project)

    dry = project.crawl("landing", dry_run=True)

    assert [(c.table.name, c.action) for c in dry.tables] == [
        ("customers", "created"),
        ("events", "created"),
        ("sales", "created"),
    ]
    assert dry.crawl_id is None
    assert Project.open(project.root).tables() == []
    assert not project.warehouse.exists()
    assert not (project.root / ".sluice").exists()
    with pytest.raises(NotFoundError, match="landing"):
        Project.open(project.root).query("SELECT 1", database="landing")

    project.crawl("landing")
    before = {t.table: t.snapshot_id for t in Project.open(project.root).tables()}
    sales(landing, 2006, "01", 2)
    again = Project.open(project.root).crawl("landing", dry_run=True)
    assert change(again, "sales").partitions_added == ("year=2006/month=01",)
    assert {t.table: t.snapshot_id for t in Project.open(project.root).tables()} == before
    assert query(project, "SELECT count(*) FROM sales") == [(18,)]


def test_crawl_new_folders_only_leaves_crawled_folders_alone(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", recrawl="CRAWL_NEW_FOLDERS_ONLY")
    landing = landing_with_three_datasets(project)
    project.crawl("landing")
    sales(landing, 2006, "01", 2)
    (landing / "sales/year=2005/month=01/part-200501.parquet").unlink()
    write(landing / "orders/o.parquet", "SELECT 1 AS order_id, 9.5 AS total")

    report = Project.open(project.root).crawl("landing")

    assert (change(report, "sales").action, change(report, "sales").files_removed) == (
        "skipped",
        1,
    )
    assert change(report, "orders").action == "created"
    assert query(project, "SELECT count(*) FROM sales") == [(15,)]
    assert query(project, "SELECT order_id, total FROM orders") == [(1, 9.5)]


@pytest.mark.parametrize(
    ("behavior", "action"),
    [
        ("LOG", "logged"),
        ("DEPRECATE_IN_DATABASE", "deprecated"),
        ("DELETE_FROM_DATABASE", "deleted"),
    ],
)
def test_a_deleted_folder_follows_the_delete_behavior(
    tmp_path: Path, behavior: str, action: str
) -> None:
    project = make_project(tmp_path / "p", delete_behavior=behavior)
    landing = landing_with_three_datasets(project)
    project.crawl("landing")
    for folder in ("customers", "sales"):
        for path in sorted((landing / folder).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (landing / folder).rmdir()

    report = Project.open(project.root).crawl("landing")

    assert [(c.table.name, c.action, c.files_removed) for c in report.tables] == [
        ("events", "unchanged", 0),
        ("customers", action, 0),
        ("sales", action, 0 if behavior == "DELETE_FROM_DATABASE" else 3),
    ]
    after = Project.open(project.root)
    names = {t.table.name for t in after.tables("landing")}
    if behavior == "DELETE_FROM_DATABASE":
        assert names == {"events"}
        with pytest.raises(NotFoundError, match="customers"):
            after.query("SELECT count(*) FROM customers", database="landing")
    else:
        assert names == {"customers", "events", "sales"}
        properties = after.lake.load(TableName("landing", "customers")).properties
        assert (DEPRECATED_PROPERTY in properties) == (behavior == "DEPRECATE_IN_DATABASE")
        # the Parquet copies of the CSV files stay; the deleted Parquet files are unregistered
        assert query(project, "SELECT count(*) FROM customers") == [(3,)]
        assert after.describe("landing.sales").info.rows == 0
    with pytest.raises(NotFoundError, match="sales"):
        after.query("SELECT count(*) FROM sales", database="landing")
    assert query(project, "SELECT count(*) FROM events") == [(4,)]


def test_a_deprecated_table_whose_folder_comes_back_is_no_longer_deprecated(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path / "p")
    landing = project.root / "data/landing"
    write(landing / "orders/o.parquet", "SELECT 1 AS order_id")
    project.crawl("landing")
    (landing / "orders/o.parquet").rename(tmp_path / "o.parquet")
    (landing / "orders").rmdir()
    gone = change(Project.open(project.root).crawl("landing"), "orders")
    assert (gone.action, gone.files_removed) == ("deprecated", 1)
    (landing / "orders").mkdir()
    (tmp_path / "o.parquet").rename(landing / "orders/o.parquet")

    report = Project.open(project.root).crawl("landing")

    back = change(report, "orders")
    assert (back.action, back.files_added, back.restored) == ("updated", 1, True)
    properties = Project.open(project.root).lake.load(TableName("landing", "orders")).properties
    assert DEPRECATED_PROPERTY not in properties
    assert query(project, "SELECT sum(order_id) FROM orders") == [(1,)]


def test_a_table_the_crawler_did_not_make_is_left_alone(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    landing = landing_with_three_datasets(project)
    project.crawl("landing")
    other_root = project.root / "data/other"
    write(other_root / "sales/s.parquet", "SELECT 7 AS id")
    (project.root / "sluice.yml").write_text(
        "name: lab\ncrawlers:\n"
        "  landing: {target: data/landing, database: landing}\n"
        "  other: {target: data/other, database: landing}\n",
        encoding="utf-8",
    )

    report = Project.open(project.root).crawl("other")

    assert [(c.path, c.reason) for c in report.conflicts] == [
        (str(other_root / "sales"), "landing.sales exists and was not made by crawler other")
    ]
    assert report.tables == ()
    assert query(project, "SELECT count(*) FROM sales") == [(18,)]
    assert (landing / "sales").is_dir()


def test_s3_targets_off_an_s3_lake_and_unknown_crawlers_are_refused_with_a_clear_error(
    tmp_path: Path,
) -> None:
    root = tmp_path / "p"
    make_project(root)
    (root / "sluice.yml").write_text(
        "name: lab\ncrawlers:\n  landing:\n    target: gs://bucket/landing\n    database: landing\n",
        encoding="utf-8",
    )
    with pytest.raises(
        ConfigError, match=r"line 4: 'crawlers.landing.target' must be a folder or an s3://"
    ):
        Project.open(root)
    (root / "sluice.yml").write_text(
        "name: lab\ncrawlers:\n  landing:\n    target: s3://bucket/landing\n    database: landing\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"target s3://bucket/landing is in S3, but the lake is"):
        Project.open(root).crawl("landing")
    project = make_project(tmp_path / "q")
    with pytest.raises(NotFoundError, match=r"Crawler 'landig' is not declared.*'landing'"):
        project.crawl("landig")


def test_the_cli_prints_the_crawl_report(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    landing_with_three_datasets(project)

    dry = sluice_cli("crawl", "landing", "--dry-run", cwd=project.root)
    done = sluice_cli("crawl", "landing", cwd=project.root)
    counted = sluice_cli(
        "query",
        "--database",
        "landing",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM sales",
        cwd=project.root,
    )

    assert dry.returncode == 0, dry.stderr
    assert "created    landing.sales  (+3 files; partitions added: year=2004/month=06" in dry.stdout
    assert dry.stdout.splitlines()[-1] == (
        "3 tables created, 0 updated, 0 conflicts, 1 files skipped; dry run: nothing was changed."
    )
    assert done.returncode == 0, done.stderr
    assert "created    landing.sales  (+3 files, 18 rows; partitions added" in done.stdout
    assert counted.stdout.splitlines() == ["n", "18"]


def test_a_crawl_in_a_copied_project_leaves_the_original_tables_alone(
    crawled: tuple[Project, Path], tmp_path: Path
) -> None:
    project, _ = crawled
    metadata = project.root / "warehouse"

    def files() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in sorted(metadata.rglob("*")) if p.is_file()}

    before = files()
    copy = tmp_path / "copy"
    shutil.copytree(project.root, copy)
    sales(copy / "data/landing", 2005, "02", 7)
    with pytest.raises(LakeError, match="outside this project's warehouse"):
        Project.open(copy).crawl("landing")
    assert files() == before
    assert query(project, "SELECT count(*) FROM sales") == [(18,)]

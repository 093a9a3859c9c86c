"""Reading a table's current metadata without pyiceberg gives exactly what pyiceberg reads."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sluice.core import TableName
from sluice.errors import LakeError
from sluice.lake.catalog import Lake
from sluice.lake.metadata import MetadataReader, UnreadableMetadataError, parse_metadata, reader_for
from sluice.project import Project
from tests.ingest.test_incremental import (
    INCREMENTAL,
    add_updated_at,
    change_source,
    configure,
    sqlite_source,
)


def _pyiceberg_view(lake: Lake, table: TableName) -> tuple[object, ...]:
    loaded = lake.catalog.load_table((table.database, table.name))
    snapshot = loaded.current_snapshot()
    return (
        tuple((f.name, str(f.field_type)) for f in loaded.schema().fields),
        snapshot.snapshot_id if snapshot else None,
        dict(snapshot.summary.additional_properties) if snapshot and snapshot.summary else {},
        dict(loaded.properties),
    )


def _with_incremental_orders(project: Project) -> Project:
    path = project.root / "sluice.yml"
    config = yaml.safe_load(path.read_text())
    config["jobs"]["etl"]["incremental"] = {
        "orders": {"cursor": "orderNumber", "primary_key": ["orderNumber"]}
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Project.open(project.root)


def test_every_table_reads_as_pyiceberg_reads_it(project: Project) -> None:
    project = _with_incremental_orders(project)
    assert project.run_job("etl").state == "SUCCEEDED"
    source = project.config.sources["classicmodels"].url.removeprefix("sqlite:///")
    with sqlite3.connect(source) as con:
        con.execute("ALTER TABLE customers ADD COLUMN loyaltyTier VARCHAR(10)")
        con.execute("UPDATE customers SET loyaltyTier = 'gold' WHERE customerNumber % 2 = 0")
    assert project.run_job("etl").state == "SUCCEEDED"
    project.lake.accept_drift(TableName("raw", "offices"))

    reader = reader_for(project.lake.catalog_uri, local_warehouse=True)
    assert reader is not None
    tables = [TableName(db, name) for db in ("raw", "gold") for name in _names(project, db)]
    assert len(tables) == 14
    for table in tables:
        current = reader.read(table)
        assert current is not None
        view = (current.columns, current.snapshot_id, current.summary, current.properties)
        assert view == _pyiceberg_view(project.lake, table), table

    customers = reader.read(TableName("raw", "customers"))
    assert customers is not None and ("loyaltyTier", "string") in customers.columns
    orders = reader.read(TableName("raw", "orders"))
    assert orders is not None and orders.summary["sluice.primary-key"] == "orderNumber"
    raw = project.lake.raw_schema(TableName("raw", "offices"))
    assert raw is not None and raw.accepted
    assert project.lake.raw_schema(TableName("raw", "orders")).primary_key == ("orderNumber",)  # type: ignore[union-attr]


def _names(project: Project, database: str) -> list[str]:
    return sorted(info.table.name for info in project.lake.tables(database))


def test_missing_tables_and_catalogs_read_as_none(project: Project, tmp_path: Path) -> None:
    reader = MetadataReader(tmp_path / "no-catalog.db")
    assert reader.read(TableName("raw", "orders")) is None
    assert not (tmp_path / "no-catalog.db").exists()

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert MetadataReader(empty).read(TableName("raw", "orders")) is None

    assert project.run_job("etl").state == "SUCCEEDED"
    reader = reader_for(project.lake.catalog_uri, local_warehouse=True)
    assert reader is not None
    assert reader.read(TableName("raw", "no_such_table")) is None
    assert reader.read(TableName("nowhere", "orders")) is None
    assert project.lake.raw_schema(TableName("raw", "no_such_table")) is None


def test_only_a_local_sqlite_catalog_is_read_directly() -> None:
    assert reader_for("sqlite:////p/.sluice/catalog.db", local_warehouse=True) is not None
    assert reader_for("sqlite:////p/.sluice/catalog.db", local_warehouse=False) is None
    assert reader_for("postgresql+psycopg://me@db/lake", local_warehouse=True) is None
    assert reader_for("sqlite:///:memory:", local_warehouse=True) is None


def test_what_only_pyiceberg_can_read_is_left_to_it() -> None:
    nested = {
        "current-schema-id": 0,
        "schemas": [
            {"schema-id": 0, "fields": [{"id": 1, "name": "s", "type": {"type": "struct"}}]}
        ],
    }
    with pytest.raises(UnreadableMetadataError, match="nested"):
        parse_metadata(nested)
    with pytest.raises(UnreadableMetadataError, match="no snapshot 5"):
        parse_metadata(
            {
                "current-schema-id": 0,
                "schemas": [{"schema-id": 0, "fields": []}],
                "current-snapshot-id": 5,
                "snapshots": [],
            }
        )
    empty = parse_metadata({"current-schema-id": 0, "schemas": [{"schema-id": 0, "fields": []}]})
    assert empty.snapshot_id is None and empty.summary == {}


def test_raw_schemas_are_read_without_importing_pyiceberg(project: Project) -> None:
    assert project.run_job("etl").state == "SUCCEEDED"
    script = (
        "import sys\n"
        "from sluice.core import TableName\n"
        "from sluice.project import Project\n"
        f"lake = Project.open({str(project.root)!r}).lake\n"
        "schema = lake.raw_schema(TableName('raw', 'orders'))\n"
        "print(len(schema.columns), 'pyiceberg' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["9", "False"]


def _metadata_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "warehouse").rglob("*"))
        if p.is_file() and "metadata" in p.parts
    }


def test_a_copied_or_moved_project_refuses_to_run_and_leaves_the_original_alone(
    project: Project, tmp_path: Path
) -> None:
    first = project.run_job("etl")
    assert first.state == "SUCCEEDED", first.error
    before = _metadata_files(project.root)
    copy = tmp_path / "copy"
    shutil.copytree(project.root, copy)
    copied = Project.open(copy).run_job("etl")
    assert copied.state == "FAILED"
    assert "outside this project's warehouse" in (copied.error or "")
    assert str(project.root / "warehouse") in (copied.error or "")
    assert _metadata_files(project.root) == before
    in_copy = Project.open(copy).lake
    for change in (in_copy.reset_cursor, in_copy.accept_drift):
        with pytest.raises(LakeError, match="outside this project's warehouse"):
            change(TableName("raw", "orders"))
    assert _metadata_files(project.root) == before
    assert project.run_job("etl").state == "SUCCEEDED"
    moved = tmp_path / "moved"
    project.root.rename(moved)
    result = Project.open(moved).run_job("etl")
    assert result.state == "FAILED"
    assert "copied or moved" in (result.error or "")


def _assert_recorded_as_pyiceberg_reads(project: Project) -> None:
    """Every table's recorded files and summary, and the merged tables' cursors, as read
    without pyiceberg, are those pyiceberg reads."""
    lake = project.lake
    for database in ("raw", "gold"):
        for name in _names(project, database):
            table = TableName(database, name)
            recorded = lake.recorded_state(table)
            assert recorded is not None, table
            expected_summary, expected_files = lake.summary(table)
            assert (recorded.summary, set(recorded.files)) == (
                expected_summary,
                set(expected_files),
            ), table
            assert recorded.snapshot_id == _pyiceberg_view(lake, table)[1]
    for name in INCREMENTAL:
        table = TableName("raw", name)
        cursor, files = lake.cursor(table, "updated_at")
        recorded_cursor = lake.recorded_cursor(table, "updated_at")
        assert recorded_cursor is not None
        assert (recorded_cursor[0], set(recorded_cursor[1])) == (cursor, set(files))


def test_recorded_files_and_cursors_read_as_pyiceberg_reads_them(project: Project) -> None:
    with sqlite_source(project) as execute:
        add_updated_at(execute)
    project = configure(project, INCREMENTAL)
    assert project.run_job("etl").state == "SUCCEEDED"
    _assert_recorded_as_pyiceberg_reads(project)
    with sqlite_source(project) as execute:
        change_source(execute)  # new rows appended, old ones updated: files kept and rewritten
    assert project.run_job("etl").state == "SUCCEEDED"
    _assert_recorded_as_pyiceberg_reads(project)
    project.jobs.reset_cursor("etl", "orders")
    _assert_recorded_as_pyiceberg_reads(project)
    cursor = project.lake.recorded_cursor(TableName("raw", "orders"), "updated_at")
    assert cursor is not None and cursor[0].value is None

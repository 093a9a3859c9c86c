"""Data-file entries built from DuckDB's footer read equal pyiceberg's own (pyarrow) ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.io.pyarrow import parquet_file_to_data_file
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from sluice import duck
from sluice.core import TableName, WrittenTable
from sluice.lake.catalog import Lake
from sluice.lake.datafiles import data_file, iceberg_schema, read_footer
from sluice.project import Project

FIELDS = (
    "file_path",
    "file_format",
    "partition",
    "record_count",
    "file_size_in_bytes",
    "column_sizes",
    "value_counts",
    "null_value_counts",
    "nan_value_counts",
    "lower_bounds",
    "upper_bounds",
    "split_offsets",
)

# Every flat type the lake stores, several row groups, NULL-only and all-NULL-group columns,
# strings and blobs longer than the 16-character bound (multibyte, backslashes, high bytes).
ALL_TYPES = r"""
SELECT
    CAST(i % 100 - 50 AS TINYINT) AS tiny,
    CAST(i AS INTEGER) AS num,
    CAST(i * 1000003 AS BIGINT) AS big,
    CAST(i / 7 AS FLOAT) AS f32,
    CAST(i / 3 AS DOUBLE) AS f64,
    CAST(i * 1.25 - 900 AS DECIMAL(10, 2)) AS money,
    CAST(i * 123456789.125 AS DECIMAL(38, 3)) AS wide,
    i % 3 = 0 AS flag,
    DATE '2003-01-06' + CAST(i AS INTEGER) AS day,
    TIME '00:00:01.25' + INTERVAL (i) SECOND AS clock,
    TIMESTAMP '2004-02-29 23:59:59.5' + INTERVAL (i) MINUTE AS stamp,
    TIMESTAMPTZ '2005-03-01 10:00:00+00' + INTERVAL (i) HOUR AS stamp_tz,
    repeat('ü', 20) || CAST(i AS VARCHAR) AS long_text,
    CASE WHEN i % 5 = 0 THEN NULL ELSE 'Åbo ' || CAST(i % 9 AS VARCHAR) END AS short_text,
    '' AS empty_text,
    from_hex('5C78' || repeat('FF', 20) || lpad(printf('%X', i % 256), 2, '0')) AS blob,
    CAST(NULL AS INTEGER) AS nothing,
    CASE WHEN i < 5000 THEN NULL ELSE i END AS late
FROM range(12000) AS r(i)
"""


def _pyiceberg_entry(table: Table, path: str) -> DataFile:
    return parquet_file_to_data_file(table.io, table.metadata, path)


def _assert_same(ours: DataFile | None, theirs: DataFile) -> None:
    assert ours is not None
    for name in FIELDS:
        assert getattr(ours, name) == getattr(theirs, name), name


def test_entries_and_schema_match_pyiceberg_for_every_type(tmp_path: Path) -> None:
    path = tmp_path / "all.parquet"
    con = duck.connect()
    con.execute(f"COPY ({ALL_TYPES}) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 4096)")
    footer = read_footer(con, path)
    assert footer.rows == 12000 and len(footer.row_groups) == 3

    ours = iceberg_schema(footer)
    theirs = Catalog._convert_schema_if_needed(pq.read_schema(path))
    assert ours is not None
    assert [(f.name, f.field_type, f.required) for f in ours.fields] == [
        (f.name, f.field_type, f.required) for f in theirs.fields
    ]

    lake = Lake(catalog_uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=tmp_path / "wh")
    lake.prepare({"gold"})
    table = TableName("gold", "all_types")
    written = WrittenTable(table, (str(path),), footer.rows, footers=(footer,))
    lake.commit(written, run_id="jr_test")
    loaded = lake.load(table)
    committed = [task.file for task in loaded.scan().plan_files()]
    assert len(committed) == 1
    _assert_same(data_file(footer, loaded.metadata), _pyiceberg_entry(loaded, str(path)))
    _assert_same(committed[0], _pyiceberg_entry(loaded, str(path)))
    assert committed[0].null_value_counts[ours.find_field("nothing").field_id] == 12000
    assert committed[0].null_value_counts[ours.find_field("late").field_id] == 5000


def test_entries_match_pyiceberg_for_every_lake_table(built: Callable[[int], Project]) -> None:
    project = built(1)
    con = duckdb.connect()
    tables = project.lake.tables()
    assert len(tables) == 14
    for info in tables:
        table = project.lake.load(info.table)
        for task in table.scan().plan_files():
            path = task.file.file_path.removeprefix("file://")
            _assert_same(data_file(read_footer(con, Path(path)), table.metadata), task.file)
            _assert_same(task.file, _pyiceberg_entry(table, path))


def test_files_it_cannot_describe_fall_back_to_pyiceberg(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    con = duck.connect()
    con.execute(f"COPY (SELECT [1, 2] AS items, 7 AS n) TO '{path}' (FORMAT parquet)")
    footer = read_footer(con, path)
    assert iceberg_schema(footer) is None
    lake = Lake(catalog_uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=tmp_path / "wh")
    lake.prepare({"gold"})
    table = TableName("gold", "nested")
    lake.commit(WrittenTable(table, (str(path),), 1, footers=(footer,)), run_id="jr_test")
    loaded = lake.load(table)
    assert [f.name for f in loaded.schema().fields] == ["items", "n"]
    (entry,) = [task.file for task in loaded.scan().plan_files()]
    _assert_same(entry, _pyiceberg_entry(loaded, str(path)))


@pytest.mark.parametrize(("prop", "value"), [("write.metadata.metrics.default", "counts")])
def test_tables_with_their_own_metrics_settings_are_left_to_pyiceberg(
    tmp_path: Path, prop: str, value: str
) -> None:
    path = tmp_path / "t.parquet"
    con = duck.connect()
    con.execute(f"COPY (SELECT 'a' AS s) TO '{path}' (FORMAT parquet)")
    lake = Lake(catalog_uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=tmp_path / "wh")
    lake.prepare({"gold"})
    footer = read_footer(con, path)
    table = TableName("gold", "t")
    lake.commit(WrittenTable(table, (str(path),), 1, footers=(footer,)), run_id="jr_1")
    loaded = lake.load(table)
    with loaded.transaction() as tx:
        tx.set_properties({prop: value})
    assert data_file(footer, lake.load(table).metadata) is None

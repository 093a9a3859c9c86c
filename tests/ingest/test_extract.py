"""Extraction lands every source row with its exact values, however the source is scanned."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sluice import duck
from sluice.ingest.extract import EXTRACTED_AT_COLUMN, RUN_ID_COLUMN
from sluice.project import Project
from sluice.sources import sqlite
from tests.conftest import new_project

SCALE = 50  # orderdetails has 149,800 rows: two 122,880-row ranges for sqlite_scan


@pytest.mark.parametrize("parallel_from", [0, 10**12], ids=["sqlite_scan", "attached"])
def test_raw_tables_equal_the_source(
    tmp_path: Path,
    source_db: Callable[[int], Path],
    monkeypatch: pytest.MonkeyPatch,
    parallel_from: int,
) -> None:
    monkeypatch.setattr(sqlite, "PARALLEL_SCAN_ROWS", parallel_from)
    project: Project = new_project(tmp_path, source_db(SCALE))
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    source = Path(project.config.sources["classicmodels"].url.removeprefix("sqlite:///"))
    con = duck.connect(extensions=("sqlite_scanner",))
    con.execute(f"ATTACH '{source}' AS src (TYPE sqlite, READ_ONLY)")
    tables = [t.table for t in project.lake.tables("raw")]
    assert len(tables) == 8
    for table in tables:
        files = project.lake.current_files(table)
        lake = f"(SELECT * EXCLUDE ({RUN_ID_COLUMN}, {EXTRACTED_AT_COLUMN}) FROM read_parquet({list(files)}))"
        both = f"(SELECT * FROM {lake} EXCEPT ALL SELECT * FROM src.{table.name})"
        back = f"(SELECT * FROM src.{table.name} EXCEPT ALL SELECT * FROM {lake})"
        counts = con.execute(
            f"SELECT (SELECT count(*) FROM {lake}), (SELECT count(*) FROM src.{table.name}), "
            f"(SELECT count(*) FROM {both}), (SELECT count(*) FROM {back})"
        ).fetchone()
        assert counts is not None
        lake_rows, source_rows, extra, missing = counts
        assert (lake_rows, extra, missing) == (source_rows, 0, 0), table

"""The ``sluice`` package's public names and ``read_sql_query``, the awswrangler-style API."""

from __future__ import annotations

import sqlite3
import types
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import sluice
from sluice.errors import SluiceError
from sluice.project import Project
from sluice.sources.sqlite import sqlite_path

PUBLIC = {
    "CheckFailedError",
    "ConfigError",
    "JobError",
    "LakeError",
    "NotFoundError",
    "Project",
    "ProjectNotFoundError",
    "QueryError",
    "SluiceError",
    "SourceError",
    "TransformError",
    "__version__",
    "read_sql_query",
}


def source_rows(proj: Project, sql: str) -> list[tuple[object, ...]]:
    """Rows of SQL run with sqlite3 on the project's SQLite source file."""
    path = sqlite_path(proj.config.sources["classicmodels"].url, base_dir=proj.root)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def source_count(proj: Project, table: str) -> int:
    """Rows of a table in the project's SQLite source."""
    (count,) = source_rows(proj, f"SELECT count(*) FROM {table}")[0]
    assert isinstance(count, int)
    return count


def test_all_names_exactly_the_public_api() -> None:
    assert sorted(sluice.__all__) == sorted(PUBLIC)
    assert len(sluice.__all__) == len(set(sluice.__all__))


def test_every_name_in_all_resolves() -> None:
    for name in sluice.__all__:
        assert getattr(sluice, name) is not None, name
    assert sluice.Project is Project
    assert sluice.__version__ == "0.1.0"
    for name in sluice.__all__:
        value = getattr(sluice, name)
        if isinstance(value, type) and name.endswith("Error"):
            assert issubclass(value, SluiceError), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = sluice.nope  # type: ignore[attr-defined]


def test_no_public_name_outside_all() -> None:
    extra = {
        name
        for name, value in vars(sluice).items()
        if not name.startswith("_")
        and name != "annotations"
        and not (isinstance(value, types.ModuleType) and value.__name__.startswith("sluice."))
        and name not in sluice.__all__
    }
    assert extra == set()


def test_read_sql_query_counts_every_source_order_line(built: Callable[[int], Project]) -> None:
    proj = built(1)
    expected = source_count(proj, "orderdetails")
    assert expected > 0
    frame = sluice.read_sql_query("SELECT count(*) AS n FROM fact_orders", project=proj.root)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["n"]
    assert len(frame) == 1
    assert int(frame["n"].iloc[0]) == expected


def test_read_sql_query_takes_a_path_string_or_an_open_project(
    built: Callable[[int], Project],
) -> None:
    proj = built(1)
    sql = "SELECT count(*) AS n, count(DISTINCT customerNumber) AS c FROM dim_customers"
    expected = {"n": source_count(proj, "customers"), "c": source_count(proj, "customers")}
    for project in (str(proj.root), proj):
        frame = sluice.read_sql_query(sql, project=project)
        assert frame.to_dict("records") == [expected]


def test_read_sql_query_on_raw_tables(built: Callable[[int], Project]) -> None:
    proj = built(1)
    for table in ("orderdetails", "customers", "products", "payments"):
        frame = sluice.read_sql_query(
            f"SELECT count(*) AS n FROM {table}", database="raw", project=proj.root
        )
        assert int(frame["n"].iloc[0]) == source_count(proj, table), table
    ordered = sluice.read_sql_query(
        "SELECT orderNumber FROM orders ORDER BY orderNumber LIMIT 3", "raw", project=proj.root
    )
    rows = source_rows(proj, "SELECT orderNumber FROM orders ORDER BY orderNumber LIMIT 3")
    assert len(rows) == 3
    assert ordered["orderNumber"].tolist() == [row[0] for row in rows]


def test_read_sql_query_refuses_writes_with_a_sluice_error(built: Callable[[int], Project]) -> None:
    proj = built(1)
    with pytest.raises(sluice.QueryError, match="read-only"):
        sluice.read_sql_query("DELETE FROM fact_orders", project=proj.root)
    with pytest.raises(sluice.NotFoundError, match="'bronze'"):
        sluice.read_sql_query("SELECT 1", database="bronze", project=proj.root)
    frame = sluice.read_sql_query("SELECT count(*) AS n FROM fact_orders", project=proj.root)
    assert int(frame["n"].iloc[0]) == source_count(proj, "orderdetails")


def test_read_sql_query_without_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLUICE_PROJECT", raising=False)
    with pytest.raises(sluice.ProjectNotFoundError, match="sluice init"):
        sluice.read_sql_query("SELECT 1")
    assert list(tmp_path.iterdir()) == []


def test_read_sql_query_binds_parameters(built: Callable[[int], Project]) -> None:
    proj = built(1)
    ((expected,),) = source_rows(proj, "SELECT count(*) FROM orders WHERE status = 'Shipped'")
    assert expected > 0
    for sql, parameters in (
        ("SELECT count(*) AS n FROM orders WHERE status = ?", ["Shipped"]),
        ("SELECT count(*) AS n FROM orders WHERE status = $status", {"status": "Shipped"}),
    ):
        frame = sluice.read_sql_query(sql, "raw", project=proj, parameters=parameters)
        assert int(frame["n"].iloc[0]) == expected
    quoted = sluice.read_sql_query(
        "SELECT count(*) AS n FROM orders WHERE status = ?",
        "raw",
        project=proj,
        parameters=["Shipped' OR '1'='1"],
    )
    assert int(quoted["n"].iloc[0]) == 0

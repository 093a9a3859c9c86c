"""Shared locked databases: one per pinned file set, old ones kept until their queries end."""

from __future__ import annotations

import duckdb
import pytest

from sluice.project import Project
from sluice.query.sessions import SharedDatabases
from tests.jobs.helpers import drop_orders, source_totals

COUNT = "SELECT count(*) FROM fact_orders"


def test_a_query_keeps_its_snapshot_while_a_new_publication_gets_a_new_database(
    project: Project,
) -> None:
    assert project.run_job("etl").state == "SUCCEEDED"
    engine = project.query_engine
    databases = SharedDatabases(engine, threads=1, memory_limit="256MB")
    old_lines, _ = source_totals(project)
    old = engine.visible_tables()
    with databases.cursor(database="gold", tables=old) as first:
        with databases.cursor(database="gold", tables=old) as same:
            assert same.execute(COUNT).fetchone() == (old_lines,)
        drop_orders(project, 5)
        assert project.run_job("etl").state == "SUCCEEDED"
        new_lines, _ = source_totals(project)
        assert new_lines < old_lines
        new = engine.visible_tables()
        assert new != old
        with databases.cursor(database="raw", tables=new) as second:
            assert second.execute(COUNT.replace("fact_orders", "orderdetails")).fetchone() == (
                new_lines,
            )
            assert second.execute("SELECT count(*) FROM gold.fact_orders").fetchone() == (
                new_lines,
            )
        assert first.execute(COUNT).fetchone() == (old_lines,)
    with pytest.raises(duckdb.ConnectionException):
        first.execute(COUNT)
    with databases.cursor(database="gold", tables=new) as third:
        assert third.execute(COUNT).fetchone() == (new_lines,)
        with pytest.raises(duckdb.Error, match=r"configuration"):
            third.execute("SET enable_external_access = true")
    databases.close()

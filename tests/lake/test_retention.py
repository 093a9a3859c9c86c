"""Bounded history: old snapshots expire, unreferenced data files are deleted, and what
readers use is never touched."""

from __future__ import annotations

from pathlib import Path

from sluice.core import TableName
from sluice.project import Project
from tests.ingest.test_incremental import configure, sqlite_source
from tests.jobs.helpers import drop_orders, lake_totals, run_killed_at, source_totals


def _keep_snapshots(project: Project, count: int) -> Project:
    config = project.root / "sluice.yml"
    config.write_text(
        config.read_text().replace(
            "  warehouse: warehouse\n", f"  warehouse: warehouse\n  keep_snapshots: {count}\n"
        )
    )
    return Project.open(project.root)


def test_history_is_bounded_and_old_files_are_removed(project: Project) -> None:
    project = _keep_snapshots(project, 2)
    runs = []
    for _ in range(5):
        run = project.run_job("etl")
        assert run.state == "SUCCEEDED"
        runs.append(run.run_id)
        drop_orders(project, 1)
    fact = TableName("gold", "fact_orders")
    description = project.lake.describe(fact)
    assert [s.run_id for s in description.snapshots] == runs[-2:]
    files = sorted(p.stem for p in project.lake.data_dir(fact).glob("*.parquet"))
    assert files == sorted(runs[-3:])
    current = project.query("SELECT count(*) AS n FROM fact_orders").table.to_pylist()[0]["n"]
    assert current == description.info.rows


def test_files_of_a_killed_run_are_removed_by_the_next_run(project: Project) -> None:
    project = _keep_snapshots(project, 1)
    project.run_job("etl")
    killed_id = run_killed_at(project, "transform:fact_orders").run_id
    fact_dir = project.lake.data_dir(TableName("gold", "fact_orders"))
    assert (fact_dir / f"{killed_id}.parquet").exists()

    project.run_job("etl")
    project.run_job("etl")
    project.run_job("etl")
    leftovers = [p for p in project.lake.warehouse.rglob(f"{killed_id}.parquet")]
    assert leftovers == []
    assert lake_totals(project) == source_totals(project)


def _metadata_files(project: Project, table: TableName) -> set[str]:
    folder = project.lake.table_dir(table) / "metadata"
    return {str(p) for p in folder.glob("*.avro")}


def test_expired_snapshots_leave_no_manifests_behind(project: Project) -> None:
    """Appends share manifests across snapshots; only what no retained snapshot reads goes."""
    project = configure(
        _keep_snapshots(project, 2),
        {
            "orders": {"cursor": "orderNumber", "primary_key": ["orderNumber"]},
            "orderdetails": {
                "cursor": "orderNumber",
                "primary_key": ["orderNumber", "productCode"],
            },
        },
    )
    for step in range(6):
        with sqlite_source(project) as execute:
            (first,) = execute('SELECT min("orderNumber") FROM orders')[0]
            for table in ("orders", "orderdetails"):
                columns = [row[1] for row in execute(f"PRAGMA table_info({table})")][1:]
                listed = ", ".join(f'"{c}"' for c in columns)
                execute(
                    f'INSERT INTO {table} ("orderNumber", {listed}) SELECT '
                    f'"orderNumber" + {100000 + step}, {listed} FROM {table} '
                    f'WHERE "orderNumber" = {first}'
                )
        assert project.run_job("etl").state == "SUCCEEDED"
    for table in (TableName("raw", "orderdetails"), TableName("gold", "fact_orders")):
        loaded = project.lake.load(table)
        snapshots = loaded.snapshots()
        assert len(snapshots) == 2
        manifests = {m.manifest_path for s in snapshots for m in s.manifests(loaded.io)}
        lists = {s.manifest_list for s in snapshots}
        assert _metadata_files(project, table) == {
            str(Path(p.removeprefix("file://"))) for p in manifests | lists
        }
        for snapshot in snapshots:
            files = loaded.scan(snapshot_id=snapshot.snapshot_id).plan_files()
            rows = sum(task.file.record_count for task in files)
            assert snapshot.summary is not None
            assert rows == int(snapshot.summary["total-records"])
    assert lake_totals(project) == source_totals(project)

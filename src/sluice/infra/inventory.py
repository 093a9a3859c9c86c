"""What the project file declares and what exists now (state file, catalog, warehouse).

Sources are never contacted: a job that extracts ``all`` tables declares whatever tables
its raw namespace holds, so a plan needs no credentials and no network.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.config import ProjectConfig, redact
from sluice.infra.plan import Current, Declared, ObservedTable, Resource
from sluice.lake.catalog import RUN_ID_PROPERTY, sqlalchemy_url
from sluice.lake.s3 import is_s3

if TYPE_CHECKING:
    from sluice.infra.state import State
    from sluice.lake.catalog import Lake

STATE_NAME = ".sluice/state.json"
KEEP_SNAPSHOTS_PROPERTY = "write.metadata.previous-versions-max"
_METADATA_VERSION = re.compile(r"^(\d+)-")


def declared_resources(config: ProjectConfig, root: Path) -> Declared:
    """The resources ``sluice.yml`` declares (secrets in URLs shown as ``***``)."""
    resources = [
        Resource(kind="state", name=STATE_NAME),
        Resource(kind="warehouse", name="warehouse", attributes={"path": warehouse(config, root)}),
        Resource(kind="catalog", name="catalog", attributes={"uri": redact(config.catalog.url)}),
    ]
    tables: set[str] = set()
    all_in: set[str] = set()
    for name, job in sorted(config.jobs.items()):
        for database in (job.raw_database, job.gold_database):
            resources.append(Resource(kind="namespace", name=database))
        source = config.sources.get(job.source)
        resources.append(
            Resource(
                kind="job",
                name=name,
                attributes={
                    "source": redact(source.url) if source else f"(undeclared {job.source})",
                    "tables": job.tables if isinstance(job.tables, str) else ",".join(job.tables),
                    "raw_database": job.raw_database,
                    "gold_database": job.gold_database,
                    "models": job.models,
                    "timeout_minutes": f"{job.timeout_minutes:g}",
                },
            )
        )
        if job.tables == "all":
            all_in.add(job.raw_database)
        else:
            tables.update(f"{job.raw_database}.{table}" for table in job.tables)
        models = root / job.models
        tables.update(f"{job.gold_database}.{path.stem}" for path in models.glob("*.sql"))
    return Declared(
        resources={r.address: r for r in resources},
        tables=frozenset(tables),
        all_tables_in=frozenset(all_in),
        table_attributes={KEEP_SNAPSHOTS_PROPERTY: str(config.lake.keep_snapshots)},
    )


def warehouse(config: ProjectConfig, root: Path) -> str:
    """The warehouse the project file names: an ``s3://`` URI, or a folder resolved against
    the project root."""
    if is_s3(config.lake.warehouse):
        return config.lake.warehouse.rstrip("/")
    path = Path(config.lake.warehouse)
    return str((path if path.is_absolute() else root / path).resolve())


def observe(
    declared: Declared, *, root: Path, lake: Lake, state: State | None, state_path: Path
) -> Current:
    """What exists of the declared resources and of those the state file records.

    Only reads: the catalog is opened without creating the warehouse folder.
    """
    recorded = dict(state.resources) if state else {}
    found: list[Resource] = []
    if state_path.is_file():
        found.append(Resource(kind="state", name=STATE_NAME))
    for kind in ("warehouse", "catalog"):
        address = f"{kind}.{kind}"
        have = recorded.get(address) or declared.resources[address]
        if _exists(have, root=root, recorded=address in recorded, lake=lake):
            found.append(have)
    found.extend(r for r in recorded.values() if r.kind == "job")
    namespaces = {
        r.name for r in [*declared.resources.values(), *recorded.values()] if r.kind == "namespace"
    }
    tables: dict[str, ObservedTable] = {}
    catalog = None
    if _exists(declared.resources["catalog.catalog"], root=root, recorded=False, lake=lake):
        catalog = lake.open_catalog()
    existing = {".".join(ns) for ns in catalog.list_namespaces()} if catalog else set()
    for database in sorted(namespaces & existing):
        found.append(Resource(kind="namespace", name=database))
        tables.update(_catalog_tables(catalog, database, set(declared.table_attributes)))
    for database in sorted(namespaces):
        for name, location in _warehouse_tables(lake.warehouse, database).items():
            tables.setdefault(
                name, ObservedTable(name=name, in_catalog=False, metadata_location=location)
            )
    return Current(
        resources={r.address: r for r in found},
        tables=tables,
        state=recorded,
        lineage=state.lineage if state else None,
        serial=state.serial if state else 0,
    )


def _exists(resource: Resource, *, root: Path, recorded: bool, lake: Lake) -> bool:
    if resource.kind == "warehouse":
        location = resource.attributes["path"]
        if not is_s3(location):
            return Path(location).is_dir()
        if lake.s3 is None or lake.s3.uri != location:
            return recorded
        lake.s3.check()  # a missing bucket or credentials stop the plan, saying what to do
        return True
    url = sqlalchemy_url(resource.attributes["uri"], root=root)
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).is_file()
    return recorded or lake.catalog_initialized()


def _catalog_tables(catalog: Any, database: str, keys: set[str]) -> dict[str, ObservedTable]:
    from pyiceberg.exceptions import NoSuchNamespaceError

    try:
        idents = catalog.list_tables(database)
    except NoSuchNamespaceError:
        return {}
    found = {}
    for ident in sorted(idents):
        table = catalog.load_table(ident)
        name = f"{database}.{ident[-1]}"
        snapshot = table.current_snapshot()
        summary = snapshot.summary if snapshot and snapshot.summary else None
        found[name] = ObservedTable(
            name=name,
            in_catalog=True,
            attributes={k: table.properties.get(k, "") for k in sorted(keys)},
            written_by_sluice=bool(summary and summary.get(RUN_ID_PROPERTY)),
        )
    return found


def _warehouse_tables(root: Path, database: str) -> dict[str, str]:
    """Tables whose Iceberg metadata lies in the warehouse: name -> newest metadata file."""
    tables = {}
    for folder in sorted((root / f"{database}.db").glob("*/metadata")):
        files = [
            (int(m.group(1)), p.stat().st_mtime, p)
            for p in folder.glob("*.metadata.json")
            if (m := _METADATA_VERSION.match(p.name))
        ]
        if files:
            tables[f"{database}.{folder.parent.name}"] = max(files)[2].resolve().as_uri()
    return tables

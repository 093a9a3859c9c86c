"""The crawler, as in AWS Glue: registers the datasets found under a folder as Iceberg tables.

Parquet files are registered where they are, never rewritten. CSV and JSON lines files
cannot be Iceberg data files: each is converted once to a Parquet file in the table's data
folder (under the same ``key=value`` folders). The table records, per source file, its size
and modification time and the Parquet file it reads for it (property
``sluice.crawler.files``), so a re-crawl reads only new or changed files and drops the
deleted ones. A file whose column types conflict with the table's is reported by name and
left out. A crawl that changed anything ends with one publication of every table the
crawler owns, so ``sluice query`` sees them at once, and never a half-done crawl.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sluice import duck
from sluice.catalog.datasets import (
    Dataset,
    FileIssue,
    Listed,
    Partition,
    SourceFile,
    UnreadableFileError,
    converted_sql,
    discover,
    file_columns,
    local_files,
    partition_of,
    partition_types,
    partition_value,
)
from sluice.config import CrawlerConfig
from sluice.core import TableCommit, TableName
from sluice.errors import ConfigError
from sluice.lake.datafiles import iceberg_type, read_footer
from sluice.lake.register import FileToAdd, current_commit, register_files
from sluice.lake.s3 import is_s3

if TYPE_CHECKING:
    import duckdb
    from pyiceberg.table import Table
    from pyiceberg.types import PrimitiveType

    from sluice.lake.catalog import Lake
    from sluice.lake.publications import PublicationStore

__all__ = ["CrawlReport", "FileIssue", "TableChange", "crawl"]

CRAWLER_PROPERTY = "sluice.crawler"
SOURCE_PROPERTY = "sluice.crawler.source"
FILES_PROPERTY = "sluice.crawler.files"
PARTITION_TYPES_PROPERTY = "sluice.crawler.partition-types"
DEPRECATED_PROPERTY = "sluice.deprecated-at"


@dataclass(frozen=True)
class TableChange:
    """What a crawl did (or, dry, would do) to one table.

    ``action``: created, updated, unchanged, skipped (CRAWL_NEW_FOLDERS_ONLY), and for a
    table whose folder is gone: deleted, deprecated or logged (per ``delete_behavior``).
    ``restored``: the folder of a deprecated table is back, so it is no longer deprecated.
    """

    table: TableName
    action: str
    files_added: int = 0
    files_removed: int = 0
    rows_added: int = 0
    partitions_added: tuple[str, ...] = ()
    columns_added: tuple[str, ...] = ()
    columns_logged: tuple[str, ...] = ()
    restored: bool = False


@dataclass(frozen=True)
class CrawlReport:
    """The outcome of one crawl: per table, and the files left out (skipped or conflicting)."""

    crawler: str
    database: str
    dry_run: bool
    crawl_id: str | None
    tables: tuple[TableChange, ...]
    skipped: tuple[FileIssue, ...]
    conflicts: tuple[FileIssue, ...]


@dataclass
class _Plan:
    """The changes to one dataset's table, decided before anything is written."""

    dataset: Dataset
    existing: Table | None
    columns: dict[str, PrimitiveType]
    partition_columns: tuple[str, ...]
    partition_types: dict[str, str]
    sources: dict[str, list[str]]
    add: list[SourceFile] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    new_partitions: set[str] = field(default_factory=set)
    columns_added: list[str] = field(default_factory=list)
    columns_logged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.add or self.remove or self.columns_added)


def crawl(
    name: str,
    config: CrawlerConfig,
    *,
    root: Path,
    lake: Lake,
    publications: PublicationStore,
    dry_run: bool = False,
) -> CrawlReport:
    """Register the datasets under the crawler's target as tables; ``dry_run`` changes nothing."""
    target, listed = _target(name, config, root, lake)
    datasets, skipped = discover(target, listed, config.database)
    owned = _owned_tables(lake, config.database, name)
    conflicts: list[FileIssue] = []
    changes: list[TableChange] = []
    commits: dict[TableName, TableCommit] = {}
    crawl_id = "cr_" + secrets.token_hex(16)
    con = duck.connect(threads=2)
    lake.prepare_duckdb(con)
    try:
        if not dry_run:
            lake.ensure_database(config.database)
        for dataset in datasets:
            existing = owned.pop(dataset.table.name, None)
            if existing is None and dataset.table.name in _other_tables(lake, config.database):
                conflicts.append(
                    FileIssue(
                        dataset.source,
                        f"{dataset.table} exists and was not made by crawler {name}",
                    )
                )
                continue
            restored = existing is not None and DEPRECATED_PROPERTY in existing.properties
            if existing is not None and restored and not dry_run:
                with existing.transaction() as tx:
                    tx.remove_properties(DEPRECATED_PROPERTY)
            if existing is not None and config.recrawl == "CRAWL_NEW_FOLDERS_ONLY":
                missing = _unregister_missing(
                    lake, dataset.table, existing, crawl_id=crawl_id, dry_run=dry_run
                )
                changes.append(
                    TableChange(dataset.table, "skipped", files_removed=missing, restored=restored)
                )
                commits[dataset.table] = current_commit(lake, dataset.table)
                continue
            plan = _plan(con, dataset, existing, config, skipped=skipped, conflicts=conflicts)
            if plan is None:
                continue
            done = _apply(
                con,
                plan,
                crawler=name,
                lake=lake,
                crawl_id=crawl_id,
                dry_run=dry_run,
                commits=commits,
            )
            changes.append(dataclasses.replace(done, restored=restored))
        removed = _vanished(
            owned,
            config,
            lake,
            crawl_id=crawl_id,
            dry_run=dry_run,
            changes=changes,
            commits=commits,
        )
    finally:
        con.close()
    published = None
    if not dry_run and _needs_publication(publications, commits, removed):
        publications.publish(crawl_id, f"crawler:{name}", list(commits.values()), removed=removed)
        published = crawl_id
    return CrawlReport(
        crawler=name,
        database=config.database,
        dry_run=dry_run,
        crawl_id=published,
        tables=tuple(changes),
        skipped=tuple(skipped),
        conflicts=tuple(conflicts),
    )


def _target(name: str, config: CrawlerConfig, root: Path, lake: Lake) -> tuple[str, list[Listed]]:
    """The crawler's target (a folder, or an ``s3://`` prefix) and every file below it."""
    if is_s3(config.target):
        uri = config.target.rstrip("/")
        if lake.s3 is None:
            raise ConfigError(
                f"crawlers.{name}.target {uri} is in S3, but the lake is not.",
                hint="Set lake.warehouse to an s3:// URI: the crawler reaches the target with "
                "its endpoint, region and credentials.",
            )
        listed = [
            Listed(location, tuple(location[len(uri) + 1 :].split("/")), size, mtime_ns)
            for location, size, mtime_ns in lake.s3.files(uri)
        ]
        if not listed:
            raise ConfigError(
                f"crawlers.{name}.target: {uri} holds no objects.",
                hint="Upload files there, or fix the URI in sluice.yml.",
            )
        return uri, listed
    raw = config.target.removeprefix("file://")
    target = Path(raw) if Path(raw).is_absolute() else root / raw
    if not target.is_dir():
        raise ConfigError(
            f"crawlers.{name}.target: {target} is not a folder.",
            hint="Create it, or fix the path in sluice.yml.",
        )
    return str(target), local_files(target)


def _owned_tables(lake: Lake, database: str, crawler: str) -> dict[str, Table]:
    """The tables of ``database`` this crawler created, by name."""
    from pyiceberg.exceptions import NoSuchNamespaceError

    if database not in lake.databases():
        return {}
    owned = {}
    with contextlib.suppress(NoSuchNamespaceError):
        for ident in lake.catalog.list_tables(database):
            table = lake.catalog.load_table(ident)
            if table.properties.get(CRAWLER_PROPERTY) == crawler:
                owned[ident[-1]] = table
    return owned


def _other_tables(lake: Lake, database: str) -> set[str]:
    if database not in lake.databases():
        return set()
    return {ident[-1] for ident in lake.catalog.list_tables(database)}


def _plan(
    con: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    existing: Table | None,
    config: CrawlerConfig,
    *,
    skipped: list[FileIssue],
    conflicts: list[FileIssue],
) -> _Plan | None:
    """Decide which files to add and remove and how the schema changes; None: nothing to do."""
    if existing is not None:
        props = existing.properties
        spec_names = tuple(f.name for f in existing.spec().fields)
        plan = _Plan(
            dataset,
            existing,
            {
                f.name: cast("PrimitiveType", f.field_type)
                for f in existing.schema().fields
                if f.name not in spec_names
            },
            spec_names,
            json.loads(props.get(PARTITION_TYPES_PROPERTY, "{}")),
            json.loads(props.get(FILES_PROPERTY, "{}")),
        )
        registered = {t.file.file_path: t.file for t in existing.scan().plan_files()}
    else:
        keys = dataset.files[0].keys
        plan = _Plan(dataset, None, {}, keys, {}, {})
        registered = {}
    present: set[str] = set()
    for file in dataset.files:
        if file.keys != plan.partition_columns:
            conflicts.append(
                FileIssue(
                    file.path,
                    f"partition folders ({', '.join(file.keys) or 'none'}) differ from "
                    f"{dataset.table}'s ({', '.join(plan.partition_columns) or 'none'})",
                )
            )
            continue
        present.add(file.path)
        entry = plan.sources.pop(file.path, None)
        if entry and entry[1] in registered:
            if entry[0] == file.fingerprint():
                plan.sources[file.path] = entry
                continue
            plan.remove.append(entry[1])
        try:
            columns = file_columns(con, file)
        except UnreadableFileError as exc:
            skipped.append(FileIssue(file.path, str(exc)))
            continue
        problem = _schema_problem(columns, plan, dataset.table)
        if problem:
            conflicts.append(FileIssue(file.path, problem))
            continue
        new = [(n, t) for n, t in columns if n not in plan.columns]
        if new and existing is not None and config.update_behavior == "LOG":
            names = [n for n, _ in new]
            plan.columns_logged.extend(n for n in names if n not in plan.columns_logged)
            skipped.append(
                FileIssue(
                    file.path,
                    f"adds columns {', '.join(names)}; update_behavior LOG leaves "
                    f"{dataset.table} as it is",
                )
            )
            continue
        for column, kind in new:
            plan.columns[column] = kind
            if existing is not None:
                plan.columns_added.append(column)
        plan.add.append(file)
    for source in [s for s in plan.sources if s not in present]:
        path = plan.sources.pop(source)[1]
        if path in registered:
            plan.remove.append(path)
    if existing is None and not plan.add:
        return None
    _check_partitions(con, plan, conflicts)
    return plan


def _schema_problem(columns: list[tuple[str, PrimitiveType]], plan: _Plan, table: TableName) -> str:
    from pyiceberg.types import IntegerType, LongType

    for column, kind in columns:
        if column in plan.partition_columns:
            return f"column {column} is also a partition folder of {table}"
        have = plan.columns.get(column)
        if have is None or have == kind or (have == LongType() and kind == IntegerType()):
            continue
        return f"column {column} is {kind} here but {have} in {table}; not merged"
    return ""


def _check_partitions(
    con: duckdb.DuckDBPyConnection, plan: _Plan, conflicts: list[FileIssue]
) -> None:
    """Type the partition columns of a new table; leave out files whose partition values
    would change the type the query engine reads an existing table's column as."""
    if not plan.partition_columns:
        return
    live = {partition_of(source, plan.dataset.source) for source in plan.sources}
    new = {f.partition for f in plan.add} - live
    with tempfile.TemporaryDirectory(prefix="sluice-crawl-") as scratch:
        if plan.existing is None:
            plan.partition_types = partition_types(con, new, Path(scratch))
            misfits = set()
        else:
            misfits = {
                p
                for p in new
                if partition_types(con, live | {p}, Path(scratch)) != plan.partition_types
            }
    types = ", ".join(f"{k} {plan.partition_types[k]}" for k in plan.partition_columns)
    for file in plan.add:
        if file.partition in misfits:
            conflicts.append(
                FileIssue(file.path, f"partition {_folders(file.partition)} does not fit {types}")
            )
    plan.add = [f for f in plan.add if f.partition not in misfits]
    plan.new_partitions = {_folders(f.partition) for f in plan.add} - {_folders(p) for p in live}


def _folders(partition: Partition) -> str:
    return "/".join(f"{key}={value}" for key, value in partition)


def _apply(
    con: duckdb.DuckDBPyConnection,
    plan: _Plan,
    *,
    crawler: str,
    lake: Lake,
    crawl_id: str,
    dry_run: bool,
    commits: dict[TableName, TableCommit],
) -> TableChange:
    table = plan.dataset.table
    action = "created" if plan.existing is None else ("updated" if plan.changed else "unchanged")
    rows = 0
    if not dry_run and plan.changed:
        written: list[Path] = []
        try:
            adds = []
            for file in plan.add:
                if file.format == "parquet":
                    footer = read_footer(con, file.path, file_size=file.size)
                else:
                    path = _convert(con, file, plan, lake)
                    written.append(path)
                    footer = read_footer(con, path)
                    footer = dataclasses.replace(footer, path=lake.store_file(table, path))
                plan.sources[file.path] = [file.fingerprint(), footer.path]
                rows += footer.rows
                values = tuple(
                    partition_value(con, v, plan.partition_types[k]) for k, v in file.partition
                )
                adds.append(FileToAdd(footer, values))
            commits[table] = register_files(
                lake,
                table,
                schema=_schema(plan),
                partition_columns=plan.partition_columns,
                add=adds,
                remove=plan.remove,
                properties={
                    CRAWLER_PROPERTY: crawler,
                    SOURCE_PROPERTY: plan.dataset.source,
                    FILES_PROPERTY: json.dumps(plan.sources, sort_keys=True),
                    PARTITION_TYPES_PROPERTY: json.dumps(plan.partition_types),
                },
                crawl_id=crawl_id,
            )
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
    elif not dry_run:
        commits[table] = current_commit(lake, table)
    return TableChange(
        table,
        action,
        files_added=len(plan.add),
        files_removed=len(plan.remove),
        rows_added=rows,
        partitions_added=tuple(sorted(p for p in plan.new_partitions if p)),
        columns_added=tuple(plan.columns_added),
        columns_logged=tuple(plan.columns_logged),
    )


def _convert(con: duckdb.DuckDBPyConnection, file: SourceFile, plan: _Plan, lake: Lake) -> Path:
    """Write a CSV or JSON file's rows once as Parquet in the table's data folder (for an S3
    warehouse: its staging folder, uploaded by the caller)."""
    fingerprint = file.fingerprint()
    digest = hashlib.sha1(f"{file.path}\0{fingerprint}".encode()).hexdigest()[:16]
    folder = lake.data_dir(plan.dataset.table).joinpath(*(f"{k}={v}" for k, v in file.partition))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{file.stem}-{digest}.parquet"
    temp = folder / f".{path.name}.tmp"
    con.execute(
        f"COPY ({converted_sql(con, file)}) TO {duck.quote_literal(str(temp))} "
        "(FORMAT parquet, COMPRESSION snappy)"
    )
    os.replace(temp, path)
    return path


def _schema(plan: _Plan) -> Any:
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

    columns: list[tuple[str, Any]] = list(plan.columns.items())
    for key in plan.partition_columns:
        columns.append((key, iceberg_type(plan.partition_types[key])))
    return Schema(
        *(
            NestedField(i, column, kind, required=False)
            for i, (column, kind) in enumerate(columns, start=1)
        )
    )


def _vanished(
    owned: dict[str, Table],
    config: CrawlerConfig,
    lake: Lake,
    *,
    crawl_id: str,
    dry_run: bool,
    changes: list[TableChange],
    commits: dict[TableName, TableCommit],
) -> list[TableName]:
    """Apply ``delete_behavior`` to the crawler's tables whose folder is gone; the dropped.

    A table that stays no longer reads the files that were deleted with the folder (its
    Parquet copies of CSV and JSON files stay): a table listing a missing file would fail
    every query.
    """
    dropped = []
    for name, table in sorted(owned.items()):
        ident = TableName(config.database, name)
        if config.delete_behavior == "DELETE_FROM_DATABASE":
            changes.append(TableChange(ident, "deleted"))
            if not dry_run:
                lake.catalog.drop_table((ident.database, ident.name))
                dropped.append(ident)
            continue
        deprecate = config.delete_behavior == "DEPRECATE_IN_DATABASE"
        if deprecate and not dry_run and DEPRECATED_PROPERTY not in table.properties:
            with table.transaction() as tx:
                tx.set_properties({DEPRECATED_PROPERTY: datetime.now(UTC).isoformat()})
        missing = _unregister_missing(lake, ident, table, crawl_id=crawl_id, dry_run=dry_run)
        action = "deprecated" if deprecate else "logged"
        changes.append(TableChange(ident, action, files_removed=missing))
        if not dry_run:
            commits[ident] = current_commit(lake, ident)
    return dropped


def _unregister_missing(
    lake: Lake, ident: TableName, table: Table, *, crawl_id: str, dry_run: bool
) -> int:
    """Stop ``table`` reading files that no longer exist; how many there were."""
    live = [task.file.file_path for task in table.scan().plan_files()]
    missing = [path for path in live if not lake.files_exist([path])]
    if missing and not dry_run:
        sources = json.loads(table.properties.get(FILES_PROPERTY, "{}"))
        kept = {source: entry for source, entry in sources.items() if entry[1] not in missing}
        register_files(
            lake,
            ident,
            schema=table.schema(),
            partition_columns=(),
            add=(),
            remove=missing,
            properties={FILES_PROPERTY: json.dumps(kept, sort_keys=True)},
            crawl_id=crawl_id,
        )
    return len(missing)


def _needs_publication(
    publications: PublicationStore, commits: dict[TableName, TableCommit], removed: list[TableName]
) -> bool:
    """True unless readers already see exactly these snapshots."""
    current = publications.current()
    return bool(removed) or any(
        table not in current or current[table].snapshot_id != commit.snapshot_id
        for table, commit in commits.items()
    )

"""What a crawler finds in a folder: datasets, their files, partitions and schemas.

Each first-level folder of the target is one dataset (every file below it, at any depth);
each file directly in the target is a dataset of its own, named after the file's stem.
Folders named ``key=value`` are Hive-style partitions. Files and folders whose names start
with ``.`` or ``_`` (``_SUCCESS``, ``.crc``) are ignored, as Spark and Glue do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from sluice.core import TableName
from sluice.duck import quote_ident, quote_literal
from sluice.lake.datafiles import iceberg_type
from sluice.lake.types import lake_select

if TYPE_CHECKING:
    import duckdb
    from pyiceberg.types import PrimitiveType

FORMATS = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}
Partition = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class FileIssue:
    """A file the crawler did not register, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Listed:
    """A file under a crawler's target: where it is, its path below the target, its size and
    modification time (nanoseconds)."""

    location: str
    parts: tuple[str, ...]
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class SourceFile:
    """A data file under the target (a path, or an ``s3://`` URI), its format, its Hive
    partition values, and its size and modification time when it was listed."""

    path: str
    format: str
    partition: Partition
    size: int
    mtime_ns: int

    @property
    def keys(self) -> tuple[str, ...]:
        """The partition keys, outermost first."""
        return tuple(key for key, _ in self.partition)

    @property
    def stem(self) -> str:
        """The file's name without its extension."""
        return PurePosixPath(self.path).stem

    def fingerprint(self) -> str:
        """Size and modification time: changes when the file is rewritten."""
        return f"{self.size}-{self.mtime_ns}"


@dataclass(frozen=True)
class Dataset:
    """One table's worth of files: a first-level folder of the target, or a single file."""

    table: TableName
    source: str
    files: tuple[SourceFile, ...]


class UnreadableFileError(Exception):
    """A file whose schema cannot be read or stored; the message is the reason."""


def table_name(text: str) -> str:
    """A catalog table name for a folder or file name.

    >>> table_name("Sales 2004"), table_name("2004-orders")
    ('sales_2004', 't_2004_orders')
    """
    name = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "t"
    return f"t_{name}" if name[0].isdigit() else name


def local_files(target: Path) -> list[Listed]:
    """Every file below a local folder."""
    found = []
    for path in sorted(target.rglob("*")):
        if path.is_file():
            stat = path.stat()
            parts = path.relative_to(target).parts
            found.append(Listed(str(path), parts, stat.st_size, stat.st_mtime_ns))
    return found


def discover(
    target: str, files: list[Listed], database: str
) -> tuple[list[Dataset], list[FileIssue]]:
    """The datasets among the ``files`` listed under ``target`` and the files skipped (not a
    known format, name taken)."""
    entries: dict[str, list[Listed]] = {}
    for item in sorted(files, key=lambda f: f.parts):
        if not any(_hidden(part) for part in item.parts):
            entries.setdefault(item.parts[0], []).append(item)
    datasets: dict[str, Dataset] = {}
    skipped: list[FileIssue] = []
    for entry, listed in sorted(entries.items()):
        is_file = len(listed) == 1 and len(listed[0].parts) == 1
        source = listed[0].location if is_file else _join(target, entry)
        name = table_name(PurePosixPath(entry).stem if is_file else entry)
        if name in datasets:
            skipped.append(
                FileIssue(source, f"table name {name} is taken by {datasets[name].source}")
            )
            continue
        found = []
        for item in listed:
            fmt = FORMATS.get(PurePosixPath(item.parts[-1]).suffix.lower())
            if fmt is None:
                skipped.append(FileIssue(item.location, "not a Parquet, CSV or JSON lines file"))
                continue
            partition = partition_of(item.location, source)
            found.append(SourceFile(item.location, fmt, partition, item.size, item.mtime_ns))
        if found:
            datasets[name] = Dataset(TableName(database, name), source, tuple(found))
    return list(datasets.values()), skipped


def _join(target: str, name: str) -> str:
    return f"{target.rstrip('/')}/{name}"


def partition_of(path: str, dataset: str) -> Partition:
    """The Hive partition of a file: the ``key=value`` folders between the dataset and it.

    >>> partition_of("/l/sales/year=2004/eu/month=06/a.csv", "/l/sales")
    (('year', '2004'), ('month', '06'))
    >>> partition_of("s3://b/l/sales/year=2004/a.csv", "s3://b/l/sales")
    (('year', '2004'),)
    """
    if path == dataset:
        return ()
    folders = PurePosixPath(path).relative_to(PurePosixPath(dataset)).parts[:-1]
    return tuple((key, value) for key, _, value in (p.partition("=") for p in folders if "=" in p))


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def reader_sql(file: SourceFile) -> str:
    """A SELECT of the file's own columns (partition folders are not read as columns)."""
    path = quote_literal(str(file.path))
    readers = {
        "parquet": f"read_parquet({path}, hive_partitioning = false)",
        "csv": f"read_csv_auto({path}, hive_partitioning = false)",
        "json": f"read_json_auto({path}, format = 'newline_delimited', hive_partitioning = false)",
    }
    return f"SELECT * FROM {readers[file.format]}"


def converted_sql(con: duckdb.DuckDBPyConnection, file: SourceFile) -> str:
    """The SELECT whose result is written as the Parquet copy of a CSV or JSON file."""
    return lake_select(con, reader_sql(file))


def file_columns(
    con: duckdb.DuckDBPyConnection, file: SourceFile
) -> list[tuple[str, PrimitiveType]]:
    """The file's columns with their Iceberg types; UnreadableFileError says why not."""
    import duckdb

    sql = reader_sql(file) if file.format == "parquet" else None
    try:
        described = con.execute(f"DESCRIBE {sql or converted_sql(con, file)}").fetchall()
    except duckdb.Error as exc:
        raise UnreadableFileError(
            f"cannot be read as {file.format}: {str(exc).splitlines()[0]}"
        ) from exc
    columns = []
    for name, kind, *_ in described:
        field_type = iceberg_type(str(kind))
        if field_type is None:
            raise UnreadableFileError(f"column {name} has type {kind}, which the lake cannot store")
        columns.append((str(name), field_type))
    return columns


def partition_types(
    con: duckdb.DuckDBPyConnection, partitions: set[Partition], scratch: Path
) -> dict[str, str]:
    """The DuckDB type of each partition key, as the query engine reads the folders' values.

    DuckDB types ``key=value`` folders by looking at all their values; the same folders,
    made empty under ``scratch``, give the same types.
    """
    paths = []
    for index, partition in enumerate(sorted(partitions)):
        folder = scratch.joinpath(*(f"{key}={value}" for key, value in partition))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.csv").write_text("_sluice_dummy\n1\n", encoding="utf-8")
        paths.append(quote_literal(str(folder / f"{index}.csv")))
    if not paths:
        return {}
    described = con.execute(
        f"DESCRIBE SELECT * EXCLUDE ({quote_ident('_sluice_dummy')}) FROM "
        f"read_csv([{', '.join(paths)}], hive_partitioning = true, union_by_name = true)"
    ).fetchall()
    return {str(name): str(kind) for name, kind, *_ in described}


def partition_value(con: duckdb.DuckDBPyConnection, value: str, duckdb_type: str) -> object:
    """A partition folder's value as the Python value of its column type (None if it is not)."""
    row = con.execute(f"SELECT TRY_CAST({quote_literal(value)} AS {duckdb_type})").fetchone()
    return row[0] if row else None

"""A table's current Iceberg metadata, read without pyiceberg.

Importing pyiceberg's SQL catalog (with SQLAlchemy) costs about 0.4 s. A job run only needs
the raw tables' schemas to plan, so for the default lake (a SQLite catalog and a local
warehouse) it reads them directly: the catalog row with the standard library's sqlite3 and
the metadata file with ``json`` (both are fixed by the Iceberg spec). The catalog is then
opened in the background while the source is being read. Anything else (another catalog, an
S3 warehouse, compressed metadata, nested types) is left to pyiceberg: ``None`` from
``reader_for`` or ``UnreadableMetadataError`` from ``read`` says so.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from sluice.core import TableName

CATALOG_NAME = "sluice"


class UnreadableMetadataError(Exception):
    """This table's metadata needs pyiceberg to be read."""


@dataclass(frozen=True)
class CurrentMetadata:
    """What a table's current metadata says: its columns (name, Iceberg type), the current
    snapshot's id and summary properties, and the table properties."""

    columns: tuple[tuple[str, str], ...]
    snapshot_id: int | None
    summary: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MetadataReader:
    """Reads tables' current metadata from a SQLite catalog file on this machine."""

    catalog_file: Path

    def read(self, table: TableName) -> CurrentMetadata | None:
        """The table's current metadata; None when the table does not exist.

        Raises ``UnreadableMetadataError`` when only pyiceberg can read it.
        """
        location = self.metadata_location(table)
        if location is None:
            return None
        path = local_path(location)
        if path is None or not location.endswith(".metadata.json"):
            raise UnreadableMetadataError(location)
        try:
            document = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise UnreadableMetadataError(f"{location}: {exc}") from exc
        return parse_metadata(document)

    def metadata_location(self, table: TableName) -> str | None:
        """The location of the table's current metadata file the catalog row names; None
        when the table does not exist."""
        if not self.catalog_file.is_file():
            return None
        try:
            with closing(sqlite3.connect(f"{self.catalog_file.as_uri()}?mode=ro", uri=True)) as con:
                row = con.execute(
                    "SELECT metadata_location FROM iceberg_tables "
                    "WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?",
                    (CATALOG_NAME, table.database, table.name),
                ).fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise UnreadableMetadataError(str(exc)) from exc
        if row is None:
            return None
        if not row[0]:
            raise UnreadableMetadataError(f"{table} has no metadata location")
        return str(row[0])


def local_path(location: str) -> Path | None:
    """The file a ``file:`` location names; None for any other scheme.

    >>> local_path("file:///lake/raw.db/orders/metadata/00001-a%20b.metadata.json")
    PosixPath('/lake/raw.db/orders/metadata/00001-a b.metadata.json')
    """
    if not location.startswith("file:"):
        return None
    return Path(unquote(urlparse(location).path))


def reader_for(catalog_uri: str, *, local_warehouse: bool) -> MetadataReader | None:
    """A reader for a ``sqlite:////abs/path`` catalog over a local warehouse, else None."""
    if not local_warehouse or not catalog_uri.startswith("sqlite:////"):
        return None
    path = catalog_uri.removeprefix("sqlite:///")
    if "?" in path or path.endswith(":memory:"):
        return None
    return MetadataReader(Path(path))


def parse_metadata(document: dict[str, Any]) -> CurrentMetadata:
    """The current schema, snapshot and properties of an Iceberg table metadata document.

    >>> current = parse_metadata({
    ...     "current-schema-id": 1,
    ...     "schemas": [{"schema-id": 1, "fields": [{"id": 1, "name": "n", "type": "long"}]}],
    ...     "current-snapshot-id": 7,
    ...     "snapshots": [{"snapshot-id": 7, "summary": {"operation": "append", "k": "v"}}],
    ...     "properties": {"p": "q"},
    ... })
    >>> current.columns, current.snapshot_id, current.summary, current.properties
    ((('n', 'long'),), 7, {'k': 'v'}, {'p': 'q'})
    """
    schema_id = document.get("current-schema-id")
    schemas = document.get("schemas") or [document.get("schema")]
    schema = next((s for s in schemas if s and s.get("schema-id") == schema_id), None)
    if schema is None:
        schema = schemas[0] if len(schemas) == 1 and schemas[0] else None
    if schema is None:
        raise UnreadableMetadataError(f"no schema {schema_id}")
    columns = []
    for column in schema.get("fields", []):
        if not isinstance(column.get("type"), str):
            raise UnreadableMetadataError(f"column {column.get('name')} has a nested type")
        columns.append((str(column["name"]), str(column["type"])))
    snapshot_id = document.get("current-snapshot-id")
    if snapshot_id is None or snapshot_id == -1:
        snapshot_id = None
    summary: dict[str, str] = {}
    if snapshot_id is not None:
        snapshot = next(
            (s for s in document.get("snapshots", []) if s.get("snapshot-id") == snapshot_id),
            None,
        )
        if snapshot is None:
            raise UnreadableMetadataError(f"no snapshot {snapshot_id}")
        summary = {k: str(v) for k, v in (snapshot.get("summary") or {}).items()}
        summary.pop("operation", None)
    properties = {k: str(v) for k, v in (document.get("properties") or {}).items()}
    return CurrentMetadata(tuple(columns), snapshot_id, summary, properties)

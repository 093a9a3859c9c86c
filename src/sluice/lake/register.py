"""Register Parquet files that already exist as an Iceberg table's data, without rewriting them.

This is pyiceberg's ``add_files`` with the statistics DuckDB read from each footer, and with
partition values given by the caller (Hive-style folders), since the files need not hold
their partition columns. One Iceberg commit per table: schema evolution, table properties,
the files added and the files removed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sluice.core import ParquetFooter, TableCommit, TableName
from sluice.errors import LakeError
from sluice.lake.datafiles import data_file

if TYPE_CHECKING:
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema

    from sluice.lake.catalog import Lake

CRAWL_ID_PROPERTY = "sluice.crawl-id"
_PARTITION_FIELD_BASE = 1000


@dataclass(frozen=True)
class FileToAdd:
    """A Parquet file to register, its footer, and its partition values (in spec order)."""

    footer: ParquetFooter
    partition: tuple[object, ...] = ()


def register_files(
    lake: Lake,
    table: TableName,
    *,
    schema: Schema,
    partition_columns: Sequence[str],
    add: Sequence[FileToAdd],
    remove: Sequence[str],
    properties: Mapping[str, str],
    crawl_id: str,
) -> TableCommit:
    """Create or update ``table`` so that it reads ``add`` and no longer reads ``remove``.

    A new table is partitioned by identity on ``partition_columns``; columns of ``schema``
    the table lacks are added (union by name).
    """
    from pyiceberg.exceptions import NoSuchTableError
    from pyiceberg.table import TableProperties
    from pyiceberg.typedef import Record

    lake.ensure_owned([table])
    ident = (table.database, table.name)
    try:
        try:
            loaded = lake.catalog.load_table(ident)
        except NoSuchTableError:
            loaded = lake.catalog.create_table(
                ident,
                schema=schema,
                partition_spec=_identity_spec(schema, partition_columns),
                location=lake.table_location(table),
            )
        live = {task.file.file_path: task.file for task in loaded.scan().plan_files()}
        with loaded.transaction() as tx:
            current = {field.name for field in loaded.schema().fields}
            if any(name not in current for name in schema.column_names):
                with tx.update_schema() as update:
                    update.union_by_name(schema)
            mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
            tx.set_properties({**properties, TableProperties.DEFAULT_NAME_MAPPING: mapping})
            if add or remove:
                snapshot = tx.update_snapshot(snapshot_properties={CRAWL_ID_PROPERTY: crawl_id})
                producer = snapshot.overwrite() if remove else snapshot.fast_append()
                with producer as snap:
                    for path in remove:
                        snap.delete_data_file(live[path])
                    for item in add:
                        entry = data_file(
                            item.footer, tx.table_metadata, partition=Record(*item.partition)
                        )
                        if entry is None:
                            raise LakeError(f"Cannot read the statistics of {item.footer.path}.")
                        snap.append_data_file(entry)
    except LakeError:
        raise
    except Exception as exc:
        raise LakeError(
            f"Registering files in {table} failed: {exc}",
            hint="The table still reads its previous snapshot; fix the cause and crawl again.",
        ) from exc
    return current_commit(lake, table)


def current_commit(lake: Lake, table: TableName) -> TableCommit:
    """The table's current snapshot as a commit (what a publication records)."""
    loaded = lake.load(table)
    snapshot = loaded.current_snapshot()
    if snapshot is None:
        raise LakeError(f"{table} has no snapshot to publish.")
    files = [task.file for task in loaded.scan().plan_files()]
    return TableCommit(
        table=table,
        snapshot_id=snapshot.snapshot_id,
        metadata_location=loaded.metadata_location,
        files=tuple(f.file_path for f in files),
        rows=sum(f.record_count for f in files),
    )


def _identity_spec(schema: Schema, columns: Sequence[str]) -> PartitionSpec:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform

    return PartitionSpec(
        *(
            PartitionField(
                source_id=schema.find_field(name).field_id,
                field_id=_PARTITION_FIELD_BASE + i,
                transform=IdentityTransform(),
                name=name,
            )
            for i, name in enumerate(columns)
        )
    )

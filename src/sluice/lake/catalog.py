"""The lake: Iceberg tables in a pyiceberg SQL catalog, data and metadata in the warehouse.

DuckDB writes the Parquet files; this module commits them. A commit replaces a table's
rows with exactly the given files, atomically: readers see the old snapshot or the new one.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import shutil
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from sluice.config import redact
from sluice.core import Cursor, RawSchema, TableCommit, TableName, WrittenTable
from sluice.errors import LakeError, LakeUnavailableError, NotFoundError, did_you_mean
from sluice.lake.datafiles import data_file, iceberg_schema
from sluice.lake.metadata import UnreadableMetadataError, local_path, reader_for
from sluice.lock import ProcessLock
from sluice.observe.failpoints import failpoint

if TYPE_CHECKING:
    import duckdb
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.table import Table

    from sluice.lake.s3 import S3Warehouse

log = logging.getLogger("sluice.lake")
RUN_ID_PROPERTY = "sluice.run-id"
CURSOR_PROPERTY_PREFIX = "sluice.cursor."
CURSOR_RESET_PROPERTY = "sluice.cursor-reset"
PRIMARY_KEY_PROPERTY = "sluice.primary-key"
DRIFT_ACCEPTED_PROPERTY = "sluice.drift-accepted"
COMMIT_ATTEMPTS = 5
FILE_RUNS_PROPERTY = "sluice.file-runs"  # runs whose files a snapshot keeps beside its own
FILES_PROPERTY = "sluice.files"  # the names of every data file a snapshot reads
PY_IO_IMPL = "py-io-impl"
FILE_IO = "sluice.lake.localio.LocalFileIO"  # see that module for why


@dataclass(frozen=True)
class ColumnInfo:
    """A column of a lake table."""

    name: str
    type: str
    required: bool


@dataclass(frozen=True)
class SnapshotInfo:
    """One entry of a table's snapshot history."""

    snapshot_id: int
    committed_at: datetime
    operation: str
    rows: int
    run_id: str | None


@dataclass(frozen=True)
class TableInfo:
    """A lake table as the catalog sees it now."""

    table: TableName
    rows: int
    files: int
    snapshot_id: int | None
    location: str


class RecordedState(NamedTuple):
    """A table's current snapshot id, its summary properties, the table's properties and
    the snapshot's data files (no snapshot and no files when the table does not exist)."""

    snapshot_id: int | None
    summary: dict[str, str]
    properties: dict[str, str]
    files: tuple[str, ...]


@dataclass(frozen=True)
class TableDescription:
    """Columns, size and snapshot history of a lake table."""

    info: TableInfo
    columns: tuple[ColumnInfo, ...]
    snapshots: tuple[SnapshotInfo, ...]


_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
CONNECT_TIMEOUT_SECONDS = 10


def sqlalchemy_url(uri: str, *, root: Path) -> str:
    """The SQLAlchemy URL of a catalog URL: a relative ``sqlite:///`` path resolved against
    the project root; a PostgreSQL URL driven by psycopg (3), with a connect timeout.

    >>> sqlalchemy_url("sqlite:///.sluice/catalog.db", root=Path("/p"))
    'sqlite:////p/.sluice/catalog.db'
    >>> sqlalchemy_url("postgresql://me@db:5432/lake", root=Path("/p"))
    'postgresql+psycopg://me@db:5432/lake?connect_timeout=10'
    """
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{root / uri.removeprefix('sqlite:///')}"
    for scheme in _POSTGRES_SCHEMES:
        if uri.startswith(scheme):
            url = "postgresql+psycopg://" + uri.removeprefix(scheme)
            if "connect_timeout=" not in url:
                url += f"{'&' if '?' in url else '?'}connect_timeout={CONNECT_TIMEOUT_SECONDS}"
            return url
    return uri


def catalog_unreachable(url: str, exc: Exception) -> LakeUnavailableError:
    """The error for a catalog database that cannot be reached (password never shown)."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return LakeUnavailableError(
        f"Cannot reach the catalog database at {redact(url)}: "
        f"{reason[0] if reason else type(exc).__name__}",
        hint="Start the database server, or fix catalog.url in sluice.yml "
        "(and the environment variables it references).",
    )


class Lake:
    """The project's Iceberg catalog and warehouse.

    ``warehouse`` is the local folder data files are written to; with ``s3`` (an ``s3://``
    warehouse) it is only a staging folder, and commits upload the files to S3.
    """

    def __init__(
        self,
        *,
        catalog_uri: str,
        warehouse: Path,
        keep_snapshots: int = 10,
        s3: S3Warehouse | None = None,
    ) -> None:
        self.catalog_uri = catalog_uri
        self.warehouse = warehouse
        self.keep_snapshots = keep_snapshots
        self.s3 = s3
        self._catalog: SqlCatalog | None = None
        self._opening = threading.Lock()
        self._metadata = reader_for(catalog_uri, local_warehouse=s3 is None)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its settings; unpickled as one shared ``Lake`` per settings in the
        receiving process, so a catalog process opens the catalog once."""
        return _shared_lake, (self.catalog_uri, self.warehouse, self.keep_snapshots, self.s3)

    @property
    def catalog(self) -> SqlCatalog:
        """The pyiceberg SQL catalog (opened once, on first use from any thread; creates the
        warehouse folder)."""
        with self._opening:
            if self._catalog is None:
                self.warehouse.mkdir(parents=True, exist_ok=True)
                self._catalog = self.open_catalog()
            return self._catalog

    def open_catalog(self) -> SqlCatalog:
        """A new connection to the catalog, creating its tables but not the warehouse."""
        from pyiceberg.catalog.sql import SqlCatalog

        if self.catalog_uri.startswith("sqlite:////"):
            Path(self.catalog_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        from sqlalchemy.exc import OperationalError

        try:
            catalog = SqlCatalog(
                "sluice",
                uri=self.catalog_uri,
                warehouse=self.s3.uri if self.s3 else self.warehouse.resolve().as_uri(),
                **(self.s3.iceberg_properties() if self.s3 else {PY_IO_IMPL: FILE_IO}),
            )
        except OperationalError as exc:
            raise catalog_unreachable(self.catalog_uri, exc) from exc
        except Exception as exc:
            raise LakeError(
                f"Cannot open the Iceberg catalog at {redact(self.catalog_uri)}: {exc}"
            ) from exc
        # A server's pooled connections are closed with the catalog, not left to the GC.
        weakref.finalize(catalog, catalog.engine.dispose)
        return catalog

    def table_dir(self, table: TableName) -> Path:
        """The local folder of a table's data and metadata (pyiceberg's default layout); for
        an S3 warehouse, where its data files are staged before they are uploaded."""
        return self.warehouse.resolve() / f"{table.database}.db" / table.name

    def merge_lock(self, table: TableName) -> ProcessLock:
        """The lock a run holds on an incremental table from reading its cursor until it has
        committed the merged rows, so that two runs never merge from the same cursor."""
        return ProcessLock(self.table_dir(table) / "merge.lock", what=f"merge into {table}")

    def table_location(self, table: TableName) -> str:
        """The URI of a table's data and metadata: in S3, or ``table_dir``."""
        if self.s3:
            return self.s3.location(f"{table.database}.db", table.name)
        return self.table_dir(table).as_uri()

    def prepare_duckdb(self, con: duckdb.DuckDBPyConnection) -> None:
        """Let a DuckDB connection read the warehouse (for S3: httpfs and the credentials)."""
        if self.s3:
            from sluice.duck import extension_path

            con.execute(f"LOAD '{extension_path('httpfs')}'")
            self.s3.attach(con)

    def store_file(self, table: TableName, local: Path) -> str:
        """Where readers find a file written below the table's ``data_dir``: the file itself,
        or, for an S3 warehouse, its uploaded copy in the table's S3 data folder."""
        if not self.s3:
            return str(local)
        relative = local.relative_to(self.data_dir(table)).as_posix()
        uri = f"{self.table_location(table)}/data/{relative}"
        self.s3.upload(local, uri)
        return uri

    def files_exist(self, paths: Sequence[str]) -> bool:
        """True when every data file (a local path, or an object of an S3 warehouse) exists."""
        remote = [p for p in paths if p.startswith("s3://")]
        if remote and (self.s3 is None or not self.s3.exist(remote)):
            return False
        return all(Path(p).is_file() for p in paths if not p.startswith("s3://"))

    def remove_table_data(self, table: TableName) -> None:
        """Delete every data and metadata file of a table (staged ones too)."""
        shutil.rmtree(self.table_dir(table), ignore_errors=True)
        if self.s3:
            self.s3.delete_folder(self.table_location(table))

    def data_dir(self, table: TableName) -> Path:
        """The folder Parquet data files of a table are written to."""
        return self.table_dir(table) / "data"

    def prepare(self, databases: set[str]) -> None:
        """Open the catalog and create the databases a run writes to."""
        for database in sorted(databases):
            self.ensure_database(database)

    def open_if_present(self) -> None:
        """Open the catalog now when its database already holds it, so that a later commit
        need not; nothing is created or written."""
        if self.catalog_initialized():
            _ = self.catalog

    def ensure_database(self, database: str) -> None:
        """Create a catalog namespace if it does not exist yet."""
        from pyiceberg.exceptions import NamespaceAlreadyExistsError

        with contextlib.suppress(NamespaceAlreadyExistsError):
            self.catalog.create_namespace(database)

    def commit(self, written: WrittenTable, *, run_id: str) -> TableCommit:
        """Replace the table's rows with ``written.all_files`` in one Iceberg commit, with
        ``written.summary`` in the snapshot summary.

        New columns are added to the table's schema; a table that does not exist yet is
        created. A merge that keeps files is refused when the table no longer has them.
        """
        return self._commit(written, run_id=run_id, extra=dict(written.summary))

    def summary(self, table: TableName) -> tuple[dict[str, str], tuple[str, ...]]:
        """The summary properties of the table's current snapshot and its data files (both
        empty when the table does not exist yet)."""
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        try:
            loaded = self.catalog.load_table((table.database, table.name))
        except (NoSuchTableError, NoSuchNamespaceError):
            return {}, ()
        snapshot = loaded.current_snapshot()
        if snapshot is None:
            return {}, ()
        properties = dict(snapshot.summary.additional_properties) if snapshot.summary else {}
        files = tuple(
            task.file.file_path
            for task in loaded.scan(snapshot_id=snapshot.snapshot_id).plan_files()
        )
        return properties, files

    def commit_incremental(
        self, written: WrittenTable, *, run_id: str, primary_key: Sequence[str] = ()
    ) -> TableCommit:
        """Replace the table's rows with the merged ``written.files`` and record
        ``written.cursor`` (property ``sluice.cursor.<column>``) and the ``primary_key`` merged
        by (``sluice.primary-key``) in the same snapshot.

        Refused when the table has moved since the snapshot the files were merged from.
        """
        if written.cursor is None:
            raise LakeError(f"Incremental commit of {written.table} has no cursor.")
        cursor = written.cursor
        properties = {} if cursor.value is None else {cursor_property(cursor.column): cursor.value}
        if primary_key:
            properties[PRIMARY_KEY_PROPERTY] = ",".join(primary_key)
        return self._commit(written, run_id=run_id, extra=properties, base=cursor.snapshot_id)

    def recorded_state(self, table: TableName) -> RecordedState | None:
        """The table's current state read without pyiceberg (see ``sluice.lake.metadata``)
        from what Sluice records in the snapshot summary; None when only the catalog can
        tell (then ask ``cursor`` or ``summary``)."""
        if self._metadata is None:
            return None
        try:
            current = self._metadata.read(table)
        except UnreadableMetadataError:
            return None
        if current is None or current.snapshot_id is None:
            return RecordedState(None, {}, {}, ())
        names = current.summary.get(FILES_PROPERTY)
        if names is None:
            return None
        folder = self.data_dir(table)
        files = tuple(str(folder / name) for name in names.split(",") if name)
        return RecordedState(current.snapshot_id, current.summary, current.properties, files)

    def recorded_cursor(
        self, table: TableName, column: str
    ) -> tuple[Cursor, tuple[str, ...]] | None:
        """``cursor`` without pyiceberg, when ``recorded_state`` can tell; else None."""
        state = self.recorded_state(table)
        if state is None:
            return None
        value = state.summary.get(cursor_property(column))
        reset = state.properties.get(CURSOR_RESET_PROPERTY) == str(state.snapshot_id)
        if state.snapshot_id is None or reset:
            value = None
        return Cursor(column, value, state.snapshot_id), state.files

    def cursor(self, table: TableName, column: str) -> tuple[Cursor, tuple[str, ...]]:
        """The cursor committed with the table's current snapshot, and that snapshot's files.

        The value is None (read everything) when the table or the property does not exist
        or the cursor was reset since.
        """
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        try:
            loaded = self.catalog.load_table((table.database, table.name))
        except (NoSuchTableError, NoSuchNamespaceError):
            return Cursor(column, None), ()
        snapshot = loaded.current_snapshot()
        if snapshot is None:
            return Cursor(column, None), ()
        value = snapshot.summary.get(cursor_property(column)) if snapshot.summary else None
        if loaded.properties.get(CURSOR_RESET_PROPERTY) == str(snapshot.snapshot_id):
            value = None
        files = tuple(
            task.file.file_path
            for task in loaded.scan(snapshot_id=snapshot.snapshot_id).plan_files()
        )
        return Cursor(column, value, snapshot.snapshot_id), files

    def ensure_owned(self, tables: Sequence[TableName]) -> None:
        """Refuse to write when one of ``tables`` keeps its files outside this warehouse.

        The catalog records absolute locations, so a project folder that was copied still
        names the original's tables: a run would write their metadata files and, as old
        versions expire, delete the original's. A moved folder names files that are gone.
        Checked for a SQLite catalog over a local warehouse (the default), the case where
        the catalog travels with the folder.
        """
        if self._metadata is None:
            return
        home = self.warehouse.resolve()
        for table in tables:
            try:
                location = self._metadata.metadata_location(table)
            except UnreadableMetadataError:
                continue
            path = local_path(location) if location else None
            if path is not None and not path.is_relative_to(home):
                raise LakeError(
                    f"Table {table} keeps its files in {path.parent.parent}, outside this "
                    f"project's warehouse {home}: the project folder was copied or moved, and "
                    "a run would change the other folder's tables.",
                    hint="Run the job in the original folder, or start this copy afresh: "
                    f"delete {self._metadata.catalog_file} and {home}, then rerun the job.",
                )

    def raw_schema(self, table: TableName) -> RawSchema | None:
        """The table's columns (Iceberg types), recorded primary key and whether a schema
        change was accepted; None when the table does not exist yet.

        Read without opening the catalog where ``sluice.lake.metadata`` can.
        """
        if self._metadata is not None:
            with contextlib.suppress(UnreadableMetadataError):
                current = self._metadata.read(table)
                if current is None:
                    return None
                key = current.summary.get(PRIMARY_KEY_PROPERTY)
                return RawSchema(
                    columns=current.columns,
                    primary_key=tuple(key.split(",")) if key else None,
                    accepted=DRIFT_ACCEPTED_PROPERTY in current.properties,
                )
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        try:
            loaded = self.catalog.load_table((table.database, table.name))
        except (NoSuchTableError, NoSuchNamespaceError):
            return None
        snapshot = loaded.current_snapshot()
        key = snapshot.summary.get(PRIMARY_KEY_PROPERTY) if snapshot and snapshot.summary else None
        return RawSchema(
            columns=tuple((f.name, str(f.field_type)) for f in loaded.schema().fields),
            primary_key=tuple(key.split(",")) if key else None,
            accepted=DRIFT_ACCEPTED_PROPERTY in loaded.properties,
        )

    def accept_drift(self, table: TableName) -> None:
        """Let the next commit of ``table`` replace its schema with the written files' one
        (incompatible type changes, dropped columns removed); an incremental table's cursor is
        reset so that run reads every row."""
        self.ensure_owned([table])
        loaded = self.load(table)
        snapshot = loaded.current_snapshot()
        marker = str(snapshot.snapshot_id) if snapshot else "none"
        try:
            with loaded.transaction() as tx:
                tx.set_properties({DRIFT_ACCEPTED_PROPERTY: marker, CURSOR_RESET_PROPERTY: marker})
        except Exception as exc:
            raise LakeError(f"Recording the accepted schema of {table} failed: {exc}") from exc

    def reset_cursor(self, table: TableName) -> dict[str, str]:
        """Make the next incremental run of ``table`` read everything; return the cursors
        the current snapshot had (column to value)."""
        self.ensure_owned([table])
        loaded = self.load(table)
        snapshot = loaded.current_snapshot()
        if snapshot is None:
            return {}
        summary = snapshot.summary.additional_properties if snapshot.summary else {}
        cursors = {
            key.removeprefix(CURSOR_PROPERTY_PREFIX): str(value)
            for key, value in summary.items()
            if key.startswith(CURSOR_PROPERTY_PREFIX)
        }
        try:
            with loaded.transaction() as tx:
                tx.set_properties({CURSOR_RESET_PROPERTY: str(snapshot.snapshot_id)})
        except Exception as exc:
            raise LakeError(f"Resetting the cursor of {table} failed: {exc}") from exc
        return cursors

    def _commit(
        self,
        written: WrittenTable,
        *,
        run_id: str,
        extra: dict[str, str] | None = None,
        base: int | None = None,
    ) -> TableCommit:
        from pyiceberg.exceptions import (
            CommitFailedException,
            TableAlreadyExistsError,
            ValidationException,
        )

        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                return self._commit_once(written, run_id=run_id, extra=extra, base=base)
            except (CommitFailedException, TableAlreadyExistsError, ValidationException) as exc:
                # Another run committed (or created) the table meanwhile. A full load replaces every
                # row, so it is committed again over the new snapshot; an incremental merge
                # was made from the old one and is refused by _commit_once on the next try.
                if attempt == COMMIT_ATTEMPTS:
                    raise LakeError(
                        f"Commit of {written.table} failed {attempt} times, as other runs "
                        f"committed it meanwhile: {exc}",
                        hint="The table still reads its previous snapshot; rerun the job.",
                    ) from exc
                log.info("commit of %s raced another run; committing again", written.table)
        raise AssertionError("unreachable")

    def _commit_once(
        self,
        written: WrittenTable,
        *,
        run_id: str,
        extra: dict[str, str] | None,
        base: int | None,
    ) -> TableCommit:
        from pyiceberg.exceptions import (
            CommitFailedException,
            NoSuchTableError,
            TableAlreadyExistsError,
            ValidationException,
        )
        from pyiceberg.table import TableProperties
        from pyiceberg.table.update.snapshot import ExpireSnapshots

        ident = (written.table.database, written.table.name)
        properties = {RUN_ID_PROPERTY: run_id, **(extra or {})}
        if written.kept:
            runs = sorted({Path(f).stem for f in written.kept} - {run_id})
            properties[FILE_RUNS_PROPERTY] = ",".join(runs)
        if all(Path(f).parent == self.data_dir(written.table) for f in written.all_files):
            properties[FILES_PROPERTY] = ",".join(Path(f).name for f in written.all_files)
        if self.s3:
            written = self._upload(written, self.s3)
        try:
            schema = _schema(written)
            try:
                table = self.catalog.load_table(ident)
                old_files = [task.file for task in table.scan().plan_files()]
            except NoSuchTableError:
                table = self._create(written.table, schema)
                old_files = []
            current = table.current_snapshot()
            live = {f.file_path for f in old_files}
            if (
                written.cursor is not None and base != (current.snapshot_id if current else None)
            ) or not live.issuperset(written.kept):
                raise LakeError(
                    f"{written.table} changed while this run merged new rows into it.",
                    hint="Nothing was committed; rerun the job.",
                )
            replaced = [f for f in old_files if f.file_path not in written.kept]
            rebuild = DRIFT_ACCEPTED_PROPERTY in table.properties
            with _transaction(table) as tx:
                done = [DRIFT_ACCEPTED_PROPERTY] if rebuild else []
                if written.cursor is not None and CURSOR_RESET_PROPERTY in table.properties:
                    done.append(CURSOR_RESET_PROPERTY)
                if done:
                    tx.remove_properties(*done)
                retention = str(self.keep_snapshots)
                if (
                    table.properties.get(TableProperties.METADATA_PREVIOUS_VERSIONS_MAX)
                    != retention
                ):
                    mapping = table.schema().name_mapping.model_dump_json()
                    tx.set_properties(
                        {
                            TableProperties.DEFAULT_NAME_MAPPING: mapping,
                            TableProperties.METADATA_PREVIOUS_VERSIONS_MAX: retention,
                            TableProperties.METADATA_DELETE_AFTER_COMMIT_ENABLED: "true",
                        }
                    )
                if schema is not None and (rebuild or _schema_changed(table, schema)):
                    with tx.update_schema(allow_incompatible_changes=rebuild) as update:
                        if rebuild:
                            _replace_columns(update, table, schema)
                        update.union_by_name(schema)
                update = tx.update_snapshot(snapshot_properties=properties)
                if not replaced:
                    producer = update.fast_append()
                elif written.kept:
                    producer = update.overwrite()
                else:
                    producer = _replace_all(tx, properties)
                with producer as snap:
                    for old in replaced:
                        snap.delete_data_file(old)
                    for entry in _data_files(table.io, tx.table_metadata, written):
                        snap.append_data_file(entry)
                expired = _beyond_history(tx.table_metadata.snapshots, self.keep_snapshots)
                if expired:
                    with ExpireSnapshots(transaction=tx) as expire:
                        expire.by_ids([s.snapshot_id for s in expired])
                failpoint(f"in-commit:{written.table}")
        except (LakeError, CommitFailedException, TableAlreadyExistsError, ValidationException):
            raise
        except Exception as exc:
            raise LakeError(
                f"Commit of {written.table} failed: {exc}",
                hint="The table still reads its previous snapshot; fix the cause and rerun.",
            ) from exc
        if expired:
            _remove_expired_metadata(table, expired)
        snapshot = table.current_snapshot()
        assert snapshot is not None
        return TableCommit(
            table=written.table,
            snapshot_id=snapshot.snapshot_id,
            metadata_location=table.metadata_location,
            files=written.all_files,
            rows=written.rows,
            retained_runs=_run_ids(table.snapshots()),
        )

    def _create(self, name: TableName, schema: Any) -> Table:
        return self.catalog.create_table(
            (name.database, name.name), schema=schema, location=self.table_location(name)
        )

    def _upload(self, written: WrittenTable, s3: S3Warehouse) -> WrittenTable:
        """Upload the staged files to the table's S3 data folder; the same table, read there."""
        moved = {path: self.store_file(written.table, Path(path)) for path in written.files}
        return replace(
            written,
            files=tuple(moved.values()),
            footers=tuple(replace(f, path=moved.get(f.path, f.path)) for f in written.footers),
        )

    def remove_unreferenced(
        self, table: TableName, *, keep_runs: set[str] | frozenset[str], older_than: float
    ) -> list[str]:
        """Delete the table's run data files whose run is not in ``keep_runs``.

        ``keep_runs`` must hold the runs of the table's retained snapshots (see
        ``TableCommit.retained_runs``) and of the publications readers may still use. Only
        files named ``jr_<run id>.parquet`` last modified before ``older_than`` (a POSIX
        time) are candidates, so files a running job is writing are never touched.
        Returns the deleted paths.
        """
        keep = keep_runs
        removed = []
        for path in self.data_dir(table).glob("jr_*.parquet"):
            staged = self.s3 is not None  # uploaded when committed: no reader uses it here
            if (staged or path.stem not in keep) and path.stat().st_mtime < older_than:
                path.unlink(missing_ok=True)
                removed.append(str(path))
        if self.s3:
            for uri, _, modified_ns in self.s3.files(f"{self.table_location(table)}/data"):
                name = uri.rsplit("/", 1)[-1]
                run = name.removesuffix(".parquet")
                if name.startswith("jr_") and run not in keep and modified_ns / 1e9 < older_than:
                    self.s3.delete(uri)
                    removed.append(uri)
        return removed

    def load(self, table: TableName) -> Table:
        """Load a table, or raise NotFoundError naming the tables that do exist."""
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        try:
            if not self._catalog_exists():
                raise NoSuchTableError(str(table))
            return self.catalog.load_table((table.database, table.name))
        except (NoSuchTableError, NoSuchNamespaceError) as exc:
            known = [str(t.table) for t in self.tables()]
            raise NotFoundError(
                f"Table {table} does not exist.{did_you_mean(str(table), known)}",
                hint="List tables with 'sluice catalog tables'.",
            ) from exc

    def databases(self) -> list[str]:
        """Namespaces in the catalog."""
        if not self._catalog_exists():
            return []
        return sorted(".".join(ns) for ns in self.catalog.list_namespaces())

    def tables(self, database: str | None = None) -> list[TableInfo]:
        """Tables in one database, or in all of them."""
        from pyiceberg.exceptions import NoSuchNamespaceError

        databases = self.databases()
        if database is not None:
            if database not in databases:
                raise NotFoundError(
                    f"Database '{database}' does not exist.{did_you_mean(database, databases)}",
                    hint=f"Databases: {', '.join(databases) or 'none yet; run a job first'}.",
                )
            databases = [database]
        infos = []
        for db in databases:
            try:
                idents = self.catalog.list_tables(db)
            except NoSuchNamespaceError:
                continue
            for ident in sorted(idents):
                infos.append(_table_info(TableName(db, ident[-1]), self.catalog.load_table(ident)))
        return infos

    def describe(self, table: TableName) -> TableDescription:
        """Columns, row count and snapshot history of a table."""
        loaded = self.load(table)
        columns = tuple(
            ColumnInfo(f.name, str(f.field_type), f.required) for f in loaded.schema().fields
        )
        snapshots = tuple(
            SnapshotInfo(
                snapshot_id=s.snapshot_id,
                committed_at=datetime.fromtimestamp(s.timestamp_ms / 1000, tz=UTC),
                operation=str(s.summary.operation.value) if s.summary else "",
                rows=int(s.summary.get("total-records") or 0) if s.summary else 0,
                run_id=s.summary.get(RUN_ID_PROPERTY) if s.summary else None,
            )
            for s in loaded.snapshots()
        )
        return TableDescription(_table_info(table, loaded), columns, snapshots)

    def current_files(self, table: TableName) -> tuple[str, ...]:
        """Data files of the table's current snapshot."""
        return tuple(task.file.file_path for task in self.load(table).scan().plan_files())

    def catalog_initialized(self) -> bool:
        """True when the catalog database holds the Iceberg catalog's tables (only reads)."""
        if self.catalog_uri.startswith("sqlite:///"):
            return self._catalog_exists()
        import sqlalchemy as sa

        engine = sa.create_engine(self.catalog_uri, poolclass=sa.pool.NullPool)
        try:
            return sa.inspect(engine).has_table("iceberg_tables")
        except sa.exc.OperationalError as exc:
            raise catalog_unreachable(self.catalog_uri, exc) from exc
        finally:
            engine.dispose()

    def _catalog_exists(self) -> bool:
        if self.catalog_uri.startswith("sqlite:////"):
            return Path(self.catalog_uri.removeprefix("sqlite:///")).is_file()
        return True


@functools.cache
def _shared_lake(
    catalog_uri: str, warehouse: Path, keep_snapshots: int, s3: S3Warehouse | None
) -> Lake:
    return Lake(catalog_uri=catalog_uri, warehouse=warehouse, keep_snapshots=keep_snapshots, s3=s3)


def cursor_property(column: str) -> str:
    """The snapshot summary property holding a table's cursor on ``column``.

    >>> cursor_property("orderNumber")
    'sluice.cursor.orderNumber'
    """
    return f"{CURSOR_PROPERTY_PREFIX}{column}"


def _transaction(table: Table) -> Any:
    """Start a pyiceberg transaction on ``table`` (see ``_cached_transaction_class``)."""
    return _cached_transaction_class()(table)


@functools.cache
def _cached_transaction_class() -> type:
    """A pyiceberg transaction that builds its pending metadata once per staged change.

    pyiceberg's ``Transaction.table_metadata`` re-applies every staged update and deep-copies
    the whole table metadata on each access, some twenty times per commit; that was half the
    CPU of a commit. The metadata models are frozen, so the result can be reused until the
    next update is staged.
    """
    from pyiceberg.table import Transaction
    from pyiceberg.table.metadata import TableMetadata

    class _CachedTransaction(Transaction):
        _cache: tuple[TableMetadata, tuple[Any, ...], TableMetadata] | None = None

        @property
        def table_metadata(self) -> TableMetadata:
            base, updates = self._table.metadata, self._updates
            if self._cache is None or self._cache[0] is not base or self._cache[1] is not updates:
                self._cache = (base, updates, Transaction.table_metadata.fget(self))  # type: ignore[attr-defined]
            return self._cache[2]

    return _CachedTransaction


def _replace_all(tx: Any, properties: dict[str, str]) -> Any:
    """An OVERWRITE snapshot producer for a commit that replaces every live data file.

    pyiceberg's overwrite keeps, in every later snapshot, the manifests that only record
    deleted files, so a table replaced on every run grows one manifest per run and each
    scan and commit gets slower. When all live files are replaced, no manifest of the
    parent is needed: the new snapshot lists the added files and this commit's deletions.
    """
    from pyiceberg.table.snapshots import Operation
    from pyiceberg.table.update.snapshot import _OverwriteFiles

    class _ReplaceAllFiles(_OverwriteFiles):
        def _existing_manifests(self) -> list[Any]:
            return []

    return _ReplaceAllFiles(
        operation=Operation.OVERWRITE,
        transaction=tx,
        io=tx._table.io,
        snapshot_properties=properties,
    )


def _schema(written: WrittenTable) -> Any:
    """The Iceberg schema of the written files (from the footer DuckDB read, else pyarrow)."""
    schema = iceberg_schema(written.footers[0]) if written.footers else None
    if schema is not None or not written.files:
        return schema
    import pyarrow.parquet as pq

    return pq.read_schema(written.files[0])


def _data_files(io: Any, metadata: Any, written: WrittenTable) -> list[Any]:
    """Manifest entries for the written files, from their footers where possible."""
    footers = {footer.path: footer for footer in written.footers}
    entries = []
    for path in written.files:
        entry = data_file(footers[path], metadata) if path in footers else None
        if entry is None:
            from pyiceberg.io.pyarrow import parquet_file_to_data_file

            entry = parquet_file_to_data_file(io, metadata, path)
        entries.append(entry)
    return entries


def _run_ids(snapshots: list[Any]) -> frozenset[str]:
    """The Sluice runs that wrote the data files of these snapshots."""
    runs: set[str] = set()
    for s in snapshots:
        if s.summary and s.summary.get(RUN_ID_PROPERTY):
            runs.add(str(s.summary.get(RUN_ID_PROPERTY)))
            runs.update(r for r in (s.summary.get(FILE_RUNS_PROPERTY) or "").split(",") if r)
    return frozenset(runs)


def _in_order(snapshots: list[Any]) -> list[Any]:
    return sorted(snapshots, key=lambda s: (s.sequence_number or 0, s.timestamp_ms))


def _beyond_history(snapshots: list[Any], keep: int) -> list[Any]:
    """All but the newest ``keep`` snapshots (history stays bounded, commits fast)."""
    ordered = _in_order(snapshots)
    return ordered[:-keep] if len(ordered) > keep else []


def _remove_expired_metadata(table: Table, expired: list[Any]) -> None:
    """Delete the manifest lists and manifests that only the ``expired`` snapshots used, as
    Iceberg's snapshot expiry does (data files are ``remove_unreferenced``'s).

    Runs after the commit that expired them: a failure here leaves files behind, never a
    table that references a missing one."""
    from pyiceberg.catalog import MANIFEST, MANIFEST_LIST, delete_files

    retained = _in_order(table.snapshots())
    chain = _in_order(expired) + retained
    linear = all(b.parent_snapshot_id == a.snapshot_id for a, b in itertools.pairwise(chain))
    # A snapshot's manifests are its parent's, some rewritten, plus new ones: on one line of
    # history a manifest an expired snapshot shares with a retained one is the oldest
    # retained snapshot's too. Otherwise every retained snapshot is read.
    readers = retained[:1] if linear else retained
    try:
        used = {m.manifest_path for s in readers for m in s.manifests(table.io)}
        manifests = {m.manifest_path for s in expired for m in s.manifests(table.io)}
    except OSError as exc:
        log.warning("could not read the manifests of %s: %s", table.name(), exc)
        return
    delete_files(table.io, manifests - used, MANIFEST)
    delete_files(table.io, {s.manifest_list for s in expired}, MANIFEST_LIST)


def _schema_changed(table: Table, schema: Any) -> bool:
    """True when ``schema`` (pyiceberg's or pyarrow's) has a column the table lacks or, for
    a pyiceberg schema, a column of another type (widened: union_by_name promotes it)."""
    from pyiceberg.exceptions import ResolveError
    from pyiceberg.schema import promote

    current = {f.name: f.field_type for f in table.schema().fields}
    if hasattr(schema, "names"):
        return any(name not in current for name in schema.names)
    for field in schema.fields:
        old = current.get(field.name)
        if old is None:
            return True
        if old != field.field_type:
            try:
                promote(old, field.field_type)
            except ResolveError:
                continue
            return True
    return False


def _replace_columns(update: Any, table: Table, schema: Any) -> None:
    """Stage the deletes and type changes that make the table's columns those of ``schema``
    (pyiceberg's; of a pyarrow schema only the names; the update must allow incompatible
    changes)."""
    if hasattr(schema, "names"):
        new: dict[str, Any] = dict.fromkeys(schema.names)
    else:
        new = {f.name: f.field_type for f in schema.fields}
    for field in table.schema().fields:
        if field.name not in new:
            update.delete_column(field.name)
        elif new[field.name] not in (None, field.field_type):
            update.update_column(field.name, field_type=new[field.name])


def _table_info(name: TableName, table: Table) -> TableInfo:
    snapshot = table.current_snapshot()
    summary = snapshot.summary if snapshot and snapshot.summary else {}
    return TableInfo(
        table=name,
        rows=int(summary.get("total-records", 0) or 0),
        files=int(summary.get("total-data-files", 0) or 0),
        snapshot_id=snapshot.snapshot_id if snapshot else None,
        location=table.location(),
    )

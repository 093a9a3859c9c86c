"""Publication records: which snapshot of every table a job run produced, made visible at once.

Iceberg commits one table at a time. A job run's publish is one more record, written in a
single transaction after all its tables are committed; readers resolve tables through the
latest record, so they never mix one run's dimensions with another run's facts. The
records live beside the Iceberg catalog (same database), so a shared catalog shares them.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.config import redact
from sluice.core import TableCommit, TableName
from sluice.errors import LakeError
from sluice.lake.catalog import catalog_unreachable

if TYPE_CHECKING:
    from collections.abc import Sequence

    import sqlalchemy as sa

_REMOVED = -1  # the snapshot id of a record saying a table is no longer published


@dataclass(frozen=True)
class PublishedTable:
    """The snapshot of a table that readers use, and the Parquet files it reads."""

    table: TableName
    run_id: str
    snapshot_id: int
    metadata_location: str
    files: tuple[str, ...]
    rows: int

    def commit(self) -> TableCommit:
        """The snapshot as a commit a run publishes again without writing the table."""
        return TableCommit(
            self.table, self.snapshot_id, self.metadata_location, self.files, self.rows
        )


class PublicationStore:
    """Reads and writes publication records in the catalog database."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its URL; unpickled as one shared store per URL in the receiving
        process, so a catalog process connects once."""
        return _shared_store, (self.url,)

    def _exists(self) -> bool:
        """False for a SQLite catalog file not created yet (reads then see no tables)."""
        if self.url.startswith("sqlite:///"):
            return Path(self.url.removeprefix("sqlite:///")).is_file()
        return True

    @cached_property
    def _schema(self) -> tuple[sa.Engine, sa.Table, sa.Table]:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url)
        weakref.finalize(self, engine.dispose)
        meta = sa.MetaData()
        publications = sa.Table(
            "sluice_publications",
            meta,
            sa.Column("publication_id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("run_id", sa.String(255), nullable=False, unique=True),
            sa.Column("job", sa.String(255), nullable=False),
            sa.Column("published_at", sa.String(40), nullable=False),
        )
        tables = sa.Table(
            "sluice_published_tables",
            meta,
            sa.Column("publication_id", sa.Integer, primary_key=True),
            sa.Column("table_database", sa.String(255), primary_key=True),
            sa.Column("table_name", sa.String(255), primary_key=True),
            sa.Column("snapshot_id", sa.BigInteger, nullable=False),
            sa.Column("metadata_location", sa.Text, nullable=False),
            sa.Column("files", sa.Text, nullable=False),
            sa.Column("row_count", sa.BigInteger, nullable=False),
        )
        try:
            meta.create_all(engine)
        except sa.exc.OperationalError as exc:
            raise catalog_unreachable(self.url, exc) from exc
        except sa.exc.SQLAlchemyError as exc:
            raise LakeError(
                f"Cannot open publication records at {redact(self.url)}: {exc}"
            ) from exc
        return engine, publications, tables

    def publish(
        self,
        run_id: str,
        job: str,
        commits: list[TableCommit],
        *,
        removed: Sequence[TableName] = (),
    ) -> int:
        """Record a run's table snapshots as the ones readers use, in one transaction.

        Tables in ``removed`` (dropped from the catalog) are no longer published from then on.
        """
        engine, publications, tables = self._schema
        now = datetime.now(UTC).isoformat()
        with engine.begin() as conn:
            result = conn.execute(
                publications.insert().values(run_id=run_id, job=job, published_at=now)
            )
            key = result.inserted_primary_key
            assert key is not None
            publication_id = int(key[0])
            if commits:
                conn.execute(
                    tables.insert(),
                    [
                        {
                            "publication_id": publication_id,
                            "table_database": c.table.database,
                            "table_name": c.table.name,
                            "snapshot_id": c.snapshot_id,
                            "metadata_location": c.metadata_location,
                            "files": json.dumps(list(c.files)),
                            "row_count": c.rows,
                        }
                        for c in commits
                    ],
                )
            if removed:
                conn.execute(
                    tables.insert(),
                    [
                        {
                            "publication_id": publication_id,
                            "table_database": t.database,
                            "table_name": t.name,
                            "snapshot_id": _REMOVED,
                            "metadata_location": "",
                            "files": "[]",
                            "row_count": 0,
                        }
                        for t in removed
                    ],
                )
        return publication_id

    def is_published(self, run_id: str) -> bool:
        """True when the run's publication record exists."""
        import sqlalchemy as sa

        if not self._exists():
            return False

        engine, publications, _ = self._schema
        with engine.connect() as conn:
            query = sa.select(publications.c.publication_id).where(publications.c.run_id == run_id)
            return conn.execute(query).first() is not None

    def current(self) -> dict[TableName, PublishedTable]:
        """For every published table, its snapshot in the latest record that names it."""
        import sqlalchemy as sa

        if not self._exists():
            return {}

        engine, publications, tables = self._schema
        latest = (
            sa.select(
                tables.c.table_database,
                tables.c.table_name,
                sa.func.max(tables.c.publication_id).label("publication_id"),
            )
            .group_by(tables.c.table_database, tables.c.table_name)
            .subquery()
        )
        query = (
            sa.select(tables, publications.c.run_id)
            .join(
                latest,
                sa.and_(
                    tables.c.table_database == latest.c.table_database,
                    tables.c.table_name == latest.c.table_name,
                    tables.c.publication_id == latest.c.publication_id,
                ),
            )
            .join(publications, publications.c.publication_id == tables.c.publication_id)
        )
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return {
            TableName(r["table_database"], r["table_name"]): PublishedTable(
                table=TableName(r["table_database"], r["table_name"]),
                run_id=r["run_id"],
                snapshot_id=int(r["snapshot_id"]),
                metadata_location=r["metadata_location"],
                files=tuple(json.loads(r["files"])),
                rows=int(r["row_count"]),
            )
            for r in rows
            if int(r["snapshot_id"]) != _REMOVED
        }

    def recent_runs(self, count: int) -> set[str]:
        """Run ids of the ``count`` latest publications and of the runs that wrote their data
        files (a partial or resumed run publishes files earlier runs wrote): readers may still
        be using them."""
        import sqlalchemy as sa

        if not self._exists():
            return set()
        engine, publications, tables = self._schema
        latest = (
            sa.select(publications.c.publication_id, publications.c.run_id)
            .order_by(publications.c.publication_id.desc())
            .limit(count)
            .subquery()
        )
        files = sa.select(tables.c.files).where(
            tables.c.publication_id.in_(sa.select(latest.c.publication_id))
        )
        with engine.connect() as conn:
            runs = {row[0] for row in conn.execute(sa.select(latest.c.run_id))}
            return runs | {
                Path(f).stem for (listed,) in conn.execute(files) for f in json.loads(listed)
            }

    def catalog_tables(self) -> list[TableName]:
        """Every table the Iceberg SQL catalog holds (published or not), without pyiceberg."""
        import sqlalchemy as sa

        if not self._exists():
            return []

        engine, _, _ = self._schema
        if not sa.inspect(engine).has_table("iceberg_tables"):
            return []
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT table_namespace, table_name FROM iceberg_tables"))
            return sorted(TableName(ns, name) for ns, name in rows)


@cache
def _shared_store(url: str) -> PublicationStore:
    return PublicationStore(url)

"""Read-only SQL over the lake, as Athena does: DuckDB over the published snapshots.

Each query gets a fresh in-memory DuckDB whose views read exactly the Parquet files of the
published snapshots, then is locked down: no other file can be read (not even unpublished
files in the warehouse), no ATTACH, no extension loading, no configuration changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from sluice import duck
from sluice.core import TableName
from sluice.errors import NotFoundError, QueryError, SluiceError, did_you_mean
from sluice.lake.catalog import Lake
from sluice.lake.publications import PublicationStore

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_READ_ONLY = (exp.Query, exp.Describe)


class TableNotFoundError(NotFoundError, QueryError):
    """A query names a table that does not exist."""


@dataclass(frozen=True)
class QueryResult:
    """Rows of a query as Arrow, and whether the row cap cut them short."""

    table: pa.Table
    truncated: bool


def validate_read_only(sql: str) -> str:
    """Return the single read-only statement in ``sql`` or raise QueryError saying why not.

    >>> validate_read_only("SELECT 1;")
    'SELECT 1'
    """
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise QueryError("The query is empty; pass a SELECT statement.")
    try:
        statements = [s for s in sqlglot.parse(text, dialect="duckdb") if s is not None]
    except ParseError as exc:
        detail = exc.errors[0] if exc.errors else {}
        raise QueryError(
            f"SQL syntax error at line {detail.get('line', '?')}, column {detail.get('col', '?')}: "
            f"{detail.get('description', 'cannot parse')}."
        ) from exc
    if len(statements) != 1:
        raise QueryError("Run one statement at a time; this query has several.")
    statement = statements[0]
    if not isinstance(statement, _READ_ONLY):
        kind = (statement.name if isinstance(statement, exp.Command) else statement.key).upper()
        article = "an" if kind[:1] in "AEIOU" else "a"
        raise QueryError(
            f"Queries are read-only: {article} {kind} statement is refused.",
            hint="Change lake tables through models and 'sluice job start'.",
        )
    return text


class QueryEngine:
    """Runs read-only SQL over the tables readers can see."""

    def __init__(self, lake: Lake, publications: PublicationStore) -> None:
        self.lake = lake
        self.publications = publications

    def visible_tables(self) -> dict[TableName, tuple[str, ...]]:
        """Each readable table and the data files of the snapshot readers use."""
        published = self.publications.current()
        tables = {name: p.files for name, p in published.items()}
        for name in self.publications.catalog_tables():
            if name not in tables:
                tables[name] = self.lake.current_files(name)
        return tables

    def connect(self, *, database: str, threads: int | None = None) -> duckdb.DuckDBPyConnection:
        """A locked-down DuckDB connection with a view per visible table."""
        tables = self.visible_tables()
        databases = sorted({t.database for t in tables})
        if database not in databases:
            raise NotFoundError(
                f"Database '{database}' has no published tables."
                f"{did_you_mean(database, databases)}",
                hint="Run a job first ('sluice job start etl --wait') or pick one of: "
                f"{', '.join(databases) or 'none yet'}.",
            )
        con = duck.connect(threads=threads)
        for db in databases:
            con.execute(f"CREATE SCHEMA {duck.quote_ident(db)}")
        for table, files in sorted(tables.items()):
            if not files:
                continue
            listed = ", ".join(duck.quote_literal(f) for f in files)
            con.execute(
                f"CREATE VIEW {duck.quote_ident(table.database)}.{duck.quote_ident(table.name)} AS "
                f"SELECT * FROM read_parquet([{listed}])"
            )
        readable = ", ".join(duck.quote_literal(f) for files in tables.values() for f in files)
        con.execute(f"SET allowed_paths = [{readable}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        con.execute(f"USE memory.{duck.quote_ident(database)}")
        return con

    def run(self, sql: str, *, database: str = "gold", max_rows: int | None = None) -> QueryResult:
        """Run one read-only statement and return its rows (at most ``max_rows``)."""
        import duckdb
        import pyarrow as pa

        text = validate_read_only(sql)
        con = self.connect(database=database)
        try:
            reader = con.execute(text).to_arrow_reader(max(1, min(max_rows or 100_000, 100_000)))
            batches: list[pa.RecordBatch] = []
            count = 0
            truncated = False
            for batch in reader:
                if max_rows is not None and count + batch.num_rows > max_rows:
                    batches.append(batch.slice(0, max_rows - count))
                    truncated = True
                    break
                batches.append(batch)
                count += batch.num_rows
            return QueryResult(pa.Table.from_batches(batches, schema=reader.schema), truncated)
        except duckdb.Error as exc:
            raise _query_error(exc, database, sorted(self.visible_tables())) from exc
        finally:
            con.close()


def _query_error(exc: Exception, database: str, tables: list[TableName]) -> SluiceError:
    import duckdb

    first = str(exc).splitlines()[0]
    if isinstance(exc, duckdb.CatalogException):
        names = ", ".join(str(t) for t in tables)
        hint = f"Tables you can query: {names}. Default database: {database}."
        missing = re.search(r"Table with name (\S+) does not exist", first)
        if missing:
            name = missing.group(1)
            candidates = [t.name for t in tables if t.database == database] + [
                str(t) for t in tables
            ]
            return TableNotFoundError(
                f"Table {name} does not exist.{did_you_mean(name, candidates)}", hint=hint
            )
        if "does not exist" in first:
            return TableNotFoundError(first, hint=hint)
        return QueryError(first, hint=hint)
    if isinstance(exc, duckdb.PermissionException):
        return QueryError(
            "Refused: queries may read lake tables only (no other files, ATTACH or extensions)."
        )
    return QueryError(first)

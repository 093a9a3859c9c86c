"""Read-only SQL over the lake, as Athena does: DuckDB over the published snapshots.

Each query gets a fresh in-memory DuckDB whose views read exactly the Parquet files of the
published snapshots (columns matched by name; Hive-style ``key=value`` folders of crawled
tables read as partition columns), then is locked down: no other file can be read (not even
unpublished files in the warehouse), no ATTACH, no extension loading, no configuration
changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from sluice import duck
from sluice.core import TableName
from sluice.errors import NotFoundError, QueryError, SluiceError, did_you_mean
from sluice.lake.catalog import Lake
from sluice.lake.publications import PublicationStore

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_READ_ONLY = (exp.Query, exp.Describe)
BATCH_ROWS = 100_000

Parameters: TypeAlias = Sequence[object] | Mapping[str, object] | None
"""Values bound to ``?``/``$1`` (a list) or ``$name`` (a mapping) placeholders."""


class TableNotFoundError(NotFoundError, QueryError):
    """A query names a table that does not exist."""

    code = "table_not_found"


class QuerySyntaxError(QueryError):
    """The SQL cannot be parsed."""

    code = "syntax_error"


class QueryMemoryError(QueryError):
    """A query needed more memory than its limit."""

    code = "memory_limit_exceeded"


class QueryRefusedError(QueryError):
    """The SQL would write, attach, load an extension or read outside the lake."""

    code = "query_refused"


@dataclass(frozen=True)
class QueryResult:
    """Rows of a query as Arrow, and whether the row cap cut them short."""

    table: pa.Table
    truncated: bool


class CappedBatches:
    """The record batches of a DuckDB result, cut after ``max_rows`` rows (None: all)."""

    def __init__(self, reader: pa.RecordBatchReader, max_rows: int | None) -> None:
        self.reader = reader
        self.max_rows = max_rows
        self.rows = 0
        self.truncated = False

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self.reader:
            if self.max_rows is not None and self.rows + batch.num_rows > self.max_rows:
                self.truncated = True
                if self.max_rows > self.rows:
                    yield batch.slice(0, self.max_rows - self.rows)
                self.rows = self.max_rows
                return
            self.rows += batch.num_rows
            yield batch


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
        raise QuerySyntaxError(
            f"SQL syntax error at line {detail.get('line', '?')}, column {detail.get('col', '?')}: "
            f"{detail.get('description', 'cannot parse')}."
        ) from exc
    except TokenError as exc:
        raise QuerySyntaxError(
            "SQL syntax error: an unterminated string, identifier or comment."
        ) from exc
    except RecursionError as exc:
        raise QuerySyntaxError(
            "SQL syntax error: the query is nested too deeply to parse.",
            hint="Flatten the nested parentheses or subqueries (a few hundred levels at most).",
        ) from exc
    if len(statements) != 1:
        raise QueryError("Run one statement at a time; this query has several.")
    statement = statements[0]
    if not isinstance(statement, _READ_ONLY):
        kind = (statement.name if isinstance(statement, exp.Command) else statement.key).upper()
        article = "an" if kind[:1] in "AEIOU" else "a"
        raise QueryRefusedError(
            f"Queries are read-only: {article} {kind} statement is refused.",
            hint="Change lake tables through models and 'sluice job start'.",
        )
    return text


def tables_read(sql: str, *, database: str) -> set[TableName]:
    """The lake tables a validated statement names (CTE names excluded).

    >>> sorted(map(str, tables_read(
    ...     "WITH t AS (SELECT 1) SELECT * FROM fact_orders, raw.orders, t", database="gold")))
    ['gold.fact_orders', 'raw.orders']
    """
    statement = sqlglot.parse_one(sql, dialect="duckdb")
    ctes = {cte.alias_or_name for cte in statement.find_all(exp.CTE)}
    found = set()
    for table in statement.find_all(exp.Table):
        if not table.name or (not table.db and table.name in ctes):
            continue
        found.add(TableName(table.db or database, table.name))
    return found


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

    def connect(
        self,
        *,
        database: str,
        tables: Mapping[TableName, tuple[str, ...]] | None = None,
        threads: int | None = None,
        memory_limit: str | None = None,
    ) -> duckdb.DuckDBPyConnection:
        """A locked-down DuckDB connection with a view per visible table.

        ``tables`` pins the files each view reads (default: ``visible_tables()`` now).
        """
        tables = self.visible_tables() if tables is None else tables
        databases = self.check_database(database, tables)
        con = duck.connect(threads=threads, memory_limit=memory_limit)
        self.lake.prepare_duckdb(con)
        for db in databases:
            con.execute(f"CREATE SCHEMA {duck.quote_ident(db)}")
        for table, files in sorted(tables.items()):
            if not files:
                continue
            listed = ", ".join(duck.quote_literal(f) for f in files)
            con.execute(
                f"CREATE VIEW {duck.quote_ident(table.database)}.{duck.quote_ident(table.name)} AS "
                f"SELECT * FROM read_parquet([{listed}], union_by_name = true)"
            )
        readable = ", ".join(duck.quote_literal(f) for files in tables.values() for f in files)
        con.execute(f"SET allowed_paths = [{readable}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        con.execute(f"USE memory.{duck.quote_ident(database)}")
        return con

    @staticmethod
    def check_database(database: str, tables: Mapping[TableName, tuple[str, ...]]) -> list[str]:
        """The databases of ``tables``; NotFoundError unless ``database`` is one of them."""
        databases = sorted({t.database for t in tables})
        if database not in databases:
            raise NotFoundError(
                f"Database '{database}' has no published tables."
                f"{did_you_mean(database, databases)}",
                hint="Run a job first ('sluice job start etl --wait') or pick one of: "
                f"{', '.join(databases) or 'none yet'}.",
            )
        return databases

    def run(
        self,
        sql: str,
        *,
        database: str = "gold",
        max_rows: int | None = None,
        parameters: Parameters = None,
    ) -> QueryResult:
        """Run one read-only statement and return its rows (at most ``max_rows``)."""
        import duckdb
        import pyarrow as pa

        text = validate_read_only(sql)
        con = self.connect(database=database)
        try:
            reader = self.execute(con, text, parameters, batch_rows=max_rows)
            capped = CappedBatches(reader, max_rows)
            table = pa.Table.from_batches(list(capped), schema=reader.schema)
            return QueryResult(table, capped.truncated)
        except duckdb.Error as exc:
            raise self.error(exc, database) from exc
        finally:
            con.close()

    @staticmethod
    def execute(
        con: duckdb.DuckDBPyConnection,
        text: str,
        parameters: Parameters = None,
        *,
        batch_rows: int | None = None,
    ) -> pa.RecordBatchReader:
        """Start a validated statement on an engine connection; stream its result."""
        rows = max(1, min(batch_rows or BATCH_ROWS, BATCH_ROWS))
        if parameters is None:
            return con.execute(text).to_arrow_reader(rows)
        return con.execute(text, parameters).to_arrow_reader(rows)

    def error(self, exc: Exception, database: str) -> SluiceError:
        """The SluiceError that explains a DuckDB error raised by a query."""
        return _query_error(exc, database, sorted(self.visible_tables()))


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
        return QueryRefusedError(
            "Refused: queries may read lake tables only (no other files, ATTACH or extensions)."
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        return QueryMemoryError(
            f"The query ran out of memory: {first}",
            hint="Aggregate or filter more, or raise the memory limit.",
        )
    if isinstance(exc, duckdb.ParserException):
        return QuerySyntaxError(first)
    return QueryError(first)

"""What SQL means on the PostgreSQL endpoint: session commands, the catalog, lake queries.

Lake queries run exactly as the HTTP API runs them: ``validate_read_only``, a cursor on
the locked database of the pinned published files (``SharedDatabases``), the statement
timeout, the row cap and the pool size of ``QueryLimits``.

Clients also ask about the catalog (psql's ``\\dt`` and ``\\d``, ``information_schema``,
``pg_catalog`` queries BI tools send on connect). Those run on a second locked DuckDB
database that holds an empty table per lake table, with the same columns, so DuckDB's own
``pg_catalog`` and ``information_schema`` describe the lake as tables. A few psql-isms are
rewritten for DuckDB; catalogs Sluice has no use for (policies, triggers, publications,
inheritance, statistics objects) answer no rows; anything else DuckDB cannot answer is a
clean SQL error. Transaction commands, ``SET`` and ``SHOW`` are answered here.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from sluice import duck
from sluice.config import QueryLimits
from sluice.core import TableName
from sluice.errors import NotFoundError, QueryError, SluiceError
from sluice.query.engine import CappedBatches, QueryEngine, tables_read, validate_read_only
from sluice.query.executions import QueryTimeoutError
from sluice.query.sessions import SharedDatabases

if TYPE_CHECKING:
    from collections.abc import Iterator

    import duckdb
    import pyarrow as pa

SERVER_VERSION = "15.0"
VERSION_TEXT = f"PostgreSQL {SERVER_VERSION} (Sluice: read-only SQL over the lake, on DuckDB)"

SQLSTATE_BY_CODE = {
    "syntax_error": "42601",
    "query_refused": "42501",
    "table_not_found": "42P01",
    "not_found": "3D000",
    "query_timeout": "57014",
    "query_cancelled": "57014",
    "memory_limit_exceeded": "53200",
    "invalid_argument": "22023",
    "feature_not_supported": "0A000",
    "in_failed_transaction": "25P02",
    "undefined_object": "42704",
    "internal": "XX000",
}

_CATALOG_SCHEMAS = {"pg_catalog", "information_schema"}
_EMPTY_CATALOGS = {
    "pg_policy",
    "pg_statistic_ext",
    "pg_publication",
    "pg_publication_rel",
    "pg_publication_namespace",
    "pg_inherits",
    "pg_trigger",
    "pg_rewrite",
    "pg_partitioned_table",
    "pg_foreign_table",
    "pg_event_trigger",
    "pg_subscription",
}
_REWRITES = (
    (re.compile(r"OPERATOR\(\s*pg_catalog\.([~!*<>=]+)\s*\)", re.I), r"\1"),
    (re.compile(r"\s+COLLATE\s+pg_catalog\.\"?default\"?", re.I), ""),
    (re.compile(r"::\s*pg_catalog\.(regtype|regclass|regnamespace|regproc)\b", re.I), "::BIGINT"),
    (re.compile(r"::\s*pg_catalog\.text\b", re.I), "::VARCHAR"),
    (re.compile(r"::\s*(regtype|regclass|regnamespace|regproc)\b", re.I), "::BIGINT"),
    (re.compile(r"\bpg_catalog\.(?=[a-z_]+\s*\()", re.I), ""),
    (re.compile(r"\b\w+\.relforcerowsecurity\b", re.I), "false"),
    (re.compile(r"\bpg_table_is_visible\s*\(", re.I), "sluice_table_is_visible("),
    (re.compile(r"\bversion\s*\(\s*\)", re.I), "pg_version()"),
)
_MACROS = (
    "CREATE MACRO pg_get_userbyid(id) AS 'sluice'",
    "CREATE MACRO pg_get_expr(expr, rel, pretty) AS NULL",
    f"CREATE MACRO pg_version() AS '{VERSION_TEXT}'",
    "CREATE MACRO sluice_table_is_visible(rel) AS rel IN (SELECT c.oid FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema())",
)
_SETTINGS = {
    "server_version": SERVER_VERSION,
    "server_version_num": "150000",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "datestyle": "ISO, MDY",
    "intervalstyle": "postgres",
    "timezone": "UTC",
    "standard_conforming_strings": "on",
    "integer_datetimes": "on",
    "transaction_isolation": "read committed",
    "transaction_read_only": "on",
    "default_transaction_read_only": "on",
    "max_identifier_length": "63",
    "lc_collate": "C",
    "lc_ctype": "C",
    "is_superuser": "off",
}


class PgError(QueryError):
    """A SQL error with its own SQLSTATE code name (see ``SQLSTATE_BY_CODE``)."""

    def __init__(self, message: str, *, code: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


def sqlstate(error: SluiceError) -> str:
    """The SQLSTATE a client gets for ``error``.

    >>> sqlstate(QueryTimeoutError("too slow"))
    '57014'
    """
    if error.code in SQLSTATE_BY_CODE:
        return SQLSTATE_BY_CODE[error.code]
    if "Referenced column" in error.message or "not found in FROM clause" in error.message:
        return "42703"
    return "42000" if isinstance(error, QueryError) else "XX000"


@dataclass(frozen=True)
class Answer:
    """What a statement returns: rows (``table``) or only a command tag."""

    tag: str
    table: pa.Table | None = None
    truncated: bool = False


class PgSession:
    """One client's session: its settings, transaction state and running statement."""

    def __init__(self, service: PgQueries, *, user: str, database: str) -> None:
        self.service = service
        self.user = user
        self.database = database
        self.settings = dict(_SETTINGS, search_path=database, application_name="")
        self.in_transaction = False
        self.failed = False
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    @property
    def status(self) -> bytes:
        """The transaction status byte of ReadyForQuery: idle, in a block, or failed."""
        if not self.in_transaction:
            return b"I"
        return b"E" if self.failed else b"T"

    def run(self, sql: str, parameters: Sequence[object] = ()) -> Answer:
        """Answer one statement; a SluiceError says why it cannot be answered."""
        try:
            answer = self._run(sql, parameters)
        except SluiceError:
            self.failed = self.in_transaction
            raise
        return answer

    def describe(self, sql: str, parameters: int) -> pa.Schema | None:
        """The columns ``sql`` returns, found without reading data (None: no rows)."""
        command = self._command(sql)
        if command is not None:
            return None if command.table is None else command.table.schema
        text = validate_read_only(sql)
        if not isinstance(sqlglot.parse_one(text, dialect="duckdb"), exp.Select):
            return None
        probe = f"SELECT * FROM ({text}) AS described LIMIT 0"
        described = self._execute(probe, [None] * parameters).table
        return None if described is None else described.schema

    def cancel(self) -> None:
        """Interrupt the statement running now, if any (a client's CancelRequest)."""
        with self._lock:
            if self._cursor is not None:
                self._cursor.interrupt()

    def _run(self, sql: str, parameters: Sequence[object]) -> Answer:
        command = self._command(sql)
        if command is not None:
            return command
        if self.failed:
            raise PgError(
                "The transaction failed: commands are ignored until the end of the block.",
                code="in_failed_transaction",
                hint="Send ROLLBACK.",
            )
        return self._execute(validate_read_only(sql), parameters)

    def _command(self, sql: str) -> Answer | None:
        """Session and transaction commands, answered without a database."""
        words = sql.strip().rstrip(";").split()
        if not words:
            return None
        verb = words[0].upper()
        if verb in ("BEGIN", "START"):
            self.in_transaction = True
            return Answer("BEGIN")
        if verb in ("COMMIT", "END", "ROLLBACK", "ABORT"):
            tag = "ROLLBACK" if verb in ("ROLLBACK", "ABORT") or self.failed else "COMMIT"
            self.in_transaction = self.failed = False
            return Answer(tag)
        if verb in ("DISCARD", "DEALLOCATE", "RESET", "CLOSE", "UNLISTEN"):
            return Answer(verb if verb != "DISCARD" else "DISCARD ALL")
        if verb == "SET":
            return self._set(sql)
        if verb == "SHOW":
            return self._show(" ".join(words[1:]))
        return None

    def _set(self, sql: str) -> Answer:
        match = re.match(
            r"\s*SET\s+(?:SESSION\s+|LOCAL\s+)?([\w.]+)\s*(?:=|\bTO\b)\s*(.+?)\s*;?\s*$",
            sql,
            re.I | re.S,
        )
        if match:
            name, value = match.group(1).lower(), match.group(2).strip("'\"")
            self.settings[name] = value
            first = value.split(",")[0].strip().strip("'\"")
            if name == "search_path" and first in self.service.databases():
                self.database = first
        return Answer("SET")

    def _show(self, name: str) -> Answer:
        import pyarrow as pa

        key = name.strip().strip('"').lower().replace(" ", "_")
        key = {"transaction_isolation_level": "transaction_isolation"}.get(key, key)
        if key not in self.settings:
            raise PgError(
                f'Unrecognized configuration parameter "{name}".', code="undefined_object"
            )
        table = pa.table({key: pa.array([self.settings[key]], pa.string())})
        return Answer("SHOW", table)

    def _execute(self, text: str, parameters: Sequence[object]) -> Answer:
        """Run a validated statement: catalog queries (rewritten) on the catalog database."""
        if _reads_only_empty_catalogs(text):
            return Answer("SELECT 0", _empty_result(text))
        catalog = _is_catalog_query(text)
        if catalog:
            text = _rewrite(text)
        with self.service.cursor(self.database, catalog=catalog) as con:
            with self._lock:
                self._cursor = con
            try:
                return self.service.fetch(con, text, parameters, self.database)
            finally:
                with self._lock:
                    self._cursor = None


class PgQueries:
    """Runs the endpoint's statements under the HTTP API's limits; shared by all sessions."""

    def __init__(self, engine: QueryEngine, limits: QueryLimits) -> None:
        self.engine = engine
        self.limits = limits
        engine.visible_tables()
        self._data = SharedDatabases(
            engine, threads=limits.threads, memory_limit=limits.memory_limit
        )
        self._catalogs: dict[tuple[object, ...], duckdb.DuckDBPyConnection] = {}
        self._catalog_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(limits.workers)

    def databases(self) -> set[str]:
        """The lake databases with published tables."""
        return {t.database for t in self.engine.visible_tables()}

    def session(self, *, user: str, database: str) -> PgSession:
        """A new session; NotFoundError unless ``database`` has published tables."""
        QueryEngine.check_database(database, self.engine.visible_tables())
        return PgSession(self, user=user, database=database)

    @contextmanager
    def cursor(self, database: str, *, catalog: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the data (or catalog) database of the current publication."""
        tables = self.engine.visible_tables()
        with self._slots:
            if not catalog:
                with self._data.cursor(database=database, tables=tables) as con:
                    yield con
                return
            con = self._catalog(tables).cursor()
            try:
                con.execute(f"USE memory.{duck.quote_ident(database)}")
                yield con
            finally:
                con.close()

    def fetch(
        self,
        con: duckdb.DuckDBPyConnection,
        text: str,
        parameters: Sequence[object],
        database: str,
    ) -> Answer:
        """Run ``text`` on ``con`` under the timeout and row cap; its rows as Arrow."""
        import duckdb
        import pyarrow as pa

        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            con.interrupt()

        timer = threading.Timer(self.limits.timeout_seconds, stop)
        timer.start()
        try:
            reader = self.engine.execute(con, text, list(parameters) if parameters else None)
            capped = CappedBatches(reader, self.limits.max_rows)
            table = pa.Table.from_batches(list(capped), schema=reader.schema)
        except duckdb.Error as exc:
            if timed_out.is_set():
                raise QueryTimeoutError(
                    f"The query ran longer than the {self.limits.timeout_seconds:g} s timeout.",
                    hint="Filter or aggregate more, or raise the timeout (sluice serve --timeout).",
                ) from exc
            if isinstance(exc, duckdb.InterruptException):
                raise PgError("The query was cancelled.", code="query_cancelled") from exc
            raise self.engine.error(exc, database) from exc
        finally:
            timer.cancel()
        return Answer(f"SELECT {table.num_rows}", table, capped.truncated)

    def close(self) -> None:
        """Close the databases once their statements end."""
        self._data.close()
        with self._catalog_lock:
            for con in self._catalogs.values():
                con.close()
            self._catalogs.clear()

    def _catalog(self, tables: Mapping[TableName, tuple[str, ...]]) -> duckdb.DuckDBPyConnection:
        key = tuple(sorted(tables.items()))
        with self._catalog_lock:
            con = self._catalogs.get(key)
            if con is None:
                # An older catalog is dropped, not closed: cursors still reading it keep it
                # alive until they end.
                self._catalogs.clear()
                con = self._catalogs[key] = self._build_catalog(tables)
            return con

    def _build_catalog(
        self, tables: Mapping[TableName, tuple[str, ...]]
    ) -> duckdb.DuckDBPyConnection:
        """A locked database with an empty table per lake table, and pg-compatible macros."""
        database = next(iter(sorted({t.database for t in tables})), "gold")
        with self._data.cursor(database=database, tables=tables) as data:
            columns = data.execute(
                "SELECT table_schema, table_name, column_name, data_type "
                "FROM information_schema.columns WHERE table_catalog = 'memory' "
                "ORDER BY table_schema, table_name, ordinal_position"
            ).fetchall()
        con = duck.connect(threads=1)
        by_table: dict[tuple[str, str], list[str]] = {}
        for schema, table, column, data_type in columns:
            by_table.setdefault((schema, table), []).append(
                f"{duck.quote_ident(column)} {data_type}"
            )
        for schema in sorted({t.database for t in tables}):
            con.execute(f"CREATE SCHEMA {duck.quote_ident(schema)}")
        for (schema, table), defs in sorted(by_table.items()):
            con.execute(
                f"CREATE TABLE {duck.quote_ident(schema)}.{duck.quote_ident(table)} "
                f"({', '.join(defs)})"
            )
        for macro in _MACROS:
            con.execute(macro)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con


def split_statements(sql: str) -> list[str]:
    """The statements of a simple query, split at the semicolons between them.

    >>> split_statements("SET a = 1; SELECT ';' AS x;; ")
    ['SET a = 1', "SELECT ';' AS x"]
    """
    from sqlglot.dialects.duckdb import DuckDB
    from sqlglot.errors import SqlglotError
    from sqlglot.tokenizer_core import TokenType

    try:
        tokens = DuckDB().tokenize(sql)
    except SqlglotError:
        return [sql.strip()] if sql.strip() else []
    cuts = [t.start for t in tokens if t.token_type == TokenType.SEMICOLON]
    starts = [0, *(c + 1 for c in cuts)]
    parts = [sql[a:b] for a, b in zip(starts, [*cuts, len(sql)], strict=True)]
    return [part.strip() for part in parts if part.strip()]


def _rewrite(text: str) -> str:
    """psql's catalog idioms in DuckDB's words; version() answers as PostgreSQL.

    >>> _rewrite("SELECT pg_catalog.version()")
    'SELECT pg_version()'
    """
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return text


def _catalog_names(text: str) -> set[TableName]:
    return tables_read(text, database="")


def _is_catalog_query(text: str) -> bool:
    """True for a statement that reads only catalogs (or no table at all)."""
    names = _catalog_names(text)
    return all(
        n.database in _CATALOG_SCHEMAS or (not n.database and n.name.startswith("pg_"))
        for n in names
    )


def _reads_only_empty_catalogs(text: str) -> bool:
    names = _catalog_names(text)
    return any(n.name in _EMPTY_CATALOGS for n in names) and all(
        n.name in _EMPTY_CATALOGS or n.database in _CATALOG_SCHEMAS or n.name.startswith("pg_")
        for n in names
    )


def _empty_result(text: str) -> pa.Table:
    """No rows, with a text column per output column of the statement's first SELECT."""
    import pyarrow as pa

    statement = sqlglot.parse_one(text, dialect="duckdb")
    select = statement if isinstance(statement, exp.Select) else statement.find(exp.Select)
    names = [e.alias_or_name or "?column?" for e in select.expressions] if select else []
    unique = [f"{name}_{i}" if names.count(name) > 1 else name for i, name in enumerate(names)]
    return pa.table({name: pa.array([], pa.string()) for name in unique})


def database_of(name: str, visible: Callable[[], Mapping[TableName, object]]) -> str:
    """The lake database a client's dbname means: itself if it is one, else ``gold``."""
    databases = {t.database for t in visible()}
    if name in databases:
        return name
    if name in ("", "postgres", "sluice", "gold"):
        return "gold"
    raise NotFoundError(
        f"Database '{name}' does not exist.",
        hint=f"Connect to one of: {', '.join(sorted(databases)) or 'none yet'}.",
    )

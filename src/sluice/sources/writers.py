"""Write tables and rows into SQLite, MariaDB/MySQL or PostgreSQL, all or nothing.

One writer per target dialect, shared by ``sluice source load-dump`` and ``sluice source
generate --into``. A writer is used as a context manager: ``create`` each table, ``insert``
rows (buffered into batches), and the tables appear only when the block ends without an
error. How each target stays atomic:

- SQLite: everything is written into a copy of the file (or a new file) next to it, which
  replaces the target with one rename.
- PostgreSQL: one transaction (its DDL is transactional); ``--replace`` drops the old
  tables inside it.
- MariaDB/MySQL: DDL commits implicitly, so tables are created and filled under staging
  names (``_sluice_<token>_<table>``); at the end one ``RENAME TABLE`` statement (atomic)
  moves old tables aside and the new ones into place, then the old ones are dropped. On
  failure the staging tables are dropped. Foreign keys are added after the data, unnamed,
  so MariaDB names them ``<table>_ibfk_<n>`` as the sample does.

Passwords come from ``${env:VAR}`` references in the URL and never appear in messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from sluice.config import redact, resolve_secrets
from sluice.errors import ConfigError, SourceError, SourceUnavailableError, TargetExistsError
from sluice.sources.classicmodels.schema import ForeignKey, Table, sqlite_ddl
from sluice.sources.dbapi import url_dialect

BATCH_ROWS = 10_000
_CONNECT_TIMEOUT = 10


def open_writer(url: str, *, replace: bool = False, base_dir: Path | None = None) -> Writer:
    """A writer for the database ``url`` names; relative SQLite paths start at ``base_dir``."""
    dialect = url_dialect(url)
    if dialect == "sqlite":
        return SqliteWriter(url, replace=replace, base_dir=base_dir or Path.cwd())
    if dialect == "mysql":
        return MysqlWriter(url, replace=replace)
    return PostgresWriter(url, replace=replace)


class Writer:
    """Creates tables and buffers rows; the subclass talks to one kind of database."""

    def __init__(self, url: str, *, replace: bool) -> None:
        self.url = url
        self.shown = redact(url)
        self.replace = replace
        self.tables: dict[str, Table] = {}
        self.counts: dict[str, int] = {}
        self._pending: tuple[str, tuple[str, ...]] | None = None
        self._rows: list[Sequence[Any]] = []

    def __enter__(self) -> Writer:
        self.open()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if error is not None:
            self.abort()
            return
        try:
            self._flush()
        except BaseException:
            self.abort()
            raise
        self.commit()

    def create(self, table: Table) -> None:
        """Create ``table``; refused when it exists, unless the writer replaces."""
        self._flush()
        if table.name in self.tables:
            raise SourceError(f"Table '{table.name}' is created twice in one load.")
        if self.exists(table.name) and not self.replace:
            raise TargetExistsError(
                f"Table '{table.name}' already exists in {self.shown}.",
                hint="Pass --replace to replace it, or load into an empty database.",
            )
        self.tables[table.name] = table
        self.counts[table.name] = 0
        self.create_table(table)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Add rows to a table created by this writer (written in batches)."""
        if table not in self.tables:
            raise SourceError(f"Rows for table '{table}', which this load did not create.")
        key = (table, tuple(columns))
        if self._pending != key:
            self._flush()
            self._pending = key
        self._rows.extend(rows)
        self.counts[table] += len(rows)
        if len(self._rows) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending is not None and self._rows:
            table, columns = self._pending
            self.write_rows(self.tables[table], columns, self._rows)
        self._rows = []

    def unavailable(self, exc: Exception) -> SourceUnavailableError:
        """A connection failure, with any password scrubbed from the driver's message."""
        message = str(exc).strip().split("\n")[0]
        password = urlsplit(resolve_secrets(self.url)).password
        if password:
            message = message.replace(password, "***")
        return SourceUnavailableError(
            f"Cannot connect to {self.shown}: {message}.",
            hint="Check that the server runs and the URL's host, port, user and password.",
        )

    def failed(self, exc: Exception) -> SourceError:
        """A database error while loading, as one line."""
        message = str(exc).strip().split("\n")[0]
        return SourceError(f"Loading into {self.shown} failed: {message}. Nothing was written.")

    def open(self) -> None:
        """Connect and start the load."""
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        """Whether the target already has a table ``name``."""
        raise NotImplementedError

    def create_table(self, table: Table) -> None:
        """Create one table (under whatever name keeps the load atomic)."""
        raise NotImplementedError

    def write_rows(self, table: Table, columns: tuple[str, ...], rows: list[Sequence[Any]]) -> None:
        """Write one batch of rows."""
        raise NotImplementedError

    def commit(self) -> None:
        """Make every created table visible at once."""
        raise NotImplementedError

    def abort(self) -> None:
        """Leave the target as it was."""
        raise NotImplementedError


def _server_parts(url: str) -> tuple[str, int | None, str, str, str]:
    """Host, port, user, password and database of a server URL (secrets resolved)."""
    parts = urlsplit(resolve_secrets(url))
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not database:
        raise ConfigError(
            f"Target URL '{redact(url)}' needs a host and a database, "
            "e.g. mysql://user@host:3306/db."
        )
    return (
        parts.hostname,
        parts.port,
        unquote(parts.username or ""),
        unquote(parts.password or ""),
        database,
    )


def _create_sql(
    table: Table, name: str, quote: Callable[[str], str], type_of: Callable[[str], str]
) -> str:
    """``CREATE TABLE name (...)`` with the table's columns, nullability and primary key."""
    lines = [
        f"  {quote(c.name)} {type_of(c.type)}{'' if c.nullable else ' NOT NULL'}"
        for c in table.columns
    ]
    if table.primary_key:
        lines.append(f"  PRIMARY KEY ({', '.join(map(quote, table.primary_key))})")
    return f"CREATE TABLE {quote(name)} (\n" + ",\n".join(lines) + "\n)"


def _foreign_key_sql(name: str, fk: ForeignKey, ref: str, quote: Callable[[str], str]) -> str:
    """``ALTER TABLE name ADD FOREIGN KEY (...) REFERENCES ref (...)``, unnamed."""
    return (
        f"ALTER TABLE {quote(name)} ADD FOREIGN KEY ({', '.join(map(quote, fk.columns))}) "
        f"REFERENCES {quote(ref)} ({', '.join(map(quote, fk.ref_columns))})"
    )


class _ServerWriter(Writer):
    """A writer over a DB-API connection whose tables live in the connection's schema."""

    _EXISTS_SQL = ""

    def _run(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        return bool(self._run(self._EXISTS_SQL, (name,)))


# --- SQLite --------------------------------------------------------------------------------


class SqliteWriter(Writer):
    """Writes a copy of the file next to it and renames it into place."""

    def __init__(self, url: str, *, replace: bool, base_dir: Path) -> None:
        from sluice.sources.sqlite import sqlite_path

        super().__init__(url, replace=replace)
        self.path = sqlite_path(url, base_dir=base_dir)
        self.shown = str(self.path)
        self.tmp: str | None = None
        self.con: sqlite3.Connection | None = None

    def open(self) -> None:
        from sluice.sources.sqlite import SQLITE_MAGIC

        if self.path.is_dir():
            raise SourceError(f"Cannot write to '{self.path}': it is a folder.")
        if self.path.is_file() and self.path.stat().st_size:
            with self.path.open("rb") as handle:
                if handle.read(16) != SQLITE_MAGIC:
                    raise SourceError(
                        f"'{self.path}' exists and is not a SQLite database.",
                        hint="Point the URL at a SQLite file or at a new path.",
                    )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
            )
            os.close(fd)
            if self.path.exists():
                shutil.copyfile(self.path, self.tmp)
            self.con = sqlite3.connect(self.tmp, isolation_level=None)
            self.con.execute("PRAGMA journal_mode=OFF")
            self.con.execute("PRAGMA synchronous=OFF")
            self.con.execute("BEGIN")
        except (OSError, sqlite3.Error) as exc:
            self.abort()
            raise SourceError(
                f"Cannot write the SQLite database '{self.path}': {exc}.",
                hint="Choose a path in a writable folder with free space.",
            ) from exc

    @property
    def _con(self) -> sqlite3.Connection:
        assert self.con is not None
        return self.con

    def exists(self, name: str) -> bool:
        try:
            found = self._con.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise SourceError(f"'{self.path}' is not a SQLite database: {exc}.") from exc
        return found is not None

    def create_table(self, table: Table) -> None:
        try:
            self._con.execute(f"DROP TABLE IF EXISTS {_dq(table.name)}")
            self._con.execute(sqlite_ddl(table))
        except sqlite3.Error as exc:
            raise self.failed(exc) from exc

    def write_rows(self, table: Table, columns: tuple[str, ...], rows: list[Sequence[Any]]) -> None:
        names = ", ".join(_dq(c) for c in columns)
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {_dq(table.name)} ({names}) VALUES ({marks})"
        try:
            self._con.executemany(sql, (tuple(map(_sqlite_value, row)) for row in rows))
        except sqlite3.Error as exc:
            raise self.failed(exc) from exc

    def commit(self) -> None:
        assert self.tmp is not None
        try:
            self._con.execute("COMMIT")
            self._con.execute("PRAGMA journal_mode=DELETE")
            self._con.close()
            self.con = None
            os.chmod(self.tmp, 0o644)
            os.replace(self.tmp, self.path)
            self.tmp = None
        except (OSError, sqlite3.Error) as exc:
            self.abort()
            raise self.failed(exc) from exc

    def abort(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)
            self.tmp = None


def _sqlite_value(value: Any) -> Any:
    """Decimals as text: the column's NUMERIC affinity stores them as numbers."""
    return str(value) if isinstance(value, Decimal) else value


def _dq(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bq(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# --- MariaDB / MySQL -----------------------------------------------------------------------


class MysqlWriter(_ServerWriter):
    """Fills staging tables and renames them into place in one statement."""

    _EXISTS_SQL = (
        "SELECT 1 FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s"
    )

    def __init__(self, url: str, *, replace: bool) -> None:
        super().__init__(url, replace=replace)
        self.parts = _server_parts(url)
        self.token = secrets.token_hex(3)
        self.con: Any = None
        self.staged: list[str] = []

    def open(self) -> None:
        import pymysql

        host, port, user, password, database = self.parts
        try:
            self.con = pymysql.connect(
                host=host,
                port=port or 3306,
                user=user or None,
                password=password,
                database=database,
                charset="utf8mb4",
                connect_timeout=_CONNECT_TIMEOUT,
                autocommit=True,
            )
        except pymysql.MySQLError as exc:
            raise self.unavailable(exc) from exc
        self._run("SET SESSION FOREIGN_KEY_CHECKS = 0")

    def _run(self, sql: str, args: Any = None, *, many: bool = False) -> list[tuple[Any, ...]]:
        import pymysql

        try:
            with self.con.cursor() as cur:
                if many:
                    cur.executemany(sql, args)
                    return []
                cur.execute(sql, args)
                return list(cur.fetchall())
        except pymysql.OperationalError as exc:
            if exc.args and exc.args[0] in (2003, 2006, 2013):
                raise self.unavailable(exc) from exc
            raise self.failed(exc) from exc
        except pymysql.MySQLError as exc:
            raise self.failed(exc) from exc

    def stage(self, name: str) -> str:
        """The staging name of a table while it loads (a digest when the name is long)."""
        staged = f"_sluice_{self.token}_{name}"
        if len(staged) > 64:  # MySQL's identifier limit
            staged = f"_sluice_{self.token}_{hashlib.sha1(name.encode()).hexdigest()}"
        return staged

    def exists(self, name: str) -> bool:
        sql = (
            "SELECT 1 FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s"
        )
        return bool(self._run(sql, (name,)))

    def create_table(self, table: Table) -> None:
        lines = [
            f"  {_bq(c.name)} {c.type}{'' if c.nullable else ' NOT NULL'}" for c in table.columns
        ]
        if table.primary_key:
            lines.append(f"  PRIMARY KEY ({', '.join(_bq(c) for c in table.primary_key)})")
        staging = self.stage(table.name)
        self.staged.append(staging)
        body = ",\n".join(lines)
        self._run(f"CREATE TABLE {_bq(staging)} (\n{body}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")

    def write_rows(self, table: Table, columns: tuple[str, ...], rows: list[Sequence[Any]]) -> None:
        names = ", ".join(_bq(c) for c in columns)
        marks = ", ".join(["%s"] * len(columns))
        sql = f"INSERT INTO {_bq(self.stage(table.name))} ({names}) VALUES ({marks})"
        self._run(sql, rows, many=True)

    def commit(self) -> None:
        try:
            for table in self.tables.values():
                for fk in table.foreign_keys:
                    ref = fk.ref_table
                    target = self.stage(ref) if ref in self.tables else ref
                    self._run(_foreign_key_sql(self.stage(table.name), fk, target, _bq))
            old = [name for name in self.tables if self.exists(name)]
            moves = [f"{_bq(n)} TO {_bq(self.stage('old_' + n))}" for n in old]
            moves += [f"{_bq(self.stage(n))} TO {_bq(n)}" for n in self.tables]
            if moves:
                self._run("RENAME TABLE " + ", ".join(moves))
            self.staged = [self.stage("old_" + n) for n in old]
        except SourceError:
            self.abort()
            raise
        self.abort()

    def abort(self) -> None:
        if self.con is None:
            return
        with contextlib.suppress(Exception):
            if self.staged:
                self._run("DROP TABLE IF EXISTS " + ", ".join(map(_bq, self.staged)))
        self.staged = []
        with contextlib.suppress(Exception):
            self.con.close()
        self.con = None


# --- PostgreSQL ----------------------------------------------------------------------------


class PostgresWriter(_ServerWriter):
    """Creates and fills the tables in one transaction, rows sent with COPY."""

    _EXISTS_SQL = (
        "SELECT 1 FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name = %s"
    )

    def __init__(self, url: str, *, replace: bool) -> None:
        super().__init__(url, replace=replace)
        _server_parts(url)
        self.con: Any = None
        self.schema = ""

    def open(self) -> None:
        import psycopg

        conninfo = resolve_secrets(self.url)
        conninfo = "postgresql" + conninfo[conninfo.index(":") :]
        try:
            self.con = psycopg.connect(conninfo, connect_timeout=_CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            raise self.unavailable(exc) from exc
        (schema,) = self._run("SELECT current_schema()")[0]
        if schema is None:
            self.abort()
            raise SourceError(
                f"{self.shown} has no schema to create tables in (search_path names none "
                "that exists).",
                hint="Create the schema first, or fix the URL's search_path option.",
            )
        self.schema = schema

    def _run(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            with self.con.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall()) if cur.description else []
        except psycopg.OperationalError as exc:
            raise self.unavailable(exc) from exc
        except psycopg.Error as exc:
            raise self.failed(exc) from exc

    def create_table(self, table: Table) -> None:
        self._run(f"DROP TABLE IF EXISTS {_dq(table.name)} CASCADE")
        self._run(_create_sql(table, table.name, _dq, postgres_type))

    def write_rows(self, table: Table, columns: tuple[str, ...], rows: list[Sequence[Any]]) -> None:
        import psycopg

        names = ", ".join(_dq(c) for c in columns)
        try:
            with (
                self.con.cursor() as cur,
                cur.copy(f"COPY {_dq(table.name)} ({names}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        except psycopg.OperationalError as exc:
            raise self.unavailable(exc) from exc
        except psycopg.Error as exc:
            raise self.failed(exc) from exc

    def commit(self) -> None:
        import psycopg

        try:
            for table in self.tables.values():
                for fk in table.foreign_keys:
                    self._run(_foreign_key_sql(table.name, fk, fk.ref_table, _dq))
            self.con.commit()
        except psycopg.Error as exc:
            self.abort()
            raise self.failed(exc) from exc
        except SourceError:
            self.abort()
            raise
        # Statistics now, not whenever autovacuum gets to it: without them the planner
        # guesses, and reads a range of keys (an incremental run's new rows) by a full scan.
        with contextlib.suppress(SourceError, psycopg.Error):
            for name in self.tables:
                self._run(f"ANALYZE {_dq(name)}")
            self.con.commit()
        self.con.close()
        self.con = None

    def abort(self) -> None:
        if self.con is None:
            return
        with contextlib.suppress(Exception):
            self.con.rollback()
        with contextlib.suppress(Exception):
            self.con.close()
        self.con = None


def postgres_type(declared: str) -> str:
    """The PostgreSQL type that holds a declared MySQL type's values faithfully.

    >>> [postgres_type(t) for t in ("int(11)", "decimal(10,2)", "mediumtext", "mediumblob")]
    ['integer', 'numeric(10,2)', 'text', 'bytea']
    >>> postgres_type("varchar(50)"), postgres_type("datetime"), postgres_type("int(10) unsigned")
    ('varchar(50)', 'timestamp', 'bigint')
    """
    from sqlglot import exp

    t = exp.DataType.Type
    parsed = exp.DataType.build(declared, dialect="mysql")
    params = ",".join(p.name for p in parsed.expressions)
    kind = parsed.this
    simple = {
        t.TINYINT: "smallint",
        t.UTINYINT: "smallint",
        t.SMALLINT: "smallint",
        t.USMALLINT: "integer",
        t.MEDIUMINT: "integer",
        t.UMEDIUMINT: "integer",
        t.INT: "integer",
        t.UINT: "bigint",
        t.BIGINT: "bigint",
        t.UBIGINT: "numeric(20)",
        t.FLOAT: "real",
        t.DOUBLE: "double precision",
        t.UDOUBLE: "double precision",
        t.DATE: "date",
        t.DATETIME: "timestamp",
        t.TIMESTAMP: "timestamp",
        t.TIMESTAMPTZ: "timestamp",
        t.TIME: "time",
        t.YEAR: "smallint",
        t.BOOLEAN: "boolean",
        t.JSON: "json",
    }
    if kind in simple:
        return simple[kind]
    if kind in (t.DECIMAL, t.BIGDECIMAL, t.UDECIMAL):
        return f"numeric({params or '10,0'})"  # MySQL's DECIMAL is DECIMAL(10,0)
    if kind in (t.CHAR, t.NCHAR, t.VARCHAR, t.NVARCHAR):
        return (
            f"{'char' if kind in (t.CHAR, t.NCHAR) else 'varchar'}({params})" if params else "text"
        )
    if kind in (t.BIT,):
        width = int(params or 1)
        return "boolean" if width == 1 else "bigint" if width < 64 else "numeric(20)"
    if kind.name.endswith(("TEXT", "ENUM", "SET")) or kind in (t.ENUM, t.SET):
        return "text"
    if kind.name.endswith(("BLOB", "BINARY")):
        return "bytea"
    raise SourceError(f"MySQL type '{declared}' has no PostgreSQL equivalent in Sluice.")

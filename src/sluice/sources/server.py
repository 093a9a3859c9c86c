"""MariaDB/MySQL and PostgreSQL servers as sources, read through DuckDB's scanners.

DuckDB attaches the server read-only (the ``mysql_scanner`` and ``postgres_scanner``
extensions, loaded by path from their pip packages) and streams rows from it into Parquet,
so memory stays flat however big a table is. Column metadata comes from the server's own
catalog, through the same connection, so raw tables keep the declared types. Passwords are
``${env:NAME}`` references in the URL: resolved only when connecting, never shown.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from sluice import duck
from sluice.config import redact, resolve_secrets
from sluice.duck import quote_ident, quote_literal
from sluice.errors import ConfigError, SourceError, SourceUnavailableError
from sluice.sources.base import (
    Attached,
    Rows,
    RowsAbove,
    SourceColumn,
    SourceTable,
    is_connection_error,
    is_internal_table,
)
from sluice.sources.types import is_bits, lake_type

if TYPE_CHECKING:
    import duckdb

_SECRET_REFERENCE = re.compile(r"\$\{env:[A-Za-z_][A-Za-z0-9_]*\}")
# The scanner asks MariaDB/MySQL for zlib protocol compression unless told otherwise: on a
# LAN that costs the server ~1 µs of CPU per row it sends (orderdetails at scale 1000, 3 M
# rows: 4.3 s of server CPU compressed, 0.9 s not; the read took 4.5 s, now 1.1 s).
#: ``?compression=`` values of a MariaDB/MySQL source URL; the first is the default.
MYSQL_COMPRESSION = ("disabled", "preferred", "required")
_WRITE_PRIVILEGES = (
    "INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "CREATE", "TRUNCATE", "SUPERUSER"
)  # fmt: skip


@dataclass(frozen=True)
class ServerURL:
    """The parts of ``mysql://`` and ``postgresql://`` URLs, password still a reference."""

    url: str
    host: str
    port: int | None
    user: str
    database: str

    @classmethod
    def parse(cls, url: str) -> ServerURL:
        """Split a server URL; an inline password is refused (it would sit in the file).

        >>> ServerURL.parse("mysql://reader:${env:PW}@db.local:3307/shop").port
        3307
        """
        parts = urlsplit(url)
        database = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not database:
            raise ConfigError(
                f"Source URL '{redact(url)}' needs a host and a database, "
                "e.g. mysql://reader:${env:SOURCE_PASSWORD}@host:3306/classicmodels."
            )
        password = parts.password or ""
        if password and not _SECRET_REFERENCE.fullmatch(unquote(password)):
            raise ConfigError(
                f"Source URL '{redact(url)}' holds a password.",
                hint="Put it in an environment variable and write ${env:NAME} in its place.",
            )
        return cls(url, parts.hostname, parts.port, unquote(parts.username or ""), database)


class ServerSource:
    """A database on a MariaDB/MySQL or PostgreSQL server (see the subclasses)."""

    extension = ""
    duckdb_type = ""
    default_port = 0
    bits_read = ""  # reads a BIT(n) column's scanned value as an unsigned number
    lists_tables_when_attached = True

    def __init__(self, url: str, base_dir: Path) -> None:
        self.url = url
        self.parts = ServerURL.parse(url)

    def tables(self, attached: Attached | None = None) -> list[SourceTable]:
        """Every base table in the database (PostgreSQL: the current schema), with columns."""
        if attached:
            con, alias = attached
            rows = con.execute(self._columns_sql(alias)).fetchall()
        else:
            rows = self._catalog_rows(self._columns_sql)
        columns: dict[str, list[SourceColumn]] = {}
        estimates: dict[str, int | None] = {}
        for table, column, declared, nullable, estimate in rows:
            if is_internal_table(table):
                continue
            mapped = lake_type(declared, dialect=self.dialect) or "VARCHAR"
            numeric_bits = is_bits(declared) and mapped not in ("BOOLEAN", "VARCHAR")
            columns.setdefault(table, []).append(
                SourceColumn(
                    column,
                    declared,
                    mapped,
                    bool(nullable),
                    self.bits_read if numeric_bits else None,
                )
            )
            estimates[table] = int(estimate) if estimate is not None and estimate >= 0 else None
        return [SourceTable(name, tuple(cols), estimates[name]) for name, cols in columns.items()]

    def attach(self, con: duckdb.DuckDBPyConnection, alias: str) -> None:
        """Attach the database read-only as ``alias`` (the password goes into a DuckDB secret)."""
        con.execute(f"LOAD {quote_literal(str(duck.extension_path(self.extension)))}")
        secret = f"sluice_{alias}_{secrets.token_hex(4)}"
        try:
            con.execute(self._secret_sql(secret))
            con.execute(
                f"ATTACH {quote_literal(self._attach_target())} AS {alias} "
                f"(TYPE {self.duckdb_type}, SECRET {secret}, READ_ONLY)"
            )
        except Exception as exc:
            message = self._scrub(exc)
            error = SourceUnavailableError if is_connection_error(message) else SourceError
            raise error(
                f"Cannot connect to source {redact(self.url)}: {message}",
                hint="Check that the server is up and the URL, user and password are right.",
            ) from exc

    def relation(self, alias: str, table: SourceTable) -> str:
        """The attached table, in the database's default schema."""
        return f"{alias}.{quote_ident(table.name)}"

    def relation_holding(self, alias: str, table: SourceTable, rows: Rows, work_dir: Path) -> str:
        """The table as ``relation``: DuckDB's MariaDB/MySQL scanner sends the caller's
        filter (a comparison, an ``IN`` list) to the server in one query, which uses the
        column's index."""
        return self.relation(alias, table)

    def write_privileges(self) -> list[str]:
        """Privileges of the source's user that allow changing data (least privilege: none)."""
        rows = self._catalog_rows(self._privileges_sql)
        return sorted({str(row[0]).upper() for row in rows} & set(_WRITE_PRIVILEGES))

    @property
    def dialect(self) -> str:
        """The sqlglot dialect of declared types."""
        return self.duckdb_type

    def _catalog_rows(self, sql: Callable[[str], str]) -> list[tuple[Any, ...]]:
        """The rows of ``sql(alias)`` on a connection of its own, the server attached."""
        con = duck.connect()
        try:
            self.attach(con, "meta")
            return con.execute(sql("meta")).fetchall()
        finally:
            con.close()

    def _scrub(self, exc: Exception) -> str:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        password = urlsplit(resolve_secrets(self.url)).password
        return message.replace(unquote(password), "***") if password else message

    def _password(self) -> str:
        return unquote(urlsplit(resolve_secrets(self.url)).password or "")

    def _secret_sql(self, name: str) -> str:
        p = self.parts
        settings: dict[str, Any] = {
            "HOST": p.host,
            "PORT": p.port or self.default_port,
            "USER": p.user,
            "PASSWORD": self._password(),
            "DATABASE": p.database,
        }
        body = ", ".join(
            f"{key} {value if isinstance(value, int) else quote_literal(str(value))}"
            for key, value in settings.items()
            if value not in (None, "")
        )
        return f"CREATE TEMPORARY SECRET {name} (TYPE {self.duckdb_type}, {body})"

    def _attach_target(self) -> str:
        return ""

    def _columns_sql(self, alias: str) -> str:
        raise NotImplementedError

    def _privileges_sql(self, alias: str) -> str:
        raise NotImplementedError


class MysqlSource(ServerSource):
    """A MariaDB or MySQL database: ``mysql://user:${env:PW}@host:3306/db`` (protocol
    compression off; turn it on for a slow link with ``?compression=preferred``)."""

    extension = "mysql_scanner"
    duckdb_type = "mysql"
    default_port = 3306
    bits_read = "CAST('0x' || hex({}) AS UBIGINT)"  # the scanner reads BIT(n) as bytes

    def __init__(self, url: str, base_dir: Path) -> None:
        super().__init__(url, base_dir)
        found = parse_qs(urlsplit(url).query).get("compression", [MYSQL_COMPRESSION[0]])[-1]
        if found.lower() not in MYSQL_COMPRESSION:
            raise ConfigError(
                f"Source URL '{redact(url)}' has compression={found}.",
                hint=f"Use one of: {', '.join(MYSQL_COMPRESSION)}.",
            )
        self.compression = found.lower()

    def _attach_target(self) -> str:
        return f"compression={self.compression}"

    def _columns_sql(self, alias: str) -> str:
        inner = (
            "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE = 'YES', "
            "t.TABLE_ROWS FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
            "ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME "
            "WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' "
            "ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION"
        )
        return f"SELECT * FROM mysql_query({quote_literal(alias)}, {quote_literal(inner)})"

    def _privileges_sql(self, alias: str) -> str:
        grantee = "CONCAT('''', REPLACE(CURRENT_USER(), '@', '''@'''), '''')"
        inner = " UNION ".join(
            f"SELECT PRIVILEGE_TYPE FROM information_schema.{view} WHERE GRANTEE = {grantee}{where}"
            for view, where in (
                ("USER_PRIVILEGES", ""),
                ("SCHEMA_PRIVILEGES", " AND TABLE_SCHEMA = DATABASE()"),
                ("TABLE_PRIVILEGES", " AND TABLE_SCHEMA = DATABASE()"),
            )
        )
        return f"SELECT * FROM mysql_query({quote_literal(alias)}, {quote_literal(inner)})"


class PostgresSource(ServerSource):
    """A PostgreSQL schema: ``postgresql://user:${env:PW}@host:5432/db`` (the current schema;
    pick another with ``?options=-csearch_path%3Dname``)."""

    extension = "postgres_scanner"
    duckdb_type = "postgres"
    default_port = 5432
    bits_read = "CAST(CAST({} AS BIT) AS UBIGINT)"  # the scanner reads bit(n) as '0101…'

    def __init__(self, url: str, base_dir: Path) -> None:
        super().__init__(url, base_dir)
        options = parse_qs(urlsplit(url).query).get("options", [""])[0]
        found = re.search(r"-c\s*search_path=([^\s,]+)", options)
        self.schema = found.group(1) if found else "public"

    def relation(self, alias: str, table: SourceTable) -> str:
        """The attached table in the URL's schema."""
        return f"{alias}.{quote_ident(self.schema)}.{quote_ident(table.name)}"

    def relation_holding(self, alias: str, table: SourceTable, rows: Rows, work_dir: Path) -> str:
        """The result of a query the server runs with ``rows`` as its WHERE clause.

        The scanner reads a table in ranges of its physical blocks, each query filtered: the
        server scans the whole table for a few new rows (30,000 of 3 million order lines:
        0.13 s). Asked for them by key in one query, it uses the key's index (0.01 s).
        """
        column = _pg_ident(rows.column)
        if isinstance(rows, RowsAbove):
            where = f"{column} > {int(rows.bound)}"
        else:
            where = f"{column} IN ({', '.join(_pg_literal(v) for v in rows.values)})"
        columns = ", ".join(_pg_ident(c.name) for c in table.columns)
        inner = (
            f"SELECT {columns} FROM {_pg_ident(self.schema)}.{_pg_ident(table.name)} WHERE {where}"
        )
        return f"postgres_query({quote_literal(alias)}, {quote_literal(inner)})"

    def _columns_sql(self, alias: str) -> str:
        inner = (
            "SELECT cl.relname, a.attname, format_type(a.atttypid, a.atttypmod), "
            "NOT a.attnotnull, CAST(cl.reltuples AS bigint) FROM pg_attribute a "
            "JOIN pg_class cl ON cl.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = cl.relnamespace "
            f"WHERE n.nspname = {quote_literal(self.schema)} AND cl.relkind IN ('r', 'p') "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY cl.relname, a.attnum"
        )
        return f"SELECT * FROM postgres_query({quote_literal(alias)}, {quote_literal(inner)})"

    def _privileges_sql(self, alias: str) -> str:
        checks = " UNION ".join(
            f"SELECT '{p}' FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace "
            f"WHERE n.nspname = {quote_literal(self.schema)} AND cl.relkind IN ('r', 'p') "
            f"AND has_table_privilege(cl.oid, '{p}')"
            for p in ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
        )
        superuser = "SELECT 'SUPERUSER' FROM pg_roles WHERE rolname = current_user AND rolsuper"
        inner = f"{checks} UNION {superuser}"
        return f"SELECT * FROM postgres_query({quote_literal(alias)}, {quote_literal(inner)})"


def _pg_ident(name: str) -> str:
    """A PostgreSQL identifier, quoted.

    >>> _pg_ident('order"Number')
    '"order""Number"'
    """
    return '"' + name.replace('"', '""') + '"'


def _pg_literal(value: int | str) -> str:
    """A PostgreSQL constant: an integer as is, text quoted (the column's type applies).

    >>> _pg_literal(7), _pg_literal("S10_1678"), _pg_literal("O'Hara")
    ('7', "'S10_1678'", "'O''Hara'")
    """
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"

"""One small interface over the DB-API drivers of SQLite, MariaDB/MySQL and PostgreSQL.

For code that changes a source database directly (the activity simulator): SQL is written
once with ``?`` placeholders and ``quote()`` for identifiers, and runs on each dialect.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sluice.config import redact, resolve_secrets
from sluice.errors import ConfigError, SourceError, SourceUnavailableError
from sluice.sources.base import is_connection_error

CONNECT_TIMEOUT = 10

_SCHEMES = {
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "postgresql": "postgresql",
    "postgres": "postgresql",
}


def url_dialect(url: str) -> str:
    """The target dialect a URL names: sqlite, mysql or postgresql.

    >>> url_dialect("mariadb://me@db/shop"), url_dialect("postgres://me@db/shop")
    ('mysql', 'postgresql')
    """
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    dialect = _SCHEMES.get(scheme)
    if dialect is None or "://" not in url:
        raise ConfigError(
            f"Unsupported target URL '{redact(url)}'.",
            hint="Use sqlite:///file.db, mysql://user@host:3306/db or "
            "postgresql://user@host:5432/db.",
        )
    return dialect


@dataclass
class Database:
    """An open connection and the dialect it speaks."""

    dialect: str
    con: Any
    url: str

    def quote(self, name: str) -> str:
        """Quote an identifier (camelCase names stay as they are)."""
        if self.dialect == "mysql":
            return "`" + name.replace("`", "``") + "`"
        return '"' + name.replace('"', '""') + '"'

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` placeholders); return its rows, if any."""
        if self.dialect != "sqlite":
            sql = sql.replace("%", "%%").replace("?", "%s")
        values = [_value(self.dialect, v) for v in params]
        try:
            cur = self.con.cursor()
            try:
                cur.execute(sql, values)
                return list(cur.fetchall()) if cur.description else []
            finally:
                cur.close()
        except Exception as exc:
            if not _is_driver_error(exc):
                raise
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            error = SourceUnavailableError if is_connection_error(message) else SourceError
            raise error(f"{redact(self.url)}: {message}") from exc

    def has_column(self, table: str, column: str) -> bool:
        """Whether ``table`` has a column named ``column``."""
        if self.dialect == "sqlite":
            rows = self.execute(f"PRAGMA table_info({self.quote(table)})")
            return any(row[1] == column for row in rows)
        schema = "DATABASE()" if self.dialect == "mysql" else "current_schema()"
        return bool(
            self.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = "
                f"{schema} AND table_name = ? AND column_name = ?",
                (table, column),
            )
        )

    def commit(self) -> None:
        """Commit the current transaction."""
        self.con.commit()

    def close(self) -> None:
        """Close the connection."""
        self.con.close()


def open_database(url: str, *, base_dir: Path) -> Database:
    """Connect to the database ``url`` names (``${env:VAR}`` passwords resolved)."""
    dialect = url_dialect(url)
    shown = redact(url)
    if dialect == "sqlite":
        from sluice.sources.sqlite import sqlite_path

        path = sqlite_path(url, base_dir=base_dir)
        if not path.is_file():
            raise SourceError(f"Source file {path} does not exist.")
        return Database("sqlite", sqlite3.connect(path, timeout=30), url)
    parts = urlsplit(resolve_secrets(url))
    con: Any
    try:
        if dialect == "mysql":
            import pymysql

            con = pymysql.connect(
                host=parts.hostname,
                port=parts.port or 3306,
                user=unquote(parts.username or "") or None,
                password=unquote(parts.password or ""),
                database=unquote(parts.path.lstrip("/")),
                connect_timeout=CONNECT_TIMEOUT,
            )
        else:
            import psycopg

            conninfo = "postgresql" + resolve_secrets(url)[resolve_secrets(url).index(":") :]
            con = psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if parts.password:
            message = message.replace(unquote(parts.password), "***")
        raise SourceUnavailableError(f"Cannot connect to {shown}: {message}") from exc
    return Database(dialect, con, url)


def _is_driver_error(exc: Exception) -> bool:
    """An error raised by one of the three drivers (DB-API ``Error`` classes)."""
    return isinstance(exc, sqlite3.Error) or type(exc).__module__.split(".")[0] in {
        "pymysql",
        "psycopg",
    }


def _value(dialect: str, value: Any) -> Any:
    """SQLite stores decimals as text with NUMERIC affinity, like the generator does."""
    if dialect == "sqlite" and isinstance(value, Decimal):
        return str(value)
    return value

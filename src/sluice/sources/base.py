"""The interface every source connector implements, and the registry that picks one by URL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sluice.config import redact
from sluice.errors import SourceError

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class SourceColumn:
    """A source column: its name, its type as the source declares it, and the lake type."""

    name: str
    source_type: str
    lake_type: str
    nullable: bool
    #: How to read the scanned value where a CAST to ``lake_type`` cannot ("{}": the column).
    read_sql: str | None = None


@dataclass(frozen=True)
class SourceTable:
    """A source table's name and columns, in the source's order."""

    name: str
    columns: tuple[SourceColumn, ...]
    estimated_rows: int | None = None


@dataclass(frozen=True)
class RowsAbove:
    """The rows whose numeric ``column`` is above ``bound`` (new rows past a cursor)."""

    column: str
    bound: int


@dataclass(frozen=True)
class RowsAmong:
    """The rows whose ``column`` holds one of ``values`` (the changed keys of a CDC run)."""

    column: str
    values: tuple[int | str, ...]


Rows = RowsAbove | RowsAmong
Attached = tuple["duckdb.DuckDBPyConnection", str]


class Source(Protocol):
    """A readable source system."""

    url: str
    #: ``tables`` can read the source's catalog through a connection ``attach`` prepared.
    lists_tables_when_attached: bool

    def tables(self, attached: Attached | None = None) -> list[SourceTable]:
        """Every user table in the source, with its columns (not Sluice's own tables).

        ``attached`` is a DuckDB connection and the alias ``attach`` made the source readable
        as; a source that ``lists_tables_when_attached`` uses it instead of connecting again."""
        ...

    def attach(self, con: duckdb.DuckDBPyConnection, alias: str) -> None:
        """Make the source readable in DuckDB as the catalog ``alias``, read-only."""
        ...

    def relation(self, alias: str, table: SourceTable) -> str:
        """The DuckDB FROM item that reads ``table`` once the source is attached as ``alias``."""
        ...

    def relation_holding(self, alias: str, table: SourceTable, rows: Rows, work_dir: Path) -> str:
        """A DuckDB FROM item like ``relation`` that holds at least ``rows`` of ``table``: the
        caller still filters it. A source whose scanner sends the caller's filter on
        returns ``relation``; one whose server would scan the table for it asks for the rows
        in a query of its own; one that cannot filter may copy the rows into ``work_dir``."""
        ...

    def write_privileges(self) -> list[str]:
        """What the credentials may change in the source (a pipeline needs none)."""
        ...


#: Tables Sluice itself keeps in a source (the CDC change log) are not the source's data.
INTERNAL_TABLE_PREFIX = "_sluice_"


def is_internal_table(name: str) -> bool:
    """True for a table Sluice keeps in the source, which jobs never extract.

    >>> is_internal_table("_sluice_changes"), is_internal_table("orders")
    (True, False)
    """
    return name.startswith(INTERNAL_TABLE_PREFIX)


# What drivers say when the server, not the request, is the problem: worth retrying.
_CONNECTION_TROUBLE = (
    "can't connect",
    "could not connect",
    "connection refused",
    "lost connection",
    "server has gone away",
    "server closed the connection",
    "connection reset",
    "broken pipe",
    "timed out",
    "timeout expired",
    "unable to connect",
    "failed to connect",
    "no route to host",
    "failed to fetch result row",  # DuckDB's MySQL scanner when the connection drops mid-query
    "database is locked",  # SQLite while another process holds an exclusive lock
)


def is_connection_error(message: str) -> bool:
    """True when an error message says the server could not be reached or went away.

    >>> is_connection_error("IO Error: Can't connect to server on '127.0.0.1' (115)")
    True
    >>> is_connection_error("Access denied for user 'reader'@'localhost'")
    False
    """
    lowered = message.lower()
    return any(phrase in lowered for phrase in _CONNECTION_TROUBLE)


SourceFactory = Callable[[str, Path], Source]
_REGISTRY: dict[str, str] = {
    "sqlite": "sluice.sources.sqlite:SqliteSource",
    "mysql": "sluice.sources.server:MysqlSource",
    "mariadb": "sluice.sources.server:MysqlSource",
    "postgresql": "sluice.sources.server:PostgresSource",
    "postgres": "sluice.sources.server:PostgresSource",
}


def open_source(url: str, *, base_dir: Path) -> Source:
    """Open the source a URL names; relative file paths are relative to ``base_dir``."""
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    target = _REGISTRY.get(scheme)
    if target is None:
        known = ", ".join(f"{name}://" for name in sorted(_REGISTRY))
        raise SourceError(f"Unsupported source URL '{redact(url)}'.", hint=f"Use one of: {known}.")
    module_name, _, class_name = target.partition(":")
    import importlib

    factory: SourceFactory = getattr(importlib.import_module(module_name), class_name)
    return factory(url, base_dir)

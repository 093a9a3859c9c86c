"""Locked-down DuckDB databases shared by the queries that pin the same published files.

Opening a DuckDB database and creating its views costs tens of milliseconds, more than
a dashboard query. A server therefore keeps one locked database per pinned file set and
gives each query its own cursor (a connection of its own, interruptible on its own).
When a new publication appears, queries that start after it get a new database; the old
one closes once its last query ends, so no query ever sees a mix of the two.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sluice import duck
from sluice.core import TableName
from sluice.query.engine import QueryEngine

if TYPE_CHECKING:
    import duckdb

Pinned = Mapping[TableName, tuple[str, ...]]


@dataclass
class _Shared:
    key: tuple[tuple[TableName, tuple[str, ...]], ...]
    con: duckdb.DuckDBPyConnection
    users: int = 0
    retired: bool = False


class SharedDatabases:
    """Cursors on the locked database of a pinned file set; one database at a time."""

    def __init__(self, engine: QueryEngine, *, threads: int, memory_limit: str) -> None:
        self.engine = engine
        self.threads = threads
        self.memory_limit = memory_limit
        self._current: _Shared | None = None
        self._lock = threading.Lock()

    @contextmanager
    def cursor(self, *, database: str, tables: Pinned) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection reading exactly ``tables``, with ``database`` as the default schema."""
        shared = self._acquire(tables, database)
        try:
            cursor = shared.con.cursor()
            try:
                cursor.execute(f"USE memory.{duck.quote_ident(database)}")
                yield cursor
            finally:
                cursor.close()
        finally:
            self._release(shared)

    def close(self) -> None:
        """Close the current database once its queries end."""
        with self._lock:
            current, self._current = self._current, None
            if current is not None:
                self._retire(current)

    def _acquire(self, tables: Pinned, database: str) -> _Shared:
        key = tuple(sorted(tables.items()))
        with self._lock:
            current = self._current
            if current is None or current.key != key:
                con = self.engine.connect(
                    database=database,
                    tables=tables,
                    threads=self.threads,
                    memory_limit=self.memory_limit,
                )
                if current is not None:
                    self._retire(current)
                current = self._current = _Shared(key, con)
            else:
                self.engine.check_database(database, tables)
            current.users += 1
            return current

    def _release(self, shared: _Shared) -> None:
        with self._lock:
            shared.users -= 1
            if shared.retired and shared.users == 0:
                shared.con.close()

    @staticmethod
    def _retire(shared: _Shared) -> None:
        shared.retired = True
        if shared.users == 0:
            shared.con.close()

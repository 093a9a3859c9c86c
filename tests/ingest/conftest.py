"""Private server databases for ingestion tests (the fixtures of tests/sources), and a way to
watch SQLite copy rows out of big tables."""

from typing import Any

import pytest

from sluice.sources import sqlite as sqlite_module
from tests.sources.conftest import mysql_url, postgres_url, target

__all__ = ["counted_copies", "mysql_url", "postgres_url", "target"]


def counted_copies(monkeypatch: pytest.MonkeyPatch, function: str) -> list[int]:
    """Have a SQLite source copy the rows a run needs out of every table, as it does for big
    ones, with ``function`` (``copy_rows_past`` or ``copy_rows_with``); the list receives
    the row count of each copy made."""
    copies: list[int] = []
    real = getattr(sqlite_module, function)

    def counted(*args: Any) -> int:
        copies.append(real(*args))
        return copies[-1]

    monkeypatch.setattr(sqlite_module, "NARROW_ROWS", 0)
    monkeypatch.setattr(sqlite_module, function, counted)
    return copies

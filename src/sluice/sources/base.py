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


@dataclass(frozen=True)
class SourceTable:
    """A source table's name and columns, in the source's order."""

    name: str
    columns: tuple[SourceColumn, ...]
    estimated_rows: int | None = None


class Source(Protocol):
    """A readable source system."""

    url: str

    def tables(self) -> list[SourceTable]:
        """Every user table in the source, with its columns."""
        ...

    def attach(self, con: duckdb.DuckDBPyConnection, alias: str) -> None:
        """Make the source readable in DuckDB as the catalog ``alias``, read-only."""
        ...


SourceFactory = Callable[[str, Path], Source]
_REGISTRY: dict[str, str] = {
    "sqlite": "sluice.sources.sqlite:SqliteSource",
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

"""``sluice source check``: can Sluice reach a source, what is in it, and may it write?"""

from __future__ import annotations

from dataclasses import dataclass

from sluice import duck
from sluice.config import redact
from sluice.sources.base import Source

ALIAS = "src"


@dataclass(frozen=True)
class SourceReport:
    """A source's tables with exact row counts, and what its credentials could change."""

    name: str
    url: str
    tables: tuple[tuple[str, int], ...]
    write_privileges: tuple[str, ...]


def check_source(name: str, source: Source) -> SourceReport:
    """Connect to ``source``, count every table's rows and read the user's privileges."""
    tables = source.tables()
    con = duck.connect(extensions=("sqlite_scanner",))
    try:
        source.attach(con, ALIAS)
        counts = []
        for table in tables:
            row = con.execute(f"SELECT count(*) FROM {source.relation(ALIAS, table)}").fetchone()
            counts.append((table.name, int(row[0]) if row else 0))
    finally:
        con.close()
    return SourceReport(name, redact(source.url), tuple(counts), tuple(source.write_privileges()))

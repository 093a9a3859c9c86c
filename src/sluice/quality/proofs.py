"""Cheap, exact proofs that a key check passes, tried before the check's own SQL.

A proof first reads a few aggregates of the key columns: row count, NULL count, min and
max (DuckDB answers them from Parquet statistics or one light scan). For integer keys whose
range is small it then builds a bitmap of the key values with ``bitstring_agg``, one bit
per value in the range, in one pass without hashing or sorting:

- keys are distinct exactly when the bitmap has as many bits set as there are rows;
- distinct dimension keys that fill their range (surrogate keys do) contain every fact key
  between their min and max, without joining the facts to them.

Other keys of a table that is not too large are distinct when their row hashes are: as many
distinct ``hash(key columns)`` as rows proves it (a collision only sends the decision to the
SQL). That holds for types whose equal values have equal bytes, so not for floats.

When a proof does not hold, or does not apply (other types, NULL keys, a range too wide
for a small bitmap), the check's SQL runs and finds the bad rows. A proof never passes a
table the SQL would fail: ``tests/quality/test_checks.py`` compares both on random tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sluice.duck import quote_ident

if TYPE_CHECKING:
    import duckdb

HASHED_ROWS = 1_000_000
"""Up to this many rows a hash of the key is cheaper than the check's sort."""
MAX_BITS = 1 << 27
"""The widest bitmap a proof builds (16 MiB per thread)."""
BITS_PER_ROW = 64
"""Past this many bits per row a bitmap costs more than the check's hash or sort."""
SMALL_BITMAP = 1 << 16
"""Bitmaps up to this size are always cheap enough, however few the rows."""

_INTEGER_TYPES = frozenset(
    f"{sign}{name}"
    for sign in ("", "U")
    for name in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
)
_HASHABLE_TYPES = _INTEGER_TYPES | {
    "VARCHAR",
    "BLOB",
    "BOOLEAN",
    "DATE",
    "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE",
}


@dataclass(frozen=True)
class KeyStats:
    """Aggregates of one key column: its DuckDB type, NULLs, and min and max as integers
    (None unless it is an integer column with values)."""

    type: str
    nulls: int
    lo: int | None
    hi: int | None

    @property
    def integer(self) -> bool:
        """Whether the column has an integer type."""
        return self.type in _INTEGER_TYPES

    @property
    def hashable(self) -> bool:
        """Whether equal values of the column's type always have equal bytes."""
        return self.type in _HASHABLE_TYPES or self.type.startswith("DECIMAL(")


@dataclass(frozen=True)
class UniqueProof:
    """Proves that no two rows of the relation ``target`` have the same ``columns`` (NULLs
    compare equal, as in the check)."""

    target: str
    columns: tuple[str, ...]

    def holds(self, con: duckdb.DuckDBPyConnection) -> bool:
        """True only if no key occurs twice; False when unsure."""
        rows, stats = key_stats(con, self.target, self.columns)
        if rows == 0:
            return True
        if not all(s.integer and s.nulls == 0 for s in stats):
            return self._distinct_hashes(con, rows, stats)
        widths = [s.hi - s.lo + 1 for s in stats if s.lo is not None and s.hi is not None]
        bits = math.prod(widths)
        if bits < rows:
            return False  # fewer values than rows: some key repeats (the SQL names it)
        if not bitmap_fits(bits, rows):
            return self._distinct_hashes(con, rows, stats)
        packed, stride = [], 1
        for column, stat, width in reversed(list(zip(self.columns, stats, widths, strict=True))):
            packed.append(f"({quote_ident(column)} - {stat.lo}) * {stride}")
            stride *= width
        row = con.execute(
            f"SELECT bit_count({_bitmap(' + '.join(packed), bits)}) FROM {self.target}"
        ).fetchone()
        return row is not None and row[0] == rows

    def _distinct_hashes(
        self, con: duckdb.DuckDBPyConnection, rows: int, stats: list[KeyStats]
    ) -> bool:
        if rows > HASHED_ROWS or not all(s.hashable for s in stats):
            return False
        columns = ", ".join(quote_ident(c) for c in self.columns)
        row = con.execute(f"SELECT count(DISTINCT hash({columns})) FROM {self.target}").fetchone()
        return row is not None and row[0] == rows


@dataclass(frozen=True)
class ForeignKeyProof:
    """Proves that every value of ``column`` in ``target`` exists exactly once as ``key`` of
    ``reference`` (NULLs allowed only when the key is not ``required``)."""

    target: str
    column: str
    reference: str
    key: str
    required: bool

    def holds(self, con: duckdb.DuckDBPyConnection) -> bool:
        """True only if the foreign key holds; False when unsure."""
        dim_rows, (dim,) = key_stats(con, self.reference, (self.key,))
        _, (fact,) = key_stats(con, self.target, (self.column,))
        if not (dim.integer and fact.integer) or dim.nulls or (self.required and fact.nulls):
            return False
        if dim.lo is None or dim.hi is None:
            return fact.lo is None  # an empty dimension: only NULL keys pass
        bits = dim.hi - dim.lo + 1
        if bits < dim_rows or not bitmap_fits(bits, dim_rows):
            return False
        if fact.lo is not None and fact.hi is not None and (fact.lo < dim.lo or fact.hi > dim.hi):
            return False
        if bits != dim_rows and fact.lo is not None:
            return False  # keys with gaps: joining the facts to them is cheaper than a bitmap
        # Distinct keys that fill lo..hi (surrogate keys do) hold every value there is.
        dim_bitmap = _bitmap(f"{quote_ident(self.key)} - {dim.lo}", bits)
        row = con.execute(f"SELECT bit_count({dim_bitmap}) FROM {self.reference}").fetchone()
        return row is not None and row[0] == dim_rows


def key_stats(
    con: duckdb.DuckDBPyConnection, relation: str, columns: tuple[str, ...]
) -> tuple[int, list[KeyStats]]:
    """The row count of ``relation`` and the aggregates of each of ``columns``."""
    parts = ["count(*)"]
    for column in columns:
        c = quote_ident(column)
        parts += [
            f"typeof(min({c}))",
            f"count(*) - count({c})",
            f"TRY_CAST(min({c}) AS HUGEINT)",
            f"TRY_CAST(max({c}) AS HUGEINT)",
        ]
    row = con.execute(f"SELECT {', '.join(parts)} FROM {relation}").fetchone()
    assert row is not None
    stats = []
    for i in range(1, len(row), 4):
        integer = str(row[i]) in _INTEGER_TYPES
        lo, hi = (row[i + 2], row[i + 3]) if integer else (None, None)
        stats.append(KeyStats(str(row[i]), int(row[i + 1]), lo, hi))
    return int(row[0]), stats


def bitmap_fits(bits: int, rows: int) -> bool:
    """Whether a bitmap of ``bits`` bits is worth building for ``rows`` rows.

    >>> bitmap_fits(5_542_000, 2_996_000), bitmap_fits(1 << 40, 10**9), bitmap_fits(50_000, 3)
    (True, False, True)
    """
    return bits <= MAX_BITS and bits <= max(BITS_PER_ROW * rows, SMALL_BITMAP)


def _bitmap(offset: str, bits: int) -> str:
    """The aggregate setting bit ``offset`` (0 .. bits - 1) for every row."""
    return f"bitstring_agg(CAST({offset} AS BIGINT), 0, {bits - 1})"

"""Map a source's declared column types to the types the lake stores (Iceberg-compatible)."""

from __future__ import annotations

from functools import cache

from sqlglot import exp
from sqlglot.errors import ParseError

_T = exp.DataType.Type
_INTEGER = {_T.TINYINT, _T.SMALLINT, _T.MEDIUMINT, _T.INT, _T.UTINYINT, _T.USMALLINT}
_BIGINT = {_T.BIGINT, _T.UMEDIUMINT, _T.UINT}
_TEXT = {
    _T.CHAR,
    _T.NCHAR,
    _T.VARCHAR,
    _T.NVARCHAR,
    _T.TEXT,
    _T.TINYTEXT,
    _T.MEDIUMTEXT,
    _T.LONGTEXT,
    _T.ENUM,
    _T.SET,
    _T.JSON,
    _T.UUID,
}
_BINARY = {_T.BINARY, _T.VARBINARY, _T.BLOB, _T.TINYBLOB, _T.MEDIUMBLOB, _T.LONGBLOB}
_TIMESTAMP = {_T.DATETIME, _T.TIMESTAMP, _T.DATETIME64, _T.TIMESTAMPNTZ}


@cache
def lake_type(declared: str, *, dialect: str = "mysql") -> str | None:
    """The DuckDB type to store a declared source type as, or None when it is unknown.

    >>> lake_type("decimal(10,2)")
    'DECIMAL(10, 2)'
    >>> lake_type("smallint(6)"), lake_type("mediumtext"), lake_type("int(10) unsigned")
    ('INTEGER', 'VARCHAR', 'BIGINT')
    >>> lake_type("bit(1)"), lake_type("bit(8)"), lake_type("numeric", dialect="postgres")
    ('BOOLEAN', 'BIGINT', 'DOUBLE')
    """
    if not declared.strip():
        return None
    try:
        parsed = exp.DataType.build(declared, dialect=dialect)
    except (ParseError, ValueError):
        return None
    kind = parsed.this
    if kind in _INTEGER:
        return "INTEGER"
    if kind in _BIGINT:
        return "BIGINT"
    if kind in {_T.UBIGINT, _T.INT128, _T.UINT128}:
        return "DECIMAL(38, 0)"
    if kind in {_T.DECIMAL, _T.BIGDECIMAL, _T.UDECIMAL}:
        params = [p.name for p in parsed.expressions]
        if not params and dialect == "postgres":
            return "DOUBLE"  # numeric of any precision: DuckDB's scanner reads it as DOUBLE
        precision = min(int(params[0]), 38) if params else 38
        scale = int(params[1]) if len(params) > 1 else 0
        return f"DECIMAL({precision}, {scale})"
    if kind in {_T.FLOAT}:
        return "FLOAT"
    if kind in {_T.DOUBLE, _T.UDOUBLE}:
        return "DOUBLE"
    if kind == _T.BIT:
        return _bits_type(declared, [p.name for p in parsed.expressions])
    if kind in _TEXT:
        return "VARCHAR"
    if kind in _BINARY:
        return "BLOB"
    if kind == _T.DATE:
        return "DATE"
    if kind in _TIMESTAMP:
        return "TIMESTAMP"
    if kind == _T.TIMESTAMPTZ:
        return "TIMESTAMPTZ"
    if kind == _T.TIME:
        return "TIME"
    if kind == _T.YEAR:
        return "INTEGER"
    if kind == _T.BOOLEAN:
        return "BOOLEAN"
    return None


def _bits_type(declared: str, params: list[str]) -> str:
    """A bit string's lake type: one bit is a BOOLEAN, up to 64 an unsigned number, longer
    or varying-length strings their text of 0s and 1s."""
    if "varying" in declared.lower():
        return "VARCHAR"
    width = int(params[0]) if params else 1
    if width == 1:
        return "BOOLEAN"
    if width < 64:
        return "BIGINT"
    return "DECIMAL(20, 0)" if width == 64 else "VARCHAR"


def is_bits(declared: str) -> bool:
    """True for a BIT(n) or BIT VARYING column, which scanners do not read as numbers."""
    return declared.strip().lower().startswith(("bit(", "bit varying", "varbit"))

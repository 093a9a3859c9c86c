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
    if kind in {_T.DECIMAL, _T.BIGDECIMAL}:
        params = [p.name for p in parsed.expressions]
        precision = min(int(params[0]), 38) if params else 38
        scale = int(params[1]) if len(params) > 1 else 0
        return f"DECIMAL({precision}, {scale})"
    if kind in {_T.FLOAT}:
        return "FLOAT"
    if kind in {_T.DOUBLE}:
        return "DOUBLE"
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
    if kind in {_T.BOOLEAN, _T.BIT}:
        return "BOOLEAN"
    return None

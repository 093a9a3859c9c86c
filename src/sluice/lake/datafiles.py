"""Iceberg schemas and data-file entries for the Parquet files DuckDB writes.

pyiceberg derives both with pyarrow (``parquet_file_to_data_file``); that code path imports
pyarrow.dataset and pandas, about 0.3 s of CPU in every run. DuckDB reads the footer anyway,
so a footer read once by DuckDB becomes the same schema and the same statistics here:
column sizes, value and null counts, and lower and upper bounds (strings and binaries
truncated to 16 characters or bytes, Iceberg's default metrics mode). Anything else (nested
columns, per-column metrics settings, a value this module cannot read back) returns None,
and the caller falls back to pyiceberg's own code.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.core import ColumnChunk, ParquetFooter
from sluice.duck import quote_literal

if TYPE_CHECKING:
    import duckdb
    from pyiceberg.manifest import DataFile
    from pyiceberg.schema import Schema
    from pyiceberg.table.metadata import TableMetadata
    from pyiceberg.typedef import Record
    from pyiceberg.types import PrimitiveType

TRUNCATE_LENGTH = 16
_METRICS_PROPERTY_PREFIX = "write.metadata.metrics."
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
_BLOB_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})|(.)", re.DOTALL)


def read_footer(
    con: duckdb.DuckDBPyConnection, path: Path | str, *, file_size: int | None = None
) -> ParquetFooter:
    """Read a Parquet file's schema and per-row-group column statistics with DuckDB
    (``file_size``: its size in bytes, if it is not a local file)."""
    literal = quote_literal(str(path))
    columns = con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal})").fetchall()
    chunks = con.execute(
        "SELECT row_group_id, row_group_num_rows, path_in_schema, type, num_values, "
        "stats_null_count, stats_min_value, stats_max_value, total_compressed_size, "
        "data_page_offset, dictionary_page_offset "
        f"FROM parquet_metadata({literal}) ORDER BY row_group_id, column_id"
    ).fetchall()
    groups: dict[int, list[ColumnChunk]] = {}
    rows: dict[int, int] = {}
    for group, group_rows, column, physical, values, nulls, lo, hi, size, data, dic in chunks:
        rows[group] = int(group_rows)
        groups.setdefault(group, []).append(
            ColumnChunk(column, physical, int(values), nulls, lo, hi, int(size), int(data), dic)
        )
    return ParquetFooter(
        path=str(path),
        size=Path(path).stat().st_size if file_size is None else file_size,
        rows=sum(rows.values()),
        columns=tuple((str(name), str(kind)) for name, kind, *_ in columns),
        row_groups=tuple(tuple(groups[g]) for g in sorted(groups)),
    )


def iceberg_type(duckdb_type: str) -> PrimitiveType | None:
    """The Iceberg type of a flat DuckDB column type, or None.

    >>> str(iceberg_type("DECIMAL(10,2)")), str(iceberg_type("TIMESTAMP WITH TIME ZONE"))
    ('decimal(10, 2)', 'timestamptz')
    >>> iceberg_type("INTEGER[]") is None
    True
    """
    from pyiceberg import types as t

    simple: dict[str, PrimitiveType] = {
        "BOOLEAN": t.BooleanType(),
        "TINYINT": t.IntegerType(),
        "SMALLINT": t.IntegerType(),
        "INTEGER": t.IntegerType(),
        "BIGINT": t.LongType(),
        "FLOAT": t.FloatType(),
        "DOUBLE": t.DoubleType(),
        "VARCHAR": t.StringType(),
        "BLOB": t.BinaryType(),
        "DATE": t.DateType(),
        "TIME": t.TimeType(),
        "TIMESTAMP": t.TimestampType(),
        "TIMESTAMP WITH TIME ZONE": t.TimestamptzType(),
    }
    if duckdb_type in simple:
        return simple[duckdb_type]
    decimal = _DECIMAL.fullmatch(duckdb_type)
    if decimal:
        return t.DecimalType(int(decimal.group(1)), int(decimal.group(2)))
    return None


def iceberg_schema(footer: ParquetFooter) -> Schema | None:
    """The Iceberg schema of a flat Parquet file (optional fields), or None."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

    fields = []
    for field_id, (name, kind) in enumerate(footer.columns, start=1):
        field_type = iceberg_type(kind)
        if field_type is None:
            return None
        fields.append(NestedField(field_id, name, field_type, required=False))
    return Schema(*fields)


def data_file(
    footer: ParquetFooter, metadata: TableMetadata, *, partition: Record | None = None
) -> DataFile | None:
    """The manifest entry for ``footer``'s file in a table with ``metadata``, or None.

    A partitioned table needs the file's ``partition`` values (in its spec's order).
    """
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.typedef import Record

    if any(key.startswith(_METRICS_PROPERTY_PREFIX) for key in metadata.properties):
        return None
    if partition is None and not metadata.spec().is_unpartitioned():
        return None
    schema = metadata.schema()
    fields = {}
    for name, _ in footer.columns:
        field = schema.find_field(name) if name in schema._name_to_id else None
        if field is None or not field.field_type.is_primitive:
            return None
        fields[name] = field
    try:
        stats = _statistics(footer, fields)
    except (ValueError, KeyError, ArithmeticError):
        return None
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=footer.path,
        file_format=FileFormat.PARQUET,
        partition=partition if partition is not None else Record(),
        file_size_in_bytes=footer.size,
        sort_order_id=None,
        spec_id=metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        record_count=footer.rows,
        **stats,
    )


def _statistics(footer: ParquetFooter, fields: dict[str, Any]) -> dict[str, Any]:
    from pyiceberg.conversions import to_bytes

    sizes: dict[int, int] = {}
    values: dict[int, int] = {}
    nulls: dict[int, int] = {}
    lows: dict[int, Any] = {}
    highs: dict[int, Any] = {}
    offsets = []
    for group in footer.row_groups:
        first = group[0]
        dictionary = first.dictionary_page_offset
        data = first.data_page_offset
        offsets.append(dictionary if dictionary is not None and dictionary < data else data)
        for chunk in group:
            field = fields[chunk.column]
            fid = field.field_id
            sizes[fid] = sizes.get(fid, 0) + chunk.compressed_size
            values[fid] = values.get(fid, 0) + chunk.values
            if chunk.nulls is not None:
                nulls[fid] = nulls.get(fid, 0) + int(chunk.nulls)
            for text, bounds, pick in ((chunk.min, lows, min), (chunk.max, highs, max)):
                if text is not None:
                    value = _parse(field.field_type, text)
                    bounds[fid] = value if fid not in bounds else pick(bounds[fid], value)
    types = {field.field_id: field.field_type for field in fields.values()}
    lower = {fid: to_bytes(types[fid], _lower_bound(v)) for fid, v in lows.items()}
    upper = {}
    for fid, value in highs.items():
        bound = _upper_bound(value)
        if bound is not None:
            upper[fid] = to_bytes(types[fid], bound)
    return {
        "column_sizes": sizes,
        "value_counts": values,
        "null_value_counts": nulls,
        "nan_value_counts": {},
        "lower_bounds": lower,
        "upper_bounds": upper,
        "split_offsets": sorted(offsets),
    }


def _lower_bound(value: Any) -> Any:
    """Strings and binaries keep their first 16 characters or bytes (a valid lower bound)."""
    return value[:TRUNCATE_LENGTH] if isinstance(value, str | bytes) else value


def _upper_bound(value: Any) -> Any:
    """Truncated strings and binaries are rounded up so they stay an upper bound (or None)."""
    from pyiceberg.utils.truncate import (
        truncate_upper_bound_binary_string,
        truncate_upper_bound_text_string,
    )

    if isinstance(value, str):
        return truncate_upper_bound_text_string(value, TRUNCATE_LENGTH)
    if isinstance(value, bytes):
        return truncate_upper_bound_binary_string(value, TRUNCATE_LENGTH)
    return value


def _parse(kind: Any, text: str) -> Any:
    """DuckDB's text form of a Parquet statistic as the Python value pyiceberg serializes."""
    from pyiceberg import types as t

    if isinstance(kind, t.StringType):
        return text
    if isinstance(kind, t.IntegerType | t.LongType):
        return int(text)
    if isinstance(kind, t.FloatType | t.DoubleType):
        return float(text)
    if isinstance(kind, t.DecimalType):
        return Decimal(text)
    if isinstance(kind, t.BooleanType):
        return {"true": True, "false": False}[text]
    if isinstance(kind, t.DateType):
        return date.fromisoformat(text)
    if isinstance(kind, t.TimeType):
        return time.fromisoformat(text)
    if isinstance(kind, t.TimestampType | t.TimestamptzType):
        return datetime.fromisoformat(text)
    if isinstance(kind, t.BinaryType):
        return bytes(
            int(code, 16) if code else ord(char) for code, char in _BLOB_ESCAPE.findall(text)
        )
    raise ValueError(f"no statistics parser for {kind}")

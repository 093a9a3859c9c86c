"""Result formats of the HTTP API: which one a request asks for, and the bytes of each.

JSON (the default) is one page of rows as arrays, decimals as numbers, times as ISO 8601
text and bytes as base64; CSV and Arrow IPC are streamed batch by batch; Parquet is one
file.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from sluice.errors import ConfigError

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}
_ACCEPTED = {
    "application/json": "json",
    "text/csv": "csv",
    "application/vnd.apache.arrow.stream": "arrow",
    "application/vnd.apache.arrow.file": "arrow",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "*/*": "json",
    "application/*": "json",
    "text/*": "csv",
}


class UnsupportedFormatError(ConfigError):
    """``?format=`` names a format the API does not produce."""

    code = "unsupported_format"


class NotAcceptableError(ConfigError):
    """The ``Accept`` header names no media type the API produces."""

    code = "not_acceptable"


def negotiate(format_param: str | None, accept: str | None) -> str:
    """The result format: ``?format=`` first, then the ``Accept`` header, else JSON.

    >>> negotiate(None, "text/csv;q=0.9, application/json;q=0.5")
    'csv'
    >>> negotiate("parquet", "application/json")
    'parquet'
    """
    names = ", ".join(MEDIA_TYPES)
    if format_param is not None:
        if format_param.lower() not in MEDIA_TYPES:
            raise UnsupportedFormatError(
                f"Unknown result format '{format_param}'.", hint=f"Use one of: {names}."
            )
        return format_param.lower()
    if not accept or not accept.strip():
        return "json"
    ranges = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((-quality, position, media.lower()))
    for negative_quality, _, media in sorted(ranges):
        if negative_quality < 0 and media in _ACCEPTED:
            return _ACCEPTED[media]
    raise NotAcceptableError(
        f"None of the media types in 'Accept: {accept}' is one this API produces.",
        hint=f"Accept one of: {', '.join(t.split(';')[0] for t in MEDIA_TYPES.values())}; "
        f"or pass ?format= ({names}).",
    )


def json_rows(table: pa.Table) -> list[list[Any]]:
    """Rows as lists of JSON-ready values."""
    columns = [[_json_value(v) for v in column.to_pylist()] for column in table.columns]
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, pa.MonthDayNano):
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def dump_json(body: object) -> bytes:
    """A response body as compact UTF-8 JSON."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def encode(table: pa.Table, name: str) -> Iterator[bytes]:
    """The bytes of ``table`` in format ``name`` (csv, arrow or parquet), in chunks.

    Whether the format can hold every column is settled before the first chunk, so a
    refusal is an error response rather than a broken one.
    """
    if name == "parquet":
        buffer = io.BytesIO()
        try:
            pq.write_table(table, buffer, compression="snappy")
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as exc:
            raise _cannot_hold(name, str(exc).splitlines()[0]) from exc
        return iter([buffer.getvalue()])
    if name == "csv":
        for field in table.schema:
            try:
                pa.array([], type=field.type).cast(pa.string())
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as exc:
                raise _cannot_hold(name, f"column {field.name} is {field.type}") from exc
    return _batches(table, name)


def _cannot_hold(name: str, why: str) -> UnsupportedFormatError:
    return UnsupportedFormatError(
        f"The result cannot be written as {name}: {why}.",
        hint="Ask for json or arrow, or CAST the column to VARCHAR in the query.",
    )


def _batches(table: pa.Table, name: str) -> Iterator[bytes]:
    buffer = io.BytesIO()
    writer: pa.ipc.RecordBatchStreamWriter | pa_csv.CSVWriter
    if name == "arrow":
        writer = pa.ipc.new_stream(buffer, table.schema)
    else:
        writer = pa_csv.CSVWriter(buffer, table.schema)
    for batch in table.to_batches(max_chunksize=65_536):
        writer.write_batch(batch)
        yield _drain(buffer)
    writer.close()
    yield _drain(buffer)


def _drain(buffer: io.BytesIO) -> bytes:
    data = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return data

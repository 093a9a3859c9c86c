"""A warehouse in S3 (or any S3-compatible server): where data files and Iceberg metadata live
when ``lake.warehouse`` is an ``s3://bucket/prefix`` URI.

Jobs write each Parquet file on the local disk first (DuckDB reads it back for the footer and
for the models of the same run), then upload it when the table is committed; pyiceberg writes
the metadata through its pyarrow S3 FileIO; queries read the objects with DuckDB's httpfs.
Credentials come only from the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``): they are never written to a file, the state, a plan or a log.
Nothing here is imported for a local warehouse.
"""

from __future__ import annotations

import os
import shutil
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sluice.duck import quote_literal
from sluice.errors import ConfigError, LakeError, LakeUnavailableError

if TYPE_CHECKING:
    import duckdb
    from pyarrow.fs import S3FileSystem

KEY_VARIABLE = "AWS_ACCESS_KEY_ID"
SECRET_VARIABLE = "AWS_SECRET_ACCESS_KEY"
TOKEN_VARIABLE = "AWS_SESSION_TOKEN"
DEFAULT_REGION = "us-east-1"


def is_s3(location: str) -> bool:
    """True for an ``s3://`` URI.

    >>> is_s3("s3://lake/wh"), is_s3("warehouse")
    (True, False)
    """
    return location.startswith("s3://")


class S3Warehouse:
    """The ``s3://bucket/prefix`` a lake's tables live under, and how to reach it."""

    def __init__(self, uri: str, *, endpoint: str | None = None, region: str | None = None):
        self.uri = uri.rstrip("/")
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.region = region or os.environ.get("AWS_REGION") or DEFAULT_REGION

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its settings (never a connection); equal settings are equal."""
        return _warehouse, (self.uri, self.endpoint, self.region)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Warehouse) and self.__reduce__() == other.__reduce__()

    def __hash__(self) -> int:
        return hash((self.uri, self.endpoint, self.region))

    @property
    def bucket(self) -> str:
        """The bucket's name.

        >>> S3Warehouse("s3://lake/wh/prod").bucket
        'lake'
        """
        return urlsplit(self.uri).netloc

    def location(self, *parts: str) -> str:
        """The URI of a path below the warehouse.

        >>> S3Warehouse("s3://lake/wh/").location("gold.db", "fact_orders")
        's3://lake/wh/gold.db/fact_orders'
        """
        return "/".join((self.uri, *parts))

    def _credentials(self) -> tuple[str, str, str | None]:
        key, secret = os.environ.get(KEY_VARIABLE), os.environ.get(SECRET_VARIABLE)
        if not key or not secret:
            missing = KEY_VARIABLE if not key else SECRET_VARIABLE
            raise ConfigError(
                f"The warehouse {self.uri} needs S3 credentials: {missing} is not set "
                "(looked in the environment).",
                hint=f"export {KEY_VARIABLE}=... {SECRET_VARIABLE}=... before running sluice.",
            )
        return key, secret, os.environ.get(TOKEN_VARIABLE) or None

    @cached_property
    def _endpoint_parts(self) -> tuple[str, str] | None:
        """(scheme, host:port) of a custom endpoint."""
        if not self.endpoint:
            return None
        parts = urlsplit(self.endpoint if "://" in self.endpoint else f"https://{self.endpoint}")
        return parts.scheme, parts.netloc

    @cached_property
    def filesystem(self) -> S3FileSystem:
        """A pyarrow S3 file system on the warehouse's endpoint."""
        from pyarrow.fs import S3FileSystem

        key, secret, token = self._credentials()
        endpoint = self._endpoint_parts
        return S3FileSystem(
            access_key=key,
            secret_key=secret,
            session_token=token,
            region=self.region,
            endpoint_override=endpoint[1] if endpoint else None,
            scheme=endpoint[0] if endpoint else "https",
            connect_timeout=10,
            request_timeout=60,
        )

    def check(self) -> None:
        """Raise a one-line error unless the credentials are set and the bucket exists."""
        from pyarrow.fs import FileType

        try:
            info = self.filesystem.get_file_info(self.bucket)
        except OSError as exc:
            raise self.unreachable(exc) from exc
        if info.type == FileType.NotFound:
            raise LakeError(
                f"Bucket {self.bucket} of the warehouse {self.uri} does not exist"
                f"{f' at {self.endpoint}' if self.endpoint else ''}.",
                hint="Create the bucket, or fix lake.warehouse / lake.endpoint in sluice.yml.",
            )

    def unreachable(self, exc: Exception) -> LakeUnavailableError:
        """The error for an S3 request that failed (the endpoint is down or refuses us)."""
        reason = str(exc).strip().splitlines()
        return LakeUnavailableError(
            f"Cannot reach the warehouse {self.uri}"
            f"{f' at {self.endpoint}' if self.endpoint else ''}: "
            f"{reason[0] if reason else type(exc).__name__}",
            hint="Check lake.endpoint and lake.region in sluice.yml and the AWS_* credentials.",
        )

    def upload(self, local: Path, uri: str) -> None:
        """Copy a local file to ``uri``."""
        try:
            with local.open("rb") as source, self.filesystem.open_output_stream(_key(uri)) as out:
                shutil.copyfileobj(source, out, length=8 << 20)
        except OSError as exc:
            raise self.unreachable(exc) from exc

    def files(self, uri: str) -> list[tuple[str, int, int]]:
        """Every object below ``uri`` (a folder): its URI, size and modification time (ns)."""
        from pyarrow.fs import FileSelector, FileType

        selector = FileSelector(_key(uri), recursive=True, allow_not_found=True)
        try:
            infos = self.filesystem.get_file_info(selector)
        except OSError as exc:
            raise self.unreachable(exc) from exc
        return [
            (f"s3://{info.path}", info.size or 0, info.mtime_ns or 0)
            for info in infos
            if info.type == FileType.File
        ]

    def exist(self, uris: list[str]) -> bool:
        """True when every one of the objects exists."""
        from pyarrow.fs import FileType

        infos = self.filesystem.get_file_info([_key(uri) for uri in uris])
        return all(info.type == FileType.File for info in infos)

    def delete(self, uri: str) -> None:
        """Delete one object."""
        self.filesystem.delete_file(_key(uri))

    def delete_folder(self, uri: str) -> None:
        """Delete every object below ``uri``."""
        from pyarrow.fs import FileType

        key = _key(uri)
        if self.filesystem.get_file_info(key).type != FileType.NotFound:
            self.filesystem.delete_dir(key)

    def iceberg_properties(self) -> dict[str, str]:
        """pyiceberg catalog properties for its pyarrow S3 FileIO (credentials: from the
        environment, read by pyarrow itself)."""
        self._credentials()
        properties = {"py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO", "s3.region": self.region}
        if self.endpoint:
            scheme, host = self._endpoint_parts or ("https", self.endpoint)
            properties["s3.endpoint"] = f"{scheme}://{host}"
        return properties

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        """Let a DuckDB connection (httpfs loaded) read and write the warehouse's objects."""
        key, secret, token = self._credentials()
        options = [
            "TYPE s3",
            f"KEY_ID {quote_literal(key)}",
            f"SECRET {quote_literal(secret)}",
            f"REGION {quote_literal(self.region)}",
        ]
        if token:
            options.append(f"SESSION_TOKEN {quote_literal(token)}")
        if self._endpoint_parts:
            scheme, host = self._endpoint_parts
            options += [
                f"ENDPOINT {quote_literal(host)}",
                "URL_STYLE 'path'",
                f"USE_SSL {'true' if scheme == 'https' else 'false'}",
            ]
        con.execute(f"CREATE OR REPLACE TEMPORARY SECRET sluice_warehouse ({', '.join(options)})")


def _warehouse(uri: str, endpoint: str | None, region: str) -> S3Warehouse:
    return S3Warehouse(uri, endpoint=endpoint, region=region)


def _key(uri: str) -> str:
    """``bucket/key`` of an ``s3://`` URI, as pyarrow names objects.

    >>> _key("s3://lake/wh/gold.db/t/data/jr_1.parquet")
    'lake/wh/gold.db/t/data/jr_1.parquet'
    """
    return uri.removeprefix("s3://")

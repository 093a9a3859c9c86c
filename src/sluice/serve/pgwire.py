"""The PostgreSQL wire protocol (v3) for ``sluice serve --pg-port``: psql, psycopg, BI tools.

A thread per connection speaks the protocol; what the SQL means is ``pgsession``'s job.
Clients authenticate with SCRAM-SHA-256 against one user whose password comes from an
environment variable. The simple and the extended query protocols are served (prepared
statements, bound parameters in text or binary, portals fetched in pieces), results go
out in text format, and CancelRequest interrupts a running statement. Every failure is an
ErrorResponse with a SQLSTATE; the connection, and the server, carry on.

Written here rather than taken from a library: ``riffq`` has no wheel for this platform
(its sdist fetches Rust crates from GitHub), and ``buenavista`` sends errors without
SQLSTATE or severity, runs statements to describe them and drops the connection on an
unknown message. The protocol subset a read-only endpoint needs is small.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import math
import os
import secrets
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING

from sluice.errors import SluiceError
from sluice.serve.pgsession import (
    Answer,
    PgError,
    PgQueries,
    PgSession,
    database_of,
    split_statements,
    sqlstate,
)

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

SSL_REQUEST = 80877103
GSS_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3 = 196608
MAX_MESSAGE = 16 * 1024 * 1024
MAX_CONNECTIONS = 100
LOGIN_SECONDS = 30
SCRAM_ITERATIONS = 4096

_OIDS = {"bool": 16, "bytea": 17, "int8": 20, "int2": 21, "int4": 23, "text": 25}
_OIDS |= {"float4": 700, "float8": 701, "date": 1082, "time": 1083}
_OIDS |= {"timestamp": 1114, "timestamptz": 1184, "numeric": 1700}


class DisconnectError(Exception):
    """The client went away or broke the protocol; the connection ends."""


class AuthFailedError(Exception):
    """The client's credentials were refused."""


@dataclass
class _Portal:
    answer: Answer
    rows: Iterator[list[bytes | None]] | None = None
    sent: int = 0


@dataclass
class _Statement:
    sql: str
    oids: list[int] = field(default_factory=list)


class PgServer:
    """Serves ``queries`` on a listening socket until ``stop``."""

    def __init__(
        self, sock: socket.socket, queries: PgQueries, *, user: str, password: str
    ) -> None:
        self.sock = sock
        self.queries = queries
        self.user = user
        self._salt = secrets.token_bytes(16)
        self._salted = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), self._salt, SCRAM_ITERATIONS
        )
        self._sessions: dict[tuple[int, int], PgSession] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._thread = threading.Thread(target=self._accept, name="sluice-pg", daemon=True)

    def start(self) -> None:
        """Accept connections in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, cancel running statements, close the databases."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=5)
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.cancel()
        self.queries.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            threading.Thread(
                target=self._serve, args=(conn, peer), name="sluice-pg-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket, peer: object) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(LOGIN_SECONDS)
        connection = _Connection(self, conn, peer)
        if not self._slots.acquire(blocking=False):
            connection.refuse("53300", f"Too many connections (at most {MAX_CONNECTIONS}).")
            return
        try:
            connection.run()
        except (DisconnectError, OSError):
            pass
        except Exception:
            log.exception("PostgreSQL connection from %s failed unexpectedly", peer)
        finally:
            self._slots.release()
            connection.close()

    def register(self, session: PgSession) -> tuple[int, int]:
        """A process id and secret key for ``session``'s CancelRequests."""
        key = (secrets.randbelow(2**31), secrets.randbelow(2**31))
        with self._lock:
            self._sessions[key] = session
        return key

    def unregister(self, key: tuple[int, int]) -> None:
        """Forget a session that ended."""
        with self._lock:
            self._sessions.pop(key, None)

    def cancel(self, key: tuple[int, int]) -> None:
        """Interrupt the statement of the session with this key (unknown keys: ignored)."""
        with self._lock:
            session = self._sessions.get(key)
        if session is not None:
            session.cancel()

    def scram_keys(self) -> tuple[bytes, bytes, bytes]:
        """Salt, stored key and server key of the password (RFC 5802)."""
        client_key = hmac.digest(self._salted, b"Client Key", "sha256")
        server_key = hmac.digest(self._salted, b"Server Key", "sha256")
        return self._salt, hashlib.sha256(client_key).digest(), server_key


class _Connection:
    """One client connection: startup, authentication, then messages until Terminate."""

    def __init__(self, server: PgServer, conn: socket.socket, peer: object) -> None:
        self.server = server
        self.conn = conn
        self.peer = peer
        self.rfile = conn.makefile("rb")
        self.out = bytearray()
        self.session: PgSession | None = None
        self.key: tuple[int, int] | None = None
        self.statements: dict[str, _Statement] = {}
        self.portals: dict[str, _Portal] = {}
        self.skip_to_sync = False

    def refuse(self, code: str, message: str) -> None:
        """Answer a connection that cannot be served with a FATAL error, then close it."""
        with contextlib.suppress(DisconnectError, OSError):
            if self._startup() is not None:
                self._error(code, message, "FATAL")
                self._flush()
        self.close()

    def close(self) -> None:
        if self.key is not None:
            self.server.unregister(self.key)
        self.rfile.close()
        self.conn.close()

    def run(self) -> None:
        params = self._startup()
        if params is None:
            return
        try:
            self._authenticate(params.get("user", ""))
        except AuthFailedError:
            user = params.get("user", "")
            log.warning("PostgreSQL login refused for user %r from %s", user, self.peer)
            self._error("28P01", f'Password authentication failed for user "{user}".', "FATAL")
            self._flush()
            return
        try:
            database = database_of(
                params.get("database", ""), self.server.queries.engine.visible_tables
            )
            self.session = self.server.queries.session(user=self.server.user, database=database)
        except SluiceError as exc:
            self._error(sqlstate(exc), _text(exc), "FATAL")
            self._flush()
            return
        self.key = self.server.register(self.session)
        self.conn.settimeout(None)
        log.info("PostgreSQL client %s logged in to %s", self.peer, database)
        self._send(b"R", struct.pack("!i", 0))
        for name, value in (
            ("server_version", self.session.settings["server_version"]),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("TimeZone", "UTC"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("is_superuser", "off"),
            ("session_authorization", self.server.user),
            ("application_name", params.get("application_name", "")),
        ):
            self._send(b"S", _cstr(name) + _cstr(value))
        self._send(b"K", struct.pack("!ii", *self.key))
        self._ready()
        while True:
            kind, body = self._read()
            if kind == b"X":
                return
            self._dispatch(kind, body)

    def _startup(self) -> dict[str, str] | None:
        while True:
            length = struct.unpack("!i", self._exact(4))[0]
            if not 8 <= length <= 10_000:
                raise DisconnectError
            body = self._exact(length - 4)
            code = struct.unpack("!i", body[:4])[0]
            if code in (SSL_REQUEST, GSS_REQUEST):
                self.conn.sendall(b"N")
                continue
            if code == CANCEL_REQUEST and len(body) == 12:
                self.server.cancel(struct.unpack("!ii", body[4:12]))
                return None
            if code != PROTOCOL_3:
                self._error("0A000", "Only protocol 3.0 is supported.", "FATAL")
                self._flush()
                return None
            parts = body[4:].split(b"\0")
            return {
                parts[i].decode(errors="replace"): parts[i + 1].decode(errors="replace")
                for i in range(0, len(parts) - 1, 2)
                if parts[i]
            }

    def _authenticate(self, user: str) -> None:
        """SCRAM-SHA-256 without channel binding, as PostgreSQL does it."""
        self._send(b"R", struct.pack("!i", 10) + _cstr("SCRAM-SHA-256") + b"\0")
        self._flush()
        kind, body = self._read()
        if kind != b"p":
            raise DisconnectError
        mechanism, _, rest = body.partition(b"\0")
        if mechanism != b"SCRAM-SHA-256" or len(rest) < 4:
            raise AuthFailedError
        client_first = rest[4:].decode(errors="replace")
        header, _, bare = client_first.partition(",,")
        if header not in ("n", "y") and not header.startswith("n,"):
            raise AuthFailedError
        attrs = _scram_attrs(bare)
        salt, stored_key, server_key = self.server.scram_keys()
        nonce = attrs.get("r", "") + base64.b64encode(secrets.token_bytes(18)).decode()
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={SCRAM_ITERATIONS}"
        self._send(b"R", struct.pack("!i", 11) + server_first.encode())
        self._flush()
        kind, body = self._read()
        if kind != b"p":
            raise DisconnectError
        client_final = body.decode(errors="replace")
        without_proof, _, proof_text = client_final.rpartition(",p=")
        final = _scram_attrs(without_proof)
        if final.get("r") != nonce:
            raise AuthFailedError
        message = f"{bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(stored_key, message, "sha256")
        try:
            proof = base64.b64decode(proof_text, validate=True)
        except ValueError as exc:
            raise AuthFailedError from exc
        if len(proof) != len(signature):
            raise AuthFailedError
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        good_key = hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)
        if not (good_key and hmac.compare_digest(user, self.server.user)):
            raise AuthFailedError
        verifier = base64.b64encode(hmac.digest(server_key, message, "sha256")).decode()
        self._send(b"R", struct.pack("!i", 12) + f"v={verifier}".encode())

    def _dispatch(self, kind: bytes, body: bytes) -> None:
        if kind == b"Q":
            self.skip_to_sync = False
            self._simple(body.rstrip(b"\0").decode(errors="replace"))
            self._ready()
            return
        if kind == b"S":
            self.skip_to_sync = False
            self.portals.pop("", None)
            self._ready()
            return
        if kind == b"H":
            self._flush()
            return
        if kind not in b"PBDECdcf" or len(kind) != 1:
            self._error("08P01", f"Unexpected message type {kind!r}.", "FATAL")
            self._flush()
            raise DisconnectError
        if self.skip_to_sync or kind in b"dcf":
            return
        try:
            self._extended(kind, body)
        except (ValueError, IndexError, struct.error, UnicodeDecodeError):
            self._fail(PgError("Malformed protocol message.", code="invalid_argument"))
        except Exception as exc:
            self._fail(_as_sluice_error(exc))

    def _simple(self, sql: str) -> None:
        """A simple Query: each of its statements in turn, up to the first error."""
        assert self.session is not None
        statements = split_statements(sql)
        if not statements:
            self._send(b"I", b"")
        for statement in statements:
            try:
                answer = self.session.run(statement)
            except Exception as exc:
                self._fail(_as_sluice_error(exc))
                return
            if answer.table is not None:
                self._send(b"T", _row_description(answer.table.schema))
            self._send_rows(_Portal(answer), 0)

    def _extended(self, kind: bytes, body: bytes) -> None:
        assert self.session is not None
        if kind == b"P":
            name, rest = _split_cstr(body)
            sql, rest = _split_cstr(rest)
            count = struct.unpack("!h", rest[:2])[0]
            oids = list(struct.unpack(f"!{count}i", rest[2 : 2 + 4 * count]))
            self.statements[name] = _Statement(sql, oids)
            self._send(b"1", b"")
        elif kind == b"B":
            self._bind(body)
        elif kind == b"D":
            self._describe(body[:1], body[1:].rstrip(b"\0").decode())
        elif kind == b"E":
            name, rest = _split_cstr(body)
            portal = self.portals.get(name)
            if portal is None:
                raise PgError(f'Portal "{name}" does not exist.', code="undefined_object")
            self._send_rows(portal, struct.unpack("!i", rest[:4])[0])
        elif kind == b"C":
            name = body[1:].rstrip(b"\0").decode()
            if body[:1] == b"S":
                self.statements.pop(name, None)
            else:
                self.portals.pop(name, None)
            self._send(b"3", b"")

    def _bind(self, body: bytes) -> None:
        assert self.session is not None
        portal, rest = _split_cstr(body)
        name, rest = _split_cstr(rest)
        statement = self.statements.get(name)
        if statement is None:
            raise PgError(f'Prepared statement "{name}" does not exist.', code="undefined_object")
        count, rest = struct.unpack("!h", rest[:2])[0], rest[2:]
        formats = list(struct.unpack(f"!{count}h", rest[: 2 * count]))
        rest = rest[2 * count :]
        count, rest = struct.unpack("!h", rest[:2])[0], rest[2:]
        values: list[object] = []
        for i in range(count):
            size, rest = struct.unpack("!i", rest[:4])[0], rest[4:]
            raw = None if size < 0 else rest[:size]
            rest = rest[max(size, 0) :]
            binary = (formats[i] if len(formats) > 1 else formats[0] if formats else 0) == 1
            oid = statement.oids[i] if i < len(statement.oids) else 0
            values.append(None if raw is None else _decode_parameter(raw, oid, binary=binary))
        results, rest = struct.unpack("!h", rest[:2])[0], rest[2:]
        if any(struct.unpack(f"!{results}h", rest[: 2 * results])):
            raise PgError(
                "Results are sent in text format only.",
                code="feature_not_supported",
                hint="Ask for text results (psycopg: the default, not binary=True).",
            )
        self.portals[portal] = _Portal(self.session.run(statement.sql, values))
        self._send(b"2", b"")

    def _describe(self, what: bytes, name: str) -> None:
        assert self.session is not None
        if what == b"S":
            statement = self.statements.get(name)
            if statement is None:
                raise PgError(
                    f'Prepared statement "{name}" does not exist.', code="undefined_object"
                )
            count = _parameter_count(statement.sql, statement.oids)
            oids = [
                (statement.oids[i] if i < len(statement.oids) else 0) or 25 for i in range(count)
            ]
            self._send(b"t", struct.pack(f"!h{count}i", count, *oids))
            schema = self.session.describe(statement.sql, count)
        else:
            portal = self.portals.get(name)
            if portal is None:
                raise PgError(f'Portal "{name}" does not exist.', code="undefined_object")
            schema = None if portal.answer.table is None else portal.answer.table.schema
        if schema is None:
            self._send(b"n", b"")
        else:
            self._send(b"T", _row_description(schema))

    def _send_rows(self, portal: _Portal, limit: int) -> None:
        answer = portal.answer
        if answer.table is None:
            self._send(b"C", _cstr(answer.tag))
            return
        if portal.rows is None:
            portal.rows = _text_rows(answer.table)
            if answer.truncated:
                self._notice(f"The result was cut at {answer.table.num_rows} rows (the row cap).")
        for sent, row in enumerate(portal.rows, start=1):
            self._send(b"D", _data_row(row))
            portal.sent += 1
            if len(self.out) > 1 << 16:
                self._flush()
            if sent == limit and portal.sent < answer.table.num_rows:
                self._send(b"s", b"")
                return
        self._send(b"C", _cstr("SHOW" if answer.tag == "SHOW" else f"SELECT {portal.sent}"))

    def _fail(self, error: SluiceError) -> None:
        self.skip_to_sync = True
        self._error(sqlstate(error), error.message, "ERROR", hint=error.hint)

    def _error(self, code: str, message: str, severity: str, *, hint: str | None = None) -> None:
        fields = b"S" + _cstr(severity) + b"V" + _cstr(severity) + b"C" + _cstr(code)
        fields += b"M" + _cstr(message)
        if hint:
            fields += b"H" + _cstr(hint)
        self._send(b"E", fields + b"\0")

    def _notice(self, message: str) -> None:
        fields = b"SWARNING\0VWARNING\0C01000\0M" + _cstr(message)
        self._send(b"N", fields + b"\0")

    def _ready(self) -> None:
        assert self.session is not None
        self._send(b"Z", self.session.status)
        self._flush()

    def _send(self, kind: bytes, body: bytes) -> None:
        self.out += kind + struct.pack("!i", len(body) + 4) + body

    def _flush(self) -> None:
        if self.out:
            self.conn.sendall(self.out)
            self.out.clear()

    def _read(self) -> tuple[bytes, bytes]:
        head = self._exact(5)
        kind, length = head[:1], struct.unpack("!i", head[1:])[0]
        if not 4 <= length <= MAX_MESSAGE:
            self._error("08P01", f"Message of {length} bytes refused.", "FATAL")
            self._flush()
            raise DisconnectError
        return kind, self._exact(length - 4)

    def _exact(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) != size:
            raise DisconnectError
        return data


def _as_sluice_error(exc: Exception) -> SluiceError:
    """``exc`` itself when Sluice raised it on purpose; else logged, as an internal error."""
    if isinstance(exc, SluiceError):
        return exc
    log.exception("a PostgreSQL statement failed unexpectedly")
    return PgError(f"The statement failed unexpectedly ({type(exc).__name__}).", code="internal")


def _cstr(text: str) -> bytes:
    return text.encode() + b"\0"


def _split_cstr(data: bytes) -> tuple[str, bytes]:
    end = data.index(b"\0")
    return data[:end].decode(), data[end + 1 :]


def _text(error: SluiceError) -> str:
    return f"{error.message} {error.hint}" if error.hint else error.message


def _scram_attrs(text: str) -> dict[str, str]:
    """``a=1,b=2`` as a dict.

    >>> _scram_attrs("n=,r=abc")
    {'n': '', 'r': 'abc'}
    """
    return dict(part.split("=", 1) for part in text.split(",") if "=" in part)


def _parameter_count(sql: str, oids: Sequence[int]) -> int:
    import re

    numbers = [int(n) for n in re.findall(r"\$(\d+)", sql)]
    return max([len(oids), *numbers])


def _decode_parameter(raw: bytes, oid: int, *, binary: bool) -> object:
    """A bound parameter as the Python value DuckDB binds."""
    if binary:
        formats = {16: "!?", 20: "!q", 21: "!h", 23: "!i", 700: "!f", 701: "!d"}
        if oid in formats:
            return struct.unpack(formats[oid], raw)[0]
        if oid == 17:
            return raw
        if oid in (0, 25, 1043, 19):
            return raw.decode()
        raise PgError(
            f"Binary parameters of type {oid} are not supported.",
            code="feature_not_supported",
            hint="Send parameters in text format.",
        )
    text = raw.decode()
    if oid in (20, 21, 23):
        return int(text)
    if oid in (700, 701):
        return float(text)
    if oid == 1700:
        return Decimal(text)
    if oid == 16:
        return text.lower() in ("t", "true", "1", "on", "yes", "y")
    if oid == 1082:
        return date.fromisoformat(text)
    if oid in (1114, 1184):
        return datetime.fromisoformat(text)
    if oid == 17:
        return bytes.fromhex(text[2:]) if text.startswith("\\x") else raw
    return text


def _row_description(schema: pa.Schema) -> bytes:
    body = struct.pack("!h", len(schema))
    for item in schema:
        oid, size = _type_oid(item.type)
        body += _cstr(item.name) + struct.pack("!ihihih", 0, 0, oid, size, -1, 0)
    return body


def _type_oid(arrow_type: pa.DataType) -> tuple[int, int]:
    import pyarrow as pa

    t = pa.types
    checks = (
        (t.is_boolean, "bool", 1),
        (t.is_int8, "int2", 2),
        (t.is_int16, "int2", 2),
        (t.is_uint8, "int2", 2),
        (t.is_int32, "int4", 4),
        (t.is_uint16, "int4", 4),
        (t.is_int64, "int8", 8),
        (t.is_uint32, "int8", 8),
        (t.is_float32, "float4", 4),
        (t.is_float64, "float8", 8),
        (t.is_decimal, "numeric", -1),
        (t.is_date, "date", 4),
        (t.is_time, "time", 8),
        (t.is_binary, "bytea", -1),
        (t.is_large_binary, "bytea", -1),
    )
    for check, name, size in checks:
        if check(arrow_type):
            return _OIDS[name], size
    if t.is_timestamp(arrow_type):
        return _OIDS["timestamptz" if arrow_type.tz else "timestamp"], 8
    return _OIDS["text"], -1


def _text_rows(table: pa.Table) -> Iterator[list[bytes | None]]:
    """The rows of ``table`` in PostgreSQL's text format, a batch of columns at a time."""
    for batch in table.to_batches(max_chunksize=10_000):
        columns = [_text_column(column) for column in batch.columns]
        yield from (list(row) for row in zip(*columns, strict=True))


def _text_column(column: pa.Array) -> list[bytes | None]:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = pa.types
    kind = column.type
    if t.is_integer(kind) or t.is_decimal(kind) or t.is_string(kind) or t.is_large_string(kind):
        values = (
            pc.cast(column, pa.string()).to_pylist()
            if not t.is_string(kind)
            else column.to_pylist()
        )
        return [None if v is None else v.encode() for v in values]
    if t.is_date(kind):
        return [None if v is None else v.isoformat().encode() for v in column.to_pylist()]
    return [_text_value(v) for v in column.to_pylist()]


def _text_value(value: object) -> bytes | None:
    """One value in PostgreSQL's text format.

    >>> _text_value(True), _text_value(float("inf")), _text_value(b"\\x01")
    (b't', b'Infinity', b'\\\\x01')
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, float):
        if math.isnan(value):
            return b"NaN"
        if value in (float("inf"), float("-inf")):
            return b"Infinity" if value > 0 else b"-Infinity"
        return repr(value).encode()
    if isinstance(value, bytes):
        return b"\\x" + value.hex().encode()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ").encode()
    if isinstance(value, date | time):
        return value.isoformat().encode()
    return str(value).encode()


def _data_row(row: list[bytes | None]) -> bytes:
    parts = [struct.pack("!h", len(row))]
    for value in row:
        if value is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            parts.append(struct.pack("!i", len(value)))
            parts.append(value)
    return b"".join(parts)


def password_from_env(variable: str) -> str:
    """The endpoint's password from ``variable``; ConfigError (exit code 2) when it is unset."""
    value = os.environ.get(variable, "")
    if not value:
        from sluice.errors import ConfigError

        raise ConfigError(
            f"The PostgreSQL endpoint needs a password: environment variable {variable} is "
            "not set.",
            hint=f"export {variable}=... (or name another variable in serve.pg.password_env).",
        )
    return value

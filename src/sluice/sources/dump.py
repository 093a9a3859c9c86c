"""Read mysqldump-format files: split statements, parse tables and rows, stream them out.

The splitter is Sluice's own: it reads the file a line at a time as bytes, so quotes,
backslash escapes, ``--``/``#``/``/* */`` comments and ``/*!40101 … */`` version comments
are respected whatever the text encoding, and it never holds more than one statement (or,
for a long multi-row ``INSERT``, about ``chunk_bytes``) in memory. ``CREATE TABLE`` is
parsed with sqlglot; ``INSERT`` values are read by a regular-expression tokenizer (sqlglot
is exact but far too slow for megabytes of literals).

Text values are decoded as UTF-8 and, where that fails, as MySQL's ``latin1`` (cp1252);
``SET NAMES latin1`` in the dump or an explicit ``encoding`` fixes one encoding instead.
Values of binary columns (``blob``, ``binary``) are kept as the exact bytes.

>>> import io
>>> [(s.line, s.data) for s in split_statements(io.BytesIO(b"SET a=1; -- x\\nSELECT ';';"))]
[(1, b'SET a=1'), (2, b"SELECT ';'")]
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO

from sluice.errors import DumpError, NotFoundError
from sluice.sources.classicmodels.schema import Column, ForeignKey, Table
from sluice.sources.types import lake_type

#: Rows handed on at a time, and bytes of one statement read before its rows are parsed.
BATCH_ROWS = 5_000
CHUNK_BYTES = 4 << 20

_NORMAL = re.compile(rb"[;'\"`#]|--(?=[ \t\r\n]|$)|/\*|\*/")
_STRING_END = {
    b"'": re.compile(rb"(?:[^'\\]|\\.)*'", re.S),
    b'"': re.compile(rb'(?:[^"\\]|\\.)*"', re.S),
    b"`": re.compile(rb"[^`]*`"),
}
_VERSION_OPEN = re.compile(rb"/\*M?!\d*")
_KEYWORDS = re.compile(rb"\s*(\w+)(?:\s+(\w+))?")
_IGNORED = {
    b"SET",
    b"USE",
    b"LOCK",
    b"UNLOCK",
    b"BEGIN",
    b"COMMIT",
    b"START",
    b"DROP",
}
_INSERT_HEAD = re.compile(
    rb"\s*(?:INSERT|REPLACE)\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*"
    rb"(?:INTO\s+)?(?:(?:`[^`]+`|\w+)\s*\.\s*)?(?P<table>`(?:[^`]|``)+`|\w+)\s*"
    rb"(?:\((?P<columns>[^)]*)\))?\s*VALUES?\s*",
    re.I,
)
_VALUE = re.compile(
    rb"""\s*(?:
      (?:_(?P<charset>\w+)\s*)?'(?P<str>(?:[^'\\]|\\.|'')*)'
    | (?P<null>NULL)\b
    | 0x(?P<hex>[0-9A-Fa-f]*)
    | (?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
    | [xX]'(?P<xhex>[0-9A-Fa-f]*)'
    | [bB]'(?P<bits>[01]*)'
    | (?P<bool>TRUE|FALSE)\b
    | (?P<punct>[(),])
    )""",
    re.X | re.S | re.I,
)
_ESCAPES = {
    b"0": b"\0",
    b"b": b"\b",
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
    b"Z": b"\x1a",
    b"%": b"\\%",
    b"_": b"\\_",
}
_KEY_TOGGLE = re.compile(rb"\b(?:DISABLE|ENABLE)\s+KEYS\s*$", re.I)
_ESCAPE = re.compile(rb"\\(.)|''", re.S)
_MYSQL_CHARSETS = {
    "utf8": "utf-8",
    "utf8mb3": "utf-8",
    "utf8mb4": "utf-8",
    "utf-8": "utf-8",
    "latin1": "mysql-latin1",
    "cp1252": "mysql-latin1",
    "ascii": "ascii",
}


def _latin1_passthrough(error: UnicodeError) -> tuple[str, int]:
    """MySQL's latin1 is cp1252 whose five unassigned bytes map to the same code points."""
    assert isinstance(error, UnicodeDecodeError)
    return chr(error.object[error.start]), error.start + 1


codecs.register_error("sluice-latin1", _latin1_passthrough)


@dataclass(frozen=True)
class Statement:
    """One statement of a dump (or, with ``done`` False, the first part of a long one)."""

    line: int
    data: bytes
    done: bool = True


@dataclass(frozen=True)
class Rows:
    """A batch of rows for one table, in the order of ``columns``."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def split_statements(stream: BinaryIO, *, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Statement]:
    """Split a dump into statements, without comments, each with the line it starts on.

    Version comments (``/*!40101 SET … */``) keep their content, as MySQL runs it. A
    statement longer than ``chunk_bytes`` comes in parts cut at line ends outside strings.

    >>> import io
    >>> dump = b"/*!40101 SET NAMES utf8 */;\\nINSERT INTO t VALUES ('a;\\\\'\\nb');"
    >>> [s.data for s in split_statements(io.BytesIO(dump))]
    [b'SET NAMES utf8', b"INSERT INTO t VALUES ('a;\\\\'\\nb')"]
    """
    parts: list[bytes] = []
    size = 0
    start_line = 0
    quote: bytes | None = None  # inside a string or identifier quoted by this byte
    comment_from = 0  # line a block comment started on (0: not in one)
    in_version = False
    continuing = False  # a long statement's first part was handed out
    line_no = 0

    def add(piece: bytes) -> None:
        nonlocal size, start_line
        if not start_line and piece.strip():
            start_line = line_no
        parts.append(piece)
        size += len(piece)

    def take(done: bool) -> Statement | None:
        nonlocal size, start_line, continuing
        raw = b"".join(parts)
        data = raw if continuing else raw.lstrip()
        data = data.rstrip() if done else data
        first, was_continuing = start_line, continuing
        parts.clear()
        size = 0
        if done:
            start_line = 0
        if not data.strip() and not was_continuing:
            continuing = False
            return None
        continuing = not done
        return Statement(first, data, done)

    for line_no, line in enumerate(stream, 1):
        pos = 0
        if comment_from:
            end = line.find(b"*/")
            if end < 0:
                parts.append(b"\n")
                continue
            comment_from, pos = 0, end + 2
        elif quote is not None:
            match = _STRING_END[quote].match(line)
            if match is None:
                add(line)
                continue
            add(line[: match.end()])
            quote, pos = None, match.end()
        begin = pos
        while True:
            token = _NORMAL.search(line, pos)
            if token is None:
                add(line[begin:])
                break
            found = token.group()
            if found == b";":
                add(line[begin : token.start()])
                statement = take(True)
                if statement is not None:
                    yield statement
                begin = pos = token.end()
            elif found in _STRING_END:
                match = _STRING_END[found].match(line, token.end())
                if match is None:
                    add(line[begin:])
                    quote = found
                    break
                pos = match.end()
            elif found == b"*/":
                if in_version:
                    add(line[begin : token.start()])
                    in_version, begin = False, token.end()
                pos = token.end()
            elif found == b"/*":
                add(line[begin : token.start()])
                version = _VERSION_OPEN.match(line, token.start())
                if version is not None:
                    in_version, begin = True, version.end()
                    pos = begin
                    continue
                end = line.find(b"*/", token.end())
                if end < 0:
                    add(b"\n")
                    comment_from = line_no
                    break
                add(b" ")
                begin = pos = end + 2
            else:  # -- or # comment to the end of the line
                add(line[begin : token.start()] + b"\n")
                break
        if quote is None and not comment_from and size >= chunk_bytes:
            statement = take(False)
            if statement is not None:
                yield statement
    if quote is not None:
        raise DumpError(
            f"The dump ends inside a {quote.decode()}-quoted string (line {line_no}).",
            hint="The file is truncated or a quote is not escaped; check the last statement.",
        )
    if comment_from:
        raise DumpError(f"The dump ends inside a comment opened on line {comment_from}.")
    statement = take(True)
    if statement is not None:
        yield statement


def load_dump(
    path: str | Path,
    url: str,
    *,
    replace: bool = False,
    encoding: str | None = None,
    base_dir: Path | None = None,
) -> dict[str, int]:
    """Load a mysqldump file into the database ``url`` names; return rows per table.

    All or nothing: on any error the target is left as it was. Tables that exist are
    refused unless ``replace``. ``encoding`` as in :func:`read_dump`.
    """
    from sluice.sources.dbapi import url_dialect
    from sluice.sources.writers import open_writer

    url_dialect(url)
    events = read_dump(path, encoding=encoding)
    with open_writer(url, replace=replace, base_dir=base_dir) as writer:
        for event in events:
            if isinstance(event, Table):
                writer.create(event)
            else:
                writer.insert(event.table, event.columns, event.rows)
        if not writer.tables:
            raise DumpError(f"Dump file '{path}' creates no tables; nothing to load.")
    return writer.counts


def read_dump(path: str | Path, *, encoding: str | None = None) -> Iterator[Table | Rows]:
    """The tables a dump creates and the rows it inserts, in the dump's order.

    ``encoding`` is a MySQL character set name (``utf8mb4``, ``latin1``); None means
    ``SET NAMES latin1`` if the dump says so, else UTF-8 with a latin1 fallback per value.
    A missing file is reported at once, not on the first read.
    """
    file = Path(path)
    if not file.is_file():
        raise NotFoundError(
            f"Dump file '{file}' does not exist.", hint="Pass the path of a .sql dump file."
        )
    codec = _codec(encoding) if encoding else None
    return _read(file, _DumpReader(codec, fixed=encoding is not None))


def _read(file: Path, reader: _DumpReader) -> Iterator[Table | Rows]:
    try:
        with file.open("rb") as stream:
            yield from reader.read(split_statements(stream, chunk_bytes=CHUNK_BYTES))
    except OSError as exc:
        raise DumpError(f"Cannot read dump file '{file}': {exc}.") from exc


def _codec(charset: str) -> str:
    codec = _MYSQL_CHARSETS.get(charset.lower())
    if codec is None:
        known = ", ".join(sorted(_MYSQL_CHARSETS))
        raise DumpError(f"Unknown character set '{charset}'.", hint=f"Use one of: {known}.")
    return codec


class _DumpReader:
    """Turns statements into tables and row batches."""

    def __init__(self, codec: str | None, *, fixed: bool) -> None:
        self.codec = codec
        self.fixed = fixed
        self.tables: dict[str, Table] = {}

    def decode(self, raw: bytes) -> str:
        """Text in the dump's encoding (UTF-8, else MySQL latin1, when not fixed)."""
        if self.codec == "mysql-latin1":
            return raw.decode("cp1252", "sluice-latin1")
        if self.codec is not None:
            return raw.decode(self.codec)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("cp1252", "sluice-latin1")

    def read(self, statements: Iterable[Statement]) -> Iterator[Table | Rows]:
        pending: list[bytes] = []
        line = 0
        inserting: _Inserter | None = None
        for statement in statements:
            if inserting is not None:
                yield from inserting.feed(statement.data, statement.done)
                if statement.done:
                    inserting = None
                continue
            if pending or not statement.done:
                line = line or statement.line
                pending.append(statement.data)
                head = _KEYWORDS.match(pending[0])
                if head and head.group(1).upper() in (b"INSERT", b"REPLACE"):
                    inserting = self.inserter(line, b"".join(pending))
                    pending, line = [], 0
                    yield from inserting.feed(b"", statement.done)
                    if statement.done:
                        inserting = None
                    continue
                if not statement.done:
                    continue
                whole = Statement(line, b"".join(pending))
                pending, line = [], 0
                yield from self.statement(whole)
                continue
            yield from self.statement(statement)

    def statement(self, statement: Statement) -> Iterator[Table | Rows]:
        head = _KEYWORDS.match(statement.data)
        first = head.group(1).upper() if head else b""
        second = (head.group(2) or b"").upper() if head else b""
        if first in (b"INSERT", b"REPLACE"):
            yield from self.inserter(statement.line, statement.data).feed(b"", True)
        elif first == b"CREATE" and second == b"TABLE":
            table = self.create_table(statement)
            self.tables[table.name] = table
            yield table
        elif first == b"SET" and second == b"NAMES" and not self.fixed:
            words = statement.data.split()
            charset = words[2].strip(b"'\"`").decode("ascii", "replace") if len(words) > 2 else ""
            latin1 = _MYSQL_CHARSETS.get(charset.lower()) == "mysql-latin1"
            self.codec = "mysql-latin1" if latin1 else None
        elif not _ignored(first, second, statement.data):
            shown = self.decode(statement.data[:40]).split("\n")[0]
            raise DumpError(
                f"Unsupported statement at line {statement.line}: '{shown}'.",
                hint="A dump may hold CREATE TABLE, INSERT, SET, USE, DROP, LOCK and "
                "CREATE DATABASE statements.",
            )

    def create_table(self, statement: Statement) -> Table:
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import ParseError

        text = self.decode(statement.data)
        try:
            tree = sqlglot.parse_one(text, read="mysql")
        except ParseError as exc:
            first = exc.errors[0] if exc.errors else {}
            line = statement.line + int(first.get("line") or 1) - 1
            what = first.get("description") or _first_line(exc)
            raise DumpError(f"Malformed CREATE TABLE at line {line}: {what}.") from exc
        schema = tree.this if isinstance(tree, exp.Create) else None
        if not isinstance(schema, exp.Schema) or not isinstance(schema.this, exp.Table):
            raise DumpError(
                f"Unsupported CREATE TABLE at line {statement.line}: Sluice loads only "
                "tables declared with their columns (not LIKE or AS SELECT)."
            )
        name = schema.this.name
        columns: list[Column] = []
        primary: list[str] = []
        foreign: list[ForeignKey] = []
        for item in schema.expressions:
            if isinstance(item, exp.ColumnDef):
                columns.append(self.column(item, statement.line, name, primary))
            elif isinstance(item, exp.PrimaryKey):
                primary += [e.name for e in item.expressions]
            elif (fk := item.find(exp.ForeignKey)) is not None:
                ref = fk.args["reference"].this
                foreign.append(
                    ForeignKey(
                        tuple(e.name for e in fk.expressions),
                        ref.this.name,
                        tuple(e.name for e in ref.expressions),
                    )
                )
        keys = set(primary)
        return Table(
            name,
            tuple(Column(c.name, c.type, c.nullable and c.name not in keys) for c in columns),
            tuple(primary),
            tuple(foreign),
        )

    @staticmethod
    def column(item: Any, line: int, table: str, primary: list[str]) -> Column:
        from sqlglot import exp

        kind = item.args.get("kind")
        declared = _declared_type(kind.sql(dialect="mysql")) if kind is not None else ""
        if lake_type(declared) is None:
            raise DumpError(
                f"Column '{table}.{item.name}' at line {line} has a type Sluice cannot "
                f"load: '{declared or 'none'}'.",
                hint="Use MySQL's numeric, string, binary, date and time types.",
            )
        kinds = [c.args.get("kind") for c in item.args.get("constraints") or []]
        if any(isinstance(k, exp.PrimaryKeyColumnConstraint) for k in kinds):
            primary.append(item.name)
        nullable = not any(isinstance(k, exp.NotNullColumnConstraint) for k in kinds)
        return Column(item.name, declared, nullable)

    def inserter(self, line: int, head: bytes) -> _Inserter:
        match = _INSERT_HEAD.match(head)
        if match is None:
            raise DumpError(
                f"Malformed INSERT at line {line}: expected INSERT INTO `table` "
                "[(`column`, ...)] VALUES (...)."
            )
        name = _unquote(self.decode(match.group("table")))
        table = self.tables.get(name)
        if table is None:
            raise DumpError(
                f"INSERT into table '{name}' at line {line} comes before its CREATE TABLE.",
                hint="A dump must create each table before inserting into it.",
            )
        columns = table.column_names
        if match.group("columns") is not None:
            columns = tuple(
                _unquote(self.decode(c).strip()) for c in match.group("columns").split(b",")
            )
            unknown = [c for c in columns if c not in table.column_names]
            if unknown:
                raise DumpError(
                    f"INSERT at line {line} names column '{name}.{unknown[0]}', which its "
                    "CREATE TABLE does not declare."
                )
        by_name = {c.name: c for c in table.columns}
        converters = [self.converter(by_name[c].type) for c in columns]
        rest = head[match.end() :]
        return _Inserter(name, columns, converters, line + head[: match.end()].count(b"\n"), rest)

    def converter(self, declared: str) -> Callable[[str, bytes | None], Any]:
        """How to turn one literal (its kind and bytes) into a value of a column's type."""
        kind = (lake_type(declared) or "VARCHAR").split("(")[0]
        decode = self.decode
        finishers: dict[str, Callable[[bytes], Any]] = {
            "BLOB": bytes,
            "INTEGER": lambda data: _integer(decode(data)),
            "BIGINT": lambda data: _integer(decode(data)),
            "DECIMAL": lambda data: Decimal(decode(data)),
            "FLOAT": lambda data: float(decode(data)),
            "DOUBLE": lambda data: float(decode(data)),
            "BOOLEAN": lambda data: data not in (b"0", b""),
        }
        finish = finishers.get(kind, decode)
        numeric = kind in ("INTEGER", "BIGINT", "DECIMAL", "FLOAT", "DOUBLE")

        def convert(token: str, raw: bytes | None) -> Any:
            if raw is None:
                return None
            if token == "str":
                return finish(_unescape(raw))
            if token in ("hex", "xhex"):
                if numeric:
                    return finish(str(int(raw or b"0", 16)).encode())
                return finish(bytes.fromhex(raw.decode()))
            if token == "bits":
                return int(raw or b"0", 2)
            if token == "bool":
                return raw.upper() == b"TRUE"
            return finish(raw)

        return convert


class _Inserter:
    """Parses the VALUES of one INSERT as its bytes arrive; yields row batches."""

    def __init__(
        self,
        table: str,
        columns: tuple[str, ...],
        converters: list[Callable[[str, bytes | None], Any]],
        line: int,
        data: bytes,
    ) -> None:
        self.table = table
        self.columns = columns
        self.converters = converters
        self.line = line
        self.buffer = data
        self.rows: list[tuple[Any, ...]] = []
        self.expect_row = True

    def feed(self, data: bytes, done: bool) -> Iterator[Rows]:
        buffer = self.buffer + data if data else self.buffer
        pos = self.parse(buffer, done)
        self.line += buffer.count(b"\n", 0, pos)
        self.buffer = buffer[pos:]
        if done and (self.buffer.strip() or self.expect_row):
            raise self.error(self.buffer, 0, "expected a row '(...)'")
        for start in range(0, len(self.rows), BATCH_ROWS):
            yield Rows(self.table, self.columns, self.rows[start : start + BATCH_ROWS])
        self.rows = []

    def parse(self, buffer: bytes, done: bool) -> int:
        """Parse whole rows from ``buffer``; return where the unparsed rest starts."""
        width = len(self.columns)
        converters = self.converters
        pos = 0
        end = len(buffer)
        while pos < end:
            if not self.expect_row:
                token = _VALUE.match(buffer, pos)
                if token is None or token.group("punct") != b",":
                    if buffer[pos:].strip() or done:
                        break
                    return end
                self.expect_row = True
                pos = token.end()
            token = _VALUE.match(buffer, pos)
            if token is None and not buffer[pos:].strip():
                return end if not done else pos
            if token is None or token.group("punct") != b"(":
                raise self.error(buffer, pos, "expected '(' to start a row")
            row_start, pos = pos, token.end()
            values: list[Any] = []
            while True:
                token = _VALUE.match(buffer, pos)
                if token is None:
                    if not done and not buffer[pos:].strip():
                        return row_start
                    raise self.error(buffer, pos, "expected a value")
                kind = token.lastgroup or ""
                if kind == "punct":
                    raise self.error(buffer, pos, "expected a value")
                values.append((kind, token.group(kind) if kind != "null" else None))
                pos = token.end()
                token = _VALUE.match(buffer, pos)
                mark = token.group("punct") if token is not None else None
                if mark == b")":
                    pos = token.end() if token is not None else pos
                    break
                if mark != b",":
                    if token is None and not done and not buffer[pos:].strip():
                        return row_start
                    raise self.error(buffer, pos, "expected ',' or ')' after a value")
                pos = token.end() if token is not None else pos
            if len(values) != width:
                raise self.error(
                    buffer, row_start, f"a row has {len(values)} values for {width} columns"
                )
            try:
                self.rows.append(
                    tuple(
                        convert(kind, raw)
                        for convert, (kind, raw) in zip(converters, values, strict=True)
                    )
                )
            except (ValueError, InvalidOperation, UnicodeDecodeError) as exc:
                raise self.value_error(buffer, row_start, values) from exc
            self.expect_row = False
        return pos

    def value_error(
        self, buffer: bytes, row_start: int, values: list[tuple[str, bytes | None]]
    ) -> DumpError:
        """Which value of a row does not fit its column's type."""
        for column, convert, (kind, raw) in zip(self.columns, self.converters, values, strict=True):
            try:
                convert(kind, raw)
            except (ValueError, InvalidOperation, UnicodeDecodeError):
                shown = (raw or b"").decode("utf-8", "replace")[:30]
                return self.error(
                    buffer, row_start, f"value '{shown}' does not fit column '{column}'"
                )
        return self.error(buffer, row_start, "a value does not fit its column")

    def error(self, buffer: bytes, pos: int, what: str) -> DumpError:
        line = self.line + buffer.count(b"\n", 0, pos)
        near = buffer[pos : pos + 30].decode("utf-8", "replace").split("\n")[0].strip()
        return DumpError(
            f"Malformed INSERT into '{self.table}' at line {line}: {what}, near '{near}'."
        )


def _integer(text: str) -> int:
    """An integer literal; ``'12.0'`` or ``1e3`` in an integer column as MySQL reads them."""
    try:
        return int(text)
    except ValueError:
        return int(Decimal(text))


def _ignored(first: bytes, second: bytes, data: bytes) -> bool:
    """Statements a load skips: session settings, locks, database choice, key toggles."""
    if first in _IGNORED or (first == b"CREATE" and second in (b"DATABASE", b"SCHEMA")):
        return True
    return first == b"ALTER" and _KEY_TOGGLE.search(data) is not None


def _unescape(raw: bytes) -> bytes:
    r"""MySQL string-literal escapes: ``\n``, ``\0``, ``\\``, ``\'`` and doubled quotes.

    >>> _unescape(rb"it\'s a \\ and a ''q''\n")
    b"it's a \\ and a 'q'\n"
    """
    if b"\\" not in raw and b"''" not in raw:
        return raw
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)) if m.group(1) else b"'", raw)


def _declared_type(rendered: str) -> str:
    """sqlglot's rendering of a MySQL type, spelled as mysqldump writes it.

    >>> _declared_type("DECIMAL(10, 2)"), _declared_type("ENUM('A', 'b')")
    ('decimal(10,2)', "enum('A','b')")
    """
    return re.sub(
        r"'(?:[^'\\]|\\.|'')*'|[^']+",
        lambda m: m[0] if m[0].startswith("'") else m[0].lower().replace(", ", ","),
        rendered,
    )


def _unquote(name: str) -> str:
    if name.startswith("`") and name.endswith("`"):
        return name[1:-1].replace("``", "`")
    return name


def _first_line(exc: Exception) -> str:
    return str(exc).strip().split("\n")[0].rstrip(".")

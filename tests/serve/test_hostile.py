"""Over 1,000 generated hostile or malformed requests to a real ``sluice serve``.

Every answer is a 4xx with the stable ``{code, message, hint}`` body (or, where the request
is legal, exactly the capped or empty answer it deserves); the server stays up, answers a
normal query right afterwards, and nothing in the warehouse or the catalog changes.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from sluice.project import Project
from tests.serve.conftest import Reply, Server

SEED = 20261124
MAX_ROWS = 5000  # the row cap of the ``server`` fixture (SERVER_ARGS)
ERROR_KEYS = {"code", "message", "hint", "query_id"}
JSON = (("Content-Type", "application/json"),)

ERROR = "an error at once"
FAILS = "an error at once, or an execution that ends FAILED"
ANSWERED = "any well-formed answer"
CAPPED = "a SUCCEEDED execution cut at the row cap"
ZERO = "a SUCCEEDED execution whose only row is [0]"
EMPTY_VIEW = "an empty dashboard view"
EMPTY_CSV = "a CSV download with the header only"

HOSTILE_VALUES = [
    "'; DROP TABLE fact_orders; --",
    "' OR '1'='1",
    '" OR 1=1 --',
    "Robert'); DROP TABLE dim_products;--",
    "1; ATTACH '/tmp/x.db' AS x",
    "' UNION SELECT * FROM read_text('/etc/passwd') --",
    "$1",
    "?",
    "%s%n%x",
    "\x00",
    "NULL",
    "../../etc/passwd",
    "\u202egnirts",
    "😀" * 40,
    "x" * 199,
    "France\x00' OR 1=1",
]


@dataclass(frozen=True)
class Case:
    """One request and what its answer must be."""

    kind: str
    method: str
    path: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = JSON
    expect: str = ERROR
    codes: frozenset[str] = frozenset()  # when set, the error's code is one of these
    chunked: bool = False  # sent without Content-Length, on a connection of its own
    declared: int | None = None  # a Content-Length larger than what is sent


@dataclass
class Tally:
    """Requests sent and answers seen, across client threads."""

    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1


class Client:
    """Keep-alive HTTP connections to the server, one per client thread."""

    def __init__(self, url: str, tally: Tally) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.tally = tally
        self.local = threading.local()
        self.opened: list[http.client.HTTPConnection] = []

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self.local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.local.connection = connection
            with self.tally.lock:
                self.opened.append(connection)
        return connection

    def close(self) -> None:
        for connection in self.opened:
            connection.close()

    def send(self, case: Case) -> Reply:
        if case.chunked or case.declared is not None:
            return self._send_alone(case)
        connection = self._connection()
        try:
            connection.request(case.method, case.path, body=case.body, headers=dict(case.headers))
            reply = _reply(connection.getresponse())
        except (http.client.HTTPException, OSError):
            connection.close()
            raise
        if reply.headers.get("connection") == "close":
            connection.close()
        self.tally.add(reply.status)
        return reply

    def get(self, path: str) -> Reply:
        return self.send(Case("follow-up", "GET", path, headers=()))

    def _send_alone(self, case: Case) -> Reply:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.putrequest(case.method, case.path)
            for name, value in case.headers:
                connection.putheader(name, value)
            body = case.body or b""
            if case.chunked:
                connection.putheader("Transfer-Encoding", "chunked")
                connection.endheaders()
                step = 64 * 1024
                for start in range(0, len(body), step):
                    chunk = body[start : start + step]
                    connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                connection.send(b"0\r\n\r\n")
            else:
                connection.putheader("Content-Length", str(case.declared))
                connection.endheaders()
                connection.send(body)
            reply = _reply(connection.getresponse())
        finally:
            connection.close()
        self.tally.add(reply.status)
        return reply


def _reply(response: http.client.HTTPResponse) -> Reply:
    headers = {k.lower(): v for k, v in response.getheaders()}
    return Reply(response.status, headers, response.read())


def error_body(reply: Reply, case: Case) -> dict[str, Any]:
    """The stable error body of a 4xx answer."""
    assert 400 <= reply.status < 500, (case, reply.status, reply.body[:300])
    body: dict[str, Any] = reply.json()
    assert set(body) == ERROR_KEYS, (case, body)
    assert isinstance(body["code"], str) and body["code"], (case, body)
    assert isinstance(body["message"], str) and body["message"], (case, body)
    assert body["hint"] is None or isinstance(body["hint"], str), (case, body)
    if case.codes:
        assert body["code"] in case.codes, (case, body)
    return body


def finished(client: Client, query_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        reply = client.get(f"/v1/queries/{query_id}?wait=5")
        assert reply.status == 200, reply.body
        execution: dict[str, Any] = reply.json()
        if execution["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return execution
        assert time.monotonic() < deadline, execution


def check(client: Client, case: Case) -> None:
    """Send ``case`` and assert its answer (and, for a started query, how it ended)."""
    reply = client.send(case)
    text = reply.body.decode("utf-8", "replace")
    assert reply.status < 500, (case, reply.status, text[:300])
    assert "Traceback" not in text and "root:x:0:0" not in text, (case, text[:300])
    if case.expect in (EMPTY_VIEW, EMPTY_CSV):
        _check_dashboard(reply, case)
        return
    if case.expect in (CAPPED, ZERO):
        assert reply.status == 202, (case, reply.status, text[:300])
    elif case.expect == ERROR or reply.status != 202:
        error_body(reply, case)
        return
    execution = finished(client, reply.json()["query_id"])
    results = client.get(f"/v1/queries/{execution['query_id']}/results")
    if case.expect == FAILS or execution["state"] == "FAILED":
        assert case.expect in (FAILS, ANSWERED), (case, execution)
        assert execution["state"] == "FAILED" and execution["rows"] == 0, (case, execution)
        assert set(execution["error"]) == ERROR_KEYS, (case, execution)
        assert "root:x:0:0" not in json.dumps(execution["error"]), (case, execution)
        assert error_body(results, case)["code"] == execution["error"]["code"]
        return
    assert execution["state"] == "SUCCEEDED", (case, execution)
    assert results.status == 200, (case, results.body[:300])
    if case.expect == CAPPED:
        assert execution["truncated"] and execution["rows"] == MAX_ROWS, (case, execution)
        assert results.headers["x-sluice-truncated"] == "true"
        assert results.json()["total_rows"] == MAX_ROWS
    elif case.expect == ZERO:
        assert results.json()["rows"] == [[0]], (case, results.body[:300])


def attempt(client: Client, case: Case) -> str | None:
    """None when ``case`` is answered as it must be, else what went wrong."""
    try:
        check(client, case)
    except (AssertionError, OSError, http.client.HTTPException) as exc:
        return f"{case.kind}: {type(exc).__name__} {str(exc)[:600]} {case.path} {case.body!r:.300}"
    return None


def _check_dashboard(reply: Reply, case: Case) -> None:
    if reply.status >= 400:
        raise AssertionError((case, reply.status, reply.body[:300]))
    assert reply.status == 200, (case, reply.status)
    if case.expect == EMPTY_CSV:
        lines = reply.body.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith('"order_date",'), (case, lines[:3])
        return
    view = reply.json()
    assert view["empty"] is True and view["top_products"] == [], (case, view)
    assert view["headline"]["revenue"] == 0 and view["headline"]["orders"] == 0, (case, view)
    assert view["message"].startswith("No sales"), (case, view)


# ---------------------------------------------------------------- generated cases


def _post(kind: str, body: object, expect: str = FAILS, **extra: Any) -> Case:
    return Case(kind, "POST", "/v1/queries", json.dumps(body).encode(), expect=expect, **extra)


def _sql(kind: str, sql: str, expect: str = FAILS, **extra: Any) -> Case:
    return _post(kind, {"sql": sql}, expect, **extra)


def _disguise(rng: random.Random, sql: str, *, parens: bool = True) -> str:
    """The same statement with other case, comments, whitespace and semicolons."""
    sql = rng.choice([sql, sql.upper(), sql.lower(), sql])
    prefix = rng.choice(["", "  \n\t", "/* hi */ ", "-- note\n", "(" if parens else ""])
    suffix = rng.choice(["", ";", " ;; ", "\n-- end", ")" if parens else ""])
    return prefix + sql + suffix


WRITES = [
    "DELETE FROM fact_orders",
    "DELETE FROM gold.fact_orders WHERE 1 = 1",
    "INSERT INTO fact_orders SELECT * FROM fact_orders",
    "INSERT INTO dim_products VALUES (1)",
    "UPDATE dim_products SET MSRP = 0",
    "CREATE TABLE t AS SELECT 1",
    "CREATE OR REPLACE VIEW fact_orders AS SELECT 1 AS x",
    "CREATE MACRO m(x) AS x",
    "CREATE SCHEMA evil",
    "CREATE SEQUENCE s",
    "CREATE INDEX i ON fact_orders (orderNumber)",
    "DROP TABLE fact_orders",
    "DROP VIEW gold.fact_orders",
    "DROP SCHEMA gold CASCADE",
    "ALTER TABLE fact_orders RENAME TO x",
    "ALTER VIEW fact_orders RENAME TO x",
    "TRUNCATE fact_orders",
    "COPY fact_orders TO '{out}/o.csv'",
    "COPY (SELECT 1) TO '{out}/o.parquet' (FORMAT parquet)",
    "COPY fact_orders FROM '{out}/in.csv'",
    "EXPORT DATABASE '{out}/db'",
    "IMPORT DATABASE '{out}/db'",
    "ATTACH '{out}/other.db' AS other",
    "ATTACH ':memory:' AS m",
    "ATTACH '{catalog}' AS cat (TYPE sqlite)",
    "DETACH memory",
    "USE system",
    "INSTALL httpfs",
    "LOAD httpfs",
    "LOAD '{out}/evil.duckdb_extension'",
    "FORCE INSTALL evil FROM 'http://127.0.0.1:1'",
    "SET memory_limit = '100GB'",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "RESET allowed_paths",
    "SET GLOBAL threads = 64",
    "SET allowed_directories = ['/']",
    "PRAGMA enable_profiling",
    "PRAGMA memory_limit = '100GB'",
    "CHECKPOINT",
    "VACUUM",
    "BEGIN TRANSACTION",
    "COMMIT",
    "CALL enable_logging()",
    "WITH x AS (SELECT 1) DELETE FROM fact_orders",
    "WITH x AS (SELECT 1) INSERT INTO fact_orders SELECT * FROM fact_orders",
    "SELECT 1; DROP TABLE fact_orders",
    "SELECT 1; SET memory_limit = '1GB'",
    "EXPLAIN ANALYZE DELETE FROM fact_orders",
]
WRITE_CODES = frozenset({"query_refused", "query_failed", "syntax_error"})
SYNTAX = frozenset({"syntax_error", "invalid_request"})  # invalid_request: over 100k chars

READERS = [
    "read_parquet('{p}')",
    "read_csv('{p}')",
    "read_csv_auto('{p}', header = false)",
    "read_json('{p}')",
    "read_ndjson('{p}')",
    "read_text('{p}')",
    "read_blob('{p}')",
    "glob('{p}')",
    "parquet_metadata('{p}')",
    "parquet_schema('{p}')",
    "sniff_csv('{p}')",
    "'{p}'",
    "sqlite_scan('{p}', 'iceberg_tables')",
    "iceberg_scan('{p}')",
    "query('SELECT * FROM read_text(''{p}'')')",
]
OUTSIDE = [
    "/etc/passwd",
    "/etc/hostname",
    "/proc/self/environ",
    "{catalog}",
    "{runs}",
    "{root}/sluice.yml",
    "{warehouse}/gold.db/fact_orders/metadata/*.json",
    "{warehouse}/**/*.parquet",
    "/*",
    "~/.ssh/id_rsa",
    "http://127.0.0.1:1/x.csv",
    "s3://bucket/x.parquet",
    "file:///etc/passwd",
    "{out}/x.csv",
    "../../../../etc/passwd",
]
READ_SHAPES = [
    "SELECT * FROM {f}",
    "SELECT count(*) FROM {f}",
    "SELECT * FROM fact_orders, {f} LIMIT 1",
    "SELECT (SELECT count(*) FROM {f}) AS n",
    "WITH t AS (SELECT * FROM {f}) SELECT * FROM t",
]

VALID = [
    "SELECT count(*) FROM fact_orders",
    "SELECT l.country, sum(f.orderAmount) AS s FROM fact_orders f "
    "JOIN dim_locations l USING (location_key) GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
    "SELECT productName FROM dim_products WHERE productLine = 'Planes' ORDER BY 1",
]
OPENERS = ["(", "'", '"', " WHERE", " FROM FROM", ", ,", " AND", " JOIN"]
SOUP = [
    *("SELECT", "FROM", "WHERE", "GROUP", "BY", "JOIN", "ON", "UNION", "LIMIT", "IS", "NOT"),
    *("IN", "LIKE", "NULL", "fact_orders", "'x'", "1", "$1", "?", "(", ")", ",", "*", "="),
    *("::", "[", "]", "{", "}", ";", "--", "/*", "*/", "\\", '"', "`", "@", "#", "%", "^"),
    *("&", "|", "~", "!", "<", ">", "<="),
]
RUNTIME = [
    "SELECT CAST('x' AS INTEGER)",
    "SELECT error('boom')",
    "SELECT nope FROM fact_orders",
    "SELECT * FROM fact_orders WHERE orderNumber = 'abc'",
    "SELECT 100::TINYINT * 100::TINYINT",
    "SELECT no_such_function(1)",
    "SELECT * FROM fact_orders JOIN dim_products USING (nothing)",
    "SELECT DATE '2020-13-45'",
    "SELECT * FROM fact_order",
    "SELECT * FROM raw.nothing",
    "SELECT getenv('HOME')",
]
HUGE = [
    "SELECT * FROM range({n})",
    "SELECT a.range FROM range({n}) AS a, range(1000) AS b",
    "SELECT * FROM fact_orders, dim_products",
    "SELECT repeat('x', 1000) AS s FROM range({n})",
    "SELECT f.* FROM fact_orders f, range({n})",
]
INJECTED = [
    ("SELECT count(*) FROM dim_locations WHERE country = ?", "list"),
    ("SELECT count(*) FROM dim_locations WHERE country = $1", "list"),
    ("SELECT count(*) FROM dim_locations WHERE country = $country", "named"),
    ("SELECT count(*) FROM dim_products WHERE productName = ? OR productLine = ?", "twice"),
]
WRONG_PARAMETERS: list[tuple[str, object, str]] = [
    ("SELECT ? AS a, ? AS b", [1], FAILS),
    ("SELECT ? AS a", [1, 2, 3], FAILS),
    ("SELECT $name AS a", [1], FAILS),
    ("SELECT ? AS a", {"x": 1}, FAILS),
    ("SELECT ? AS a", None, FAILS),
    ("SELECT $a + $b AS s", {"a": 1}, FAILS),
    ("SELECT count(*) FROM fact_orders WHERE orderNumber = ?", ["not a number"], FAILS),
    ("SELECT ?::DATE AS d", ["yesterday"], FAILS),
    ("SELECT ? + 1 AS n", [2**200], ANSWERED),
    ("SELECT ? || 'x' AS s", [[1, 2]], ERROR),
    ("SELECT ? AS a", "SELECT 1", ERROR),
    ("SELECT ? AS a", [{"nested": True}], ERROR),
    ("SELECT ? AS a", {"a": {"b": 1}}, ERROR),
    ("SELECT ? AS a", 42, ERROR),
    ("SELECT ? AS a", True, ERROR),
]


def writes(rng: random.Random, paths: dict[str, str]) -> Iterator[Case]:
    for _ in range(160):
        sql = _disguise(rng, rng.choice(WRITES).format(**paths))
        yield _sql("write", sql, ERROR, codes=WRITE_CODES)


def file_reads(rng: random.Random, paths: dict[str, str]) -> Iterator[Case]:
    for _ in range(160):
        path = rng.choice(OUTSIDE).format(**paths)
        reader = rng.choice(READERS).replace("{p}", path.replace("'", "''"))
        yield _sql("file read", rng.choice(READ_SHAPES).format(f=reader))


def bad_sql(rng: random.Random) -> Iterator[Case]:
    for _ in range(120):
        valid = rng.choice(VALID)
        cut = rng.randrange(1, len(valid))
        yield _sql("broken SQL", valid[:cut] + rng.choice(OPENERS))
    for _ in range(60):
        yield _sql("token soup", " ".join(rng.choices(SOUP, k=rng.randint(1, 12))), ANSWERED)
    for _ in range(40):
        yield _sql("runtime error", _disguise(rng, rng.choice(RUNTIME), parens=False))
    for depth in (50, 500, 5_000, 30_000):
        expect, codes = (ANSWERED, frozenset()) if depth < 100 else (ERROR, SYNTAX)
        nested = "SELECT " + "(" * depth + "1" + ")" * depth
        yield _sql("deep nesting", nested, expect, codes=codes)
        subqueries = "SELECT * FROM " + "(SELECT * FROM " * depth + "fact_orders" + ")" * depth
        yield _sql("deep subqueries", subqueries, expect, codes=codes)
    # DuckDB plans a chain of about 500 terms for seconds (the statement timeout answers it,
    # 504) but refuses one over 1,000 deep at once.
    for terms in (50, 1_500, 5_000):
        yield _sql("long chain", "SELECT " + "1+" * terms + "1", ANSWERED)
    for text in ["SELECT 1\x00; DROP TABLE fact_orders", "SELECT '\ud800'", "\ufeffSELECT 1 x"]:
        yield _post("odd characters", {"sql": text}, ANSWERED)
    yield _sql("whitespace only", " \n\t ;; ", ERROR)


def huge_results(rng: random.Random) -> Iterator[Case]:
    for _ in range(30):
        sql = rng.choice(HUGE).format(n=rng.choice([MAX_ROWS + 1, 10**5, 10**7, 10**12]))
        yield _sql("huge result", sql, CAPPED)


def parameters(rng: random.Random) -> Iterator[Case]:
    for _ in range(90):
        sql, style = rng.choice(INJECTED)
        value = rng.choice(HOSTILE_VALUES)
        bound: object = {"country": value} if style == "named" else [value]
        if style == "twice":
            bound = [value, rng.choice(HOSTILE_VALUES)]
        yield _post("injection", {"sql": sql, "parameters": bound}, ZERO)
    for _ in range(60):
        sql, bound, expect = rng.choice(WRONG_PARAMETERS)
        yield _post("wrong parameters", {"sql": sql, "parameters": bound}, expect)


def bodies(rng: random.Random) -> Iterator[Case]:
    too_large = frozenset({"request_too_large"})
    for _ in range(10):
        sql = "SELECT '" + "x" * (1_000_000 + rng.randrange(10_000)) + "'"
        body = json.dumps({"sql": sql}).encode()
        yield Case("oversized, chunked", "POST", "/v1/queries", body, codes=too_large, chunked=True)
        declared = rng.choice([1_000_001, 5_000_000, 10**9, 10**15])
        start = body[: rng.randrange(0, 2000)]
        yield Case("oversized, declared", "POST", "/v1/queries", start, codes=too_large,
                   declared=declared)  # fmt: skip
    long_sql = "SELECT " + "1+" * 50_001 + "1"
    yield _sql("SQL over the maximum", long_sql, ERROR, codes=frozenset({"invalid_request"}))
    valid = json.dumps({"sql": "SELECT 1", "database": "gold"}).encode()
    for _ in range(60):
        yield Case("truncated JSON", "POST", "/v1/queries", valid[: rng.randrange(0, len(valid))])
    for _ in range(30):
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 80)))
        yield Case("random bytes", "POST", "/v1/queries", junk)
    for raw in [
        b'{"sql": "SELECT 1",}',
        b"[]",
        b'"SELECT 1"',
        b"null",
        b"1e999",
        b'{"sql": NaN}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"sql": ' * 50_000,
        b'{"sql": "SELECT 1", "sql": "DROP TABLE fact_orders"}',
        b'\xef\xbb\xbf{"sql": "DROP TABLE fact_orders"}',
        b'{"sql": "SELECT \xff\xfe"}',
        b"",
        b" " * 999_000 + b"{}",
        b'{"sql": "SELECT 1", "database": "gold\\u0000"}',
        b'{"sql": "SELECT 1", "database": "' + b"g" * 10_000 + b'"}',
    ]:
        yield Case("malformed JSON", "POST", "/v1/queries", raw, expect=FAILS)
    drop = json.dumps({"sql": "DROP TABLE fact_orders"}).encode()
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "image/png",
        "application/octet-stream",
    ]:
        for _ in range(10):
            body = rng.choice([valid, drop, b"sql=SELECT+1", b"--x\r\n\r\n--x--"])
            yield Case(
                "content type", "POST", "/v1/queries", body, (("Content-Type", content_type),)
            )
    yield Case("no content type", "POST", "/v1/queries", drop, ())


def ids_and_pages(rng: random.Random, done_id: str) -> Iterator[Case]:
    not_found = frozenset({"query_not_found", "not_found"})
    for _ in range(70):
        weird = rng.choice([
            f"{rng.getrandbits(128):032x}",
            "..%2F..%2Fetc%2Fpasswd",
            "%00",
            quote("' OR 1=1 --"),
            "a" * rng.choice([1, 300, 5000]),
            quote("😀"),
            done_id[:-1],
            done_id.upper(),
        ])  # fmt: skip
        method, suffix = rng.choice([("GET", ""), ("GET", "/results"), ("DELETE", "")])
        yield Case("bad id", method, f"/v1/queries/{weird}{suffix}", codes=not_found)
    results = f"/v1/queries/{done_id}/results"
    for _ in range(100):
        param = rng.choice(["page_size", "next_token", "format", "Accept", "wait"])
        if param == "page_size":
            value = rng.choice(["0", "-1", "abc", "1.5", "1e3", "9" * 30, "10001", ""])
            yield Case("page size", "GET", f"{results}?{urlencode({'page_size': value})}")
        elif param == "next_token":
            token = rng.choice([
                "bogus",
                rng.randbytes(12).hex(),
                _token(done_id, 11),
                _token(done_id, -1),
                _token("other-query", 2),
                _token(done_id, "abc"),
                "%%%",
                "😀",
            ])  # fmt: skip
            yield Case("next token", "GET", f"{results}?{urlencode({'next_token': token})}")
        elif param == "format":
            value = rng.choice(["xml", "JSON ", "csv;", "../csv", "arrow\x00", "html"])
            yield Case("format", "GET", f"{results}?{urlencode({'format': value})}")
        elif param == "Accept":
            accept = rng.choice(["application/xml", "text/html", "image/*", "application/pdf"])
            yield Case("accept", "GET", results, headers=(("Accept", accept),))
        else:
            value = rng.choice(["-1", "21", "abc", "inf", "1e9"])
            yield Case("wait", "GET", f"/v1/queries/{done_id}?{urlencode({'wait': value})}")
    for _ in range(30):
        query = rng.choice([
            {"limit": rng.choice(["0", "-5", "1001", "x"])},
            {"state": rng.choice(["BOGUS", "succeeded", "' OR 1=1", ""])},
        ])  # fmt: skip
        if query.get("state") == "":
            query["state"] = "NONE"
        yield Case("history", "GET", f"/v1/queries?{urlencode(query)}")


def _token(query_id: str, offset: object) -> str:
    import base64

    return base64.urlsafe_b64encode(f"{query_id}:{offset}".encode()).decode().rstrip("=")


def routes(rng: random.Random) -> Iterator[Case]:
    words = ["v1", "v2", "admin", "queries", "databases", "tables", "x", "..", "%2e%2e", "etc"]
    for _ in range(40):
        path = "/" + "/".join(rng.choices(words, k=rng.randint(1, 5))) + "/nothing"
        method = rng.choice(["GET", "POST", "PUT", "PATCH", "DELETE"])
        yield Case("unknown route", method, path)
    for method, path in [
        ("PUT", "/v1/queries"),
        ("PATCH", "/v1/queries"),
        ("POST", "/v1/databases"),
        ("DELETE", "/v1/dashboard"),
        ("POST", "/v1/dashboard/options"),
        ("OPTIONS", "/v1/queries"),
        ("GET", "/static/../../etc/passwd"),
        ("GET", "/static/%2e%2e/%2e%2e/etc/passwd"),
        ("GET", "/static/..%2f..%2fetc%2fpasswd"),
        ("GET", "/static/nothing.js"),
        ("GET", "/v1/databases/gold;drop/tables"),
        ("GET", "/v1/databases/1abc/tables"),
        ("GET", "/v1/databases/%2e%2e/tables"),
        ("GET", "/v1/databases/bronze/tables"),
        ("GET", "/v1/databases/gold/tables/fact_order"),
        ("GET", "/v1/databases/gold/tables/" + quote("fact_orders'--")),
        ("GET", "/v1/databases/gold/tables/" + "t" * 3000),
    ]:
        for _ in range(2):
            yield Case("route", method, path)


def dashboard(rng: random.Random) -> Iterator[Case]:
    paths = ["/v1/dashboard", "/v1/dashboard/order-lines.csv"]
    for _ in range(70):
        path = rng.choice(paths)
        query = {rng.choice(["country", "product_line"]): rng.choice(HOSTILE_VALUES)}
        if rng.random() < 0.3:
            query[rng.choice(["country", "product_line"])] = rng.choice(HOSTILE_VALUES)
        expect = EMPTY_CSV if path.endswith(".csv") else EMPTY_VIEW
        yield Case("dashboard filter", "GET", f"{path}?{urlencode(query)}", expect=expect)
    for _ in range(60):
        path = rng.choice([*paths, "/v1/dashboard/options"])
        bad = rng.choice([
            {"country": "x" * 201},
            {"product_line": "y" * rng.randint(201, 5000)},
            {"start": rng.choice(["2020-13-45", "yesterday", "0000-00-00", "2020-02-30", "' OR 1=1"])},
            {"end": rng.choice(["9999999-01-01", "2004-1-1x", "NaN"])},
            {"start": "2005-01-01", "end": "2003-01-01"},
            {"top": rng.choice(["0", "-1", "51", "ten", "1e3", "", "99999999999999999999"])},
        ])  # fmt: skip
        if path.endswith("options"):
            path, bad = "/v1/dashboard/options/" + quote(str(bad)), {}
        yield Case("dashboard input", "GET", f"{path}?{urlencode(bad)}")
    for path in paths:
        range_ = {"start": "2999-01-01", "end": "2999-12-31"}
        yield Case("future dates", "GET", f"{path}?{urlencode(range_)}",
                   expect=EMPTY_CSV if path.endswith(".csv") else EMPTY_VIEW)  # fmt: skip


def all_cases(rng: random.Random, paths: dict[str, str], done_id: str) -> list[Case]:
    cases = [
        *writes(rng, paths),
        *file_reads(rng, paths),
        *bad_sql(rng),
        *huge_results(rng),
        *parameters(rng),
        *bodies(rng),
        *ids_and_pages(rng, done_id),
        *routes(rng),
        *dashboard(rng),
    ]
    rng.shuffle(cases)
    return cases


# ---------------------------------------------------------------- the test


def listing(project: Project) -> dict[str, tuple[int, int]]:
    """Every warehouse file with its size and modification time."""
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(project.warehouse.rglob("*"))
        if p.is_file()
    }


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow  # about 40 s: 1,328 cases, about 2,070 requests
def test_a_thousand_hostile_requests_get_errors_and_change_nothing(
    server: Server, served_project: Project, tmp_path: Path
) -> None:
    catalog = served_project.state_dir / "catalog.db"
    count_sql = "SELECT count(*) FROM fact_orders"
    expected = served_project.query(count_sql).table.column(0)[0].as_py()
    files, catalog_bytes = listing(served_project), digest(catalog)
    assert files and expected > 2000
    out = tmp_path / "out"
    out.mkdir()
    paths = {
        "out": str(out),
        "catalog": str(catalog),
        "runs": str(served_project.state_dir / "runs.db"),
        "root": str(served_project.root),
        "warehouse": str(served_project.warehouse),
    }
    done_id = server.wait(server.start("SELECT range FROM range(10)")["query_id"])["query_id"]
    cases = all_cases(random.Random(SEED), paths, done_id)
    log_start = len(server.log)
    tally = Tally()
    client = Client(server.url, tally)

    try:
        with ThreadPoolExecutor(4) as pool:
            failures = [f for f in pool.map(lambda case: attempt(client, case), cases) if f]
    finally:
        client.close()

    shown = "\n".join(failures[:15])
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n{shown}"
    assert tally.requests > len(cases) >= 1000, tally
    assert not [s for s in tally.statuses if s >= 500], tally.statuses
    assert server.process.poll() is None
    assert server.rows(count_sql) == [[expected]]
    assert listing(served_project) == files
    assert digest(catalog) == catalog_bytes
    assert list(out.iterdir()) == []
    logged = "".join(server.log[log_start:])
    assert "Traceback" not in logged and "failed unexpectedly" not in logged, logged[-3000:]

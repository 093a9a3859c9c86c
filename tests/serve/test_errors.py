"""Every refusal and failure answers a stable ``{code, message, hint}`` body, never a traceback."""

from __future__ import annotations

import http.client
import time
from typing import Any

import pyarrow as pa
import pytest

from sluice.project import Project
from tests.serve.conftest import SLOW_SQL, Reply, Server

ERROR_KEYS = {"code", "message", "hint", "query_id"}


def error_of(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    body: dict[str, Any] = reply.json()
    assert set(body) == ERROR_KEYS, body
    assert body["code"] == code, body
    assert body["message"] and "Traceback" not in reply.body.decode()
    return body


def failed(server: Server, sql: str, code: str, **fields: object) -> dict[str, Any]:
    """Start ``sql``; it must end FAILED with ``code``; return its error."""
    execution = server.wait(server.start(sql, **fields)["query_id"])
    assert execution["state"] == "FAILED", execution
    error: dict[str, Any] = execution["error"]
    assert error["code"] == code, error
    assert execution["rows"] == 0
    return execution


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("DELETE FROM fact_orders", "DELETE"),
        ("INSERT INTO fact_orders SELECT * FROM fact_orders", "INSERT"),
        ("UPDATE dim_products SET MSRP = 0", "UPDATE"),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("DROP TABLE fact_orders", "DROP"),
        ("COPY fact_orders TO '/tmp/out.csv'", "COPY"),
        ("ATTACH '/tmp/other.db' AS other", "ATTACH"),
        ("LOAD httpfs", "LOAD"),
        ("INSTALL httpfs", "INSTALL"),
        ("SET memory_limit = '100GB'", "SET"),
        ("SELECT 1; DELETE FROM fact_orders", None),
    ],
)
def test_writes_attach_extensions_and_settings_are_refused_at_once(
    server: Server, served_project: Project, sql: str, kind: str | None
) -> None:
    before = served_project.query("SELECT count(*) AS n FROM fact_orders").table.to_pylist()
    reply = server.request("POST", "/v1/queries", {"sql": sql})
    if kind is None:
        body = error_of(reply, 400, "query_failed")
        assert "one statement at a time" in body["message"]
    else:
        body = error_of(reply, 403, "query_refused")
        assert kind in body["message"] and "read-only" in body["message"]
        assert body["hint"]
    recorded = server.request("GET", f"/v1/queries/{body['query_id']}").json()
    assert recorded["state"] == "FAILED" and recorded["error"]["code"] == body["code"]
    after = served_project.query("SELECT count(*) AS n FROM fact_orders").table.to_pylist()
    assert after == before


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
    ],
)
def test_file_reads_outside_the_lake_fail_as_refused(server: Server, sql: str) -> None:
    execution = failed(server, sql, "query_refused")
    assert "lake tables only" in execution["error"]["message"]
    reply = server.request("GET", f"/v1/queries/{execution['query_id']}/results")
    error_of(reply, 403, "query_refused")


def test_a_file_path_as_a_table_name_reads_nothing(server: Server) -> None:
    execution = failed(server, "SELECT * FROM '/etc/hostname'", "table_not_found")
    assert execution["error"]["message"] == "Table /etc/hostname does not exist."


def test_unpublished_files_in_the_warehouse_are_refused(
    server: Server, served_project: Project
) -> None:
    parquet = sorted(served_project.warehouse.rglob("*.parquet"))
    assert parquet
    published = {f for p in served_project.publications.current().values() for f in p.files}
    stray = parquet[0].parent / "stray.parquet"
    stray.write_bytes(parquet[0].read_bytes())
    try:
        assert str(stray) not in published
        failed(server, f"SELECT count(*) FROM read_parquet('{stray}')", "query_refused")
    finally:
        stray.unlink()


def test_unknown_table_is_404_with_did_you_mean(server: Server) -> None:
    execution = failed(server, "SELECT count(*) FROM fact_order", "table_not_found")
    assert "Did you mean 'fact_orders'?" in execution["error"]["message"]
    assert "gold.fact_orders" in execution["error"]["hint"]
    reply = server.request("GET", f"/v1/queries/{execution['query_id']}/results")
    body = error_of(reply, 404, "table_not_found")
    assert "fact_orders" in body["message"]


def test_unknown_database_is_not_found(server: Server) -> None:
    execution = failed(server, "SELECT 1", "not_found", database="glod")
    assert "Did you mean 'gold'?" in execution["error"]["message"]


def test_syntax_error_is_400_at_once(server: Server) -> None:
    reply = server.request("POST", "/v1/queries", {"sql": "SELEC count(*) FROM fact_orders"})
    body = error_of(reply, 400, "syntax_error")
    assert "line 1" in body["message"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT " + "(" * 1000 + "1" + ")" * 1000,
        "SELECT * FROM " + "(SELECT * FROM " * 1000 + "fact_orders" + ")" * 1000,
    ],
)
def test_sql_nested_too_deeply_is_400_not_a_server_error(server: Server, sql: str) -> None:
    body = error_of(server.request("POST", "/v1/queries", {"sql": sql}), 400, "syntax_error")
    assert "nested too deeply" in body["message"] and "Flatten" in body["hint"]
    assert server.rows("SELECT 1 + 1 AS two") == [[2]]


def test_runtime_error_fails_the_execution(server: Server) -> None:
    execution = failed(server, "SELECT CAST('x' AS INTEGER)", "query_failed")
    assert "Conversion" in execution["error"]["message"]
    wrong = failed(server, "SELECT ? AS a, ? AS b", "query_failed", parameters=[1])
    assert wrong["parameters"] == [1]


def test_statement_timeout_fails_with_query_timeout(server: Server) -> None:
    started = time.monotonic()
    execution = failed(server, SLOW_SQL, "query_timeout")
    assert time.monotonic() - started < 30
    assert 4 <= execution["engine_seconds"] < 20
    assert "4 s timeout" in execution["error"]["message"]
    reply = server.request("GET", f"/v1/queries/{execution['query_id']}/results")
    error_of(reply, 504, "query_timeout")


def test_cancel_ends_a_running_query_as_cancelled(server: Server) -> None:
    query_id = server.start(SLOW_SQL)["query_id"]
    deadline = time.monotonic() + 10
    while server.request("GET", f"/v1/queries/{query_id}").json()["state"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    not_ready = server.request("GET", f"/v1/queries/{query_id}/results")
    error_of(not_ready, 409, "query_not_finished")

    cancelled = server.request("DELETE", f"/v1/queries/{query_id}")
    assert cancelled.status == 200
    assert cancelled.json()["state"] == "CANCELLED"
    final = server.wait(query_id)
    assert final["state"] == "CANCELLED" and final["error"] is None
    assert final["engine_seconds"] < 4
    error_of(server.request("GET", f"/v1/queries/{query_id}/results"), 409, "query_cancelled")


def test_cancelling_a_finished_query_changes_nothing(server: Server) -> None:
    execution = server.wait(server.start("SELECT 42 AS answer")["query_id"])
    again = server.request("DELETE", f"/v1/queries/{execution['query_id']}").json()
    assert again["state"] == "SUCCEEDED"
    assert server.rows("SELECT 42 AS answer") == [[42]]


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/results"), ("DELETE", "")])
def test_unknown_query_id_is_404(server: Server, method: str, suffix: str) -> None:
    reply = server.request(method, f"/v1/queries/no-such-id{suffix}")
    body = error_of(reply, 404, "query_not_found")
    assert "no-such-id" in body["message"] and "sluice query history" in body["hint"]


def test_bad_formats_tokens_and_page_sizes(server: Server) -> None:
    query_id = server.wait(server.start("SELECT range FROM range(10)")["query_id"])["query_id"]
    path = f"/v1/queries/{query_id}/results"
    body = error_of(server.request("GET", path + "?format=xml"), 400, "unsupported_format")
    assert "csv" in body["hint"]
    error_of(
        server.request("GET", path, headers={"Accept": "application/xml"}), 406, "not_acceptable"
    )
    error_of(server.request("GET", path + "?next_token=bogus"), 400, "invalid_argument")
    other = server.wait(server.start("SELECT range FROM range(10)")["query_id"])["query_id"]
    token = server.request("GET", f"/v1/queries/{other}/results?page_size=3").json()["next_token"]
    error_of(server.request("GET", f"{path}?next_token={token}"), 400, "invalid_argument")
    error_of(server.request("GET", path + "?page_size=0"), 400, "invalid_request")
    error_of(server.request("GET", path + "?page_size=10001"), 400, "invalid_argument")
    assert server.request("GET", path + "?page_size=4").json()["rows"] == [[0], [1], [2], [3]]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"sql": ""},
        {"sql": "SELECT 1", "extra": True},
        {"sql": "SELECT 1", "database": "gold; DROP"},
        {"sql": "SELECT ?", "parameters": [{"nested": 1}]},
        {"sql": 42},
    ],
)
def test_invalid_request_bodies_are_400(server: Server, body: dict[str, Any]) -> None:
    reply = server.request("POST", "/v1/queries", body)
    message = error_of(reply, 400, "invalid_request")["message"]
    assert message.startswith("The request is invalid:")


def test_malformed_and_oversized_bodies(server: Server) -> None:
    error_of(server.request("POST", "/v1/queries", raw=b"{not json"), 400, "invalid_request")
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("POST", "/v1/queries")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", "2000000")
        connection.endheaders()
        connection.send(b'{"sql": "SELECT 1')
        response = connection.getresponse()
        reply = Reply(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()
    reply.headers = {k.lower(): v for k, v in reply.headers.items()}
    error_of(reply, 413, "request_too_large")
    long_sql = "SELECT " + "1+" * 60_000 + "1"
    error_of(server.request("POST", "/v1/queries", {"sql": long_sql}), 400, "invalid_request")
    assert server.rows("SELECT 1 + 1 AS two") == [[2]]


def test_unknown_routes_and_methods_answer_json(server: Server) -> None:
    error_of(server.request("GET", "/v1/nothing"), 404, "not_found")
    error_of(server.request("PUT", "/v1/queries"), 405, "method_not_allowed")
    error_of(server.request("GET", "/v1/databases/bronze/tables"), 404, "not_found")
    body = error_of(server.request("GET", "/v1/databases/gold/tables/fact_order"), 404, "not_found")
    assert "Did you mean 'gold.fact_orders'?" in body["message"]


def test_the_memory_limit_fails_a_hungry_query(served_project: Project) -> None:
    small = Server(served_project.root, "--memory-limit", "20MB", "--threads", "1")
    try:
        sql = "SELECT string_agg(CAST(range AS VARCHAR), ',') FROM range(20000000)"
        execution = failed(small, sql, "memory_limit_exceeded")
        assert "out of memory" in execution["error"]["message"]
        assert "memory limit" in execution["error"]["hint"]
        reply = small.request("GET", f"/v1/queries/{execution['query_id']}/results")
        error_of(reply, 422, "memory_limit_exceeded")
        assert small.rows("SELECT count(*) FROM dim_products") == [
            [served_project.query("SELECT count(*) FROM dim_products").table.column(0)[0].as_py()]
        ]
    finally:
        assert small.stop() == 0


def test_types_a_format_cannot_hold_are_an_error_not_a_broken_response(server: Server) -> None:
    sql = "SELECT [1, 2] AS l, {'a': 1} AS s, INTERVAL 3 DAY AS i, 'x'::BLOB AS b"
    query_id = server.wait(server.start(sql)["query_id"])["query_id"]
    path = f"/v1/queries/{query_id}/results"
    body = error_of(server.request("GET", path + "?format=csv"), 400, "unsupported_format")
    assert "column l is list<l: int32>" in body["message"] and "VARCHAR" in body["hint"]
    assert server.request("GET", path).json()["rows"] == [
        [[1, 2], {"a": 1}, {"months": 0, "days": 3, "nanoseconds": 0}, "eA=="]
    ]
    arrow = server.request("GET", path + "?format=arrow")
    assert arrow.status == 200
    assert pa.ipc.open_stream(arrow.body).read_all().column("l").to_pylist() == [[1, 2]]
    parquet = server.request("GET", path + "?format=parquet")
    body = error_of(parquet, 400, "unsupported_format")
    assert "month_day_nano_interval" in body["message"]

"""Query executions over real HTTP: states, numbers, results in every format, history, catalog."""

from __future__ import annotations

import csv
import io
import os
import sqlite3
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq

from sluice.core import TableName
from sluice.project import Project
from sluice.sources.sqlite import sqlite_path
from tests.conftest import sluice_cli
from tests.serve.conftest import Server

SALES_BY_COUNTRY = """
SELECT l.country, sum(f.orderAmount) AS sales, count(DISTINCT f.orderNumber) AS orders
FROM fact_orders AS f JOIN dim_locations AS l USING (location_key)
GROUP BY l.country ORDER BY l.country
"""
DETAIL = """
SELECT f.orderNumber, f.orderLineNumber, f.orderDate, f.quantityOrdered, f.orderAmount
FROM fact_orders AS f ORDER BY f.orderNumber, f.orderLineNumber
"""


def source_one(project: Project, sql: str) -> tuple[object, ...]:
    path = sqlite_path(project.config.sources["classicmodels"].url, base_dir=project.root)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        row: tuple[object, ...] = con.execute(sql).fetchone()
    return row


def plain(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def expected_rows(project: Project, sql: str) -> list[list[object]]:
    table = project.query(sql).table
    return [[plain(v) for v in row.values()] for row in table.to_pylist()]


def test_a_query_runs_to_succeeded_with_the_source_totals(
    server: Server, served_project: Project
) -> None:
    started = server.start("SELECT count(*) AS n, sum(orderAmount) AS sales FROM fact_orders")
    assert started["state"] in ("QUEUED", "RUNNING")
    assert started["rows"] == 0
    done = server.wait(started["query_id"])
    assert done["state"] == "SUCCEEDED", done
    assert done["error"] is None
    assert done["rows"] == 1
    assert done["truncated"] is False
    assert done["columns"] == [
        {"name": "n", "type": "int64"},
        {"name": "sales", "type": "decimal128(38, 2)"},
    ]
    assert (
        done["engine_seconds"] is not None
        and 0 <= done["engine_seconds"] <= done["elapsed_seconds"]
    )
    published = served_project.publications.current()[TableName("gold", "fact_orders")]
    assert done["input_bytes"] == sum(os.path.getsize(f) for f in published.files) > 0

    page = server.request("GET", f"/v1/queries/{started['query_id']}/results").json()
    count, cents = source_one(
        served_project,
        "SELECT count(*), sum(CAST(round(quantityOrdered * priceEach * 100) AS INTEGER)) FROM orderdetails",
    )
    assert page["rows"] == [[count, float(Decimal(int(cents)) / 100)]]
    assert page["total_rows"] == 1 and page["next_token"] is None


def test_results_equal_project_query_and_page_consistently(
    server: Server, served_project: Project
) -> None:
    expected = expected_rows(served_project, DETAIL)
    assert len(expected) == source_one(served_project, "SELECT count(*) FROM orderdetails")[0]
    execution = server.wait(server.start(DETAIL)["query_id"])
    assert execution["rows"] == len(expected)
    query_id = execution["query_id"]

    pages = []
    token = None
    while True:
        suffix = f"&next_token={token}" if token else ""
        reply = server.request("GET", f"/v1/queries/{query_id}/results?page_size=700{suffix}")
        assert reply.status == 200
        body = reply.json()
        pages.append(body["rows"])
        token = body["next_token"]
        assert reply.headers.get("x-sluice-next-token") == token
        if token is None:
            break
    assert [len(p) for p in pages] == [700] * 4 + [len(expected) - 2800]
    assert [row for p in pages for row in p] == expected
    again = server.request("GET", f"/v1/queries/{query_id}/results?page_size=700").json()
    assert again["rows"] == pages[0]


def test_csv_arrow_and_parquet_hold_the_same_rows(server: Server, served_project: Project) -> None:
    expected = served_project.query(SALES_BY_COUNTRY).table
    query_id = server.wait(server.start(SALES_BY_COUNTRY)["query_id"])["query_id"]
    path = f"/v1/queries/{query_id}/results"

    as_csv = server.request("GET", path, headers={"Accept": "text/csv"})
    assert as_csv.status == 200 and as_csv.headers["content-type"].startswith("text/csv")
    records = list(csv.DictReader(io.StringIO(as_csv.body.decode())))
    assert [r["country"] for r in records] == expected.column("country").to_pylist()
    assert [Decimal(r["sales"]) for r in records] == expected.column("sales").to_pylist()

    as_arrow = server.request("GET", path + "?format=arrow")
    assert as_arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(as_arrow.body).read_all()
    assert table.equals(expected)

    as_parquet = server.request("GET", path, headers={"Accept": "application/vnd.apache.parquet"})
    assert as_parquet.headers["content-type"] == "application/vnd.apache.parquet"
    assert pq.read_table(io.BytesIO(as_parquet.body)).equals(expected)

    as_json = server.request("GET", path, headers={"Accept": "*/*"}).json()
    assert as_json["rows"] == expected_rows(served_project, SALES_BY_COUNTRY)


def test_binary_formats_page_too(server: Server, served_project: Project) -> None:
    expected = served_project.query(DETAIL).table
    query_id = server.wait(server.start(DETAIL)["query_id"])["query_id"]
    first = server.request("GET", f"/v1/queries/{query_id}/results?format=arrow&page_size=1000")
    token = first.headers["x-sluice-next-token"]
    rest = server.request("GET", f"/v1/queries/{query_id}/results?format=arrow&next_token={token}")
    assert "x-sluice-next-token" not in rest.headers
    tables = [pa.ipc.open_stream(r.body).read_all() for r in (first, rest)]
    assert tables[0].num_rows == 1000
    assert pa.concat_tables(tables).equals(expected)


def test_bound_parameters_by_position_and_by_name(server: Server, served_project: Project) -> None:
    (france,) = source_one(
        served_project, "SELECT count(*) FROM customers WHERE country = 'France'"
    )
    assert france > 0
    sql = "SELECT count(*) AS n FROM customers WHERE country = ?"
    expected = served_project.query(sql, database="raw", parameters=["France"]).table
    assert expected.column("n").to_pylist() == [france]
    assert server.rows(sql, database="raw", parameters=["France"]) == [[france]]
    named = "SELECT count(*) AS n FROM customers WHERE country = $country"
    assert server.rows(named, database="raw", parameters={"country": "France"}) == [[france]]
    hostile = "France' OR '1'='1"
    assert server.rows(sql, database="raw", parameters=[hostile]) == [[0]]


def test_raw_database_and_row_cap_flag(server: Server, served_project: Project) -> None:
    (orders,) = source_one(served_project, "SELECT count(*) FROM orders")
    assert server.rows("SELECT count(*) FROM orders", database="raw") == [[orders]]

    capped = server.wait(server.start("SELECT range AS n FROM range(12000)")["query_id"])
    assert capped["state"] == "SUCCEEDED"
    assert (capped["rows"], capped["truncated"]) == (5000, True)
    page = server.request("GET", f"/v1/queries/{capped['query_id']}/results?format=csv")
    assert page.headers["x-sluice-truncated"] == "true"
    values = [int(line) for line in page.body.decode().split()[1:]]
    assert values == list(range(5000))

    whole = server.wait(server.start("SELECT range FROM range(5000)")["query_id"])
    assert (whole["rows"], whole["truncated"]) == (5000, False)


def test_history_over_http_and_on_the_command_line(server: Server, served_project: Project) -> None:
    marker = "SELECT 'history marker' AS m, count(*) AS n FROM dim_products"
    query_id = server.wait(server.start(marker)["query_id"])["query_id"]
    listed = server.request("GET", "/v1/queries?limit=1000").json()["queries"]
    mine = next(q for q in listed if q["query_id"] == query_id)
    assert mine["state"] == "SUCCEEDED" and mine["sql"] == marker and mine["rows"] == 1
    times = [q["submitted_at"] for q in listed]
    assert times == sorted(times, reverse=True)
    succeeded = server.request("GET", "/v1/queries?state=SUCCEEDED&limit=1000").json()["queries"]
    assert {q["state"] for q in succeeded} == {"SUCCEEDED"}
    assert query_id in {q["query_id"] for q in succeeded}

    recorded = served_project.queries(limit=1000)
    assert query_id in {e.query_id for e in recorded}
    cli = sluice_cli("query", "history", "--limit", "1000", "-p", served_project.root)
    assert cli.returncode == 0, cli.stderr
    line = next(line for line in cli.stdout.splitlines() if query_id in line)
    assert "SUCCEEDED" in line and "history marker" in line


def test_catalog_endpoints_match_the_project(server: Server, served_project: Project) -> None:
    databases = server.request("GET", "/v1/databases").json()["databases"]
    assert databases == [
        {"name": "gold", "tables": len(served_project.tables("gold"))},
        {"name": "raw", "tables": len(served_project.tables("raw"))},
    ]
    tables = server.request("GET", "/v1/databases/gold/tables").json()["tables"]
    assert {t["name"]: t["rows"] for t in tables} == {
        i.table.name: i.rows for i in served_project.tables("gold")
    }
    fact = server.request("GET", "/v1/databases/gold/tables/fact_orders").json()
    (lines,) = source_one(served_project, "SELECT count(*) FROM orderdetails")
    assert fact["rows"] == lines
    described = served_project.describe("gold.fact_orders")
    assert [(c["name"], c["type"]) for c in fact["columns"]] == [
        (c.name, c.type) for c in described.columns
    ]
    assert len(fact["snapshots"]) == len(described.snapshots) >= 1


def test_openapi_document_lists_every_route(server: Server) -> None:
    document = server.request("GET", "/openapi.json").json()
    assert document["info"]["title"] == "Sluice"
    assert set(document["paths"]) == {
        "/v1/queries",
        "/v1/queries/{query_id}",
        "/v1/queries/{query_id}/results",
        "/v1/databases",
        "/v1/databases/{database}/tables",
        "/v1/databases/{database}/tables/{table}",
        "/v1/dashboard",
        "/v1/dashboard/options",
        "/v1/dashboard/order-lines.csv",
    }
    assert set(document["paths"]["/v1/queries/{query_id}"]) == {"get", "delete"}
    results = document["paths"]["/v1/queries/{query_id}/results"]["get"]["responses"]["200"]
    assert {"application/json", "text/csv; charset=utf-8", "application/vnd.apache.parquet"} <= set(
        results["content"]
    )

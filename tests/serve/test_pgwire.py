"""The PostgreSQL endpoint, driven by the real psql client and psycopg."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.project import Project
from tests.conftest import new_project, sluice_cli
from tests.serve.conftest import SERVER_ARGS, SLOW_SQL, Server
from tests.serve.test_concurrency import TOTALS_SQL, publish_while_asking

PASSWORD = "s3cret-for-tests"
pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")


class PgServer(Server):
    """``sluice serve --pg-port 0``: the HTTP API and the PostgreSQL endpoint."""

    def __init__(self, root: Path, *args: str) -> None:
        super().__init__(root, *args, "--pg-port", "0", env={"SLUICE_PG_PASSWORD": PASSWORD})
        line = self.lines.get(timeout=30)
        assert "PostgreSQL clients connect to postgresql://" in line, line
        self.pg_url = line.split(" to ", 1)[1].split()[0]
        self.port = int(self.pg_url.rsplit(":", 1)[1].split("/")[0])

    def connect(self, password: str = PASSWORD, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.pg_url, password=password, connect_timeout=10, **kwargs)

    def psql(self, *commands: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
        args = ["psql", self.pg_url, "-X", "-A", "-t", "-F", "|"]
        for command in commands:
            args += ["-c", command]
        return subprocess.run(
            args,
            env={**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "10"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def pg(served_project: Project) -> Iterator[PgServer]:
    running = PgServer(served_project.root, *SERVER_ARGS)
    yield running
    assert running.stop() == 0, "".join(running.log)
    assert "Traceback" not in "".join(running.log)


def scalar(project: Project, sql: str, parameters: list[object] | None = None) -> list[Any]:
    return [c[0].as_py() for c in project.query(sql, parameters=parameters).table.columns]


def test_psql_logs_in_with_the_password_and_a_wrong_one_is_refused(pg: PgServer) -> None:
    ok = pg.psql("SELECT 40 + 2")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "42"

    wrong = pg.psql("SELECT 1", password="not-it")
    assert wrong.returncode == 2
    assert 'password authentication failed for user "sluice"' in wrong.stderr.lower()
    with pytest.raises(psycopg.OperationalError, match=r"(?i)password authentication failed"):
        pg.connect(password="nope")
    other_user = pg.pg_url.replace("sluice@", "admin@")
    with pytest.raises(psycopg.OperationalError, match=r"(?i)password authentication failed"):
        psycopg.connect(other_user, password=PASSWORD, connect_timeout=10)
    assert pg.psql("SELECT 1").stdout.strip() == "1"


def test_psql_totals_equal_project_query(pg: PgServer, built: Callable[[int], Project]) -> None:
    result = pg.psql("SELECT count(*), sum(orderAmount) FROM gold.fact_orders")
    assert result.returncode == 0, result.stderr
    count, total = result.stdout.strip().split("|")
    expected = scalar(built(1), "SELECT count(*), sum(orderAmount) FROM gold.fact_orders")
    assert [int(count), Decimal(total)] == expected
    assert expected[0] > 2000


def test_psql_sees_the_catalog(pg: PgServer, served_project: Project) -> None:
    gold = sorted(t.table.name for t in served_project.tables("gold"))
    assert "fact_orders" in gold
    listed = pg.psql(r"\dt")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("|") for line in listed.stdout.splitlines() if line]
    assert [(schema, name, kind) for schema, name, kind, _ in rows] == [
        ("gold", name, "table") for name in gold
    ]

    described = pg.psql(r"\d gold.fact_orders")
    assert described.returncode == 0, described.stderr
    columns = {line.split("|")[0]: line.split("|")[1] for line in described.stdout.splitlines()}
    engine_columns = served_project.query("DESCRIBE fact_orders").table.column(0).to_pylist()
    assert list(columns) == engine_columns
    assert columns["orderAmount"] == "numeric(18,2)"

    raw_names = {t.table.name for t in served_project.tables("raw")}
    raw = pg.psql(r"\dt raw.*")
    assert {line.split("|")[1] for line in raw.stdout.splitlines()} == raw_names
    in_raw = subprocess.run(
        ["psql", pg.pg_url.replace("/gold", "/raw"), "-X", "-At", "-F", "|", "-c", r"\dt"],
        env={**os.environ, "PGPASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert {line.split("|")[1] for line in in_raw.stdout.splitlines()} == raw_names


def test_psql_runs_each_statement_of_a_line(pg: PgServer, served_project: Project) -> None:
    result = pg.psql(
        "BEGIN; SET search_path = raw; SELECT count(*) FROM orders; COMMIT",
        "SELECT 1; SELECT 2; DROP TABLE fact_orders; SELECT 3",
    )
    assert result.stdout.split() == [
        "BEGIN",
        "SET",
        str(scalar(served_project, "SELECT count(*) FROM raw.orders")[0]),
        "COMMIT",
        "1",
        "2",
    ]
    assert "read-only: a DROP statement is refused" in result.stderr


def test_bi_tool_catalog_queries(pg: PgServer, served_project: Project) -> None:
    with pg.connect() as con:
        (version,) = con.execute("SELECT version()").fetchone() or ()
        assert version.startswith("PostgreSQL 15")
        assert con.execute("SELECT current_schema()").fetchone() == ("gold",)
        assert con.execute("SHOW transaction isolation level").fetchone() == ("read committed",)
        assert con.execute("SHOW standard_conforming_strings").fetchone() == ("on",)
        con.execute("SET application_name = 'metabase'")
        assert con.execute("SHOW application_name").fetchone() == ("metabase",)
        tables = con.execute(
            "SELECT table_schema, table_name, table_type FROM information_schema.tables "
            "WHERE table_schema IN ('gold', 'raw') ORDER BY 1, 2"
        ).fetchall()
        expected = sorted((str(t.table.database), t.table.name) for t in served_project.tables())
        assert [(s, n) for s, n, _ in tables] == expected
        assert {kind for _, _, kind in tables} == {"BASE TABLE"}
        columns = con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'gold' AND table_name = %s ORDER BY ordinal_position",
            ["dim_products"],
        ).fetchall()
        described = served_project.query("DESCRIBE dim_products").table.column(0).to_pylist()
        assert [c for (c,) in columns] == described
        namespaces = con.execute(
            "SELECT n.nspname, count(*) FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname IN ('gold', 'raw') GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert namespaces == [(db, len(served_project.tables(db))) for db in ("gold", "raw")]
        with pytest.raises(psycopg.errors.UndefinedObject):
            con.execute("SHOW no_such_setting")
        con.rollback()
        with pytest.raises(psycopg.Error) as unknown:
            con.execute("SELECT * FROM pg_catalog.pg_no_such_catalog")
        assert unknown.value.sqlstate is not None


def test_parameters_through_the_extended_protocol(pg: PgServer, served_project: Project) -> None:
    sql = "SELECT count(*), sum(orderAmount) FROM fact_orders WHERE status = ? AND quantityOrdered > ?"
    with pg.connect(autocommit=True) as con:
        for status, quantity in (("Shipped", 30), ("Cancelled", 10), ("Nope", 0)):
            got = con.execute(sql.replace("?", "%s"), [status, quantity]).fetchone()
            assert list(got or ()) == scalar(served_project, sql, [status, quantity])
        prepared = "SELECT customerName FROM raw.customers WHERE customerNumber = %s"
        names = {
            number: con.execute(prepared, [number], prepare=True).fetchone()
            for number in served_project.query(
                "SELECT customerNumber FROM raw.customers ORDER BY 1 LIMIT 3"
            )
            .table.column(0)
            .to_pylist()
        }
        assert len(names) == 3
        for number, row in names.items():
            expected = scalar(
                served_project,
                "SELECT customerName FROM raw.customers WHERE customerNumber = ?",
                [number],
            )
            assert list(row or ()) == expected
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="text format"):
            con.execute("SELECT 1", binary=True)
        typed = con.execute("SELECT %s::int + 1, %s, %s, %s", [41, 2.5, True, None]).fetchone()
        assert typed == (42, 2.5, True, None)
        injected = con.execute(
            "SELECT count(*) FROM fact_orders WHERE status = %s", ["x'; DROP TABLE fact_orders; --"]
        ).fetchone()
        assert injected == (0,)
        with con.cursor() as cur:
            cur.execute("SELECT orderNumber FROM fact_orders ORDER BY 1 LIMIT 25")
            first = cur.fetchmany(10)
            rest = cur.fetchall()
        assert len(first) == 10 and len(rest) == 15


def lake_files(project: Project) -> dict[str, float]:
    return {
        str(p): p.stat().st_mtime
        for p in Path(project.root).rglob("*")
        if p.is_file() and ".sluice" not in p.parts
    }


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO fact_orders (orderNumber) VALUES (1)",
        "CREATE TABLE gold.evil AS SELECT 1 AS x",
        "DROP TABLE fact_orders",
        "ATTACH '{tmp}/other.db' AS other",
        "COPY fact_orders TO '{tmp}/copied.csv'",
        "COPY (SELECT 1) TO '{tmp}/copied.csv'",
        "SELECT * FROM read_parquet('{tmp}/outside.parquet')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT 1; DROP TABLE fact_orders",
    ],
)
def test_writes_and_reads_outside_the_lake_are_refused(
    pg: PgServer, served_project: Project, tmp_path: Path, sql: str
) -> None:
    import duckdb

    duckdb.sql(f"COPY (SELECT 42 AS x) TO '{tmp_path}/outside.parquet'")
    before = lake_files(served_project)
    with pg.connect(autocommit=True) as con:
        with pytest.raises(psycopg.Error) as refused:
            con.execute(sql.format(tmp=tmp_path))
        assert refused.value.sqlstate in ("42501", "42601", "42000"), refused.value
        assert con.execute("SELECT count(*) FROM dim_date").fetchone() == tuple(
            scalar(served_project, "SELECT count(*) FROM dim_date")
        )
    assert lake_files(served_project) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.parquet"]


def test_the_statement_timeout_and_cancel(pg: PgServer) -> None:
    with pg.connect(autocommit=True) as con:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled, match="4 s timeout"):
            con.execute(SLOW_SQL)
        assert 3 < time.monotonic() - started < 30
        assert con.execute("SELECT 7").fetchone() == (7,)

        threading.Timer(0.5, con.cancel).start()
        with pytest.raises(psycopg.errors.QueryCanceled) as cancelled:
            con.execute(SLOW_SQL)
        assert "timeout" not in str(cancelled.value), "cancelled by the client, not the timeout"
        assert con.execute("SELECT 8").fetchone() == (8,)


def test_the_row_cap_cuts_results_with_a_warning(pg: PgServer) -> None:
    notices: list[str] = []
    with pg.connect(autocommit=True) as con:
        con.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        rows = con.execute("SELECT * FROM range(12000)").fetchall()
    assert len(rows) == 5000
    assert rows[-1] == (4999,)
    assert any("5000 rows" in n for n in notices), notices


def test_errors_in_a_transaction_and_bad_bytes_leave_the_server_serving(pg: PgServer) -> None:
    with pg.connect() as con:
        assert con.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.errors.SyntaxError):
            con.execute("SELECT (1 +")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            con.execute("SELECT 1")
        con.rollback()
        assert con.execute("SELECT 2").fetchone() == (2,)
    for garbage in (b"\x00\x00\x00\x08\x04\xd2\x16/", b"GET / HTTP/1.1\r\n\r\n", b"\xff" * 64):
        with socket.create_connection(("127.0.0.1", pg.port), timeout=5) as raw:
            raw.sendall(garbage)
            raw.shutdown(socket.SHUT_WR)
            raw.recv(1024)
    assert pg.psql("SELECT count(*) FROM dim_date").returncode == 0


def test_many_connections_at_once_get_correct_answers(
    pg: PgServer, served_project: Project
) -> None:
    years = (
        served_project.query("SELECT DISTINCT year(orderDate) AS y FROM fact_orders ORDER BY 1")
        .table.column("y")
        .to_pylist()
    )
    assert len(years) >= 3
    sql = "SELECT count(*), sum(orderAmount) FROM fact_orders WHERE year(orderDate) = ?"
    expected = {y: scalar(served_project, sql, [y]) for y in years}

    def client(i: int) -> list[tuple[int, list[Any]]]:
        answers = []
        with pg.connect(autocommit=True) as con:
            for round_ in range(5):
                year = years[(i + round_) % len(years)]
                row = con.execute(sql.replace("?", "%s"), [year]).fetchone()
                answers.append((year, list(row or ())))
        return answers

    with ThreadPoolExecutor(8) as pool:
        results = [a for answers in pool.map(client, range(8)) for a in answers]
    assert len(results) == 40
    for year, answer in results:
        assert answer == expected[year]


def test_the_http_api_still_works_beside_it(pg: PgServer, served_project: Project) -> None:
    with pg.connect(autocommit=True) as con:
        via_pg = con.execute("SELECT count(*) FROM raw.orderdetails").fetchone()
        assert via_pg == tuple(scalar(served_project, "SELECT count(*) FROM raw.orderdetails"))
        assert pg.rows("SELECT count(*) FROM raw.orderdetails") == [list(via_pg or ())]
    assert pg.request("GET", "/v1/databases").status == 200


def test_no_password_variable_refuses_to_start(served_project: Project) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_PG_PASSWORD"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sluice",
            "serve",
            "--port",
            "0",
            "--pg-port",
            "0",
            "-p",
            str(served_project.root),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("Error: The PostgreSQL endpoint needs a password")
    assert "SLUICE_PG_PASSWORD" in result.stderr and len(result.stderr.splitlines()) == 1
    assert "serving" not in result.stdout


def test_a_taken_pg_port_is_a_one_line_error(served_project: Project) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = sluice_cli(
            "serve",
            "--port",
            "0",
            "--pg-port",
            port,
            "-p",
            served_project.root,
            env={"SLUICE_PG_PASSWORD": PASSWORD},
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: Cannot listen on 127.0.0.1:{port}")
    assert "--pg-port" in result.stderr


HOSTILE = [
    "SELECT",
    "'",
    '"',
    ";",
    "$1",
    "--",
    "/*",
    "fact_orders",
    "raw.orders",
    "DROP TABLE fact_orders",
    "INSERT INTO dim_date VALUES (1)",
    "ATTACH ':memory:' AS m",
    "COPY fact_orders TO '/tmp/sluice-pgwire-hostile.csv'",
    "read_parquet('/etc/hosts')",
    "read_text('/etc/passwd')",
    "SET enable_external_access = true",
    "PRAGMA version",
    "CALL pragma_version()",
    "LOAD httpfs",
    "pg_catalog.pg_class",
    "information_schema.tables",
    "UNION SELECT",
    "OR 1=1",
    "range(100000000)",
    "\\x00",
    "é中文",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12)), min_size=1, max_size=8).map(
        " ".join
    )
)
def test_hostile_statements_are_answered_and_the_server_stays_up(pg: PgServer, sql: str) -> None:
    with pg.connect(autocommit=True) as con:
        try:
            con.execute(sql.replace("%", "%%")).fetchall()
        except psycopg.errors.QueryCanceled:
            pass  # the statement timeout answered it (a slow machine); the session goes on
        except psycopg.OperationalError as lost:
            raise AssertionError(f"the connection was lost on {sql!r}: {lost}") from lost
        except (psycopg.Error, ValueError):
            pass
        assert con.execute("SELECT 1").fetchone() == (1,)
    assert not Path("/tmp/sluice-pgwire-hostile.csv").exists()


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=64))
def test_hostile_bytes_before_login_are_dropped(pg: PgServer, garbage: bytes) -> None:
    with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as raw:
        raw.sendall(garbage)
        raw.shutdown(socket.SHUT_WR)
        while raw.recv(4096):
            pass


def test_after_hostile_input_nothing_was_written(pg: PgServer, served_project: Project) -> None:
    assert not Path("/tmp/sluice-pgwire-hostile.csv").exists()
    with pg.connect() as con:
        listed = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema IN ('gold', 'raw')"
        ).fetchall()
    assert sorted(name for (name,) in listed) == sorted(
        str(t.table) for t in served_project.tables()
    )


@pytest.mark.slow
def test_queries_during_publishing_job_runs_never_see_a_mix(
    tmp_path: Path, source_db: Callable[[int], Path]
) -> None:
    project = new_project(tmp_path, source_db(1))
    assert project.run_job("etl").state == "SUCCEEDED"
    server = PgServer(project.root, "--workers", "4", "--threads", "1")
    seen: list[tuple[int, ...]] = []

    def ask(stop: threading.Event) -> None:
        with server.connect(autocommit=True) as con:
            while not stop.is_set():
                seen.append(tuple(con.execute(TOTALS_SQL).fetchone() or ()))

    try:
        versions = publish_while_asking(project, ask, runs=2)
        with server.connect() as con:
            final = con.execute(TOTALS_SQL).fetchone()
    finally:
        assert server.stop() == 0
    assert len(set(versions)) == 3
    assert set(seen) <= set(versions), set(seen) - set(versions)
    assert len(set(seen)) >= 2, "the queries never saw a publish happen"
    assert final == versions[-1]

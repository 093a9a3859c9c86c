"""The HTTP section of ``make bench``: the dashboard's queries and the detail export through
a real ``sluice serve``, beside the same SQL run directly in DuckDB on the same Parquet files.

``measure(sluice, project, workdir)`` starts the server on the project the ETL benchmark
built, times the requests from client threads (one keep-alive connection each), stops the
server and returns the figures; ``bench/run.py`` prints them with their targets.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv

from sluice.project import Project
from sluice.serve.dashboard import Selection

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
BROWSER_ROUNDS = 3
ONE_CLIENT_REQUESTS = 50
CLIENTS = 16
REQUESTS_PER_CLIENT = 10
EXPORT_RUNS = 5
DASHBOARD_STATEMENTS = ("top_products", "sales_by_country", "headline")
DETAIL_SQL = """
SELECT f.orderDate, p.productLine, p.productName, l.country, sum(f.orderAmount) AS sales
FROM fact_orders AS f
JOIN dim_products AS p USING (product_key)
JOIN dim_locations AS l USING (location_key)
GROUP BY ALL
ORDER BY f.orderDate, p.productLine, p.productName, l.country
"""
"""The lab's detail query (the example notebook's): sales by date, product line, product
and country."""

Query = tuple[str, str, dict[str, Any]]  # (statement name, SQL, JSON parameters)


@dataclass
class Latencies:
    """Seconds per request, and how many requests failed."""

    seconds: list[float] = field(default_factory=list)
    errors: int = 0

    def percentile(self, p: int) -> float | None:
        """The p-th percentile in milliseconds (None without samples)."""
        if len(self.seconds) < 2:
            return self.seconds[0] * 1000 if self.seconds else None
        return statistics.quantiles(self.seconds, n=100, method="inclusive")[p - 1] * 1000


@dataclass
class Export:
    """The detail query's export in one format, through the API and directly."""

    fmt: str
    rows: int
    api_bytes: int
    direct_bytes: int
    api_s: list[float]
    direct_s: list[float]


@dataclass
class HttpResult:
    """Everything the HTTP section measured."""

    queries: int
    one_client: Latencies
    many_clients: Latencies
    direct: Latencies
    exports: list[Export]
    load: float  # the machine's 1-minute load average at the end (2 cores: above 2 is busy)
    browser: Latencies | None = None  # dashboard updates as the page measures them
    browser_unavailable: str | None = None


class Client:
    """A keep-alive connection to the server."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=120)

    def call(self, method: str, path: str, body: object | None = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def run(self, sql: str, parameters: dict[str, Any] | None, suffix: str = "") -> bytes:
        """POST the query, wait for it to succeed, return its results (``suffix``: format)."""
        status, body = self.call("POST", "/v1/queries", {"sql": sql, "parameters": parameters})
        if status != 202:
            raise RuntimeError(f"POST /v1/queries answered {status}: {body[:200]!r}")
        query_id = json.loads(body)["query_id"]
        status, body = self.call("GET", f"/v1/queries/{query_id}?wait=20")
        state = json.loads(body).get("state")
        if state != "SUCCEEDED":
            raise RuntimeError(f"query {query_id} is {state}: {body[:200]!r}")
        status, body = self.call("GET", f"/v1/queries/{query_id}/results{suffix}")
        if status != 200:
            raise RuntimeError(f"results of {query_id} answered {status}: {body[:200]!r}")
        return body

    def close(self) -> None:
        self.connection.close()


class Served:
    """``sluice serve --port 0`` on a project, stopped with SIGTERM."""

    def __init__(self, sluice: Path, project: Path, logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout = logs / "serve.out"
        with self.stdout.open("wb") as out, (logs / "serve.err").open("wb") as err:
            self.process = subprocess.Popen(
                [str(sluice), "serve", "--port", "0", "-p", str(project)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = self.stdout.read_text(errors="replace")
            if " is serving " in text:
                return text.split(" is serving ", 1)[1].split(" at ", 1)[1].split()[0]
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"`sluice serve` printed no URL (see {self.stdout.parent})")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def direct_connection(project: Project) -> duckdb.DuckDBPyConnection:
    """Plain DuckDB with a view per published gold table on the same Parquet files."""
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    for table, files in project.query_engine.visible_tables().items():
        if table.database == "gold" and files:
            listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            con.execute(f'CREATE VIEW "{table.name}" AS SELECT * FROM read_parquet([{listed}])')
    return con


def busiest(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """The country and product line of the most order lines together."""
    country, line = con.execute(
        "SELECT l.country, p.productLine FROM fact_orders f "
        "JOIN dim_locations l USING (location_key) JOIN dim_products p USING (product_key) "
        "GROUP BY ALL ORDER BY count(*) DESC LIMIT 1"
    ).fetchall()[0]
    return str(country), str(line)


def dashboard_queries(con: duckdb.DuckDBPyConnection) -> list[Query]:
    """The dashboard's three statements for five selections (all, a country, a product
    line, the first year, a country and a product line), with JSON parameters."""
    first = con.execute("SELECT min(orderDate) FROM fact_orders").fetchall()[0][0]
    country, line = busiest(con)
    start: date = first
    selections = [
        Selection(),
        Selection(country=country),
        Selection(product_line=line),
        Selection(start=start, end=start + timedelta(days=365)),
        Selection(country=country, product_line=line, top=5),
    ]
    queries = []
    for selection in selections:
        statements = selection.statements()
        for name in DASHBOARD_STATEMENTS:
            sql, parameters = statements[name]
            values = {k: v.isoformat() if isinstance(v, date) else v for k, v in parameters.items()}
            queries.append((name, sql, values))
    return queries


def timed(run: Callable[..., object], *args: Any) -> float:
    start = time.perf_counter()
    run(*args)
    return time.perf_counter() - start


def one_client(url: str, queries: list[Query]) -> Latencies:
    """``ONE_CLIENT_REQUESTS`` dashboard queries in turn, after one untimed pass."""
    client = Client(url)
    result = Latencies()
    try:
        for _, sql, parameters in queries:
            client.run(sql, parameters)
        for i in range(ONE_CLIENT_REQUESTS):
            _, sql, parameters = queries[i % len(queries)]
            result.seconds.append(timed(client.run, sql, parameters))
    finally:
        client.close()
    return result


def many_clients(url: str, queries: list[Query]) -> Latencies:
    """``CLIENTS`` threads, each asking ``REQUESTS_PER_CLIENT`` dashboard queries at once."""

    def client_loop(n: int) -> Latencies:
        client = Client(url)
        mine = Latencies()
        try:
            for i in range(REQUESTS_PER_CLIENT):
                _, sql, parameters = queries[(n * 7 + i) % len(queries)]
                start = time.perf_counter()
                try:
                    client.run(sql, parameters)
                except (RuntimeError, OSError, http.client.HTTPException):
                    mine.errors += 1
                    client.close()
                    client = Client(url)
                mine.seconds.append(time.perf_counter() - start)
        finally:
            client.close()
        return mine

    with ThreadPoolExecutor(CLIENTS) as pool:
        parts = list(pool.map(client_loop, range(CLIENTS)))
    return Latencies([s for p in parts for s in p.seconds], sum(p.errors for p in parts))


def direct(con: duckdb.DuckDBPyConnection, queries: list[Query]) -> Latencies:
    """The same dashboard queries run directly, after one untimed pass."""
    for _, sql, parameters in queries:
        con.execute(sql, parameters).fetch_arrow_table()
    result = Latencies()
    for i in range(ONE_CLIENT_REQUESTS):
        _, sql, parameters = queries[i % len(queries)]
        result.seconds.append(timed(_fetch, con, sql, parameters))
    return result


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, parameters: object) -> pa.Table:
    return con.execute(sql, parameters).fetch_arrow_table()


def write_arrow(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=65_536)


def export(url: str, con: duckdb.DuckDBPyConnection, fmt: str, workdir: Path) -> Export:
    """The detail query as ``fmt`` (arrow or csv): through the API into a file, and directly
    (DuckDB to Arrow, encoded and written to a file); one warm-up run each, then timed runs."""
    api_file, direct_file = workdir / f"api.{fmt}", workdir / f"direct.{fmt}"
    client = Client(url)

    def through_api() -> None:
        api_file.write_bytes(client.run(DETAIL_SQL, None, f"?format={fmt}"))

    def directly() -> None:
        table = con.execute(DETAIL_SQL).fetch_arrow_table()
        if fmt == "arrow":
            write_arrow(table, direct_file)
        else:
            pa_csv.write_csv(table, str(direct_file))

    try:
        through_api()
        directly()
        api_s = [timed(through_api) for _ in range(EXPORT_RUNS)]
        direct_s = [timed(directly) for _ in range(EXPORT_RUNS)]
    finally:
        client.close()
    rows = con.execute(f"SELECT count(*) FROM ({DETAIL_SQL})").fetchall()[0][0]
    return Export(fmt, rows, api_file.stat().st_size, direct_file.stat().st_size, api_s, direct_s)


def browser_updates(url: str, country: str, line: str) -> Latencies:
    """Change each dashboard filter in Debian's headless chromium, ``BROWSER_ROUNDS`` times;
    each sample is the page's own time from the change to the redrawn charts
    (``data-update-ms``: its three queries, their results and the drawing)."""
    from playwright.sync_api import sync_playwright

    result = Latencies()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.wait_for_function("document.body.dataset.renders === '1'")
            first, last = page.input_value("#start"), page.input_value("#end")
            year_end = f"{first[:4]}-12-31"
            actions: list[Callable[[], object]] = [
                lambda: page.fill("#end", year_end),
                lambda: page.select_option("#country", country),
                lambda: page.select_option("#product_line", line),
                lambda: (page.fill("#top", "20"), page.press("#top", "Enter")),
                lambda: page.select_option("#country", ""),
                lambda: page.select_option("#product_line", ""),
                lambda: (page.fill("#top", "10"), page.press("#top", "Enter")),
                lambda: page.fill("#end", last),
            ]
            for _ in range(BROWSER_ROUNDS):
                for action in actions:
                    before = int(page.get_attribute("body", "data-renders") or 0)
                    action()
                    page.wait_for_function(
                        f"Number(document.body.dataset.renders) > {before}", timeout=30_000
                    )
                    result.seconds.append(int(page.get_attribute("body", "data-update-ms")) / 1000)
        finally:
            browser.close()
    return result


def measure(sluice: Path, project_dir: Path, workdir: Path) -> HttpResult:
    """Serve ``project_dir`` and measure; the server is stopped whatever happens."""
    workdir.mkdir(parents=True, exist_ok=True)
    project = Project.open(project_dir)
    con = direct_connection(project)
    queries = dashboard_queries(con)
    served = Served(sluice, project_dir, workdir / "logs")
    try:
        single = one_client(served.url, queries)
        concurrent = many_clients(served.url, queries)
        exports = [export(served.url, con, fmt, workdir) for fmt in ("arrow", "csv")]
        browser, unavailable = None, None
        if CHROMIUM.is_file():
            browser = browser_updates(served.url, *busiest(con))
        else:
            unavailable = f"{CHROMIUM} is missing (apt-get install chromium)"
    finally:
        served.stop()
    return HttpResult(
        queries=len(queries),
        one_client=single,
        many_clients=concurrent,
        direct=direct(con, queries),
        exports=exports,
        load=os.getloadavg()[0],
        browser=browser,
        browser_unavailable=unavailable,
    )

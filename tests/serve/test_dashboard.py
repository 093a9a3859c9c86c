"""The marketing dashboard at ``/``, driven in Debian's headless chromium by Playwright.

Every number the page shows is compared with the same statement run through
``Project.query``. A screenshot is saved to ``tests/artifacts/dashboard.png``
(gitignored) and its path printed.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sluice.project import Project
from sluice.serve import dashboard
from sluice.serve.dashboard import Selection
from tests.serve.conftest import Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

pytestmark = pytest.mark.xdist_group("dashboard")


@pytest.fixture(scope="module")
def shop(built: Callable[[int], Project]) -> Project:
    """The shared scale-1 project after one run (the dashboard only reads it)."""
    return built(1)


@pytest.fixture(scope="module")
def server(shop: Project) -> Iterator[Server]:
    running = Server(shop.root, "--workers", "2", "--threads", "1")
    yield running
    assert running.stop() == 0, "".join(running.log)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is missing; install Debian's chromium (apt-get install chromium)"
        if os.environ.get("SLUICE_REQUIRE_SERVERS") == "1":
            pytest.fail(f"SLUICE_REQUIRE_SERVERS=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})
    opened = context.new_page()
    requested: list[str] = []
    opened.on("request", lambda request: requested.append(request.url))
    opened.goto(server.url + "/")
    opened.wait_for_function("document.body.dataset.renders === '1'")
    yield opened
    context.close()
    outside = [url for url in requested if not url.startswith(server.url + "/")]
    assert not outside, f"the page reached outside the server: {outside}"


def expected(project: Project, selection: Selection) -> dict[str, Any]:
    """What the page must show for ``selection``: the dashboard's SQL via Project.query."""
    rows = {
        name: project.query(sql, parameters=parameters).table.to_pylist()
        for name, (sql, parameters) in selection.statements().items()
    }
    headline = rows["headline"][0]
    aov = headline["average_order_value"]
    return {
        "top_products": [(r["product"], float(r["sales"])) for r in rows["top_products"]],
        "sales_by_country": [(r["country"], float(r["sales"])) for r in rows["sales_by_country"]],
        "revenue": float(headline["revenue"]),
        "orders": headline["orders"],
        "customers": headline["customers"],
        "average_order_value": None if aov is None else float(aov),
        "order_lines": [[_text(v) for v in r.values()] for r in rows["order_lines"]],
    }


def _text(value: object) -> str:
    """A value as the page's table and the CSV write it (numbers without separators)."""
    if isinstance(value, Decimal | float):
        return f"{value:.2f}"
    return str(value)


def shown(page: Any) -> dict[str, Any]:
    """The numbers the page shows: chart bars, headline figures and table rows."""
    figures = {
        name: page.get_attribute(f"#{name}", "data-value")
        for name in ("revenue", "orders", "customers", "average_order_value")
    }
    return {
        "top_products": _bars(page, "#top-products"),
        "sales_by_country": _bars(page, "#sales-by-country"),
        "revenue": float(figures["revenue"]),
        "orders": int(figures["orders"]),
        "customers": int(figures["customers"]),
        "average_order_value": float(figures["average_order_value"])
        if figures["average_order_value"]
        else None,
        "order_lines": _table(page),
    }


def _bars(page: Any, chart: str) -> list[tuple[str, float]]:
    return [
        (str(label), float(value))
        for label, value in page.eval_on_selector_all(
            f"{chart} g.bar", "gs => gs.map(g => [g.dataset.label, g.dataset.value])"
        )
    ]


def _table(page: Any) -> list[list[str]]:
    """The table's cells, thousands separators dropped from its numbers."""
    cells: list[list[str]] = page.eval_on_selector_all(
        "#rows tbody tr",
        """trs => trs.map(tr => [...tr.cells].map(
             td => td.classList.contains("number") ? td.textContent.replaceAll(",", "")
                                                   : td.textContent))""",
    )
    return cells


def change(page: Any, action: Callable[[], None]) -> None:
    """Do ``action`` and wait until the page has drawn the answer it caused."""
    before = int(page.get_attribute("body", "data-renders"))
    action()
    page.wait_for_function(f"Number(document.body.dataset.renders) > {before}")


def date_range(project: Project) -> tuple[date, date]:
    first, last = project.query(dashboard.DATE_RANGE).table.to_pylist()[0].values()
    return first, last


def test_the_page_loads_with_every_order_drawn(page: Any, shop: Project) -> None:
    first, last = date_range(shop)
    assert page.input_value("#start") == first.isoformat()
    assert page.input_value("#end") == last.isoformat()
    countries = [r["country"] for r in shop.query(dashboard.COUNTRIES).table.to_pylist()]
    assert page.eval_on_selector_all("#country option", "os => os.map(o => o.value)") == [
        "",
        *countries,
    ]
    want = expected(shop, Selection(start=first, end=last))
    got = shown(page)
    assert got == want
    assert len(got["top_products"]) == 10
    total = shop.query("SELECT sum(orderAmount) AS s, count(*) AS n FROM fact_orders")
    row = total.table.to_pylist()[0]
    assert got["revenue"] == float(row["s"]) and row["n"] > dashboard.TABLE_ROWS
    assert len(got["order_lines"]) == dashboard.TABLE_ROWS
    assert page.text_content("#rows-caption") == f"(first 500 of {row['n']:,}; the CSV has all)"
    assert page.is_hidden("#empty") and page.is_hidden("#error")


def test_each_filter_changes_the_page_to_what_the_sql_returns(page: Any, shop: Project) -> None:
    last = date_range(shop)[1]
    steps: list[tuple[Callable[[], None], Selection]] = [
        (
            lambda: page.fill("#start", "2004-01-01"),
            Selection(start=date(2004, 1, 1), end=last),
        ),
        (
            lambda: page.fill("#end", "2004-12-31"),
            Selection(start=date(2004, 1, 1), end=date(2004, 12, 31)),
        ),
        (
            lambda: page.select_option("#country", "France"),
            Selection(start=date(2004, 1, 1), end=date(2004, 12, 31), country="France"),
        ),
        (
            lambda: page.select_option("#product_line", "Classic Cars"),
            Selection(
                start=date(2004, 1, 1),
                end=date(2004, 12, 31),
                country="France",
                product_line="Classic Cars",
            ),
        ),
        (
            lambda: (page.fill("#top", "3"), page.press("#top", "Enter")),
            Selection(
                start=date(2004, 1, 1),
                end=date(2004, 12, 31),
                country="France",
                product_line="Classic Cars",
                top=3,
            ),
        ),
    ]
    before = shown(page)
    for action, selection in steps:
        change(page, action)
        got = shown(page)
        assert got == expected(shop, selection), selection
        assert got != before, f"{selection} changed nothing"
        before = got
    assert len(got["top_products"]) == 3
    assert got["sales_by_country"] == [("France", got["revenue"])]
    assert page.text_content("#top-label") == "3"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"dashboard screenshot: {shot}")


def test_a_selection_without_sales_shows_the_empty_state(page: Any, shop: Project) -> None:
    # A month in which Japan bought no planes, found in the data rather than assumed.
    months = shop.query(
        """SELECT DISTINCT CAST(date_trunc('month', d.fullDate) AS DATE) AS month
           FROM dim_date AS d
           WHERE d.fullDate <= (SELECT max(orderDate) FROM fact_orders)
             AND date_trunc('month', d.fullDate) NOT IN (
               SELECT date_trunc('month', f.orderDate) FROM fact_orders AS f
               JOIN dim_products AS p USING (product_key)
               JOIN dim_locations AS l ON l.location_key = f.location_key
               WHERE p.productLine = 'Planes' AND l.country = 'Japan')
           ORDER BY 1 DESC LIMIT 1"""
    ).table.to_pylist()
    month = months[0]["month"]
    start, end = month.isoformat(), date(month.year, month.month, 28).isoformat()
    change(page, lambda: page.select_option("#country", "Japan"))
    change(page, lambda: page.select_option("#product_line", "Planes"))
    change(page, lambda: page.fill("#start", start))
    change(page, lambda: page.fill("#end", end))
    assert page.is_visible("#empty") and page.is_hidden("#error")
    assert page.text_content("#empty") == "No sales of Planes to Japan in that period."
    got = shown(page)
    selection = Selection(
        start=date.fromisoformat(start),
        end=date.fromisoformat(end),
        country="Japan",
        product_line="Planes",
    )
    assert got == expected(shop, selection)
    assert got["top_products"] == [] and got["sales_by_country"] == [] and got["order_lines"] == []
    assert (got["revenue"], got["orders"], got["customers"]) == (0.0, 0, 0)
    assert page.text_content("#average_order_value") == "\N{EN DASH}"
    change(page, lambda: page.select_option("#product_line", ""))
    any_line = Selection(start=selection.start, end=selection.end, country="Japan")
    assert shown(page) == expected(shop, any_line)


def test_a_start_after_the_end_is_explained_on_the_page(page: Any) -> None:
    change(page, lambda: page.fill("#start", "2005-03-01"))
    change(page, lambda: page.fill("#end", "2005-01-01"))
    assert page.is_visible("#error")
    assert "start date 2005-03-01 is after the end date 2005-01-01" in page.text_content("#error")


def _download(page: Any) -> list[list[str]]:
    with page.expect_download() as info:
        page.click("#csv")
    path = info.value.path()
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows


def test_the_csv_download_equals_the_table(page: Any, shop: Project) -> None:
    change(page, lambda: page.select_option("#country", "USA"))
    change(page, lambda: page.fill("#start", "2004-06-01"))
    change(page, lambda: page.fill("#end", "2004-07-31"))
    table = _table(page)
    assert 0 < len(table) < dashboard.TABLE_ROWS
    header, *lines = _download(page)
    assert header == page.eval_on_selector_all(
        "#rows thead th", "ths => ths.map(t => t.textContent)"
    )
    assert lines == table
    selection = Selection(start=date(2004, 6, 1), end=date(2004, 7, 31), country="USA")
    sql, parameters = selection.statements()["headline"]
    headline = shop.query(sql, parameters=parameters).table.to_pylist()[0]
    assert len(lines) == headline["order_lines"]
    # The whole selection (more lines than the table shows): the CSV has every one.
    change(page, lambda: page.select_option("#country", ""))
    change(page, lambda: page.fill("#start", ""))
    change(page, lambda: page.fill("#end", ""))
    _, *everything = _download(page)
    count = shop.query("SELECT count(*) AS n FROM fact_orders").table.to_pylist()[0]["n"]
    assert len(everything) == count > dashboard.TABLE_ROWS
    assert everything[: dashboard.TABLE_ROWS] == _table(page)


def test_filters_are_bound_parameters_never_sql(server: Server) -> None:
    hostile = "Japan' OR '1'='1"
    reply = server.request("GET", "/v1/dashboard?country=" + hostile.replace(" ", "%20"))
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["empty"] is True and body["headline"]["orders"] == 0
    assert body["message"] == f"No sales to {hostile} in that period."
    bad = server.request("GET", "/v1/dashboard?top=51")
    assert bad.status == 400 and bad.json()["code"] == "invalid_request"


def test_the_page_is_package_data() -> None:
    from importlib import resources

    static = resources.files("sluice.serve") / "static"
    names = {item.name for item in static.iterdir()}
    assert {"index.html", "dashboard.js", "dashboard.css"} <= names
    html = (static / "index.html").read_text(encoding="utf-8")
    assert "http" not in html.replace("http://www.w3.org", ""), "no CDN or outside links"


@pytest.mark.slow
def test_every_update_at_scale_100_shows_the_numbers_of_its_sql(
    browser: Any, built: Callable[[int], Project]
) -> None:
    big = built(100)
    running = Server(big.root, "--threads", "2")
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(running.url + "/")
        page.wait_for_function("document.body.dataset.renders === '1'")
        for action in (
            lambda: page.fill("#start", "2004-01-01"),
            lambda: page.fill("#end", "2004-12-31"),
            lambda: page.select_option("#country", "France"),
            lambda: page.select_option("#product_line", "Planes"),
            lambda: (page.fill("#top", "20"), page.press("#top", "Enter")),
            lambda: page.select_option("#country", ""),
        ):
            change(page, action)
        sql, parameters = Selection(
            start=date(2004, 1, 1), end=date(2004, 12, 31), product_line="Planes"
        ).statements()["headline"]
        headline = big.query(sql, parameters=parameters).table.to_pylist()[0]
        assert int(page.get_attribute("#orders", "data-value")) == headline["orders"] > 1000
        context.close()
    finally:
        assert running.stop() == 0

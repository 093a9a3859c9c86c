"""The marketing dashboard's data: a selection, the SQL it runs on gold, and its answers.

Every figure comes from one of the parameterised statements below (user input is only
ever a bound parameter), run together on one publication through ``QueryExecutions.read``
so that the charts, figures and rows of an answer always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from sluice.errors import ConfigError
from sluice.serve import formats

if TYPE_CHECKING:
    from sluice.query.engine import QueryResult
    from sluice.query.executions import QueryExecutions

MAX_TOP = 50
TABLE_ROWS = 500
"""Order lines shown in the page's table; the CSV download has all of them."""

_JOINS = """
FROM fact_orders AS f
JOIN dim_products AS p ON p.product_key = f.product_key
JOIN dim_locations AS l ON l.location_key = f.location_key"""

_FILTERS = {
    "start": "f.orderDate >= $start",
    "end": "f.orderDate <= $end",
    "country": "l.country = $country",
    "product_line": "p.productLine = $product_line",
}
"""The predicate of each filter; only the filters a selection sets are in its SQL (a
predicate such as ``$country IS NULL OR …`` would keep DuckDB from planning the query
as well: three times slower at scale 100)."""

TOP_PRODUCTS = """
SELECT p.productName AS product, p.productLine AS product_line, sum(f.orderAmount) AS sales
{joins}{where}
GROUP BY ALL
ORDER BY sales DESC, product
LIMIT $top
"""

SALES_BY_COUNTRY = """
SELECT l.country, sum(f.orderAmount) AS sales
{joins}{where}
GROUP BY ALL
ORDER BY sales DESC, l.country
"""

HEADLINE = """
SELECT *, revenue / nullif(orders, 0) AS average_order_value
FROM (
    SELECT
        coalesce(sum(f.orderAmount), 0) AS revenue,
        count(DISTINCT f.orderNumber) AS orders,
        count(DISTINCT f.customer_key) AS customers,
        count(*) AS order_lines
    {joins}{where}
) AS totals
"""

ORDER_LINES = """
SELECT
    f.orderDate AS order_date,
    f.orderNumber AS order_number,
    c.customerName AS customer,
    l.country,
    p.productLine AS product_line,
    p.productName AS product,
    f.quantityOrdered AS quantity,
    f.priceEach AS price_each,
    f.orderAmount AS amount
{joins}
JOIN dim_customers AS c ON c.customer_key = f.customer_key{where}
ORDER BY f.orderDate, f.orderNumber, f.orderLineNumber
LIMIT $limit
"""

COUNTRIES = "SELECT DISTINCT country FROM dim_locations WHERE country IS NOT NULL ORDER BY 1"
PRODUCT_LINES = (
    "SELECT DISTINCT productLine FROM dim_products WHERE productLine IS NOT NULL ORDER BY 1"
)
DATE_RANGE = "SELECT min(orderDate) AS first, max(orderDate) AS last FROM fact_orders"


@dataclass(frozen=True)
class Selection:
    """What the filters pick: an order date range, a country, a product line (None: all)."""

    start: date | None = None
    end: date | None = None
    country: str | None = None
    product_line: str | None = None
    top: int = 10

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ConfigError(
                f"The start date {self.start} is after the end date {self.end}.",
                hint="Pick a start on or before the end.",
            )
        if not 1 <= self.top <= MAX_TOP:
            raise ConfigError(f"Top N must be from 1 to {MAX_TOP}, not {self.top}.")

    def parameters(self) -> dict[str, object]:
        """The bound parameters of the filters that are set.

        >>> Selection(country="Japan").parameters()
        {'country': 'Japan'}
        """
        values = {
            "start": self.start,
            "end": self.end,
            "country": self.country,
            "product_line": self.product_line,
        }
        return {name: value for name, value in values.items() if value is not None}

    def statements(self, *, limit: int | None = TABLE_ROWS) -> dict[str, tuple[str, Any]]:
        """Each statement of a view with its parameters (``limit`` order lines; None: all).

        The SQL is only this module's fixed text; every value is a bound parameter.
        """
        filters = self.parameters()
        predicates = [_FILTERS[name] for name in filters]
        where = "\nWHERE " + "\n  AND ".join(predicates) if predicates else ""

        def sql(template: str) -> str:
            return template.format(joins=_JOINS, where=where)

        return {
            "top_products": (sql(TOP_PRODUCTS), {**filters, "top": self.top}),
            "sales_by_country": (sql(SALES_BY_COUNTRY), filters),
            "headline": (sql(HEADLINE), filters),
            "order_lines": (sql(ORDER_LINES), {**filters, "limit": limit}),
        }

    def empty_message(self) -> str:
        """What the page says when nothing was sold, e.g. "No sales of Planes to Japan …".

        >>> Selection(country="Japan", product_line="Planes").empty_message()
        'No sales of Planes to Japan in that period.'
        """
        what = f" of {self.product_line}" if self.product_line else ""
        where = f" to {self.country}" if self.country else ""
        return f"No sales{what}{where} in that period."


class Bar(BaseModel):
    """One bar of a chart."""

    label: str
    value: float
    group: str | None = None


class Headline(BaseModel):
    """The headline figures of a selection (average order value is None without orders)."""

    revenue: float
    orders: int
    customers: int
    average_order_value: float | None
    order_lines: int


class Rows(BaseModel):
    """The first order lines of a selection, as a table."""

    columns: list[str]
    rows: list[list[Any]]
    shown: int
    total: int


class View(BaseModel):
    """Everything the page shows for a selection."""

    top_products: list[Bar]
    sales_by_country: list[Bar]
    headline: Headline
    order_lines: Rows
    empty: bool
    message: str | None


class Options(BaseModel):
    """What the filters offer: countries, product lines and the orders' date range."""

    countries: list[str]
    product_lines: list[str]
    first_date: date | None
    last_date: date | None


def options(executions: QueryExecutions) -> Options:
    """The choices of the dashboard's filters, from the gold dimensions."""
    countries, lines, dates = executions.read(
        [(COUNTRIES, None), (PRODUCT_LINES, None), (DATE_RANGE, None)]
    )
    first, last = (dates.table.column(i)[0].as_py() for i in range(2))
    return Options(
        countries=countries.table.column(0).to_pylist(),
        product_lines=lines.table.column(0).to_pylist(),
        first_date=first,
        last_date=last,
    )


def view(executions: QueryExecutions, selection: Selection) -> View:
    """The charts, headline figures and first order lines of ``selection``."""
    statements = selection.statements()
    top, countries, headline, lines = executions.read(list(statements.values()))
    figures = Headline(**_records(headline)[0])
    return View(
        top_products=[
            Bar(label=r["product"], value=r["sales"], group=r["product_line"])
            for r in _records(top)
        ],
        sales_by_country=[Bar(label=r["country"], value=r["sales"]) for r in _records(countries)],
        headline=figures,
        order_lines=Rows(
            columns=lines.table.column_names,
            rows=formats.json_rows(lines.table),
            shown=lines.table.num_rows,
            total=figures.order_lines,
        ),
        empty=figures.order_lines == 0,
        message=selection.empty_message() if figures.order_lines == 0 else None,
    )


def order_lines(executions: QueryExecutions, selection: Selection) -> QueryResult:
    """Every order line of ``selection`` (up to the server's row cap), for the CSV download."""
    sql, parameters = selection.statements(limit=None)["order_lines"]
    return executions.read([(sql, parameters)])[0]


def _records(result: QueryResult) -> list[dict[str, Any]]:
    names = result.table.column_names
    return [dict(zip(names, row, strict=True)) for row in formats.json_rows(result.table)]

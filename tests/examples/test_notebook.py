"""The classicmodels example's notebook, executed headless on a fresh project.

Every number the notebook shows is compared with the same question asked through
``Project.query`` (and the country totals with SQL on the SQLite source).
"""

from __future__ import annotations

import base64
import copy
import json
import sqlite3
import struct
import subprocess
import sys
import tomllib
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from sluice.project import Project

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "notebooks/sales_dashboard.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

TOP_SQL = """
SELECT p.productName, sum(f.orderAmount) AS sales
FROM fact_orders AS f
JOIN dim_products AS p ON p.product_key = f.product_key
JOIN dim_locations AS l ON l.location_key = f.location_key
WHERE f.orderDate BETWEEN ? AND ? {where}
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?
"""


class _Tables(HTMLParser):
    """The body rows of the HTML tables pandas renders: index cell first, then values."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append([])
        elif self._in_body and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_rows(output: dict[str, Any]) -> list[list[str]]:
    parser = _Tables()
    parser.feed(output["data"]["text/html"])
    return [row[1:] for row in parser.rows]


def cell(nb: Any, tag: str) -> Any:
    (found,) = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    return found


def stdout(code_cell: Any) -> str:
    return "".join(o["text"] for o in code_cell.outputs if o.get("name") == "stdout")


def result(code_cell: Any) -> dict[str, Any]:
    (found,) = [o for o in code_cell.outputs if o["output_type"] == "execute_result"]
    return dict(found)


def lake(project: Project, sql: str, parameters: list[object] | None = None) -> list[list[Any]]:
    table = project.query(sql, parameters=parameters).table
    return [list(row.values()) for row in table.to_pylist()]


def money(rows: list[list[Any]]) -> list[list[Any]]:
    """Rows with their last value (a DECIMAL sum) as a string, as pandas prints it."""
    return [[*row[:-1], str(row[-1])] for row in rows]


def children(nb: Any, model_id: str) -> list[dict[str, Any]]:
    """The states of a widget's children, from the notebook's saved widget state."""
    state = nb.metadata.widgets[WIDGET_STATE]["state"]
    refs = state[model_id]["state"]["children"]
    return [state[ref.removeprefix("IPY_MODEL_")] for ref in refs]


def png_size(data: str) -> tuple[int, int]:
    raw = base64.b64decode(data)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", raw[16:24])
    return width, height


def run_notebook(path: Path, probe: str) -> tuple[Any, Any]:
    """Execute the notebook from its folder, then ``probe`` in the same kernel.

    Returns the notebook as executed (with its widget state) and after the probe.
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    with client.setup_kernel():
        for index, code_cell in enumerate(nb.cells):
            client.execute_cell(code_cell, index)
        client.set_widgets_metadata()
        executed = copy.deepcopy(nb)
        probe_cell = nbformat.v4.new_code_cell(probe)
        nb.cells.append(probe_cell)
        client.execute_cell(probe_cell, len(nb.cells) - 1)
        client.set_widgets_metadata()
    return executed, nb


def test_the_shipped_notebook_is_valid_and_has_no_outputs() -> None:
    path = REPO / "src/sluice/examples/classicmodels" / NOTEBOOK
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) == 5
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert "widgets" not in nb.metadata
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= len(code)
    assert all("read_sql_query" in c.source for c in code[1:])


def test_every_example_file_is_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["sluice"]
    package = REPO / "src/sluice"
    shipped = {p for pattern in patterns for p in package.glob(pattern) if p.is_file()}
    files = {
        p
        for p in (package / "examples").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".py", ".pyc")
    }
    assert package / "examples/classicmodels" / NOTEBOOK in files
    assert files <= shipped


def test_init_copies_the_notebook(project: Project) -> None:
    packaged = resources.files("sluice.examples") / "classicmodels" / NOTEBOOK
    copied = project.root / NOTEBOOK
    assert copied.read_bytes() == packaged.read_bytes()
    assert nbformat.read(copied, as_version=4).cells


def test_the_core_package_does_not_import_the_notebook_libraries() -> None:
    code = (
        "import sys, sluice, sluice.project, sluice.cli.app, sluice.serve.app\n"
        "heavy = ('ipywidgets', 'matplotlib', 'nbclient', 'nbformat', 'ipykernel', 'IPython')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_notebook_runs_headless_and_shows_the_lakes_numbers(project: Project) -> None:
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    ((first, last),) = lake(project, "SELECT min(orderDate), max(orderDate) FROM fact_orders")
    middle = first + (last - first) / 2
    ((busiest,),) = lake(
        project,
        "SELECT l.country FROM fact_orders f JOIN dim_locations l USING (location_key) "
        "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
    )
    probe = (
        "import datetime\nimport json\n"
        "def shown():\n"
        "    return json.dumps(dashboard.result.astype(str).values.tolist())\n"
        f"country.value = {busiest!r}\n"
        "product_line.value = 'Classic Cars'\n"
        f"end.value = {middle!r}\n"
        "top_n.value = 5\n"
        "print(shown())\n"
        f"start.value = {last + timedelta(days=1)!r}\n"
        f"end.value = {last + timedelta(days=2)!r}\n"
        "print(shown())\n"
    )
    executed, probed = run_notebook(project.root / NOTEBOOK, probe)

    for code_cell in executed.cells:
        if code_cell.cell_type == "code":
            kinds = [(o["output_type"], o.get("name")) for o in code_cell.outputs]
            assert ("error", None) not in kinds and ("stream", "stderr") not in kinds, kinds
    assert f"Project classicmodels in {project.root}" in stdout(cell(executed, "setup"))

    products = cell(executed, "products")
    ((count,),) = lake(project, "SELECT count(*) FROM dim_products")
    assert count > 100
    assert stdout(products) == f"{count} products\n"
    codes = lake(project, "SELECT productCode FROM dim_products ORDER BY 1 LIMIT 10")
    assert [row[:1] for row in html_rows(result(products))] == codes

    by_country = html_rows(result(cell(executed, "sales_by_country")))
    expected = lake(
        project,
        "SELECT l.country, sum(f.orderAmount) FROM fact_orders f "
        "JOIN dim_locations l ON l.location_key = f.location_key GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    assert len(expected) > 10
    assert by_country == money(expected)
    source = Path(project.config.sources["classicmodels"].url.removeprefix("sqlite:///"))
    with sqlite3.connect(source) as con:
        in_source = dict(
            con.execute(
                "SELECT c.country, round(sum(d.quantityOrdered * d.priceEach), 2) "
                "FROM orderdetails d JOIN orders o USING (orderNumber) "
                "JOIN customers c USING (customerNumber) GROUP BY 1"
            ).fetchall()
        )
    assert {country: Decimal(sales) for country, sales in by_country} == {
        country: Decimal(str(sales)) for country, sales in in_source.items()
    }

    detail = cell(executed, "detail")
    ((groups, total),) = lake(
        project,
        "SELECT count(*), sum(sales) FROM (SELECT sum(f.orderAmount) AS sales FROM fact_orders f "
        "JOIN dim_products p USING (product_key) JOIN dim_locations l USING (location_key) "
        "GROUP BY f.orderDate, p.productLine, p.productName, l.country)",
    )
    assert stdout(detail) == f"{groups} rows, total sales {total}\n"
    assert total == sum(Decimal(sales) for _, sales in by_country)
    first_rows = html_rows(result(detail))
    assert len(first_rows) == 10
    assert first_rows[0][0] == first.isoformat()

    (view,) = [o for o in cell(executed, "top_products").outputs if WIDGET_VIEW in o["data"]]
    dashboard_id = view["data"][WIDGET_VIEW]["model_id"]
    controls = children(executed, dashboard_id)
    assert [c["model_name"] for c in controls] == [
        "DropdownModel",
        "DropdownModel",
        "DatePickerModel",
        "DatePickerModel",
        "IntSliderModel",
        "OutputModel",
    ]
    (chart, table) = controls[-1]["state"]["outputs"]
    width, height = png_size(chart["data"]["image/png"])
    assert width > 400 and height > 200
    top = lake(project, TOP_SQL.format(where=""), [first, last, 10])
    assert len(top) == 10
    assert html_rows(table) == money(top)

    filtered, empty = (json.loads(line) for line in stdout(probed.cells[-1]).splitlines())
    expected_top = lake(
        project,
        TOP_SQL.format(where="AND l.country = ? AND p.productLine = ?"),
        [first, middle, busiest, "Classic Cars", 5],
    )
    assert len(expected_top) == 5
    assert filtered == money(expected_top)
    assert empty == []
    (message,) = children(probed, dashboard_id)[-1]["state"]["outputs"]
    assert message["text"] == (
        f"No sales for {busiest}, Classic Cars from {last + timedelta(days=1)} "
        f"to {last + timedelta(days=2)}.\n"
    )

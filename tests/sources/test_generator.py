"""The classicmodels generator writes the sample's shape, quirks and integrity at any scale."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.errors import SourceError
from sluice.sources.classicmodels import TABLES, TABLES_BY_NAME, generate_classicmodels
from sluice.sources.classicmodels import generator as generator_module
from sluice.sources.classicmodels.generator import expected_row_counts

SCALE_1 = {
    "productlines": 7,
    "products": 110,
    "offices": 7,
    "employees": 23,
    "customers": 122,
    "payments": 273,
    "orders": 326,
    "orderdetails": 2996,
}
LINEAR = ("customers", "orders", "orderdetails", "payments")


@pytest.fixture(scope="module")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """One database per scale, generated once for the module."""
    out = {}
    for scale in (1, 3):
        path = tmp_path_factory.mktemp(f"cm{scale}") / "classicmodels.db"
        generate_classicmodels(path, scale=scale, seed=42)
        out[scale] = path
    return out


@pytest.fixture(params=[1, 3], ids=["scale1", "scale3"])
def con(request: pytest.FixtureRequest, dbs: dict[int, Path]) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(dbs[request.param])
    yield connection
    connection.close()


def scalar(con: sqlite3.Connection, sql: str) -> object:
    return con.execute(sql).fetchone()[0]


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with sqlite3.connect(path) as c:
        for table in TABLES:
            order = ", ".join(f'"{k}"' for k in table.primary_key)
            for row in c.execute(f'SELECT * FROM "{table.name}" ORDER BY {order}'):
                h.update(repr(row).encode())
    return h.hexdigest()


def counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as c:
        return {t.name: c.execute(f'SELECT count(*) FROM "{t.name}"').fetchone()[0] for t in TABLES}


# --- determinism and sizes ----------------------------------------------------------------


def test_same_seed_gives_identical_rows_and_another_seed_differs(
    tmp_path: Path, dbs: dict[int, Path]
) -> None:
    again = tmp_path / "again.db"
    other = tmp_path / "other.db"
    generate_classicmodels(again, scale=1, seed=42)
    generate_classicmodels(other, scale=1, seed=43)
    assert digest(again) == digest(dbs[1])
    assert digest(other) != digest(dbs[1])


def test_scale_1_has_the_original_sizes(dbs: dict[int, Path]) -> None:
    assert counts(dbs[1]) == SCALE_1
    assert expected_row_counts(1) == SCALE_1


def test_scale_3_grows_linear_tables_and_slowly_the_rest(dbs: dict[int, Path]) -> None:
    got = counts(dbs[3])
    assert got == expected_row_counts(3)
    for name in LINEAR:
        assert got[name] == 3 * SCALE_1[name]
    assert got["productlines"] == got["offices"] == 7
    for name in ("products", "employees"):
        assert SCALE_1[name] <= got[name] <= 1.5 * SCALE_1[name]
    big = expected_row_counts(1000)
    assert big["orderdetails"] == 2_996_000
    assert 110 < big["products"] < 1_000 and 23 < big["employees"] < 100


def test_generate_returns_the_row_counts(tmp_path: Path) -> None:
    assert generate_classicmodels(tmp_path / "x.db", seed=5) == SCALE_1


# --- schema -------------------------------------------------------------------------------


def test_columns_types_and_keys_match_the_schema(con: sqlite3.Connection) -> None:
    for table in TABLES:
        info = con.execute(f'PRAGMA table_info("{table.name}")').fetchall()
        # SQLite reports the standard names in capitals ('text' comes back as 'TEXT');
        # MySQL type names are case-insensitive, the others come back verbatim.
        assert [(r[1], r[2].lower(), bool(r[3])) for r in info] == [
            (c.name, c.type, not c.nullable) for c in table.columns
        ]
        pk = sorted((r[5], r[1]) for r in info if r[5])
        assert tuple(name for _, name in pk) == table.primary_key
        fks = {(r[2], r[3], r[4]) for r in con.execute(f'PRAGMA foreign_key_list("{table.name}")')}
        expected = {
            (fk.ref_table, c, rc)
            for fk in table.foreign_keys
            for c, rc in zip(fk.columns, fk.ref_columns, strict=True)
        }
        assert fks == expected


def test_no_foreign_key_violations(con: sqlite3.Connection) -> None:
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []


def test_strings_fit_their_declared_lengths(con: sqlite3.Connection) -> None:
    for table in TABLES:
        for col in table.columns:
            size = re.fullmatch(r"varchar\((\d+)\)", col.type)
            if size:
                sql = f'SELECT max(length("{col.name}")) FROM "{table.name}"'
                assert (scalar(con, sql) or 0) <= int(size[1]), (table.name, col.name)


def test_values_have_the_storage_types_readers_expect(con: sqlite3.Connection) -> None:
    for table in TABLES:
        for col in table.columns:
            allowed = {"null"} if col.nullable else set()
            if col.type.startswith(("int", "smallint")):
                allowed |= {"integer"}
            elif col.type.startswith("decimal"):
                allowed |= {"integer", "real"}  # NUMERIC affinity stores 21000.00 as 21000
            elif col.type == "mediumblob":
                allowed |= {"blob"}
            else:
                allowed |= {"text"}
            got = {
                r[0]
                for r in con.execute(f'SELECT DISTINCT typeof("{col.name}") FROM "{table.name}"')
            }
            assert got <= allowed, (table.name, col.name, got)


# --- the original's quirks ----------------------------------------------------------------

QUIRKS = {
    "customers with NULL state": "SELECT count(*) >= 20 FROM customers WHERE state IS NULL",
    "customers with NULL postalCode": """
        SELECT count(*) >= 1 FROM customers WHERE postalCode IS NULL""",
    "postalCode shared across cities and countries": """
        SELECT count(*) >= 1 FROM customers a JOIN customers b
          ON a.postalCode = b.postalCode AND a.city <> b.city AND a.country <> b.country""",
    "orders with NULL shippedDate": "SELECT count(*) >= 1 FROM orders WHERE shippedDate IS NULL",
    "comments with commas, quotes and apostrophes": """
        SELECT sum(comments LIKE '%,%') > 0 AND sum(comments LIKE '%''%') > 0
           AND sum(comments LIKE '%"%') > 0 AND sum(comments IS NULL) > 0 FROM orders""",
    "customers without orders or sales rep": """
        SELECT count(*) >= 1 FROM customers WHERE salesRepEmployeeNumber IS NULL
          AND creditLimit = 0
          AND customerNumber NOT IN (SELECT customerNumber FROM orders)""",
    "a product never ordered": """
        SELECT count(*) = 1 FROM products
         WHERE productCode NOT IN (SELECT productCode FROM orderdetails)""",
    "about 27 countries": "SELECT count(DISTINCT country) = 27 FROM customers",
    "many cities": "SELECT count(DISTINCT city) >= 40 FROM customers",
    "every non-shipped status": """
        SELECT count(DISTINCT status) = 6 AND sum(status = 'Shipped') > 0.85 * count(*)
          FROM orders""",
}


@pytest.mark.parametrize("sql", QUIRKS.values(), ids=QUIRKS.keys())
def test_quirks_are_kept(con: sqlite3.Connection, sql: str) -> None:
    assert scalar(con, sql) == 1


# --- integrity: each query returns the bad rows -------------------------------------------

BAD_ROWS = {
    "order line without order or product": """
        SELECT d.* FROM orderdetails d
          LEFT JOIN orders o USING (orderNumber) LEFT JOIN products p USING (productCode)
         WHERE o.orderNumber IS NULL OR p.productCode IS NULL""",
    "duplicate order line": """
        SELECT orderNumber, productCode FROM orderdetails
         GROUP BY 1, 2 HAVING count(*) > 1""",
    "line numbers not 1..k": """
        SELECT orderNumber FROM orderdetails GROUP BY 1
        HAVING min(orderLineNumber) <> 1 OR max(orderLineNumber) <> count(*)
            OR count(DISTINCT orderLineNumber) <> count(*) OR count(*) > 17""",
    "order without lines": """
        SELECT orderNumber FROM orders
         WHERE orderNumber NOT IN (SELECT orderNumber FROM orderdetails)""",
    "order of a customer without sales rep": """
        SELECT o.* FROM orders o LEFT JOIN customers c USING (customerNumber)
         WHERE c.salesRepEmployeeNumber IS NULL""",
    "customer with sales rep but no orders": """
        SELECT * FROM customers WHERE salesRepEmployeeNumber IS NOT NULL
           AND customerNumber NOT IN (SELECT customerNumber FROM orders)""",
    "sales rep who is not a Sales Rep": """
        SELECT c.* FROM customers c JOIN employees e
          ON e.employeeNumber = c.salesRepEmployeeNumber WHERE e.jobTitle <> 'Sales Rep'""",
    "inactive customer with credit": """
        SELECT * FROM customers WHERE salesRepEmployeeNumber IS NULL AND creditLimit <> 0""",
    "payment of a customer without orders": """
        SELECT * FROM payments WHERE customerNumber NOT IN (SELECT customerNumber FROM orders)""",
    "payment outside the order dates": """
        SELECT * FROM payments WHERE paymentDate < (SELECT min(orderDate) FROM orders)
            OR paymentDate > (SELECT max(orderDate) FROM orders)""",
    "bad check number": "SELECT * FROM payments WHERE checkNumber NOT GLOB '[A-Z][A-Z][0-9]*'",
    "amount not positive": "SELECT * FROM payments WHERE amount <= 0",
    "money with more than 2 decimals": """
        SELECT 'line', priceEach FROM orderdetails
         WHERE abs(priceEach * 100 - round(priceEach * 100)) > 1e-6
        UNION ALL SELECT 'payment', amount FROM payments
         WHERE abs(amount * 100 - round(amount * 100)) > 1e-6
        UNION ALL SELECT 'product', buyPrice FROM products
         WHERE abs(buyPrice * 100 - round(buyPrice * 100)) > 1e-6
            OR abs(MSRP * 100 - round(MSRP * 100)) > 1e-6
        UNION ALL SELECT 'credit', creditLimit FROM customers
         WHERE abs(creditLimit * 100 - round(creditLimit * 100)) > 1e-6""",
    "MSRP not above buyPrice": "SELECT * FROM products WHERE MSRP <= buyPrice",
    "price far from MSRP": """
        SELECT d.* FROM orderdetails d JOIN products p USING (productCode)
         WHERE d.priceEach > p.MSRP OR d.priceEach < 0.79 * p.MSRP""",
    "quantity outside 6..97": """
        SELECT * FROM orderdetails WHERE quantityOrdered NOT BETWEEN 6 AND 97""",
    "date not YYYY-MM-DD": """
        SELECT orderDate FROM orders
         WHERE orderDate NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            OR requiredDate NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
            OR date(shippedDate) IS NOT shippedDate OR date(orderDate) <> orderDate
            OR date(requiredDate) <> requiredDate
        UNION ALL SELECT paymentDate FROM payments WHERE date(paymentDate) IS NOT paymentDate""",
    "order date outside 2003-01-06..2005-05-31": """
        SELECT * FROM orders WHERE orderDate NOT BETWEEN '2003-01-06' AND '2005-05-31'""",
    "required not 5-10 days after order": """
        SELECT * FROM orders
         WHERE julianday(requiredDate) - julianday(orderDate) NOT BETWEEN 5 AND 10""",
    "shipped not 1-6 days after order": """
        SELECT * FROM orders
         WHERE julianday(shippedDate) - julianday(orderDate) NOT BETWEEN 1 AND 6""",
    "unshipped order with shipped date": """
        SELECT * FROM orders WHERE status IN ('In Process', 'On Hold') AND shippedDate IS NOT NULL
        UNION ALL SELECT * FROM orders
         WHERE status IN ('Shipped', 'Resolved', 'Disputed') AND shippedDate IS NULL""",
    "order numbers not consecutive from 10100": """
        SELECT min(orderNumber), max(orderNumber), count(*) FROM orders
        HAVING min(orderNumber) <> 10100 OR max(orderNumber) - min(orderNumber) + 1 <> count(*)""",
    "customer numbers not from 103 with gaps": """
        SELECT min(customerNumber), max(customerNumber), count(*) FROM customers
        HAVING min(customerNumber) <> 103 OR max(customerNumber) - 103 + 1 <= count(*)""",
    "bad product code": """
        SELECT * FROM products
         WHERE productCode NOT GLOB 'S[0-9]*_[0-9][0-9][0-9][0-9]'
            OR substr(productCode, 2, instr(productCode, '_') - 2) <> substr(productScale, 3)
            OR productScale NOT IN
               ('1:10', '1:12', '1:18', '1:24', '1:32', '1:50', '1:72', '1:700')""",
    "duplicate product name": "SELECT productName FROM products GROUP BY 1 HAVING count(*) > 1",
    "duplicate customer name": "SELECT customerName FROM customers GROUP BY 1 HAVING count(*) > 1",
    "duplicate employee e-mail": "SELECT email FROM employees GROUP BY 1 HAVING count(*) > 1",
    "not exactly one President at the top": """
        SELECT count(*) FROM employees WHERE reportsTo IS NULL
        HAVING count(*) <> 1 OR max(jobTitle) <> 'President'""",
    "employee not under the President": """
        WITH RECURSIVE tree(n, depth) AS (
            SELECT employeeNumber, 0 FROM employees WHERE reportsTo IS NULL
            UNION ALL SELECT e.employeeNumber, depth + 1 FROM employees e
              JOIN tree ON e.reportsTo = tree.n WHERE depth < 10)
        SELECT * FROM employees WHERE employeeNumber NOT IN (SELECT n FROM tree)""",
    "office not among the seven": """
        SELECT * FROM employees WHERE officeCode NOT IN ('1','2','3','4','5','6','7')""",
}


@pytest.mark.parametrize("sql", BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_integrity(con: sqlite3.Connection, sql: str) -> None:
    assert con.execute(sql).fetchall() == []


def test_distributions_look_like_the_original(con: sqlite3.Connection) -> None:
    mean_lines = scalar(
        con, "SELECT avg(k) FROM (SELECT count(*) k FROM orderdetails GROUP BY orderNumber)"
    )
    assert isinstance(mean_lines, float) and 8.9 < mean_lines < 9.5
    active = scalar(con, "SELECT avg(salesRepEmployeeNumber IS NOT NULL) FROM customers")
    assert isinstance(active, float) and 0.75 < active < 0.85
    in_nov = scalar(con, "SELECT avg(strftime('%m', orderDate) = '11') FROM orders")
    assert isinstance(in_nov, float) and in_nov > 0.12  # the November peak
    assert scalar(con, "SELECT min(orderDate) || max(orderDate) FROM orders") == (
        "2003-01-062005-05-31"
    )


def test_reference_rows_are_the_real_ones(con: sqlite3.Connection) -> None:
    lines = [r[0] for r in con.execute("SELECT productLine FROM productlines ORDER BY 1")]
    assert lines == [
        "Classic Cars", "Motorcycles", "Planes", "Ships", "Trains", "Trucks and Buses",
        "Vintage Cars",
    ]  # fmt: skip
    offices = con.execute("SELECT officeCode, city, country, territory FROM offices ORDER BY 1")
    assert offices.fetchall() == [
        ("1", "San Francisco", "USA", "NA"),
        ("2", "Boston", "USA", "NA"),
        ("3", "NYC", "USA", "NA"),
        ("4", "Paris", "France", "EMEA"),
        ("5", "Tokyo", "Japan", "Japan"),
        ("6", "Sydney", "Australia", "APAC"),
        ("7", "London", "UK", "EMEA"),
    ]
    sample = scalar(con, "SELECT count(*) FROM products WHERE productName GLOB '19[0-9][0-9] *'")
    assert isinstance(sample, int) and sample > 50


# --- bad input and atomicity --------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "seed"), [(0, 42), (-2, 42), (1, -1)], ids=["scale0", "scale-2", "seed-1"]
)
def test_bad_numbers_raise_and_write_nothing(tmp_path: Path, scale: int, seed: int) -> None:
    with pytest.raises(SourceError, match="Pass a whole number"):
        generate_classicmodels(tmp_path / "cm.db", scale=scale, seed=seed)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_raises_and_writes_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SourceError, match="Choose a path in a writable folder"):
        generate_classicmodels(blocker / "sub" / "cm.db")
    with pytest.raises(SourceError, match="it is a folder"):
        generate_classicmodels(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_existing_file_is_replaced_only_on_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "deep" / "cm.db"
    target.parent.mkdir()
    target.write_bytes(b"old")

    def crash(path: str, tables: object) -> None:
        Path(path).write_bytes(b"half")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(generator_module, "_write_sqlite", crash)
    with pytest.raises(SourceError, match="disk I/O error"):
        generate_classicmodels(target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["cm.db"]

    monkeypatch.undo()
    assert generate_classicmodels(target)["orders"] == 326
    assert [p.name for p in target.parent.iterdir()] == ["cm.db"]
    with sqlite3.connect(target) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_schema_lookup_by_name() -> None:
    assert TABLES_BY_NAME["orderdetails"].primary_key == ("orderNumber", "productCode")
    assert [t.name for t in TABLES] == list(SCALE_1)

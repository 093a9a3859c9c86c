"""The ``classicmodels`` schema as data: eight tables, MySQL types as the sample declares them.

The declared types are kept verbatim so a SQLite copy can be read back with
``PRAGMA table_info`` and its exact MySQL types restored.

>>> [t.name for t in TABLES][:3]
['productlines', 'products', 'offices']
>>> TABLES_BY_NAME["payments"].primary_key
('customerNumber', 'checkNumber')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One column: its name, its MySQL type string and whether it accepts NULL."""

    name: str
    type: str
    nullable: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """Columns of one table that reference columns of another."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table: columns in declaration order, primary key and foreign keys."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        """The column names in declaration order."""
        return tuple(c.name for c in self.columns)


def _c(name: str, type_: str, nullable: bool = False) -> Column:
    return Column(name, type_, nullable)


def _fk(column: str, ref_table: str, ref_column: str) -> ForeignKey:
    return ForeignKey((column,), ref_table, (ref_column,))


PRODUCTLINES = Table(
    "productlines",
    (
        _c("productLine", "varchar(50)"),
        _c("textDescription", "varchar(4000)", True),
        _c("htmlDescription", "mediumtext", True),
        _c("image", "mediumblob", True),
    ),
    ("productLine",),
)

PRODUCTS = Table(
    "products",
    (
        _c("productCode", "varchar(15)"),
        _c("productName", "varchar(70)"),
        _c("productLine", "varchar(50)"),
        _c("productScale", "varchar(10)"),
        _c("productVendor", "varchar(50)"),
        _c("productDescription", "text"),
        _c("quantityInStock", "smallint(6)"),
        _c("buyPrice", "decimal(10,2)"),
        _c("MSRP", "decimal(10,2)"),
    ),
    ("productCode",),
    (_fk("productLine", "productlines", "productLine"),),
)

OFFICES = Table(
    "offices",
    (
        _c("officeCode", "varchar(10)"),
        _c("city", "varchar(50)"),
        _c("phone", "varchar(50)"),
        _c("addressLine1", "varchar(50)"),
        _c("addressLine2", "varchar(50)", True),
        _c("state", "varchar(50)", True),
        _c("country", "varchar(50)"),
        _c("postalCode", "varchar(15)"),
        _c("territory", "varchar(10)"),
    ),
    ("officeCode",),
)

EMPLOYEES = Table(
    "employees",
    (
        _c("employeeNumber", "int(11)"),
        _c("lastName", "varchar(50)"),
        _c("firstName", "varchar(50)"),
        _c("extension", "varchar(10)"),
        _c("email", "varchar(100)"),
        _c("officeCode", "varchar(10)"),
        _c("reportsTo", "int(11)", True),
        _c("jobTitle", "varchar(50)"),
    ),
    ("employeeNumber",),
    (
        _fk("reportsTo", "employees", "employeeNumber"),
        _fk("officeCode", "offices", "officeCode"),
    ),
)

CUSTOMERS = Table(
    "customers",
    (
        _c("customerNumber", "int(11)"),
        _c("customerName", "varchar(50)"),
        _c("contactLastName", "varchar(50)"),
        _c("contactFirstName", "varchar(50)"),
        _c("phone", "varchar(50)"),
        _c("addressLine1", "varchar(50)"),
        _c("addressLine2", "varchar(50)", True),
        _c("city", "varchar(50)"),
        _c("state", "varchar(50)", True),
        _c("postalCode", "varchar(15)", True),
        _c("country", "varchar(50)"),
        _c("salesRepEmployeeNumber", "int(11)", True),
        _c("creditLimit", "decimal(10,2)", True),
    ),
    ("customerNumber",),
    (_fk("salesRepEmployeeNumber", "employees", "employeeNumber"),),
)

PAYMENTS = Table(
    "payments",
    (
        _c("customerNumber", "int(11)"),
        _c("checkNumber", "varchar(50)"),
        _c("paymentDate", "date"),
        _c("amount", "decimal(10,2)"),
    ),
    ("customerNumber", "checkNumber"),
    (_fk("customerNumber", "customers", "customerNumber"),),
)

ORDERS = Table(
    "orders",
    (
        _c("orderNumber", "int(11)"),
        _c("orderDate", "date"),
        _c("requiredDate", "date"),
        _c("shippedDate", "date", True),
        _c("status", "varchar(15)"),
        _c("comments", "text", True),
        _c("customerNumber", "int(11)"),
    ),
    ("orderNumber",),
    (_fk("customerNumber", "customers", "customerNumber"),),
)

ORDERDETAILS = Table(
    "orderdetails",
    (
        _c("orderNumber", "int(11)"),
        _c("productCode", "varchar(15)"),
        _c("quantityOrdered", "int(11)"),
        _c("priceEach", "decimal(10,2)"),
        _c("orderLineNumber", "smallint(6)"),
    ),
    ("orderNumber", "productCode"),
    (
        _fk("orderNumber", "orders", "orderNumber"),
        _fk("productCode", "products", "productCode"),
    ),
)

#: The eight tables in dependency order: every table comes after the tables it references
#: (``employees`` also references itself).
TABLES: tuple[Table, ...] = (
    PRODUCTLINES,
    PRODUCTS,
    OFFICES,
    EMPLOYEES,
    CUSTOMERS,
    PAYMENTS,
    ORDERS,
    ORDERDETAILS,
)

TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_type(declared: str) -> str:
    """The declared type as SQLite accepts it: quoted when words follow its parentheses
    (``int(10) unsigned``), which SQLite's grammar refuses; it still keeps the text.

    >>> _sqlite_type("int(10) unsigned"), _sqlite_type("int unsigned"), _sqlite_type("date")
    ('"int(10) unsigned"', 'int unsigned', 'date')
    """
    _, paren, after = declared.rpartition(")")
    return _quote(declared) if paren and after.strip() else declared


def sqlite_ddl(table: Table) -> str:
    """Return a SQLite ``CREATE TABLE`` whose declared column types are the MySQL types.

    >>> print(sqlite_ddl(TABLES_BY_NAME["productlines"]))  # doctest: +NORMALIZE_WHITESPACE
    CREATE TABLE "productlines" (
      "productLine" varchar(50) NOT NULL,
      "textDescription" varchar(4000),
      "htmlDescription" mediumtext,
      "image" mediumblob,
      PRIMARY KEY ("productLine")
    )
    """
    lines = [
        f"  {_quote(c.name)} {_sqlite_type(c.type)}{'' if c.nullable else ' NOT NULL'}"
        for c in table.columns
    ]
    if table.primary_key:
        lines.append(f"  PRIMARY KEY ({', '.join(_quote(c) for c in table.primary_key)})")
    for fk in table.foreign_keys:
        cols = ", ".join(_quote(c) for c in fk.columns)
        refs = ", ".join(_quote(c) for c in fk.ref_columns)
        lines.append(f"  FOREIGN KEY ({cols}) REFERENCES {_quote(fk.ref_table)} ({refs})")
    return f"CREATE TABLE {_quote(table.name)} (\n" + ",\n".join(lines) + "\n)"

"""The ``classicmodels`` sample database of a scale-model-car retailer: schema and generator."""

from sluice.sources.classicmodels.generator import (
    classicmodels_rows,
    expected_row_counts,
    generate_classicmodels,
    write_classicmodels,
)
from sluice.sources.classicmodels.schema import TABLES, TABLES_BY_NAME, Table, sqlite_ddl

__all__ = [
    "TABLES",
    "TABLES_BY_NAME",
    "Table",
    "classicmodels_rows",
    "expected_row_counts",
    "generate_classicmodels",
    "sqlite_ddl",
    "write_classicmodels",
]

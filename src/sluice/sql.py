"""SQL helpers shared by the stages: parsing with sqlglot, table references."""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from sluice.core import TableName

DIALECT = "duckdb"


def table_references(tree: exp.Expr, *, default_database: str) -> frozenset[TableName]:
    """The tables a parsed statement reads (CTE names and table functions excluded).

    >>> sorted(map(str, table_references(sqlglot.parse_one(
    ...     "WITH x AS (SELECT * FROM raw.a) SELECT * FROM x JOIN b USING (k)"),
    ...     default_database="gold")))
    ['gold.b', 'raw.a']
    """
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    reads = set()
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or (not table.db and table.name in ctes):
            continue
        reads.add(TableName(table.db or default_database, table.name))
    return frozenset(reads)


def references_in(sql: str, *, default_database: str) -> frozenset[TableName]:
    """Table references of SQL text; empty when it cannot be parsed."""
    try:
        tree = sqlglot.parse_one(sql, dialect=DIALECT)
    except sqlglot.errors.ParseError:
        return frozenset()
    return table_references(tree, default_database=default_database)

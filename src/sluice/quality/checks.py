"""Data checks: each compiles to SQL that returns the bad rows; zero rows passes.

Severity ``error`` blocks the publish; ``warn`` is recorded in the run report.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from sluice.config import CheckSpec, ForeignKeyCheck
from sluice.core import CheckResult, TableName
from sluice.duck import quote_ident, quote_literal
from sluice.errors import CheckFailedError
from sluice.quality.proofs import ForeignKeyProof, UniqueProof
from sluice.sql import references_in

if TYPE_CHECKING:
    import duckdb

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class Check:
    """A compiled check: the model it guards, its name, severity and bad-rows SQL."""

    name: str
    model: str
    kind: str
    severity: str
    sql: str
    reads: frozenset[TableName] = frozenset()
    proof: UniqueProof | ForeignKeyProof | None = None
    """A cheaper test that holds only if the check certainly passes (see
    ``sluice.quality.proofs``); when it does not hold, ``sql`` runs and finds the bad rows."""
    table: TableName | None = field(default=None, compare=False)
    spec: CheckSpec | None = field(default=None, compare=False)

    @property
    def row_by_row(self) -> bool:
        """Whether each row of the model passes or fails on its own: ``not_null``, and
        ``foreign_key`` as long as the referenced table keeps its keys."""
        return self.kind in ("not_null", "foreign_key")

    @property
    def unique_columns(self) -> frozenset[str]:
        """The columns a ``unique`` check keys on (empty for other kinds)."""
        if self.spec is None or self.spec.unique is None:
            return frozenset()
        return frozenset(self.spec.unique)

    def on_rows(self, relation: str) -> Check:
        """The same check on ``relation`` (some rows of the model's table, as a DuckDB
        FROM item) instead of the whole table; its name and recorded SQL stay the same."""
        if self.table is None or self.spec is None:
            raise ValueError(f"check {self.name} was not compiled from a spec")
        scoped = compile_check(self.table, self.spec, rows=relation)
        return replace(self, sql=scoped.sql, proof=scoped.proof)


def references_kept(con: duckdb.DuckDBPyConnection, check: Check, old: str) -> bool:
    """Whether every key the referenced table of a ``foreign_key`` check had in ``old`` (a
    DuckDB FROM item: that table as an earlier run left it) is still a key of it, so that
    rows that passed the check then still do."""
    import duckdb

    if check.table is None or check.spec is None or check.spec.foreign_key is None:
        return False
    _, column, ref_sql = _reference(check.table.database, check.spec.foreign_key)
    key = quote_ident(column)
    try:
        row = con.execute(
            f"SELECT count(*) FROM (SELECT {key} FROM {old} EXCEPT SELECT {key} FROM {ref_sql})"
        ).fetchone()
    except duckdb.InterruptException:
        raise
    except duckdb.Error:
        return False  # e.g. the old files are gone: the whole table is checked
    return row is not None and row[0] == 0


def compile_check(model: TableName, spec: CheckSpec, *, rows: str | None = None) -> Check:
    """Turn a declared check into the SQL that returns its bad rows; ``rows`` (a DuckDB
    FROM item) stands for the model's table when given."""
    kind = spec.kind()
    target = rows or f"{model.database}.{quote_ident(model.name)}"
    proof: UniqueProof | ForeignKeyProof | None = None
    if spec.unique is not None:
        sql = _unique_sql(target, spec.unique)
        name = f"unique({', '.join(spec.unique)})"
        proof = UniqueProof(target, tuple(spec.unique))
    elif spec.not_null is not None:
        cond = " OR ".join(f"{quote_ident(c)} IS NULL" for c in spec.not_null)
        sql = f"SELECT * FROM {target} WHERE {cond}"
        name = f"not_null({', '.join(spec.not_null)})"
    elif spec.reconcile is not None:
        sql = _reconcile_sql(target, spec)
        name = f"reconcile({spec.reconcile.source})"
    elif spec.foreign_key is not None:
        sql = _foreign_key_sql(target, model.database, spec)
        name = f"foreign_key({spec.foreign_key.column} -> {spec.foreign_key.references})"
        _, ref_column, ref_sql = _reference(model.database, spec.foreign_key)
        proof = ForeignKeyProof(
            target, spec.foreign_key.column, ref_sql, ref_column, spec.foreign_key.required
        )
    else:
        sql = (spec.sql or "").strip().rstrip(";")
        name = "sql"
    return Check(
        spec.name or name,
        model.name,
        kind,
        spec.severity,
        sql,
        _reads(model, spec, sql),
        proof,
        model,
        spec,
    )


def _reads(model: TableName, spec: CheckSpec, sql: str) -> frozenset[TableName]:
    """The tables a check reads: known for built-in kinds, parsed for custom SQL."""
    if spec.reconcile is not None:
        return frozenset(
            {model, TableName.parse(spec.reconcile.source, default_database=model.database)}
        )
    if spec.foreign_key is not None:
        return frozenset({model, _referenced(model, spec.foreign_key)[0]})
    if spec.sql is not None:
        return references_in(sql, default_database=model.database) | {model}
    return frozenset({model})


def _unique_sql(target: str, columns: list[str]) -> str:
    """Rows whose key occurs more than once, with the number of copies (NULLs count as equal).

    With several key columns, rows are sorted by the whole key and each is compared with the
    one before it: on large tables that is faster than one hash aggregate over every distinct
    key, and than a window partitioned by part of the key.
    """
    cols = ", ".join(quote_ident(c) for c in columns)
    if len(columns) == 1:
        return f"SELECT {cols}, count(*) AS copies FROM {target} GROUP BY ALL HAVING count(*) > 1"
    same = " AND ".join(
        f"lag({quote_ident(c)}) OVER w IS NOT DISTINCT FROM {quote_ident(c)}" for c in columns
    )
    return (
        f"SELECT {cols}, count(*) + 1 AS copies FROM ("
        f"SELECT {cols}, row_number() OVER w > 1 AND {same} AS _repeat "
        f"FROM {target} WINDOW w AS (ORDER BY {cols})"
        f") WHERE _repeat GROUP BY ALL"
    )


def _reconcile_sql(target: str, spec: CheckSpec) -> str:
    assert spec.reconcile is not None
    rec = spec.reconcile
    measures: list[tuple[str, str, str]] = []
    if rec.count:
        measures.append(("row count", "count(*)", "count(*)"))
    for column, source_expr in rec.sums.items():
        measures.append((f"sum({column})", f"sum({source_expr})", f"sum({quote_ident(column)})"))
    parts = []
    for i, (label, expected, actual) in enumerate(measures):
        parts.append(
            f"SELECT {quote_literal(label)} AS measure, CAST(e.m{i} AS VARCHAR) AS expected, "
            f"CAST(a.m{i} AS VARCHAR) AS actual FROM "
            f"(SELECT {expected} AS m{i} FROM {rec.source}) e, "
            f"(SELECT {actual} AS m{i} FROM {target}) a WHERE e.m{i} IS DISTINCT FROM a.m{i}"
        )
    return "\nUNION ALL\n".join(parts) or "SELECT 1 WHERE false"


def _referenced(model: TableName, fk: ForeignKeyCheck) -> tuple[TableName, str]:
    """The table and column a foreign key points at (``dim.key`` is in the model's database)."""
    table, _, column = fk.references.rpartition(".")
    return TableName.parse(table, default_database=model.database), column


def _reference(database: str, fk: ForeignKeyCheck) -> tuple[TableName, str, str]:
    """The table a foreign key of a model in ``database`` points at, its column, and the
    table as DuckDB names it."""
    ref, column = _referenced(TableName(database, ""), fk)
    return ref, column, f"{ref.database}.{quote_ident(ref.name)}"


def _foreign_key_sql(target: str, database: str, spec: CheckSpec) -> str:
    assert spec.foreign_key is not None
    fk = spec.foreign_key
    ref, ref_column, ref_sql = _reference(database, fk)
    col, ref_col = quote_ident(fk.column), quote_ident(ref_column)
    null_clause = "" if fk.required else f" AND f.{col} IS NOT NULL"
    return (
        f"SELECT 'missing from {ref.name}' AS problem, CAST(f.{col} AS VARCHAR) AS key, "
        f"count(*) AS rows FROM {target} f ANTI JOIN {ref_sql} r ON f.{col} = r.{ref_col} "
        f"WHERE true{null_clause} GROUP BY f.{col}\n"
        f"UNION ALL\n"
        f"SELECT 'not unique in {ref.name}', CAST({ref_col} AS VARCHAR), count(*) "
        f"FROM {ref_sql} GROUP BY {ref_col} HAVING count(*) > 1"
    )


def run_check(con: duckdb.DuckDBPyConnection, check: Check) -> CheckResult:
    """Run a check; the result carries the bad-row count, a sample and a readable message."""
    import duckdb

    if check.proof is not None and _proven(con, check.proof):
        return CheckResult(check.name, check.model, check.severity, check.sql, failing_rows=0)
    try:
        # Not count(*) OVER (): DuckDB 1.5 sometimes fails it with an internal error on a
        # near-empty input, which also invalidates the connection.
        cursor = con.execute(
            f"WITH bad AS MATERIALIZED ({check.sql}) "
            f"SELECT *, (SELECT count(*) FROM bad) AS _sluice_bad_rows FROM bad "
            f"LIMIT {SAMPLE_ROWS}"
        )
        rows = cursor.fetchall()
    except duckdb.Error as exc:
        raise CheckFailedError(
            f"Check {check.name} on {check.model} cannot run: {str(exc).splitlines()[0]}",
            hint="Fix the check in sluice.yml.",
        ) from exc
    names = [d[0] for d in cursor.description or []][:-1]
    sample = tuple(dict(zip(names, row[:-1], strict=True)) for row in rows)
    count = int(rows[0][-1]) if rows else 0
    return CheckResult(
        name=check.name,
        model=check.model,
        severity=check.severity,
        sql=check.sql,
        failing_rows=count,
        sample=sample,
        message=describe_failure(check, count, sample) if count else "",
    )


def _proven(con: duckdb.DuckDBPyConnection, proof: UniqueProof | ForeignKeyProof) -> bool:
    """True when the proof holds; any error leaves the decision to the full check."""
    import duckdb

    try:
        return proof.holds(con)
    except duckdb.InterruptException:
        raise
    except duckdb.Error:
        return False


def describe_failure(check: Check, count: int, sample: tuple[dict[str, object], ...]) -> str:
    """One sentence naming the table, what was expected and what was found."""
    if check.kind == "reconcile":
        figures = "; ".join(
            f"{row['measure']} expected {row['expected']}, actual {row['actual']}" for row in sample
        )
        return f"{check.model} does not reconcile with {check.name[10:-1]}: {figures}"
    if check.kind == "foreign_key":
        problems = "; ".join(
            f"{row['problem']}: key {row['key']} ({row['rows']} rows)" for row in sample
        )
        return f"{check.model} {check.name} failed on {count} keys: {problems}"
    shown = ", ".join(str(row) for row in sample[:2])
    return f"{check.model} {check.name} found {count} bad rows, e.g. {shown}"

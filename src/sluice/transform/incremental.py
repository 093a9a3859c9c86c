"""Incremental models: recompute only the rows whose inputs changed, merge them by key.

A model opts in with a header line, as dbt's ``unique_key`` config or SQLMesh's
``INCREMENTAL_BY_UNIQUE_KEY`` kind::

    -- sluice: incremental unique_key=orderNumber,orderLineNumber

Its SELECT must keep one output row per row of the table in its FROM clause (the driver):
no aggregates, window functions, DISTINCT, subqueries or CTEs, only joins to other tables,
and the unique key columns are driver columns selected as they are. Each build records, in
the gold snapshot's summary, the model's fingerprint and the data files of every input it
read. The next build compares them with the inputs' files now:

- driver files only added (an appended raw batch): the new driver rows are affected;
- a joined table changed: its changed rows (both versions, a symmetric ``EXCEPT ALL`` on
  the columns the model names with the table's alias) are followed back through the join
  conditions to the driver rows that match them;
- anything else (no record, another SQL, driver rows rewritten or removed as after a reset
  cursor, a schema change, a join that is not column equalities) rebuilds the table fully.

The affected driver rows are recomputed with the model's own SQL and merged into the gold
table's files by the unique key, so the result equals a full rebuild.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from sluice.core import TableName
from sluice.duck import quote_ident
from sluice.errors import TransformError
from sluice.lake.merge import MergedFiles, has_nulls, keys_match, merge_files, parquet_list
from sluice.lake.types import lake_select

if TYPE_CHECKING:
    import duckdb

STATE_PROPERTY = "sluice.model-state"
BUILD_PROPERTY = "sluice.model-build"
_HEADER = re.compile(r"^\s*--\s*sluice:\s*incremental\b(?P<options>.*)$", re.MULTILINE)
_OPTION = re.compile(r"(?P<name>[a-z_]+)\s*=\s*(?P<value>[^\s]+)")
AFFECTED = "_sluice_affected"
DRIVER_VIEW = "_sluice_driver"


@dataclass(frozen=True)
class Join:
    """A table joined by the model: its alias, the column pairs (its column, other alias,
    other column) its ON condition equates (None when the condition is anything else), and
    the names, lower-cased, of its columns the model refers to (None: possibly any)."""

    alias: str
    table: TableName
    pairs: tuple[tuple[str, str, str], ...] | None
    columns: frozenset[str] | None = None
    null_safe: bool = False  # a pair is equated with IS NOT DISTINCT FROM: NULLs match


@dataclass(frozen=True)
class IncrementalSpec:
    """How an incremental model is merged: its unique key (output columns) and the driver
    columns they are, the driver table and alias, and the joins."""

    unique_key: tuple[str, ...]
    driver_columns: tuple[str, ...]
    driver: TableName
    driver_alias: str
    joins: tuple[Join, ...]


@dataclass(frozen=True)
class Increment:
    """What changed since the last build: driver files added, joined tables changed (their
    previous and current files)."""

    added: tuple[str, ...]
    changed: Mapping[TableName, tuple[tuple[str, ...], tuple[str, ...]]]


def incremental_spec(
    sql: str, tree: exp.Query, *, where: str, database: str
) -> IncrementalSpec | None:
    """The model's incremental spec from its header, or None when it has none; a model whose
    SQL cannot be merged by key is refused with the reason."""
    header = _HEADER.search(sql)
    if header is None:
        return None
    options = {m["name"]: m["value"] for m in _OPTION.finditer(header["options"])}
    unknown = sorted(set(options) - {"unique_key"})
    if unknown or not options.get("unique_key"):
        raise TransformError(
            f"{where} has an incremental header without unique_key=col1,col2"
            + (f" (unknown option {unknown[0]})" if unknown else "")
            + ".",
            hint="Write: -- sluice: incremental unique_key=orderNumber,orderLineNumber",
        )
    unique_key = tuple(k for k in options["unique_key"].split(",") if k)

    def refuse(reason: str) -> TransformError:
        return TransformError(
            f"{where} cannot be incremental: {reason}.",
            hint="Remove the '-- sluice: incremental' line to rebuild it fully on every run.",
        )

    if not isinstance(tree, exp.Select) or tree.args.get("with"):
        raise refuse("it must be one SELECT without WITH or UNION")
    for kind, what in (
        (exp.AggFunc, "an aggregate"),
        (exp.Window, "a window function"),
        (exp.Subquery, "a subquery"),
        (exp.Group, "GROUP BY"),
        (exp.Distinct, "DISTINCT"),
        (exp.Limit, "LIMIT"),
        (exp.Star, "SELECT *"),
    ):
        if tree.find(kind) is not None:
            raise refuse(f"it uses {what}, so an output row does not follow from one input row")
    if any(c.name.lower().startswith("_sluice_") for c in tree.find_all(exp.Column)):
        raise refuse("it reads load metadata columns (_sluice_*), which change on every load")
    source = tree.args["from_"].this
    if not isinstance(source, exp.Table):
        raise refuse("its FROM clause must name one table")
    alias = source.alias_or_name
    joins: list[Join] = []
    seen = {alias.lower()}
    for join in tree.args.get("joins") or ():
        kind_ok = join.side in ("", "LEFT") and join.kind in ("", "INNER", "OUTER")
        if not isinstance(join.this, exp.Table) or not kind_ok:
            raise refuse("it may only INNER or LEFT JOIN tables")
        joined = join.this.alias_or_name
        joins.append(
            Join(
                joined,
                _table(join.this, database),
                _pairs(join, joined, seen),
                _columns_used(tree, joined),
                join.find(exp.NullSafeEQ) is not None,
            )
        )
        seen.add(joined.lower())
    outputs = {e.alias_or_name.lower(): e for e in tree.expressions}
    driver_columns = []
    for key in unique_key:
        column = outputs.get(key.lower())
        column = column.unalias() if column is not None else None
        qualifier = column.table.lower() if isinstance(column, exp.Column) else None
        if not isinstance(column, exp.Column) or qualifier not in (alias.lower(), ""):
            raise refuse(f"unique key {key} must be a column of {source.sql()} selected as is")
        driver_columns.append(column.name)
    return IncrementalSpec(
        unique_key, tuple(driver_columns), _table(source, database), alias, tuple(joins)
    )


def _table(table: exp.Table, database: str) -> TableName:
    return TableName(table.db or database, table.name)


def _columns_used(tree: exp.Select, alias: str) -> frozenset[str] | None:
    """The columns of the table ``alias`` that the model refers to anywhere, lower-cased;
    None when it may refer to others (it has an unqualified column)."""
    used = set()
    for column in tree.find_all(exp.Column):
        if not column.table:
            return None
        if column.table.lower() == alias.lower():
            used.add(column.name.lower())
    return frozenset(used)


def _pairs(
    join: exp.Join, alias: str, earlier: set[str]
) -> tuple[tuple[str, str, str], ...] | None:
    """Column pairs (joined column, earlier alias, earlier column) an ON condition equates."""
    condition = join.args.get("on")
    if condition is None:
        return None
    pairs = []
    for part in condition.flatten() if isinstance(condition, exp.And) else (condition,):
        if not isinstance(part, exp.EQ | exp.NullSafeEQ):
            return None
        left, right = part.this, part.expression
        if not isinstance(left, exp.Column) or not isinstance(right, exp.Column):
            return None
        if right.table.lower() == alias.lower():
            left, right = right, left
        if left.table.lower() != alias.lower() or right.table.lower() not in earlier:
            return None
        pairs.append((left.name, right.table, right.name))
    return tuple(pairs)


def fingerprint(sql: str) -> str:
    """What a model's merged rows depend on besides its inputs: its SQL (with the header)."""
    return hashlib.sha256(sql.encode()).hexdigest()[:16]


def state_summary(
    sql: str, inputs: Mapping[TableName, tuple[str, ...]], *, build: str
) -> tuple[tuple[str, str], ...]:
    """The snapshot summary properties that record a build and the input files it read."""
    state = {
        "fingerprint": fingerprint(sql),
        "inputs": {str(t): list(f) for t, f in inputs.items()},
    }
    return ((STATE_PROPERTY, json.dumps(state, sort_keys=True)), (BUILD_PROPERTY, build))


def built_from(
    previous: Mapping[str, str], sql: str, inputs: Mapping[TableName, tuple[str, ...]]
) -> bool:
    """True when ``previous`` (a snapshot summary) records a build of ``sql`` from exactly
    the files of ``inputs``: building again would give the same rows."""
    recorded = previous.get(STATE_PROPERTY)
    if not recorded:
        return False
    state = json.loads(recorded)
    before = {TableName.parse(t): set(f) for t, f in state.get("inputs", {}).items()}
    return state.get("fingerprint") == fingerprint(sql) and before == {
        t: set(f) for t, f in inputs.items()
    }


def plan_increment(
    spec: IncrementalSpec,
    sql: str,
    *,
    previous: Mapping[str, str],
    gold_files: tuple[str, ...],
    inputs: Mapping[TableName, tuple[str, ...]],
) -> Increment | str:
    """What changed since the build recorded in ``previous`` (a snapshot summary), or why
    the model must be rebuilt fully."""
    recorded = previous.get(STATE_PROPERTY)
    if not recorded or not gold_files:
        return "no previous build recorded"
    state = json.loads(recorded)
    if state.get("fingerprint") != fingerprint(sql):
        return "the model's SQL changed"
    before = {TableName.parse(t): tuple(f) for t, f in state.get("inputs", {}).items()}
    if set(before) != set(inputs):
        return "the model reads other tables"
    needed = (*gold_files, *(f for files in before.values() for f in files))
    if not all(Path(f).is_file() for f in needed):
        return "files of the previous build are gone"
    old_driver, new_driver = set(before[spec.driver]), set(inputs[spec.driver])
    if not new_driver.issuperset(old_driver):
        return f"rows of {spec.driver} were rewritten or removed"
    added = tuple(f for f in inputs[spec.driver] if f not in old_driver)
    changed = {t: (before[t], inputs[t]) for t in inputs if set(before[t]) != set(inputs[t])}
    for join in spec.joins:
        if join.table in changed and join.pairs is None:
            return f"{join.table} changed and its join is not a list of column equalities"
    return Increment(added, changed)


def affected_keys(
    con: duckdb.DuckDBPyConnection, spec: IncrementalSpec, increment: Increment
) -> str | None:
    """Fill the temp table ``_sluice_affected`` with the key (driver columns) of every driver
    row to recompute; return why a full rebuild is needed instead, or None."""
    keys = ", ".join(quote_ident(c) for c in spec.driver_columns)
    driver = str(spec.driver)
    parts = []
    if increment.added:
        parts.append(f"SELECT {keys} FROM read_parquet({parquet_list(increment.added)})")
    aliases = {
        spec.driver_alias.lower(): spec.driver,
        **{j.alias.lower(): j.table for j in spec.joins},
    }
    by_alias = {j.alias.lower(): j for j in spec.joins}
    for number, join in enumerate(spec.joins):
        if join.table not in increment.changed:
            continue
        old, new = increment.changed[join.table]
        delta = _delta(con, old, new, name=f"_sluice_delta_{number}", used=join.columns)
        if delta is None:
            return f"the columns of {join.table} changed"
        if not _has_rows(con, delta):
            continue  # rebuilt with the same rows: nothing to follow
        parts.extend(
            _follow(
                join,
                f"SELECT * FROM {delta}",
                aliases=aliases,
                by_alias=by_alias,
                spec=spec,
                keys=keys,
            )
        )
    union = " UNION ".join(parts) if parts else f"SELECT {keys} FROM {driver} WHERE false"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {AFFECTED} AS {union}")
    for number in range(len(spec.joins)):
        con.execute(f"DROP TABLE IF EXISTS _sluice_delta_{number}")
    return None


def _delta(
    con: duckdb.DuckDBPyConnection,
    old: tuple[str, ...],
    new: tuple[str, ...],
    *,
    name: str,
    used: frozenset[str] | None = None,
) -> str | None:
    """A temp table of the rows that differ between two versions of a table (both versions
    of a changed row; only the added rows when files were only added), load metadata left
    out. Only the ``used`` columns (lower-cased names) are compared and kept, when given: a
    change in a column the model never reads changes none of its rows. None when the
    versions have different columns."""
    columns = _data_columns(con, new)
    if old and _data_columns(con, old) != columns:
        return None
    if used is not None:
        columns = [c for c in columns if c.lower() in used] or columns
    listed = ", ".join(quote_ident(c) for c in columns)
    added = [f for f in new if f not in old]
    if set(old) <= set(new):
        sql = f"SELECT {listed} FROM read_parquet({parquet_list(added)})" if added else None
    else:
        before = f"SELECT {listed} FROM read_parquet({parquet_list(old)})"
        after = f"SELECT {listed} FROM read_parquet({parquet_list(new)})"
        sql = f"({before} EXCEPT ALL {after}) UNION ALL ({after} EXCEPT ALL {before})"
    sql = sql or f"SELECT {listed} FROM read_parquet({parquet_list(new)}) WHERE false"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
    return name


def _has_rows(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return con.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None


def _data_columns(con: duckdb.DuckDBPyConnection, files: tuple[str, ...]) -> list[str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet({parquet_list(files[:1])})").fetchall()
    return [str(r[0]) for r in rows if not str(r[0]).startswith("_sluice_")]


def _follow(
    join: Join,
    rows: str,
    *,
    aliases: Mapping[str, TableName],
    by_alias: Mapping[str, Join],
    spec: IncrementalSpec,
    keys: str,
) -> list[str]:
    """SELECTs of the driver keys whose rows reach ``rows`` (rows of ``join``'s table) through
    the join conditions, one per table the condition refers to."""
    assert join.pairs is not None
    selects = []
    for other in sorted({alias.lower() for _, alias, _ in join.pairs}):
        pairs = [(mine, theirs) for mine, alias, theirs in join.pairs if alias.lower() == other]
        operator = "IS NOT DISTINCT FROM" if join.null_safe else "="
        on = " AND ".join(
            f"t.{quote_ident(theirs)} {operator} r.{quote_ident(mine)}" for mine, theirs in pairs
        )
        matching = f"SELECT t.* FROM {aliases[other]} AS t SEMI JOIN ({rows}) AS r ON {on}"
        if other == spec.driver_alias.lower():
            selects.append(f"SELECT {keys} FROM ({matching})")
            continue
        upstream = by_alias[other]
        if upstream.pairs is None:
            # Rows of a table joined by another condition: every driver row may reach them.
            selects.append(f"SELECT {keys} FROM {spec.driver}")
            continue
        selects.extend(
            _follow(upstream, matching, aliases=aliases, by_alias=by_alias, spec=spec, keys=keys)
        )
    return selects


def recompute_sql(tree: exp.Select, spec: IncrementalSpec) -> str:
    """The model's SELECT over only the affected driver rows (view ``_sluice_driver``)."""
    changed = tree.copy()
    source = changed.args["from_"].this
    source.replace(exp.to_table(DRIVER_VIEW).as_(spec.driver_alias))
    return changed.sql(dialect="duckdb")


def create_driver_view(con: duckdb.DuckDBPyConnection, spec: IncrementalSpec) -> None:
    """The view of the driver rows whose key is affected."""
    columns = spec.driver_columns
    on = keys_match("d", "a", columns, null_safe=has_nulls(con, AFFECTED, columns))
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {DRIVER_VIEW} AS "
        f"SELECT d.* FROM {spec.driver} AS d SEMI JOIN {AFFECTED} AS a ON {on}"
    )


def affected_output_keys(spec: IncrementalSpec) -> str:
    """The SELECT of the affected keys under the model's output column names."""
    return (
        "SELECT DISTINCT "
        + ", ".join(
            f"{quote_ident(c)} AS {quote_ident(k)}"
            for c, k in zip(spec.driver_columns, spec.unique_key, strict=True)
        )
        + f" FROM {AFFECTED}"
    )


def build_increment(
    con: duckdb.DuckDBPyConnection,
    spec: IncrementalSpec,
    sql: str,
    *,
    previous: Mapping[str, str],
    gold_files: tuple[str, ...],
    inputs: Mapping[TableName, tuple[str, ...]],
    path: Path,
) -> tuple[MergedFiles, int] | str:
    """Recompute the rows whose inputs changed since the build recorded in ``previous`` and
    merge them into ``gold_files``, writing ``path``: the merged files and the number of
    keys recomputed, or why the model must be rebuilt fully instead."""
    increment = plan_increment(spec, sql, previous=previous, gold_files=gold_files, inputs=inputs)
    if isinstance(increment, str):
        return increment
    try:
        reason = affected_keys(con, spec, increment)
        if reason is not None:
            return reason
        create_driver_view(con, spec)
        tree = sqlglot.parse_one(sql, dialect="duckdb")
        assert isinstance(tree, exp.Select)
        batch = lake_select(con, recompute_sql(tree, spec))
        wanted = [tuple(r[:2]) for r in con.execute(f"DESCRIBE ({batch})").fetchall()]
        have = con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({parquet_list(gold_files[:1])})"
        ).fetchall()
        if wanted != [tuple(r[:2]) for r in have]:
            return "the model's columns changed"
        row = con.execute(f"SELECT count(*) FROM {AFFECTED}").fetchone()
        merged = merge_files(
            con,
            current=gold_files,
            batch=batch,
            keys=affected_output_keys(spec),
            key_columns=list(spec.unique_key),
            path=path,
        )
    finally:
        con.execute(f"DROP VIEW IF EXISTS {DRIVER_VIEW}")
        con.execute(f"DROP TABLE IF EXISTS {AFFECTED}")
    return merged, int(row[0]) if row else 0

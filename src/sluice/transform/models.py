"""SQL models: plain SELECT files, ordered by the tables they read (parsed with sqlglot)."""

from __future__ import annotations

import graphlib
import re
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from sluice.core import TableName
from sluice.errors import TransformError, did_you_mean
from sluice.sql import DIALECT, table_references
from sluice.transform.incremental import IncrementalSpec, incremental_spec

_MISSING_COLUMN = re.compile(
    r'Binder Error: (?:Referenced column "(?P<a>[^"]+)" not found'
    r'|.*does not have a column named "(?P<b>[^"]+)")'
)


@dataclass(frozen=True)
class Model:
    """A model file: its output table, its SQL, the tables it reads and, for an incremental
    model, how its rows are merged (see ``sluice.transform.incremental``)."""

    name: str
    path: Path
    sql: str
    table: TableName
    reads: frozenset[TableName]
    incremental: IncrementalSpec | None = None
    #: Its rows depend on its inputs alone (no clock, random number or other volatile call).
    deterministic: bool = True


def parse_model(path: Path, *, database: str) -> Model:
    """Parse one model file; the SQL must be a single SELECT (or WITH … SELECT)."""
    sql = path.read_text(encoding="utf-8").strip().rstrip(";").strip()
    where = f"Model {path.stem} ({path})"
    if not sql:
        raise TransformError(f"{where} is empty; write one SELECT statement in it.")
    try:
        statements = sqlglot.parse(sql, dialect=DIALECT)
    except ParseError as exc:
        detail = exc.errors[0] if exc.errors else {}
        raise TransformError(
            f"{where} has a SQL syntax error at line {detail.get('line', '?')}, column "
            f"{detail.get('col', '?')}: {detail.get('description', exc)}."
        ) from exc
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise TransformError(f"{where} must be exactly one SELECT statement.")
    reads = table_references(statements[0], default_database=database)
    spec = incremental_spec(sql, statements[0], where=where, database=database)
    return Model(
        path.stem,
        path,
        sql,
        TableName(database, path.stem),
        reads,
        spec,
        deterministic=not _volatile_calls(statements[0]),
    )


_VOLATILE = (
    exp.CurrentDate, exp.CurrentDatetime, exp.CurrentTime, exp.CurrentTimestamp,
    exp.CurrentTimestampLTZ, exp.Localtimestamp, exp.Rand, exp.Randn, exp.Uuid,
)  # fmt: skip
_VOLATILE_NAMES = {
    "now", "get_current_time", "get_current_timestamp", "transaction_timestamp",
    "current_localtime", "current_localtimestamp", "setseed", "nextval", "currval",
}  # fmt: skip


def _volatile_calls(query: exp.Query) -> list[str]:
    """The calls in ``query`` whose result changes from one run to the next.

    >>> _volatile_calls(sqlglot.parse_one("SELECT a, now(), random() FROM t", dialect="duckdb"))
    ['NOW()', 'RANDOM()']
    """
    return [
        call.sql(dialect=DIALECT)
        for call in query.find_all(exp.Func)
        if isinstance(call, _VOLATILE)
        or (isinstance(call, exp.Anonymous) and call.name.lower() in _VOLATILE_NAMES)
    ]


def load_models(folder: Path, *, database: str, available: set[TableName]) -> list[Model]:
    """Every ``*.sql`` model in ``folder``, in an order where each model follows its inputs.

    ``available`` are the tables that exist before any model runs (the raw tables).
    """
    if not folder.is_dir():
        raise TransformError(f"Models folder {folder} does not exist; create it or fix 'models:'.")
    models = {
        m.name: m for m in (parse_model(p, database=database) for p in sorted(folder.glob("*.sql")))
    }
    outputs = {m.table for m in models.values()}
    known = available | outputs
    graph: dict[str, set[str]] = {}
    for model in models.values():
        for ref in sorted(model.reads, key=str):
            if ref not in known:
                raise TransformError(
                    f"Model {model.name} ({model.path.name}) reads {ref}, which is neither a "
                    f"source table nor a model.{did_you_mean(str(ref), sorted(map(str, known)))}"
                )
        graph[model.name] = {ref.name for ref in model.reads if ref in outputs}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise TransformError(
            f"Models depend on each other in a cycle: {cycle}; break it by removing one reference."
        ) from exc
    return [models[name] for name in order]


def model_failure(model: Model, message: str) -> TransformError:
    """The error of a model whose SQL failed with DuckDB's ``message``; a column its input
    tables lack (dropped in the source, say) is named as such.

    >>> m = Model("dim_x", Path("dim_x.sql"), "", TableName("gold", "dim_x"),
    ...           frozenset({TableName("raw", "x")}))
    >>> print(model_failure(m, 'Binder Error: Referenced column "tier" not found').message)
    Model dim_x (dim_x.sql) reads column tier, which raw.x does not have (dropped in the source?).
    """
    first = message.splitlines()[0] if message else message
    missing = _MISSING_COLUMN.search(first)
    if missing:
        column = missing["a"] or missing["b"]
        inputs = ", ".join(sorted(map(str, model.reads))) or "its input tables"
        return TransformError(
            f"Model {model.name} ({model.path.name}) reads column {column}, which {inputs} "
            f"does not have (dropped in the source?).",
            hint=f"Change {model.path} to do without it and rerun the job.",
        )
    return TransformError(
        f"Model {model.name} ({model.path.name}) failed: {first}",
        hint=f"Fix {model.path} and rerun the job.",
    )

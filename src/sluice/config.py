"""The project file (``sluice.yml``): one validated, frozen model, read once at the edge.

Secrets are never values in the file: a URL may hold ``${env:NAME}`` references, which
are resolved only when a connection is opened and shown as ``***`` everywhere else.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from sluice.errors import ConfigError, ProjectNotFoundError, did_you_mean

PROJECT_FILE = "sluice.yml"
SCHEMA_FILE = "sluice.schema.json"
SCHEMA_COMMENT = f"# yaml-language-server: $schema={SCHEMA_FILE}"
_SECRET_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Model):
    """A source system, by URL (``sqlite:///file.db``; servers come with secret references)."""

    url: str


class LakeConfig(_Model):
    """Where table data and metadata live: a folder (relative to the project) or an
    ``s3://bucket/prefix`` URI.

    For S3, ``endpoint`` names an S3-compatible server (default: AWS) and ``region`` its
    region; credentials come from the environment (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), never from this file.
    """

    warehouse: str = "warehouse"
    endpoint: str | None = None
    region: str | None = None
    keep_snapshots: Annotated[int, Field(ge=1)] = 10

    @field_validator("warehouse")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if "://" in value and not value.startswith(("file://", "s3://")):
            raise ValueError("must be a folder or an s3://bucket/prefix URI")
        if value.startswith("s3://") and not value.removeprefix("s3://").split("/")[0]:
            raise ValueError("names no bucket; write s3://bucket/prefix")
        return value


class CatalogConfig(_Model):
    """The Iceberg SQL catalog, by URL: a SQLite file (default, in ``.sluice/``) or a
    PostgreSQL database shared by several projects (``postgresql://user:${env:PW}@host/db``).

    ``uri`` is accepted as the key's former name.
    """

    url: Annotated[str, Field(validation_alias=AliasChoices("url", "uri"))] = (
        "sqlite:///.sluice/catalog.db"
    )

    @field_validator("url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value


class ReconcileCheck(_Model):
    """The model's totals must equal the same totals computed on another table."""

    source: str
    count: bool = True
    sums: dict[str, str] = Field(default_factory=dict)


class ForeignKeyCheck(_Model):
    """Every non-null value of ``column`` exists exactly once in ``references`` (table.column)."""

    column: str
    references: str
    required: bool = True


class CheckSpec(_Model):
    """One built-in check on a model; exactly one of the kinds is set."""

    unique: list[str] | None = None
    not_null: list[str] | None = None
    reconcile: ReconcileCheck | None = None
    foreign_key: ForeignKeyCheck | None = None
    sql: str | None = None
    name: str | None = None
    severity: Literal["error", "warn"] = "error"

    @field_validator("sql")
    @classmethod
    def _sql_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be a SELECT that returns the bad rows")
        return value

    def kind(self) -> str:
        """The kind of check this spec declares."""
        kinds = [
            k for k in ("unique", "not_null", "reconcile", "foreign_key", "sql") if getattr(self, k)
        ]
        if len(kinds) != 1:
            raise ConfigError(
                "Each check sets exactly one of unique, not_null, reconcile, foreign_key, sql; "
                f"got {kinds or 'none'}."
            )
        return kinds[0]


class RetryConfig(_Model):
    """How a job retries transient failures: a source that is down or drops the connection.

    Waits grow exponentially from ``initial_seconds`` up to ``max_seconds``, with jitter, until
    ``attempts`` tries or ``budget_seconds`` have passed; then the run fails.
    """

    attempts: Annotated[int, Field(ge=1)] = 5
    initial_seconds: Annotated[float, Field(gt=0)] = 1.0
    max_seconds: Annotated[float, Field(gt=0)] = 30.0
    budget_seconds: Annotated[float, Field(gt=0)] = 300.0


_INTERVAL = re.compile(
    r"\d+(\.\d+)?\s*(microsecond|millisecond|second|minute|hour|day|week|month|year)s?",
    re.IGNORECASE,
)


class IncrementalSpec(_Model):
    """Incremental extraction of one table: read only rows past the last cursor, merge by key.

    ``lookback`` re-reads that much before the last cursor (rows committed late in the source,
    equal cursor values at a batch boundary): a number in the cursor's units, or an interval
    such as ``"10 minutes"`` for a date or timestamp cursor.
    """

    cursor: Annotated[str, Field(min_length=1)]
    primary_key: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    lookback: Annotated[float, Field(ge=0)] | str = 0

    @field_validator("lookback")
    @classmethod
    def _interval(cls, value: float | str) -> float | str:
        if isinstance(value, str) and not _INTERVAL.fullmatch(value.strip()):
            raise ValueError("must be a number of cursor units or an interval like '10 minutes'")
        return value.strip() if isinstance(value, str) else value


class CdcSpec(_Model):
    """Change data capture of one table: apply the inserts, updates and deletes that the
    source's change log (``sluice source enable-cdc``) recorded since the last run.

    ``primary_key`` names the columns the log records changes by (the source table's primary
    key). ``deletes``: ``delete`` removes a deleted row from raw; ``mark`` keeps it, with the
    time it was deleted in ``_sluice_deleted_at`` (NULL for live rows).
    """

    primary_key: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    deletes: Literal["delete", "mark"] = "delete"


DriftPolicy = Literal["evolve", "warn", "fail"]


class SchemaDriftConfig(_Model):
    """What a run does when a source table's columns no longer match its raw table.

    ``evolve`` adds new columns, keeps dropped ones (NULL from then on) and widens types;
    ``warn`` does the same and logs each change as a warning; ``fail`` quarantines the table
    on any change. Incompatible type changes and primary key changes always quarantine.
    ``tables`` overrides ``default`` per source table.
    """

    default: DriftPolicy = "evolve"
    tables: dict[str, DriftPolicy] = Field(default_factory=dict)


class ScheduleConfig(_Model):
    """When the scheduler starts a job: a cron expression read in ``timezone``.

    ``missed`` says what to do with slots that passed while no scheduler was running:
    ``run_once`` starts one catch-up run for the latest of them, ``skip`` starts none.
    Both record every missed slot.
    """

    cron: str
    timezone: str = "UTC"
    missed: Literal["run_once", "skip"] = "run_once"

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str) -> str:
        from croniter import croniter

        try:
            croniter(value)
        except (ValueError, KeyError) as exc:
            raise ValueError(
                f"is not a cron expression ({exc}); use five fields: minute hour day-of-month "
                "month day-of-week, e.g. '*/15 * * * *'"
            ) from exc
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_exists(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                "is not a time zone; use an IANA name such as UTC or Europe/Paris"
            ) from exc
        return value


class JobConfig(_Model):
    """An ETL job: extract a source's tables into raw, build the models, check, publish."""

    source: str
    tables: list[str] | Literal["all"] = "all"
    raw_database: Annotated[str, Field(pattern=_IDENT)] = "raw"
    gold_database: Annotated[str, Field(pattern=_IDENT)] = "gold"
    models: str = "models"
    timeout_minutes: Annotated[float, Field(gt=0)] = 60.0
    task_timeout_minutes: Annotated[float, Field(gt=0)] | None = None
    max_concurrent_runs: Annotated[int, Field(ge=1)] = 1
    when_busy: Literal["refuse", "queue"] = "refuse"
    memory_limit: str | None = None
    threads: Annotated[int, Field(ge=1)] | None = None
    concurrency: Annotated[int, Field(ge=1)] | None = None
    retry: RetryConfig = RetryConfig()
    incremental: dict[str, IncrementalSpec] = Field(default_factory=dict)
    cdc: dict[str, CdcSpec] = Field(default_factory=dict)
    schema_drift: SchemaDriftConfig = SchemaDriftConfig()

    schedule: ScheduleConfig | None = None


class QueryLimits(_Model):
    """Bounds of query executions: each query's time and rows; DuckDB's memory and threads
    (shared by the queries running at once); the pool size; how many results are kept, and
    for how many days finished executions stay in the history (Athena keeps 45)."""

    timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    max_rows: Annotated[int, Field(ge=1)] = 1_000_000
    memory_limit: str = "1GB"
    threads: Annotated[int, Field(ge=1)] = 2
    workers: Annotated[int, Field(ge=1)] = 4
    keep_results: Annotated[int, Field(ge=1)] = 200
    keep_history_days: Annotated[int, Field(ge=1)] = 45


class PgEndpointConfig(_Model):
    """``sluice serve --pg-port``: the PostgreSQL-protocol endpoint (off unless a port is set).

    Clients log in as ``user`` with the password held in the environment variable named by
    ``password_env``."""

    port: Annotated[int | None, Field(ge=0, le=65535)] = None
    user: Annotated[str, Field(min_length=1)] = "sluice"
    password_env: Annotated[str, Field(min_length=1)] = "SLUICE_PG_PASSWORD"


class ServeConfig(_Model):
    """``sluice serve``: where it listens and the limits of its queries."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8787
    queries: QueryLimits = QueryLimits()
    pg: PgEndpointConfig = PgEndpointConfig()


class CrawlerConfig(_Model):
    """A crawler, as in Glue: registers the datasets under ``target`` (a folder, or an
    ``s3://bucket/prefix`` when the warehouse is in S3) as tables of ``database``.

    ``update_behavior``: a file with new columns evolves the table (UPDATE_IN_DATABASE) or is
    left out and reported (LOG). ``delete_behavior``: a table whose folder is gone is dropped
    (DELETE_FROM_DATABASE), marked deprecated (DEPRECATE_IN_DATABASE) or only reported (LOG).
    ``recrawl``: CRAWL_NEW_FOLDERS_ONLY leaves tables already crawled as they are.
    """

    target: Annotated[str, Field(min_length=1)]
    database: Annotated[str, Field(pattern=_IDENT)]
    update_behavior: Literal["LOG", "UPDATE_IN_DATABASE"] = "UPDATE_IN_DATABASE"
    delete_behavior: Literal["LOG", "DELETE_FROM_DATABASE", "DEPRECATE_IN_DATABASE"] = (
        "DEPRECATE_IN_DATABASE"
    )
    recrawl: Literal["CRAWL_EVERYTHING", "CRAWL_NEW_FOLDERS_ONLY"] = "CRAWL_EVERYTHING"

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if "://" in value and not value.startswith(("file://", "s3://")):
            raise ValueError("must be a folder or an s3://bucket/prefix URI")
        return value


class ProjectConfig(_Model):
    """The whole project file."""

    name: str
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    lake: LakeConfig = LakeConfig()
    catalog: CatalogConfig = CatalogConfig()
    jobs: dict[str, JobConfig] = Field(default_factory=dict)
    checks: dict[str, list[CheckSpec]] = Field(default_factory=dict)
    crawlers: dict[str, CrawlerConfig] = Field(default_factory=dict)
    serve: ServeConfig = ServeConfig()


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the project file, for editors that complete and check YAML.

    >>> json_schema()["properties"]["lake"]["$ref"]
    '#/$defs/LakeConfig'
    """
    schema = ProjectConfig.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": f"Sluice project file ({PROJECT_FILE})",
    }


def find_project_root(start: str | Path | None = None) -> Path:
    """Return the folder holding ``sluice.yml``: ``start`` (default: cwd) or a parent."""
    origin = Path(start or os.environ.get("SLUICE_PROJECT") or Path.cwd()).resolve()
    if origin.is_file():
        origin = origin.parent
    for folder in (origin, *origin.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    raise ProjectNotFoundError(
        f"No {PROJECT_FILE} in {origin} or any parent folder.",
        hint="Run inside a project, pass --project DIR, or create one with "
        "'sluice init DIR --example classicmodels'.",
    )


def load_config(path: Path) -> ProjectConfig:
    """Read and validate a project file; errors name the key, its line and what was expected."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}.") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path.name} is not valid YAML{where}; fix the syntax there.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} must be a mapping with at least 'name:'.")
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, text, path.name)) from exc


def _describe_validation_error(exc: ValidationError, text: str, filename: str) -> str:
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    key = ".".join(str(part) for part in loc) or "(top level)"
    line = _line_of(text, loc)
    where = f"{filename}, line {line}" if line else filename
    if first["type"] == "extra_forbidden":
        hint = did_you_mean(str(loc[-1]), _keys_beside(loc)) if loc else ""
        return f"{where}: unknown key '{key}'; remove it or check its spelling.{hint}"
    if first["type"] == "missing":
        return f"{where}: '{key}' is required."
    if first["type"] == "value_error":
        return f"{where}: '{key}' {first['ctx']['error']} (got {first.get('input')!r})."
    return f"{where}: '{key}' {first['msg'].lower()} (got {first.get('input')!r})."


def _keys_beside(loc: tuple[Any, ...]) -> list[str]:
    """The keys the project file allows where ``loc`` ends (for "did you mean")."""
    candidates: list[Any] = [ProjectConfig]
    for part in loc[:-1]:
        found: list[Any] = []
        for kind in candidates:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                field = kind.model_fields.get(str(part))
                if field is not None:
                    found.append(field.annotation)
            else:
                found.extend(get_args(kind))  # a key of a dict, an item of a list, a union
        candidates = _expand(found)
    models = [k for k in candidates if isinstance(k, type) and issubclass(k, BaseModel)]
    return sorted({name for model in models for name in model.model_fields})


def _expand(kinds: list[Any]) -> list[Any]:
    """Types with unions, ``Annotated`` and generic containers opened one level."""
    opened: list[Any] = []
    for kind in kinds:
        opened.append(kind)
        if not (isinstance(kind, type) and issubclass(kind, BaseModel)):
            opened.extend(a for a in get_args(kind) if not isinstance(a, str))
    return opened


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """Find the 1-based line of a key path in YAML text, or None."""
    try:
        node: Any = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == str(part)), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def resolve_secrets(text: str) -> str:
    """Replace ``${env:NAME}`` references with the environment's values.

    >>> os.environ["SLUICE_DOCTEST_PW"] = "s3cret"
    >>> resolve_secrets("mysql://u:${env:SLUICE_DOCTEST_PW}@db/x")
    'mysql://u:s3cret@db/x'
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(
                f"Secret reference ${{env:{name}}} is not set: looked in the environment "
                f"variable {name}.",
                hint=f"export {name}=... before running sluice.",
            )
        return os.environ[name]

    return _SECRET_REF.sub(value, text)


def redact(text: str) -> str:
    """Show a URL without secrets: references and inline passwords become ``***``.

    >>> redact("postgresql://me:${env:PW}@host/db")
    'postgresql://me:***@host/db'
    """
    text = _SECRET_REF.sub("***", text)
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", text)

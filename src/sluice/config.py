"""The project file (``sluice.yml``): one validated, frozen model, read once at the edge.

Secrets are never values in the file: a URL may hold ``${env:NAME}`` references, which
are resolved only when a connection is opened and shown as ``***`` everywhere else.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sluice.errors import ConfigError, ProjectNotFoundError

PROJECT_FILE = "sluice.yml"
_SECRET_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Model):
    """A source system, by URL (``sqlite:///file.db``; servers come with secret references)."""

    url: str


class LakeConfig(_Model):
    """Where table data and metadata live: a folder (relative to the project) or a URI."""

    warehouse: str = "warehouse"
    keep_snapshots: Annotated[int, Field(ge=1)] = 10


class CatalogConfig(_Model):
    """The Iceberg SQL catalog; by default a SQLite file in ``.sluice/``."""

    uri: str = "sqlite:///.sluice/catalog.db"


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


class JobConfig(_Model):
    """An ETL job: extract a source's tables into raw, build the models, check, publish."""

    source: str
    tables: list[str] | Literal["all"] = "all"
    raw_database: Annotated[str, Field(pattern=_IDENT)] = "raw"
    gold_database: Annotated[str, Field(pattern=_IDENT)] = "gold"
    models: str = "models"
    timeout_minutes: Annotated[float, Field(gt=0)] = 60.0
    memory_limit: str | None = None
    threads: Annotated[int, Field(ge=1)] | None = None
    concurrency: Annotated[int, Field(ge=1)] | None = None


class ProjectConfig(_Model):
    """The whole project file."""

    name: str
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    lake: LakeConfig = LakeConfig()
    catalog: CatalogConfig = CatalogConfig()
    jobs: dict[str, JobConfig] = Field(default_factory=dict)
    checks: dict[str, list[CheckSpec]] = Field(default_factory=dict)


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
        return f"{where}: unknown key '{key}'; remove it or check its spelling."
    if first["type"] == "missing":
        return f"{where}: '{key}' is required."
    return f"{where}: '{key}' {first['msg'].lower()} (got {first.get('input')!r})."


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

"""The ``Project``: one facade that the CLI, the Python API and the tests all call."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.config import PROJECT_FILE, ProjectConfig, find_project_root, load_config
from sluice.core import TableName
from sluice.errors import ConfigError, SourceError
from sluice.jobs.runner import RunEnvironment
from sluice.jobs.service import JobService
from sluice.lake.catalog import Lake, TableDescription, TableInfo, sqlalchemy_url
from sluice.lake.publications import PublicationStore
from sluice.query.engine import QueryEngine, QueryResult

if TYPE_CHECKING:
    from sluice.jobs.store import JobRun
    from sluice.observe.progress import Progress

EXAMPLES = ("classicmodels",)
STATE_DIR = ".sluice"
DEFAULT_SOURCE = "source/classicmodels.db"


@dataclass(frozen=True)
class InitResult:
    """What ``Project.init`` created."""

    root: Path
    source_url: str
    generated_rows: dict[str, int] | None


class Project:
    """A Sluice project folder: its config, lake, job runs and query engine."""

    def __init__(self, root: Path, config: ProjectConfig) -> None:
        self.root = root
        self.config = config

    @classmethod
    def open(cls, path: str | Path | None = None) -> Project:
        """Open the project in ``path`` (default: the current folder or a parent)."""
        root = find_project_root(path)
        return cls(root, load_config(root / PROJECT_FILE))

    @property
    def state_dir(self) -> Path:
        """``.sluice/``: catalog, run records, logs, scratch space."""
        return self.root / STATE_DIR

    @property
    def warehouse(self) -> Path:
        """The folder Iceberg data and metadata are written to."""
        path = Path(self.config.lake.warehouse)
        return path if path.is_absolute() else self.root / path

    @cached_property
    def catalog_url(self) -> str:
        """The catalog's SQLAlchemy URL, relative SQLite paths resolved."""
        return sqlalchemy_url(self.config.catalog.uri, root=self.root)

    @cached_property
    def lake(self) -> Lake:
        """The Iceberg catalog and warehouse."""
        return Lake(
            catalog_uri=self.catalog_url,
            warehouse=self.warehouse,
            keep_snapshots=self.config.lake.keep_snapshots,
        )

    @cached_property
    def publications(self) -> PublicationStore:
        """Which table snapshots readers use."""
        return PublicationStore(self.catalog_url)

    @cached_property
    def jobs(self) -> JobService:
        """Job runs: start, status, history, logs, stop."""
        from sluice.jobs.store import RunStore

        env = RunEnvironment(
            root=self.root,
            config=self.config,
            store=RunStore(self.state_dir / "runs.db"),
            lake=self.lake,
            publications=self.publications,
            temp_dir=self.state_dir / "tmp",
        )
        return JobService(env, logs_dir=self.state_dir / "logs")

    @cached_property
    def query_engine(self) -> QueryEngine:
        """Read-only SQL over the published tables."""
        return QueryEngine(self.lake, self.publications)

    def run_job(
        self,
        name: str,
        *,
        wait: bool = True,
        progress: Progress | None = None,
        timeout_minutes: float | None = None,
    ) -> JobRun:
        """Start a job run; with ``wait`` (the default here) run it to the end."""
        return self.jobs.start(name, wait=wait, progress=progress, timeout_minutes=timeout_minutes)

    def query(
        self, sql: str, *, database: str = "gold", max_rows: int | None = None
    ) -> QueryResult:
        """Run a read-only query over the published tables."""
        return self.query_engine.run(sql, database=database, max_rows=max_rows)

    def tables(self, database: str | None = None) -> list[TableInfo]:
        """Tables in the catalog (one database, or all)."""
        return self.lake.tables(database)

    def describe(self, table: str) -> TableDescription:
        """Columns, row count and snapshot history of ``db.table`` (or a gold table)."""
        return self.lake.describe(TableName.parse(table))

    @staticmethod
    def init(
        directory: str | Path,
        *,
        example: str = "classicmodels",
        source_url: str | None = None,
        scale: int = 1,
        seed: int = 42,
    ) -> InitResult:
        """Write a ready project for an example into ``directory`` (new or empty).

        By default the source is a freshly generated SQLite database inside the project;
        ``source_url`` (``sqlite:///path``) uses an existing one instead.
        """
        if example not in EXAMPLES:
            raise ConfigError(f"Unknown example '{example}'; choose one of: {', '.join(EXAMPLES)}.")
        root = Path(directory).resolve()
        if (root / PROJECT_FILE).exists():
            raise ConfigError(
                f"{root} already holds a Sluice project.",
                hint="Use it as it is, or pick a new folder for 'sluice init'.",
            )
        if root.exists() and any(root.iterdir()):
            raise ConfigError(f"{root} is not empty; 'sluice init' needs a new or empty folder.")
        url = _checked_source_url(source_url) if source_url else f"sqlite:///{DEFAULT_SOURCE}"
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
        try:
            _copy_example(example, staging, source_url=url)
            generated = None
            if source_url is None:
                from sluice.sources.classicmodels import generate_classicmodels

                generated = generate_classicmodels(staging / DEFAULT_SOURCE, scale=scale, seed=seed)
            if root.exists():
                root.rmdir()
            os.replace(staging, root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return InitResult(root, url, generated)


def _checked_source_url(url: str) -> str:
    from sluice.sources.base import open_source
    from sluice.sources.sqlite import sqlite_path

    source = open_source(url, base_dir=Path.cwd())
    source.tables()
    if url.startswith("sqlite:"):
        return f"sqlite:///{sqlite_path(url, base_dir=Path.cwd()).resolve()}"
    return url


def _copy_example(example: str, target: Path, *, source_url: str) -> None:
    template = resources.files("sluice.examples") / example
    for item in _walk(template):
        relative = item[0]
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        text = item[1].read_text(encoding="utf-8")
        if relative == PROJECT_FILE:
            text = text.replace("{source_url}", source_url)
        destination.write_text(text, encoding="utf-8")
    if not (target / PROJECT_FILE).is_file():
        raise SourceError(f"Example {example} is missing its {PROJECT_FILE}; reinstall sluice.")


def _walk(
    folder: resources.abc.Traversable, prefix: str = ""
) -> list[tuple[str, resources.abc.Traversable]]:
    found: list[tuple[str, resources.abc.Traversable]] = []
    for item in folder.iterdir():
        name = f"{prefix}{item.name}"
        if item.is_dir():
            if item.name != "__pycache__":
                found.extend(_walk(item, f"{name}/"))
        elif not item.name.endswith((".pyc", ".py")):
            found.append((name, item))
    return found

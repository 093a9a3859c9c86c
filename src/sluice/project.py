"""The ``Project``: one facade that the CLI, the Python API and the tests all call."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.config import (
    PROJECT_FILE,
    SCHEMA_COMMENT,
    SCHEMA_FILE,
    ProjectConfig,
    find_project_root,
    json_schema,
    load_config,
    resolve_secrets,
)
from sluice.core import TableName
from sluice.errors import ConfigError, NotFoundError, SourceError, did_you_mean
from sluice.jobs.runner import RunEnvironment
from sluice.jobs.service import JobService
from sluice.lake.catalog import Lake, TableDescription, TableInfo, sqlalchemy_url
from sluice.lake.publications import PublicationStore
from sluice.lake.s3 import is_s3
from sluice.query.engine import Parameters, QueryEngine, QueryResult

if TYPE_CHECKING:
    import threading

    from sluice.catalog.crawler import CrawlReport
    from sluice.config import QueryLimits
    from sluice.infra.apply import ApplyResult
    from sluice.infra.plan import Plan
    from sluice.jobs.scheduler import Clock, Scheduler, ScheduleStatus
    from sluice.jobs.store import JobRun
    from sluice.observe.progress import Progress
    from sluice.query.executions import QueryExecutions
    from sluice.query.history import QueryExecution, QueryHistory
    from sluice.sources.cdc import CdcTable
    from sluice.sources.check import SourceReport
    from sluice.sources.simulate import Activity, SimulationReport

EXAMPLES = ("classicmodels",)
STATE_DIR = ".sluice"
DEFAULT_SOURCE = "source/classicmodels.db"


@dataclass(frozen=True)
class InitResult:
    """What ``Project.init`` created."""

    root: Path
    source_url: str
    generated_rows: dict[str, int] | None
    created: bool = True


@dataclass(frozen=True)
class CdcTrim:
    """What ``Project.trim_cdc`` found: each CDC raw table's committed log position (None
    when it has none yet, and will read in full) and the changes deleted (or, for a dry
    run, that would be)."""

    positions: dict[str, str | None]
    deleted: int
    dry_run: bool


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
        """The folder Iceberg data and metadata are written to; for an ``s3://`` warehouse,
        the folder data files are staged in before they are uploaded."""
        if is_s3(self.config.lake.warehouse):
            return self.state_dir / "staging"
        path = Path(self.config.lake.warehouse)
        return path if path.is_absolute() else self.root / path

    @cached_property
    def catalog_url(self) -> str:
        """The catalog's SQLAlchemy URL, relative SQLite paths resolved."""
        return sqlalchemy_url(resolve_secrets(self.config.catalog.url), root=self.root)

    @cached_property
    def lake(self) -> Lake:
        """The Iceberg catalog and warehouse."""
        lake = self.config.lake
        s3 = None
        if is_s3(lake.warehouse):
            from sluice.lake.s3 import S3Warehouse

            s3 = S3Warehouse(lake.warehouse, endpoint=lake.endpoint, region=lake.region)
        return Lake(
            catalog_uri=self.catalog_url,
            warehouse=self.warehouse,
            keep_snapshots=lake.keep_snapshots,
            s3=s3,
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

    def scheduler(self, *, now: Clock | None = None) -> Scheduler:
        """The scheduler of this project's job schedules (``now``: the clock, for tests)."""
        from sluice.jobs.scheduler import Scheduler
        from sluice.jobs.slots import SlotStore
        from sluice.jobs.store import utcnow

        slots = SlotStore(self.state_dir / "runs.db")
        return Scheduler(self.config, self.jobs, slots, now=now or utcnow)

    def schedules(self, *, count: int = 3) -> list[ScheduleStatus]:
        """Each scheduled job's next ``count`` slots and its last handled slot."""
        return self.scheduler().status(count=count)

    def run_scheduler(
        self,
        *,
        tick_seconds: float | None = None,
        on_ready: Callable[[], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Start scheduled jobs at their slots until SIGINT/SIGTERM (or ``stop``); one
        scheduler per project (``.sluice/scheduler.lock``)."""
        from sluice.jobs.scheduler import DEFAULT_TICK_SECONDS, run_scheduler

        run_scheduler(
            self.scheduler(),
            lock_path=self.state_dir / "scheduler.lock",
            tick_seconds=DEFAULT_TICK_SECONDS if tick_seconds is None else tick_seconds,
            on_ready=on_ready,
            stop=stop,
        )

    @cached_property
    def query_engine(self) -> QueryEngine:
        """Read-only SQL over the published tables."""
        return QueryEngine(self.lake, self.publications)

    @cached_property
    def query_history(self) -> QueryHistory:
        """Query executions recorded in ``.sluice/runs.db``."""
        from sluice.query.history import QueryHistory

        return QueryHistory(self.state_dir / "runs.db")

    def query_executions(self, limits: QueryLimits | None = None) -> QueryExecutions:
        """A pool that runs query executions, as Athena does (call ``close`` when done).

        ``limits`` default to ``serve.queries`` in the project file.
        """
        from sluice.query.executions import QueryExecutions

        return QueryExecutions(
            self.query_engine,
            self.query_history,
            self.state_dir / "queries",
            limits or self.config.serve.queries,
        )

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
        self,
        sql: str,
        *,
        database: str = "gold",
        max_rows: int | None = None,
        parameters: Parameters = None,
    ) -> QueryResult:
        """Run a read-only query over the published tables."""
        return self.query_engine.run(
            sql, database=database, max_rows=max_rows, parameters=parameters
        )

    def queries(self, *, limit: int = 50) -> list[QueryExecution]:
        """Recorded query executions, newest first."""
        return self.query_history.recent(limit=limit)

    def check_source(self, name: str | None = None) -> SourceReport:
        """Connect to a source (the only one, or ``name``): tables, row counts, privileges."""
        from sluice.sources.base import open_source
        from sluice.sources.check import check_source

        name, url = self._source(name)
        return check_source(name, open_source(url, base_dir=self.root))

    def simulate(self, activity: Activity, source: str | None = None) -> SimulationReport:
        """Apply live activity (orders, updates, deletes, drift, an outage) to a source."""
        from sluice.sources.simulate import simulate

        return simulate(self._source(source)[1], activity, base_dir=self.root)

    def enable_cdc(
        self, source: str | None = None, *, tables: Sequence[str] | None = None
    ) -> list[CdcTable]:
        """Capture inserts, updates and deletes of a source's tables in a change log, by
        trigger (default tables: those under ``jobs.<job>.cdc`` of the jobs reading it)."""
        from sluice.sources.cdc import enable_cdc

        name, url = self._source(source)
        if not tables:
            tables = sorted(
                {t for job in self.config.jobs.values() if job.source == name for t in job.cdc}
            )
        return enable_cdc(url, tables, base_dir=self.root)

    def disable_cdc(self, source: str | None = None) -> list[str]:
        """Remove a source's change capture triggers and change log; return the tables
        whose changes were captured."""
        from sluice.sources.cdc import disable_cdc

        return disable_cdc(self._source(source)[1], base_dir=self.root)

    def trim_cdc(self, source: str | None = None, *, dry_run: bool = False) -> CdcTrim:
        """Delete from a source's change log the changes every CDC table of this project's
        jobs has applied (below the lowest committed log position)."""
        from sluice.ingest.cdc import CDC_CURSOR
        from sluice.sources.cdc import LogPosition, trim_log

        name, url = self._source(source)
        tables = sorted(
            {
                TableName(job.raw_database, table)
                for job in self.config.jobs.values()
                if job.source == name
                for table in job.cdc
            },
            key=str,
        )
        if not tables:
            raise ConfigError(
                f"No job reads source '{name}' with CDC, so no position tells what was applied.",
                hint="List the tables under jobs.<job>.cdc in sluice.yml.",
            )
        positions = {str(t): self.lake.cursor(t, CDC_CURSOR)[0].value for t in tables}
        applied = [p for v in positions.values() if (p := LogPosition.parse(v)) is not None]
        deleted = trim_log(url, applied, base_dir=self.root, dry_run=dry_run)
        return CdcTrim(positions, deleted, dry_run)

    def _source(self, name: str | None) -> tuple[str, str]:
        """The name and URL of a declared source: ``name``, or the only one."""
        names = sorted(self.config.sources)
        if name is None and len(names) == 1:
            name = names[0]
        if name not in self.config.sources:
            raise NotFoundError(
                f"Source '{name}' is not declared in {PROJECT_FILE}."
                f"{did_you_mean(name or '', names)}",
                hint=f"Sources: {', '.join(names) or 'none'}.",
            )
        return name, self.config.sources[name].url

    def tables(self, database: str | None = None) -> list[TableInfo]:
        """Tables in the catalog (one database, or all)."""
        return self.lake.tables(database)

    def describe(self, table: str) -> TableDescription:
        """Columns, row count and snapshot history of ``db.table`` (or a gold table)."""
        return self.lake.describe(TableName.parse(table))

    def crawl(self, name: str, *, dry_run: bool = False) -> CrawlReport:
        """Run the crawler ``name`` from sluice.yml; ``dry_run`` reports without changing."""
        from sluice.catalog.crawler import crawl

        crawlers = self.config.crawlers
        if name not in crawlers:
            raise NotFoundError(
                f"Crawler '{name}' is not declared in {PROJECT_FILE}."
                f"{did_you_mean(name, crawlers)}",
                hint=f"Crawlers: {', '.join(sorted(crawlers)) or 'none; add one under crawlers:'}.",
            )

        def run() -> CrawlReport:
            return crawl(
                name,
                crawlers[name],
                root=self.root,
                lake=self.lake,
                publications=self.publications,
                dry_run=dry_run,
            )

        if dry_run:
            return run()
        from sluice.lock import ProcessLock

        lock = ProcessLock(
            self.state_dir / f"crawler-{name}.lock",
            what=f"crawl of {name}",
            hint="Wait for it to finish, then crawl again.",
        )
        with lock:
            return run()

    @property
    def state_path(self) -> Path:
        """``.sluice/state.json``: the resources ``apply`` has made."""
        return self.state_dir / "state.json"

    def plan(self, *, destroy: bool = False, keep_data: bool = False) -> Plan:
        """Compare sluice.yml with what exists; ``destroy`` plans removing what Sluice made."""
        from sluice.infra.inventory import declared_resources, observe
        from sluice.infra.plan import destroy_diff, diff
        from sluice.infra.state import load_state

        declared = declared_resources(self.config, self.root)
        current = observe(
            declared,
            root=self.root,
            lake=self.lake,
            state=load_state(self.state_path),
            state_path=self.state_path,
        )
        if destroy:
            return destroy_diff(current, project=str(self.root), keep_data=keep_data)
        return diff(declared, current, project=str(self.root))

    def apply(self, plan: Plan | None = None) -> ApplyResult:
        """Apply ``plan`` (default: a fresh one); refuses a plan whose base state moved."""
        from sluice.infra.apply import Target, apply_plan

        target = Target(
            root=self.root,
            lake=self.lake,
            state_path=self.state_path,
            lock_path=self.state_dir / "apply.lock",
        )
        return apply_plan(plan or self.plan(), target)

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
        ``source_url`` (``sqlite:///path``) uses an existing one instead. Run again on the
        project, it changes nothing but an outdated or missing ``sluice.schema.json``.
        """
        if example not in EXAMPLES:
            raise ConfigError(f"Unknown example '{example}'; choose one of: {', '.join(EXAMPLES)}.")
        root = Path(directory).resolve()
        if (root / PROJECT_FILE).exists():
            return _reinit(root, source_url)
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


def _reinit(root: Path, source_url: str | None) -> InitResult:
    """``init`` on an existing project: check it, refresh its schema file, change nothing else."""
    config = load_config(root / PROJECT_FILE)
    urls = [source.url for source in config.sources.values()]
    if source_url is not None and _checked_source_url(source_url) not in urls:
        raise ConfigError(
            f"{root} already holds a Sluice project, with other sources than {source_url}.",
            hint="Edit its sluice.yml to change a source, or pick a new folder for 'sluice init'.",
        )
    _write_schema(root)
    return InitResult(root, urls[0] if urls else "", None, created=False)


def _write_schema(folder: Path) -> None:
    """Write ``sluice.schema.json`` unless it is already up to date (atomically)."""
    text = json.dumps(json_schema(), indent=2) + "\n"
    path = folder / SCHEMA_FILE
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    temp = path.with_name(f".{SCHEMA_FILE}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


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
            text = f"{SCHEMA_COMMENT}\n" + text.replace("{source_url}", source_url)
        destination.write_text(text, encoding="utf-8")
    _write_schema(target)
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

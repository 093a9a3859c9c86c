"""The ingestion section of ``make bench``: full extraction throughput from SQLite, MariaDB and
PostgreSQL beside connectorx, and an incremental run after 1% new order lines.

``bench/run.py`` calls ``measure_extraction`` and ``measure_incremental`` with its own
measuring function (every contender is a subprocess timed by ``bench/spawn_measured.py``) and
prints the figures with their targets. See bench/README.md, "Ingestion".
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from measures import Measured, median_s, other_cores, peak_rss_mib

SOURCES = ("sqlite", "mysql", "postgresql")
SERVER_ENV = {"mysql": "SLUICE_TEST_MYSQL_URL", "postgresql": "SLUICE_TEST_POSTGRES_URL"}
INCREMENTAL_SCALE = 1000
NEW_LINES = 0.01  # the share of order lines added before the incremental run
INCREMENTAL = {
    "orders": {"cursor": "orderNumber", "primary_key": ["orderNumber"]},
    "orderdetails": {"cursor": "orderNumber", "primary_key": ["orderNumber", "productCode"]},
}
# The second configuration measured: every other table under change data capture.
CAPTURED = {
    "customers": {"primary_key": ["customerNumber"]},
    "employees": {"primary_key": ["employeeNumber"]},
    "offices": {"primary_key": ["officeCode"]},
    "payments": {"primary_key": ["customerNumber", "checkNumber"]},
    "productlines": {"primary_key": ["productLine"]},
    "products": {"primary_key": ["productCode"]},
}


Measure = Callable[[Sequence[str | Path], Path], Measured]
Progress = Callable[[str], None]


@dataclass
class Contender:
    """Timed runs of one contender on one source."""

    runs: list[Measured] = field(default_factory=list)
    unavailable: str | None = None
    stage_s: list[float] = field(default_factory=list)
    """Per timed run: seconds from the first source read to the last Parquet file written."""

    @property
    def median_s(self) -> float | None:
        return median_s(self.runs)

    @property
    def median_stage_s(self) -> float | None:
        return statistics.median(self.stage_s) if self.stage_s else None

    @property
    def peak_rss_mib(self) -> float | None:
        return peak_rss_mib(self.runs)

    @property
    def other_cores(self) -> float | None:
        return other_cores(self.runs)


@dataclass
class Extraction:
    """Full extraction of one source at one scale: Sluice and connectorx."""

    source: str
    scale: int
    rows: int
    sluice: Contender
    peer: Contender
    unavailable: str | None = None

    def rows_per_s(self, contender: Contender) -> float | None:
        median = contender.median_s
        return self.rows / median if median else None

    def stage_rows_per_s(self, contender: Contender) -> float | None:
        median = contender.median_stage_s
        return self.rows / median if median else None


@dataclass
class Incremental:
    """ETL job runs on a fresh project (full) and after 1% new order lines (incremental)."""

    source: str
    scale: int
    new_lines: int
    full: list[Measured] = field(default_factory=list)
    incremental: list[Measured] = field(default_factory=list)
    unavailable: str | None = None
    captured: bool = False  # the other tables under CDC (else reloaded in full)
    run_s: list[tuple[float, float]] = field(default_factory=list)
    """Per repeat: the full and the incremental run's own duration (its run record's start
    to end: without the process's start, imports and exit)."""

    @property
    def run_ratio(self) -> float | None:
        if not self.run_s:
            return None
        return statistics.median(i for _, i in self.run_s) / statistics.median(
            f for f, _ in self.run_s
        )

    @property
    def ratio(self) -> float | None:
        full, incremental = median_s(self.full), median_s(self.incremental)
        return incremental / full if full and incremental is not None else None


# ---------------------------------------------------------------- sources


def server_url(kind: str, scale: int) -> str | None:
    """The bench database of this scale on the server the test URL names (None: unset)."""
    base = os.environ.get(SERVER_ENV[kind])
    if not base:
        return None
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/sluice_bench_s{scale}", query=""))


def _server_counts(kind: str, url: str) -> dict[str, int]:
    """Row counts of the tables of a server database, creating the database when missing."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if kind == "mysql":
        import pymysql

        con = pymysql.connect(
            host=parts.hostname, port=parts.port or 3306, user=parts.username,
            password=parts.password or "", autocommit=True,
        )  # fmt: skip
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (name,),
            )
            tables = [str(r[0]) for r in cur.fetchall()]
            counts = {}
            for table in tables:
                cur.execute(f"SELECT count(*) FROM `{name}`.`{table}`")
                counts[table] = int(cur.fetchone()[0])
        con.close()
        return counts
    import psycopg

    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as con:
        if not con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            con.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(url, autocommit=True) as con:
        tables = [
            str(r[0])
            for r in con.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        return {t: int(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}  # type: ignore[index]


def ensure_server_source(
    kind: str, url: str, *, scale: int, seed: int, counts: dict[str, int], sluice: Path,
    progress: Progress,
) -> str | None:  # fmt: skip
    """Fill the bench database with the classicmodels data of this scale unless it already
    holds it (the same row counts as the SQLite source of this scale); the failure, or None."""
    try:
        if _server_counts(kind, url) == counts:
            progress(f"{kind} scale {scale}: reusing {redact(url)}")
            return None
    except Exception as exc:  # any driver error: the server is unavailable
        return f"cannot reach {redact(url)}: {str(exc).splitlines()[0]}"
    progress(f"{kind} scale {scale}: sluice source generate --into {redact(url)} ...")
    argv = [str(sluice), "source", "generate", "--scale", str(scale), "--seed", str(seed)]
    done = subprocess.run(
        [*argv, "--into", url, "--replace"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return f"generating into {redact(url)} failed: {said[-1] if said else done.returncode}"
    return None


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    return url


# ---------------------------------------------------------------- projects


def init_project(
    sluice: Path, project: Path, source_url: str, measure: Measure, logs: Path, *,
    models: bool, incremental: dict[str, Any] | None = None,
    cdc: dict[str, Any] | None = None,
) -> str | None:  # fmt: skip
    """``sluice init`` the classicmodels example on ``source_url``; without ``models`` the
    job only extracts (no models, no checks); ``cdc`` tables get their change log. The
    failure, or None."""
    shutil.rmtree(project, ignore_errors=True)
    argv = [sluice, "init", project, "--example", "classicmodels", "--source", source_url]
    run = measure(argv, logs / "init")
    if not run.ok:
        return f"`sluice init` failed (see {logs})"
    config_path = project / "sluice.yml"
    config = yaml.safe_load(config_path.read_text())
    if not models:
        config.pop("checks", None)
        for model in (project / "models").glob("*.sql"):
            model.unlink()
    if incremental:
        config["jobs"]["etl"]["incremental"] = incremental
    if cdc:
        config["jobs"]["etl"]["cdc"] = cdc
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    if cdc and not measure([sluice, "source", "enable-cdc", "--project", project], logs / "cdc").ok:
        return f"`sluice source enable-cdc` failed (see {logs})"
    return None


def job_command(sluice: Path, project: Path) -> list[str | Path]:
    return [sluice, "job", "start", "etl", "--wait", "--quiet", "--project", project]


# ---------------------------------------------------------------- measuring


def measure_extraction(
    source: str, scale: int, url: str, peer_url: str, rows: int, *, repeats: int,
    sluice: Path, python: Path, peer_script: Path, workdir: Path, measure: Measure,
    progress: Progress,
) -> Extraction:  # fmt: skip
    """One warm-up, then ``repeats`` timed runs of each: Sluice's extraction-only job (every
    table read in full on every run) and the connectorx script (fresh output every run)."""
    result = Extraction(source, scale, rows, Contender(), Contender())
    project = workdir / "sluice" / "project"
    failed = init_project(sluice, project, url, measure, workdir / "sluice" / "logs", models=False)
    if failed:
        result.sluice.unavailable = failed
    out = workdir / "connectorx" / "out"
    contenders = (
        ("sluice", result.sluice, lambda: job_command(sluice, project), sluice_stage_s),
        ("connectorx", result.peer, lambda: [python, peer_script, peer_url, out], peer_stage_s),
    )
    for name, contender, argv, stage_s in contenders:
        if contender.unavailable:
            continue
        for i in range(1 + repeats):
            shutil.rmtree(out, ignore_errors=True)
            run = measure(argv(), workdir / name / "logs" / f"run-{i}")
            label = "warm-up" if i == 0 else f"run {i}/{repeats}"
            progress(
                f"ingest {source} scale {scale}: {name} {label}: {run.wall_s:.2f} s, "
                f"{run.max_rss_kib / 1024:.0f} MiB" + ("" if run.ok else " FAILED")
            )
            if not run.ok:
                contender.unavailable = f"`{name}` failed; logs in {workdir / name / 'logs'}"
                contender.runs = []
                break
            if i:
                contender.runs.append(run)
                seconds = stage_s(run.stdout.read_text(), project)
                if seconds is not None:
                    contender.stage_s.append(seconds)
    return result


def _run_id(stdout: str) -> str | None:
    found = re.search(r"\bjr_[0-9a-f]+", stdout)
    return found.group() if found else None


def run_duration_s(stdout: str, project: Path) -> float | None:
    """The run's own duration from its record (the run id is the first word Sluice printed)."""
    run_id = _run_id(stdout)
    if run_id is None:
        return None
    with sqlite3.connect(project / ".sluice" / "runs.db") as con:
        row = con.execute(
            "SELECT started_at, ended_at FROM job_runs WHERE run_id = ?", (run_id,)
        ).fetchone()
    if row is None or row[1] is None:
        return None
    return (datetime.fromisoformat(row[1]) - datetime.fromisoformat(row[0])).total_seconds()


def sluice_stage_s(stdout: str, project: Path) -> float | None:
    """Seconds from the start of the run's first extract task to the end of its last, from
    the run's task records (the run id is the first word Sluice printed)."""
    run_id = _run_id(stdout)
    if run_id is None:
        return None
    with sqlite3.connect(project / ".sluice" / "runs.db") as con:
        first, last = con.execute(
            "SELECT min(started_at), max(ended_at) FROM job_run_tasks "
            "WHERE run_id = ? AND task LIKE 'extract:%'",
            (run_id,),
        ).fetchone()
    if first is None or last is None:
        return None
    return (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()


def peer_stage_s(stdout: str, project: Path) -> float | None:
    """The seconds the connectorx script printed after its row count."""
    words = stdout.split()
    return float(words[1]) if len(words) == 2 else None


def _connect(kind: str, target: str) -> tuple[Any, str, str]:
    """A DB-API connection to the source, its parameter marker and identifier quote."""
    if kind == "sqlite":
        return sqlite3.connect(target), "?", '"'
    parts = urlsplit(target)
    if kind == "mysql":
        import pymysql

        con = pymysql.connect(
            host=parts.hostname, port=parts.port or 3306, user=parts.username,
            password=parts.password or "", database=parts.path.lstrip("/"),
        )  # fmt: skip
        return con, "%s", "`"
    import psycopg

    return psycopg.connect(target), "%s", '"'


def add_order_lines(kind: str, target: str, share: float) -> tuple[int, int]:
    """Copy the first orders (with their lines) as new orders until ``share`` of the order
    lines are new; return how many lines were added and the order number they start after."""
    con, mark, q = _connect(kind, target)
    try:
        cur = con.cursor()
        number = f"{q}orderNumber{q}"
        cur.execute(
            f"SELECT (SELECT count(*) FROM orderdetails), (SELECT max({number}) FROM orders)"
        )
        lines, offset = cur.fetchone()
        cur.execute(
            f"SELECT max({number}) FROM (SELECT {number}, sum(count(*)) OVER "
            f"(ORDER BY {number}) AS running FROM orderdetails GROUP BY {number}) AS r "
            f"WHERE running <= {mark}",
            (int(lines * share),),
        )
        (last,) = cur.fetchone()
        copied = {
            "orders": ("orderDate", "requiredDate", "comments", "customerNumber", "status"),
            "orderdetails": ("productCode", "quantityOrdered", "priceEach", "orderLineNumber"),
        }
        for table, names in copied.items():
            columns = ", ".join(f"{q}{c}{q}" for c in names)
            values = columns.replace(f"{q}status{q}", "'In Process'")
            cur.execute(
                f"INSERT INTO {table} ({number}, {columns}) SELECT {number} + {mark}, "
                f"{values} FROM {table} WHERE {number} <= {mark}",
                (offset, last),
            )
        added = cur.rowcount
        con.commit()
    finally:
        con.close()
    return int(added), int(offset)


def remove_order_lines(kind: str, target: str, after: int) -> None:
    """Delete the orders and lines ``add_order_lines`` added (a server's bench database
    stays at its scale, to be reused)."""
    con, mark, q = _connect(kind, target)
    try:
        cur = con.cursor()
        for table in ("orderdetails", "orders"):
            cur.execute(f"DELETE FROM {table} WHERE {q}orderNumber{q} > {mark}", (after,))
        con.commit()
    finally:
        con.close()


def measure_incremental(
    kind: str, source: str, *, repeats: int, sluice: Path, workdir: Path, measure: Measure,
    progress: Progress, captured: bool = False,
) -> Incremental:  # fmt: skip
    """``repeats`` times: a fresh project on the source (a copy of the SQLite file), whose
    orders and order lines load incrementally (and, if ``captured``, every other table by
    CDC); its first ETL run (full), 1% new order lines, its second run (incremental: new
    lines appended, fact_orders merged). A server's change log is removed at the end."""
    result = Incremental(kind, INCREMENTAL_SCALE, 0, captured=captured)
    try:
        _measure_incremental(
            result, kind, source, repeats=repeats, sluice=sluice, workdir=workdir,
            measure=measure, progress=progress,
        )  # fmt: skip
    finally:
        project = workdir / "project"
        if captured and kind != "sqlite" and (project / "sluice.yml").is_file():
            measure(
                [sluice, "source", "disable-cdc", "--project", project], workdir / "logs" / "off"
            )
    return result


def _measure_incremental(
    result: Incremental, kind: str, source: str, *, repeats: int, sluice: Path,
    workdir: Path, measure: Measure, progress: Progress,
) -> None:  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    for i in range(repeats):
        target, url = source, source
        if kind == "sqlite":
            copy = workdir / "source.db"
            shutil.copy(source, copy)
            target, url = str(copy), f"sqlite:///{copy.resolve()}"
        project, logs = workdir / "project", workdir / "logs"
        failed = init_project(
            sluice, project, url, measure, logs, models=True, incremental=INCREMENTAL,
            cdc=CAPTURED if result.captured else None,
        )  # fmt: skip
        if failed:
            result.unavailable = failed
            return
        full = measure(job_command(sluice, project), logs / f"full-{i}")
        result.new_lines, offset = add_order_lines(kind, target, NEW_LINES)
        try:
            incremental = measure(job_command(sluice, project), logs / f"incremental-{i}")
        finally:
            if kind != "sqlite":
                remove_order_lines(kind, target, offset)
        label = " (other tables CDC)" if result.captured else ""
        progress(
            f"ingest incremental {kind} scale {INCREMENTAL_SCALE}{label}: full "
            f"{full.wall_s:.2f} s, +{result.new_lines:,} lines {incremental.wall_s:.2f} s"
        )
        if not (full.ok and incremental.ok):
            result.unavailable = f"a sluice run failed; logs in {logs}"
            return
        result.full.append(full)
        result.incremental.append(incremental)
        durations = [run_duration_s(r.stdout.read_text(), project) for r in (full, incremental)]
        if None not in durations:
            result.run_s.append((durations[0] or 0.0, durations[1] or 0.0))

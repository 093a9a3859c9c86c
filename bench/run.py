"""Benchmark harness: Sluice's classicmodels ETL job against a DuckDB script and a pandas script.

Run with ``make bench`` (or ``.venv/bin/python bench/run.py``). See bench/README.md for what is
measured and how to read the report. Progress goes to stderr, the report to stdout, and the same
figures to bench/.work/results.json. The exit code is 0 even when a target fails; non-zero only
when the harness itself cannot run (for example, no source generator).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib
import json
import operator
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
import psutil
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import http_bench
import ingest_bench
import measures

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / ".work"
RESULTS = WORK / "results.json"
SLUICE = ROOT / ".venv" / "bin" / "sluice"
PYTHON = Path(sys.executable)
PEERS = BENCH / "peers"
LAUNCHER = BENCH / "spawn_measured.py"

TABLES = ("dim_locations", "dim_customers", "dim_products", "dim_employees", "dim_date")
FACT = "fact_orders"
DEFAULT_GENERATOR = "sluice.sources.classicmodels:generate_classicmodels"
HELP_RUNS = 10
REFERENCE = "duckdb script"
BUSY_CORES = 0.25  # other processes' CPU (in cores) above which a contender's timings are flagged
HTTP_SCALE = 100  # the scale whose sluice project the HTTP section serves

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, width=max(110, Console().width))


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    scales: tuple[int, ...]
    seed: int
    repeat: int | None  # None: 5 timed runs at scale <= 100, 3 above
    timeout_s: float
    generator: str
    http: bool = True  # the HTTP section at HTTP_SCALE (BENCH_HTTP=0: off)
    ingest: bool = True  # the ingestion section (BENCH_INGEST=0: off)
    only_ingest: bool = False  # BENCH_ONLY=ingest: the ingestion section alone
    ingest_scales: tuple[int, ...] = (100, 1000)
    ingest_sources: tuple[str, ...] = ingest_bench.SOURCES

    def repeats(self, scale: int) -> int:
        if self.repeat is not None:
            return self.repeat
        return 5 if scale <= 100 else 3


def settings_from_env() -> Settings:
    scales = [1, 100, 1000] + ([10000] if os.environ.get("BENCH_LARGE") == "1" else [])
    if os.environ.get("BENCH_SCALES"):
        scales = [int(s) for s in os.environ["BENCH_SCALES"].split(",") if s.strip()]
    repeat = os.environ.get("BENCH_REPEAT")
    return Settings(
        scales=tuple(scales),
        seed=int(os.environ.get("BENCH_SEED", "42")),
        repeat=max(1, int(repeat)) if repeat else None,
        timeout_s=float(os.environ.get("BENCH_TIMEOUT", "3600")),
        generator=os.environ.get("BENCH_GENERATOR", DEFAULT_GENERATOR),
        http=os.environ.get("BENCH_HTTP", "1") != "0",
        ingest=os.environ.get("BENCH_INGEST", "1") != "0",
        only_ingest=os.environ.get("BENCH_ONLY") == "ingest",
        ingest_scales=tuple(
            int(s) for s in os.environ.get("BENCH_INGEST_SCALES", "100,1000").split(",") if s
        ),
        ingest_sources=tuple(
            s.strip()
            for s in os.environ.get("BENCH_INGEST_SOURCES", ",".join(ingest_bench.SOURCES)).split(
                ","
            )
            if s.strip() in ingest_bench.SOURCES
        ),
    )


def progress(message: str) -> None:
    err.print(f"{time.strftime('%H:%M:%S')} {message}", markup=False, soft_wrap=True)


# ---------------------------------------------------------------- measuring one child process


@dataclass(frozen=True)
class Run:
    wall_s: float
    max_rss_kib: int
    exit_code: int
    timed_out: bool
    stdout: Path
    stderr: Path
    other_cores: float = 0.0  # mean CPU cores used by other processes meanwhile

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def busy_cpu_s() -> float:
    """Machine-wide non-idle CPU seconds so far (guest time is already inside user)."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + t.irq + t.softirq + t.steal)


def _kill_group(pid: int) -> None:
    """Kill the process group of a child we started in its own session."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def run_measured(argv: Sequence[str | Path], log_stem: Path, timeout_s: float) -> Run:
    """Run argv to completion through the tiny launcher; its wall time and peak RSS.

    The launcher (bench/spawn_measured.py) spawns argv and takes os.wait4's ru_maxrss (KiB) for
    it, so the harness's own memory never leaks into the figure; see that file for why.
    """
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    stdout, stderr = log_stem.with_suffix(".out"), log_stem.with_suffix(".err")
    result = log_stem.with_suffix(".rusage")
    result.unlink(missing_ok=True)
    launcher = [PYTHON, "-I", "-S", LAUNCHER, result, *argv]
    with stdout.open("wb") as fout, stderr.open("wb") as ferr:
        start, busy_before = time.perf_counter(), busy_cpu_s()
        proc = subprocess.Popen(
            [str(a) for a in launcher],
            stdin=subprocess.DEVNULL,
            stdout=fout,
            stderr=ferr,
            cwd=ROOT,
            start_new_session=True,  # its own process group, so a timeout can kill the tree
        )
        timed_out = wait_or_kill(proc, timeout_s)
        elapsed, busy = time.perf_counter() - start, busy_cpu_s() - busy_before
    if timed_out or not result.is_file():
        return Run(elapsed, 0, proc.returncode or -1, timed_out, stdout, stderr)
    wall, rss, code, cpu = result.read_text().split()
    other = max(0.0, busy - float(cpu)) / max(elapsed, 1e-6)
    return Run(float(wall), int(rss), int(code), False, stdout, stderr, other)


def wait_or_kill(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait for proc; kill its process group on timeout or interrupt. True if it timed out."""
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.wait()
        return True
    except BaseException:
        _kill_group(proc.pid)
        proc.wait()
        raise
    return False


def failure_reason(what: str, run: Run) -> str:
    """One line: which command failed and the last thing it said."""
    if run.timed_out:
        return f"{what} timed out after {run.wall_s:.1f} s"
    said = ""
    for path in (run.stderr, run.stdout):
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            said = lines[-1]
            break
    said = said if len(said) <= 160 else said[:157] + "..."
    return f"{what} exited {run.exit_code}" + (f": {said}" if said else "")


# ---------------------------------------------------------------- the source database


@dataclass(frozen=True)
class Source:
    path: Path
    counts: dict[str, int]
    generate_s: float | None  # None when taken from the cache


def load_generator(spec: str) -> Callable[..., dict[str, int]]:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    generator: Callable[..., dict[str, int]] = getattr(module, attr)
    return generator


def generator_fingerprint(generator: Callable[..., Any]) -> str:
    """Hash of the .py files beside the generator's module: a changed generator misses the cache."""
    origin = Path(sys.modules[generator.__module__].__file__ or "")
    files = sorted(origin.parent.glob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_source(
    scale: int, settings: Settings, generator: Callable[..., dict[str, int]]
) -> Source:
    """bench/.work/scale-N/source.db, regenerated only when scale, seed or generator change."""
    folder = WORK / f"scale-{scale}"
    db, meta = folder / "source.db", folder / "source.json"
    key = {"scale": scale, "seed": settings.seed, "generator": generator_fingerprint(generator)}
    if db.is_file() and meta.is_file():
        cached = json.loads(meta.read_text())
        if cached.get("key") == key:
            progress(f"scale {scale}: using cached source {db.relative_to(ROOT)}")
            return Source(db, cached["counts"], None)
    progress(f"scale {scale}: generating source (seed {settings.seed}) ...")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "source.tmp.db"
    tmp.unlink(missing_ok=True)
    start = time.perf_counter()
    counts = dict(generator(tmp, scale=scale, seed=settings.seed))
    seconds = time.perf_counter() - start
    os.replace(tmp, db)
    meta.write_text(json.dumps({"key": key, "counts": counts, "generate_s": seconds}, indent=2))
    progress(f"scale {scale}: generated in {seconds:.1f} s: {counts}")
    return Source(db, counts, seconds)


# ---------------------------------------------------------------- output checks


@dataclass
class Summary:
    rows: dict[str, int]
    amount_sum: str | None
    error: str | None = None


def parquet_files(pattern: Path) -> list[Path]:
    return sorted(pattern.parent.glob(pattern.name))


def summarise(locate: Callable[[str], Path]) -> Summary | None:
    """Row counts of the star tables present, and SUM(orderAmount) of the fact table."""
    if not parquet_files(locate(FACT)):
        return None
    try:
        return read_summary(locate)
    except duckdb.Error as exc:
        return Summary({}, None, error=str(exc).splitlines()[0])


def read_summary(locate: Callable[[str], Path]) -> Summary:
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    with con:
        rows: dict[str, int] = {}
        for table in (*TABLES, FACT):
            files = [str(p) for p in parquet_files(locate(table))]
            if files:
                result = con.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()
                rows[table] = int(result[0]) if result else -1
        facts = [str(p) for p in parquet_files(locate(FACT))]
        total = con.execute(
            "SELECT CAST(sum(orderAmount) AS DECIMAL(38, 2)) FROM read_parquet(?)", [facts]
        ).fetchone()
    return Summary(rows, None if total is None or total[0] is None else str(total[0]))


def compare(name: str, summary: Summary, reference: Summary) -> list[str]:
    """Warning lines for every figure that differs from the reference contender's."""
    if summary.error is not None:
        return [f"{name}: cannot read its output: {summary.error}"]
    warnings = [
        f"{name}: {table} has {summary.rows[table]} rows, {REFERENCE} has {count}"
        for table, count in reference.rows.items()
        if table in summary.rows and summary.rows[table] != count
    ]
    if summary.amount_sum != reference.amount_sum:
        warnings.append(
            f"{name}: SUM({FACT}.orderAmount) = {summary.amount_sum}, "
            f"{REFERENCE} has {reference.amount_sum}"
        )
    return warnings


# ---------------------------------------------------------------- contenders


@dataclass
class Outcome:
    name: str
    runs: list[Run] = field(default_factory=list)  # timed runs only
    warmup: Run | None = None
    unavailable: str | None = None
    summary: Summary | None = None
    check: str = "not checked"
    fact_path: str = ""
    setup_s: float | None = None

    @property
    def walls(self) -> list[float]:
        return [r.wall_s for r in self.runs]

    @property
    def median_s(self) -> float | None:
        return measures.median_s(self.runs)

    @property
    def peak_rss_mib(self) -> float | None:
        return measures.peak_rss_mib(self.runs)

    @property
    def other_cores(self) -> float | None:
        """The most CPU other processes used during one of the timed runs, in cores."""
        return measures.other_cores(self.runs)


@dataclass(frozen=True)
class Contender:
    name: str
    setup: Callable[[Path, Path], tuple[str | None, float | None]]  # -> (failure, seconds)
    command: Callable[[Path, Path], list[str | Path]]  # (source, workdir) -> argv
    output: Callable[[Path, str], Path]  # (workdir, table) -> Parquet path or glob
    fresh_output_per_run: bool


def sluice_project(workdir: Path) -> Path:
    return workdir / "project"


def sluice_setup(source: Path, workdir: Path) -> tuple[str | None, float | None]:
    """`sluice init` a fresh project on this scale's source (untimed, once per scale)."""
    project = sluice_project(workdir)
    shutil.rmtree(project, ignore_errors=True)
    argv = [SLUICE, "init", project, "--example", "classicmodels"]
    argv += ["--source", f"sqlite:///{source.resolve()}"]
    run = run_measured(argv, workdir / "logs" / "sluice-init", timeout_s=600)
    return (None if run.ok else failure_reason("`sluice init`", run)), run.wall_s


def sluice_command(source: Path, workdir: Path) -> list[str | Path]:
    """The timed command: run the example project's etl job to completion."""
    return [
        SLUICE,
        "job",
        "start",
        "etl",
        "--wait",
        "--quiet",
        "--project",
        sluice_project(workdir),
    ]


def no_setup(source: Path, workdir: Path) -> tuple[str | None, float | None]:
    return None, None


def peer_command(script: str) -> Callable[[Path, Path], list[str | Path]]:
    def command(source: Path, workdir: Path) -> list[str | Path]:
        return [PYTHON, PEERS / script, source, workdir / "out"]

    return command


def peer_output(workdir: Path, table: str) -> Path:
    return workdir / "out" / f"{table}.parquet"


def sluice_output(workdir: Path, table: str) -> Path:
    return sluice_project(workdir) / "warehouse" / "gold.db" / table / "data" / "*.parquet"


CONTENDERS = (
    Contender(
        "sluice",
        sluice_setup,
        sluice_command,
        sluice_output,
        fresh_output_per_run=False,
    ),
    Contender("duckdb script", no_setup, peer_command("duckdb_etl.py"), peer_output, True),
    Contender("pandas script", no_setup, peer_command("pandas_etl.py"), peer_output, True),
)


def slug(name: str) -> str:
    return name.replace(" ", "-")


def run_contender(contender: Contender, source: Path, scale: int, settings: Settings) -> Outcome:
    """Set up, one warm-up run (checked, then discarded), then the timed runs."""
    workdir = WORK / f"scale-{scale}" / slug(contender.name)
    outcome = Outcome(contender.name, fact_path=str(contender.output(workdir, FACT)))
    outcome.unavailable, outcome.setup_s = contender.setup(source, workdir)
    if outcome.unavailable is not None:
        progress(f"scale {scale}: {contender.name} unavailable: {outcome.unavailable}")
        return outcome
    total = 1 + settings.repeats(scale)
    for i in range(total):
        if contender.fresh_output_per_run:
            shutil.rmtree(workdir / "out", ignore_errors=True)
        argv = contender.command(source, workdir)
        run = run_measured(argv, workdir / "logs" / f"run-{i}", settings.timeout_s)
        label = "warm-up" if i == 0 else f"run {i}/{total - 1}"
        progress(
            f"scale {scale}: {contender.name} {label}: {run.wall_s:.2f} s, "
            f"{run.max_rss_kib / 1024:.0f} MiB" + ("" if run.ok else " FAILED")
        )
        if not run.ok:
            outcome.unavailable = failure_reason(f"`{contender.name}`", run)
            outcome.runs = []
            break
        if i == 0:
            outcome.warmup = run
            outcome.summary = summarise(lambda t: contender.output(workdir, t))
        else:
            outcome.runs.append(run)
    return outcome


def check_outcomes(outcomes: list[Outcome]) -> list[str]:
    """Compare every contender's first-run output with the reference peer's; warning lines."""
    by_name = {o.name: o for o in outcomes}
    reference = by_name.get(REFERENCE)
    if reference is None or reference.summary is None:
        return [f"{REFERENCE} produced no output; output checks skipped"]
    warnings: list[str] = []
    for outcome in outcomes:
        if outcome.unavailable is not None:
            continue
        if outcome.summary is None:
            outcome.check = "no fact_orders output found: check skipped"
            warnings.append(
                f"{outcome.name} left no Parquet at {outcome.fact_path}; its timings may not "
                "reflect a complete ETL run"
            )
            continue
        found = compare(outcome.name, outcome.summary, reference.summary)
        outcome.check = "reference" if outcome is reference else ("MISMATCH" if found else "ok")
        warnings.extend(found)
    return warnings + noise_warnings(outcomes)


def noise_warnings(outcomes: list[Outcome]) -> list[str]:
    """Contenders whose timed runs shared the machine with other busy processes."""
    return [
        f"{o.name}: other processes used up to {o.other_cores:.2f} CPU cores during its runs; "
        "its times are likely inflated"
        for o in outcomes
        if o.other_cores is not None and o.other_cores > BUSY_CORES
    ]


# ---------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    label: str
    value: float | None
    unit: str
    goal: str  # e.g. "<= 1.5"
    judged: bool  # False: shown for information at this scale
    passed: bool | None = None
    missed: str = "FAIL"  # the word for a target not reached (the ingestion section: MISS)

    @property
    def status(self) -> str:
        if not self.judged:
            return "info"
        if self.value is None or self.passed is None:
            return "n/a"
        return "PASS" if self.passed else self.missed


OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
}


def target(
    label: str, value: float | None, *, unit: str, op: str, limit: float, judged: bool = True
) -> Target:
    passed = None if value is None else OPERATORS[op](value, limit)
    return Target(label, value, unit, f"{op} {limit:g}{unit}", judged, passed)


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def scale_targets(scale: int, outcomes: list[Outcome]) -> list[Target]:
    med = {o.name: o.median_s for o in outcomes}
    rss = {o.name: o.peak_rss_mib for o in outcomes}
    big = scale >= 1000
    sluice_vs_duckdb = ratio(med["sluice"], med[REFERENCE])
    pandas_vs_sluice = ratio(med["pandas script"], med["sluice"])
    targets = [
        target("sluice ÷ duckdb wall", sluice_vs_duckdb, unit="x", op="<=", limit=1.5, judged=big),
        target("pandas ÷ sluice wall", pandas_vs_sluice, unit="x", op=">=", limit=4, judged=big),
        target(
            "sluice peak RSS", rss["sluice"], unit=" MiB", op="<", limit=1024, judged=scale == 1000
        ),
    ]
    if scale == 1:
        targets.append(target("sluice wall at scale 1", med["sluice"], unit=" s", op="<", limit=2))
    return targets


# ---------------------------------------------------------------- sluice --help


@dataclass
class HelpTiming:
    median_ms: float | None
    runs_ms: list[float]
    unavailable: str | None


def time_help() -> HelpTiming:
    """Median of 10 `sluice --help` runs, after one untimed warm-up."""
    logs = WORK / "help"
    runs_ms: list[float] = []
    for i in range(HELP_RUNS + 1):
        run = run_measured([SLUICE, "--help"], logs / f"run-{i}", timeout_s=60)
        if not run.ok:
            return HelpTiming(None, [], failure_reason("`sluice --help`", run))
        if i:
            runs_ms.append(run.wall_s * 1000)
    median = statistics.median(runs_ms)
    progress(f"sluice --help: median {median:.0f} ms over {HELP_RUNS} runs")
    return HelpTiming(median, runs_ms, None)


def help_target(timing: HelpTiming) -> Target:
    value = None if timing.median_ms is None else timing.median_ms / 1000
    return target("sluice --help", value, unit=" s", op="<", limit=0.3)


# ---------------------------------------------------------------- report


STATUS_STYLE = {
    "PASS": "bold green",
    "FAIL": "bold red",
    "MISS": "bold red",
    "n/a": "yellow",
    "info": "dim",
}


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


def contender_row(outcome: Outcome, reference_s: float | None) -> list[str]:
    if outcome.unavailable is not None:
        reason = escape(f"unavailable: {outcome.unavailable}")
        return [outcome.name, "—", "—", "—", "—", "—", f"[yellow]{reason}"]
    walls = outcome.walls
    return [
        outcome.name,
        fmt(outcome.median_s, ".3f"),
        f"{min(walls):.3f} / {max(walls):.3f}",
        fmt(outcome.peak_rss_mib, ".0f"),
        fmt(ratio(outcome.median_s, reference_s)),
        fmt(outcome.other_cores),
        escape(outcome.check),
    ]


def scale_table(scale: int, source: Source, outcomes: list[Outcome], repeats: int) -> Table:
    lines = source.counts.get("orderdetails")
    title = f"scale {scale} — {lines:,} order lines" if lines is not None else f"scale {scale}"
    table = Table(title=f"{title}; median of {repeats} timed runs after 1 warm-up")
    columns = (
        "contender",
        "median s",
        "min / max s",
        "peak RSS MiB",
        "÷ duckdb",
        "noise",
        "output",
    )
    for name in columns:
        table.add_column(name, justify="left" if name in ("contender", "output") else "right")
    reference_s = next((o.median_s for o in outcomes if o.name == REFERENCE), None)
    for outcome in outcomes:
        table.add_row(*contender_row(outcome, reference_s))
    return table


def targets_table(title: str, targets: list[Target]) -> Table:
    table = Table(title=title)
    for name in ("target", "value", "goal", "result"):
        table.add_column(name, justify="right" if name == "value" else "left")
    for t in targets:
        value = "—" if t.value is None else f"{t.value:.2f}{t.unit}"
        status = f"[{STATUS_STYLE[t.status]}]{t.status}"
        goal = t.goal if t.judged else f"{t.goal} (judged at another scale)"
        table.add_row(t.label, value, goal, status)
    return table


def print_scale(result: ScaleResult, repeats: int) -> None:
    out.print()
    out.print(scale_table(result.scale, result.source, result.outcomes, repeats))
    out.print(targets_table(f"targets at scale {result.scale}", result.targets))
    for line in result.warnings:
        out.print(f"[bold yellow]WARNING[/bold yellow] scale {result.scale}: {escape(line)}")


# ---------------------------------------------------------------- the HTTP section


@dataclass
class HttpSection:
    result: http_bench.HttpResult | None
    unavailable: str | None = None


def bench_http(scale: ScaleResult) -> HttpSection:
    """Serve the sluice project of this scale and time the dashboard and the export."""
    sluice = next(o for o in scale.outcomes if o.name == "sluice")
    if sluice.unavailable is not None:
        return HttpSection(None, f"the sluice project is unavailable: {sluice.unavailable}")
    workdir = WORK / f"scale-{scale.scale}" / "http"
    project = sluice_project(WORK / f"scale-{scale.scale}" / "sluice")
    progress(f"scale {scale.scale}: HTTP API: dashboard queries and the detail export ...")
    try:
        return HttpSection(http_bench.measure(SLUICE, project, workdir))
    except (RuntimeError, OSError, duckdb.Error) as exc:
        return HttpSection(None, str(exc).splitlines()[0])


def http_targets(result: http_bench.HttpResult) -> list[Target]:
    many = result.many_clients
    targets = [
        target("dashboard p95, 1 client", result.one_client.percentile(95),
               unit=" ms", op="<", limit=50),
        target(f"{http_bench.CLIENTS} clients: errors", float(many.errors),
               unit="", op="<=", limit=0),
        target(f"{http_bench.CLIENTS} clients: p95", many.percentile(95),
               unit=" ms", op="<", limit=500),
    ]  # fmt: skip
    if result.browser is not None:
        updates = result.browser
        targets += [
            target("dashboard update in chromium, median", updates.percentile(50),
                   unit=" ms", op="<", limit=500),
            target("dashboard update in chromium, worst",
                   max(updates.seconds) * 1000 if updates.seconds else None,
                   unit=" ms", op="<", limit=1000),
        ]  # fmt: skip
    for export in result.exports:
        value = ratio(statistics.median(export.api_s), statistics.median(export.direct_s))
        label = f"{export.fmt} export ÷ direct + write"
        targets.append(target(label, value, unit="x", op="<=", limit=2))
    return targets


def print_http(section: HttpSection, scale: int) -> None:
    out.print()
    if section.result is None:
        out.print(f"[yellow]HTTP section unavailable: {escape(section.unavailable or '')}")
        return
    result = section.result
    table = Table(
        title=f"HTTP API at scale {scale} — the dashboard's {result.queries} statements "
        f"(top N, sales by country, headline for 5 selections), POST + poll + results"
    )
    for name in ("how", "requests", "p50 ms", "p95 ms", "errors"):
        table.add_column(name, justify="left" if name == "how" else "right")
    rows = [
        ("API, 1 client", result.one_client),
        (f"API, {http_bench.CLIENTS} clients at once", result.many_clients),
        ("DuckDB directly, same Parquet", result.direct),
    ]
    if result.browser is not None:
        rows.append(("dashboard update in chromium (3 queries + drawing)", result.browser))
    for how, lat in rows:
        table.add_row(how, str(len(lat.seconds)), fmt(lat.percentile(50), ".1f"),
                      fmt(lat.percentile(95), ".1f"), str(lat.errors))  # fmt: skip
    out.print(table)
    exports = Table(
        title=f"detail export (sales by date, product line, product, country); "
        f"median of {http_bench.EXPORT_RUNS} after 1 warm-up"
    )
    for name in ("format", "rows", "MB", "API s", "DuckDB + write s", "ratio"):
        exports.add_column(name, justify="left" if name == "format" else "right")
    for e in result.exports:
        api, direct = statistics.median(e.api_s), statistics.median(e.direct_s)
        exports.add_row(e.fmt, f"{e.rows:,}", f"{e.api_bytes / 1e6:.1f}", f"{api:.3f}",
                        f"{direct:.3f}", fmt(ratio(api, direct)))  # fmt: skip
    out.print(exports)
    out.print(targets_table(f"HTTP targets at scale {scale}", http_targets(result)))
    if result.browser_unavailable:
        out.print(f"[yellow]browser timing unavailable: {escape(result.browser_unavailable)}")
    if result.load > (os.cpu_count() or 1):
        out.print(
            f"[bold yellow]WARNING[/bold yellow] HTTP: the machine's load average was "
            f"{result.load:.1f} on {os.cpu_count()} cores; these latencies are likely inflated"
        )


def http_json(section: HttpSection) -> dict[str, Any]:
    if section.result is None:
        return {"unavailable": section.unavailable}
    result = section.result

    def latencies(lat: http_bench.Latencies) -> dict[str, Any]:
        return {"requests": len(lat.seconds), "p50_ms": lat.percentile(50),
                "p95_ms": lat.percentile(95), "errors": lat.errors}  # fmt: skip

    return {
        "one_client": latencies(result.one_client),
        "many_clients": latencies(result.many_clients),
        "direct": latencies(result.direct),
        "browser_updates": None if result.browser is None else latencies(result.browser),
        "exports": [asdict(e) for e in result.exports],
        "targets": [target_json(t) for t in http_targets(result)],
        "load_average": result.load,
    }


# ---------------------------------------------------------------- the ingestion section


@dataclass
class IngestSection:
    extractions: list[ingest_bench.Extraction]
    incremental: list[ingest_bench.Incremental]


def bench_ingest(settings: Settings, generator: Callable[..., dict[str, int]]) -> IngestSection:
    """Full extraction per source and scale beside connectorx; the incremental run."""

    def measure(argv: Sequence[str | Path], stem: Path) -> Run:
        return run_measured(argv, stem, settings.timeout_s)

    extractions = []
    for scale in settings.ingest_scales:
        source = ensure_source(scale, settings, generator)
        rows = sum(source.counts.values())
        for kind in settings.ingest_sources:
            workdir = WORK / "ingest" / f"{kind}-{scale}"
            if kind == "sqlite":
                url, peer_url = (
                    f"sqlite:///{source.path.resolve()}",
                    f"sqlite://{source.path.resolve()}",
                )
            else:
                found = ingest_bench.server_url(kind, scale)
                failure = (
                    f"{ingest_bench.SERVER_ENV[kind]} is not set"
                    if found is None
                    else ingest_bench.ensure_server_source(
                        kind, found, scale=scale, seed=settings.seed, counts=source.counts,
                        sluice=SLUICE, progress=progress,
                    )
                )  # fmt: skip
                if found is None or failure is not None:
                    extractions.append(
                        ingest_bench.Extraction(
                            kind, scale, rows, ingest_bench.Contender(),
                            ingest_bench.Contender(), unavailable=failure,
                        )
                    )  # fmt: skip
                    progress(f"ingest {kind} scale {scale}: unavailable: {failure}")
                    continue
                url = peer_url = found
            extractions.append(
                ingest_bench.measure_extraction(
                    kind, scale, url, peer_url, rows, repeats=settings.repeats(scale),
                    sluice=SLUICE, python=PYTHON, peer_script=PEERS / "connectorx_extract.py",
                    workdir=workdir, measure=measure, progress=progress,
                )
            )  # fmt: skip
    incremental = []
    if ingest_bench.INCREMENTAL_SCALE in settings.ingest_scales:
        scale = ingest_bench.INCREMENTAL_SCALE
        done = {(e.source, e.scale): e for e in extractions}
        for kind in settings.ingest_sources:
            measured = done.get((kind, scale))
            if measured is None or measured.unavailable:
                continue
            source = (
                str(ensure_source(scale, settings, generator).path)
                if kind == "sqlite"
                else ingest_bench.server_url(kind, scale) or ""
            )
            for captured in (False, True):
                name = f"incremental-{kind}" + ("-cdc" if captured else "")
                incremental.append(
                    ingest_bench.measure_incremental(
                        kind, source, repeats=settings.repeats(scale), sluice=SLUICE,
                        workdir=WORK / "ingest" / name, measure=measure,
                        progress=progress, captured=captured,
                    )
                )  # fmt: skip
    return IngestSection(extractions, incremental)


def ingest_targets(section: IngestSection) -> list[Target]:
    targets = []
    for e in section.extractions:
        label = f"{e.source} scale {e.scale}"
        value = ratio(e.rows_per_s(e.sluice), e.rows_per_s(e.peer))
        targets.append(
            target(f"sluice ÷ connectorx rows/s, {label}", value, unit="x", op=">=", limit=0.8)
        )
        if e.scale == ingest_bench.INCREMENTAL_SCALE:
            rss = e.sluice.peak_rss_mib
            targets.append(
                target(f"sluice peak RSS, {label}", rss, unit=" MiB", op="<", limit=1024)
            )
    for inc in section.incremental:
        label = f"{inc.source} scale {inc.scale}" + (", others CDC" if inc.captured else "")
        targets.append(
            target(f"incremental ÷ full run, {label}", inc.ratio, unit="x", op="<=", limit=0.1)
        )
    return [replace(t, missed="MISS") for t in targets]


def print_ingest(section: IngestSection) -> None:
    out.print()
    table = Table(
        title="full extraction: every source table to snappy Parquet; median of the timed runs"
    )
    columns = ("source", "scale", "rows", "sluice s", "sluice rows/s", "connectorx s",
               "peer rows/s", "÷ peer", "sluice RSS MiB", "peer RSS MiB", "noise")  # fmt: skip
    for name in columns:
        table.add_column(name, justify="left" if name == "source" else "right")
    for e in section.extractions:
        if e.unavailable or e.sluice.unavailable or e.peer.unavailable:
            reason = e.unavailable or e.sluice.unavailable or e.peer.unavailable or ""
            table.add_row(e.source, str(e.scale), f"{e.rows:,}", *(["—"] * 7),
                          f"[yellow]{escape(reason)}")  # fmt: skip
            continue
        noise = max(e.sluice.other_cores or 0.0, e.peer.other_cores or 0.0)
        table.add_row(
            e.source, str(e.scale), f"{e.rows:,}", fmt(e.sluice.median_s, ".2f"),
            fmt(e.rows_per_s(e.sluice), ",.0f"), fmt(e.peer.median_s, ".2f"),
            fmt(e.rows_per_s(e.peer), ",.0f"),
            fmt(ratio(e.rows_per_s(e.sluice), e.rows_per_s(e.peer))),
            fmt(e.sluice.peak_rss_mib, ".0f"), fmt(e.peer.peak_rss_mib, ".0f"), f"{noise:.2f}",
        )  # fmt: skip
    out.print(table)
    stages = Table(
        title="extraction stage alone: first source read to last Parquet file written (no "
        "process start, imports, planning or catalog commits); median; info"
    )
    for name in ("source", "scale", "sluice s", "sluice rows/s", "connectorx s",
                 "peer rows/s", "÷ peer"):  # fmt: skip
        stages.add_column(name, justify="left" if name == "source" else "right")
    for e in section.extractions:
        if e.sluice.median_stage_s is None or e.peer.median_stage_s is None:
            continue
        stages.add_row(
            e.source, str(e.scale), fmt(e.sluice.median_stage_s, ".3f"),
            fmt(e.stage_rows_per_s(e.sluice), ",.0f"), fmt(e.peer.median_stage_s, ".3f"),
            fmt(e.stage_rows_per_s(e.peer), ",.0f"),
            fmt(ratio(e.stage_rows_per_s(e.sluice), e.stage_rows_per_s(e.peer))),
        )  # fmt: skip
    out.print(stages)
    for inc in section.incremental:
        if inc.unavailable:
            out.print(
                f"[yellow]{inc.source}: incremental run unavailable: {escape(inc.unavailable)}"
            )
            continue
        full = statistics.median(r.wall_s for r in inc.full)
        step = statistics.median(r.wall_s for r in inc.incremental)
        others = "other tables by CDC" if inc.captured else "other tables in full"
        out.print(
            f"{inc.source}: ETL job at scale {inc.scale} (orders and order lines incremental, "
            f"{others}, fact_orders incremental): full run {full:.2f} s; after "
            f"{inc.new_lines:,} new order lines ({ingest_bench.NEW_LINES:.0%}) "
            f"{step:.2f} s (medians of {len(inc.full)})"
        )
        if inc.run_ratio is not None:
            full_run = statistics.median(f for f, _ in inc.run_s)
            step_run = statistics.median(i for _, i in inc.run_s)
            out.print(
                f"  the runs' own durations (run record, no process start or exit): full "
                f"{full_run:.2f} s, incremental {step_run:.2f} s, {inc.run_ratio:.2f}x (info)"
            )
    out.print(targets_table("ingestion targets", ingest_targets(section)))


def ingest_json(section: IngestSection) -> dict[str, Any]:
    def contender(c: ingest_bench.Contender) -> dict[str, Any]:
        return {"unavailable": c.unavailable, "median_s": c.median_s,
                "peak_rss_mib": c.peak_rss_mib, "other_cores": c.other_cores,
                "runs_s": [r.wall_s for r in c.runs], "stage_s": c.stage_s}  # fmt: skip

    return {
        "extractions": [
            {"source": e.source, "scale": e.scale, "rows": e.rows, "unavailable": e.unavailable,
             "sluice": contender(e.sluice), "connectorx": contender(e.peer),
             "sluice_rows_per_s": e.rows_per_s(e.sluice),
             "connectorx_rows_per_s": e.rows_per_s(e.peer),
             "sluice_stage_rows_per_s": e.stage_rows_per_s(e.sluice),
             "connectorx_stage_rows_per_s": e.stage_rows_per_s(e.peer)}
            for e in section.extractions
        ],
        "incremental": [
            {"source": inc.source, "scale": inc.scale, "new_lines": inc.new_lines,
             "others_cdc": inc.captured,
             "unavailable": inc.unavailable, "full_s": [r.wall_s for r in inc.full],
             "incremental_s": [r.wall_s for r in inc.incremental], "ratio": inc.ratio,
             "run_s": inc.run_s, "run_ratio": inc.run_ratio}
            for inc in section.incremental
        ],
        "targets": [target_json(t) for t in ingest_targets(section)],
    }  # fmt: skip


# ---------------------------------------------------------------- results.json


@dataclass
class ScaleResult:
    scale: int
    source: Source
    outcomes: list[Outcome]
    targets: list[Target]
    warnings: list[str]


def run_json(run: Run) -> dict[str, Any]:
    return {
        "wall_s": round(run.wall_s, 4),
        "max_rss_kib": run.max_rss_kib,
        "other_cores": round(run.other_cores, 3),
    }


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    walls = outcome.walls
    return {
        "contender": outcome.name,
        "status": "ok" if outcome.unavailable is None else "unavailable",
        "reason": outcome.unavailable,
        "median_s": outcome.median_s,
        "min_s": min(walls) if walls else None,
        "max_s": max(walls) if walls else None,
        "peak_rss_mib": outcome.peak_rss_mib,
        "setup_s": outcome.setup_s,
        "warmup": run_json(outcome.warmup) if outcome.warmup else None,
        "runs": [run_json(r) for r in outcome.runs],
        "output": asdict(outcome.summary) if outcome.summary else None,
        "check": outcome.check,
    }


def target_json(t: Target) -> dict[str, Any]:
    return {"target": t.label, "value": t.value, "goal": t.goal, "result": t.status}


def results_json(
    settings: Settings,
    help_timing: HelpTiming | None,
    scales: list[ScaleResult],
    http: HttpSection | None = None,
    ingest: IngestSection | None = None,
) -> dict[str, Any]:
    help_part = None
    if help_timing is not None:
        help_part = {**asdict(help_timing), "target": target_json(help_target(help_timing))}
    return {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "duckdb": duckdb.__version__},
        "settings": {**asdict(settings), "scales": list(settings.scales)},
        "sluice_help": help_part,
        "scales": [
            {
                "scale": s.scale,
                "source": {"path": str(s.source.path), "counts": s.source.counts,
                           "generate_s": s.source.generate_s},
                "contenders": [outcome_json(o) for o in s.outcomes],
                "targets": [target_json(t) for t in s.targets],
                "warnings": s.warnings,
            }
            for s in scales
        ],
        "http": None if http is None else {"scale": HTTP_SCALE, **http_json(http)},
        "ingest": None if ingest is None else ingest_json(ingest),
    }  # fmt: skip


def write_results(payload: dict[str, Any]) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, RESULTS)


# ---------------------------------------------------------------- main


def bench_scale(
    scale: int, settings: Settings, generator: Callable[..., dict[str, int]]
) -> ScaleResult:
    source = ensure_source(scale, settings, generator)
    outcomes = [run_contender(c, source.path, scale, settings) for c in CONTENDERS]
    warnings = check_outcomes(outcomes)
    return ScaleResult(scale, source, outcomes, scale_targets(scale, outcomes), warnings)


def main() -> int:
    settings = settings_from_env()
    try:
        generator = load_generator(settings.generator)
    except (ImportError, AttributeError, ValueError) as exc:
        err.print(f"[red]cannot load the source generator {settings.generator}: {exc}")
        return 2
    if settings.only_ingest:
        progress(f"ingestion section only; results -> {RESULTS}")
        ingest = bench_ingest(settings, generator)
        print_ingest(ingest)
        write_results(results_json(settings, None, [], None, ingest))
        out.print(f"[dim]results written to {RESULTS.relative_to(ROOT)}")
        return 0
    progress(f"scales {list(settings.scales)}, seed {settings.seed}; results -> {RESULTS}")
    help_timing = time_help()
    done: list[ScaleResult] = []
    http: HttpSection | None = None
    for scale in settings.scales:
        done.append(bench_scale(scale, settings, generator))
        print_scale(done[-1], settings.repeats(scale))
        if scale == HTTP_SCALE and settings.http:
            http = bench_http(done[-1])
            print_http(http, scale)
        write_results(results_json(settings, help_timing, done, http))
    ingest: IngestSection | None = None
    if settings.ingest:
        ingest = bench_ingest(settings, generator)
        print_ingest(ingest)
        write_results(results_json(settings, help_timing, done, http, ingest))
    out.print()
    out.print(targets_table("startup", [help_target(help_timing)]))
    if help_timing.unavailable:
        out.print(f"[yellow]unavailable: {escape(help_timing.unavailable)}")
    out.print(f"[dim]results written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

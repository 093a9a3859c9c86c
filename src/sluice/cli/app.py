"""The ``sluice`` commands. Each parses, opens the Project, calls one method, renders.

Exit codes: 0 success; 1 error; 2 invalid configuration or usage; 3 not found;
4 a job run ended in a state other than SUCCEEDED.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core

from sluice.cli import render

if TYPE_CHECKING:
    from collections.abc import Callable

    from sluice.jobs.store import JobRun
    from sluice.project import Project

EXIT_RUN_NOT_SUCCEEDED = 4

app = typer.Typer(
    name="sluice",
    help="Sluice: the data engineering lifecycle on one machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
source_app = typer.Typer(
    help="Source systems: generate the classicmodels database, load mysqldump files, "
    "capture changes.",
    no_args_is_help=True,
)
job_app = typer.Typer(
    help="Job runs, as in Glue: start, status, runs, logs, stop, retry, graph, reset-cursor, "
    "accept-drift.",
    no_args_is_help=True,
)
catalog_app = typer.Typer(
    help="Browse the lake's catalog: tables, columns, snapshots.", no_args_is_help=True
)


class _QueryGroup(typer.core.TyperGroup):
    """``sluice query SQL`` means ``sluice query run SQL``; ``history`` is a subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] != "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


query_app = typer.Typer(
    cls=_QueryGroup,
    help='Read-only SQL over the lake, as in Athena: sluice query "SQL", or its history.',
)
config_app = typer.Typer(help="The project file: its JSON Schema.", no_args_is_help=True)
schedule_app = typer.Typer(
    help="Job schedules from sluice.yml: next run times, last slot handled.", no_args_is_help=True
)
app.add_typer(source_app, name="source")
app.add_typer(job_app, name="job")
app.add_typer(catalog_app, name="catalog")
app.add_typer(query_app, name="query")
app.add_typer(config_app, name="config")
app.add_typer(schedule_app, name="schedule")

ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--project", "-p", help="Project folder (default: the current folder or a parent)."
    ),
]


def _project(path: Path | None) -> Project:
    from sluice.project import Project

    return Project.open(path)


def _print_version(value: bool) -> None:
    if value:
        from sluice import __version__

        render.out.print(f"sluice {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Sluice: the data engineering lifecycle on one machine."""


@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder to create the project in (new or empty).")
    ],
    example: Annotated[str, typer.Option(help="Example project to start from.")] = "classicmodels",
    source: Annotated[
        str | None, typer.Option(help="Use an existing source, e.g. sqlite:///path/to/file.db.")
    ] = None,
    scale: Annotated[
        int, typer.Option(help="Scale of the generated source (when no --source).")
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the generated source.")] = 42,
) -> None:
    """Write a ready project: project file, models, checks and (by default) a generated source.

    Run again on a project, it leaves it as it is and refreshes sluice.schema.json.
    """
    from sluice.project import Project

    doing = "Writing the project" if source else f"Generating the source at scale {scale}"
    with render.err.status(f"{doing} in {directory}..."):
        result = Project.init(directory, example=example, source_url=source, scale=scale, seed=seed)
    if not result.created:
        render.out.print(
            f"{result.root} already holds this Sluice project; left as it is "
            "(sluice.schema.json is up to date)."
        )
        return
    render.out.print(f"Created project in {result.root}")
    if result.generated_rows:
        total = sum(result.generated_rows.values())
        render.out.print(
            f"Generated the classicmodels source ({total:,} rows) at {result.source_url}"
        )
    render.out.print(f"Next: cd {result.root} && sluice job start etl --wait")


@source_app.command("check")
def source_check(
    name: Annotated[
        str | None, typer.Argument(help="The source to check (default: the only one).")
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Connect to a source, list its tables with row counts, and warn if it can be written."""
    report = _project(project).check_source(name)
    table = render.Table("table", "rows")
    for table_name, rows in report.tables:
        table.add_row(table_name, f"{rows:,}")
    render.out.print(f"Source {report.name} at {report.url}: {len(report.tables)} tables")
    render.out.print(table)
    if report.write_privileges:
        render.err.print(
            f"Warning: the source's user may change data ({', '.join(report.write_privileges)}). "
            "Sluice only reads: give it a user with SELECT only."
        )


def _seconds(text: str) -> float:
    """Seconds from a plain number or a duration such as 90s, 2m, 1h30m or 1:30."""
    try:
        value: float | None = float(text)
    except ValueError:
        from pytimeparse.timeparse import timeparse

        value = timeparse(text)
    if value is None or value < 0:
        raise typer.BadParameter(
            f"'{text}' is not a duration; give seconds or e.g. 90s, 2m, 1h30m."
        )
    return float(value)


@source_app.command("simulate")
def source_simulate(
    name: Annotated[
        str | None, typer.Argument(help="The source to change (default: the only one).")
    ] = None,
    *,
    orders_per_minute: Annotated[
        float, typer.Option(help="New orders (with lines and a payment) per minute.")
    ] = 60.0,
    duration: Annotated[
        float,
        typer.Option(parser=_seconds, metavar="DURATION", help="How long: 90, 90s, 2m, 1h30m."),
    ] = 60.0,
    updates: Annotated[
        bool, typer.Option("--updates", help="Also ship and cancel orders, change prices.")
    ] = False,
    deletes: Annotated[
        bool, typer.Option("--deletes", help="Also remove cancelled orders and old payments.")
    ] = False,
    drift: Annotated[
        bool, typer.Option("--drift", help="Half way, add customers.loyaltyTier (and widen).")
    ] = False,
    outage: Annotated[
        float,
        typer.Option(
            parser=_seconds,
            metavar="DURATION",
            help="How long the source is unusable, a third of the way in (e.g. 20s).",
        ),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Same seed, same choices.")] = 1,
    project: ProjectOption = None,
) -> None:
    """Apply live activity to a source: new orders, updates, deletes, schema drift, an outage."""
    from sluice.sources.simulate import Activity

    activity = Activity(
        orders_per_minute=orders_per_minute,
        duration_seconds=duration,
        updates=updates,
        deletes=deletes,
        drift=drift,
        outage_seconds=outage,
        seed=seed,
    )
    proj = _project(project)
    with render.err.status(f"Simulating {duration:g} s of activity"):
        report = proj.simulate(activity, name)
    table = render.Table("activity", "count")
    for label, value in (
        ("orders placed", report.orders),
        ("order lines", report.order_lines),
        ("payments", report.payments),
        ("orders shipped", report.shipped),
        ("orders cancelled", report.cancelled),
        ("price changes", report.price_changes),
        ("orders deleted", report.deleted_orders),
        ("payments deleted", report.deleted_payments),
        ("sessions closed", report.sessions_closed),
    ):
        table.add_row(label, f"{value:,}")
    render.out.print(table)
    for change in report.schema_changes:
        render.out.print(f"Schema change: {change}")
    if report.outage_seconds:
        render.out.print(f"Outage: {report.outage_seconds:.1f} s")


@source_app.command("enable-cdc")
def source_enable_cdc(
    name: Annotated[
        str | None, typer.Argument(help="The source to capture (default: the only one).")
    ] = None,
    *,
    tables: Annotated[
        str | None,
        typer.Option(help="Comma-separated tables (default: those under jobs.<job>.cdc)."),
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Install a change log and triggers that capture inserts, updates and deletes."""
    chosen = [t.strip() for t in tables.split(",") if t.strip()] if tables else None
    captured = _project(project).enable_cdc(name, tables=chosen)
    table = render.Table("table", "primary key")
    for item in captured:
        table.add_row(item.name, ", ".join(item.primary_key))
    render.out.print(f"Capturing the changes of {len(captured)} tables")
    render.out.print(table)


@source_app.command("disable-cdc")
def source_disable_cdc(
    name: Annotated[
        str | None, typer.Argument(help="The source to stop capturing (default: the only one).")
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Remove the change capture triggers and the change log from a source."""
    removed = _project(project).disable_cdc(name)
    render.out.print(
        f"Removed change capture from {', '.join(removed)}; dropped the change log."
        if removed
        else "No change capture was installed; nothing to remove."
    )


@source_app.command("trim-cdc")
def source_trim_cdc(
    name: Annotated[
        str | None, typer.Argument(help="The source whose log to trim (default: the only one).")
    ] = None,
    *,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count the changes; delete nothing.")
    ] = False,
    project: ProjectOption = None,
) -> None:
    """Delete from the change log the changes every CDC table has applied."""
    trim = _project(project).trim_cdc(name, dry_run=dry_run)
    table = render.Table("raw table", "applied up to")
    for raw, position in trim.positions.items():
        table.add_row(raw, position or "nothing yet (reads in full)")
    render.out.print(table)
    verb = "Would delete" if trim.dry_run else "Deleted"
    render.out.print(f"{verb} {trim.deleted:,} changes every table has applied.")


@source_app.command("generate")
def source_generate(
    scale: Annotated[int, typer.Option(help="1 is the original's size; rows grow linearly.")] = 1,
    seed: Annotated[int, typer.Option(help="Same seed and scale give the same data.")] = 42,
    out: Annotated[
        Path | None,
        typer.Option(help="SQLite file to write (replaced atomically; default classicmodels.db)."),
    ] = None,
    into: Annotated[
        str | None,
        typer.Option(
            help="Database URL to write the tables into instead: sqlite:///file.db, "
            "mysql://user@host:3306/db or postgresql://user@host:5432/db."
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="With --into: replace tables that exist.")
    ] = False,
) -> None:
    """Generate the classicmodels source database as a SQLite file or into a server."""
    from sluice.errors import ConfigError
    from sluice.sources.classicmodels import generate_classicmodels, write_classicmodels

    if out is not None and into is not None:
        raise ConfigError("Pass either --out FILE or --into URL, not both.")
    target = into if into is not None else str(out or Path("classicmodels.db"))
    shown = _redacted(target)
    with render.err.status(f"Generating classicmodels at scale {scale} into {shown}..."):
        if into is not None:
            counts = write_classicmodels(into, scale=scale, seed=seed, replace=replace)
        else:
            counts = generate_classicmodels(target, scale=scale, seed=seed)
    _print_counts(counts, f"{shown} (scale {scale}, seed {seed})")


@source_app.command("load-dump")
def source_load_dump(
    file: Annotated[Path, typer.Argument(help="A mysqldump-format .sql file.")],
    into: Annotated[
        str,
        typer.Option(
            help="Database URL to load into: sqlite:///file.db, mysql://user@host:3306/db "
            "or postgresql://user@host:5432/db (password as ${env:VAR})."
        ),
    ],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace tables that exist (default: refuse).")
    ] = False,
    encoding: Annotated[
        str | None,
        typer.Option(help="Text encoding of the dump, e.g. utf8mb4 or latin1 (default: detect)."),
    ] = None,
) -> None:
    """Load a mysqldump file into SQLite, MariaDB or PostgreSQL, all or nothing."""
    from sluice.sources.dump import load_dump

    shown = _redacted(into)
    with render.err.status(f"Loading {file} into {shown}..."):
        counts = load_dump(file, into, replace=replace, encoding=encoding)
    _print_counts(counts, f"{file} -> {shown}")


def _redacted(url: str) -> str:
    from sluice.config import redact

    return redact(url)


def _print_counts(counts: dict[str, int], title: str) -> None:
    table = render.Table("table", "rows", title=title)
    for name, rows in counts.items():
        table.add_row(name, f"{rows:,}")
    render.out.print(table)


@job_app.command("start")
def job_start(
    job: Annotated[str, typer.Argument(help="Job name from sluice.yml, e.g. etl.")],
    *,
    wait: Annotated[
        bool, typer.Option("--wait", help="Run to the end here, with progress.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="Minutes before the run ends as TIMEOUT (default: the job's)."),
    ] = None,
    start_from: Annotated[
        list[str] | None,
        typer.Option("--from", help="Rerun this task (e.g. fact_orders) and every task after it."),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only this task and the checks on its table (repeatable)."),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Leave this task out (repeatable).")
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Start a job run and print its id; --wait runs it to the end and prints its state.

    With --from, --only or --exclude the tasks left out keep their published tables."""
    selection: dict[str, Any] = {
        "timeout_minutes": timeout,
        "start_from": _names(start_from),
        "only": _names(only),
        "exclude": _names(exclude),
    }
    if not wait:
        render.out.print(_project(project).jobs.start(job, **selection).run_id)
        return
    _run_here(project, quiet, lambda proj, here: proj.jobs.start(job, **here, **selection))


def _names(values: list[str] | None) -> list[str]:
    """Task names from repeated options, each possibly a comma-separated list."""
    return [n.strip() for v in values or [] for n in v.split(",") if n.strip()]


@job_app.command("retry")
def job_retry(
    job: Annotated[str, typer.Argument(help="Job name.")],
    run_id: Annotated[str, typer.Argument(help="A FAILED run's id (or a unique prefix).")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Run to the end here, with progress.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    project: ProjectOption = None,
) -> None:
    """Resume a failed run in a new run that reuses the tasks it finished; print the new id."""
    if not wait:
        render.out.print(_project(project).jobs.retry(job, run_id).run_id)
        return
    _run_here(project, quiet, lambda proj, here: proj.jobs.retry(job, run_id, **here))


def _run_here(
    project: Path | None, quiet: bool, launch: Callable[[Project, dict[str, Any]], JobRun]
) -> None:
    """Run a job to its end in this process and print its final state: ``launch`` gets the
    project and the keyword arguments that run it here (``wait``, the catalog process forked
    before the project is read, and the progress bars unless ``quiet``)."""
    from sluice.lake.catalog_process import forked_catalog

    with forked_catalog() as catalog:
        proj = _project(project)
        if quiet:
            run = launch(proj, {"wait": True, "catalog": catalog})
        else:
            with render.RichProgress() as progress:
                run = launch(proj, {"wait": True, "catalog": catalog, "progress": progress})
    _print_final(run)


@job_app.command("graph")
def job_graph(
    job: Annotated[str, typer.Argument(help="Job name.")],
    fmt: Annotated[str, typer.Option("--format", help="text, dot (Graphviz) or mermaid.")] = "text",
    project: ProjectOption = None,
) -> None:
    """Print the job's task graph: extracts, models, checks, then the publish."""
    sys.stdout.write(_project(project).jobs.graph(job).render(fmt))


def _print_final(run: JobRun) -> None:
    render.out.print(
        f"{run.run_id} {run.state.value} in {run.duration_seconds:.1f}s: "
        f"{run.rows_read:,} rows read, {run.rows_written:,} written"
    )
    for line in render.drift_lines(run.report.get("schema_drift") or {}):
        render.out.print(line)
    if run.state != "SUCCEEDED":
        render.err.print(f"Error: {run.error}")
        raise typer.Exit(EXIT_RUN_NOT_SUCCEEDED)


@job_app.command("status")
def job_status(
    job: Annotated[str, typer.Argument(help="Job name.")],
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix of it).")],
    tasks: Annotated[bool, typer.Option("--tasks", help="Also list the run's tasks.")] = False,
    project: ProjectOption = None,
) -> None:
    """Print the run's state: STARTING, RUNNING, STOPPING, STOPPED, SUCCEEDED, FAILED or TIMEOUT.

    --tasks adds a table of its tasks: PENDING, RUNNING, SUCCEEDED, FAILED or SKIPPED."""
    proj = _project(project)
    run = proj.jobs.get(job, run_id)
    queued = run.state == "STARTING" and run.stage == "queued"
    render.out.print(run.state.value + (" (queued)" if queued else ""))
    if tasks:
        render.out.print(render.tasks_table(proj.jobs.tasks(job, run.run_id)))


@job_app.command("runs")
def job_runs(
    job: Annotated[str, typer.Argument(help="Job name.")],
    limit: Annotated[int, typer.Option(help="How many of the newest runs to show.")] = 20,
    project: ProjectOption = None,
) -> None:
    """List a job's runs: start, duration, state, rows read and written, error."""
    runs = _project(project).jobs.runs(job, limit=limit)
    if not runs:
        render.out.print(f"Job {job} has no runs yet; start one with 'sluice job start {job}'.")
        return
    render.out.print(render.runs_table(runs))


@job_app.command("logs")
def job_logs(
    job: Annotated[str, typer.Argument(help="Job name.")],
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix of it).")],
    project: ProjectOption = None,
) -> None:
    """Print a run's log."""
    sys.stdout.write(_project(project).jobs.logs(job, run_id))


@job_app.command("stop")
def job_stop(
    job: Annotated[str, typer.Argument(help="Job name.")],
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix of it).")],
    project: ProjectOption = None,
) -> None:
    """Stop a run; it ends as STOPPED and publishes nothing."""
    run = _project(project).jobs.stop(job, run_id)
    render.out.print(run.state.value)


@job_app.command("reset-cursor")
def job_reset_cursor(
    job: Annotated[str, typer.Argument(help="Job name.")],
    table: Annotated[
        str, typer.Argument(help="A table under the job's incremental: or cdc: section.")
    ],
    project: ProjectOption = None,
) -> None:
    """Make the job's next run read all of an incremental table (Glue's reset-job-bookmark)."""
    cursors = _project(project).jobs.reset_cursor(job, table)
    was = ", ".join(f"{column} = {value}" for column, value in cursors.items())
    render.out.print(
        f"Cursor of {table} reset{f' (was {was})' if was else ''}; "
        f"the next run of {job} reads the whole table."
    )


@job_app.command("accept-drift")
def job_accept_drift(
    job: Annotated[str, typer.Argument(help="Job name.")],
    table: Annotated[str, typer.Argument(help="The quarantined source table.")],
    project: ProjectOption = None,
) -> None:
    """Accept a quarantined table's schema change: the next run rebuilds its raw table."""
    target = _project(project).jobs.accept_drift(job, table)
    render.out.print(
        f"Schema change of {table} accepted; the next run of {job} rebuilds {target} "
        "with the source's current columns."
    )


@query_app.command("run")
def query(
    sql: Annotated[str, typer.Argument(help="One read-only SQL statement.")],
    database: Annotated[
        str, typer.Option(help="Database unqualified table names are in.")
    ] = "gold",
    output_format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    max_rows: Annotated[
        int | None, typer.Option(help="Stop after this many rows (table format: 1000 by default).")
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Run read-only SQL over the published lake tables, as in Athena."""
    from sluice.errors import ConfigError

    if output_format not in ("table", "csv", "json"):
        raise ConfigError(f"Unknown --format '{output_format}'; use table, csv or json.")
    limit = max_rows if max_rows is not None else (1000 if output_format == "table" else None)
    result = _project(project).query(sql, database=database, max_rows=limit)
    if output_format == "csv":
        render.write_csv(result.table)
    elif output_format == "json":
        render.write_json(result.table)
    else:
        render.out.print(render.arrow_table(result.table))
    if result.truncated:
        render.err.print(f"(showing the first {limit:,} rows; raise --max-rows to see more)")


@query_app.command("history")
def query_history(
    limit: Annotated[int, typer.Option(help="How many of the newest executions to show.")] = 20,
    project: ProjectOption = None,
) -> None:
    """List query executions of the HTTP API: state, time, rows, input bytes, SQL, error."""
    executions = _project(project).queries(limit=limit)
    if not executions:
        render.out.print("No query executions yet; start the server with 'sluice serve'.")
        return
    render.out.print(render.queries_table(executions))


@app.command()
def serve(
    *,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on, 0 for any free one (default: 8787).")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: 127.0.0.1).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Queries run at once, the pool (default: 4).")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(min=0.001, help="Seconds a query may run before it FAILS (default: 60)."),
    ] = None,
    max_rows: Annotated[
        int | None,
        typer.Option(min=1, help="Rows kept per result; more is flagged (default: 1000000)."),
    ] = None,
    memory_limit: Annotated[
        str | None,
        typer.Option(help="DuckDB memory limit, shared by running queries (default: 1GB)."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="DuckDB threads, shared by running queries (default: 2)."),
    ] = None,
    pg_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Also serve the PostgreSQL protocol on this port (off by default; the "
            "password comes from SLUICE_PG_PASSWORD).",
        ),
    ] = None,
    pg_user: Annotated[
        str | None, typer.Option(help="User name PostgreSQL clients log in as (default: sluice).")
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Serve the HTTP API (query executions and the catalog) until Ctrl-C.

    Options left out come from the project file's serve: section, then the defaults.
    """
    import logging

    from sluice.serve.server import serve as run_server

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    proj = _project(project)
    given = {
        "timeout_seconds": timeout,
        "max_rows": max_rows,
        "memory_limit": memory_limit,
        "threads": threads,
        "workers": workers,
    }
    limits = proj.config.serve.queries.model_copy(
        update={k: v for k, v in given.items() if v is not None}
    )

    pg_given = {"port": pg_port, "user": pg_user}
    pg = proj.config.serve.pg.model_copy(
        update={k: v for k, v in pg_given.items() if v is not None}
    )

    def ready(url: str) -> None:
        render.out.print(f"Sluice is serving {proj.root} at {url} (API docs: {url}/docs)")
        render.out.file.flush()

    def pg_ready(url: str) -> None:
        render.out.print(f"PostgreSQL clients connect to {url} (psql '{url}')", soft_wrap=True)
        render.out.file.flush()

    run_server(
        proj, host=host, port=port, limits=limits, pg=pg, on_ready=ready, on_pg_ready=pg_ready
    )
    render.out.print("Stopped.")


@app.command()
def scheduler(
    tick_seconds: Annotated[
        float | None,
        typer.Option(min=0.01, hidden=True, help="Longest sleep between ticks (default: 30)."),
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Start scheduled jobs at their cron slots, in the foreground, until Ctrl-C or SIGTERM."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    proj = _project(project)

    def ready() -> None:
        render.out.print(f"Scheduler running for {proj.root} (Ctrl-C to stop)")
        render.out.file.flush()

    proj.run_scheduler(tick_seconds=tick_seconds, on_ready=ready)


@schedule_app.command("list")
def schedule_list(
    count: Annotated[int, typer.Option(min=1, help="How many next run times to show.")] = 3,
    project: ProjectOption = None,
) -> None:
    """List scheduled jobs: cron, time zone, next run times, last slot handled and outcome."""
    schedules = _project(project).schedules(count=count)
    if not schedules:
        render.out.print(
            "No job has a schedule; add jobs.<name>.schedule: {cron: ...} to sluice.yml."
        )
        return
    render.out.print(render.schedules_table(schedules))


@catalog_app.command("tables")
def catalog_tables(
    database: Annotated[
        str | None, typer.Argument(help="Only this database (e.g. raw, gold).")
    ] = None,
    project: ProjectOption = None,
) -> None:
    """List tables with their row counts and current snapshot."""
    infos = _project(project).tables(database)
    table = render.Table("table", "rows", "files", "snapshot")
    for info in infos:
        table.add_row(
            str(info.table), f"{info.rows:,}", str(info.files), str(info.snapshot_id or "-")
        )
    render.out.print(table if infos else "No tables yet; run a job: sluice job start etl --wait")


@catalog_app.command("describe")
def catalog_describe(
    table_name: Annotated[
        str, typer.Argument(metavar="TABLE", help="db.table, or a gold table name.")
    ],
    project: ProjectOption = None,
) -> None:
    """Show a table's columns, types, row count and snapshot history."""
    desc = _project(project).describe(table_name)
    render.out.print(
        f"{desc.info.table}: {desc.info.rows:,} rows in {desc.info.files} files "
        f"at {desc.info.location}"
    )
    columns = render.Table("column", "type", "required")
    for col in desc.columns:
        columns.add_row(col.name, col.type, "yes" if col.required else "no")
    render.out.print(columns)
    history = render.Table(
        "snapshot", "committed (UTC)", "operation", "rows", "run id", title="snapshots"
    )
    for snap in desc.snapshots:
        history.add_row(
            str(snap.snapshot_id),
            snap.committed_at.strftime("%Y-%m-%d %H:%M:%S"),
            snap.operation,
            f"{snap.rows:,}",
            (snap.run_id or "")[:15],
        )
    render.out.print(history)


@app.command()
def crawl(
    name: Annotated[str, typer.Argument(help="The crawler's name under crawlers: in sluice.yml.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    project: ProjectOption = None,
) -> None:
    """Register the datasets under a crawler's folder as tables, as a Glue crawler does."""
    report = _project(project).crawl(name, dry_run=dry_run)
    for line in render.crawl_lines(report):
        render.out.print(line, markup=False)


EXIT_PLAN_HAS_CHANGES = 2


@app.command()
def plan(
    out: Annotated[
        Path | None,
        typer.Option("-out", "--out", help="Save the plan to this file for 'sluice apply FILE'."),
    ] = None,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode", help="Exit 0 without changes, 2 with changes, 1 on error."
        ),
    ] = False,
    destroy: Annotated[
        bool, typer.Option("--destroy", help="Plan removing what Sluice created.")
    ] = False,
    keep_data: Annotated[
        bool, typer.Option("--keep-data", help="With --destroy: keep the warehouse data.")
    ] = False,
    project: ProjectOption = None,
) -> None:
    """Show what apply would change: + create, ~ update, - destroy, -/+ replace."""
    from sluice.errors import ConfigError, SluiceError

    try:
        if keep_data and not destroy:
            raise ConfigError(
                "--keep-data goes with --destroy: 'sluice plan --destroy --keep-data'."
            )
        proj = _project(project)
        the_plan = proj.plan(destroy=destroy, keep_data=keep_data)
        if out is not None:
            from sluice.infra.state import save_plan

            save_plan(the_plan, out)
    except SluiceError as exc:
        if detailed_exitcode:
            exc.exit_code = 1  # --detailed-exitcode keeps 2 for "changes"
        raise
    _print_plan(the_plan)
    if out is not None:
        render.out.print(f"Saved the plan to {out}; apply exactly it with 'sluice apply {out}'.")
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(EXIT_PLAN_HAS_CHANGES)


@app.command()
def apply(
    plan_file: Annotated[
        Path | None,
        typer.Argument(metavar="FILE", help="A plan saved by 'sluice plan -out FILE'."),
    ] = None,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Apply without asking for 'yes'.")
    ] = False,
    project: ProjectOption = None,
) -> None:
    """Create and update the project's resources to match sluice.yml."""
    proj = _project(project)
    if plan_file is not None:
        from sluice.infra.state import load_plan

        _apply(proj, load_plan(plan_file), ask=False, show=False)
    else:
        _apply(proj, proj.plan(), ask=not auto_approve)


@app.command()
def destroy(
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Destroy without asking for 'yes'.")
    ] = False,
    keep_data: Annotated[
        bool, typer.Option("--keep-data", help="Keep the warehouse: table data and metadata.")
    ] = False,
    project: ProjectOption = None,
) -> None:
    """Remove what Sluice created: tables, databases, catalog, warehouse, state."""
    proj = _project(project)
    _apply(proj, proj.plan(destroy=True, keep_data=keep_data), ask=not auto_approve)


def _print_plan(the_plan: Any) -> None:
    from sluice.infra.plan import explain

    for line in explain(the_plan):
        render.out.print(line, markup=False)


def _apply(proj: Project, the_plan: Any, *, ask: bool, show: bool = True) -> None:
    from sluice.infra.plan import count_steps

    if show or not the_plan.has_changes:
        _print_plan(the_plan)
    if not the_plan.has_changes:
        return
    if ask:
        verb = "destroy everything Sluice created" if the_plan.destroy else "perform these actions"
        render.out.print(f"\nDo you really want to {verb}? Only 'yes' will be accepted: ", end="")
        render.out.file.flush()
        answer = sys.stdin.readline().strip()
        render.out.print("")
        if answer != "yes":
            action = "Destroy" if the_plan.destroy else "Apply"
            render.err.print(f"{action} cancelled; nothing was changed.")
            raise typer.Exit(1)
    result = proj.apply(the_plan)
    if result.stale_lock_pid is not None:
        render.err.print(
            f"Warning: took over a stale apply lock left by pid {result.stale_lock_pid}, "
            "which is no longer running."
        )
    added, changed, destroyed = count_steps(result.applied)
    action = "Destroy" if the_plan.destroy else "Apply"
    render.out.print(
        f"{action} complete! Resources: {added} added, {changed} changed, {destroyed} destroyed."
    )


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of sluice.yml (sluice init writes it as sluice.schema.json)."""
    import json

    from sluice.config import json_schema

    render.out.print(json.dumps(json_schema(), indent=2), markup=False)


TOP_COUNTRIES_SQL = """
SELECT l.country, sum(f.orderAmount) AS sales, count(DISTINCT f.orderNumber) AS orders
FROM fact_orders AS f JOIN dim_locations AS l USING (location_key)
GROUP BY l.country ORDER BY sales DESC LIMIT 10
"""


@app.command()
def demo(
    directory: Annotated[Path, typer.Argument(help="Folder for the demo project.")] = Path(".demo"),
    scale: Annotated[int, typer.Option(help="Scale of the generated source.")] = 1,
) -> None:
    """Run the whole lab: generate the source, run the ETL job, show catalog and top countries."""
    from sluice.config import PROJECT_FILE
    from sluice.project import Project

    if not (directory / PROJECT_FILE).is_file():
        with render.err.status(f"Creating the classicmodels project in {directory}..."):
            Project.init(directory, scale=scale)
    project = Project.open(directory)
    with render.RichProgress() as progress:
        run = project.run_job("etl", progress=progress)
    render.out.print(
        f"Job etl run {run.run_id[:15]} {run.state.value} in {run.duration_seconds:.1f}s"
    )
    if run.state != "SUCCEEDED":
        render.err.print(f"Error: {run.error}")
        raise typer.Exit(EXIT_RUN_NOT_SUCCEEDED)
    catalog_tables(project=directory)
    result = project.query(TOP_COUNTRIES_SQL)
    render.out.print(render.arrow_table(result.table, title="Top 10 countries by sales"))
    render.out.print(
        f'Try: sluice query --project {directory} "SELECT * FROM dim_products LIMIT 5"'
    )


def _exit_now(code: object) -> None:
    """Exit without tearing down the interpreter: all work is done and every stream flushed.

    Unloading DuckDB, pyarrow, pandas and pyiceberg at exit costs about 0.1 s per command.
    """
    import logging

    status = code if isinstance(code, int) else (0 if code is None else 1)
    if code is not None and not isinstance(code, int):
        render.err.print(str(code), markup=False)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def main() -> None:
    """Entry point: typer handles usage errors (exit 2); SluiceError becomes one line."""
    import logging

    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    debug = "--debug" in sys.argv[1:] or os.environ.get("SLUICE_DEBUG") == "1"
    try:
        app()
    except SystemExit as done:
        _exit_now(done.code)
    except Exception as exc:
        from sluice.errors import SluiceError

        if debug:
            raise
        if isinstance(exc, SluiceError):
            render.err.print(f"Error: {exc}", markup=False)
            raise SystemExit(exc.exit_code) from None
        render.err.print(
            f"Error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            markup=False,
        )
        raise SystemExit(1) from None

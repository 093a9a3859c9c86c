"""The ``sluice`` commands. Each parses, opens the Project, calls one method, renders.

Exit codes: 0 success; 1 error; 2 invalid configuration or usage; 3 not found;
4 a job run ended in a state other than SUCCEEDED.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sluice.cli import render

if TYPE_CHECKING:
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
    help="Source systems: generate the classicmodels database.", no_args_is_help=True
)
job_app = typer.Typer(
    help="Job runs, as in Glue: start, status, runs, logs, stop.", no_args_is_help=True
)
catalog_app = typer.Typer(
    help="Browse the lake's catalog: tables, columns, snapshots.", no_args_is_help=True
)
app.add_typer(source_app, name="source")
app.add_typer(job_app, name="job")
app.add_typer(catalog_app, name="catalog")

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
    """Write a ready project: project file, models, checks and (by default) a generated source."""
    from sluice.project import Project

    doing = "Writing the project" if source else f"Generating the source at scale {scale}"
    with render.err.status(f"{doing} in {directory}..."):
        result = Project.init(directory, example=example, source_url=source, scale=scale, seed=seed)
    render.out.print(f"Created project in {result.root}")
    if result.generated_rows:
        total = sum(result.generated_rows.values())
        render.out.print(
            f"Generated the classicmodels source ({total:,} rows) at {result.source_url}"
        )
    render.out.print(f"Next: cd {result.root} && sluice job start etl --wait")


@source_app.command("generate")
def source_generate(
    scale: Annotated[int, typer.Option(help="1 is the original's size; rows grow linearly.")] = 1,
    seed: Annotated[int, typer.Option(help="Same seed and scale give the same data.")] = 42,
    out: Annotated[Path, typer.Option(help="SQLite file to write (replaced atomically).")] = Path(
        "classicmodels.db"
    ),
) -> None:
    """Generate the classicmodels source database as an embedded SQLite file."""
    from sluice.sources.classicmodels import generate_classicmodels

    with render.err.status(f"Generating classicmodels at scale {scale}..."):
        counts = generate_classicmodels(out, scale=scale, seed=seed)
    table = render.Table("table", "rows", title=f"{out} (scale {scale}, seed {seed})")
    for name, rows in counts.items():
        table.add_row(name, f"{rows:,}")
    render.out.print(table)


@job_app.command("start")
def job_start(
    job: Annotated[str, typer.Argument(help="Job name from sluice.yml, e.g. etl.")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Run to the end here, with progress.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="Minutes before the run ends as TIMEOUT (default: the job's)."),
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Start a job run and print its id; --wait runs it to the end and prints its state."""
    proj = _project(project)
    if not wait:
        run = proj.jobs.start(job, timeout_minutes=timeout)
        render.out.print(run.run_id)
        return
    if quiet:
        run = proj.jobs.start(job, wait=True, timeout_minutes=timeout)
    else:
        with render.RichProgress() as progress:
            run = proj.jobs.start(job, wait=True, progress=progress, timeout_minutes=timeout)
    render.out.print(
        f"{run.run_id} {run.state.value} in {run.duration_seconds:.1f}s: "
        f"{run.rows_read:,} rows read, {run.rows_written:,} written"
    )
    if run.state != "SUCCEEDED":
        render.err.print(f"Error: {run.error}")
        raise typer.Exit(EXIT_RUN_NOT_SUCCEEDED)


@job_app.command("status")
def job_status(
    job: Annotated[str, typer.Argument(help="Job name.")],
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix of it).")],
    project: ProjectOption = None,
) -> None:
    """Print the run's state: STARTING, RUNNING, STOPPING, STOPPED, SUCCEEDED, FAILED or TIMEOUT."""
    run = _project(project).jobs.get(job, run_id)
    render.out.print(run.state.value)


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


@app.command()
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

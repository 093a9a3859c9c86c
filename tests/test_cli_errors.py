"""Every error through the real ``sluice`` command line, as a user meets it.

Each error exits with its documented code (2 configuration or usage, 3 not found, 1 other
errors, 4 a ``--wait`` run that did not succeed), prints exactly one ``Error: ...`` line on
stderr that says what to do next, shows no traceback (unless ``--debug``), and writes
nothing.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sluice.config import PROJECT_FILE
from sluice.project import Project
from sluice.sources.sqlite import sqlite_path
from tests.conftest import new_project, sluice_cli

Snapshot = dict[str, tuple[int, int] | None]

NO_ENV_PROJECT = {"SLUICE_PROJECT": "", "SLUICE_DEBUG": ""}


def snapshot(root: Path) -> Snapshot:
    """Every file and folder under ``root`` with its size and mtime (folders: None)."""
    found: Snapshot = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        found[str(path.relative_to(root))] = (
            (stat.st_size, stat.st_mtime_ns) if path.is_file() else None
        )
    return found


def error_line(result: subprocess.CompletedProcess[str], code: int | None, *words: str) -> str:
    """Assert ``result`` is a clean CLI error and return its one stderr line."""
    shown = f"exit {result.returncode}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}"
    if code is not None:
        assert result.returncode == code, shown
    assert "Traceback" not in result.stderr + result.stdout, shown
    lines = result.stderr.splitlines()
    assert len(lines) == 1, shown
    line = lines[0]
    assert line.startswith("Error: "), shown
    assert "unexpected" not in line, shown
    for word in words:
        assert word in line, f"{word!r} missing from: {line}"
    return line


def source_file(proj: Project) -> Path:
    """The SQLite file the project's classicmodels source URL names."""
    url = proj.config.sources["classicmodels"].url
    return sqlite_path(url, base_dir=proj.root)


def sqlite_count(path: Path, table: str) -> int:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (count,) = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    finally:
        con.close()
    return int(count)


def lake_count(root: Path, sql: str, database: str = "gold") -> int:
    table = Project.open(root).query(sql, database=database).table
    return int(table.column(0)[0].as_py())


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


@pytest.fixture(scope="module")
def writable(tmp_path_factory: pytest.TempPathFactory, source_db: Callable[[int], Path]) -> Project:
    """A built project of this module's own, for statements that try to change it."""
    proj = new_project(tmp_path_factory.mktemp("writable"), source_db(1))
    run = proj.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    return proj


# --- no project ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("job", "start", "etl"),
        ("job", "runs", "etl"),
        ("query", "SELECT 1"),
        ("catalog", "tables"),
    ],
)
def test_no_project_in_the_folder_or_its_parents(tmp_path: Path, args: tuple[str, ...]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = sluice_cli(*args, cwd=empty, env=NO_ENV_PROJECT)
    line = error_line(result, 2, PROJECT_FILE, str(empty), "--project", "sluice init")
    assert "No sluice.yml" in line
    assert result.stdout == ""
    assert list(empty.iterdir()) == []


def test_project_option_pointing_at_a_folder_without_a_project(tmp_path: Path) -> None:
    elsewhere = tmp_path / "not-a-project"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("not a project\n", encoding="utf-8")
    before = snapshot(tmp_path)
    result = sluice_cli(
        "job", "runs", "etl", "--project", elsewhere, cwd=tmp_path, env=NO_ENV_PROJECT
    )
    error_line(result, 2, str(elsewhere), "--project", "sluice init")
    assert snapshot(tmp_path) == before


def test_project_option_pointing_at_a_missing_folder_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = sluice_cli("query", "SELECT 1", "--project", missing, cwd=tmp_path, env=NO_ENV_PROJECT)
    error_line(result, 2, "--project", "sluice init")
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == []


# --- jobs and runs ------------------------------------------------------------------------


def test_unknown_job_suggests_the_closest_one(built: Callable[[int], Project]) -> None:
    proj = built(1)
    before = snapshot(proj.root)
    result = sluice_cli("job", "start", "etll", "--project", proj.root)
    line = error_line(result, 3, "'etll'", "Did you mean 'etl'?")
    assert "Jobs: etl" in line
    assert result.stdout == ""
    assert snapshot(proj.root) == before


@pytest.mark.parametrize("command", ["status", "logs", "stop"])
def test_unknown_run_id_points_at_job_runs(built: Callable[[int], Project], command: str) -> None:
    proj = built(1)
    before = snapshot(proj.root)
    result = sluice_cli("job", command, "etl", "jr_nope", "--project", proj.root)
    error_line(result, 3, "jr_nope", "sluice job runs etl")
    assert result.stdout == ""
    assert snapshot(proj.root) == before
    runs = proj.jobs.runs("etl")
    assert [run.state for run in runs] == ["SUCCEEDED"]


@pytest.mark.parametrize(
    "args",
    [
        ("job", "start", "etll"),
        ("job", "status", "etl", "jr_nope"),
        ("query", "SELECT 1"),
        ("catalog", "describe", "gold.nope"),
    ],
)
def test_errors_on_a_fresh_project_write_nothing(project: Project, args: tuple[str, ...]) -> None:
    before = snapshot(project.root)
    result = sluice_cli(*args, "--project", project.root)
    error_line(result, 3)
    assert snapshot(project.root) == before


# --- broken sources -----------------------------------------------------------------------


def run_failing_etl(proj: Project) -> tuple[subprocess.CompletedProcess[str], str]:
    """``job start etl --wait`` on a project whose source is broken; returns the run id too."""
    result = sluice_cli("job", "start", "etl", "--wait", "--quiet", "--project", proj.root)
    assert result.returncode == 4, result.stderr
    words = result.stdout.split()
    assert len(words) > 2, result.stdout
    assert words[1] == "FAILED", result.stdout
    return result, words[0]


def assert_nothing_published(proj: Project) -> None:
    assert parquet_files(proj.root) == []
    result = sluice_cli("query", "SELECT count(*) FROM fact_orders", "--project", proj.root)
    error_line(result, 3, "'gold'", "no published tables", "sluice job start etl")
    assert result.stdout == ""


def test_missing_source_file_fails_the_run_and_publishes_nothing(project: Project) -> None:
    missing = source_file(project)
    missing.unlink()
    result, run_id = run_failing_etl(project)
    error_line(result, 4, str(missing), "does not exist", "sluice source generate")
    assert not missing.exists()
    status = sluice_cli("job", "status", "etl", run_id, "--project", project.root)
    assert (status.returncode, status.stdout.strip()) == (0, "FAILED")
    logs = sluice_cli("job", "logs", "etl", run_id, "--project", project.root)
    assert logs.returncode == 0
    assert str(missing) in logs.stdout
    assert_nothing_published(project)


def test_source_file_that_is_not_a_database_fails_the_run(project: Project) -> None:
    text = source_file(project)
    text.write_text("orderNumber,quantityOrdered\n10100,30\n", encoding="utf-8")
    result, _run_id = run_failing_etl(project)
    error_line(result, 4, str(text), "not a SQLite database")
    assert text.read_text(encoding="utf-8").startswith("orderNumber,")
    assert_nothing_published(project)


def test_init_with_a_source_that_is_not_a_database_creates_nothing(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("hello\n", encoding="utf-8")
    before = snapshot(tmp_path)
    result = sluice_cli("init", tmp_path / "proj", "--source", f"sqlite:///{text}", cwd=tmp_path)
    error_line(result, 1, str(text), "not a SQLite database")
    assert snapshot(tmp_path) == before


# --- queries ------------------------------------------------------------------------------


def test_sql_syntax_error(built: Callable[[int], Project]) -> None:
    proj = built(1)
    before = snapshot(proj.root)
    result = sluice_cli("query", "SELEC count(*) FROM fact_orders", "--project", proj.root)
    error_line(result, 1, "SQL syntax error", "line 1")
    assert result.stdout == ""
    assert snapshot(proj.root) == before


def test_table_that_does_not_exist_lists_the_tables(built: Callable[[int], Project]) -> None:
    proj = built(1)
    before = snapshot(proj.root)
    result = sluice_cli("query", "SELECT count(*) FROM fact_order", "--project", proj.root)
    line = error_line(result, 3, "fact_order", "Tables you can query")
    listed = line.split("Tables you can query:", 1)[1]
    for table in ("gold.fact_orders", "gold.dim_customers", "raw.orderdetails"):
        assert table in listed
    assert result.stdout == ""
    assert snapshot(proj.root) == before


def test_describe_of_a_missing_table(built: Callable[[int], Project]) -> None:
    proj = built(1)
    before = snapshot(proj.root)
    result = sluice_cli("catalog", "describe", "gold.nope", "--project", proj.root)
    error_line(result, 3, "gold.nope", "sluice catalog tables")
    assert snapshot(proj.root) == before


def test_query_in_a_database_that_does_not_exist(built: Callable[[int], Project]) -> None:
    proj = built(1)
    result = sluice_cli("query", "SELECT 1", "--database", "bronze", "--project", proj.root)
    error_line(result, 3, "'bronze'", "gold, raw")


def test_unknown_output_format(built: Callable[[int], Project]) -> None:
    proj = built(1)
    before = snapshot(proj.root)
    result = sluice_cli("query", "SELECT 1", "--format", "xml", "--project", proj.root)
    error_line(result, 2, "'xml'", "table, csv or json")
    assert result.stdout == ""
    assert snapshot(proj.root) == before


READ_ONLY = ("Queries are read-only", "sluice job start")
LAKE_ONLY = ("Refused", "lake tables only")


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("INSERT INTO fact_orders SELECT * FROM fact_orders", ("INSERT", *READ_ONLY)),
        ("DELETE FROM fact_orders", ("DELETE", *READ_ONLY)),
        ("UPDATE fact_orders SET quantityOrdered = 0", ("UPDATE", *READ_ONLY)),
        ("CREATE TABLE fact_copy AS SELECT * FROM fact_orders", ("CREATE", *READ_ONLY)),
        ("CREATE VIEW fact_view AS SELECT 1 AS x", ("CREATE", *READ_ONLY)),
        ("DROP TABLE fact_orders", ("DROP", *READ_ONLY)),
        ("DROP VIEW fact_orders", ("DROP", *READ_ONLY)),
        ("ATTACH '{tmp}/attached.db' AS other", ("ATTACH", *READ_ONLY)),
        ("COPY fact_orders TO '{tmp}/out.csv'", ("COPY", *READ_ONLY)),
        ("COPY (SELECT * FROM fact_orders) TO '{tmp}/out.csv'", ("COPY", *READ_ONLY)),
        ("INSTALL httpfs", ("INSTALL", *READ_ONLY)),
        ("LOAD httpfs", READ_ONLY),
        ("SET threads = 1", ("SET", *READ_ONLY)),
        ("PRAGMA database_list", ("PRAGMA", *READ_ONLY)),
        ("SELECT 1; DROP TABLE fact_orders", ("one statement at a time",)),
        ("SELECT * FROM read_csv('/etc/passwd')", LAKE_ONLY),
        ("SELECT * FROM read_text('/etc/passwd')", LAKE_ONLY),
        ("SELECT * FROM read_text('{root}/sluice.yml')", LAKE_ONLY),
        ("SELECT * FROM read_blob('{root}/warehouse/../.sluice/catalog.db')", LAKE_ONLY),
        ("SELECT * FROM glob('/etc/*')", LAKE_ONLY),
    ],
)
def test_writes_and_outside_reads_are_refused(
    writable: Project, tmp_path: Path, sql: str, words: tuple[str, ...]
) -> None:
    root = writable.root
    count_sql = "SELECT count(*) FROM fact_orders"
    rows = lake_count(root, count_sql)
    assert rows == sqlite_count(source_file(writable), "orderdetails")
    before = snapshot(root)
    statement = sql.format(tmp=tmp_path, root=root)
    result = sluice_cli("query", statement, "--project", root)
    error_line(result, 1, *words)
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []
    assert snapshot(root) == before
    assert lake_count(root, count_sql) == rows
    assert lake_count(root, "SELECT count(*) FROM orderdetails", database="raw") == rows
    assert sorted(str(t.table) for t in writable.tables("gold")) == [
        "gold.dim_customers",
        "gold.dim_date",
        "gold.dim_employees",
        "gold.dim_locations",
        "gold.dim_products",
        "gold.fact_orders",
    ]


# --- project file -------------------------------------------------------------------------


def rewrite_project_file(proj: Project, old: str, new: str) -> int:
    """Replace one line of sluice.yml; return the 1-based number of the new line."""
    path = proj.root / PROJECT_FILE
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.rstrip("\n") == old)
    lines[index] = new + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    return index + 1


def test_unknown_key_in_the_project_file_names_key_and_line(project: Project) -> None:
    line_no = rewrite_project_file(project, "  warehouse: warehouse", "  wharehouse: warehouse")
    before = snapshot(project.root)
    result = sluice_cli("job", "start", "etl", "--wait", "--quiet", "--project", project.root)
    line = error_line(result, 2, PROJECT_FILE, f"line {line_no}", "'lake.wharehouse'")
    assert "unknown key" in line
    assert line.endswith("check its spelling. Did you mean 'warehouse'?")
    assert result.stdout == ""
    assert snapshot(project.root) == before
    assert not (project.root / ".sluice").exists()


def test_wrong_type_in_the_project_file_names_key_line_and_value(project: Project) -> None:
    line_no = rewrite_project_file(project, "    timeout_minutes: 30", "    timeout_minutes: soon")
    before = snapshot(project.root)
    result = sluice_cli("job", "runs", "etl", "--project", project.root)
    error_line(
        result, 2, PROJECT_FILE, f"line {line_no}", "'jobs.etl.timeout_minutes'", "number", "'soon'"
    )
    assert snapshot(project.root) == before


def test_project_file_that_is_not_yaml(project: Project) -> None:
    path = project.root / PROJECT_FILE
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.append("name: [unclosed")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = snapshot(project.root)
    result = sluice_cli("catalog", "tables", "--project", project.root)
    error_line(result, 2, PROJECT_FILE, "not valid YAML", "line")
    assert snapshot(project.root) == before


# --- init ---------------------------------------------------------------------------------


def test_init_into_a_non_empty_folder(tmp_path: Path, source_db: Callable[[int], Path]) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("keep me\n", encoding="utf-8")
    before = snapshot(tmp_path)
    result = sluice_cli("init", target, "--source", f"sqlite:///{source_db(1)}", cwd=tmp_path)
    error_line(result, 2, str(target), "not empty", "sluice init", "new or empty folder")
    assert result.stdout == ""
    assert snapshot(tmp_path) == before
    assert (target / "notes.txt").read_text(encoding="utf-8") == "keep me\n"


def test_init_over_an_existing_project_with_another_source(
    project: Project, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    shutil.copy(project.root.parent / "source.db", other)
    before = snapshot(project.root.parent)
    result = sluice_cli("init", project.root, "--source", f"sqlite:///{other}", cwd=tmp_path)
    error_line(result, 2, str(project.root), "already holds a Sluice project", "sluice.yml")
    assert snapshot(project.root.parent) == before


def test_init_with_an_unknown_example(tmp_path: Path) -> None:
    result = sluice_cli("init", tmp_path / "proj", "--example", "northwind", cwd=tmp_path)
    error_line(result, 2, "'northwind'", "classicmodels")
    assert list(tmp_path.iterdir()) == []


# --- usage errors and --debug -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("query",), ("Missing argument", "sql")),
        (("job", "start", "etl", "--bogus"), ("No such option: --bogus",)),
        (("jobs",), ("No such command 'jobs'", "Did you mean 'job'?")),
        (("query", "SELECT 1", "--max-rows", "many"), ("Invalid value for '--max-rows'",)),
        (
            ("source", "simulate", "--duration", "2 fortnights"),
            ("'--duration'", "'2 fortnights' is not a duration", "90s, 2m"),
        ),
        (("source", "simulate", "--outage", "-5s"), ("'--outage'", "'-5s' is not a duration")),
    ],
)
def test_usage_errors_exit_2_with_usage_and_help_hint(
    tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    result = sluice_cli(*args, cwd=tmp_path, env=NO_ENV_PROJECT)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "unexpected" not in result.stderr
    assert result.stderr.startswith("Usage: ")
    assert "--help' for help." in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("flag", "env"), [(("--debug",), {}), ((), {"SLUICE_DEBUG": "1"})], ids=["flag", "env"]
)
def test_debug_shows_the_traceback_of_the_same_error(
    built: Callable[[int], Project], flag: tuple[str, ...], env: dict[str, str]
) -> None:
    proj = built(1)
    before = snapshot(proj.root)
    result = sluice_cli(*flag, "job", "start", "etll", "--project", proj.root, env=env)
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sluice.errors.NotFoundError: Job 'etll'")
    assert "Did you mean 'etl'?" in last
    assert snapshot(proj.root) == before

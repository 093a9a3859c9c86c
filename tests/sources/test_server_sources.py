"""MariaDB and PostgreSQL as sources: the same lake as from SQLite, least privilege, secrets.

Each test loads the generated classicmodels data into a private database (MariaDB) or
schema (PostgreSQL), then runs the real ETL job against the server.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import psycopg
import pytest

from sluice.duck import connect as duckdb_connect
from sluice.errors import ConfigError, SourceError
from sluice.ingest.extract import EXTRACTED_AT_COLUMN, RUN_ID_COLUMN
from sluice.project import Project
from sluice.sources.base import RowsAbove, RowsAmong, open_source
from sluice.sources.classicmodels import expected_row_counts, write_classicmodels
from sluice.sources.dump import load_dump
from sluice.sources.server import ServerSource
from tests.conftest import SEED, extract_only_project, sluice_cli
from tests.sources.conftest import mysql_connect
from tests.test_cli_errors import error_line

pytestmark = pytest.mark.servers

PASSWORD_VARIABLE = "SLUICE_TEST_READER_PASSWORD"


def _lake_tables(project: Project, con: duckdb.DuckDBPyConnection, alias: str) -> None:
    """Expose every published table of ``project`` in DuckDB as ``alias_db.table`` views."""
    for info in project.lake.tables():
        files = list(project.lake.current_files(info.table))
        schema = f"{alias}_{info.table.database}"
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        con.execute(
            f"CREATE VIEW {schema}.{info.table.name} AS SELECT * "
            f"EXCLUDE ({RUN_ID_COLUMN}, {EXTRACTED_AT_COLUMN}) FROM read_parquet({files})"
            if info.table.database == "raw"
            else f"CREATE VIEW {schema}.{info.table.name} AS SELECT * FROM read_parquet({files})"
        )


def test_a_server_source_gives_the_same_lake_as_sqlite(
    tmp_path: Path,
    target: tuple[str, str],
    built: Callable[[int], Project],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dialect, url = target
    counts = write_classicmodels(url, scale=1, seed=SEED)
    assert counts == expected_row_counts(1)
    if dialect == "postgresql":  # analyzed as loaded: the planner knows the tables' sizes
        with psycopg.connect(url) as con:
            analyzed = dict(
                con.execute(
                    "SELECT relname, CAST(reltuples AS bigint) FROM pg_class "
                    "WHERE relnamespace = CAST(current_schema() AS regnamespace) "
                    "AND relkind = 'r'"
                ).fetchall()
            )
        assert analyzed == {name: n for name, n in counts.items()}
    Project.init(tmp_path / "project", source_url=url)
    project = Project.open(tmp_path / "project")
    attaches = []
    real_attach = ServerSource.attach

    def attach(self: ServerSource, con: duckdb.DuckDBPyConnection, alias: str) -> None:
        attaches.append(alias)
        real_attach(self, con, alias)

    monkeypatch.setattr(ServerSource, "attach", attach)
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    assert len(attaches) == 1  # the tables are listed through the run's own attachment

    reference = built(1)
    con = duckdb.connect()
    _lake_tables(project, con, "server")
    _lake_tables(reference, con, "sqlite")
    names = [str(info.table) for info in reference.lake.tables()]
    assert [str(info.table) for info in project.lake.tables()] == names
    for name in names:
        database, table = name.split(".")
        server, sqlite = f"server_{database}.{table}", f"sqlite_{database}.{table}"
        assert (
            con.execute(f"DESCRIBE {server}").fetchall()
            == con.execute(f"DESCRIBE {sqlite}").fetchall()
        ), name
        differ = con.execute(
            f"SELECT (SELECT count(*) FROM {server}), (SELECT count(*) FROM {sqlite}), "
            f"(SELECT count(*) FROM (FROM {server} EXCEPT ALL FROM {sqlite})), "
            f"(SELECT count(*) FROM (FROM {sqlite} EXCEPT ALL FROM {server}))"
        ).fetchone()
        assert differ is not None
        assert differ[0] == differ[1] and differ[2:] == (0, 0), (dialect, name, differ)
    total = project.query("SELECT count(*) AS n, sum(orderAmount) AS s FROM fact_orders")
    assert total.table.to_pylist()[0]["n"] == expected_row_counts(1)["orderdetails"]


@pytest.fixture
def reader_url(target: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A URL of the target database for a new user that may only SELECT (password by env)."""
    dialect, url = target
    write_classicmodels(url, scale=1, seed=SEED)
    user, password = f"sluice_reader_{secrets.token_hex(3)}", secrets.token_hex(8)
    monkeypatch.setenv(PASSWORD_VARIABLE, password)
    parts = urlsplit(url)
    reference = "${env:" + PASSWORD_VARIABLE + "}"
    reader = url.replace(f"//{parts.netloc}", f"//{user}:{reference}@{parts.hostname}:{parts.port}")
    if dialect == "mysql":
        database = parts.path.lstrip("/")
        con = mysql_connect(url)
        with con.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
            cur.execute(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{password}'")
            for host in ("%", "localhost"):
                cur.execute(f"GRANT SELECT ON `{database}`.* TO '{user}'@'{host}'")
        try:
            yield reader
        finally:
            with con.cursor() as cur:
                for host in ("%", "localhost"):
                    cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
            con.close()
        return
    schema = parts.query.rsplit("%3D", 1)[1]
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        pg.execute(f"GRANT USAGE ON SCHEMA {schema} TO {user}")
        pg.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {user}")
    try:
        yield reader
    finally:
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute(f"DROP OWNED BY {user}")
            pg.execute(f"DROP ROLE IF EXISTS {user}")


def test_check_counts_rows_and_warns_only_when_the_user_can_write(
    tmp_path: Path, target: tuple[str, str], reader_url: str
) -> None:
    _, owner_url = target
    Project.init(tmp_path / "owner", source_url=owner_url)
    Project.init(tmp_path / "reader", source_url=reader_url)
    expected = tuple(sorted(expected_row_counts(1).items()))

    owner = Project.open(tmp_path / "owner").check_source()
    assert tuple(sorted(owner.tables)) == expected
    assert {"INSERT", "UPDATE", "DELETE"} & set(owner.write_privileges)

    reader = Project.open(tmp_path / "reader").check_source("classicmodels")
    assert tuple(sorted(reader.tables)) == expected
    assert reader.write_privileges == ()
    assert reader_url in (tmp_path / "reader" / "sluice.yml").read_text()

    shown = sluice_cli("source", "check", cwd=tmp_path / "owner")
    assert shown.returncode == 0, shown.stderr
    assert "orderdetails │ 2,996" in shown.stdout
    assert "may change data" in shown.stderr
    quiet = sluice_cli("source", "check", cwd=tmp_path / "reader")
    assert quiet.returncode == 0, quiet.stderr
    assert "may change data" not in quiet.stderr


def test_a_reader_with_a_password_from_the_environment_runs_the_job(
    tmp_path: Path, reader_url: str
) -> None:
    Project.init(tmp_path / "project", source_url=reader_url)
    project = Project.open(tmp_path / "project")
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    lines = project.query("SELECT count(*) AS n FROM fact_orders").table.to_pylist()
    assert lines == [{"n": expected_row_counts(1)["orderdetails"]}]


def test_a_password_written_into_the_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        Project.init(tmp_path / "p", source_url="mysql://me:hunter2@127.0.0.1:3306/shop")
    assert "hunter2" not in str(caught.value) and "${env:NAME}" in str(caught.value.hint)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("scheme", ["mysql", "postgresql"])
def test_an_unreachable_server_is_one_line_without_the_password(
    tmp_path: Path, scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_VARIABLE, "pa55-word")
    url = f"{scheme}://me:${{env:{PASSWORD_VARIABLE}}}@127.0.0.1:9/shop"
    with pytest.raises(SourceError) as caught:
        Project.init(tmp_path / "p", source_url=url)
    assert "Cannot connect to source" in str(caught.value)
    assert "pa55-word" not in str(caught.value)
    result = sluice_cli("init", tmp_path / "q", "--source", url, cwd=tmp_path)
    line = error_line(result, None, "Cannot connect")
    assert "pa55-word" not in line
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize(("query", "compressed"), [("", "OFF"), ("?compression=preferred", "ON")])
def test_mysql_reads_uncompressed_unless_the_url_asks(
    tmp_path: Path, mysql_url: str, query: str, compressed: str
) -> None:
    write_classicmodels(mysql_url, scale=1, seed=SEED)
    source = open_source(mysql_url + query, base_dir=tmp_path)
    table = next(t for t in source.tables() if t.name == "orderdetails")
    con = duckdb_connect()
    source.attach(con, "src")
    status = con.execute(
        "SELECT * FROM mysql_query('src', 'SELECT VARIABLE_VALUE FROM "
        "information_schema.SESSION_STATUS WHERE VARIABLE_NAME = ''COMPRESSION''')"
    ).fetchall()
    assert status == [(compressed,)]
    con.execute(f"CREATE TABLE copied AS SELECT * FROM {source.relation('src', table)}")
    read = con.execute(
        "SELECT count(*), sum(orderNumber), sum(quantityOrdered), sum(priceEach), "
        "sum(orderLineNumber), count(DISTINCT productCode) FROM copied"
    ).fetchone()
    server = mysql_connect(mysql_url, urlsplit(mysql_url).path.lstrip("/"))
    with server.cursor() as cur:
        cur.execute(
            "SELECT count(*), sum(orderNumber), sum(quantityOrdered), sum(priceEach), "
            "sum(orderLineNumber), count(DISTINCT productCode) FROM orderdetails"
        )
        expected = cur.fetchone()
    server.close()
    assert read == tuple(expected) and read[0] == expected_row_counts(1)["orderdetails"]


def test_an_unknown_mysql_compression_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        open_source("mysql://me@127.0.0.1:3306/shop?compression=zstd", base_dir=tmp_path)
    assert "compression=zstd" in str(caught.value)
    assert "disabled, preferred, required" in str(caught.value.hint)


NUMBERS_DUMP = b"""/*!40101 SET NAMES latin1 */;
CREATE TABLE `readings` (
  `id` int(10) unsigned NOT NULL,
  `flag` bit(1) DEFAULT NULL,
  `mask` bit(8) DEFAULT NULL,
  `wide` bit(64) DEFAULT NULL,
  `price` decimal(10,2) unsigned DEFAULT NULL,
  `whole` decimal DEFAULT NULL,
  `ratio` double unsigned DEFAULT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;
INSERT INTO `readings` VALUES (1,b'1',b'00000101',b'1111111111111111111111111111111111111111111111111111111111111111',12.34,1234567890,1.5),(4294967295,b'0',b'11111111',b'1',99999999.99,NULL,NULL);
"""
READINGS = [
    (1, True, 5, Decimal(2**64 - 1), Decimal("12.34"), Decimal(1234567890), 1.5),
    (4294967295, False, 255, Decimal(1), Decimal("99999999.99"), None, None),
]


def test_unsigned_decimals_and_bit_strings_keep_their_values(
    tmp_path: Path, target: tuple[str, str]
) -> None:
    _, url = target
    dump = tmp_path / "readings.sql"
    dump.write_bytes(NUMBERS_DUMP)
    load_dump(dump, url)
    project = extract_only_project(tmp_path / "project", url)
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    rows = project.query(
        f"SELECT * EXCLUDE ({RUN_ID_COLUMN}, {EXTRACTED_AT_COLUMN}) FROM readings ORDER BY id",
        database="raw",
    )
    assert [tuple(row.values()) for row in rows.table.to_pylist()] == READINGS
    described = project.query("DESCRIBE readings", database="raw").table.to_pylist()
    types = {row["column_name"]: row["column_type"] for row in described}
    assert (types["flag"], types["mask"], types["wide"]) == ("BOOLEAN", "BIGINT", "DECIMAL(20,0)")
    assert (types["price"], types["ratio"]) == ("DECIMAL(10,2)", "DOUBLE")


def test_postgresql_numeric_and_bit_types_read_without_rounding(
    tmp_path: Path, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(
            "CREATE TABLE measures (id integer PRIMARY KEY, amount numeric, "
            "flags bit(8), bits bit varying(20), one bit(1))"
        )
        con.execute(
            "INSERT INTO measures VALUES (1, 1.5, B'00000101', B'101', B'1'), "
            "(2, -0.25, B'11111111', B'', B'0'), (3, NULL, NULL, NULL, NULL)"
        )
    project = extract_only_project(tmp_path / "project", postgres_url)
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    rows = project.query(
        "SELECT id, amount, flags, bits, one FROM measures ORDER BY id", database="raw"
    )
    assert [tuple(r.values()) for r in rows.table.to_pylist()] == [
        (1, 1.5, 5, "101", True),
        (2, -0.25, 255, "", False),
        (3, None, None, None, None),
    ]


def test_postgresql_reads_a_key_range_or_list_in_one_query_on_its_index(
    tmp_path: Path, postgres_url: str
) -> None:
    name = 'line "items'
    quoted = '"line ""items"'
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f'CREATE TABLE {quoted} ("order No" integer, code text, qty integer)')
        con.execute(f'CREATE INDEX ON {quoted} ("order No")')
        con.execute(f"CREATE INDEX ON {quoted} (code)")
        con.execute(
            f"INSERT INTO {quoted} SELECT n, 'P' || n, n FROM generate_series(1, 20000) AS n"
        )
        con.execute(f"INSERT INTO {quoted} VALUES (20001, 'O''Hara', 1)")
        con.execute(f"ANALYZE {quoted}")
        source = open_source(postgres_url, base_dir=tmp_path)
        (table,) = source.tables()
        assert table.name == name
        duck = duckdb_connect()
        source.attach(duck, "src")

        def read(rows: RowsAbove | RowsAmong) -> list[tuple[object, ...]]:
            relation = source.relation_holding("src", table, rows, tmp_path)
            assert relation.startswith("postgres_query(")
            found = duck.execute(f"SELECT * FROM {relation} ORDER BY 1").fetchall()
            # The server answers the same query through an index, not by a full scan.
            query = relation.split(", '", 1)[1][:-2].replace("''", "'")
            plan = " ".join(str(r[0]) for r in con.execute(f"EXPLAIN {query}").fetchall())
            assert "Seq Scan" not in plan, plan
            return found

        assert read(RowsAbove("order No", 19998)) == [
            (19999, "P19999", 19999), (20000, "P20000", 20000), (20001, "O'Hara", 1),
        ]  # fmt: skip
        assert [r[0] for r in read(RowsAmong("order No", (5, 17, 20001)))] == [5, 17, 20001]
        assert read(RowsAmong("code", ("O'Hara", "P7"))) == [(7, "P7", 7), (20001, "O'Hara", 1)]

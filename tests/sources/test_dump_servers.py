"""Loading dumps and generated data into real MariaDB and PostgreSQL servers.

Each test gets its own MariaDB database or PostgreSQL schema (dropped afterwards) and
checks row counts, exact values (money to the cent), column names and declared types as
the server's information_schema reports them, and that failures leave nothing behind.
"""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from sluice.errors import SourceError, TargetExistsError
from sluice.sources.classicmodels import TABLES, classicmodels_rows, expected_row_counts
from sluice.sources.dump import load_dump
from tests.conftest import SEED, sluice_cli
from tests.sources.conftest import mysql_connect
from tests.sources.dumpwriter import write_dump
from tests.test_cli_errors import error_line

pytestmark = pytest.mark.servers

QUIRKS = Path(__file__).parent / "dumps" / "quirks_latin1.sql"
#: quirks_latin1.sql as a server returns it (PostgreSQL text cannot hold NUL: see below).
QUIRK_ITEMS = [
    (1, "L1", "O'Brien's \"best\"", "C:\\temp\\new", "0.10", b"\x00\xff\x10",
     "2004-02-29 13:45:00", "2004-03-01", 1500.0, 7),
    (2, "L2", "NULL", None, "1234567.89", b"a\x00b'\\", None, None, -0.25, -3),
    (3, "L1", "semi;colon -- not a comment # nor this /* nor this */",
     "line1\nline2; still the same string\nline3", "-5.00", b"\xde\xad\xbe\xef",
     "2005-12-31 23:59:59", None, 0.0, 0),
    (4, None, "Mü", "Åbo", "99999999.99", None, None, None, None, 12),
    (5, None, "", "tab\there\r\nctrl-z:\x1a nul: end", "0.01", None, None, None, None, 1),
    (6, None, "percent \\% and under \\_", "back\\slash at end\\", "1.00", None, None, None, None, 2),
    (7, None, "ÿ and £ and ©", "/*!40101 not a version comment */", "2.50", None, None, None, None, 3),
]  # fmt: skip
QUIRK_TYPES = {
    "mysql": [
        "int(11)", "varchar(20)", "varchar(200)", "mediumtext", "decimal(10,2)", "mediumblob",
        "datetime", "date", "double", "smallint(6)",
    ],
    "postgresql": [
        "integer", "character varying(20)", "character varying(200)", "text", "numeric(10,2)",
        "bytea", "timestamp without time zone", "date", "double precision", "smallint",
    ],
}  # fmt: skip
PG_TYPES = {
    "int(11)": "integer",
    "smallint(6)": "smallint",
    "decimal(10,2)": "numeric(10,2)",
    "text": "text",
    "mediumtext": "text",
    "mediumblob": "bytea",
    "date": "date",
}


def quirks_without_nul(folder: Path) -> Path:
    """quirks_latin1.sql minus the NUL inside a text value, which PostgreSQL refuses."""
    path = folder / "quirks_no_nul.sql"
    path.write_bytes(QUIRKS.read_bytes().replace(b"nul:\\0 end", b"nul: end"))
    return path


def query(dialect: str, url: str, sql: str) -> list[tuple[Any, ...]]:
    if dialect == "mysql":
        con = mysql_connect(url, urlsplit(url).path.lstrip("/"))
        try:
            with con.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            con.close()
    with psycopg.connect(url) as pg:
        cur = pg.execute(sql)
        return cur.fetchall() if cur.description else []


def q(dialect: str, name: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


def table_rows(dialect: str, url: str, table: str, order: tuple[str, ...]) -> list[tuple[Any, ...]]:
    keys = ", ".join(q(dialect, k) for k in order)
    return [
        tuple(map(norm, row))
        for row in query(dialect, url, f"SELECT * FROM {q(dialect, table)} ORDER BY {keys}")
    ]


def norm(value: Any) -> Any:
    """Values as the tests compare them: money as text to the cent, dates ISO."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def tables_in(dialect: str, url: str) -> list[str]:
    sql = (
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
        if dialect == "mysql"
        else "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema()"
    )
    return sorted(name for (name,) in query(dialect, url, sql))


def column_types(dialect: str, url: str, table: str) -> list[tuple[str, str, bool]]:
    """Name, type and nullability of each column, from information_schema."""
    if dialect == "mysql":
        sql = (
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS "
            f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
        )
        return [(n, t, nullable == "YES") for n, t, nullable in query(dialect, url, sql)]
    sql = (
        "SELECT column_name, data_type, character_maximum_length, numeric_precision, "
        "numeric_scale, is_nullable FROM information_schema.columns "
        f"WHERE table_schema = current_schema() AND table_name = '{table}' "
        "ORDER BY ordinal_position"
    )
    out = []
    for name, kind, length, precision, scale, nullable in query(dialect, url, sql):
        shown = kind
        if kind == "character varying":
            shown = f"{kind}({length})"
        elif kind == "numeric":
            shown = f"numeric({precision},{scale})"
        out.append((name, shown, nullable == "YES"))
    return out


def expected_type(dialect: str, declared: str) -> str:
    if dialect == "mysql":
        return declared
    varchar = re.fullmatch(r"varchar\((\d+)\)", declared)
    return f"character varying({varchar[1]})" if varchar else PG_TYPES[declared]


def assert_generated(dialect: str, url: str, scale: int = 1) -> None:
    """The server holds exactly the generated rows, with the sample's names and types."""
    assert tables_in(dialect, url) == sorted(t.name for t in TABLES)
    for table, rows in classicmodels_rows(scale=scale, seed=SEED):
        expected = sorted(
            tuple(f"{v:.2f}" if isinstance(v, float) else v for v in row) for row in rows
        )
        assert table_rows(dialect, url, table.name, table.primary_key) == expected, table.name
        assert column_types(dialect, url, table.name) == [
            (c.name, expected_type(dialect, c.type), c.nullable) for c in table.columns
        ]


# --- loading dumps ------------------------------------------------------------------------


@pytest.mark.parametrize(("style", "encoding"), [("sample", "cp1252"), ("mysqldump", "utf-8")])
def test_generated_dumps_load_exactly(
    tmp_path: Path, target: tuple[str, str], style: str, encoding: str
) -> None:
    dialect, url = target
    dump = write_dump(tmp_path / "cm.sql", seed=SEED, style=style, encoding=encoding)
    assert load_dump(dump, url) == expected_row_counts(1)
    assert_generated(dialect, url)


def test_quirks_load_exactly(tmp_path: Path, target: tuple[str, str]) -> None:
    dialect, url = target
    assert load_dump(quirks_without_nul(tmp_path), url) == {"shopLines": 3, "oddItems": 7}
    assert table_rows(dialect, url, "oddItems", ("itemId",)) == QUIRK_ITEMS
    assert table_rows(dialect, url, "shopLines", ("lineCode",)) == [
        ("L1", "Mü"),
        ("L2", "Åbo; 'quoted'"),
        ("L3", None),
    ]
    types = [kind for _name, kind, _null in column_types(dialect, url, "oddItems")]
    assert types == QUIRK_TYPES[dialect]
    fks = query(
        dialect,
        url,
        "SELECT count(*) FROM information_schema.REFERENTIAL_CONSTRAINTS "
        + (
            "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = 'oddItems'"
            if dialect == "mysql"
            else "WHERE constraint_schema = current_schema()"
        ),
    )
    assert fks == [(1,)]


def test_a_nul_in_text_fails_postgresql_cleanly_and_loads_into_mariadb(
    mysql_url: str, postgres_url: str
) -> None:
    with pytest.raises(SourceError, match=r"Loading into postgresql://.* failed: .*Nothing"):
        load_dump(QUIRKS, postgres_url)
    assert tables_in("postgresql", postgres_url) == []
    load_dump(QUIRKS, mysql_url)
    notes = query("mysql", mysql_url, "SELECT notes FROM oddItems WHERE itemId = 5")
    assert notes == [("tab\there\r\nctrl-z:\x1a nul:\x00 end",)]


def test_existing_tables_are_refused_unless_replace(
    tmp_path: Path, target: tuple[str, str]
) -> None:
    dialect, url = target
    load_dump(quirks_without_nul(tmp_path), url)
    query(dialect, url, f"DELETE FROM {q(dialect, 'oddItems')} WHERE {q(dialect, 'itemId')} > 1")
    if dialect == "postgresql":  # the DELETE above ran in its own committed transaction
        assert len(table_rows(dialect, url, "oddItems", ("itemId",))) == 1
    dump = write_dump(tmp_path / "cm.sql", seed=SEED)
    (tmp_path / "both.sql").write_bytes(
        dump.read_bytes() + quirks_without_nul(tmp_path).read_bytes()
    )
    with pytest.raises(TargetExistsError, match="Table 'shopLines' already exists"):
        load_dump(tmp_path / "both.sql", url)
    assert tables_in(dialect, url) == ["oddItems", "shopLines"]
    assert len(table_rows(dialect, url, "oddItems", ("itemId",))) == 1
    load_dump(tmp_path / "both.sql", url, replace=True)
    assert table_rows(dialect, url, "oddItems", ("itemId",)) == QUIRK_ITEMS
    assert tables_in(dialect, url) == sorted([t.name for t in TABLES] + ["oddItems", "shopLines"])


def test_a_failure_mid_load_leaves_nothing_half_written(
    tmp_path: Path, target: tuple[str, str]
) -> None:
    dialect, url = target
    quirks = quirks_without_nul(tmp_path)
    load_dump(quirks, url)
    query(dialect, url, f"DELETE FROM {q(dialect, 'oddItems')} WHERE {q(dialect, 'itemId')} > 2")
    before = table_rows(dialect, url, "oddItems", ("itemId",))
    assert len(before) == 2
    good = write_dump(tmp_path / "cm.sql", seed=SEED, rows_per_insert=50).read_bytes()
    cut = good.rindex(b"INSERT INTO `orderdetails`")
    broken = tmp_path / "broken.sql"
    broken.write_bytes(good[:cut] + b"INSERT INTO `orderdetails` VALUES (1,'x',2,3.00,4),(oops);\n")
    line = good[:cut].count(b"\n") + 1
    with pytest.raises(SourceError, match=f"at line {line}:"):
        load_dump(broken, url)
    assert tables_in(dialect, url) == ["oddItems", "shopLines"]

    replacing = tmp_path / "replacing.sql"
    replacing.write_bytes(quirks.read_bytes() + broken.read_bytes())
    line += quirks.read_bytes().count(b"\n")
    with pytest.raises(SourceError, match=f"at line {line}:"):
        load_dump(replacing, url, replace=True)
    assert tables_in(dialect, url) == ["oddItems", "shopLines"]
    assert table_rows(dialect, url, "oddItems", ("itemId",)) == before


# --- generate --into and the command line -----------------------------------------------


def test_cli_generate_and_load_dump_into_servers_with_a_password_reference(
    tmp_path: Path, mysql_url: str, postgres_url: str
) -> None:
    user = f"sluice_{secrets.token_hex(3)}"
    password = f"pw-{secrets.token_hex(6)}"
    database = urlsplit(mysql_url).path.lstrip("/")
    parts = urlsplit(mysql_url)
    admin = mysql_connect(mysql_url)
    with admin.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        cur.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'")
    try:
        secret_url = f"mysql://{user}:${{env:SLUICE_T_PW}}@{parts.hostname}:{parts.port}/{database}"
        env = {"SLUICE_T_PW": password}
        made = sluice_cli(
            "source", "generate", "--seed", str(SEED), "--into", secret_url, env=env, cwd=tmp_path
        )
        assert made.returncode == 0, made.stderr
        assert password not in made.stdout + made.stderr
        assert "2,996" in made.stdout
        assert_generated("mysql", mysql_url)
        wrong = sluice_cli(
            "source", "generate", "--into", secret_url, env={"SLUICE_T_PW": "wrong-" + password}
        )
        line = error_line(wrong, 1, "Cannot connect to mysql://", ":***@")
        assert password not in line
        again = sluice_cli("source", "generate", "--into", secret_url, env=env)
        error_line(again, 1, "Table 'productlines' already exists", "--replace")
        assert_generated("mysql", mysql_url)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()

    made = sluice_cli(
        "source", "generate", "--scale", "2", "--seed", str(SEED), "--into", postgres_url
    )
    assert made.returncode == 0, made.stderr
    assert_generated("postgresql", postgres_url, scale=2)
    dump = write_dump(tmp_path / "cm.sql", seed=SEED, style="single")
    loaded = sluice_cli("source", "load-dump", dump, "--into", postgres_url, "--replace")
    assert loaded.returncode == 0, loaded.stderr
    assert_generated("postgresql", postgres_url)


def test_a_table_with_a_64_character_name_loads_into_mariadb(
    tmp_path: Path, mysql_url: str
) -> None:
    name = "t" * 64
    dump = tmp_path / "long.sql"
    dump.write_text(
        f"CREATE TABLE `{name}` (`a` int(11) NOT NULL, PRIMARY KEY (`a`));\n"
        f"INSERT INTO `{name}` VALUES (1),(2);\n"
    )
    assert load_dump(dump, mysql_url) == {name: 2}
    load_dump(dump, mysql_url, replace=True)
    assert tables_in("mysql", mysql_url) == [name]
    assert table_rows("mysql", mysql_url, name, ("a",)) == [(1,), (2,)]

"""Loading mysqldump files into SQLite: the splitter, exact values, atomicity and errors."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from sluice.errors import DumpError, NotFoundError, SourceError, TargetExistsError
from sluice.project import Project
from sluice.sources import dump as dump_module
from sluice.sources.classicmodels import TABLES, expected_row_counts
from sluice.sources.dump import load_dump, read_dump, split_statements
from sluice.sources.sqlite import SqliteSource
from tests.conftest import SEED, extract_only_project, sluice_cli
from tests.sources.dumpwriter import write_dump
from tests.test_cli_errors import error_line, snapshot

DUMPS = Path(__file__).parent / "dumps"
QUIRKS = DUMPS / "quirks_latin1.sql"

#: The rows of quirks_latin1.sql as SQLite keeps them (decimal(10,2) has NUMERIC affinity).
QUIRK_ITEMS = [
    (1, "L1", "O'Brien's \"best\"", "C:\\temp\\new", 0.1, b"\x00\xff\x10",
     "2004-02-29 13:45:00", "2004-03-01", 1500.0, 7),
    (2, "L2", "NULL", None, 1234567.89, b"a\x00b'\\", None, None, -0.25, -3),
    (3, "L1", "semi;colon -- not a comment # nor this /* nor this */",
     "line1\nline2; still the same string\nline3", -5, b"\xde\xad\xbe\xef",
     "2005-12-31 23:59:59", None, 0.0, 0),
    (4, None, "Mü", "Åbo", 99999999.99, None, None, None, None, 12),
    (5, None, "", "tab\there\r\nctrl-z:\x1a nul:\x00 end", 0.01, None, None, None, None, 1),
    (6, None, "percent \\% and under \\_", "back\\slash at end\\", 1, None, None, None, None, 2),
    (7, None, "ÿ and £ and ©", "/*!40101 not a version comment */", 2.5, None, None, None, None, 3),
]  # fmt: skip
QUIRK_LINES = [("L1", "Mü"), ("L2", "Åbo; 'quoted'"), ("L3", None)]


def rows(path: Path, table: str, order: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as con:
        return con.execute(f'SELECT * FROM "{table}" ORDER BY {order}').fetchall()


def table_names(path: Path) -> list[str]:
    with sqlite3.connect(path) as con:
        found = con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        return [name for (name,) in found]


def declared_columns(path: Path, table: str) -> list[tuple[str, str, bool]]:
    """Name, declared type (SQLite upper-cases the plain names such as TEXT) and NOT NULL."""
    with sqlite3.connect(path) as con:
        info = con.execute(f"PRAGMA table_info('{table}')").fetchall()
    return [(name, kind.lower(), bool(notnull)) for _cid, name, kind, notnull, _d, _pk in info]


def same_as_generated(loaded: Path, generated: Path) -> None:
    """Every table of ``loaded`` holds exactly the generated rows, values and types."""
    for table in TABLES:
        order = ", ".join(f'"{k}"' for k in table.primary_key)
        assert rows(loaded, table.name, order) == rows(generated, table.name, order), table.name
        expected = [
            (c.name, c.type, not c.nullable or c.name in table.primary_key) for c in table.columns
        ]
        assert declared_columns(loaded, table.name) == expected


# --- the splitter -------------------------------------------------------------------------


def test_splitter_keeps_strings_whole_and_drops_comments() -> None:
    text = (
        b"/* a block\n comment; */ SET a=1;\n"
        b"-- line comment; here\n"
        b"# hash comment; here\n"
        b"INSERT INTO `t;x` VALUES ('a;b\\'c', \"d;\\\"e\", 'multi\nline;'), ('--', '#');\n"
        b"--not-a-comment-in-mysql-without-space;\n"
        b"/*!40101 SET NAMES latin1 */;\n"
    )
    statements = [(s.line, s.data) for s in split_statements(io.BytesIO(text))]
    assert statements == [
        (2, b"SET a=1"),
        (
            5,
            b"INSERT INTO `t;x` VALUES ('a;b\\'c', \"d;\\\"e\", 'multi\nline;'), ('--', '#')",
        ),
        (7, b"--not-a-comment-in-mysql-without-space"),
        (8, b"SET NAMES latin1"),
    ]


def test_splitter_hands_long_statements_on_in_parts_cut_outside_strings() -> None:
    values = ",\n".join(f"({i},'x;\n{i}')" for i in range(1000)).encode()
    text = b"INSERT INTO t VALUES\n" + values + b";\nSET b=2;\n"
    parts = list(split_statements(io.BytesIO(text), chunk_bytes=100))
    assert len(parts) > 50
    assert [p.done for p in parts[:-2]] == [False] * (len(parts) - 2)
    assert parts[-2].done and parts[-1].data == b"SET b=2"
    assert b"".join(p.data for p in parts[:-1]) == text.split(b";\nSET")[0]
    for part in parts[:-2]:
        assert part.data.count(b"'") % 2 == 0


def test_an_unterminated_string_names_its_line() -> None:
    with pytest.raises(DumpError, match=r"ends inside a '-quoted string \(line 3\)"):
        list(split_statements(io.BytesIO(b"SET a=1;\nINSERT INTO t VALUES ('oops);\n\n")))


# --- loading into SQLite ------------------------------------------------------------------


def test_quirks_load_exactly(tmp_path: Path) -> None:
    target = tmp_path / "quirks.db"
    counts = load_dump(QUIRKS, f"sqlite:///{target}")
    assert counts == {"shopLines": 3, "oddItems": 7}
    assert rows(target, "shopLines", '"lineCode"') == QUIRK_LINES
    assert rows(target, "oddItems", '"itemId"') == QUIRK_ITEMS
    types = [kind for _name, kind, _notnull in declared_columns(target, "oddItems")]
    assert types == [
            "int(11)", "varchar(20)", "varchar(200)", "mediumtext", "decimal(10,2)",
            "mediumblob", "datetime", "date", "double", "smallint(6)",
    ]  # fmt: skip
    with sqlite3.connect(target) as con:
        sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'oddItems'").fetchone()[0]
    assert 'FOREIGN KEY ("lineCode") REFERENCES "shopLines" ("lineCode")' in sql


def test_quirks_read_with_an_explicit_encoding(tmp_path: Path) -> None:
    utf8 = tmp_path / "quirks_utf8.sql"
    utf8.write_text(
        QUIRKS.read_bytes().decode("latin1").replace("SET NAMES latin1", "SET NAMES utf8")
    )
    loaded = {}
    for name, path, encoding in (("auto", utf8, None), ("fixed", QUIRKS, "latin1")):
        target = tmp_path / f"{name}.db"
        load_dump(path, f"sqlite:///{target}", encoding=encoding)
        loaded[name] = rows(target, "oddItems", '"itemId"')
    assert loaded["auto"] == loaded["fixed"] == QUIRK_ITEMS
    wrong = tmp_path / "wrong.db"
    load_dump(utf8, f"sqlite:///{wrong}", encoding="latin1")
    assert rows(wrong, "shopLines", '"lineCode"')[0] == ("L1", "MÃ¼")


@pytest.mark.parametrize(
    ("style", "encoding"),
    [("sample", "cp1252"), ("mysqldump", "utf-8"), ("single", "utf-8"), ("sample", "utf-8")],
)
def test_generated_dumps_in_every_style_load_exactly(
    tmp_path: Path, source_db: Callable[[int], Path], style: str, encoding: str
) -> None:
    dump = write_dump(tmp_path / "cm.sql", seed=SEED, style=style, encoding=encoding)
    target = tmp_path / "loaded.db"
    counts = load_dump(dump, f"sqlite:///{target}")
    assert counts == expected_row_counts(1)
    same_as_generated(target, source_db(1))


def test_a_long_insert_streams_in_small_chunks(
    tmp_path: Path, source_db: Callable[[int], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = write_dump(tmp_path / "cm.sql", scale=1, seed=SEED, rows_per_insert=100_000)
    monkeypatch.setattr(dump_module, "CHUNK_BYTES", 512)
    monkeypatch.setattr(dump_module, "BATCH_ROWS", 7)
    batches = [event for event in read_dump(dump) if isinstance(event, dump_module.Rows)]
    assert max(len(b.rows) for b in batches) <= 7
    assert sum(len(b.rows) for b in batches if b.table == "orderdetails") == 2996
    target = tmp_path / "loaded.db"
    load_dump(dump, f"sqlite:///{target}")
    same_as_generated(target, source_db(1))


def test_the_sqlite_source_extracts_a_loaded_dump(tmp_path: Path) -> None:
    dump = write_dump(tmp_path / "cm.sql", seed=SEED, style="sample", encoding="cp1252")
    target = tmp_path / "source.db"
    load_dump(dump, f"sqlite:///{target}")
    tables = {t.name: t for t in SqliteSource(f"sqlite:///{target}", tmp_path).tables()}
    credit = {c.name: c for c in tables["customers"].columns}["creditLimit"]
    assert (credit.source_type, credit.lake_type) == ("decimal(10,2)", "DECIMAL(10, 2)")
    Project.init(tmp_path / "project", source_url=f"sqlite:///{target}")
    project = Project.open(tmp_path / "project")
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    result = project.query(
        "SELECT count(*), sum(amount) FROM payments", database="raw"
    ).table.to_pylist()[0]
    with sqlite3.connect(target) as con:
        count, cents = con.execute(
            "SELECT count(*), sum(CAST(round(amount * 100) AS INTEGER)) FROM payments"
        ).fetchone()
    assert list(result.values()) == [count, Decimal(cents) / 100]


def test_unsigned_columns_load_into_sqlite_and_extract_exactly(tmp_path: Path) -> None:
    """SQLite's grammar refuses ``int(10) unsigned``; the loader keeps the type all the same."""
    dump = tmp_path / "unsigned.sql"
    dump.write_bytes(
        b"CREATE TABLE `parts` (\n  `id` int(10) unsigned NOT NULL,\n"
        b"  `price` decimal(10,2) unsigned DEFAULT NULL,\n  `weight` double unsigned,\n"
        b"  `stock` smallint(5) unsigned zerofill,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n"
        b"INSERT INTO `parts` VALUES (4294967295,99999999.99,0.5,65535),(1,0.10,NULL,0);\n"
    )
    target = tmp_path / "source.db"
    assert load_dump(dump, f"sqlite:///{target}") == {"parts": 2}
    (table,) = SqliteSource(f"sqlite:///{target}", tmp_path).tables()
    assert [(c.source_type, c.lake_type) for c in table.columns] == [
        ("int(10) unsigned", "BIGINT"),
        ("decimal(10,2) unsigned", "DECIMAL(10, 2)"),
        ("double unsigned", "DOUBLE"),
        ("smallint(5) unsigned", "INTEGER"),  # ZEROFILL only pads what MySQL shows
    ]
    project = extract_only_project(tmp_path / "project", f"sqlite:///{target}")
    assert project.run_job("etl").state == "SUCCEEDED"
    rows = project.query("SELECT id, price, weight, stock FROM parts ORDER BY id", database="raw")
    assert [tuple(r.values()) for r in rows.table.to_pylist()] == [
        (1, Decimal("0.10"), None, 0),
        (4294967295, Decimal("99999999.99"), 0.5, 65535),
    ]


# --- atomicity ------------------------------------------------------------------------------


def test_existing_tables_are_refused_unless_replace(tmp_path: Path) -> None:
    target = tmp_path / "q.db"
    load_dump(QUIRKS, f"sqlite:///{target}")
    with sqlite3.connect(target) as con:
        con.execute('DELETE FROM "oddItems" WHERE "itemId" > 2')
        con.execute("CREATE TABLE keepme (x)")
    before = target.read_bytes()
    with pytest.raises(TargetExistsError, match=r"Table 'shopLines' already exists .*--replace"):
        load_dump(QUIRKS, f"sqlite:///{target}")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.db"]
    load_dump(QUIRKS, f"sqlite:///{target}", replace=True)
    assert rows(target, "oddItems", '"itemId"') == QUIRK_ITEMS
    assert table_names(target) == ["keepme", "oddItems", "shopLines"]


def test_a_malformed_dump_names_the_line_and_writes_nothing(tmp_path: Path) -> None:
    good = QUIRKS.read_bytes()
    broken = tmp_path / "broken.sql"
    broken.write_bytes(good.replace(b"(6, 2, 1.00,", b"(6, 2 1.00,"))
    line = good[: good.index(b"(6, 2, 1.00,")].count(b"\n") + 1
    target = tmp_path / "out.db"
    with pytest.raises(DumpError, match=rf"Malformed INSERT into 'oddItems' at line {line}:"):
        load_dump(broken, f"sqlite:///{target}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.sql"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CREATE TABLE t (a int);\nINSERT INTO t VALUES (1,2);", "line 2: a row has 2 values"),
        ("CREATE TABLE t (a int);\n\nINSERT INTO u VALUES (1);", "'u' at line 3 comes before"),
        ("CREATE TABLE t (a int);\nUPDATE t SET a = 2;", "Unsupported statement at line 2"),
        (
            "SET x=1;\nCREATE TABLE t (\n a int(11) NOT NULL;",
            "CREATE TABLE at line 3: Expecting \\)",
        ),
        ("CREATE TABLE t (a geometry);", "'t.a' at line 1 has a type Sluice cannot load"),
        (
            "CREATE TABLE t (a int);\nINSERT INTO t VALUES ('x');",
            "line 2: value 'x' does not fit column 'a'",
        ),
        ("SET NAMES utf8;\n-- nothing else\n", "creates no tables"),
    ],
)
def test_malformed_dumps(tmp_path: Path, text: str, message: str) -> None:
    dump = tmp_path / "bad.sql"
    dump.write_text(text)
    with pytest.raises(DumpError, match=message):
        load_dump(dump, f"sqlite:///{tmp_path / 'out.db'}")
    assert not (tmp_path / "out.db").exists()


def test_a_missing_dump_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        load_dump(tmp_path / "nope.sql", f"sqlite:///{tmp_path / 'out.db'}")


# --- the command line -----------------------------------------------------------------------


def test_cli_load_dump_and_generate_into_sqlite(
    tmp_path: Path, source_db: Callable[[int], Path]
) -> None:
    dump = write_dump(tmp_path / "cm.sql", seed=SEED)
    loaded = sluice_cli("source", "load-dump", dump, "--into", "sqlite:///loaded.db", cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert "2,996" in loaded.stdout
    same_as_generated(tmp_path / "loaded.db", source_db(1))
    generated = sluice_cli(
        "source", "generate", "--seed", str(SEED), "--into", "sqlite:///gen.db", cwd=tmp_path
    )
    assert generated.returncode == 0, generated.stderr
    same_as_generated(tmp_path / "gen.db", source_db(1))
    again = sluice_cli("source", "generate", "--into", "sqlite:///gen.db", cwd=tmp_path)
    error_line(again, 1, "Table 'productlines' already exists", "--replace")
    replaced = sluice_cli(
        "source",
        "generate",
        "--scale",
        "2",
        "--into",
        "sqlite:///gen.db",
        "--replace",
        cwd=tmp_path,
    )
    assert replaced.returncode == 0, replaced.stderr
    assert (
        rows(tmp_path / "gen.db", "orders", "1")[-1][0]
        == 10100 + expected_row_counts(2)["orders"] - 1
    )


def test_cli_errors_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    (tmp_path / "bad.sql").write_text("CREATE TABLE t (a int);\nINSERT INTO t VALUES (1,;\n")
    before = snapshot(tmp_path)
    cases = [
        (("load-dump", "missing.sql", "--into", "sqlite:///x.db"), 3, ("missing.sql", "does not exist")),
        (("load-dump", QUIRKS, "--into", "oracle://me@db/x"), 2, ("Unsupported target URL",)),
        (("load-dump", "bad.sql", "--into", "sqlite:///x.db"), 1, ("line 2",)),
        (("load-dump", QUIRKS, "--into", "mysql://root:${env:SLUICE_T_PW}@127.0.0.1:1/x"), 1,
         ("Cannot connect to mysql://root:***@127.0.0.1:1/x",)),
        (("load-dump", QUIRKS, "--into", "postgresql://me:${env:SLUICE_T_PW}@127.0.0.1:1/x"), 1,
         ("Cannot connect to postgresql://me:***@127.0.0.1:1/x",)),
        (("generate", "--into", "mysql://root:${env:SLUICE_T_PW}@127.0.0.1:1/x"), 1,
         ("Cannot connect to mysql://root:***@127.0.0.1:1/x",)),
        (("generate", "--out", "a.db", "--into", "sqlite:///b.db"), 2, ("either --out",)),
        (("load-dump", QUIRKS, "--into", "sqlite:///bad.sql"), 1, ("is not a SQLite database",)),
        (("load-dump", QUIRKS, "--into", "mysql://root:${env:SLUICE_T_UNSET}@127.0.0.1:1/x"), 2,
         ("SLUICE_T_UNSET",)),
    ]  # fmt: skip
    for args, code, words in cases:
        result = sluice_cli("source", *args, cwd=tmp_path, env={"SLUICE_T_PW": "hunter2-secret"})
        line = error_line(result, code, *words)
        assert "hunter2-secret" not in result.stdout + result.stderr, line
    assert snapshot(tmp_path) == before


def test_a_row_the_database_refuses_writes_nothing(tmp_path: Path) -> None:
    dump = tmp_path / "nulls.sql"
    dump.write_text(
        "CREATE TABLE `t` (`a` int(11) NOT NULL);\nINSERT INTO `t` VALUES (1),(NULL);\n"
    )
    with pytest.raises(
        SourceError, match=r"NOT NULL constraint failed: t\.a\. Nothing was written"
    ):
        load_dump(dump, f"sqlite:///{tmp_path / 'out.db'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nulls.sql"]


def test_literals_become_values_of_their_column_types(tmp_path: Path) -> None:
    dump = tmp_path / "types.sql"
    dump.write_bytes(
        b"CREATE TABLE `t` (`a` varchar(10), `b` int(11), `c` decimal(5,2), `d` tinyint(1),"
        b" `e` bit(1), `f` blob, `g` double, `h` bigint(20) unsigned);\n"
        b"INSERT INTO `t` VALUES (X'4DC3BC','12','1.50',1,b'1','raw\\\\',1e-3,18446744073709551615),"
        b"(NULL,'1e3',-0.5,0,b'0',_binary 'x\\0',-0,0x10),\n"
        b"(0x4D,'-7','0',TRUE,b'',0x,'2.5',NULL);\n"
    )
    (table, batch) = list(read_dump(dump))
    assert [c.type for c in table.columns] == [
        "varchar(10)", "int(11)", "decimal(5,2)", "tinyint(1)", "bit(1)", "blob", "double",
        "bigint(20) unsigned",
    ]  # fmt: skip
    assert isinstance(batch, dump_module.Rows)
    assert batch.rows == [
        ("Mü", 12, Decimal("1.50"), 1, 1, b"raw\\", 0.001, 18446744073709551615),
        (None, 1000, Decimal("-0.5"), 0, 0, b"x\x00", -0.0, 16),
        ("M", -7, Decimal("0"), True, 0, b"", 2.5, None),
    ]


def test_drivers_are_imported_only_when_a_server_is_written() -> None:
    code = (
        "import sys, sluice.cli.app, sluice.sources.dump, sluice.sources.writers\n"
        "print(sorted(m for m in ('pymysql', 'psycopg') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"

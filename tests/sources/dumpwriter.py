"""Write the generated classicmodels data as mysqldump-format files, in several styles.

- ``sample``: like the MySQL sample database's script: ``/*! */`` SET lines, ``CREATE
  DATABASE``/``USE``, lower-case ``insert  into `t`(`cols`) values`` with one row per line,
  quotes doubled (``''``), numbers as quoted strings, tables in alphabetical order (children
  before parents).
- ``mysqldump``: like ``mysqldump``'s output: header comments, ``DROP TABLE IF EXISTS``,
  ``LOCK TABLES``, ``DISABLE KEYS``, backslash escapes, extended INSERTs of many rows on one
  line, split every ``rows_per_insert`` rows.
- ``single``: one INSERT per row (``--skip-extended-insert``), ``#`` and ``--`` comments.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sluice.sources.classicmodels import Table, classicmodels_rows

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\x1a": "\\Z"}


def literal(value: Any, declared: str, *, style: str) -> str:
    """One value as a SQL literal in the given style."""
    if value is None:
        return "NULL"
    if declared.startswith("decimal"):
        text = f"{value:.2f}"
        return f"'{text}'" if style == "sample" else text
    if isinstance(value, int):
        return f"'{value}'" if style == "sample" and value % 7 == 0 else str(value)
    if isinstance(value, bytes):
        return "0x" + value.hex().upper() if value else "''"
    if style == "sample":
        return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + "".join(_ESCAPES.get(ch, ch) for ch in str(value)) + "'"


def create_table(table: Table) -> str:
    """The CREATE TABLE as the sample writes it, with KEY and CONSTRAINT clauses."""
    lines = [
        f"  `{c.name}` {c.type}{' DEFAULT NULL' if c.nullable else ' NOT NULL'}"
        for c in table.columns
    ]
    lines.append(f"  PRIMARY KEY ({','.join(f'`{k}`' for k in table.primary_key)})")
    for fk in table.foreign_keys:
        lines.append(f"  KEY `{fk.columns[0]}` (`{fk.columns[0]}`)")
    for n, fk in enumerate(table.foreign_keys, 1):
        lines.append(
            f"  CONSTRAINT `{table.name}_ibfk_{n}` FOREIGN KEY (`{fk.columns[0]}`) "
            f"REFERENCES `{fk.ref_table}` (`{fk.ref_columns[0]}`)"
        )
    return (
        f"CREATE TABLE `{table.name}` (\n"
        + ",\n".join(lines)
        + "\n) ENGINE=InnoDB DEFAULT CHARSET=latin1;\n"
    )


def _lines(scale: int, seed: int, style: str, rows_per_insert: int) -> Iterator[str]:
    tables = list(classicmodels_rows(scale=scale, seed=seed))
    if style == "sample":
        tables.sort(key=lambda pair: pair[0].name)
        yield "/*\n*** classicmodels, written by a Sluice test ***\n*/\n\n"
        yield "/*!40101 SET NAMES utf8 */;\n\n/*!40101 SET SQL_MODE=''*/;\n\n"
        yield "/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n"
        yield "CREATE DATABASE /*!32312 IF NOT EXISTS*/`classicmodels` "
        yield "/*!40100 DEFAULT CHARACTER SET latin1 */;\n\nUSE `classicmodels`;\n\n"
    else:
        yield "-- MySQL dump 10.13  Distrib 5.7.44, for Linux (x86_64)\n--\n"
        yield "-- Host: localhost    Database: classicmodels\n"
        yield "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n"
        yield "/*!40101 SET NAMES utf8mb4 */;\n/*!40103 SET TIME_ZONE='+00:00' */;\n"
    for table, rows in tables:
        types = [c.type for c in table.columns]

        def row_sql(row: tuple[Any, ...], types: list[str] = types) -> str:
            return (
                "("
                + ",".join(literal(v, t, style=style) for v, t in zip(row, types, strict=True))
                + ")"
            )

        yield f"\n/*Table structure for table `{table.name}` */\n\n"
        yield f"DROP TABLE IF EXISTS `{table.name}`;\n"
        yield "/*!40101 SET @saved_cs_client     = @@character_set_client */;\n"
        yield create_table(table)
        if style == "sample":
            names = ",".join(f"`{c}`" for c in table.column_names)
            values = (row_sql(row) for row in rows)
            yield f"\n/*Data for the table `{table.name}` */\n\n"
            yield f"insert  into `{table.name}`({names}) values \n\n"
            yield ",\n".join(values) + ";\n"
            continue
        yield f"\n--\n-- Dumping data for table `{table.name}`\n--\n\n"
        yield f"LOCK TABLES `{table.name}` WRITE;\n"
        yield f"/*!40000 ALTER TABLE `{table.name}` DISABLE KEYS */;\n"
        batch: list[str] = []
        for row in rows:
            batch.append(row_sql(row))
            if style == "single":
                yield f"# row\nINSERT INTO `{table.name}` VALUES {batch.pop()}; -- one row\n"
            elif len(batch) == rows_per_insert:
                yield f"INSERT INTO `{table.name}` VALUES {','.join(batch)};\n"
                batch = []
        if batch:
            yield f"INSERT INTO `{table.name}` VALUES {','.join(batch)};\n"
        yield f"/*!40000 ALTER TABLE `{table.name}` ENABLE KEYS */;\nUNLOCK TABLES;\n"
    yield "/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;\n"


def write_dump(
    path: Path,
    *,
    scale: int = 1,
    seed: int = 7,
    style: str = "mysqldump",
    encoding: str = "utf-8",
    rows_per_insert: int = 500,
) -> Path:
    """Write the generated data as a dump file in ``style`` and ``encoding``."""
    with path.open("w", encoding=encoding, newline="\n") as out:
        for text in _lines(scale, seed, style, rows_per_insert):
            out.write(text)
    return path

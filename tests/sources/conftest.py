"""Private, empty server databases for source tests: one per test, dropped afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pymysql
import pytest

from tests.conftest import server_url


def mysql_connect(url: str, database: str | None = None) -> Any:
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        database=database,
        autocommit=True,
    )


@pytest.fixture
def mysql_url() -> Iterator[str]:
    base = server_url("SLUICE_TEST_MYSQL_URL")
    name = f"sluice_dump_{secrets.token_hex(4)}"
    con = mysql_connect(base)
    with con.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with con.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        con.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    base = server_url("SLUICE_TEST_POSTGRES_URL")
    name = f"sluice_dump_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(base, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture(params=["mysql", "postgresql"])
def target(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(dialect, URL) of a private, empty database on each server."""
    fixture = "mysql_url" if request.param == "mysql" else "postgres_url"
    return request.param, request.getfixturevalue(fixture)


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    """A private PostgreSQL database (not just a schema): for tests that close every other
    session of their database, which must not reach other tests' sessions."""
    base = server_url("SLUICE_TEST_POSTGRES_URL")
    name = f"sluice_db_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(base, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

"""A private PostgreSQL database per test for the Iceberg catalog, dropped afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import server_url

PASSWORD_VAR = "SLUICE_TEST_CATALOG_PASSWORD"


@pytest.fixture
def catalog_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private PostgreSQL database for the catalog, as a project file writes its URL: the
    password a secret reference (the test server ignores it; the reference must resolve)."""
    base = server_url("SLUICE_TEST_POSTGRES_URL")
    name = f"sluice_catalog_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    monkeypatch.setenv(PASSWORD_VAR, "unused-by-trust-auth")
    server = base.split("://", 1)[1].rsplit("/", 1)[0]
    user, _, host = server.rpartition("@")
    user = user.split(":", 1)[0] or "postgres"
    try:
        yield f"postgresql://{user}:${{env:{PASSWORD_VAR}}}@{host}/{name}"
    finally:
        with psycopg.connect(base, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

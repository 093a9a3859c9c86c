"""Private server databases for model tests (the fixtures of tests/sources)."""

from tests.sources.conftest import mysql_url, postgres_url, target

__all__ = ["mysql_url", "postgres_url", "target"]

"""Shared fixtures: generated classicmodels sources and projects built from them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sluice.project import Project
from sluice.sources.classicmodels import generate_classicmodels

SEED = 7


@pytest.fixture(scope="session")
def source_db(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """A generated classicmodels SQLite source per scale (made once per session)."""
    cache: dict[int, Path] = {}

    def make(scale: int) -> Path:
        if scale not in cache:
            path = tmp_path_factory.mktemp(f"source-{scale}") / "classicmodels.db"
            generate_classicmodels(path, scale=scale, seed=SEED)
            cache[scale] = path
        return cache[scale]

    return make


def new_project(folder: Path, source: Path) -> Project:
    """A fresh classicmodels project reading a private copy of ``source``."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "source.db"
    shutil.copy(source, copy)
    Project.init(folder / "project", source_url=f"sqlite:///{copy}")
    return Project.open(folder / "project")


def extract_only_project(folder: Path, source_url: str) -> Project:
    """A project on ``source_url`` whose job only extracts (no models, no checks)."""
    import yaml

    Project.init(folder, source_url=source_url)
    for model in (folder / "models").glob("*.sql"):
        model.unlink()
    config = yaml.safe_load((folder / "sluice.yml").read_text())
    config.pop("checks", None)
    (folder / "sluice.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return Project.open(folder)


@pytest.fixture
def project(tmp_path: Path, source_db: Callable[[int], Path]) -> Project:
    """A fresh project on a scale-1 source, no runs yet."""
    return new_project(tmp_path, source_db(1))


@pytest.fixture(scope="session")
def built(
    tmp_path_factory: pytest.TempPathFactory, source_db: Callable[[int], Path]
) -> Callable[[int], Project]:
    """A project per scale after one successful ETL run (shared: do not modify it)."""
    cache: dict[int, Project] = {}

    def make(scale: int) -> Project:
        if scale not in cache:
            proj = new_project(tmp_path_factory.mktemp(f"built-{scale}"), source_db(scale))
            run = proj.run_job("etl")
            assert run.state == "SUCCEEDED", run.error
            cache[scale] = proj
        return cache[scale]

    return make


def sluice_cli(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``sluice`` command line in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "sluice", *map(str, args)],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def server_url(variable: str) -> str:
    """A database server URL from the environment, or skip (fail under SLUICE_REQUIRE_SERVERS=1)."""
    url = os.environ.get(variable)
    if not url:
        reason = f"{variable} is not set; export it to run tests against a real server"
        if os.environ.get("SLUICE_REQUIRE_SERVERS") == "1":
            pytest.fail(f"SLUICE_REQUIRE_SERVERS=1 but {reason}")
        pytest.skip(reason)
    return url

"""The project file's JSON Schema: printed by ``sluice config schema``, written by ``init``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.config import SCHEMA_COMMENT, SCHEMA_FILE, ProjectConfig, json_schema, load_config
from sluice.errors import ConfigError
from sluice.project import Project
from tests.conftest import sluice_cli


def test_config_schema_prints_the_project_files_json_schema(project: Project) -> None:
    result = sluice_cli("config", "schema", cwd=project.root)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["required"] == ["name"]
    assert schema["additionalProperties"] is False
    assert {"sources", "lake", "catalog", "jobs", "checks", "serve"} <= set(schema["properties"])
    job = schema["$defs"]["JobConfig"]
    assert job["properties"]["timeout_minutes"]["exclusiveMinimum"] == 0
    assert job["additionalProperties"] is False


def test_init_writes_the_schema_and_points_the_project_file_at_it(project: Project) -> None:
    written = json.loads((project.root / SCHEMA_FILE).read_text())
    printed = json.loads(sluice_cli("config", "schema", cwd=project.root).stdout)
    assert written == printed
    lines = (project.root / "sluice.yml").read_text().splitlines()
    assert lines[0] == SCHEMA_COMMENT == "# yaml-language-server: $schema=sluice.schema.json"
    assert project.config.name == "classicmodels"


def files(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_init_again_leaves_the_project_as_it_is_and_restores_the_schema(project: Project) -> None:
    before = files(project.root)
    again = sluice_cli("init", project.root, cwd=project.root.parent)
    assert again.returncode == 0, again.stderr
    assert "already holds this Sluice project; left as it is" in again.stdout
    assert files(project.root) == before

    (project.root / SCHEMA_FILE).unlink()
    source = project.config.sources["classicmodels"].url
    restored = sluice_cli("init", project.root, "--source", source, cwd=project.root.parent)
    assert restored.returncode == 0, restored.stderr
    assert json.loads((project.root / SCHEMA_FILE).read_text())["title"] == (
        "Sluice project file (sluice.yml)"
    )
    after = files(project.root)
    assert {k: v for k, v in after.items() if k != SCHEMA_FILE} == {
        k: v for k, v in before.items() if k != SCHEMA_FILE
    }


def test_the_schema_declares_the_scaled_out_lake_and_catalog() -> None:
    defs = json_schema()["$defs"]
    assert set(defs["LakeConfig"]["properties"]) == {
        "warehouse",
        "endpoint",
        "region",
        "keep_snapshots",
    }
    assert defs["CatalogConfig"]["properties"]["url"]["default"] == "sqlite:///.sluice/catalog.db"


def test_the_catalog_url_is_also_read_under_its_former_key_and_bad_schemes_are_refused(
    tmp_path: Path,
) -> None:
    config = ProjectConfig.model_validate(
        {"name": "x", "catalog": {"uri": "postgresql://me@db/lake"}}
    )
    assert config.catalog.url == "postgresql://me@db/lake"
    assert ProjectConfig.model_validate({"name": "x", "lake": {"warehouse": "s3://b/p"}})
    (tmp_path / "sluice.yml").write_text(
        "name: x\nlake:\n  warehouse: gs://bucket/wh\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"line 3: 'lake\.warehouse' must be a folder or an s3"):
        Project.open(tmp_path)
    (tmp_path / "sluice.yml").write_text(
        "name: x\ncatalog:\n  url: mysql://root@db/lake\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"'catalog\.url' must be a sqlite:/// or postgresql://"):
        Project.open(tmp_path)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "name: p\njobs:\n  etl:\n    source: s\n    retyr: {max_attempts: 2}\n",
            "line 5: unknown key 'jobs.etl.retyr'; remove it or check its spelling. "
            "Did you mean 'retry'?",
        ),
        (
            "name: p\nchecks:\n  fact_orders:\n    - uniqe: [a]\n",
            "line 4: unknown key 'checks.fact_orders.0.uniqe'; remove it or check its "
            "spelling. Did you mean 'unique'?",
        ),
        (
            "name: p\nserve:\n  queries: {timout_seconds: 5}\n",
            "line 3: unknown key 'serve.queries.timout_seconds'; remove it or check its "
            "spelling. Did you mean 'timeout_seconds'?",
        ),
        (
            "name: p\nzebra: 1\n",
            "line 2: unknown key 'zebra'; remove it or check its spelling.",
        ),
    ],
)
def test_an_unknown_key_is_named_with_its_line_and_the_closest_known_key(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    path = tmp_path / "sluice.yml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value) == f"sluice.yml, {message}"

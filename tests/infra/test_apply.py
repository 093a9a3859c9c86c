"""plan / apply / destroy on real projects: real catalog, warehouse, state file and processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.errors import InfraError, StalePlanError
from sluice.infra.state import load_plan, load_state
from sluice.project import Project
from tests.conftest import sluice_cli

FRESH = [
    ("create", "state..sluice/state.json"),
    ("create", "warehouse.warehouse"),
    ("create", "catalog.catalog"),
    ("create", "namespace.gold"),
    ("create", "namespace.raw"),
    ("create", "job.etl"),
]


def steps(project: Project) -> list[tuple[str, str]]:
    return [(s.action, s.address) for s in Project.open(project.root).plan().steps]


def rows(project: Project, table: str) -> int:
    return Project.open(project.root).describe(table).info.rows


def test_plan_on_a_fresh_project_creates_and_a_second_apply_changes_nothing(
    project: Project,
) -> None:
    planned = sluice_cli("plan", "--detailed-exitcode", cwd=project.root)
    assert planned.returncode == 2, planned.stderr
    assert "  + namespace raw\n" in planned.stdout
    assert "  + job etl\n" in planned.stdout
    assert "Plan: 6 to add, 0 to change, 0 to destroy." in planned.stdout
    assert steps(project) == FRESH
    assert not (project.root / "warehouse").exists()
    assert not project.state_path.exists()

    applied = sluice_cli("apply", "--auto-approve", cwd=project.root)
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete! Resources: 6 added, 0 changed, 0 destroyed." in applied.stdout
    assert Project.open(project.root).lake.databases() == ["gold", "raw"]
    state = load_state(project.state_path)
    assert state is not None and state.serial == 6
    assert sorted(state.resources) == sorted(address for _, address in FRESH)

    again = sluice_cli("apply", "--auto-approve", cwd=project.root)
    assert again.returncode == 0, again.stderr
    assert "No changes." in again.stdout
    quiet = sluice_cli("plan", "--detailed-exitcode", cwd=project.root)
    assert quiet.returncode == 0, quiet.stdout
    assert load_state(project.state_path).serial == 6  # type: ignore[union-attr]


def answering(project: Project, answer: str) -> subprocess.CompletedProcess[str]:
    """``sluice apply`` with ``answer`` typed at its prompt."""
    return subprocess.run(
        [sys.executable, "-m", "sluice", "apply"],
        cwd=project.root,
        input=f"{answer}\n",
        capture_output=True,
        text=True,
        check=False,
    )


def test_apply_asks_for_yes(project: Project) -> None:
    refused = answering(project, "y")
    assert refused.returncode == 1
    assert "Only 'yes' will be accepted" in refused.stdout
    assert "nothing was changed" in refused.stderr
    assert steps(project) == FRESH
    accepted = answering(project, "yes")
    assert accepted.returncode == 0, accepted.stderr
    assert "6 added" in accepted.stdout
    assert steps(project) == []


def test_a_dropped_namespace_is_drift_and_apply_recreates_it(project: Project) -> None:
    project.apply()
    project.lake.catalog.drop_namespace("gold")
    plan = Project.open(project.root).plan()
    assert [(s.action, s.address, s.reason) for s in plan.steps] == [
        ("create", "namespace.gold", "missing: removed outside Sluice")
    ]
    result = Project.open(project.root).apply(plan)
    assert [s.address for s in result.applied] == ["namespace.gold"]
    assert Project.open(project.root).lake.databases() == ["gold", "raw"]
    assert steps(project) == []


def test_a_table_dropped_by_hand_comes_back_with_its_data(project: Project) -> None:
    project.apply()
    run = project.run_job("etl")
    assert run.state == "SUCCEEDED", run.error
    assert steps(project) == []
    customers = rows(project, "raw.customers")
    assert customers == 122

    project.lake.catalog.drop_table(("raw", "customers"))
    plan = Project.open(project.root).plan()
    assert [(s.action, s.address) for s in plan.steps] == [("create", "table.raw.customers")]
    assert plan.steps[0].metadata_location.startswith(  # type: ignore[union-attr]
        (project.root / "warehouse" / "raw.db" / "customers" / "metadata").as_uri()
    )
    assert "re-registered with its data" in plan.steps[0].reason
    Project.open(project.root).apply(plan)
    assert rows(project, "raw.customers") == customers
    assert steps(project) == []

    # keep_snapshots is a property of every table: changing it is an in-place update
    config = project.root / "sluice.yml"
    config.write_text(
        config.read_text().replace(
            "  warehouse: warehouse\n", "  warehouse: warehouse\n  keep_snapshots: 4\n"
        )
    )
    updates = Project.open(project.root).plan()
    assert {s.action for s in updates.steps} == {"update"}
    assert len(updates.steps) == 14  # 8 raw tables and 6 models
    assert updates.steps[0].after == {"write.metadata.previous-versions-max": "4"}
    Project.open(project.root).apply(updates)
    table = Project.open(project.root).lake.load(project.describe("raw.orders").info.table)
    assert table.properties["write.metadata.previous-versions-max"] == "4"
    assert steps(project) == []


def test_a_saved_plan_is_applied_exactly_or_refused_when_stale(project: Project) -> None:
    saved = project.root / "first.plan"
    result = sluice_cli("plan", "-out", saved, cwd=project.root)
    assert result.returncode == 0, result.stderr
    plan = json.loads(saved.read_text())
    assert (plan["serial"], plan["lineage"], len(plan["steps"])) == (0, None, 6)

    second = project.root / "second.plan"
    assert sluice_cli("plan", "--out", second, cwd=project.root).returncode == 0
    applied = sluice_cli("apply", second, cwd=project.root)
    assert applied.returncode == 0, applied.stderr
    assert "6 added" in applied.stdout

    config = project.root / "sluice.yml"
    config.write_text(config.read_text().replace("timeout_minutes: 30", "timeout_minutes: 45"))
    stale = sluice_cli("apply", saved, cwd=project.root)
    assert stale.returncode == 1
    assert stale.stderr.startswith("Error: The saved plan is stale")
    assert "sluice plan" in stale.stderr
    assert load_state(project.state_path).serial == 6  # type: ignore[union-attr]
    assert steps(project) == [("update", "job.etl")]
    with pytest.raises(StalePlanError):
        Project.open(project.root).apply(load_plan(saved))


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from sluice.infra.lock import ApplyLock
with ApplyLock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_two_applies_at_once_one_is_refused_then_a_dead_holder_is_taken_over(
    project: Project,
) -> None:
    lock = project.state_dir / "apply.lock"
    with subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(lock)], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            refused = sluice_cli("apply", "--auto-approve", cwd=project.root)
            assert refused.returncode == 1
            assert f"Another apply (pid {holder.pid}) is running" in refused.stderr
            assert not project.state_path.exists()
            assert steps(project) == FRESH
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
    assert lock.read_text().strip() == str(holder.pid)
    taken = sluice_cli("apply", "--auto-approve", cwd=project.root)
    assert taken.returncode == 0, taken.stderr
    assert f"stale apply lock left by pid {holder.pid}" in taken.stderr
    assert lock.read_text() == ""
    assert steps(project) == []


@pytest.mark.slow
def test_an_apply_killed_halfway_resumes_with_exactly_the_rest(project: Project) -> None:
    killed = sluice_cli(
        "apply",
        "--auto-approve",
        cwd=project.root,
        env={"SLUICE_FAILPOINTS": "apply:namespace.gold"},
    )
    assert killed.returncode == -signal.SIGKILL
    state = load_state(project.state_path)
    assert state is not None and state.serial == 4
    assert steps(project) == FRESH[4:]
    planned = sluice_cli("plan", cwd=project.root)
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in planned.stdout
    resumed = sluice_cli("apply", "--auto-approve", cwd=project.root)
    assert resumed.returncode == 0, resumed.stderr
    assert "stale apply lock" in resumed.stderr
    assert "2 added" in resumed.stdout
    assert load_state(project.state_path).serial == 6  # type: ignore[union-attr]
    assert Project.open(project.root).lake.databases() == ["gold", "raw"]
    assert steps(project) == []


def test_destroy_removes_what_sluice_created(project: Project) -> None:
    project.apply()
    assert project.run_job("etl").state == "SUCCEEDED"
    catalog = project.state_dir / "catalog.db"
    assert catalog.is_file() and (project.root / "warehouse" / "raw.db").is_dir()

    destroyed = sluice_cli("destroy", "--auto-approve", cwd=project.root)
    assert destroyed.returncode == 0, destroyed.stderr
    assert "Plan: 0 to add, 0 to change, 20 to destroy." in destroyed.stdout  # 6 + 14 tables
    assert "Destroy complete! Resources: 0 added, 0 changed, 20 destroyed." in destroyed.stdout
    assert not catalog.exists()
    assert not (project.root / "warehouse").exists()
    assert not project.state_path.exists()
    assert steps(project) == FRESH
    assert Project.open(project.root).plan(destroy=True).steps == ()


def test_destroy_keep_data_keeps_the_warehouse_and_apply_brings_the_tables_back(
    project: Project,
) -> None:
    project.apply()
    assert project.run_job("etl").state == "SUCCEEDED"
    orders = rows(project, "raw.orderdetails")
    files = sorted((project.root / "warehouse").rglob("*.parquet"))
    assert len(files) >= 14

    destroyed = sluice_cli("destroy", "--keep-data", "--auto-approve", cwd=project.root)
    assert destroyed.returncode == 0, destroyed.stderr
    assert "- table raw.orderdetails  # data kept in the warehouse" in destroyed.stdout
    assert sorted((project.root / "warehouse").rglob("*.parquet")) == files
    assert not (project.state_dir / "catalog.db").exists()
    assert (
        "Plan: 0 to add, 0 to change, 19 to destroy." in destroyed.stdout
    )  # all but the warehouse
    assert not project.state_path.exists()

    plan = Project.open(project.root).plan()
    assert plan.counts == (19, 0, 0)  # 5 resources and the 14 tables, with their data
    Project.open(project.root).apply(plan)
    assert rows(project, "raw.orderdetails") == orders
    assert steps(project) == []


def test_no_secret_in_plan_state_or_output(project: Project) -> None:
    secret = "pw-" + os.urandom(6).hex()
    config = project.root / "sluice.yml"
    text = config.read_text().replace(
        "sources:\n",
        "sources:\n  shop:\n    url: mysql://reader:${env:SLUICE_TEST_SHOP_PW}@127.0.0.1:3306/shop\n",
        1,
    )
    text = text.replace(
        "jobs:\n",
        "jobs:\n  nightly:\n    source: shop\n    tables: [customers, orders]\n"
        "    raw_database: shop_raw\n    gold_database: shop_gold\n",
        1,
    )
    config.write_text(text)
    env = {"SLUICE_TEST_SHOP_PW": secret}
    saved = project.root / "shop.plan"
    outputs = [
        sluice_cli("plan", "-out", saved, cwd=project.root, env=env),
        sluice_cli("apply", saved, cwd=project.root, env=env),
        sluice_cli("plan", "--detailed-exitcode", cwd=project.root, env=env),
        sluice_cli("--debug", "plan", cwd=project.root, env=env),
    ]
    assert [r.returncode for r in outputs] == [0, 0, 0, 0], outputs[0].stderr
    assert 'source = "mysql://reader:***@127.0.0.1:3306/shop"' in outputs[0].stdout
    assert "+ namespace shop_raw" in outputs[0].stdout
    written = [saved.read_text(), project.state_path.read_text()]
    state = json.loads(written[1])
    assert state["resources"]["job.nightly"]["attributes"]["source"] == (
        "mysql://reader:***@127.0.0.1:3306/shop"
    )
    for text in [*written, *(r.stdout + r.stderr for r in outputs)]:
        assert secret not in text
        assert "${env:" not in text
    for path in project.root.rglob("*"):
        if path.is_file() and path.suffix not in (".db", ".parquet", ".avro"):
            assert secret not in path.read_text(errors="replace"), path


def test_bad_input_is_one_line_and_changes_nothing(project: Project, tmp_path: Path) -> None:
    missing = sluice_cli("apply", tmp_path / "nope.plan", cwd=project.root)
    assert (missing.returncode, missing.stderr.count("\n")) == (1, 1)
    assert "Cannot read the plan file" in missing.stderr
    junk = tmp_path / "junk.plan"
    junk.write_text('{"steps": "all"}')
    wrong = sluice_cli("apply", junk, cwd=project.root)
    assert (wrong.returncode, wrong.stderr.count("\n")) == (1, 1)
    assert "is not a Sluice plan file" in wrong.stderr and "sluice plan -out FILE" in wrong.stderr

    other = Project.open(project.root).plan().model_copy(update={"project": str(tmp_path)})
    with pytest.raises(InfraError, match="made for the project at"):
        Project.open(project.root).apply(other)

    keep = sluice_cli("plan", "--keep-data", cwd=project.root)
    assert keep.returncode == 2 and "--keep-data goes with --destroy" in keep.stderr
    (project.root / "sluice.yml").write_text("name: x\njobs: {etl: {source: s, retries: 3}}\n")
    broken = sluice_cli("plan", "--detailed-exitcode", cwd=project.root)
    assert broken.returncode == 1, broken.stdout
    assert "unknown key 'jobs.etl.retries'" in broken.stderr
    assert not project.state_path.exists()
    assert not (project.root / "warehouse").exists()


def test_a_failing_step_is_named_and_the_steps_before_it_stay_applied(project: Project) -> None:
    (project.root / "warehouse").write_text("not a folder")
    failed = sluice_cli("apply", "--auto-approve", cwd=project.root)
    assert failed.returncode == 1
    assert failed.stderr.startswith("Error: Could not create warehouse warehouse")
    assert "run 'sluice apply' again" in failed.stderr
    state = load_state(project.state_path)
    assert state is not None and (state.serial, list(state.resources)) == (
        1,
        ["state..sluice/state.json"],
    )
    assert steps(project) == FRESH[1:]
    (project.root / "warehouse").unlink()
    assert Project.open(project.root).apply().serial == 6
    assert steps(project) == []

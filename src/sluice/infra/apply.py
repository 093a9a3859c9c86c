"""Apply a plan: one handler per kind of resource, the state saved after every step.

Apply holds the project's lock, refuses a plan whose base state (lineage, serial) has
moved, and writes the state atomically after each step, so an apply killed halfway leaves
a state from which the next plan shows exactly the remaining steps.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sluice.core import TableName
from sluice.errors import InfraError, SluiceError, StalePlanError
from sluice.infra.lock import ApplyLock
from sluice.infra.plan import Plan, Step
from sluice.infra.state import State, load_state, save_state
from sluice.lake.catalog import Lake, sqlalchemy_url
from sluice.lake.s3 import is_s3
from sluice.observe.failpoints import failpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """The project a plan is applied to."""

    root: Path
    lake: Lake
    state_path: Path
    lock_path: Path


@dataclass(frozen=True)
class ApplyResult:
    """What an apply did: the steps, the resulting serial, a stale lock it took over."""

    applied: tuple[Step, ...]
    serial: int
    stale_lock_pid: int | None


def apply_plan(plan: Plan, target: Target) -> ApplyResult:
    """Apply exactly ``plan``'s steps, in order, or raise before changing anything."""
    if plan.project != str(target.root):
        raise InfraError(
            f"This plan was made for the project at {plan.project}, not {target.root}.",
            hint="Run 'sluice plan -out FILE' in this project.",
        )
    with ApplyLock(target.lock_path) as lock:
        state = load_state(target.state_path)
        lineage, serial = (state.lineage, state.serial) if state else (None, 0)
        if (lineage, serial) != (plan.lineage, plan.serial):
            raise StalePlanError(
                f"The saved plan is stale: it was made at state serial {plan.serial}, "
                f"the state is now at serial {serial}"
                + ("" if lineage == plan.lineage else " of another lineage")
                + ".",
                hint="Run 'sluice plan' again and apply the new plan.",
            )
        current = state or State.new()
        applied = []
        for step in plan.steps:
            _run(step, target)
            current = current.after(step)
            if step.kind == "state" and step.action == "delete":
                target.state_path.unlink(missing_ok=True)
            else:
                save_state(target.state_path, current)
            applied.append(step)
            log.info("%s %s %s", step.action, step.kind, step.name)
            failpoint(f"apply:{step.address}")
        return ApplyResult(tuple(applied), current.serial, lock.stale_pid)


def _run(step: Step, target: Target) -> None:
    """Apply one step; a failure names the step and leaves the earlier ones recorded."""
    try:
        _HANDLERS[step.kind](step, target)
    except SluiceError:
        raise
    except Exception as exc:
        raise InfraError(
            f"Could not {step.action} {step.kind} {step.name}: {exc}.",
            hint="The steps before it are applied and recorded; fix the cause and run "
            "'sluice apply' again.",
        ) from exc


def _state(step: Step, target: Target) -> None:
    """The state file is written by the apply loop itself."""


def _job(step: Step, target: Target) -> None:
    """A job is defined by the project file; its record in the state is all there is."""


def _warehouse(step: Step, target: Target) -> None:
    """A folder is made and removed; an S3 warehouse is checked (bucket, credentials): its
    objects go with the tables that own them."""
    after, before = (step.after or {}).get("path", ""), (step.before or {}).get("path", "")
    if step.action in ("create", "replace", "update"):
        if not is_s3(after):
            Path(after).mkdir(parents=True, exist_ok=True)
        elif target.lake.s3 is not None:
            target.lake.s3.check()
    if step.action == "replace" and not is_s3(before):
        with contextlib.suppress(OSError):
            Path(before).rmdir()
    if step.action == "delete" and not step.keep_data and not is_s3(before):
        shutil.rmtree(before, ignore_errors=True)


def _catalog(step: Step, target: Target) -> None:
    if step.action in ("create", "replace", "update"):
        target.lake.open_catalog()
    if step.action == "replace":
        _remove_sqlite_catalog((step.before or {})["uri"], target, only_if_empty=True)
    if step.action == "delete":
        _remove_sqlite_catalog((step.before or {})["uri"], target, only_if_empty=False)


def _remove_sqlite_catalog(uri: str, target: Target, *, only_if_empty: bool) -> None:
    url = sqlalchemy_url(uri, root=target.root)
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    if only_if_empty and path.is_file():
        old = Lake(catalog_uri=url, warehouse=target.lake.warehouse).open_catalog()
        if old.list_namespaces():
            return
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _namespace(step: Step, target: Target) -> None:
    from pyiceberg.exceptions import NamespaceNotEmptyError, NoSuchNamespaceError

    if step.action == "create":
        target.lake.ensure_database(step.name)
    elif step.action == "delete":
        try:
            target.lake.catalog.drop_namespace(step.name)
        except NoSuchNamespaceError:
            pass
        except NamespaceNotEmptyError as exc:
            raise InfraError(
                f"Database {step.name} still holds tables Sluice did not create; "
                "it was not dropped.",
                hint="Drop or move its tables, then run 'sluice destroy' again.",
            ) from exc


def _table(step: Step, target: Target) -> None:
    from pyiceberg.exceptions import NoSuchTableError

    catalog = target.lake.catalog
    database, _, name = step.name.partition(".")
    if step.action == "create":
        if step.metadata_location is None:
            raise InfraError(f"Step {step.address} has no metadata to register; plan again.")
        catalog.register_table((database, name), step.metadata_location)
    if step.action in ("create", "update"):
        table = catalog.load_table((database, name))
        with table.transaction() as tx:
            tx.set_properties(step.after or {})
    elif step.action == "delete":
        with contextlib.suppress(NoSuchTableError):
            catalog.drop_table((database, name))
        if not step.keep_data:
            target.lake.remove_table_data(TableName(database, name))


_HANDLERS: dict[str, Callable[[Step, Target], None]] = {
    "state": _state,
    "job": _job,
    "warehouse": _warehouse,
    "catalog": _catalog,
    "namespace": _namespace,
    "table": _table,
}

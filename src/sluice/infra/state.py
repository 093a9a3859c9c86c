"""``.sluice/state.json``: what apply created, its lineage and a serial that grows per step.

The file is replaced atomically (temporary file, fsync, ``os.replace``) after every step,
so an apply killed at any point leaves the state of the last finished step.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from sluice.errors import InfraError
from sluice.infra.plan import Plan, Resource, Step

STATE_FILE = "state.json"


class State(BaseModel):
    """The resources apply has made, keyed by address (secrets are redacted in them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    lineage: str
    serial: int = 0
    resources: dict[str, Resource] = {}

    @classmethod
    def new(cls) -> State:
        """An empty state with a fresh lineage."""
        return cls(lineage=uuid.uuid4().hex)

    def after(self, step: Step) -> State:
        """The state once ``step`` is applied (the serial grows by one)."""
        resources = dict(self.resources)
        if step.action == "delete":
            resources.pop(step.address, None)
        else:
            resources[step.address] = Resource(
                kind=step.kind, name=step.name, attributes=step.after or {}
            )
        return self.model_copy(update={"serial": self.serial + 1, "resources": resources})


def load_state(path: Path) -> State | None:
    """Read the state file, or None when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InfraError(f"Cannot read the state file {path}: {exc.strerror}.") from exc
    try:
        return State.model_validate_json(text)
    except ValidationError as exc:
        raise InfraError(
            f"The state file {path} is not valid ({exc.error_count()} errors).",
            hint="Restore it from a backup, or delete it and run 'sluice plan' to adopt "
            "what exists.",
        ) from exc


def save_state(path: Path, state: State) -> None:
    """Write the state atomically: readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".state-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(state.model_dump_json(indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def save_plan(plan: Plan, path: Path) -> None:
    """Write a plan file (JSON) for a later ``sluice apply FILE``."""
    try:
        path.write_text(plan.model_dump_json(indent=2), encoding="utf-8")
    except OSError as exc:
        raise InfraError(f"Cannot write the plan file {path}: {exc.strerror}.") from exc


def load_plan(path: Path) -> Plan:
    """Read a plan file written by ``sluice plan -out FILE``."""
    try:
        return Plan.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InfraError(f"Cannot read the plan file {path}: {exc.strerror}.") from exc
    except ValidationError as exc:
        raise InfraError(
            f"{path} is not a Sluice plan file.", hint="Make one with 'sluice plan -out FILE'."
        ) from exc

"""Plans: the pure difference between declared resources and what exists, as typed steps.

Nothing here touches a disk or a catalog. ``diff`` takes what ``sluice.yml`` declares and
what was observed (state file, catalog, warehouse) and returns a frozen, JSON-serialisable
``Plan``; ``explain`` turns it into the lines ``sluice plan`` prints, Terraform-style.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict

Kind = Literal["state", "warehouse", "catalog", "namespace", "table", "job"]
Action = Literal["create", "update", "delete", "replace"]

KIND_ORDER: tuple[Kind, ...] = ("state", "warehouse", "catalog", "namespace", "table", "job")
FORCES_REPLACEMENT: dict[str, frozenset[str]] = {
    "warehouse": frozenset({"path"}),
    "catalog": frozenset({"uri"}),
}
SYMBOLS: dict[str, str] = {"create": "+", "update": "~", "delete": "-", "replace": "-/+"}
PLAN_FORMAT = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resource(_Frozen):
    """One thing Sluice manages, with the attributes a plan compares (secrets redacted)."""

    kind: Kind
    name: str
    attributes: dict[str, str] = {}

    @property
    def address(self) -> str:
        """``kind.name``, unique in a project (``namespace.raw``, ``table.gold.dim_date``)."""
        return f"{self.kind}.{self.name}"


class Step(_Frozen):
    """One change: ``before`` is the observed resource, ``after`` the declared one."""

    action: Action
    kind: Kind
    name: str
    before: dict[str, str] | None = None
    after: dict[str, str] | None = None
    reason: str = ""
    metadata_location: str | None = None
    keep_data: bool = False

    @property
    def address(self) -> str:
        """The resource's address."""
        return f"{self.kind}.{self.name}"


class Plan(_Frozen):
    """What ``apply`` will do, and the state (lineage, serial) it was computed against."""

    format: int = PLAN_FORMAT
    project: str
    lineage: str | None
    serial: int
    destroy: bool = False
    steps: tuple[Step, ...] = ()
    pending_tables: tuple[str, ...] = ()

    @property
    def counts(self) -> tuple[int, int, int]:
        """(to add, to change, to destroy)."""
        return count_steps(self.steps)

    @property
    def has_changes(self) -> bool:
        """True when applying would change anything."""
        return bool(self.steps)


@dataclass(frozen=True)
class Declared:
    """What ``sluice.yml`` declares.

    ``resources`` are the state file, warehouse, catalog, namespaces and jobs; tables are
    declared by name (``tables``: explicit raw tables and models) or as every table in a
    raw namespace of a job that extracts ``all`` (``all_tables_in``). ``table_attributes``
    are the properties every managed table should have.
    """

    resources: dict[str, Resource]
    tables: frozenset[str] = frozenset()
    all_tables_in: frozenset[str] = frozenset()
    table_attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObservedTable:
    """A table as found: in the catalog (``attributes``), or only as metadata in the warehouse."""

    name: str
    in_catalog: bool
    attributes: dict[str, str] = field(default_factory=dict)
    written_by_sluice: bool = False
    metadata_location: str | None = None


@dataclass(frozen=True)
class Current:
    """What exists: resources found on disk and in the catalog, tables, and the state file."""

    resources: dict[str, Resource]
    tables: dict[str, ObservedTable]
    state: dict[str, Resource]
    lineage: str | None = None
    serial: int = 0


def diff(declared: Declared, current: Current, *, project: str) -> Plan:
    """The steps that make ``current`` match ``declared``."""
    steps: list[Step] = []
    for address, want in declared.resources.items():
        have = current.resources.get(address)
        if have is None:
            dropped = address in current.state
            reason = "missing: removed outside Sluice" if dropped else ""
            steps.append(_step("create", want, after=want.attributes, reason=reason))
        elif have.attributes != want.attributes:
            changed = {k for k in {*have.attributes, *want.attributes} if _differs(have, want, k)}
            forced = changed & FORCES_REPLACEMENT.get(want.kind, frozenset())
            steps.append(
                _step(
                    "replace" if forced else "update",
                    want,
                    before=have.attributes,
                    after=want.attributes,
                    reason="forces replacement; the old one is removed only if empty"
                    if forced
                    else "",
                )
            )
    for address, recorded in current.state.items():
        if address in declared.resources or recorded.kind == "table":
            continue
        gone = address not in current.resources
        reason = "no longer declared" + ("; already gone, forget it" if gone else "")
        steps.append(_step("delete", recorded, before=recorded.attributes, reason=reason))
    steps.extend(_table_steps(declared, current))
    pending = sorted(
        name
        for name in declared.tables
        if name not in current.tables and f"namespace.{name.split('.')[0]}" in declared.resources
    )
    return Plan(
        project=project,
        lineage=current.lineage,
        serial=current.serial,
        steps=_ordered(steps),
        pending_tables=tuple(pending),
    )


def destroy_diff(current: Current, *, project: str, keep_data: bool) -> Plan:
    """The steps that remove what Sluice created (tables written by jobs included)."""
    steps = [
        _step("delete", have, before=have.attributes, keep_data=keep_data)
        for have in current.resources.values()
        if not (keep_data and have.kind == "warehouse")
    ]
    steps.extend(
        Step(
            action="delete",
            kind="table",
            name=table.name,
            before=table.attributes,
            keep_data=keep_data,
            reason="data kept in the warehouse" if keep_data else "",
        )
        for table in current.tables.values()
        if table.in_catalog and (table.written_by_sluice or f"table.{table.name}" in current.state)
    )
    return Plan(
        project=project,
        lineage=current.lineage,
        serial=current.serial,
        destroy=True,
        steps=_ordered(steps),
    )


def count_steps(steps: tuple[Step, ...]) -> tuple[int, int, int]:
    """(added, changed, destroyed); a replacement counts as one add and one destroy."""
    actions = [s.action for s in steps]
    replaced = actions.count("replace")
    return (
        actions.count("create") + replaced,
        actions.count("update"),
        actions.count("delete") + replaced,
    )


def _table_steps(declared: Declared, current: Current) -> list[Step]:
    namespaces = {r.name for r in declared.resources.values() if r.kind == "namespace"}
    steps = []
    for name, table in sorted(current.tables.items()):
        database = name.split(".")[0]
        wanted = name in declared.tables or database in declared.all_tables_in
        want = Resource(kind="table", name=name, attributes=declared.table_attributes)
        if table.in_catalog and wanted and table.attributes != want.attributes:
            steps.append(_step("update", want, before=table.attributes, after=want.attributes))
        elif table.in_catalog and not wanted and database in namespaces and table.written_by_sluice:
            steps.append(
                _step("delete", want, before=table.attributes, reason="no longer declared")
            )
        elif not table.in_catalog and wanted and table.metadata_location:
            steps.append(
                Step(
                    action="create",
                    kind="table",
                    name=name,
                    after=want.attributes,
                    metadata_location=table.metadata_location,
                    reason="missing from the catalog: re-registered with its data",
                )
            )
    return steps


def _differs(have: Resource, want: Resource, key: str) -> bool:
    return have.attributes.get(key) != want.attributes.get(key)


def _step(
    action: Action,
    resource: Resource,
    *,
    before: dict[str, str] | None = None,
    after: dict[str, str] | None = None,
    reason: str = "",
    keep_data: bool = False,
) -> Step:
    return Step(
        action=action,
        kind=resource.kind,
        name=resource.name,
        before=before,
        after=after,
        reason=reason,
        keep_data=keep_data,
    )


def _ordered(steps: list[Step]) -> tuple[Step, ...]:
    """Creations and changes in dependency order, then deletions in reverse order."""
    rank = {kind: i for i, kind in enumerate(KIND_ORDER)}
    changes = sorted(
        (s for s in steps if s.action != "delete"), key=lambda s: (rank[s.kind], s.name)
    )
    deletions = sorted(
        (s for s in steps if s.action == "delete"), key=lambda s: (-rank[s.kind], s.name)
    )
    return (*changes, *deletions)


def explain(plan: Plan) -> list[str]:
    """The plan as Terraform-like lines, ending with the summary line.

    >>> step = Step(action="update", kind="job", name="etl",
    ...             before={"timeout_minutes": "30"}, after={"timeout_minutes": "45"})
    >>> print("\\n".join(explain(Plan(project="/p", lineage="l", serial=3, steps=(step,)))))
    Sluice will perform the following actions:
    <BLANKLINE>
      ~ job etl
          ~ timeout_minutes: "30" -> "45"
    <BLANKLINE>
    Plan: 0 to add, 1 to change, 0 to destroy.
    """
    if not plan.steps:
        lines = ["No changes. The project's resources match sluice.yml."]
    else:
        lines = ["Sluice will perform the following actions:", ""]
        for step in plan.steps:
            note = f"  # {step.reason}" if step.reason else ""
            name = "" if step.name == step.kind else f" {step.name}"
            lines.append(f"  {SYMBOLS[step.action]} {step.kind}{name}{note}")
            lines.extend(f"      {line}" for line in _attribute_lines(step))
        added, changed, destroyed = plan.counts
        lines += ["", f"Plan: {added} to add, {changed} to change, {destroyed} to destroy."]
    if plan.pending_tables:
        lines += [
            "",
            f"Note: {len(plan.pending_tables)} declared tables do not exist yet; the job's "
            f"first run creates them: {', '.join(plan.pending_tables)}.",
        ]
    return lines


def _attribute_lines(step: Step) -> list[str]:
    before, after = step.before or {}, step.after or {}
    if step.action == "create":
        lines = [f'+ {k} = "{v}"' for k, v in sorted(after.items())]
        if step.metadata_location:
            lines.append(f'+ metadata = "{step.metadata_location}"')
        return lines
    if step.action == "delete":
        return []
    return [
        f'~ {k}: "{before.get(k, "")}" -> "{after.get(k, "")}"'
        + ("  (forces replacement)" if k in FORCES_REPLACEMENT.get(step.kind, ()) else "")
        for k in sorted({*before, *after})
        if before.get(k) != after.get(k)
    ]

"""A job's task graph as data: its tasks, what each waits for, task selection and drawings.

Tasks are named ``extract:<table>``, ``transform:<model>`` and ``check:<n>``; the publish
comes after all of them. Selection (``--from``, ``--only``, ``--exclude``) returns the tasks
to run; the others reuse the tables readers already have.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sluice.core import TableName
from sluice.errors import ConfigError, did_you_mean

FORMATS = ("text", "dot", "mermaid")
PUBLISH = "publish"


@dataclass(frozen=True)
class TaskGraph:
    """Tasks, the tasks each one waits for, the table each writes and a label for each."""

    dependencies: Mapping[str, frozenset[str]]
    outputs: Mapping[str, TableName]
    labels: Mapping[str, str]

    def order(self) -> list[str]:
        """Task names in a dependency order (ties broken by name, so the order is stable)."""
        sorter = graphlib.TopologicalSorter(self.dependencies)
        sorter.prepare()
        order: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=_natural)
            order.extend(ready)
            sorter.done(*ready)
        return order

    def descendants(self, names: Iterable[str]) -> set[str]:
        """The named tasks and every task that waits on them, directly or not."""
        found = set(names)
        for name in self.order():
            if self.dependencies[name] & found:
                found.add(name)
        return found

    def resolve(self, name: str) -> str:
        """A task's full name from itself or from a model's or a table's bare name.

        >>> g = TaskGraph({"extract:orders": frozenset()}, {}, {})
        >>> g.resolve("orders")
        'extract:orders'
        """
        if name in self.dependencies:
            return name
        matches = [t for t in self.dependencies if t.partition(":")[2] == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ConfigError(
                f"Task '{name}' is ambiguous: {' or '.join(sorted(matches))}.",
                hint="Name the task in full.",
            )
        bare = {t.partition(":")[2] for t in self.dependencies}
        raise ConfigError(
            f"The job has no task '{name}'.{did_you_mean(name, [*self.dependencies, *bare])}",
            hint="List the tasks with 'sluice job graph <job>'.",
        )

    def select(
        self,
        *,
        start_from: Iterable[str] = (),
        only: Iterable[str] = (),
        exclude: Iterable[str] = (),
    ) -> frozenset[str]:
        """The tasks to run: those from ``start_from`` on, or ``only`` these, minus ``exclude``.

        Checks that read a selected task's table are selected with it. With no argument every
        task is selected.
        """
        starts = [self.resolve(n) for n in start_from]
        chosen = [self.resolve(n) for n in only]
        dropped = {self.resolve(n) for n in exclude}
        if starts and chosen:
            raise ConfigError("Use either --from or --only, not both.")
        if starts:
            selected = self.descendants(starts)
        elif chosen:
            selected = set(chosen) | {
                t
                for t in self.dependencies
                if t.startswith("check:") and self.dependencies[t] & set(chosen)
            }
        else:
            selected = set(self.dependencies)
        selected -= dropped
        if not selected:
            raise ConfigError(
                "The selection leaves no task to run.",
                hint="Check the --from, --only and --exclude names.",
            )
        return frozenset(selected)

    def render(self, fmt: str = "text") -> str:
        """The graph as indented text, Graphviz DOT or a Mermaid flowchart; publish last."""
        if fmt not in FORMATS:
            raise ConfigError(
                f"Unknown graph format '{fmt}'.{did_you_mean(fmt, FORMATS)}",
                hint=f"Use one of: {', '.join(FORMATS)}.",
            )
        order = self.order()
        edges = [(dep, name) for name in order for dep in sorted(self.dependencies[name])]
        leaves = [n for n in order if not any(n in d for d in self.dependencies.values())]
        edges += [(leaf, PUBLISH) for leaf in leaves]
        if fmt == "dot":
            lines = ["digraph job {", "  rankdir=LR;"]
            lines += [f'  "{n}" [label="{self._label(n)}"];' for n in [*order, PUBLISH]]
            lines += [f'  "{a}" -> "{b}";' for a, b in edges]
            return "\n".join([*lines, "}"]) + "\n"
        if fmt == "mermaid":
            lines = ["flowchart LR"]
            lines += [f'  {_node_id(n)}["{self._label(n)}"]' for n in [*order, PUBLISH]]
            lines += [f"  {_node_id(a)} --> {_node_id(b)}" for a, b in edges]
            return "\n".join(lines) + "\n"
        width = max(len(n) for n in [*order, PUBLISH])
        lines = []
        for name in [*order, PUBLISH]:
            deps = sorted(self.dependencies[name]) if name != PUBLISH else leaves
            after = f"  after {', '.join(deps)}" if deps else ""
            label = self.labels.get(name)
            lines.append(f"{name:<{width}}{after}{f'  ({label})' if label else ''}".rstrip())
        return "\n".join(lines) + "\n"

    def _label(self, name: str) -> str:
        label = self.labels.get(name)
        return f"{name}: {label}" if label else name


def _natural(name: str) -> tuple[str, int]:
    """Sort key that puts check:2 before check:10."""
    stem, _, number = name.rpartition(":")
    return (stem, int(number)) if number.isdigit() else (name, -1)


def _node_id(name: str) -> str:
    return re.sub(r"\W", "_", name)


def build_graph(
    *,
    tables: Iterable[TableName],
    models: Iterable[tuple[str, TableName, frozenset[TableName]]],
    checks: Iterable[tuple[str, frozenset[TableName]]],
) -> TaskGraph:
    """The graph of a job: one extract task per raw table, one transform task per model
    (``name, table, reads``) after the tasks producing what it reads, one check task per
    check (``label, reads``) after those producing what it reads."""
    outputs: dict[str, TableName] = {f"extract:{t.name}": t for t in tables}
    model_list = list(models)
    outputs.update({f"transform:{name}": table for name, table, _ in model_list})
    producers = {table: task for task, table in outputs.items()}
    dependencies: dict[str, frozenset[str]] = {t: frozenset() for t in outputs}
    for name, _, reads in model_list:
        dependencies[f"transform:{name}"] = frozenset(producers[r] for r in reads if r in producers)
    labels: dict[str, str] = {}
    for i, (label, reads) in enumerate(checks):
        dependencies[f"check:{i}"] = frozenset(producers[r] for r in reads if r in producers)
        labels[f"check:{i}"] = label
    return TaskGraph(dependencies, outputs, labels)


def required_inputs(graph: TaskGraph, selected: frozenset[str]) -> dict[str, TableName]:
    """Tasks not selected whose tables a selected task reads (they must be published)."""
    needed = {dep for name in selected for dep in graph.dependencies[name]} - selected
    return {task: graph.outputs[task] for task in sorted(needed)}


def unchanged_outputs(graph: TaskGraph, selected: frozenset[str]) -> Mapping[str, TableName]:
    """Tables of the tasks not selected: the publication keeps their current snapshots."""
    return {t: table for t, table in graph.outputs.items() if t not in selected}

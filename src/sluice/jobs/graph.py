"""Run a DAG of tasks on a bounded thread pool, each task as soon as its inputs are done."""

from __future__ import annotations

import graphlib
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")


def run_graph(
    dependencies: dict[str, set[str]],
    work: Callable[[str], T],
    *,
    workers: int,
    priority: Callable[[str], float] = lambda name: 0.0,
    on_error: Callable[[BaseException], None] = lambda exc: None,
) -> dict[str, T]:
    """Run ``work(name)`` for every node after all of its dependencies; return the results.

    Ready tasks start in descending ``priority``. On the first failure ``on_error`` is
    called (to interrupt the running tasks), the rest are not started and the error
    is raised once the running tasks have ended.

    >>> order = []
    >>> run_graph({"b": {"a"}, "a": set()}, lambda n: order.append(n) or n.upper(), workers=2)
    {'a': 'A', 'b': 'B'}
    >>> order
    ['a', 'b']
    """
    sorter = graphlib.TopologicalSorter(dependencies)
    sorter.prepare()
    results: dict[str, T] = {}
    running: dict[Future[T], str] = {}
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sluice-task") as pool:
        while failure is None and sorter.is_active():
            for name in _by_priority(sorter.get_ready(), priority):
                running[pool.submit(work, name)] = name
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                error = future.exception()
                if error is not None:
                    if failure is None:
                        failure = error
                        on_error(error)
                    continue
                results[name] = future.result()
                sorter.done(name)
        wait(running)
    if failure is not None:
        raise failure
    return results


def _by_priority(names: Iterable[str], priority: Callable[[str], float]) -> list[str]:
    return sorted(names, key=lambda name: (-priority(name), name))

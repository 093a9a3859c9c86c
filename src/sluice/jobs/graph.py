"""Run a DAG of tasks on a bounded thread pool, each task as soon as its inputs are done."""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Callable
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

    At most ``workers`` tasks run at once; of the ready ones, the highest ``priority``
    starts first. On the first failure ``on_error`` is
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
    ready: list[tuple[float, str]] = []
    running: dict[Future[T], str] = {}
    failure: BaseException | None = None
    limit = max(1, workers)
    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="sluice-task") as pool:
        while failure is None and sorter.is_active():
            for name in sorter.get_ready():
                heapq.heappush(ready, (-priority(name), name))
            while ready and len(running) < limit:
                _, name = heapq.heappop(ready)
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

"""Executors run a function over work items and yield results as they complete.

They know nothing of physics: ``map_unordered(function, items)`` is the whole interface.
Executors whose results can stay where they were computed (Dask) also offer
``map_keep(function, items, summarize)``, ``combine(function, refs)`` and ``fetch(ref)``, so
the runner merges results in a tree on the cluster instead of on the driver. Optional keyword
arguments an executor understands are listed in its ``takes``: ``affinity`` (item → key; items
of a key go to one worker), ``placement`` (item → key; an item goes back to the worker that ran
its key last, whose cache holds it), ``resources`` (what a worker must declare) and ``on_lost``
((item, WorkerLostError) → the result to yield for an item whose worker died).
Chosen by name through a registry (third parties: entry-point group ``highrate.executors``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from highrate.base.registry import Registry


class Executor(Protocol):
    """Runs ``function`` over ``items``; results come back in completion order."""

    name: str

    def map_unordered(self, function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]: ...

    def close(self) -> None: ...


executors: Registry[Callable[..., Executor]] = Registry("executor", "highrate.executors")
executors.register("sequential", "highrate.execution.executors.local:SequentialExecutor")
executors.register("processes", "highrate.execution.executors.local:ProcessExecutor")
executors.register("dask", "highrate.execution.executors.dask:DaskExecutor")
executors.register("cluster", "highrate.execution.executors.cluster:ClusterExecutor")


def make_executor(
    name: str, *, workers: int | None = None, scheduler: str | None = None, cluster: str | None = None
) -> Executor:
    """Create an executor by name; ``scheduler`` (an address) implies ``dask``, ``cluster`` (a
    profile name, see ``highrate cluster list``) implies ``cluster``."""
    if cluster:
        return executors.get("cluster")(workers=workers, scheduler=scheduler, cluster=cluster)
    if scheduler and name != "dask":
        name = "dask"
    factory = executors.get(name)
    return factory(workers=workers, scheduler=scheduler)


__all__ = ["Executor", "executors", "make_executor"]


def supported_options(ex: Executor, **options: Any) -> dict[str, Any]:
    """The optional keyword arguments of ``map_unordered`` this executor takes (its ``takes``)."""
    return {k: v for k, v in options.items() if k in getattr(ex, "takes", ())}

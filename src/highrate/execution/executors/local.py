"""Executors on this machine: in-process and a pool of worker processes."""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

from highrate.errors import ConfigError, WorkerLostError


class SequentialExecutor:
    """Runs everything in this process, in order: the reference, and the easiest to debug."""

    name = "sequential"

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None) -> None:
        if scheduler:
            raise ConfigError("the sequential executor takes no --scheduler.")

    def map_unordered(self, function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            yield function(item)

    def close(self) -> None:
        pass


class ProcessExecutor:
    """A pool of local worker processes.

    On Linux, when this process runs no other thread, workers are forked: they start at once
    with everything already imported (~0.4 s less than a fresh interpreter). Otherwise, since
    forking a threaded process can deadlock, a forkserver with highrate preloaded is used.
    At most 2 items per worker are in flight, so memory stays bounded however many chunks.

    With ``affinity`` (an item's key, e.g. its file), items of one key go to one worker, which
    then reuses what it has open for them: real NanoAOD files take 1-3 s each to open. A worker
    keeps to its keys (those it had in earlier calls first), then takes a key nobody has, and
    at the end helps whoever has most left.

    A worker process that dies (killed for memory, a crash in compiled code) is replaced. The
    item it was running comes back as ``on_lost(item, error)`` when given, else the error (a
    :class:`~highrate.errors.WorkerLostError`) is raised; the item queued behind it goes to the
    new process.
    """

    name = "processes"
    takes = frozenset({"affinity", "on_lost"})  # keyword arguments of map_unordered beyond the protocol

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None) -> None:
        if scheduler:
            raise ConfigError("the processes executor takes no --scheduler; use --executor dask.")
        # imported here: a sequential run does without multiprocessing (~4 ms of imports)
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers or os.cpu_count() or 1
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}.")
        if sys.platform == "linux" and threading.active_count() == 1:
            context = multiprocessing.get_context("fork")
        else:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["highrate.execution.worker"])
        self.start_method = context.get_start_method()
        self._context = context
        # one single-process pool per worker, so that an item can be sent to a chosen worker
        self._pools = [ProcessPoolExecutor(max_workers=1, mp_context=context) for _ in range(self.workers)]
        self._homes: dict[Hashable, int] = {}  # key -> the worker that last had it
        # start the workers now, so their imports overlap with the driver's metadata and tracing
        for pool in self._pools:
            pool.submit(_ready)

    def map_unordered(
        self, function: Callable[[Any], Any], items: Iterable[Any], *,
        affinity: Callable[[Any], Hashable] | None = None,
        on_lost: Callable[[Any, WorkerLostError], Any] | None = None,
    ) -> Iterator[Any]:
        from concurrent.futures.process import BrokenProcessPool

        queue = _AffinityQueue(items, affinity, self._homes, self.workers)
        running: dict[Future[Any], tuple[int, Any, ProcessPoolExecutor, int]] = {}  # worker, item, pool, order
        load = [0] * self.workers
        order = itertools.count()
        while True:
            for worker in range(self.workers):
                while load[worker] < 2:
                    item = queue.next_for(worker)
                    if item is _NOTHING:
                        break
                    pool = self._pools[worker]
                    try:
                        future = pool.submit(function, item)
                    except BrokenProcessPool:  # its process died between items
                        self._replace(worker, pool)
                        pool = self._pools[worker]
                        future = pool.submit(function, item)
                    running[future] = (worker, item, pool, next(order))
                    load[worker] += 1
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                if future not in running:  # handled with the other items of its dead process
                    continue
                worker, item, pool, _ = running[future]
                try:
                    result = future.result()
                except BrokenProcessPool as err:
                    # a worker runs its items in order: the oldest unfinished one died with it,
                    # the ones queued behind it are sent to its new process
                    held = sorted((o, f) for f, (_, _, p, o) in running.items()
                                  if p is pool and not (f.done() and f.exception() is None))
                    culprit = running[held[0][1]][1]
                    for _, f in held:
                        load[worker] -= 1
                        queued = running.pop(f)[1]
                        if queued is not culprit:
                            queue.put_back(worker, queued)
                    self._replace(worker, pool)
                    lost = WorkerLostError(
                        f"worker process {worker + 1} of {self.workers} died while running this item "
                        f"(killed for using too much memory, or a crash in compiled code?): {err}"
                    )
                    if on_lost is None:
                        raise lost from err
                    yield on_lost(culprit, lost)
                    continue
                running.pop(future)
                load[worker] -= 1
                yield result

    def _replace(self, worker: int, broken: ProcessPoolExecutor) -> None:
        """A new process for a worker whose process died (once, however many items it held)."""
        if self._pools[worker] is broken:
            from concurrent.futures import ProcessPoolExecutor

            broken.shutdown(wait=False, cancel_futures=True)
            self._pools[worker] = ProcessPoolExecutor(max_workers=1, mp_context=self._context)

    def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)
        for pool in self._pools:
            pool.shutdown(wait=True)


_NOTHING = object()


class _AffinityQueue:
    """Items grouped by key, handed out so that a worker keeps to its keys (see ProcessExecutor)."""

    def __init__(self, items: Iterable[Any], key: Callable[[Any], Hashable] | None,
                 homes: dict[Hashable, int], workers: int) -> None:
        self.items: dict[Hashable, deque[Any]] = {}
        for n, item in enumerate(items):
            self.items.setdefault(key(item) if key is not None else ("item", n), deque()).append(item)
        self.homes = homes
        self.free = deque(self.items)  # keys no worker has taken yet, in order
        self.mine: list[deque[Hashable]] = [deque() for _ in range(workers)]  # keys a worker had before
        for k in self.items:
            if homes.get(k, workers) < workers:
                self.mine[homes[k]].append(k)
        self.taken: set[Hashable] = set()
        self.current: list[Hashable | None] = [None] * workers
        self.again: list[deque[Any]] = [deque() for _ in range(workers)]  # items to send once more

    def put_back(self, worker: int, item: Any) -> None:
        """An item handed out to ``worker`` that did not run: it comes next for that worker."""
        self.again[worker].append(item)

    def next_for(self, worker: int) -> Any:
        if self.again[worker]:
            return self.again[worker].popleft()
        k = self.current[worker]
        if k is not None and self.items[k]:
            return self.items[k].popleft()
        k = self._untaken(self.mine[worker]) or self._untaken(self.free)
        if k is None:  # help the worker with most left, from the far end of its items
            k = max((k for k, left in self.items.items() if left), key=lambda k: len(self.items[k]), default=None)
            if k is None:
                return _NOTHING
            self.current[worker] = k
            return self.items[k].pop()
        self.taken.add(k)
        self.homes[k] = worker
        self.current[worker] = k
        return self.items[k].popleft()

    def _untaken(self, keys: deque[Hashable]) -> Hashable | None:
        while keys:
            k = keys.popleft()
            if k not in self.taken and self.items[k]:
                return k
        return None


def _ready() -> None:
    """A no-op task that makes the pool start its worker processes."""

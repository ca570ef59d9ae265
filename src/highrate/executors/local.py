"""Executors on this machine: in-process and a pool of worker processes."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from highrate.errors import ConfigError


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
    """

    name = "processes"
    affinity = True  # map_unordered takes affinity=

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None) -> None:
        if scheduler:
            raise ConfigError("the processes executor takes no --scheduler; use --executor dask.")
        self.workers = workers or os.cpu_count() or 1
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}.")
        if sys.platform == "linux" and threading.active_count() == 1:
            context = multiprocessing.get_context("fork")
        else:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["highrate.worker"])
        self.start_method = context.get_start_method()
        # one single-process pool per worker, so that an item can be sent to a chosen worker
        self._pools = [ProcessPoolExecutor(max_workers=1, mp_context=context) for _ in range(self.workers)]
        self._homes: dict[Hashable, int] = {}  # key -> the worker that last had it
        # start the workers now, so their imports overlap with the driver's metadata and tracing
        for pool in self._pools:
            pool.submit(_ready)

    def map_unordered(
        self, function: Callable[[Any], Any], items: Iterable[Any], *,
        affinity: Callable[[Any], Hashable] | None = None,
    ) -> Iterator[Any]:
        queue = _AffinityQueue(items, affinity, self._homes, self.workers)
        running: dict[Future[Any], int] = {}
        load = [0] * self.workers
        while True:
            for worker, pool in enumerate(self._pools):
                while load[worker] < 2:
                    item = queue.next_for(worker)
                    if item is _NOTHING:
                        break
                    running[pool.submit(function, item)] = worker
                    load[worker] += 1
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                load[running.pop(future)] -= 1
                yield future.result()

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

    def next_for(self, worker: int) -> Any:
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

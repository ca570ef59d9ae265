"""A Dask executor: a LocalCluster of worker processes by default, or an existing scheduler."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from highrate import _version
from highrate.base.cachedir import cache_root
from highrate.errors import ConfigError, ExecutorError, WorkerLostError
from highrate.execution.clusters.environment import check_workers
from highrate.execution.executors.placement import Homes
from highrate.execution.executors.worker_cache import CacheOnWorker

log = logging.getLogger(__name__)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as err:  # pragma: no cover - distributed is a core dependency
        raise ConfigError("the dask executor needs distributed: pip install 'dask[distributed]'") from err
    return distributed


class DaskExecutor:
    """Chunks become Dask tasks; results stream back as they complete.

    Dask reruns a task whose worker died; one that keeps killing its workers fails with
    ``KilledWorker``, which comes back as ``on_lost(item, WorkerLostError)`` when given.
    """

    name = "dask"
    # keyword arguments of map_unordered / map_keep beyond the protocol; resources: what each task
    # needs of a worker ({"GPU": 1}: only workers started with --resources GPU=1 run it)
    # placement: item → key; an item goes back to the worker that ran its key last (whose cache
    # holds it) while that worker is alive, as a preference (allow_other_workers: never a wait);
    # an item never run, or whose worker is gone, goes wherever the scheduler sends it
    takes = frozenset({"on_lost", "resources", "placement"})

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None,
                 resources: dict[str, float] | None = None) -> None:
        """``resources``: what each worker of the local cluster declares ({"GPU": 1} on a GPU machine)."""
        distributed = _import_distributed()
        self._cluster = None
        try:
            if scheduler:
                self.client = distributed.Client(scheduler, timeout="20s")
                self._check_workers(scheduler)
            else:
                self._cluster = distributed.LocalCluster(
                    n_workers=workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address="127.0.0.1:0",
                    host="127.0.0.1",
                    resources=resources,
                )
                self.client = distributed.Client(self._cluster)
        except OSError as err:
            raise ExecutorError(f"cannot connect to the Dask scheduler {scheduler!r}: {err}") from err
        self._setup()

    def _setup(self) -> None:
        """The cache plugin on every worker, and where chunks ran before on this scheduler (kept
        between commands for an existing cluster; a cluster of our own starts afresh)."""
        self.client.register_plugin(CacheOnWorker())
        scheduler = self.client.scheduler_info().get("id", "")
        own = self._cluster is not None or not scheduler
        self._homes = Homes(None if own else cache_root() / "placement" / f"{scheduler}.json")
        log.info("Dask dashboard: %s", self.client.dashboard_link)

    def _check_workers(self, scheduler: str) -> None:
        """Workers of an existing cluster must run the driver's highrate; say which do not."""

        try:
            check_workers(
                self.client, expected=_version.__version__,
                hint=f"Install highrate {_version.__version__} in the environment of the workers of {scheduler}.",
            )
        except BaseException:
            self.client.close()
            raise

    @classmethod
    def from_client(cls, client: Any, *, cluster: Any = None) -> DaskExecutor:
        """Wrap a connected ``distributed.Client``; ``cluster`` (if given) is closed with it."""
        executor = cls.__new__(cls)
        executor.client = client
        executor._cluster = cluster
        executor._setup()
        return executor

    @property
    def dashboard_link(self) -> str:
        return str(self.client.dashboard_link)

    def map_unordered(
        self, function: Callable[[Any], Any], items: Iterable[Any], *,
        on_lost: Callable[[Any, WorkerLostError], Any] | None = None, resources: dict[str, float] | None = None,
        placement: Callable[[Any], str] | None = None,
    ) -> Iterator[Any]:
        distributed = _import_distributed()
        items = list(items)
        self._check_resources(resources)
        futures = dict(zip(self._submit(function, items, resources, placement), items, strict=True))
        for future in distributed.as_completed(futures):
            yield _result(future, futures[future], on_lost)
            future.release()

    def map_keep(
        self, function: Callable[[Any], Any], items: Iterable[Any], summarize: Callable[[Any], Any], *,
        on_lost: Callable[[Any, WorkerLostError], Any] | None = None, resources: dict[str, float] | None = None,
        placement: Callable[[Any], str] | None = None,
    ) -> Iterator[tuple[Any, Any]]:
        """Like ``map_unordered``, but results stay on the workers: yields (summary, future).

        Only ``summarize(result)`` travels to the driver; the futures feed ``combine``. A lost
        worker's results are recomputed by Dask from the task graph. An item given up on comes
        back as ``(on_lost(item, error), None)``.
        """
        distributed = _import_distributed()
        items = list(items)
        self._check_resources(resources)
        futures = self._submit(function, items, resources, placement)
        summaries = {self.client.submit(summarize, f, pure=False): (f, item)
                     for f, item in zip(futures, items, strict=True)}
        ran: list[tuple[str, Any]] = []  # (placement key, future) of finished items, to note where they ran
        try:
            for summary in distributed.as_completed(summaries):
                future, item = summaries.pop(summary)
                result = _result(summary, item, on_lost)
                if placement is not None and future.status == "finished":
                    ran.append((placement(item), future))
                    if len(ran) >= 64:
                        self._note(ran)
                yield result, (None if future.status == "error" else future)
                summary.release()
        finally:
            self._note(ran)

    def _note(self, ran: list[tuple[str, Any]]) -> None:
        """Remember the worker that holds each finished item's result (where it ran)."""
        if not ran:
            return
        with contextlib.suppress(Exception):  # a lost scheduler is said elsewhere; this is a hint
            where = self.client.who_has([f for _, f in ran])
            self._homes.note({key: where[f.key][0] for key, f in ran if where.get(f.key)})
        ran.clear()

    def _submit(self, function: Callable[[Any], Any], items: list[Any], resources: dict[str, float] | None,
                placement: Callable[[Any], str] | None) -> list[Any]:
        homes = [None] * len(items)
        if placement is not None:
            alive = set(self.client.scheduler_info().get("workers", {}))
            homes = [self._homes.of(placement(item), alive) for item in items]
        if not any(homes):  # (one map call: Dask queues the tasks and hands them out as workers free up)
            return list(self.client.map(function, items, pure=False, resources=resources))
        return [self.client.submit(function, item, pure=False, resources=resources, workers=[home],
                                   allow_other_workers=True) if home else
                self.client.submit(function, item, pure=False, resources=resources)
                for item, home in zip(items, homes, strict=True)]

    def _check_resources(self, resources: dict[str, float] | None) -> None:
        """Tasks needing resources no worker declares would wait for ever: say so instead."""
        if not resources:
            return
        workers = self.client.scheduler_info().get("workers", {}).values()
        if not any(all(w.get("resources", {}).get(k, 0) >= v for k, v in resources.items()) for w in workers):
            needs = " ".join(f"{k}={v:g}" for k, v in resources.items())
            raise ConfigError(f"the chunks need Dask workers with resources {needs} (--device gpu), and no worker "
                              f"declares them: start GPU workers with `dask worker SCHEDULER --resources {needs}`.")

    def combine(self, function: Callable[..., Any], refs: list[Any]) -> Any:
        """One reduction node, as a task on the cluster next to its inputs."""
        return self.client.submit(function, *refs, pure=False)

    def fetch(self, ref: Any) -> Any:
        with _scheduler_connection():
            return ref.result()

    def close(self) -> None:
        self._homes.save()
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def _result(future: Any, item: Any, on_lost: Callable[[Any, WorkerLostError], Any] | None) -> Any:
    """The future's result; a task that kept killing its workers becomes ``on_lost``'s answer."""
    distributed = _import_distributed()
    try:
        with _scheduler_connection():
            return future.result()
    except distributed.KilledWorker as err:
        lost = WorkerLostError(f"the Dask workers running this item died each time it ran ({err}): "
                               "out of memory, or a crash in compiled code?")
        if on_lost is None:
            raise lost from err
        return on_lost(item, lost)


@contextlib.contextmanager
def _scheduler_connection() -> Iterator[None]:
    """A lost connection to the scheduler (it died, or a broker between) as one clear error.

    Only the comm layer's own errors: a chunk's InputFileError is an OSError too, and stays as it is."""
    distributed = _import_distributed()
    try:
        yield
    except distributed.comm.CommClosedError as err:
        raise ExecutorError(_LOST.format(err=err)) from err
    except distributed.client.FutureCancelledError as err:
        if getattr(err, "reason", None) != "scheduler-connection-lost":
            raise
        raise ExecutorError(_LOST.format(err=err)) from err


_LOST = ("lost the connection to the Dask scheduler ({err}); the finished chunks are checkpointed: "
         "run again with --resume")

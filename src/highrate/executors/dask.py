"""A Dask executor: a LocalCluster of worker processes by default, or an existing scheduler."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from highrate.errors import ConfigError, ExecutorError

log = logging.getLogger(__name__)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as err:  # pragma: no cover - distributed is a core dependency
        raise ConfigError("the dask executor needs distributed: pip install 'dask[distributed]'") from err
    return distributed


class DaskExecutor:
    """Chunks become Dask tasks; results stream back as they complete."""

    name = "dask"

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None) -> None:
        distributed = _import_distributed()
        self._cluster = None
        try:
            if scheduler:
                self.client = distributed.Client(scheduler, timeout="20s")
            else:
                self._cluster = distributed.LocalCluster(
                    n_workers=workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address="127.0.0.1:0",
                    host="127.0.0.1",
                )
                self.client = distributed.Client(self._cluster)
        except OSError as err:
            raise ExecutorError(f"cannot connect to the Dask scheduler {scheduler!r}: {err}") from err
        log.info("Dask dashboard: %s", self.client.dashboard_link)

    @classmethod
    def from_client(cls, client: Any, *, cluster: Any = None) -> DaskExecutor:
        """Wrap a connected ``distributed.Client``; ``cluster`` (if given) is closed with it."""
        executor = cls.__new__(cls)
        executor.client = client
        executor._cluster = cluster
        return executor

    @property
    def dashboard_link(self) -> str:
        return str(self.client.dashboard_link)

    def map_unordered(self, function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        distributed = _import_distributed()
        futures = self.client.map(function, list(items), pure=False)
        for future in distributed.as_completed(futures):
            yield future.result()
            future.release()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

"""The Dask worker plugin that gives each worker its own cache of columns and stage results."""

from __future__ import annotations

import os
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from highrate.base.cachedir import cache_root
from highrate.base.store import Store, max_bytes_from_env
from highrate.execution.caching import FOLDER_ENV, WORKER_ATTRIBUTE


class CacheOnWorker(WorkerPlugin):
    """A worker plugin: the worker's own cache folder (``$HIGHRATE_CACHE_DIR`` there, else its
    highrate cache folder, else its Dask local directory), pruned to the size limit on start."""

    name = "highrate-cache"
    idempotent = True

    def setup(self, worker: Any) -> None:
        folder = os.environ.get(FOLDER_ENV) or str(cache_root() / "chunks")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError:
            folder = os.path.join(worker.local_directory, "highrate-cache")
        setattr(worker, WORKER_ATTRIBUTE, folder)
        store = Store(folder, max_bytes_from_env())
        if sum(size for _, size, _ in store.entries()) > store.max_bytes:
            store.prune(int(store.max_bytes * 0.8))

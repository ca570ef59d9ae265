"""Checkpoints: each chunk's result stored as it completes, so a crashed run can resume.

A checkpoint is keyed by everything that determines its content: the input (file UUID, tree,
entry range), the dataset and its metadata, the branches read, the analysis definition hash
and the highrate version. A changed analysis or a new release never reuses stale results.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

from highrate.data.partition import WorkItem
from highrate.engine.result import Result
from highrate.execution.tasks import DatasetPlan

FORMAT = 1


def chunk_key(item: WorkItem, plan: DatasetPlan, analysis_hash: str, version: str) -> str:
    """A stable hex key of one chunk's computation."""
    ident = repr((
        FORMAT, version, analysis_hash, item.dataset, item.uuid or item.url, item.tree, item.start, item.stop,
        sorted(plan.meta.items(), key=lambda kv: kv[0]), plan.branches,
    ))
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


class CheckpointStore:
    """A folder of pickled chunk results, one file per key, written atomically."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.pkl"

    def load(self, key: str) -> Result | None:
        """The stored result, or None if absent or unreadable (then it is recomputed)."""
        try:
            with self._path(key).open("rb") as f:
                result = pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
            return None
        return result if isinstance(result, Result) else None

    def save(self, key: str, result: Result) -> None:
        tmp = self._path(key).with_suffix(f".tmp{os.getpid()}")
        with tmp.open("wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(self._path(key))

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.pkl"))

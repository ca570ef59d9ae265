"""What tracing found, remembered between runs of the same analysis.

Tracing runs the whole analysis on awkward typetracers to learn which branches it reads and
what its objects and shape variations touch: 0.15-0.4 s per dataset before the first chunk,
the largest fixed cost of a small run. The answer depends only on the analysis' steps (their
definitions, helpers and globals followed: :meth:`Analysis.reads_key`, which a histogram's
binning does not change), the branches the files offer, the dataset's metadata and the versions
of highrate and awkward, so it is stored under the cache folder keyed by all of them.
``HIGHRATE_CACHE=off`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from highrate._version import __version__
from highrate.base.cachedir import cache_root, caching_enabled, store_json
from highrate.engine.events import EventSchema
from highrate.engine.stages.recording import Dependencies
from highrate.spec.analysis import Analysis

Traced = tuple[tuple[str, ...], Dependencies]
FORMAT = 3  # 2: with the branches the skim reads; 3: keyed by Analysis.reads_key


def cached_trace(
    analysis: Analysis, schema: EventSchema, meta: Mapping[str, Any], trace: Callable[..., Traced]
) -> Traced:
    """``trace(analysis, schema, meta)``, from the cache when this exact question was answered before."""
    path = _entry(analysis, schema, meta)
    if path is not None:
        found = _load(path)
        if found is not None:
            return found
    branches, deps = trace(analysis, schema, meta)
    if path is not None:
        _store(path, branches, deps)
    return branches, deps


def _entry(analysis: Analysis, schema: EventSchema, meta: Mapping[str, Any]) -> Path | None:
    if not caching_enabled():
        return None
    import awkward


    key = hashlib.sha256()
    key.update(json.dumps({
        "format": FORMAT,
        "analysis": analysis.reads_key(),
        "versions": [__version__, awkward.__version__],
        "branches": sorted((name, info.dtype, info.counter) for name, info in schema.branches.items()),
        "meta": meta,
    }, sort_keys=True, default=repr).encode())
    return cache_root() / "traces" / f"{key.hexdigest()[:32]}.json"


def _load(path: Path) -> Traced | None:
    try:
        doc = json.loads(path.read_text())
        deps = Dependencies(
            objects={k: frozenset(v) for k, v in doc["objects"].items()},
            variations={k: frozenset(v) for k, v in doc["variations"].items()},
            skim=None if doc.get("skim") is None else frozenset(doc["skim"]),
        )
        return tuple(doc["branches"]), deps
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # absent or damaged: trace again


def _store(path: Path, branches: tuple[str, ...], deps: Dependencies) -> None:
    doc = {
        "branches": list(branches),
        "objects": {k: sorted(v) for k, v in deps.objects.items()},
        "variations": {k: sorted(v) for k, v in deps.variations.items()},
        "skim": None if deps.skim is None else sorted(deps.skim),
    }
    store_json(path, doc)

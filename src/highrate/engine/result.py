"""Chunk and run results, merged by a pure, associative ``accumulate``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import hist

HistKey = tuple[str, str, str, str]  # (histogram, dataset, category, variation)


@dataclass
class Result:
    """What chunks produce and runs report; add two with :func:`accumulate`.

    ``counts[dataset]`` holds ``total``, ``skimmed``, ``preselected``, ``bytes_read``, ``chunks``;
    ``cutflow[dataset][step]`` event counts after each cut (cumulative);
    ``categories[dataset][category]`` ``[events, sumw, sumw2]``;
    ``failed`` one dict per chunk that could not be processed;
    ``files[file]`` which replica served how many chunks (``served_by``) and the replicas that
    failed on the way (``replica_failures``);
    ``sources[endpoint]`` ``bytes`` fetched (with coalescing gaps), ``requests``, ``chunks``;
    ``timings[stage]`` the seconds the chunks spent in each stage kind (read, skim, objects, ...);
    ``stages[name][device]`` a registered stage's ``calls``, ``seconds`` and ``to_host_s`` there;
    ``cache[stage]`` the cache's ``hits``, ``misses``, ``bytes_read`` and ``bytes_written`` for
    each stage, the columns (``columns``) and whole chunk results (``results``);
    ``inputs[path]`` the content digest of each file the stages read (corrections, golden JSONs),
    as the stage cache saw it.

    Chunk results hold histograms as :class:`highrate.engine.binning.Binned` sums; :func:`finished`
    turns them into ``hist.Hist`` once the run's result is complete.
    """

    histograms: dict[HistKey, Any] = field(default_factory=dict)  # hist.Hist, or Binned in chunks
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    cutflow: dict[str, dict[str, int]] = field(default_factory=dict)
    categories: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    failed: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, int]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    stages: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # registered: device costs
    cache: dict[str, dict[str, int]] = field(default_factory=dict)
    inputs: dict[str, str | None] = field(default_factory=dict)


def accumulate(results: Iterable[Result]) -> Result:
    """Merge results into a new one; inputs are not modified. Associative and commutative
    (up to the order of ``failed``), so any reduction tree gives the same answer."""
    out = Result()
    for r in results:
        for key, h in r.histograms.items():
            mine = out.histograms.get(key)
            out.histograms[key] = h.copy() if mine is None else _iadd(mine, h)
        for name in ("counts", "cutflow"):
            target = getattr(out, name)
            for ds, values in getattr(r, name).items():
                d = target.setdefault(ds, {})
                for k, v in values.items():
                    d[k] = d.get(k, 0) + v
        for ds, cats in r.categories.items():
            d = out.categories.setdefault(ds, {})
            for cat, vals in cats.items():
                mine = d.setdefault(cat, [0, 0.0, 0.0])
                d[cat] = [a + b for a, b in zip(mine, vals, strict=True)]
        for stage, seconds in r.timings.items():
            out.timings[stage] = out.timings.get(stage, 0.0) + seconds
        out.failed.extend(r.failed)
        _merge_tree(out.files, r.files)
        _merge_tree(out.sources, r.sources)
        _merge_tree(out.stages, r.stages)
        _merge_tree(out.cache, getattr(r, "cache", {}))  # (results pickled before the cache had none)
        out.inputs.update(getattr(r, "inputs", {}))
    return out


def _merge_tree(into: dict[str, Any], other: dict[str, Any]) -> None:
    """Numbers add, lists concatenate, mappings merge key by key (copies, never aliases)."""
    for key, value in other.items():
        if isinstance(value, dict):
            _merge_tree(into.setdefault(key, {}), value)
        elif isinstance(value, list):
            into.setdefault(key, []).extend(value)
        else:
            into[key] = into.get(key, 0) + value


def _iadd(mine: Any, other: Any) -> Any:
    if isinstance(mine, hist.Hist) != isinstance(other, hist.Hist):  # a chunk's sums meet a finished histogram
        mine, other = _as_hist(mine), _as_hist(other)
    mine += other
    return mine


def _as_hist(h: Any) -> hist.Hist:
    return h if isinstance(h, hist.Hist) else h.to_hist()


def finished(result: Result) -> Result:
    """``result`` with every histogram a ``hist.Hist``."""
    result.histograms = {k: _as_hist(h) for k, h in result.histograms.items()}
    return result

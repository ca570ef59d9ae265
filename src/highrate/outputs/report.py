"""``report.json``: event counts, throughput, bytes read, cutflows, failed chunks, versions."""

from __future__ import annotations

import json
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from highrate.engine.stages.clock import STAGES
from highrate.execution.options import RunOptions, RunOutcome
from highrate.spec.analysis import Analysis

PACKAGES = ("highrate", "uproot", "awkward", "numpy", "hist", "boost-histogram", "dask", "distributed")


def build_report(outcome: RunOutcome, analysis: Analysis, options: RunOptions) -> dict[str, Any]:
    """The run report as a JSON-ready dict."""
    r = outcome.result
    wall = outcome.wall_s
    per_dataset = {}
    for ds, c in sorted(r.counts.items()):
        per_dataset[ds] = {
            "events": {k: int(c.get(k, 0)) for k in ("total", "skimmed", "preselected")},
            "bytes_read": int(c.get("bytes_read", 0)),
            "chunks": int(c.get("chunks", 0)),
            "branches_read": list(outcome.plans[ds].branches) if ds in outcome.plans else [],
            "metadata": dict(outcome.plans[ds].meta) if ds in outcome.plans else {},
        }
    totals = {k: sum(d["events"][k] for d in per_dataset.values()) for k in ("total", "skimmed", "preselected")}
    subsamples = _subsamples(outcome, set(per_dataset))
    bytes_read = sum(d["bytes_read"] for d in per_dataset.values())
    # a resumed run's rates are over the events it processed itself, not those taken from checkpoints
    resumed = outcome.chunk_counts.get("resumed_totals", {})
    now = {k: totals[k] - int(resumed.get("events" if k == "total" else k, 0)) for k in totals}
    read_now = bytes_read - int(resumed.get("bytes_read", 0))
    stages = {s: r.timings[s] for s in (*STAGES, *sorted(set(r.timings) - set(STAGES))) if s in r.timings}
    return {
        "analysis": {"name": analysis.name, "hash": analysis.hash()},
        "events": totals,
        "events_this_run": now,
        "wall_s": wall,
        "events_per_s": _rate(now["total"], wall),
        "skimmed_per_s": _rate(now["skimmed"], wall),
        "preselected_per_s": _rate(now["preselected"], wall),
        "bytes_read": bytes_read,
        "bytes_read_this_run": read_now,
        "mb_per_s": _rate(read_now / 1e6, wall),
        # seconds per stage kind, summed over chunks and workers; merge: the driver's merging
        "stages_s": {**stages, "merge": float(outcome.chunk_counts.get("merge_s", 0.0))},
        "chunks": {"total": outcome.chunks, "processed": sum(d["chunks"] for d in per_dataset.values()),
                   "failed": len(r.failed),
                   **{k: v for k, v in outcome.chunk_counts.items()
                      if k not in ("workers", "merge_s", "resumed_totals")}},
        "workers": {
            name: {**w, "events_per_s": _rate(w["events"], wall), "mb_per_s": _rate(w["bytes_read"] / 1e6, wall)}
            for name, w in sorted(outcome.chunk_counts.get("workers", {}).items())
        },
        "datasets": {**per_dataset, **subsamples},
        "cutflow": {
            ds: {"steps": dict(r.cutflow.get(ds, {})),
                 "categories": {cat: {"events": int(v[0]), "sumw": v[1], "sumw2": v[2]}
                                for cat, v in r.categories.get(ds, {}).items()}}
            for ds in sorted(set(r.cutflow) | set(r.categories))
        },
        "failed_chunks": [{k: v for k, v in f.items() if k != "traceback" or v} for f in r.failed],
        "files": _files(r.files),
        "stages": stage_costs(r.stages, totals["total"]),  # registered stages: device, calls, seconds
        # the caches, per stage: hits, misses, bytes read and written (docs/caching.md)
        "cache": {stage: dict(r.cache[stage]) for stage in sorted(r.cache, key=_cache_order)},
        "sources": {
            name: {**s, "events_per_s": _rate(s.get("events", 0), wall), "mb_per_s": _rate(s.get("bytes", 0) / 1e6, wall)}
            for name, s in sorted(r.sources.items())
        },
        "options": {
            "executor": outcome.executor, "workers": options.workers, "scheduler": options.scheduler,
            "chunk_size": options.chunk_size, "limit_files": options.limit_files,
            "limit_chunks": options.limit_chunks, "skip_bad_files": options.skip_bad_files,
            "retries": options.retries, "checkpoint_dir": options.checkpoint_dir, "resume": options.resume,
            "chunk_timeout": options.chunk_timeout, "cluster": options.cluster,
            "max_failed_fraction": options.max_failed_fraction, "device": options.device,
            "cache": options.cache, "cache_dir": options.cache_dir, "cache_size": options.cache_size,
        },
        "timings": outcome.timings,
        "versions": {"python": platform.python_version(), **{p: _version(p) for p in PACKAGES}},
    }


def _files(files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per file: which replica served its chunks, and every replica failure with its reason."""
    out = {}
    for name, f in sorted(files.items()):
        served = dict(sorted(f.get("served_by", {}).items(), key=lambda kv: -kv[1]))
        out[name] = {"served_by": served, "replica_failures": sorted(f.get("replica_failures", []), key=_when)}
    return out


def stage_costs(stages: dict[str, dict[str, dict[str, float]]], events: int) -> dict[str, Any]:
    """Per registered stage, the device(s) that ran it and what it cost there, summed over chunks:
    ``calls``, ``seconds`` (work and host↔device copies), ``to_host_s`` (the copy back alone)."""
    return {name: {device: {"calls": c.get("calls", 0), "seconds": c.get("seconds", 0.0),
                            "to_host_s": c.get("to_host_s", 0.0), "events_per_s": _rate(events, c.get("seconds", 0.0))}
                   for device, c in sorted(devices.items())}
            for name, devices in sorted(stages.items())}


CACHE_ORDER = ("results", "columns", "skim", "objects", "preselection", "quantities", "weights", "categories", "fill")


def _cache_order(stage: str) -> tuple[int, str]:
    return (CACHE_ORDER.index(stage) if stage in CACHE_ORDER else len(CACHE_ORDER), stage)


def _when(failure: dict[str, Any]) -> float:
    return float(failure.get("time", 0.0))


def _subsamples(outcome: RunOutcome, datasets: set[str]) -> dict[str, Any]:
    """Report entries for the parts of datasets split into subsamples (``{dataset}_{part}``)."""
    out: dict[str, Any] = {}
    for name in sorted(set(outcome.result.categories) - datasets):
        parent = max((d for d in datasets if name.startswith(f"{d}_")), key=len, default=None)
        if parent is None or parent not in outcome.plans:
            continue
        meta = dict(outcome.plans[parent].meta)
        part = name[len(parent) + 1 :]
        out[name] = {"subsample_of": parent,
                     "metadata": {**meta, "dataset": name, "sample": f"{meta.get('sample', parent)}_{part}"}}
    return out


def write_report(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=False, default=float) + "\n")
    tmp.replace(path)


def _rate(amount: float, seconds: float) -> float:
    return float(amount / seconds) if seconds > 0 else 0.0


def _version(package: str) -> str | None:
    """The version running: an imported module's own ``__version__`` (the package metadata
    lookup costs a few ms per package, tens of ms for the first one), else the installed one."""
    found = getattr(sys.modules.get(package.replace("-", "_")), "__version__", None)
    if isinstance(found, str):
        return found
    try:
        return version(package)
    except PackageNotFoundError:
        return None

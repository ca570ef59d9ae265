"""Deterministic synthetic CMS NanoAOD files (v12-like, or v15's jets without ``jetId``).

The generator writes real ROOT files with uproot: an ``Events`` TTree with NanoAOD branch
names, ROOT types and the ``nMuon``/``Muon_pt[nMuon]`` jagged layout, plus ``Runs`` and
``LuminosityBlocks`` trees as CMSSW writes them. Contents are a pure function of
``(seed, file index, is_mc, events, first_event, run, extra_branches, nanoaod_version)``: events are
generated in fixed chunks of 65,536, each from its own ``numpy.random.SeedSequence``, so
neither the compression nor ``basket_events`` changes a single value, and adding extra
branches leaves the core branches untouched, as does the NanoAOD version all but the jet ID
(see ``_jetid.py``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from highrate.testing import _physics
from highrate.testing._extras import extra_branch_specs, generate_extras
from highrate.testing._jetid import RUN3_JET_ID_FIELDS, check_version, replace_jet_id, run3_jets

__all__ = [
    "COMPRESSION_LEVELS",
    "DATA_SAMPLE",
    "MC_SAMPLE",
    "branch_names",
    "generate_file",
    "generate_sample",
]

#: Default compression level per algorithm (lzma 9 as CMS production uses).
COMPRESSION_LEVELS: dict[str, int] = {"zlib": 4, "lzma": 9, "lz4": 4, "zstd": 5}
_ALGORITHMS = {"zlib": uproot.ZLIB, "lzma": uproot.LZMA, "lz4": uproot.LZ4, "zstd": uproot.ZSTD}

#: Dataset names written by :func:`generate_dataset_set`.
MC_SAMPLE = "DYJetsToLL_M-50"
DATA_SAMPLE = "SingleMuon_2018"

_GEN_CHUNK = 65_536  # events per independently seeded generation chunk (fixes contents)
_MC_RUN = 1
_MC_EVENTS_PER_LUMI = 1000
_DATA_FIRST_RUN = 315252  # first 2018 collision run
_DATA_RUN_STRIDE = 10  # run-number room per data file in a sample (<= 4 runs, gaps <= 3)
_MAX_RUNS_PER_DATA_FILE = 4

_F32, _I32, _BOOL = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.bool_)
_MUON = {"pt": _F32, "eta": _F32, "phi": _F32, "mass": _F32, "charge": _I32,
         "tightId": _BOOL, "pfRelIso04_all": _F32, "dxy": _F32, "dz": _F32}
_ELECTRON = {"pt": _F32, "eta": _F32, "phi": _F32, "mass": _F32, "charge": _I32,
             "cutBased": _I32, "pfRelIso03_all": _F32, "dxy": _F32, "dz": _F32}
_JET = {"pt": _F32, "eta": _F32, "phi": _F32, "mass": _F32, "btagDeepFlavB": _F32,
        "jetId": _I32, "hadronFlavour": _I32}
_FLAGS = ("Flag_goodVertices", "Flag_globalSuperTightHalo2016Filter", "Flag_HBHENoiseFilter",
          "Flag_HBHENoiseIsoFilter", "Flag_EcalDeadCellTriggerPrimitiveFilter",
          "Flag_BadPFMuonFilter", "Flag_eeBadScFilter", "Flag_METFilters")


def _schema(is_mc: bool, extra_branches: int, nanoaod_version: int = 12) -> list[tuple[str, object]]:
    """Ordered ``(name, dtype | {field: dtype})`` entries; dicts are jagged collections."""
    out: list[tuple[str, object]] = [
        ("run", np.dtype(np.uint32)), ("luminosityBlock", np.dtype(np.uint32)),
        ("event", np.dtype(np.uint64)),
    ]
    if is_mc:
        out.append(("genWeight", _F32))
    out.append(("PV_npvsGood", _I32))
    out += [(name, _BOOL) for name in (*_FLAGS, "HLT_IsoMu24", "HLT_Ele32_WPTight_Gsf")]
    jet = dict(_JET) if is_mc else {k: v for k, v in _JET.items() if k != "hadronFlavour"}
    if nanoaod_version >= 15:
        jet = replace_jet_id(jet, RUN3_JET_ID_FIELDS)
    out += [("Muon", dict(_MUON)), ("Electron", dict(_ELECTRON)), ("Jet", jet)]
    out += [("MET_pt", _F32), ("MET_phi", _F32)]
    if is_mc:
        out.append(("Pileup_nTrueInt", _F32))
    specs = extra_branch_specs(extra_branches)
    with_fields = {s.collection for s in specs if s.kind == "field"}
    collections: dict[str, dict[str, np.dtype]] = {}
    for s in specs:
        if s.kind == "counter" and s.collection in with_fields:
            collections[s.collection] = {}
            out.append((s.collection, collections[s.collection]))
        elif s.kind == "field":
            collections[s.collection][s.field] = np.dtype(s.dtype)
        else:
            out.append((s.name, np.dtype(s.dtype)))
    return out


def branch_names(*, is_mc: bool, extra_branches: int = 0, nanoaod_version: int = 12) -> list[str]:
    """The ``Events`` branch names, in order, that :func:`generate_file` writes."""
    names: list[str] = []
    for name, kind in _schema(is_mc, extra_branches, check_version(nanoaod_version)):
        if isinstance(kind, dict):
            names += [f"n{name}", *(f"{name}_{field}" for field in kind)]
        else:
            names.append(name)
    return names


def compression_of(compression: str, level: int | None) -> uproot.compression.Compression:
    key = str(compression).lower()
    if key not in _ALGORITHMS:
        raise ValueError(
            f"compression={compression!r} is not supported; valid values: "
            + ", ".join(repr(k) for k in _ALGORITHMS)
        )
    if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
        raise ValueError(f"level must be an int or None, got {level!r}")
    return _ALGORITHMS[key](COMPRESSION_LEVELS[key] if level is None else level)


@dataclass
class _Batch:
    """Columns of a run of events: flat scalars and ``(counts, fields)`` collections."""

    size: int
    scalars: dict[str, np.ndarray]
    collections: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]

    def slice(self, start: int, stop: int) -> _Batch:
        cols = {}
        for name, (counts, fields) in self.collections.items():
            offsets = np.zeros(len(counts) + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
            lo, hi = offsets[start], offsets[stop]
            cols[name] = (counts[start:stop], {k: v[lo:hi] for k, v in fields.items()})
        return _Batch(stop - start, {k: v[start:stop] for k, v in self.scalars.items()}, cols)

    @staticmethod
    def concat(batches: list[_Batch]) -> _Batch:
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        scalars = {k: np.concatenate([b.scalars[k] for b in batches]) for k in first.scalars}
        cols = {
            name: (
                np.concatenate([b.collections[name][0] for b in batches]),
                {k: np.concatenate([b.collections[name][1][k] for b in batches]) for k in fields},
            )
            for name, (_, fields) in first.collections.items()
        }
        return _Batch(sum(b.size for b in batches), scalars, cols)

    def to_uproot(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.scalars)
        for name, (counts, fields) in self.collections.items():
            offsets = np.zeros(len(counts) + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
            record = ak.contents.RecordArray(
                [ak.contents.NumpyArray(v) for v in fields.values()],
                list(fields),
                length=int(offsets[-1]),
            )
            layout = ak.contents.ListOffsetArray(ak.index.Index64(offsets), record)
            out[name] = ak.Array(layout)
        return out


@dataclass
class _Layout:
    """Run/lumi structure of one file: runs own contiguous event ranges."""

    runs: np.ndarray  # uint32 run numbers, increasing
    starts: np.ndarray  # first in-file event index of each run
    first_lumi: np.ndarray  # lumi number of each run's first event
    events_per_lumi: int
    global_lumi: bool  # MC: lumi from the global event number, not from the run start


def _layout(rng: np.random.Generator, events: int, is_mc: bool, run: int | None,
            first_event: int) -> _Layout:
    if is_mc:
        first_lumi = np.array([1], dtype=np.int64)
        return _Layout(np.array([_MC_RUN if run is None else run], dtype=np.uint32),
                       np.array([0]), first_lumi, _MC_EVENTS_PER_LUMI, True)
    k = max(1, min(_MAX_RUNS_PER_DATA_FILE, 1 + events // 1000))
    gaps = np.concatenate([[0], rng.integers(1, 4, k - 1)])
    start_run = _DATA_FIRST_RUN if run is None else run
    runs = (start_run + np.cumsum(gaps)).astype(np.uint32)
    starts = (np.arange(k) * events) // k
    return _Layout(runs, starts, 1 + rng.integers(0, 40, k), int(rng.integers(200, 501)), False)


def _ids(layout: _Layout, first_event: int, start: int, n: int) -> dict[str, np.ndarray]:
    i = np.arange(start, start + n, dtype=np.int64)
    run_index = np.searchsorted(layout.starts, i, side="right") - 1
    if layout.global_lumi:
        lumi = layout.first_lumi[run_index] + (first_event + i) // layout.events_per_lumi
    else:
        lumi = layout.first_lumi[run_index] + (i - layout.starts[run_index]) // layout.events_per_lumi
    return {
        "run": layout.runs[run_index],
        "luminosityBlock": lumi.astype(np.uint32),
        "event": (first_event + 1 + i).astype(np.uint64),
        "_run_index": run_index,
    }


def _chunks(seed: int, index: int, is_mc: bool, events: int, first_event: int,
            layout: _Layout, extra_branches: int, nanoaod_version: int) -> Iterator[_Batch]:
    specs = extra_branch_specs(extra_branches)
    for c, start in enumerate(range(0, events, _GEN_CHUNK)):
        n = min(_GEN_CHUNK, events - start)
        rng = np.random.default_rng(np.random.SeedSequence([seed, index, int(is_mc), 1, c]))
        mu = _physics.muons(rng, n, is_mc)
        ele = _physics.electrons(rng, n)
        jet = _physics.jets(rng, n, is_mc)
        if nanoaod_version >= 15:  # its own stream: every other branch equals the v12 file's
            jet = run3_jets(np.random.default_rng(np.random.SeedSequence([seed, index, int(is_mc), 3, c])), jet)
        scalars = _ids(layout, first_event, start, n)
        scalars.update(_physics.event_level(rng, n, is_mc, mu, ele))
        collections = {"Muon": mu, "Electron": ele, "Jet": jet}
        if specs:
            extra_rng = np.random.default_rng(
                np.random.SeedSequence([seed, index, int(is_mc), 2, c]))
            extra_scalars, extra_cols = generate_extras(extra_rng, specs, n)
            scalars.update(extra_scalars)
            collections.update(extra_cols)
        yield _Batch(n, scalars, collections)


def _check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _write(path: Path, *, events: int, seed: int, index: int, is_mc: bool, compression: str,
           level: int | None, basket_events: int | None, extra_branches: int,
           first_event: int, run: int | None, nanoaod_version: int) -> Path:
    _check_count("events", events, 0)
    _check_count("seed", seed, 0)
    _check_count("first_event", first_event, 0)
    _check_count("extra_branches", extra_branches, 0)
    check_version(nanoaod_version)
    if run is not None:
        _check_count("run", run, 1)
    algorithm = compression_of(compression, level)
    if basket_events is None:
        basket_events = max(1000, min(100_000, math.ceil(events / 8)))
    _check_count("basket_events", basket_events, 1)

    schema = _schema(is_mc, extra_branches, nanoaod_version)
    types: dict[str, object] = {}
    for name, kind in schema:
        if isinstance(kind, dict):
            record = ak.types.RecordType([ak.types.NumpyType(str(d)) for d in kind.values()],
                                         list(kind))
            types[name] = ak.types.ListType(record)
        else:
            types[name] = kind

    layout = _layout(np.random.default_rng(np.random.SeedSequence([seed, index, int(is_mc), 0])),
                     events, is_mc, run, first_event)
    n_runs = len(layout.runs)
    sumw = np.zeros(n_runs)
    sumw2 = np.zeros(n_runs)
    count = np.zeros(n_runs, dtype=np.int64)
    lumis: set[tuple[int, int]] = set()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with uproot.recreate(partial, compression=algorithm) as f:
            tree = f.mktree("Events", types, title="Events")
            pending: list[_Batch] = []
            buffered = 0

            def flush(final: bool) -> None:
                nonlocal pending, buffered
                if not pending:
                    return
                batch = _Batch.concat(pending)
                start = 0
                while batch.size - start >= basket_events or (final and start < batch.size):
                    stop = min(start + basket_events, batch.size)
                    tree.extend(batch.slice(start, stop).to_uproot())
                    start = stop
                pending = [batch.slice(start, batch.size)] if start < batch.size else []
                buffered = batch.size - start

            for batch in _chunks(seed, index, is_mc, events, first_event, layout, extra_branches, nanoaod_version):
                run_index = batch.scalars.pop("_run_index")
                count += np.bincount(run_index, minlength=n_runs)
                if is_mc:
                    w = batch.scalars["genWeight"].astype(np.float64)
                    sumw += np.bincount(run_index, weights=w, minlength=n_runs)
                    sumw2 += np.bincount(run_index, weights=w * w, minlength=n_runs)
                # (run, lumi) never decreases along a file: distinct pairs start where it changes
                lumi = batch.scalars["luminosityBlock"]
                change = np.flatnonzero(np.diff(run_index) | np.diff(lumi.astype(np.int64))) + 1
                starts = np.concatenate([[0], change])
                lumis.update(zip(layout.runs[run_index[starts]].tolist(),
                                 lumi[starts].tolist(), strict=True))
                pending.append(batch)
                buffered += batch.size
                if buffered >= basket_events:
                    flush(final=False)
            flush(final=True)

            runs: dict[str, np.ndarray] = {"run": layout.runs}
            if is_mc:
                runs.update(genEventCount=count, genEventSumw=sumw, genEventSumw2=sumw2)
            f.mktree("Runs", {k: v.dtype for k, v in runs.items()}, title="Runs").extend(runs)
            pairs_sorted = sorted(lumis)
            lumi_tree = f.mktree("LuminosityBlocks",
                                 {"run": np.uint32, "luminosityBlock": np.uint32},
                                 title="LuminosityBlocks")
            if pairs_sorted:
                arr = np.array(pairs_sorted, dtype=np.uint32).reshape(-1, 2)
                lumi_tree.extend({"run": arr[:, 0], "luminosityBlock": arr[:, 1]})
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def generate_file(
    path: str | os.PathLike[str], *, events: int, seed: int, is_mc: bool = True,
    compression: str = "zstd", level: int | None = None, basket_events: int | None = None,
    extra_branches: int = 0, first_event: int = 0, run: int | None = None, nanoaod_version: int = 12,
) -> Path:
    """Write one synthetic NanoAOD file and return its path.

    ``events`` events, numbered ``first_event + 1 ... first_event + events``; contents
    depend only on ``seed``, ``is_mc``, ``events``, ``first_event``, ``run`` and
    ``extra_branches`` (identical to file 0 of :func:`generate_sample` with that seed).
    ``compression`` is one of zlib, lzma, lz4, zstd (default levels 4, 9, 4, 5);
    baskets hold ``basket_events`` entries (default ``max(1000, min(100000, events/8))``).
    ``run``: MC run number (default 1) or the first data run (default 315252).
    ``nanoaod_version``: 12 writes ``Jet_jetId``; 15 writes, as v15 does, the jets' energy
    fractions and multiplicities instead (every other branch is the same as 12's).
    """
    return _write(Path(path), events=events, seed=seed, index=0, is_mc=is_mc,
                  compression=compression, level=level, basket_events=basket_events,
                  extra_branches=extra_branches, first_event=first_event, run=run,
                  nanoaod_version=nanoaod_version)


def generate_sample(
    outdir: str | os.PathLike[str], *, name: str, events: int, files: int, seed: int,
    is_mc: bool, compression: str = "zstd", level: int | None = None,
    basket_events: int | None = None, extra_branches: int = 0, first_event: int = 0,
    run: int | None = None, nanoaod_version: int = 12,
) -> list[Path]:
    """Write ``outdir/name/name_{i}.root`` for ``i < files`` and return their paths.

    ``events`` are split as evenly as possible (earlier files get the remainder); file
    ``i`` is seeded from ``(seed, i)`` and continues the event numbering of file ``i-1``.
    Data files get disjoint run ranges (``run + 10*i``). Stale ``name_<k>.root`` files
    left from an earlier call with more files are removed so that globs stay correct.
    ``nanoaod_version`` as for :func:`generate_file`.
    """
    _check_count("files", files, 1)
    _check_count("events", events, 0)
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"name must be a plain non-empty file name, got {name!r}")
    folder = Path(outdir) / name
    per_file = [events // files + (1 if i < events % files else 0) for i in range(files)]
    paths = []
    offset = first_event
    for i, n in enumerate(per_file):
        if is_mc:
            file_run = run
        else:
            file_run = (_DATA_FIRST_RUN if run is None else run) + _DATA_RUN_STRIDE * i
        paths.append(_write(folder / f"{name}_{i}.root", events=n, seed=seed, index=i,
                            is_mc=is_mc, compression=compression, level=level,
                            basket_events=basket_events, extra_branches=extra_branches,
                            first_event=offset, run=file_run, nanoaod_version=nanoaod_version))
        offset += n
    pattern = re.compile(rf"{re.escape(name)}_(\d+)\.root")
    for stale in folder.iterdir():
        m = pattern.fullmatch(stale.name)
        if m and int(m.group(1)) >= files:
            stale.unlink()
    return paths

"""Synthetic samples of the IRIS-HEP Analysis Grand Challenge (AGC) ttbar analysis.

The AGC measures the ttbar cross-section in CMS 2015 Open Data NanoAOD (single lepton, >= 4
jets, >= 1 b tag). :func:`generate_agc_file` writes a NanoAOD-like ROOT file with the branch
names and ROOT types of the AGC's files (``Jet_pt``... ``Jet_btagCSVV2`` with ``nJet``,
``Electron_cutBased``, ``Muon_tightId``, ``genWeight``, ``event``...), an ``Events`` tree and
a ``Runs`` tree with ``genEventSumw`` as CMSSW writes it, for one of :data:`AGC_SAMPLES`:

* ``ttbar``: top pairs decayed to ``b W`` and W bosons to quarks or leptons (one lepton and
  >= 4 jets with two b jets when one W decays to e or mu), plus radiated jets;
* ``ttbar_scaledown`` / ``ttbar_scaleup``: less / more radiation (a softer / harder extra-jet
  spectrum); ``ttbar_ME_var``: another matrix-element generator (a softer top-pT spectrum,
  25 % negative weights); ``ttbar_PS_var``: another parton shower (a lower jet response, a
  worse resolution, softer b tags);
* ``single_top_s_chan`` (t + b, leptonic W), ``single_top_t_chan`` (t + a forward jet + a soft
  b), ``single_top_tW`` (t + W): fewer jets and b jets;
* ``wjets``: W -> l nu with a falling jet multiplicity, mostly light jets;
* ``data``: pseudo-data, no ``genWeight``. Each block of 65,536 events holds the nominal
  processes in the proportions of their expected yields ``xsec`` (ttbar's times
  :data:`SIGNAL_STRENGTH`, 1), rounded, in random order. Its luminosity is therefore
  ``events / sum(xsec)`` (:func:`data_luminosity`), which :func:`generate_agc_set` writes as
  every dataset's ``lumi`` so that the simulation normalised to ``xsec x lumi`` predicts the
  pseudo-data and a fit recovers the signal strength 1.

Besides events with one tight lepton and four jets, every sample has events with no or two
leptons, non-prompt leptons (failing identification or isolation) and fewer jets, so the
selection has work to do. A file is a pure function of ``(seed, sample, file_index, events)``:
events are drawn in chunks of 65,536, each from its own ``numpy.random.SeedSequence``, fully
vectorised; the compression changes no value.
"""

from __future__ import annotations

import math
import os
import re
import zlib
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from highrate.testing import _agc_physics as physics
from highrate.testing.nanoaod import _Batch, compression_of

__all__ = [
    "AGC_LUMI",
    "AGC_SAMPLES",
    "SIGNAL_STRENGTH",
    "data_luminosity",
    "generate_agc_file",
    "generate_agc_set",
]

#: Integrated luminosity of the AGC's CMS 2015 data, pb^-1.
AGC_LUMI = 3378.0
#: The ttbar signal strength injected into the pseudo-data ``data``.
SIGNAL_STRENGTH = 1.0

_TTBAR_XSEC = 396.87 + 332.97  # nonallhad + allhad; the AGC keeps it for every ttbar variation


def _mc(process: str, xsec: float, systematic: str | None = None) -> dict:
    meta: dict = {"is_mc": True, "process": process}
    if systematic is not None:
        meta["systematic"] = systematic
    meta.update(xsec=round(xsec, 6), lumi=AGC_LUMI)
    return meta


#: The AGC's datasets and their metadata (cross-sections in pb as the AGC gives them). Nominal
#: MC datasets have ``process`` = their own name; the alternative ttbar samples have
#: ``process: ttbar`` and ``systematic``: the variation whose template they are.
AGC_SAMPLES: dict[str, dict] = {
    "ttbar": _mc("ttbar", _TTBAR_XSEC),
    "ttbar_scaledown": _mc("ttbar", _TTBAR_XSEC, "scaledown"),
    "ttbar_scaleup": _mc("ttbar", _TTBAR_XSEC, "scaleup"),
    "ttbar_ME_var": _mc("ttbar", _TTBAR_XSEC, "ME_var"),
    "ttbar_PS_var": _mc("ttbar", _TTBAR_XSEC, "PS_var"),
    "single_top_s_chan": _mc("single_top_s_chan", 2.0268 + 1.2676),
    "single_top_t_chan": _mc("single_top_t_chan", (36.993 + 22.175) / 0.252),  # lepton filter -> inclusive
    "single_top_tW": _mc("single_top_tW", 37.936 + 37.906),
    "wjets": _mc("wjets", 61457 * 0.252),  # e/mu + nu final states
    "data": {"is_mc": False, "lumi": AGC_LUMI},
}

#: How each sample's events are drawn (see ``_agc_physics.Model``).
_MODELS: dict[str, physics.Model] = {
    "ttbar": physics.Model("ttbar", top_pt=95.0, extra_jets=1.0),
    "ttbar_scaledown": physics.Model("ttbar", top_pt=95.0, extra_jets=0.75, extra_jet_slope=2.8),
    "ttbar_scaleup": physics.Model("ttbar", top_pt=95.0, extra_jets=1.3, extra_jet_slope=2.45),
    "ttbar_ME_var": physics.Model("ttbar", top_pt=88.0, extra_jets=1.1, gen_weight=0.8,
                                  negative_fraction=0.25),
    "ttbar_PS_var": physics.Model("ttbar", top_pt=95.0, extra_jets=0.9, response=0.985,
                                  resolution=0.13, b_tag=1.35),
    "single_top_s_chan": physics.Model("single_top_s_chan", top_pt=55.0, extra_jets=0.8,
                                       gen_weight=3.1),
    "single_top_t_chan": physics.Model("single_top_t_chan", top_pt=55.0, extra_jets=0.8,
                                       gen_weight=1.7, negative_fraction=0.02),
    "single_top_tW": physics.Model("single_top_tW", top_pt=70.0, extra_jets=0.9, gen_weight=2.5,
                                   negative_fraction=0.01),
    "wjets": physics.Model("wjets", top_pt=30.0, extra_jets=0.45, extra_jet_slope=2.5,
                           gen_weight=12.0, negative_fraction=0.15),
}
#: The processes pseudo-data mixes (their nominal models), in this order.
_DATA_PROCESSES = ("ttbar", "single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets")

_GEN_CHUNK = 65_536
_MAX_EVENTS_PER_FILE = 1_000_000_000  # event numbers of file i start at i * 10**9 + 1
_MAX_FILES = 4000  # simulation's luminosity blocks (uint32) of file i start at i * 10**6 + 1
_DATA_FIRST_RUN = 256630  # first run of the 2015 (Run2015D) data
_EVENTS_PER_LUMI = 1000

_F32, _I32, _BOOL = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.bool_)
_COLLECTIONS = {
    "Jet": {"pt": _F32, "eta": _F32, "phi": _F32, "mass": _F32, "btagCSVV2": _F32},
    "Electron": {"pt": _F32, "eta": _F32, "phi": _F32, "mass": _F32, "cutBased": _I32, "sip3d": _F32},
    "Muon": {"pt": _F32, "eta": _F32, "phi": _F32, "mass": _F32, "tightId": _BOOL, "sip3d": _F32,
             "pfRelIso04_all": _F32},
}


def _mixture(n: int) -> np.ndarray:
    """How many of ``n`` pseudo-data events each process of ``_DATA_PROCESSES`` has (largest remainder)."""
    rates = np.array([AGC_SAMPLES[p]["xsec"] * (SIGNAL_STRENGTH if p == "ttbar" else 1.0)
                      for p in _DATA_PROCESSES])
    exact = n * rates / rates.sum()
    counts = np.floor(exact).astype(np.int64)
    rest = n - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:rest]] += 1
    return counts


def data_luminosity(events: int) -> float:
    """The luminosity (pb^-1) of ``events`` pseudo-data events: ``events / sum(xsec)``, with
    ttbar's cross-section times :data:`SIGNAL_STRENGTH`."""
    rates = sum(AGC_SAMPLES[p]["xsec"] * (SIGNAL_STRENGTH if p == "ttbar" else 1.0) for p in _DATA_PROCESSES)
    return events / rates


def _sample_code(sample: str) -> int:
    return zlib.crc32(sample.encode())


def _chunk(seed: int, sample: str, file_index: int, c: int, n: int) -> _Batch:
    key = [seed, _sample_code(sample), file_index, c]
    if sample != "data":
        scalars, collections = physics.events(np.random.default_rng(np.random.SeedSequence(key)), n,
                                              _MODELS[sample], is_mc=True)
        return _Batch(n, scalars, collections)
    parts = []
    for p, (process, count) in enumerate(zip(_DATA_PROCESSES, _mixture(n), strict=True)):
        rng = np.random.default_rng(np.random.SeedSequence([*key, p + 1]))
        scalars, collections = physics.events(rng, int(count), _MODELS[process], is_mc=False)
        parts.append(_Batch(int(count), scalars, collections))
    mixed = _Batch.concat(parts)
    order = np.random.default_rng(np.random.SeedSequence([*key, 0])).permutation(n)
    return _Batch(n, {}, {name: physics.take(col, order) for name, col in mixed.collections.items()})


def _ids(sample: str, file_index: int, start: int, n: int) -> dict[str, np.ndarray]:
    i = np.arange(start, start + n, dtype=np.int64)
    is_data = sample == "data"
    run = np.full(n, _DATA_FIRST_RUN + file_index if is_data else 1, dtype=np.uint32)
    lumi = 1 + i // _EVENTS_PER_LUMI + (0 if is_data else file_index * (_MAX_EVENTS_PER_FILE // _EVENTS_PER_LUMI))
    return {"run": run, "luminosityBlock": lumi.astype(np.uint32),
            "event": (file_index * _MAX_EVENTS_PER_FILE + 1 + i).astype(np.uint64)}


def _check(name: str, value: object, minimum: int, maximum: int | None = None) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum
            or (maximum is not None and value > maximum)):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an int {bound}, got {value!r}")


def _check_sample(sample: str) -> None:
    if sample not in AGC_SAMPLES:
        raise ValueError(f"unknown AGC sample {sample!r}; known: {', '.join(AGC_SAMPLES)}")


def generate_agc_file(path: str | os.PathLike[str], sample: str, *, events: int, seed: int,
                      file_index: int = 0, compression: str = "zstd") -> Path:
    """Write ``events`` events of the AGC ``sample`` (a key of :data:`AGC_SAMPLES`) to ``path``.

    Contents depend only on ``(seed, sample, file_index, events)``. Events are numbered
    ``file_index * 10**9 + 1, ...``; simulation has run 1, pseudo-data run ``256630 +
    file_index``. ``compression``: zlib, lzma, lz4 or zstd.
    """
    _check_sample(sample)
    _check("events", events, 0, _MAX_EVENTS_PER_FILE - 1)
    _check("seed", seed, 0)
    _check("file_index", file_index, 0, _MAX_FILES - 1)
    algorithm = compression_of(compression, None)
    is_mc = bool(AGC_SAMPLES[sample]["is_mc"])
    basket = max(1000, min(100_000, math.ceil(events / 8)))
    types: dict[str, object] = {"run": np.uint32, "luminosityBlock": np.uint32, "event": np.uint64}
    if is_mc:
        types["genWeight"] = _F32
    for name, fields in _COLLECTIONS.items():
        types[name] = dict(fields)
    sumw = sumw2 = 0.0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with uproot.recreate(partial, compression=algorithm) as f:
            tree = f.mktree("Events", _tree_types(types), title="Events")
            for c, start in enumerate(range(0, events, _GEN_CHUNK)):
                n = min(_GEN_CHUNK, events - start)
                batch = _chunk(seed, sample, file_index, c, n)
                batch.scalars = {**_ids(sample, file_index, start, n), **batch.scalars}
                if is_mc:
                    w = batch.scalars["genWeight"].astype(np.float64)
                    sumw += float(w.sum())
                    sumw2 += float((w * w).sum())
                for lo in range(0, n, basket):
                    tree.extend(batch.slice(lo, min(lo + basket, n)).to_uproot())
            runs: dict[str, np.ndarray] = {"run": np.array([_ids(sample, file_index, 0, 1)["run"][0]], np.uint32)}
            if is_mc:
                runs.update(genEventCount=np.array([events], np.int64), genEventSumw=np.array([sumw]),
                            genEventSumw2=np.array([sumw2]))
            f.mktree("Runs", {k: v.dtype for k, v in runs.items()}, title="Runs").extend(runs)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _tree_types(types: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, kind in types.items():
        if isinstance(kind, dict):
            record = ak.types.RecordType([ak.types.NumpyType(str(d)) for d in kind.values()], list(kind))
            out[name] = ak.types.ListType(record)
        else:
            out[name] = kind
    return out


def _yaml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def generate_agc_set(folder: str | os.PathLike[str], *, events: int, files: int = 1,
                     compression: str = "zstd", seed: int = 2015,
                     samples: list[str] | None = None) -> Path:
    """Write ``files`` files of ``events`` events for each AGC sample (default: all of
    :data:`AGC_SAMPLES`) as ``folder/<sample>/<sample>_<i>.root``, and ``folder/datasets.yaml``
    describing them with :data:`AGC_SAMPLES`' metadata; return the yaml's path.

    Every dataset's ``lumi`` is that of the pseudo-data's ``events * files`` events
    (:func:`data_luminosity`), so that the simulation predicts the pseudo-data, also when
    ``samples`` leaves ``data`` out.
    """
    _check("events", events, 1, _MAX_EVENTS_PER_FILE - 1)
    _check("files", files, 1, _MAX_FILES)
    compression_of(compression, None)  # fail before writing anything
    names = list(AGC_SAMPLES) if samples is None else list(samples)
    for name in names:
        _check_sample(name)
    folder = Path(folder)
    lumi = data_luminosity(events * files)
    lines = [
        "# highrate datasets file: synthetic samples of the AGC ttbar analysis (highrate.testing.agc).",
        f"# lumi (pb^-1) is that of the pseudo-data's {events * files} events, so that the simulation",
        "# normalised to xsec x lumi predicts it; the real AGC data has lumi 3378.",
        "datasets:",
    ]
    for name in names:
        for i in range(files):
            generate_agc_file(folder / name / f"{name}_{i}.root", name, events=events, seed=seed,
                              file_index=i, compression=compression)
        pattern = re.compile(rf"{re.escape(name)}_(\d+)\.root")
        for stale in (folder / name).iterdir():
            m = pattern.fullmatch(stale.name)
            if m and int(m.group(1)) >= files:
                stale.unlink()
        meta = {**AGC_SAMPLES[name], "lumi": lumi}
        text = ", ".join(f"{k}: {_yaml_value(v)}" for k, v in meta.items())
        lines += [f"  {name}:", f"    sample: {name}", f"    files: [{name}/*.root]", "    tree: Events",
                  f"    metadata: {{{text}}}"]
    path = folder / "datasets.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

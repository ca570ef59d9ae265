"""Synthetic correction files for tests and the demo: correctionlib JSON and a golden JSON.

:func:`write_corrections` writes, into one folder,

- ``pileup.json``: ``pileup(NumTrueInteractions: real, weights: string) -> weight``, 100 bins
  of one over 0..100, the data/MC ratio of the generator's ``Pileup_nTrueInt`` profiles,
  unit mean over the MC profile (``nominal``, ``up``, ``down``: the data profile's mean moved
  by +-2%), flow ``clamp``;
- ``muon_sf.json``: ``muon_id_sf``, ``muon_iso_sf`` and ``muon_id_sf_clamped``, each
  ``(eta: real = |eta|, pt: real, scale_factors: string) -> sf`` in 4 |eta| x 8 pt bins
  (|eta| 0..2.4, pt 15..200 GeV), values 0.95-1.0 with ~1% ``systup``/``systdown``: the
  data/MC efficiency ratio the generator's data follows; flow ``error`` (``clamp`` for
  ``muon_id_sf_clamped``);
- ``jes.json``: ``jes_uncertainty(eta: real, pt: real) -> relative uncertainty``, 1-4% (larger
  at low pt and high |eta|), flow ``clamp``;
- ``golden.json``: a CMS golden JSON for the data files, dropping one whole run and a lumi
  range in every other run (see :func:`golden_lumis`).

The correctionlib files are checked against ``correctionlib.schemav2`` when correctionlib is
installed (the ``corrections`` extra); the JSON is the same without it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from highrate.testing._physics import (
    DATA_PILEUP,
    MC_PILEUP,
    MUON_ETA_EDGES,
    MUON_PT_EDGES,
    muon_sf_table,
)

__all__ = [
    "JES_ETA_EDGES",
    "JES_PT_EDGES",
    "MUON_ETA_EDGES",
    "MUON_PT_EDGES",
    "PILEUP_EDGES",
    "golden_lumis",
    "write_corrections",
]

PILEUP_EDGES: tuple[float, ...] = tuple(float(x) for x in range(101))
JES_ETA_EDGES: tuple[float, ...] = (-5.0, -3.0, -2.5, -1.3, 0.0, 1.3, 2.5, 3.0, 5.0)
JES_PT_EDGES: tuple[float, ...] = (10.0, 20.0, 30.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 6500.0)

_PU_SHIFT = 0.02  # up/down: the data profile's mean moves by +-2%


def _r(x: float) -> float:
    return round(float(x), 6)


def _gamma_pdf(x: np.ndarray, shape: float, scale: float) -> np.ndarray:
    x = np.maximum(x, 1e-9)
    log = (shape - 1) * np.log(x) - x / scale - math.lgamma(shape) - shape * math.log(scale)
    return np.exp(log)


def _pileup_ratio(shift: float) -> list[float]:
    centres = 0.5 * (np.asarray(PILEUP_EDGES[:-1]) + np.asarray(PILEUP_EDGES[1:]))
    mc = _gamma_pdf(centres, *MC_PILEUP)
    mc /= mc.sum()
    data = _gamma_pdf(centres, DATA_PILEUP[0], DATA_PILEUP[1] * (1.0 + shift))
    data /= data.sum()
    ratio = np.clip(data / np.maximum(mc, 1e-12), 0.0, 5.0)
    ratio /= np.sum(ratio * mc)  # unit mean weight on the MC profile
    return [_r(v) for v in ratio]


def _category(input_name: str, items: dict[str, Any]) -> dict[str, Any]:
    return {"nodetype": "category", "input": input_name,
            "content": [{"key": k, "value": v} for k, v in items.items()]}


def _correction(name: str, description: str, inputs: Sequence[tuple[str, str, str]],
                output: tuple[str, str], data: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name, "description": description, "version": 1,
        "inputs": [{"name": n, "type": t, "description": d} for n, t, d in inputs],
        "output": {"name": output[0], "type": "real", "description": output[1]},
        "data": data,
    }


def _pileup() -> dict[str, Any]:
    variations = {"nominal": 0.0, "up": _PU_SHIFT, "down": -_PU_SHIFT}
    data = _category("weights", {
        key: {"nodetype": "binning", "input": "NumTrueInteractions", "edges": list(PILEUP_EDGES),
              "content": _pileup_ratio(shift), "flow": "clamp"}
        for key, shift in variations.items()
    })
    return _correction(
        "pileup", "Pileup reweighting: data/MC ratio of the true number of interactions",
        [("NumTrueInteractions", "real", "Pileup_nTrueInt"),
         ("weights", "string", "nominal, up or down")],
        ("weight", "event weight"), data)


def _muon(name: str, kind: str, flow: str) -> dict[str, Any]:
    sf, unc = muon_sf_table(kind)  # the efficiency ratio the generator's data follows
    variations = {"nominal": sf, "systup": sf + unc, "systdown": sf - unc}
    data = _category("scale_factors", {
        key: {"nodetype": "multibinning", "inputs": ["eta", "pt"],
              "edges": [list(MUON_ETA_EDGES), list(MUON_PT_EDGES)],
              "content": [_r(v) for v in values.ravel()], "flow": flow}
        for key, values in variations.items()
    })
    what = "identification (tight ID)" if kind == "id" else "isolation (pfRelIso04 < 0.15)"
    return _correction(
        name, f"Muon {what} data/MC scale factor; flow {flow!r} outside |eta| < 2.4, 15 < pt < 200",
        [("eta", "real", "absolute pseudorapidity |eta|"), ("pt", "real", "transverse momentum [GeV]"),
         ("scale_factors", "string", "nominal, systup or systdown")],
        ("sf", "scale factor"), data)


def _jes() -> dict[str, Any]:
    eta_edges, pt_edges = np.asarray(JES_ETA_EDGES), np.asarray(JES_PT_EDGES)
    abs_eta = np.abs(0.5 * (eta_edges[:-1] + eta_edges[1:]))[:, None]
    log_pt = np.log(np.sqrt(pt_edges[:-1] * pt_edges[1:]))[None, :]
    unc = 0.01 + 0.004 * abs_eta + 0.012 * np.clip((np.log(200.0) - log_pt) / np.log(20.0), 0, 1)
    unc = np.clip(unc, 0.01, 0.04)
    data = {"nodetype": "multibinning", "inputs": ["eta", "pt"],
            "edges": [list(JES_ETA_EDGES), list(JES_PT_EDGES)],
            "content": [_r(v) for v in unc.ravel()], "flow": "clamp"}
    return _correction(
        "jes_uncertainty", "Total jet energy scale uncertainty (relative), symmetric",
        [("eta", "real", "jet pseudorapidity"), ("pt", "real", "jet transverse momentum [GeV]")],
        ("uncertainty", "relative uncertainty"), data)


def _correction_set(description: str, corrections: list[dict[str, Any]]) -> str:
    document = {"schema_version": 2, "description": description, "corrections": corrections}
    try:
        from correctionlib import schemav2
    except ImportError:  # the corrections extra is not installed: same JSON, unchecked
        return json.dumps(document, indent=1)
    validate = getattr(schemav2.CorrectionSet, "model_validate", None) or schemav2.CorrectionSet.parse_obj
    model = validate(document)
    dump = getattr(model, "model_dump_json", None)
    return dump(exclude_unset=True, indent=1) if dump else model.json(exclude_unset=True, indent=1)


def _read_lumis(data_files: Iterable[str | os.PathLike[str]]) -> set[tuple[int, int]]:
    import uproot

    pairs: set[tuple[int, int]] = set()
    for path in data_files:
        with uproot.open(path) as f:
            arrays = f["LuminosityBlocks"].arrays(["run", "luminosityBlock"], library="np")
        pairs.update(zip(arrays["run"].tolist(), arrays["luminosityBlock"].tolist(), strict=True))
    return pairs


def golden_lumis(pairs: Iterable[tuple[int, int]]) -> dict[str, list[list[int]]]:
    """A golden JSON for these (run, lumi) pairs: keep all but a few.

    The second run (in run order) is left out entirely. In every other run with lumis
    ``lo..hi`` (n = hi - lo + 1 >= 3), the lumis ``lo + n//3 .. lo + n//3 + max(1, n//8) - 1``
    are masked; the allowed ranges are ``[1, that start - 1]`` and ``[that end + 1, hi]``.
    """
    by_run: dict[int, list[int]] = {}
    for run, lumi in pairs:
        by_run.setdefault(int(run), []).append(int(lumi))
    runs = sorted(by_run)
    golden: dict[str, list[list[int]]] = {}
    for i, run in enumerate(runs):
        if i == 1:
            continue  # one whole run is bad
        lo, hi = min(by_run[run]), max(by_run[run])
        n = hi - lo + 1
        if n < 3:
            golden[str(run)] = [[1, hi]]
            continue
        start = lo + n // 3
        stop = start + max(1, n // 8) - 1
        golden[str(run)] = [[1, start - 1], [stop + 1, hi]]
    return golden


def _default_pairs() -> set[tuple[int, int]]:
    """Without data files: lumis 1..100 of the first run of each of 10 data files."""
    return {(315252 + 10 * i, lumi) for i in range(10) for lumi in range(1, 101)}


def write_corrections(outdir: str | os.PathLike[str], *,
                      data_files: Iterable[str | os.PathLike[str]] | None = None) -> dict[str, Path]:
    """Write ``pileup.json``, ``muon_sf.json``, ``jes.json`` and ``golden.json`` into ``outdir``.

    The golden JSON is made by :func:`golden_lumis` from the ``LuminosityBlocks`` trees of
    ``data_files`` (the generator's data files); without them, from lumis 1..100 of runs
    ``315252 + 10*i``, ``i < 10``. Returns ``{"pileup", "muon_sf", "jes", "golden"}`` -> path.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    texts = {
        "pileup": _correction_set("Synthetic pileup weights for highrate", [_pileup()]),
        "muon_sf": _correction_set("Synthetic muon scale factors for highrate", [
            _muon("muon_id_sf", "id", "error"),
            _muon("muon_iso_sf", "iso", "error"),
            _muon("muon_id_sf_clamped", "id", "clamp"),
        ]),
        "jes": _correction_set("Synthetic jet energy scale uncertainty for highrate", [_jes()]),
    }
    pairs = _default_pairs() if data_files is None else _read_lumis(data_files)
    golden = golden_lumis(pairs)
    texts["golden"] = "{\n" + ",\n".join(f"  {json.dumps(run)}: {json.dumps(ranges)}"
                                           for run, ranges in golden.items()) + "\n}\n"
    files = {"pileup": "pileup.json", "muon_sf": "muon_sf.json", "jes": "jes.json", "golden": "golden.json"}
    out: dict[str, Path] = {}
    for key, name in files.items():
        path = outdir / name
        partial = path.with_name(f".{name}.{os.getpid()}.part")
        partial.write_text(texts[key], encoding="utf-8")
        os.replace(partial, path)
        out[key] = path
    return out

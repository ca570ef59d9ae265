"""Histograms to ``histograms.root`` (uproot) and ``histograms.pkl`` (``hist`` objects).

The pickle is keyed like :attr:`highrate.Result.histograms`: ``(histogram, dataset, category,
variation)`` tuples, ``"nominal"`` for the nominal. The ROOT file holds the same histograms at
``{histogram}/{dataset}/{category}/{variation}``, so that cabinetry- and Combine-style tools find
them by path, with axis titles in ROOT's TLatex (``#it{p}_{T}``) where the analysis wrote
matplotlib mathtext (``$p_{T}$``).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boost_histogram as bh
import hist
import numpy as np
import uproot
from uproot.writing.identify import to_TAxis, to_TH1x

from highrate.engine.result import HistKey
from highrate.errors import ConfigError
from highrate.outputs.latex import to_tlatex


def hist_path(key: HistKey) -> str:
    """``"histogram/dataset/category/variation"``: where ``key`` lives in ``histograms.root``."""
    return "/".join(key)


def hist_key(path: str, *, where: str = "histograms") -> HistKey:
    """The key of a ``histogram/dataset/category/variation`` path; :class:`ConfigError` otherwise."""
    parts = path.split(";")[0].split("/")
    if len(parts) != 4 or not all(parts):
        raise ConfigError(f"{where}: {path!r} is not 'histogram/dataset/category/variation'.")
    return parts[0], parts[1], parts[2], parts[3]


def root_titles(h: hist.Hist) -> hist.Hist:
    """``h`` with its axis labels in TLatex: a copy where one changes, ``h`` itself otherwise."""
    labels = [to_tlatex(axis.label) if axis.label else axis.label for axis in h.axes]
    if all(new == axis.label for new, axis in zip(labels, h.axes, strict=True)):
        return h
    out = h.copy()
    for axis, label in zip(out.axes, labels, strict=True):
        axis.label = label
    return out


def write_root(path: Path, histograms: Mapping[HistKey, hist.Hist]) -> None:
    """Write every histogram to a ROOT file at its ``hist/dataset/category/variation`` path."""
    tmp = path.with_suffix(".root.tmp")
    with uproot.recreate(tmp) as f:  # all at once: each directory's keys are written once, not per histogram
        f.update({hist_path(key): _th1d(histograms[key]) or root_titles(histograms[key]) for key in sorted(histograms)})
    tmp.replace(path)


def _th1d(h: hist.Hist) -> Any:
    """The TH1D of a one-axis histogram of weights or counts with both flow bins, as
    ``uproot.to_writable`` makes it (``tests/test_root_output.py`` compares every member), from
    one view of the histogram instead of four; None for anything else (uproot converts it)."""
    if h.ndim != 1 or h.storage_type not in (bh.storage.Weight, bh.storage.Double):
        return None
    axis = h.axes[0]
    if not (axis.traits.underflow and axis.traits.overflow) or isinstance(axis, bh.axis.StrCategory | bh.axis.IntCategory):
        return None
    view = np.asarray(h.view(flow=True))
    weighted = h.storage_type is bh.storage.Weight
    values = np.ascontiguousarray(view["value"] if weighted else view, dtype=np.float64)
    edges = np.asarray(axis.edges, dtype=np.float64)
    inner = values[1:-1]
    centers = (edges[:-1] + edges[1:]) / 2.0
    regular = isinstance(axis, bh.axis.Regular) and getattr(axis, "transform", None) is None
    title = getattr(h, "title", None) or getattr(h, "name", None) or ""
    label = to_tlatex(axis.label) if axis.label else axis.label
    return to_TH1x(
        fName=None, fTitle=title, data=values.astype(">f8"), fEntries=values.sum(),
        fTsumw=inner.sum(), fTsumw2=inner.sum(), fTsumwx=(inner * centers).sum(), fTsumwx2=(inner * centers**2).sum(),
        fSumw2=np.asarray(view["variance"], dtype=">f8") if weighted else None,
        fXaxis=to_TAxis(fName="xaxis", fTitle=label, fNbins=len(axis), fXmin=edges[0], fXmax=edges[-1],
                        fXbins=np.array([], dtype=">f8") if regular else edges.astype(">f8")),
    )


def write_pickle(path: Path, histograms: Mapping[HistKey, hist.Hist]) -> None:
    """Pickle ``{(histogram, dataset, category, variation): hist.Hist}``, sorted by key."""
    tmp = path.with_suffix(".pkl.tmp")
    with tmp.open("wb") as f:
        pickle.dump({tuple(k): histograms[k] for k in sorted(histograms)}, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


def read_pickle(path: str | Path) -> dict[HistKey, hist.Hist]:
    """``histograms.pkl`` keyed by ``(histogram, dataset, category, variation)``.

    Pickles of highrate 0.1, keyed by ``"histogram/dataset/category/variation"``
    strings, are converted on reading.
    """
    with Path(path).open("rb") as f:
        raw: dict[Any, hist.Hist] = pickle.load(f)
    if not isinstance(raw, dict):
        raise ConfigError(f"{str(path)!r} holds a {type(raw).__name__}, not highrate's histograms.")
    out: dict[HistKey, hist.Hist] = {}
    for key, h in raw.items():
        if isinstance(key, str):
            out[hist_key(key, where=str(path))] = h
        elif isinstance(key, tuple) and len(key) == 4 and all(isinstance(k, str) for k in key):
            out[key] = h
        else:
            raise ConfigError(f"{str(path)!r}: key {key!r} is not (histogram, dataset, category, variation).")
    return out

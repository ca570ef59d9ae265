"""Histograms to ``histograms.root`` (uproot) and ``histograms.pkl`` (``hist`` objects).

Layout: ``{histogram}/{dataset}/{category}/{variation}``, ``nominal`` for the nominal, so that
cabinetry- and Combine-style tools find them by path.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import hist
import uproot

from highrate.engine.result import HistKey


def hist_path(key: HistKey) -> str:
    return "/".join(key)


def write_root(path: Path, histograms: Mapping[HistKey, hist.Hist]) -> None:
    """Write every histogram to a ROOT file at its ``hist/dataset/category/variation`` path."""
    tmp = path.with_suffix(".root.tmp")
    with uproot.recreate(tmp) as f:
        for key in sorted(histograms):
            f[hist_path(key)] = histograms[key]
    tmp.replace(path)


def write_pickle(path: Path, histograms: Mapping[HistKey, hist.Hist]) -> None:
    """Pickle ``{"hist/dataset/category/variation": hist.Hist}``."""
    tmp = path.with_suffix(".pkl.tmp")
    with tmp.open("wb") as f:
        pickle.dump({hist_path(k): histograms[k] for k in sorted(histograms)}, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


def read_pickle(path: Path) -> dict[str, hist.Hist]:
    with Path(path).open("rb") as f:
        return pickle.load(f)

"""Read a ``highrate run`` output folder and index its histograms for plotting."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hist

from highrate.errors import ConfigError, did_you_mean
from highrate.outputs.histograms import read_pickle


@dataclass(frozen=True)
class RunOutputs:
    """The histograms (``{(histogram, dataset, category, variation): Hist}``) and report of a run."""

    outdir: Path
    histograms: dict[tuple[str, str, str, str], hist.Hist]
    report: dict[str, Any]

    @property
    def metadata(self) -> dict[str, dict[str, Any]]:
        """``{dataset: metadata}`` from the report."""
        return {ds: dict(d.get("metadata") or {}) for ds, d in self.report.get("datasets", {}).items()}

    @property
    def histogram_names(self) -> list[str]:
        return sorted({k[0] for k in self.histograms})

    @property
    def category_names(self) -> list[str]:
        return sorted({k[2] for k in self.histograms} | {c for cf in self.report.get("cutflow", {}).values()
                                                         for c in cf.get("categories", {})})

    def entries(self, histogram: str, category: str) -> dict[tuple[str, str], hist.Hist]:
        """``{(dataset, variation): Hist}`` of one histogram in one category."""
        return {(ds, var): h for (name, ds, cat, var), h in self.histograms.items()
                if name == histogram and cat == category}


def load_outputs(outdir: str | Path) -> RunOutputs:
    """Load ``histograms.pkl`` and ``report.json`` from ``outdir``; :class:`ConfigError` if absent."""
    out = Path(outdir)
    if not out.is_dir():
        raise ConfigError(f"{str(out)!r} is not a folder: give the --output folder of 'highrate run'.")
    paths = {name: out / name for name in ("histograms.pkl", "report.json")}
    missing = [name for name, p in paths.items() if not p.is_file()]
    if missing:
        raise ConfigError(f"{str(out)!r} lacks {' and '.join(missing)}: is it the output folder of 'highrate run'?")
    try:
        histograms = read_pickle(paths["histograms.pkl"])
        report = json.loads(paths["report.json"].read_text())
    except ConfigError:
        raise
    except (OSError, ValueError, EOFError, ImportError, pickle.UnpicklingError) as err:
        raise ConfigError(f"cannot read the outputs in {str(out)!r}: {err}") from err
    return RunOutputs(outdir=out, histograms=histograms, report=report)


def choose(asked: Sequence[str] | None, available: Iterable[str], *, what: str) -> list[str]:
    """``asked`` (all ``available`` if None), checking each exists; :class:`ConfigError` otherwise."""
    names = sorted(available)
    if not asked:
        return names
    for name in asked:
        if name not in names:
            raise ConfigError(f"unknown {what} {name!r}.{did_you_mean(name, names)} Available: {', '.join(names) or 'none'}.")
    return list(dict.fromkeys(asked))

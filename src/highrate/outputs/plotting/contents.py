"""The numbers behind a data/MC plot: MC per sample, data, statistical and systematic bands.

Pure functions of ``hist.Hist`` objects and metadata: no drawing, so they are easy to test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import hist
import numpy as np

from highrate.errors import ConfigError

NOMINAL = "nominal"


@dataclass(frozen=True)
class StackContents:
    """Per-bin contents of one histogram in one category (flow bins excluded).

    ``mc`` and ``mc_variances`` map sample -> values, ordered by increasing yield (the first
    sample is drawn at the bottom of the stack). ``syst_up`` and ``syst_down`` are the sizes
    (both >= 0) of the upward and downward systematic shifts of the MC total; ``band_up`` and
    ``band_down`` add the statistical uncertainty in quadrature. ``data`` is ``None`` without data.
    """

    edges: np.ndarray
    label: str
    mc: dict[str, np.ndarray] = field(default_factory=dict)
    mc_variances: dict[str, np.ndarray] = field(default_factory=dict)
    mc_total: np.ndarray | None = None
    mc_stat: np.ndarray | None = None
    syst_up: np.ndarray | None = None
    syst_down: np.ndarray | None = None
    systematics: tuple[str, ...] = ()
    data: np.ndarray | None = None
    data_variances: np.ndarray | None = None

    @property
    def band_up(self) -> np.ndarray | None:
        """Total upward MC uncertainty: stat and syst in quadrature."""
        return None if self.mc_stat is None else np.hypot(self.mc_stat, self.syst_up)

    @property
    def band_down(self) -> np.ndarray | None:
        """Total downward MC uncertainty: stat and syst in quadrature."""
        return None if self.mc_stat is None else np.hypot(self.mc_stat, self.syst_down)

    @property
    def data_errors(self) -> np.ndarray | None:
        """sqrt(sum of squared weights): sqrt(N) for unit-weight data."""
        return None if self.data_variances is None else np.sqrt(self.data_variances)


def split_variation(variation: str) -> tuple[str, str] | None:
    """``"JESUp"`` -> ``("JES", "Up")``; ``None`` for the nominal or an unrecognised name."""
    for side in ("Up", "Down"):
        if variation.endswith(side) and len(variation) > len(side):
            return variation[: -len(side)], side
    return None


def stack_contents(
    entries: Mapping[tuple[str, str], hist.Hist], metadata: Mapping[str, Mapping[str, Any]],
) -> StackContents:
    """Sum ``{(dataset, variation): hist}`` of one histogram/category into a :class:`StackContents`.

    Datasets are grouped by ``metadata[dataset]["sample"]`` (default: the dataset name); those with
    ``is_mc`` false are data (only their nominal is used). For each systematic ``s`` with an
    ``sUp`` or ``sDown``, per sample and bin the shift up is ``max(up-nom, down-nom, 0)`` and down
    ``min(up-nom, down-nom, 0)`` (a missing side counts as the nominal); shifts are summed over
    samples, then combined in quadrature across systematics. A dataset that is another simulation
    of a process (:func:`alternate_samples`) is not stacked: its difference to the process's
    nominal is a systematic of its own (a pair such as ``scaleup``/``scaledown`` one systematic,
    a single one symmetrised).
    """
    nominal = {ds: h for (ds, var), h in entries.items() if var == NOMINAL}
    if not nominal:
        raise ValueError("no nominal histogram among the entries")
    first = next(iter(nominal.values()))
    if first.ndim != 1:
        raise ValueError(f"stack_contents needs 1D histograms, got {first.ndim}D")
    axis = first.axes[0]
    edges = np.asarray(axis.edges, dtype=float)
    label = axis.label or axis.name or ""

    def is_mc(ds: str) -> bool:
        return bool(metadata.get(ds, {}).get("is_mc", True))

    def sample_of(ds: str) -> str:
        return str(metadata.get(ds, {}).get("sample") or ds)

    data_ds = sorted(ds for ds in nominal if not is_mc(ds))
    data = data_var = None
    if data_ds:
        data = sum(_values(nominal[ds]) for ds in data_ds)
        data_var = sum(_variances(nominal[ds]) for ds in data_ds)

    alternates = alternate_samples(metadata, [ds for ds in nominal if is_mc(ds)])
    by_sample: dict[str, list[str]] = {}
    for ds in sorted(nominal):
        if is_mc(ds) and ds not in alternates:
            by_sample.setdefault(sample_of(ds), []).append(ds)
    if not by_sample:
        return StackContents(edges=edges, label=label, data=data, data_variances=data_var)

    systematics = sorted({s[0] for (ds, var) in entries if is_mc(ds) and ds not in alternates
                          and (s := split_variation(var))})
    mc = {s: sum(_values(nominal[ds]) for ds in dss) for s, dss in by_sample.items()}
    mc_var = {s: sum(_variances(nominal[ds]) for ds in dss) for s, dss in by_sample.items()}
    order = sorted(mc, key=lambda s: (float(mc[s].sum()), s))
    nbins = len(edges) - 1
    up2, down2 = np.zeros(nbins), np.zeros(nbins)
    for syst in systematics:
        shift_up, shift_down = np.zeros(nbins), np.zeros(nbins)
        for sample, dss in by_sample.items():
            d_up = sum(_values(entries.get((ds, syst + "Up"), nominal[ds])) for ds in dss) - mc[sample]
            d_down = sum(_values(entries.get((ds, syst + "Down"), nominal[ds])) for ds in dss) - mc[sample]
            shift_up += np.maximum(np.maximum(d_up, d_down), 0.0)
            shift_down += np.minimum(np.minimum(d_up, d_down), 0.0)
        up2 += shift_up**2
        down2 += shift_down**2
    for syst, members in _alternate_groups(alternates).items():  # alternative samples of a process
        shifts = []
        for ds in members:
            base = [d for dss in by_sample.values() for d in dss if process_of(metadata, d) == alternates[ds][0]]
            if base:
                shifts.append(_values(nominal[ds]) - sum(_values(nominal[d]) for d in base))
        if len(shifts) == 1:  # one-sided: symmetrised
            shifts.append(-shifts[0])
        if shifts:
            up2 += np.maximum.reduce([np.maximum(d, 0.0) for d in shifts]) ** 2
            down2 += np.minimum.reduce([np.minimum(d, 0.0) for d in shifts]) ** 2
            systematics.append(syst)
    total = sum(mc.values())
    return StackContents(
        edges=edges, label=label,
        mc={s: mc[s] for s in order}, mc_variances={s: mc_var[s] for s in order},
        mc_total=total, mc_stat=np.sqrt(sum(mc_var.values())),
        syst_up=np.sqrt(up2), syst_down=np.sqrt(down2), systematics=tuple(systematics),
        data=data, data_variances=data_var,
    )


def process_of(metadata: Mapping[str, Mapping[str, Any]], dataset: str) -> str:
    """The dataset's ``process`` (its ``sample``, else its name, when the metadata has none)."""
    meta = metadata.get(dataset, {})
    return str(meta.get("process") or meta.get("sample") or dataset)


def alternate_samples(metadata: Mapping[str, Mapping[str, Any]], datasets: Iterable[str]) -> dict[str, tuple[str, str]]:
    """``{dataset: (process, systematic)}`` of the datasets that are another simulation of a
    process (metadata ``process`` and ``systematic``, as ``ttbar_ME_var``): drawn as part of the
    process's systematic band, not as a sample of their own."""
    found = {}
    for ds in datasets:
        meta = metadata.get(ds, {})
        if meta.get("systematic") and meta.get("process"):
            found[ds] = (str(meta["process"]), str(meta["systematic"]))
    return found


def _alternate_groups(alternates: Mapping[str, tuple[str, str]]) -> dict[str, list[str]]:
    """Alternative samples by systematic: ``scaleup`` and ``scaledown`` of one process make one."""
    groups: dict[str, list[str]] = {}
    for ds, (process, syst) in sorted(alternates.items()):
        stem = re.sub(r"_?(up|down)$", "", syst, flags=re.IGNORECASE) or syst
        groups.setdefault(f"{process}_{stem}", []).append(ds)
    return groups


def _values(h: hist.Hist) -> np.ndarray:
    return np.asarray(h.values(), dtype=float)


def _variances(h: hist.Hist) -> np.ndarray:
    var = h.variances()
    return np.asarray(h.values() if var is None else var, dtype=float)


@dataclass(frozen=True)
class MapContents:
    """A 2D histogram of one category: bin contents ``values[x, y]`` (flow bins excluded)."""

    xedges: np.ndarray
    yedges: np.ndarray
    xlabel: str
    ylabel: str
    values: np.ndarray


def map_contents(
    entries: Mapping[tuple[str, str], hist.Hist], metadata: Mapping[str, Mapping[str, Any]],
) -> dict[str, MapContents]:
    """The nominal 2D histograms of one histogram/category summed into ``{"mc": ..., "data": ...}``.

    MC and data are summed apart (``is_mc`` in the metadata, true by default); a kind without
    datasets is left out.
    """
    nominal = {ds: h for (ds, var), h in entries.items() if var == NOMINAL}
    out: dict[str, MapContents] = {}
    for kind, is_mc in (("mc", True), ("data", False)):
        hists = [h for ds, h in sorted(nominal.items()) if bool(metadata.get(ds, {}).get("is_mc", True)) == is_mc]
        if not hists:
            continue
        if hists[0].ndim != 2:
            raise ValueError(f"map_contents needs 2D histograms, got {hists[0].ndim}D")
        x, y = hists[0].axes
        out[kind] = MapContents(
            xedges=np.asarray(x.edges, dtype=float), yedges=np.asarray(y.edges, dtype=float),
            xlabel=x.label or x.name or "", ylabel=y.label or y.name or "",
            values=sum(_values(h) for h in hists),
        )
    return out


def run_lumi_fb(metadata: Mapping[str, Any]) -> float | None:
    """The luminosity (fb⁻¹) in one dataset's metadata: ``lumi_fb``, or ``lumi`` in pb⁻¹ like ``xsec``."""
    if metadata.get("lumi_fb") is not None:
        return float(metadata["lumi_fb"])
    if metadata.get("lumi") is not None:
        return float(metadata["lumi"]) / 1000.0
    return None


def scale_mc(
    entries: Mapping[tuple[str, str], hist.Hist], metadata: Mapping[str, Mapping[str, Any]], lumi_fb: float,
) -> dict[tuple[str, str], hist.Hist]:
    """``{(dataset, variation): hist}`` with every MC histogram scaled from its dataset's luminosity
    (:func:`run_lumi_fb`) to ``lumi_fb``: values by the ratio, variances by its square. Data is kept.

    :class:`~highrate.errors.ConfigError` names an MC dataset whose metadata has no luminosity.
    """
    out: dict[tuple[str, str], hist.Hist] = {}
    for (ds, var), h in entries.items():
        meta = metadata.get(ds, {})
        if not meta.get("is_mc", True):
            out[(ds, var)] = h
            continue
        lumi = run_lumi_fb(meta)
        if not lumi:
            raise ConfigError(f"cannot scale MC dataset {ds!r} to {lumi_fb:g} fb^-1: its metadata has no 'lumi' "
                              "(pb^-1) or 'lumi_fb'. Add the luminosity its normalisation used to the datasets "
                              "file, or plot without --lumi.")
        out[(ds, var)] = _scaled(h, lumi_fb / lumi)
    return out


def _scaled(h: hist.Hist, ratio: float) -> hist.Hist:
    """``h`` times ``ratio`` in weighted storage (an unweighted count's variance is the count)."""
    var = h.variances(flow=True)
    values = np.asarray(h.values(flow=True), dtype=float)
    out = hist.Hist(*h.axes, storage=hist.storage.Weight())
    view = out.view(flow=True)
    view["value"] = ratio * values
    view["variance"] = ratio**2 * np.asarray(values if var is None else var, dtype=float)
    return out

"""What an RDataFrame analysis books, turned into highrate's :class:`~highrate.engine.result.Result`.

``build(df, dataset)`` returns a mapping from ``histogram`` or ``(histogram, category)`` to a
booked ``Histo1D``/``Histo2D`` (a plain name goes to category ``"all"``). Results on a graph with
``Vary`` come back through ``VariationsFor``: RDataFrame's ``"nominal"`` stays ``"nominal"``,
``"pileup:up"``/``"pileup:down"`` become ``pileupUp``/``pileupDown`` as highrate's own
variations are named, any other ``"name:tag"`` becomes ``name_tag``. The named filters, in
the order booked, are the cutflow (``df.Report()``); those named ``skim/...`` and ``presel/...``
give the ``skimmed`` and ``preselected`` counts, as a columnar analysis' skim and preselection do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hist
import numpy as np

from highrate.errors import ConfigError

DEFAULT_CATEGORY = "all"


def booked_keys(booked: Any, where: str) -> dict[tuple[str, str], Any]:
    """``{(histogram, category): result}`` of what ``build`` returned; ConfigError naming ``where``."""
    if not isinstance(booked, Mapping) or not booked:
        raise ConfigError(f"{where}: build(df, dataset) must return a non-empty mapping from 'histogram' or "
                          f"('histogram', 'category') to booked histograms, got {type(booked).__name__}.")
    out: dict[tuple[str, str], Any] = {}
    for key, value in booked.items():
        if isinstance(key, str):
            key = (key, DEFAULT_CATEGORY)
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) and k and "/" not in k for k in key)):
            raise ConfigError(f"{where}: key {key!r} of build()'s result is not 'histogram' or ('histogram', "
                              "'category') (non-empty names without '/').")
        out[key] = value
    return out


def variation_name(tag: str) -> str:
    """highrate's name of an RDataFrame variation: ``"nominal"``, ``"pileup:up"`` → ``pileupUp``."""
    if tag == "nominal":
        return tag
    name, _, which = tag.partition(":")
    if which in ("up", "down"):
        return f"{name}{which.capitalize()}"
    return f"{name}_{which}" if which else name


def to_hist(th: Any, name: str) -> hist.Hist:
    """A ROOT TH1/TH2 (with its flow bins and sums of squared weights) as a weighted ``hist.Hist``."""
    dim = int(th.GetDimension())
    if dim not in (1, 2):
        raise ConfigError(f"histogram {name!r}: only 1D and 2D histograms are supported, got {dim}D.")
    taxes = [th.GetXaxis(), th.GetYaxis()][:dim]
    axes = [_axis(a, name if dim == 1 else f"{name}_{'xy'[i]}") for i, a in enumerate(taxes)]
    h = hist.Hist(*axes, storage=hist.storage.Weight(), name=name)
    shape = tuple(int(a.GetNbins()) + 2 for a in taxes)
    n = int(np.prod(shape))
    values = np.array([th.GetBinContent(i) for i in range(n)], dtype=np.float64)
    sumw2 = th.GetSumw2()
    variances = np.array([sumw2.At(i) for i in range(n)]) if sumw2.GetSize() == n else values.copy()
    # ROOT's global bin = x + (nx + 2) * y: x runs fastest, so reshape to (y, x) and transpose
    view = h.view(flow=True)
    view["value"] = values.reshape(shape[::-1]).T
    view["variance"] = variances.reshape(shape[::-1]).T
    return h


def _axis(a: Any, name: str) -> hist.axis.AxisProtocol:
    n = int(a.GetNbins())
    edges = np.array([a.GetBinLowEdge(i) for i in range(1, n + 2)], dtype=np.float64)
    label = str(a.GetTitle())
    if np.allclose(np.diff(edges), (edges[-1] - edges[0]) / n, rtol=1e-9, atol=0):
        return hist.axis.Regular(n, float(a.GetXmin()), float(a.GetXmax()), name=name, label=label)
    return hist.axis.Variable(edges, name=name, label=label)


def cutflow(report: Any, total: int) -> tuple[dict[str, int], dict[str, int]]:
    """``(steps, counts)`` from a finished ``Report``: each named filter's passing events, plus
    ``initial``, ``skim`` and ``presel`` like the columnar engine's cutflow; ``counts`` holds
    ``total``, ``skimmed`` and ``preselected``."""
    steps: dict[str, int] = {"initial": int(total)}
    skimmed: int | None = None
    preselected: int | None = None
    for info in report:
        name, passed = str(info.GetName()), int(info.GetPass())
        steps[name] = passed
        if name.startswith("skim/"):
            skimmed = passed
        elif name.startswith("presel/"):
            preselected = passed
    skimmed = int(total) if skimmed is None else skimmed
    preselected = skimmed if preselected is None else preselected
    steps["skim"], steps["presel"] = skimmed, preselected
    return steps, {"total": int(total), "skimmed": skimmed, "preselected": preselected}

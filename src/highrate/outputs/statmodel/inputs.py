"""Read the templates of one histogram from the output folder of ``highrate run``.

MC datasets of the same ``sample`` are summed, and so are the data datasets. Variations come as
``{syst}Up`` / ``{syst}Down`` pairs; a dataset of a sample that lacks a variation the other
datasets of the sample have contributes its nominal to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import uproot

from highrate.errors import ConfigError, did_you_mean
from highrate.outputs.histograms import hist_key, read_pickle

NOMINAL = "nominal"


@dataclass
class Template:
    """Bin contents (sum of weights) and their variances (sum of squared weights)."""

    values: np.ndarray
    variances: np.ndarray

    def __add__(self, other: Template) -> Template:
        return Template(self.values + other.values, self.variances + other.variances)


@dataclass
class Channel:
    """One category: the templates of every MC sample and its variations, and the data."""

    name: str
    edges: np.ndarray
    label: str
    samples: dict[str, dict[str, Template]]  # sample -> variation ("nominal", "JESUp", ...) -> template
    data: np.ndarray

    def systematics(self, sample: str) -> list[str]:
        """Names ``s`` of the variations of ``sample`` that have both ``sUp`` and ``sDown``."""
        names = self.samples[sample]
        return sorted(v[:-2] for v in names if v.endswith("Up") and f"{v[:-2]}Down" in names)

    def total(self) -> np.ndarray:
        """The nominal sum of all MC samples."""
        return sum((t[NOMINAL].values for t in self.samples.values()), np.zeros(len(self.edges) - 1))


@dataclass
class FitInputs:
    """What the statistical model is built from."""

    histogram: str
    signal: str
    channels: list[Channel]
    asimov: bool
    data_datasets: list[str] = field(default_factory=list)


def split_variation(variation: str) -> tuple[str, str] | None:
    """``"JESUp"`` -> ``("JES", "Up")``; ``None`` for the nominal or an unknown suffix."""
    for direction in ("Up", "Down"):
        if variation.endswith(direction) and len(variation) > len(direction):
            return variation[: -len(direction)], direction
    return None


def load_outputs(outdir: str | Path) -> tuple[dict[tuple[str, str, str, str], Any], dict[str, dict[str, Any]]]:
    """``(histograms, metadata per dataset)`` of an output folder; ConfigError when unusable."""
    out = Path(outdir)
    if not out.is_dir():
        raise ConfigError(f"output folder {str(out)!r} does not exist: give the --output folder of 'highrate run'.")
    pkl, root, report_path = out / "histograms.pkl", out / "histograms.root", out / "report.json"
    if not report_path.is_file():
        raise ConfigError(f"{str(out)!r} has no report.json: is it the output folder of 'highrate run'?")
    try:
        report = json.loads(report_path.read_text())
        meta = {name: dict(d["metadata"]) for name, d in report["datasets"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"{str(report_path)!r} is not the report of a highrate run ({err}).") from err
    if pkl.is_file():
        try:
            hists = read_pickle(pkl)
        except ConfigError:
            raise
        except Exception as err:  # a truncated or foreign pickle
            raise ConfigError(f"cannot read {str(pkl)!r}: {err}") from err
    elif root.is_file():
        hists = _read_root(root)
    else:
        raise ConfigError(f"{str(out)!r} has neither histograms.pkl nor histograms.root.")
    return hists, meta


def _read_root(path: Path) -> dict[tuple[str, str, str, str], Any]:
    try:
        with uproot.open(path) as f:
            found = {k.split(";")[0]: f[k].to_hist() for k, cls in f.classnames().items() if cls.startswith("TH")}
    except Exception as err:
        raise ConfigError(f"cannot read {str(path)!r}: {err}") from err
    return {hist_key(k, where=str(path)): h for k, h in found.items()}


def _template(h: Any) -> tuple[Template, np.ndarray, str]:
    values = np.asarray(h.values(flow=False), dtype=float)
    variances = h.variances(flow=False)
    variances = np.asarray(values if variances is None else variances, dtype=float)  # unweighted: Poisson
    if values.ndim == 1:
        edges, label = np.asarray(h.axes[0].edges, dtype=float), str(h.axes[0].label or h.axes[0].name or "")
    else:  # an N-dimensional histogram is unrolled into one axis of bin indices
        edges, label = np.arange(values.size + 1, dtype=float), "bin (unrolled)"
    return Template(values.ravel(), variances.ravel()), edges, label


def load_inputs(
    outdir: str | Path, histogram: str, signal: str, *, categories: list[str] | None = None, asimov: bool = False,
) -> FitInputs:
    """Collect the templates of ``histogram`` in ``categories`` (default: all) from ``outdir``."""
    hists, meta = load_outputs(outdir)
    parsed: dict[tuple[str, str, str], Any] = {}
    for (name, ds, cat, var), h in hists.items():
        if name == histogram:
            parsed[(ds, cat, var)] = h
    if not parsed:
        names = sorted({k[0] for k in hists})
        raise ConfigError(f"unknown histogram {histogram!r} in {str(outdir)!r}.{did_you_mean(histogram, names)} "
                          f"Histograms: {', '.join(names) or 'none'}.")
    known = sorted({c for _, c, _ in parsed})
    cats = list(dict.fromkeys(categories)) if categories else known
    for c in cats:
        if c not in known:
            raise ConfigError(f"histogram {histogram!r} has no category {c!r}.{did_you_mean(c, known)} "
                              f"Categories: {', '.join(known)}.")
    for ds in sorted({d for d, _, _ in parsed}):
        if ds not in meta:
            raise ConfigError(f"dataset {ds!r} of histograms.pkl is not in report.json: the outputs do not match.")
    mc_samples = sorted({str(meta[d].get("sample", d)) for d, _, _ in parsed if meta[d].get("is_mc")})
    if signal not in mc_samples:
        raise ConfigError(f"unknown signal sample {signal!r}.{did_you_mean(signal, mc_samples)} "
                          f"MC samples: {', '.join(mc_samples) or 'none'}.")
    data_ds = sorted({d for d, c, v in parsed if not meta[d].get("is_mc") and c in cats and v == NOMINAL})
    if not data_ds and not asimov:
        raise ConfigError(f"no data datasets have histogram {histogram!r} in {', '.join(map(repr, cats))}: "
                          "fit the Asimov data set with --asimov, or run over the data too.")
    channels = [_channel(parsed, meta, histogram, c, data_ds, asimov) for c in cats]
    if not any(signal in ch.samples for ch in channels):
        raise ConfigError(f"signal sample {signal!r} has no {histogram!r} histogram in {', '.join(map(repr, cats))}.")
    return FitInputs(histogram, signal, channels, asimov, [] if asimov else data_ds)


def _channel(parsed: dict[tuple[str, str, str], Any], meta: dict[str, dict[str, Any]], histogram: str, category: str,
             data_ds: list[str], asimov: bool) -> Channel:
    by_sample: dict[str, dict[str, dict[str, Template]]] = {}  # sample -> dataset -> variation -> template
    edges, label, data = None, "", None
    for (ds, cat, var), h in sorted(parsed.items()):
        if cat != category:
            continue
        tmpl, e, lab = _template(h)
        if edges is None:
            edges, label = e, lab
        elif len(e) != len(edges) or not np.allclose(e, edges):
            raise ConfigError(f"histogram {histogram!r}, category {category!r}: dataset {ds!r} has other binning.")
        if meta[ds].get("is_mc"):
            if var == NOMINAL or split_variation(var):
                by_sample.setdefault(str(meta[ds].get("sample", ds)), {}).setdefault(ds, {})[var] = tmpl
        elif var == NOMINAL and ds in data_ds and not asimov:
            data = tmpl.values if data is None else data + tmpl.values
    samples: dict[str, dict[str, Template]] = {}
    for sample, datasets in by_sample.items():
        missing = [ds for ds, v in datasets.items() if NOMINAL not in v]
        if missing:
            raise ConfigError(f"histogram {histogram!r}, category {category!r}: dataset {missing[0]!r} has variations "
                              "but no nominal histogram.")
        variations = sorted({v for d in datasets.values() for v in d})
        summed = {v: _sum(d.get(v, d[NOMINAL]) for d in datasets.values()) for v in variations}
        # negative bins (negative weights) would make the Poisson likelihood undefined: clipped to 0
        samples[sample] = {v: Template(np.clip(t.values, 0.0, None), t.variances) for v, t in summed.items()}
    channel = Channel(category, edges, label, samples, np.zeros(len(edges) - 1))
    if data is None and not asimov:
        raise ConfigError(f"no data in category {category!r} of histogram {histogram!r}: drop the category or use --asimov.")
    channel.data = channel.total() if asimov else np.asarray(data, dtype=float)
    return channel


def _sum(templates: Any) -> Template:
    items = list(templates)
    out = Template(items[0].values.copy(), items[0].variances.copy())
    for t in items[1:]:
        out = out + t
    return out

"""Read the templates of the fit's regions from the output folder of ``highrate run``.

A region is a category with the histogram fitted in it (``--region 4j1b=HT``; with
``--histogram H`` every category, or those given, with ``H``). Datasets are data, parts of a
sample or alternate samples (:mod:`~highrate.outputs.statmodel.samples`). The datasets of a
sample are summed, and so are the data. Variations are the ``{syst}Up`` / ``{syst}Down``
histograms and the alternate samples; a dataset of a sample that lacks a variation the other
datasets of the sample have contributes its nominal to it. A variation is one-sided (the model
symmetrizes its ``Up``) where a sample has no ``Down``, or a ``Down`` equal to the nominal while
its ``Up`` differs. Negative bins (negative weights) are set to 0: the Poisson likelihood needs
non-negative expectations.
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
from highrate.outputs.statmodel.samples import Role, roles

NOMINAL = "nominal"


@dataclass
class Template:
    """Bin contents (sum of weights) and their variances (sum of squared weights)."""

    values: np.ndarray
    variances: np.ndarray

    def __add__(self, other: Template) -> Template:
        return Template(self.values + other.values, self.variances + other.variances)


def symmetrized(nominal: np.ndarray, varied: np.ndarray) -> np.ndarray:
    """The other side of a one-sided variation, as cabinetry's ``Symmetrize`` makes it: the
    normalisation ``r = sum(varied) / sum(nominal)`` mirrored to ``2 - r``, the shape (``varied``
    scaled to the nominal integral) mirrored around the nominal. Bins that this makes negative
    (a bin where the variation is more than twice the nominal, common in templates with few
    events) are set to 0: a negative expectation makes the likelihood undefined."""
    total, total_varied = float(nominal.sum()), float(varied.sum())
    if total <= 0 or total_varied <= 0:
        return np.clip(2 * nominal - varied, 0.0, None)
    r = total_varied / total
    return np.clip((2 - r) * (2 * nominal - varied / r), 0.0, None)


@dataclass
class Channel:
    """One region: the templates of every MC sample and its variations, and the data."""

    name: str  # the category
    histogram: str
    edges: np.ndarray
    label: str
    samples: dict[str, dict[str, Template]]  # sample -> variation ("nominal", "JESUp", ...) -> template
    data: np.ndarray

    def systematics(self, sample: str) -> list[str]:
        """Names ``s`` of the variations of ``sample``: those with ``sUp`` or ``sDown``."""
        names = self.samples[sample]
        return sorted({v[:-len(d)] for v in names for d in ("Up", "Down") if v.endswith(d) and len(v) > len(d)})

    def one_sided(self, sample: str) -> list[str]:
        """The variations of ``sample`` that have one side only: the other is :func:`symmetrized`."""
        names = self.samples[sample]
        return [s for s in self.systematics(sample) if (f"{s}Up" in names) != (f"{s}Down" in names)]

    def variation(self, sample: str, syst: str, direction: str) -> Template:
        """The ``Up``/``Down`` template of ``syst``: the histogram, else the other side
        :func:`symmetrized`, else (``syst`` does not vary ``sample`` here) the nominal."""
        templates = self.samples[sample]
        other = "Down" if direction == "Up" else "Up"
        if f"{syst}{direction}" in templates:
            return templates[f"{syst}{direction}"]
        nominal = templates[NOMINAL]
        if f"{syst}{other}" in templates:
            return Template(symmetrized(nominal.values, templates[f"{syst}{other}"].values), nominal.variances)
        return nominal

    def total(self) -> np.ndarray:
        """The nominal sum of all MC samples."""
        return sum((t[NOMINAL].values for t in self.samples.values()), np.zeros(len(self.edges) - 1))

    def kept(self) -> np.ndarray:
        """Mask of the bins where the nominal MC sum is positive: the others are left out of the model."""
        return self.total() > 0


@dataclass
class FitInputs:
    """What the statistical model is built from."""

    signal: str
    channels: list[Channel]
    asimov: bool
    data_datasets: list[str] = field(default_factory=list)
    alternates: dict[str, str] = field(default_factory=dict)  # dataset -> "sample: variation"

    @property
    def regions(self) -> dict[str, str]:
        """``{region (category): histogram}``."""
        return {ch.name: ch.histogram for ch in self.channels}

    def symmetrized(self) -> dict[str, list[str]]:
        """variation -> the samples that have one side of it only (in some region)."""
        out: dict[str, set[str]] = {}
        for ch in self.channels:
            for sample in ch.samples:
                for syst in ch.one_sided(sample):
                    out.setdefault(syst, set()).add(sample)
        return {syst: sorted(samples) for syst, samples in sorted(out.items())}

    @property
    def histogram(self) -> str:
        """The histogram fitted, or the histograms joined by ', ' when the regions differ."""
        return ", ".join(dict.fromkeys(ch.histogram for ch in self.channels))


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


def resolve_regions(hists: dict[tuple[str, str, str, str], Any], outdir: str | Path, histogram: str | None,
                    categories: list[str] | None, regions: dict[str, str] | None) -> dict[str, str]:
    """``{category: histogram}`` of ``--histogram``/``--category`` or of ``--region``, checked."""
    if regions and (histogram or categories):
        raise ConfigError("give either --region CATEGORY=HISTOGRAM (repeatable) or --histogram NAME "
                          "[--category NAME], not both.")
    if not regions and not histogram:
        raise ConfigError("say what to fit: --histogram NAME (in every category, or those of --category) "
                          "or --region CATEGORY=HISTOGRAM (repeatable).")
    names = sorted({k[0] for k in hists})
    wanted = dict(regions) if regions else {}
    for h in list(wanted.values()) + ([histogram] if histogram else []):
        if h not in names:
            raise ConfigError(f"unknown histogram {h!r} in {str(outdir)!r}.{did_you_mean(h, names)} "
                              f"Histograms: {', '.join(names) or 'none'}.")
    if histogram:
        known = sorted({k[2] for k in hists if k[0] == histogram})
        wanted = {c: histogram for c in (dict.fromkeys(categories) if categories else known)}
    for c, h in wanted.items():
        known = sorted({k[2] for k in hists if k[0] == h})
        if c not in known:
            raise ConfigError(f"histogram {h!r} has no category {c!r}.{did_you_mean(c, known)} "
                              f"Categories: {', '.join(known)}.")
    return wanted


def load_inputs(
    outdir: str | Path, histogram: str | None, signal: str, *, categories: list[str] | None = None,
    regions: dict[str, str] | None = None, asimov: bool = False,
) -> FitInputs:
    """Collect the templates of the regions from ``outdir``: ``histogram`` in ``categories``
    (default: all), or ``regions``, ``{category: histogram}``."""
    hists, meta = load_outputs(outdir)
    wanted = resolve_regions(hists, outdir, histogram, categories, regions)
    parsed: dict[str, dict[tuple[str, str, str], Any]] = {c: {} for c in wanted}  # category -> (ds, cat, var) -> h
    for (name, ds, cat, var), h in hists.items():
        if wanted.get(cat) == name:
            parsed[cat][(ds, cat, var)] = h
    used = sorted({ds for found in parsed.values() for ds, _, _ in found})
    for ds in used:
        if ds not in meta:
            raise ConfigError(f"dataset {ds!r} of the histograms is not in report.json: the outputs do not match.")
    role = roles({ds: meta[ds] for ds in used})
    samples = sorted({r.sample for r in role.values() if r.kind == "sample"})
    if signal not in samples:
        raise ConfigError(f"unknown signal sample {signal!r}.{did_you_mean(signal, samples)} "
                          f"MC samples: {', '.join(samples) or 'none'}.")
    for ds, r in role.items():
        if r.kind == "alternate" and r.sample not in samples:
            raise ConfigError(f"dataset {ds!r} is a variation of process {r.sample!r}, which no MC dataset "
                              f"provides.{did_you_mean(r.sample, samples)} Samples: {', '.join(samples)}.")
    data_ds = sorted({ds for c, found in parsed.items() for ds, _, v in found if role[ds].kind == "data" and v == NOMINAL})
    where = ", ".join(f"{c} ({h})" for c, h in wanted.items())
    if not data_ds and not asimov:
        raise ConfigError(f"no data datasets have histograms in {where}: fit the Asimov data set with --asimov, "
                          "or run over the data too.")
    channels = [_channel(parsed[c], role, h, c, asimov) for c, h in wanted.items()]
    if not any(signal in ch.samples for ch in channels):
        raise ConfigError(f"signal sample {signal!r} has no histogram in {where}.")
    alternates = {ds: f"{r.sample}: {r.variation}" for ds, r in sorted(role.items()) if r.kind == "alternate"}
    return FitInputs(signal, channels, asimov, [] if asimov else data_ds, alternates)


def _channel(parsed: dict[tuple[str, str, str], Any], role: dict[str, Role], histogram: str, category: str,
             asimov: bool) -> Channel:
    by_sample: dict[str, dict[str, dict[str, Template]]] = {}  # sample -> dataset -> variation -> template
    alternates: dict[tuple[str, str], list[Template]] = {}  # (sample, variation) -> templates
    edges, label, data = None, "", None
    for (ds, _, var), h in sorted(parsed.items()):
        tmpl, e, lab = _template(h)
        if edges is None:
            edges, label = e, lab
        elif len(e) != len(edges) or not np.allclose(e, edges):
            raise ConfigError(f"histogram {histogram!r}, category {category!r}: dataset {ds!r} has other binning.")
        r = role[ds]
        if r.kind == "sample" and (var == NOMINAL or var.endswith(("Up", "Down"))):
            by_sample.setdefault(r.sample, {}).setdefault(ds, {})[var] = tmpl
        elif r.kind == "alternate" and var == NOMINAL:
            alternates.setdefault((r.sample, r.variation), []).append(tmpl)
        elif r.kind == "data" and var == NOMINAL and not asimov:
            data = tmpl.values if data is None else data + tmpl.values
    samples: dict[str, dict[str, Template]] = {}
    for sample, datasets in by_sample.items():
        missing = [ds for ds, v in datasets.items() if NOMINAL not in v]
        if missing:
            raise ConfigError(f"histogram {histogram!r}, category {category!r}: dataset {missing[0]!r} has variations "
                              "but no nominal histogram.")
        variations = sorted({v for d in datasets.values() for v in d})
        samples[sample] = {v: _sum(d.get(v, d[NOMINAL]) for d in datasets.values()) for v in variations}
    for (sample, variation), templates in sorted(alternates.items()):
        if sample not in samples:
            continue  # the process has no nominal histogram in this region
        if variation in samples[sample]:
            raise ConfigError(f"histogram {histogram!r}, category {category!r}: sample {sample!r} has a histogram "
                              f"{variation!r} and an alternate sample for it: rename one of them.")
        samples[sample][variation] = _sum(templates)
    samples = {s: _one_sided({v: Template(np.clip(t.values, 0.0, None), t.variances) for v, t in ts.items()})
               for s, ts in samples.items()}
    if edges is None:
        raise ConfigError(f"histogram {histogram!r} has no datasets in category {category!r}.")
    channel = Channel(category, histogram, edges, label, samples, np.zeros(len(edges) - 1))
    if data is None and not asimov:
        raise ConfigError(f"no data in category {category!r} of histogram {histogram!r}: drop the category or use --asimov.")
    channel.data = channel.total() if asimov else np.asarray(data, dtype=float)
    return channel


def _one_sided(templates: dict[str, Template]) -> dict[str, Template]:
    """Without the ``{syst}Down`` templates that equal the nominal while ``{syst}Up`` does not: a
    one-sided variation filled as a pair (the AGC's jet energy resolution, ``Down`` = nominal),
    which the model then symmetrizes."""
    nominal = templates[NOMINAL].values

    def same(t: Template) -> bool:
        return bool(np.allclose(t.values, nominal, rtol=1e-9, atol=0.0))

    drop = {v for v, t in templates.items() if v.endswith("Down") and same(t)
            and f"{v[:-4]}Up" in templates and not same(templates[f"{v[:-4]}Up"])}
    return {v: t for v, t in templates.items() if v not in drop}


def _sum(templates: Any) -> Template:
    items = list(templates)
    out = Template(items[0].values.copy(), items[0].variances.copy())
    for t in items[1:]:
        out = out + t
    return out

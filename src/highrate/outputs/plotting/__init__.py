"""Plots and tables from the output folder of ``highrate run`` (needs ``highrate[plot]``).

``plot_outputs(outdir)`` writes ``{output}/{category}/{histogram}.{png,pdf}`` data/MC plots (2D
histograms: ``{histogram}_mc`` and ``{histogram}_data`` colour maps) and ``cutflow.md`` /
``cutflow.csv`` / ``yields.csv``. The numbers behind a plot come from the pure
:func:`stack_contents`, :func:`map_contents` and :func:`scale_mc`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from highrate.errors import ConfigError
from highrate.outputs.plotting.contents import (
    MapContents,
    StackContents,
    alternate_samples,
    map_contents,
    run_lumi_fb,
    scale_mc,
    stack_contents,
)
from highrate.outputs.plotting.cutflow import cutflow_table, write_cutflow, yields_table
from highrate.outputs.plotting.inputs import RunOutputs, choose, load_outputs

__all__ = [
    "MapContents", "PlotSummary", "RunOutputs", "StackContents", "cutflow_table", "load_outputs", "map_contents",
    "plot_outputs", "scale_mc", "stack_contents", "write_cutflow", "yields_table",
]


@dataclass
class PlotSummary:
    """What :func:`plot_outputs` wrote and what it skipped (with the reason)."""

    output: Path
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def plot_outputs(
    outdir: str | Path, *, output: str | Path | None = None, histograms: Sequence[str] | None = None,
    categories: Sequence[str] | None = None, formats: Sequence[str] = ("png", "pdf"),
    lumi: float | None = None, label: str = "Preliminary", log: bool = False,
) -> PlotSummary:
    """Data/MC plots of every (chosen) histogram and category, plus the cutflow tables.

    1D histograms become a stack with data and a ratio panel (``{category}/{histogram}``); 2D
    histograms a colour map of the MC sum and one of the data (``{category}/{histogram}_mc`` and
    ``_data``). ``lumi`` (fb⁻¹) scales every MC histogram from the luminosity of its dataset's
    metadata (``lumi_fb``, or ``lumi`` in pb⁻¹ like ``xsec``: what the normalisation weight used)
    to ``lumi``, and labels the plots with it; without it, MC is drawn as the run filled it and the
    label shows the metadata's luminosity when all datasets agree on one.
    """
    # the drawing modules need matplotlib and mplhep (highrate[plot]): imported only here
    from highrate.outputs.plotting.maps import draw_map
    from highrate.outputs.plotting.stack import draw_stack
    from highrate.outputs.plotting.style import palette, save_figure

    if lumi is not None and not lumi > 0:
        raise ConfigError(f"--lumi must be a luminosity in fb^-1 above 0, got {lumi:g}.")
    run = load_outputs(outdir)
    summary = PlotSummary(output=Path(output) if output is not None else run.outdir / "plots")
    names = choose(histograms, run.histogram_names, what="histogram")
    cats = choose(categories, run.category_names, what="category")
    meta = run.metadata
    mc = {ds for (_, ds, _, _) in run.histograms if meta.get(ds, {}).get("is_mc", True)}
    alternates = alternate_samples(meta, mc)  # in the systematic band, not stacked
    mc_samples = sorted({str(meta.get(ds, {}).get("sample") or ds) for ds in mc - alternates.keys()})
    colors = {s: palette()[i % len(palette())] for i, s in enumerate(mc_samples)}
    shown_lumi = lumi if lumi is not None else _metadata_lumi(meta)
    year = _metadata_year(meta)
    for cat in cats:
        for name in names:
            entries = run.entries(name, cat)
            if not entries:  # a histogram filled in other categories only
                continue
            if not any(var == "nominal" for (_, var) in entries):
                summary.skipped.append(f"{name}/{cat}: no nominal histogram")
                continue
            if lumi is not None:
                entries = scale_mc(entries, meta, lumi)
            ndim = next(iter(entries.values())).ndim
            if ndim == 1:
                fig = draw_stack(stack_contents(entries, meta), colors=colors, label=label, lumi=shown_lumi,
                                 year=year, log=log)
                summary.files += save_figure(fig, summary.output / cat / name, formats=formats)
            elif ndim == 2:
                for kind, contents in map_contents(entries, meta).items():
                    fig = draw_map(contents, data=kind == "data", label=label, lumi=shown_lumi, year=year,
                                   title="Data" if kind == "data" else "MC")
                    summary.files += save_figure(fig, summary.output / cat / f"{name}_{kind}", formats=formats)
            else:
                summary.skipped.append(f"{name}/{cat}: {ndim}D histogram, only 1D and 2D are plotted")
    summary.files += write_cutflow(run.report.get("cutflow", {}), summary.output)
    return summary


def _metadata_lumi(meta: dict[str, dict]) -> float | None:
    values = {v for m in meta.values() if (v := run_lumi_fb(m)) is not None}
    return values.pop() if len(values) == 1 else None


def _metadata_year(meta: dict[str, dict]) -> str | None:
    years = sorted({str(m["year"]) for m in meta.values() if m.get("year") is not None})
    return "+".join(years) if years else None

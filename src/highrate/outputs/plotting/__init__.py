"""Plots and tables from the output folder of ``highrate run`` (needs ``highrate[plot]``).

``plot_outputs(outdir)`` writes ``{output}/{category}/{histogram}.{png,pdf}`` data/MC plots and
``cutflow.md`` / ``cutflow.csv`` / ``yields.csv``. The numbers behind a plot come from the pure
:func:`stack_contents`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from highrate.outputs.plotting.contents import StackContents, stack_contents
from highrate.outputs.plotting.cutflow import cutflow_table, write_cutflow, yields_table
from highrate.outputs.plotting.inputs import RunOutputs, choose, load_outputs

__all__ = [
    "PlotSummary", "RunOutputs", "StackContents", "cutflow_table", "load_outputs", "plot_outputs",
    "stack_contents", "write_cutflow", "yields_table",
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
    """Data/MC plots for every (chosen) 1D histogram and category, plus the cutflow tables.

    ``lumi`` (fb⁻¹) overrides the metadata: ``lumi_fb``, or ``lumi`` in pb⁻¹ like ``xsec`` in pb.
    """
    from highrate.outputs.plotting.stack import draw_stack, palette, save_figure

    run = load_outputs(outdir)
    summary = PlotSummary(output=Path(output) if output is not None else run.outdir / "plots")
    names = choose(histograms, run.histogram_names, what="histogram")
    cats = choose(categories, run.category_names, what="category")
    meta = run.metadata
    mc_samples = sorted({str(meta.get(ds, {}).get("sample") or ds) for (_, ds, _, _) in run.histograms
                         if meta.get(ds, {}).get("is_mc", True)})
    colors = {s: palette()[i % len(palette())] for i, s in enumerate(mc_samples)}
    lumi = lumi if lumi is not None else _metadata_lumi(meta)
    year = _metadata_year(meta)
    for cat in cats:
        for name in names:
            entries = run.entries(name, cat)
            if not any(var == "nominal" for (_, var) in entries):
                summary.skipped.append(f"{name}/{cat}: no nominal histogram")
                continue
            ndim = next(iter(entries.values())).ndim
            if ndim != 1:
                summary.skipped.append(f"{name}/{cat}: {ndim}D histogram, only 1D is plotted")
                continue
            fig = draw_stack(stack_contents(entries, meta), colors=colors, label=label, lumi=lumi, year=year, log=log)
            summary.files += save_figure(fig, summary.output / cat / name, formats=formats)
    summary.files += write_cutflow(run.report.get("cutflow", {}), summary.output)
    return summary


def _metadata_lumi(meta: dict[str, dict]) -> float | None:
    values = set()
    for m in meta.values():
        if m.get("lumi_fb") is not None:
            values.add(float(m["lumi_fb"]))
        elif m.get("lumi") is not None:
            values.add(float(m["lumi"]) / 1000.0)
    return values.pop() if len(values) == 1 else None


def _metadata_year(meta: dict[str, dict]) -> str | None:
    years = sorted({str(m["year"]) for m in meta.values() if m.get("year") is not None})
    return "+".join(years) if years else None

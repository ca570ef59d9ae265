"""Draw a CMS-style data/MC plot from :class:`~highrate.outputs.plotting.contents.StackContents`.

Figures are plain :class:`matplotlib.figure.Figure` objects on the non-interactive Agg canvas:
never registered with pyplot, so nothing stays open once they are saved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import mplhep
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from highrate.outputs.plotting.contents import StackContents

DATA_STYLE = {"fmt": "o", "color": "black", "markersize": 5, "linewidth": 1.5, "capsize": 0}
BAND_STYLE = {"fill": True, "facecolor": "none", "edgecolor": "dimgray", "hatch": "////", "linewidth": 0}


def palette() -> list[str]:
    """The colours of the CMS style's colour cycle."""
    cycle = mplhep.style.CMS.get("axes.prop_cycle")
    colors = [c["color"] for c in cycle] if cycle is not None else []
    return colors or ["#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6", "#a96b59"]


def draw_stack(
    contents: StackContents, *, colors: Mapping[str, str] | None = None, label: str = "Preliminary",
    lumi: float | None = None, year: str | None = None, log: bool = False,
) -> Figure:
    """A figure with the MC stack, the data points and (with MC) a data/MC ratio panel."""
    import matplotlib

    with matplotlib.rc_context(mplhep.style.CMS):
        fig = Figure(figsize=(10, 10) if contents.mc else (10, 8))
        FigureCanvasAgg(fig)
        if contents.mc:
            ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0.06})
        else:
            ax, rax = fig.subplots(1, 1), None
        _main_panel(ax, contents, colors or {}, log=log)
        if rax is not None:
            _ratio_panel(rax, contents)
        (rax or ax).set_xlabel(contents.label)
        ax.set_xlim(contents.edges[0], contents.edges[-1])
        _cms_label(ax, label=label, data=contents.data is not None, lumi=lumi, year=year)
    return fig


def save_figure(fig: Figure, path: Path, *, formats: Sequence[str]) -> list[Path]:
    """Write ``path`` with each suffix in ``formats``; returns the files written."""
    import matplotlib

    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.rc_context(mplhep.style.CMS):
        for fmt in formats:
            target = path.with_suffix("." + fmt)
            fig.savefig(target, format=fmt, bbox_inches="tight")
            written.append(target)
    fig.clear()
    return written


def _main_panel(ax, c: StackContents, colors: Mapping[str, str], *, log: bool) -> None:
    edges, handles = c.edges, []
    if c.mc:
        names = list(c.mc)
        mplhep.histplot([c.mc[s] for s in names], bins=edges, stack=True, histtype="fill", label=names,
                        color=[colors.get(s) for s in names] if colors else None, ax=ax, flow="none")
        ax.stairs(c.mc_total + c.band_up, edges, baseline=c.mc_total - c.band_down, label="MC unc.", **BAND_STYLE)
    if c.data is not None:
        centers = 0.5 * (edges[1:] + edges[:-1])
        ax.errorbar(centers, c.data, yerr=c.data_errors, label="Data", **DATA_STYLE)
    handles, labels = ax.get_legend_handles_labels()
    by_label = dict(zip(labels, handles, strict=True))
    order = (["Data"] if "Data" in by_label else []) + list(reversed(c.mc)) + (["MC unc."] if c.mc else [])
    if c.mc:
        by_label["MC unc."] = Patch(**{k: v for k, v in BAND_STYLE.items() if k != "fill"}, fill=False)
    ax.legend([by_label[k] for k in order if k in by_label], [k for k in order if k in by_label],
              loc="upper right", fontsize="small")
    ax.set_ylabel(_ylabel(edges, c.label))
    top = max(_max(c.mc_total, c.band_up), _max(c.data, c.data_errors), 1e-9)
    if log:
        ax.set_yscale("log")
        positive = [a[a > 0].min() for a in (c.mc_total, c.data) if a is not None and (a > 0).any()]
        bottom = 0.5 * min(positive) if positive else 0.1
        ax.set_ylim(bottom, bottom * (top / bottom) ** 1.4)
    else:
        ax.set_ylim(0, top * 1.45)


def _ratio_panel(rax, c: StackContents) -> None:
    edges, total = c.edges, c.mc_total
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.where(total > 0, total, np.nan)
        rax.stairs(1 + c.band_up / safe, edges, baseline=1 - c.band_down / safe, **BAND_STYLE)
        rax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
        values = []
        if c.data is not None:
            ratio, err = c.data / safe, c.data_errors / safe
            shown = c.data > 0
            centers = 0.5 * (edges[1:] + edges[:-1])
            rax.errorbar(centers[shown], ratio[shown], yerr=err[shown], **DATA_STYLE)
            values = ratio[shown & np.isfinite(ratio)]
    rax.set_ylim(*_ratio_limits(np.asarray(values, dtype=float)))
    rax.set_ylabel("Data / MC")


def _ratio_limits(values: np.ndarray) -> tuple[float, float]:
    """0.5-1.5 unless most points fall outside: then a range around them."""
    if values.size == 0:
        return 0.5, 1.5
    lo, hi = np.percentile(values, [5, 95])
    if lo >= 0.5 and hi <= 1.5:
        return 0.5, 1.5
    span = max(hi - lo, 0.1 * max(abs(hi), 1e-3))
    return max(0.0, lo - 0.2 * span), hi + 0.2 * span


def _ylabel(edges: np.ndarray, label: str) -> str:
    widths = np.diff(edges)
    if widths.size and np.allclose(widths, widths[0]):
        unit = label.rsplit("[", 1)[1].rstrip("] ") if label.endswith("]") and "[" in label else ""
        return f"Events / {widths[0]:.3g}" + (f" {unit}" if unit else "")
    return "Events / bin"


def _max(values: np.ndarray | None, err: np.ndarray | None) -> float:
    if values is None or values.size == 0:
        return 0.0
    return float(np.nanmax(values + (err if err is not None else 0.0)))


def _cms_label(ax, *, label: str, data: bool, lumi: float | None, year: str | None) -> None:
    parts = [f"{lumi:.3g} fb$^{{-1}}$" if lumi is not None else None, year]
    right = ", ".join(p for p in parts if p) + " (13 TeV)"  # mplhep writes ', 2018' without a lumi
    kwargs = {"data": data, "rlabel": right, "ax": ax, "loc": 0}
    try:
        mplhep.cms.label(text=label, **kwargs)
    except TypeError:  # mplhep < 1.0 names it 'label'
        mplhep.cms.label(label=label, **kwargs)

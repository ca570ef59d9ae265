"""Draw a CMS-style data/MC plot from :class:`~highrate.outputs.plotting.contents.StackContents`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from highrate.outputs.plotting.contents import StackContents
from highrate.outputs.plotting.style import (
    BAND_STYLE,
    DATA_STYLE,
    Patch,
    cms_label,
    cms_style,
    mplhep,
    new_figure,
)


def draw_stack(
    contents: StackContents, *, colors: Mapping[str, str] | None = None, label: str = "Preliminary",
    lumi: float | None = None, year: str | None = None, log: bool = False,
) -> Any:
    """A figure with the MC stack, the data points and (with MC) a data/MC ratio panel."""
    with cms_style():
        fig = new_figure((10, 10) if contents.mc else (10, 8))
        if contents.mc:
            ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0.06})
        else:
            ax, rax = fig.subplots(1, 1), None
        _main_panel(ax, contents, colors or {}, log=log)
        if rax is not None:
            _ratio_panel(rax, contents)
        (rax or ax).set_xlabel(contents.label)
        ax.set_xlim(contents.edges[0], contents.edges[-1])
        cms_label(ax, label=label, data=contents.data is not None, lumi=lumi, year=year)
    return fig


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


RATIO_MAX = 2.5


def _ratio_limits(values: np.ndarray) -> tuple[float, float]:
    """0.5-1.5 unless most points fall outside: then a range around them, within 0-2.5 (a bin of
    almost no simulation must not squash the others to a line)."""
    if values.size == 0:
        return 0.5, 1.5
    lo, hi = np.percentile(values, [5, 95])
    if lo >= 0.5 and hi <= 1.5:
        return 0.5, 1.5
    span = max(hi - lo, 0.1 * max(abs(hi), 1e-3))
    return min(max(0.0, lo - 0.2 * span), 0.5), max(min(hi + 0.2 * span, RATIO_MAX), 1.5)


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

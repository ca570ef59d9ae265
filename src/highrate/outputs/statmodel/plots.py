"""Pre-/post-fit stacks per channel and the nuisance-parameter pulls, in the CMS style of the
data/MC plots (:mod:`highrate.outputs.plotting.style`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_style() -> Any:
    # matplotlib and mplhep are optional (highrate[fit]): imported when a plot is drawn, so that
    # the fit itself and the datacards work without them
    from highrate.outputs.plotting import style

    return style


def plot_channel(path: Path, *, edges: np.ndarray, keep: np.ndarray, samples: list[str], by_sample: np.ndarray,
                 band: np.ndarray, data: np.ndarray, title: str, xlabel: str, signal: str = "",
                 label: str = "Preliminary") -> None:
    """Stacked samples (largest background at the bottom, ``signal`` on top) with the uncertainty band of
    their sum, data points, and data/MC below.

    ``by_sample``, ``band`` and ``data`` hold the kept bins only (``keep`` is the mask on ``edges``).
    """
    style = plot_style()

    def full(a: np.ndarray) -> np.ndarray:
        out = np.zeros(len(edges) - 1)
        out[keep] = a
        return out

    colors = style.palette()
    with style.cms_style():
        fig = style.new_figure((10, 10))
        ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1), "hspace": 0.06})
        bottom = np.zeros(len(edges) - 1)
        ordered = sorted(zip(samples, by_sample, strict=True), key=lambda s: (s[0] == signal, -s[1].sum()))
        for i, (name, yields) in enumerate(ordered):
            y = full(yields)
            ax.stairs(bottom + y, edges, baseline=bottom, fill=True, label=name, color=colors[i % len(colors)])
            bottom = bottom + y
        err = full(band)
        ax.stairs(bottom + err, edges, baseline=bottom - err, label="Uncertainty", **style.BAND_STYLE)
        centres = 0.5 * (edges[1:] + edges[:-1])
        d = full(data)
        ax.errorbar(centres, d, yerr=np.sqrt(np.clip(d, 0, None)), label="Data", **style.DATA_STYLE)
        ax.set_ylabel("Events / bin")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(0, 1.45 * max(float(np.max(bottom + err, initial=0.0)), float(np.max(d, initial=0.0)), 1e-9))
        ax.legend(loc="upper right", fontsize="small", title=title, title_fontsize="small")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(bottom > 0, d / bottom, np.nan)
            rel = np.where(bottom > 0, err / bottom, 0.0)
            rerr = np.where(bottom > 0, np.sqrt(np.clip(d, 0, None)) / bottom, np.nan)
        rax.stairs(1 + rel, edges, baseline=1 - rel, **style.BAND_STYLE)
        rax.errorbar(centres, ratio, yerr=rerr, **style.DATA_STYLE)
        rax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
        rax.set_ylim(0.5, 1.5)
        rax.set_ylabel("Data / MC")
        rax.set_xlabel(xlabel)
        style.cms_label(ax, label=label, data=True)
    style.save_figure(fig, path, formats=(path.suffix.lstrip(".") or "png",))


def plot_pulls(path: Path, pulls: list[dict[str, Any]], *, include_staterror: bool = False,
               label: str = "Preliminary") -> None:
    """Pull ``(theta_hat - theta0) / sigma0`` with error bar ``sigma_hat / sigma0`` for each nuisance parameter."""
    style = plot_style()
    rows = [p for p in pulls if include_staterror or p["kind"] != "staterror"]
    with style.cms_style():
        fig = style.new_figure((8, 3.5 + 0.45 * max(len(rows), 1)))
        ax = fig.subplots(1, 1)
        y = np.arange(len(rows))
        ax.axvspan(-2, 2, color="#ffdf7f", alpha=0.8, linewidth=0)
        ax.axvspan(-1, 1, color="#85d1fb", alpha=0.8, linewidth=0)
        ax.axvline(0.0, color="gray", linestyle="--", linewidth=1)
        ax.errorbar([p["pull"] for p in rows], y, xerr=[p["constraint"] for p in rows], **style.DATA_STYLE)
        ax.set_yticks(y, [p["name"] for p in rows])
        ax.set_ylim(-1, max(len(rows), 1))
        ax.set_xlim(-3, 3)
        ax.set_xlabel(r"$(\hat\theta - \theta_0) / \Delta\theta$")
        hidden = len(pulls) - len(rows)
        if hidden:
            ax.text(0.98, 0.03, f"{hidden} MC-stat parameters in pulls.json", transform=ax.transAxes, ha="right",
                    va="bottom", fontsize="x-small")
        style.cms_label(ax, label=label, data=True)
    style.save_figure(fig, path, formats=(path.suffix.lstrip(".") or "png",))

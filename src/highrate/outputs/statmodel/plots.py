"""Pre-/post-fit stacks per channel and the nuisance-parameter pulls (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_channel(path: Path, *, edges: np.ndarray, keep: np.ndarray, samples: list[str], by_sample: np.ndarray,
                 band: np.ndarray, data: np.ndarray, title: str, xlabel: str, signal: str = "") -> None:
    """Stacked samples (largest background at the bottom, ``signal`` on top) with the uncertainty band of
    their sum, data points, and data/MC below.

    ``by_sample``, ``band`` and ``data`` hold the kept bins only (``keep`` is the mask on ``edges``).
    """
    plt = _pyplot()

    def full(a: np.ndarray) -> np.ndarray:
        out = np.zeros(len(edges) - 1)
        out[keep] = a
        return out

    fig, (ax, rax) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    try:
        bottom = np.zeros(len(edges) - 1)
        for name, yields in sorted(zip(samples, by_sample, strict=True), key=lambda s: (s[0] == signal, -s[1].sum())):
            y = full(yields)
            ax.stairs(bottom + y, edges, baseline=bottom, fill=True, label=name, alpha=0.8)
            bottom = bottom + y
        err = full(band)
        ax.stairs(bottom + err, edges, baseline=bottom - err, fill=False, hatch="///", color="gray", linewidth=0,
                  label="uncertainty")
        centres = 0.5 * (edges[1:] + edges[:-1])
        d = full(data)
        ax.errorbar(centres, d, yerr=np.sqrt(np.clip(d, 0, None)), fmt="ko", markersize=3, label="data")
        ax.set_ylabel("events / bin")
        ax.set_title(title)
        ax.legend(fontsize="small")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(bottom > 0, d / bottom, np.nan)
            rel = np.where(bottom > 0, err / bottom, 0.0)
            rerr = np.where(bottom > 0, np.sqrt(np.clip(d, 0, None)) / bottom, np.nan)
        rax.stairs(1 + rel, edges, baseline=1 - rel, fill=True, color="gray", alpha=0.4)
        rax.errorbar(centres, ratio, yerr=rerr, fmt="ko", markersize=3)
        rax.axhline(1.0, color="k", linewidth=0.8)
        rax.set_ylim(0.5, 1.5)
        rax.set_ylabel("data / MC")
        rax.set_xlabel(xlabel)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def plot_pulls(path: Path, pulls: list[dict[str, Any]], *, include_staterror: bool = False) -> None:
    """Pull ``(theta_hat - theta0) / sigma0`` with error bar ``sigma_hat / sigma0`` for each nuisance parameter."""
    plt = _pyplot()
    rows = [p for p in pulls if include_staterror or p["kind"] != "staterror"]
    fig, ax = plt.subplots(figsize=(6, 1.5 + 0.35 * max(len(rows), 1)))
    try:
        y = np.arange(len(rows))
        ax.axvspan(-2, 2, color="yellow", alpha=0.5)
        ax.axvspan(-1, 1, color="limegreen", alpha=0.5)
        ax.errorbar([p["pull"] for p in rows], y, xerr=[p["constraint"] for p in rows], fmt="ko")
        ax.set_yticks(y, [p["name"] for p in rows])
        ax.set_ylim(-1, max(len(rows), 1))
        ax.set_xlim(-3, 3)
        ax.set_xlabel(r"$(\hat\theta - \theta_0) / \Delta\theta$")
        hidden = len(pulls) - len(rows)
        ax.set_title("nuisance parameter pulls" + (f" ({hidden} MC-stat parameters in pulls.json)" if hidden else ""),
                     fontsize="small")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)

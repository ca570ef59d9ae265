"""The impacts (ranking) plot and the correlation-matrix plot, in the CMS style of the other plots
(:mod:`highrate.outputs.plotting.style`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from highrate.outputs.statmodel.plots import plot_style


def _number(value: float | None) -> float:
    return np.nan if value is None else value  # a failed fit: no bar


def plot_impacts(path: Path, rows: list[dict[str, Any]], *, poi: str = "mu", max_parameters: int = 20,
                 label: str = "Preliminary") -> None:
    """The largest impacts on ``poi`` (rows of :func:`~highrate.outputs.statmodel.ranking.ranking_dicts`):
    on the left each parameter's best-fit value with its post-fit uncertainty, on the right the shift
    of the POI when it is fixed at plus (blue) or minus (orange) its pre-fit (open) or post-fit
    (filled) uncertainty."""
    style = plot_style()
    shown = rows[:max_parameters][::-1]  # the largest on top
    y = np.arange(len(shown))
    colors = style.palette()
    with style.cms_style():
        fig = style.new_figure((13, 3.5 + 0.5 * max(len(shown), 1)))
        left, right = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": (1, 1.3), "wspace": 0.05})
        left.axvspan(-2, 2, color="#ffdf7f", alpha=0.8, linewidth=0)
        left.axvspan(-1, 1, color="#85d1fb", alpha=0.8, linewidth=0)
        left.axvline(0.0, color="gray", linestyle="--", linewidth=1)
        left.errorbar([r["postfit"] for r in shown], y, xerr=[r["postfit_uncertainty"] for r in shown],
                      **style.DATA_STYLE)
        left.set_xlim(-2.5, 2.5)
        left.set_xlabel(r"$\hat\theta$")
        left.set_yticks(y, [r["name"] for r in shown])
        left.set_ylim(-0.7, max(len(shown), 1) - 0.3)
        for side, color in (("up", colors[0]), ("down", colors[1])):
            sign = "+" if side == "up" else "-"
            right.barh(y, [_number(r[f"impact_prefit_{side}"]) for r in shown], height=0.7, fill=False, edgecolor=color,
                       linewidth=1.2, label=rf"pre-fit, $\hat\theta {sign} \Delta\theta$")
            right.barh(y, [_number(r[f"impact_postfit_{side}"]) for r in shown], height=0.7, color=color, alpha=0.8,
                       label=rf"post-fit, $\hat\theta {sign} \sigma_{{\hat\theta}}$")
        right.axvline(0.0, color="gray", linewidth=1)
        span = max([abs(v) for r in shown for k, v in r.items() if k.startswith("impact_") and v is not None] + [1e-6])
        right.set_xlim(-1.3 * span, 1.3 * span)
        right.set_xlabel(rf"$\Delta\hat\{poi}$" if poi == "mu" else rf"$\Delta$ {poi}")
        right.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize="x-small", frameon=False)
        style.cms_label(left, label=label, data=True)
    style.save_figure(fig, path, formats=(path.suffix.lstrip(".") or "png",))


def plot_correlations(path: Path, names: list[str], correlations: np.ndarray, *, label: str = "Preliminary") -> None:
    """The correlation matrix of the parameters ``names`` (the values written in each cell)."""
    style = plot_style()
    n = len(names)
    with style.cms_style():
        fig = style.new_figure((max(9.0, 4 + 0.6 * n), max(8.0, 3 + 0.6 * n)))
        ax = fig.subplots(1, 1)
        image = ax.imshow(correlations, cmap="RdBu_r", vmin=-1, vmax=1)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="correlation")
        ax.set_xticks(range(n), names, rotation=90)
        ax.set_yticks(range(n), names)
        ax.tick_params(which="minor", length=0)
        if n <= 25:
            for i in range(n):
                for j in range(n):
                    c = correlations[i, j]
                    ax.text(j, i, f"{c:.2f}", ha="center", va="center", fontsize="xx-small",
                            color="white" if abs(c) > 0.6 else "black")
        style.cms_label(ax, label=label, data=True)
    style.save_figure(fig, path, formats=(path.suffix.lstrip(".") or "png",))

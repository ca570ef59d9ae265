"""The CMS style (mplhep) of every highrate plot: data/MC stacks, 2D maps, fit plots and pulls.

Figures are plain :class:`matplotlib.figure.Figure` objects on the non-interactive Agg canvas:
never registered with pyplot, so nothing stays open once they are saved, and no backend is
chosen for the user's own plots. Importing this module without matplotlib and mplhep raises
:class:`~highrate.errors.MissingExtraError` naming ``highrate[plot]``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from highrate.base.optional import require

matplotlib = require("matplotlib", "plot", purpose="plotting")
mplhep = require("mplhep", "plot", purpose="plotting")
Figure = require("matplotlib.figure", "plot", purpose="plotting").Figure
FigureCanvasAgg = require("matplotlib.backends.backend_agg", "plot", purpose="plotting").FigureCanvasAgg
Patch = require("matplotlib.patches", "plot", purpose="plotting").Patch

DATA_STYLE = {"fmt": "o", "color": "black", "markersize": 5, "linewidth": 1.5, "capsize": 0}
BAND_STYLE = {"fill": True, "facecolor": "none", "edgecolor": "dimgray", "hatch": "////", "linewidth": 0}


@contextlib.contextmanager
def cms_style() -> Iterator[None]:
    """matplotlib's settings of the CMS style for the block (artists read them when created)."""
    with matplotlib.rc_context(mplhep.style.CMS):
        yield


def new_figure(figsize: tuple[float, float] = (10, 8)) -> Any:
    """A figure on the Agg canvas; create and draw it inside :func:`cms_style`."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def palette() -> list[str]:
    """The colours of the CMS style's colour cycle."""
    cycle = mplhep.style.CMS.get("axes.prop_cycle")
    colors = [c["color"] for c in cycle] if cycle is not None else []
    return colors or ["#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6", "#a96b59"]


def cms_label(ax: Any, *, label: str = "Preliminary", data: bool = True, lumi: float | None = None,
              year: str | None = None, energy: str = "13 TeV", fontsize: float | None = None) -> None:
    """'CMS Preliminary' on the left, ``lumi fb⁻¹, year (13 TeV)`` on the right of ``ax``."""
    parts = [f"{lumi:.3g} fb$^{{-1}}$" if lumi is not None else None, year]
    right = ", ".join(p for p in parts if p) + f" ({energy})"  # mplhep writes ', 2018' without a lumi
    kwargs: dict[str, Any] = {"data": data, "rlabel": right, "ax": ax, "loc": 0}
    if fontsize is not None:
        kwargs["fontsize"] = fontsize
    try:
        mplhep.cms.label(text=label, **kwargs)
    except TypeError:  # mplhep < 1.0 names it 'label'
        mplhep.cms.label(label=label, **kwargs)


def save_figure(fig: Any, path: Path, *, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Write ``path`` with each suffix in ``formats``, then clear ``fig``; returns the files written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with cms_style():
        for fmt in formats:
            target = path.with_suffix("." + fmt)
            fig.savefig(target, format=fmt, bbox_inches="tight")
            written.append(target)
    fig.clear()
    return written

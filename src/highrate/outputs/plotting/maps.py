"""Draw a 2D histogram (:class:`~highrate.outputs.plotting.contents.MapContents`) in the CMS style."""

from __future__ import annotations

from typing import Any

from highrate.outputs.plotting.contents import MapContents
from highrate.outputs.plotting.style import cms_label, cms_style, new_figure


def draw_map(contents: MapContents, *, data: bool, label: str = "Preliminary", lumi: float | None = None,
             year: str | None = None, title: str = "") -> Any:
    """A figure of the bin contents as colours, with a colour bar.

    ``data`` says whether the contents are data (the CMS label reads so), ``title`` goes on the
    colour bar (``"MC"``, ``"Data"``).
    """
    with cms_style():
        fig = new_figure((12, 9))
        ax = fig.subplots(1, 1)
        # pcolormesh as mplhep's hist2dplot draws it, without hist2dplot: that registers every
        # figure with pyplot (plt.sca), which keeps them all open
        mesh = ax.pcolormesh(contents.xedges, contents.yedges, contents.values.T)
        bar = fig.colorbar(mesh, ax=ax)
        bar.set_label(f"{title} events / bin".strip())
        ax.set_xlabel(contents.xlabel)
        ax.set_ylabel(contents.ylabel)
        cms_label(ax, label=label, data=data, lumi=lumi, year=year, fontsize=18)  # the colour bar narrows the axes
    return fig

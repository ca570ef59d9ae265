"""``highrate fit``: workspace, fit, pulls, plots and Combine datacards from an output folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from highrate.base.optional import require
from highrate.errors import ConfigError
from highrate.outputs.statmodel.datacard import check_names, write_datacards
from highrate.outputs.statmodel.fit import (
    expected_with_band,
    fit,
    prefit_uncertainties,
    pulls,
    result_dict,
)
from highrate.outputs.statmodel.inputs import load_inputs
from highrate.outputs.statmodel.plots import plot_channel, plot_pulls
from highrate.outputs.statmodel.workspace import build_spec, kept_bins


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n")


def run_fit(
    outdir: str | Path, *, histogram: str, signal: str, categories: list[str] | None = None,
    output: str | Path | None = None, lumi_uncertainty: float = 0.025, asimov: bool = False,
    plots: bool = True, significance: bool = False,
) -> dict[str, Any]:
    """Build the workspace of ``histogram``, fit ``mu`` of ``signal`` and write everything to ``output``.

    ``output`` defaults to ``outdir/fit``; ``significance`` adds the asymptotic discovery significance
    (one more fit). Returns the content of ``fit_results.json``.
    """
    if not lumi_uncertainty >= 0:
        raise ConfigError(f"--lumi-uncertainty must be 0 or more (0.025 = 2.5%), got {lumi_uncertainty}.")
    purpose = "highrate fit" + (" with its plots" if plots else "")
    pyhf = require("pyhf", "fit", purpose=purpose)
    require("iminuit", "fit", purpose=purpose)
    if plots:  # checked before the fit, which may take minutes
        require("matplotlib", "fit", purpose=purpose)
        require("mplhep", "fit", purpose=purpose)
    inputs = load_inputs(outdir, histogram, signal, categories=categories, asimov=asimov)
    check_names(inputs)  # before the fit, not after
    out = Path(output) if output is not None else Path(outdir) / "fit"
    out.mkdir(parents=True, exist_ok=True)
    spec = build_spec(inputs, lumi_uncertainty=lumi_uncertainty)
    workspace = pyhf.Workspace(spec)  # validates against the schema
    _write_json(out / "workspace.json", spec)
    model = workspace.model()
    result = fit(workspace, significance=significance)
    masked = {ch.name: int((~kept_bins(ch)).sum()) for ch in inputs.channels}
    summary = result_dict(model, result, histogram=histogram, signal=signal,
                          channels=[ch.name for ch in inputs.channels], asimov=asimov,
                          data_datasets=inputs.data_datasets, lumi_uncertainty=lumi_uncertainty,
                          bins_left_out=masked, converged=bool(np.all(np.isfinite(result.uncertainties))))
    _write_json(out / "fit_results.json", summary)
    nps = pulls(model, result)
    _write_json(out / "pulls.json", nps)
    write_datacards(out, inputs, lumi_uncertainty=lumi_uncertainty)
    if plots:
        plot_pulls(out / "pulls.png", nps)
        _plot_channels(out, inputs, model, workspace, result)
    return summary


def _plot_channels(out: Path, inputs: Any, model: Any, workspace: Any, result: Any) -> None:
    prefit_pars = np.asarray(model.config.suggested_init(), dtype=float)
    prefit_cov = np.diag(prefit_uncertainties(model) ** 2)
    stages = {"prefit": (prefit_pars, prefit_cov), "postfit": (result.values, result.covariance())}
    data = np.asarray(workspace.data(model, include_auxdata=False), dtype=float)
    for stage, (pars, cov) in stages.items():
        by_sample, _, band = expected_with_band(model, pars, cov)
        for ch in inputs.channels:
            sl = model.config.channel_slices[ch.name]
            title = f"{inputs.histogram}, {ch.name}: {stage}"
            if stage == "postfit":
                title += rf" ($\mu$ = {result.mu:.3f} $\pm$ {result.mu_uncertainty:.3f})"
            plot_channel(out / f"{stage}_{ch.name}.png", edges=ch.edges, keep=kept_bins(ch),
                         samples=list(model.config.samples), by_sample=by_sample[:, sl], band=band[sl],
                         data=data[sl], title=title + (" (Asimov)" if inputs.asimov else ""),
                         xlabel=ch.label or inputs.histogram, signal=inputs.signal)

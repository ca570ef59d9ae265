"""``highrate fit``: the cabinetry model, the fit, ranking, plots, Combine datacards and a HEPData
submission from an output folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from highrate.base.optional import require
from highrate.errors import ConfigError
from highrate.outputs.statmodel.cabinetry_config import build_spec
from highrate.outputs.statmodel.datacard import check_names, write_datacards
from highrate.outputs.statmodel.fit import (
    FitResult,
    fit_model,
    fit_result,
    model_and_data,
    parameter_kinds,
    pulls,
    result_dict,
)
from highrate.outputs.statmodel.hepdata import (
    fit_tables,
    hepdata_lib,
    region_table,
    write_submission,
)
from highrate.outputs.statmodel.inputs import FitInputs, load_inputs
from highrate.outputs.statmodel.ranking import ranking, ranking_dicts
from highrate.outputs.statmodel.yields import RegionYields, region_yields


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n")


def run_fit(
    outdir: str | Path, *, signal: str, histogram: str | None = None, categories: list[str] | None = None,
    regions: dict[str, str] | None = None, output: str | Path | None = None, lumi_uncertainty: float = 0.025,
    asimov: bool = False, plots: bool = True, significance: bool = False, impacts: bool = True,
    hepdata: str | Path | bool = True,
) -> dict[str, Any]:
    """Build the model of the regions, fit ``mu`` of ``signal`` and write everything to ``output``.

    The regions are ``histogram`` in ``categories`` (default: all) or ``regions``, ``{category:
    histogram}``. ``output`` defaults to ``outdir/fit``; ``significance`` adds the asymptotic
    discovery significance; ``impacts`` the ranking (four fits per nuisance parameter); ``hepdata``
    is where the HEPData submission goes (``True``: ``output/hepdata``, ``False``: none).
    Returns the content of ``fit_results.json``.
    """
    if not lumi_uncertainty >= 0:
        raise ConfigError(f"--lumi-uncertainty must be 0 or more (0.025 = 2.5%), got {lumi_uncertainty}.")
    purpose = "highrate fit" + (" with its plots" if plots else "")
    for module in ("pyhf", "iminuit", "cabinetry") + (("matplotlib", "mplhep") if plots else ()):
        require(module, "fit", purpose=purpose)  # checked before the fit, which may take minutes
    if hepdata is not False:
        hepdata_lib(purpose)
    inputs = load_inputs(outdir, histogram, signal, categories=categories, regions=regions, asimov=asimov)
    check_names(inputs)  # before the fit, not after
    out = Path(output) if output is not None else Path(outdir) / "fit"
    out.mkdir(parents=True, exist_ok=True)
    spec, config = build_spec(inputs, lumi_uncertainty=lumi_uncertainty, folder=out / "templates",
                               source=str(Path(outdir).resolve()))
    _write_json(out / "workspace.json", spec)
    (out / "cabinetry.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    model, data = model_and_data(spec, asimov=asimov)
    result = fit_result(model, data, fit_model(model, data), significance=significance)
    ranked = ranking_dicts(ranking(model, data, result)) if impacts else []
    summary = result_dict(model, result, histogram=inputs.histogram, regions=inputs.regions, signal=signal,
                          channels=[ch.name for ch in inputs.channels], asimov=asimov,
                          data_datasets=inputs.data_datasets, alternate_samples=inputs.alternates,
                          symmetrized=inputs.symmetrized(),
                          lumi_uncertainty=lumi_uncertainty,
                          bins_left_out={ch.name: int((~ch.kept()).sum()) for ch in inputs.channels},
                          converged=bool(np.all(np.isfinite(result.uncertainties))), ranking=ranked)
    _write_json(out / "fit_results.json", summary)
    nps = pulls(model, result)
    _write_json(out / "pulls.json", nps)
    write_datacards(out, inputs, lumi_uncertainty=lumi_uncertainty)
    yields = region_yields(model, data, result.cabinetry, inputs.channels)
    correlations = _systematic_correlations(model, result)
    if plots:
        _plots(out, inputs, result, nps, ranked, correlations, yields)
    if hepdata is not False:
        _hepdata(out, Path(hepdata) if hepdata is not True else out / "hepdata", inputs, summary, nps, ranked,
                 correlations, yields)
    return summary


def _systematic_correlations(model: Any, result: FitResult) -> tuple[list[str], np.ndarray]:
    """The POI and the systematic parameters (not the per-bin MC statistics), their correlations."""
    rows = [i for i, k in enumerate(parameter_kinds(model)) if k in ("poi", "systematic", "normfactor")]
    return [result.names[i] for i in rows], result.correlations[np.ix_(rows, rows)]


def _plots(out: Path, inputs: FitInputs, result: FitResult, nps: list[dict[str, Any]], ranked: list[dict[str, Any]],
           correlations: tuple[list[str], np.ndarray], yields: list[RegionYields]) -> None:
    from highrate.outputs.statmodel.impact_plots import plot_correlations, plot_impacts
    from highrate.outputs.statmodel.plots import plot_channel, plot_pulls

    plot_pulls(out / "pulls.png", nps)
    if ranked:
        plot_impacts(out / "impacts.png", ranked, poi=result.poi)
    plot_correlations(out / "correlations.png", *correlations)
    for ry in yields:
        ch = ry.channel
        for stage, y in ry.stages.items():
            title = f"{ch.histogram}, {ch.name}: {stage}"
            if stage == "postfit":
                title += rf" ($\mu$ = {result.mu:.3f} $\pm$ {result.mu_uncertainty:.3f})"
            plot_channel(out / f"{stage}_{ch.name}.png", edges=ch.edges, keep=ry.keep, samples=y.samples,
                         by_sample=y.by_sample, band=y.uncertainty, data=ry.data,
                         title=title + (" (Asimov)" if inputs.asimov else ""), xlabel=ch.label or ch.histogram,
                         signal=inputs.signal)


def _hepdata(out: Path, folder: Path, inputs: FitInputs, summary: dict[str, Any], nps: list[dict[str, Any]],
             ranked: list[dict[str, Any]], correlations: tuple[list[str], np.ndarray],
             yields: list[RegionYields]) -> None:
    lib = hepdata_lib()
    tables = [region_table(lib, ry, asimov=inputs.asimov, images=[out / f"{stage}_{ry.channel.name}.png"
                                                                   for stage in ry.stages]) for ry in yields]
    tables += fit_tables(lib, summary, nps, ranked, correlations)
    comment = (f"highrate fit of the signal strength of {inputs.signal} in "
               + ", ".join(f"{c} ({h})" for c, h in inputs.regions.items()) + ".")
    write_submission(folder, tables, resources=[("pyhf workspace (HistFactory JSON)", out / "workspace.json")],
                     comment=comment)

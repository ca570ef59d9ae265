"""The impact of each nuisance parameter on ``mu`` (the ranking), by cabinetry's definition.

As ``cabinetry.fit.ranking``: the shift of the best-fit POI when the parameter is fixed at its
best-fit value plus or minus its pre-fit uncertainty (pre-fit impact) or its post-fit uncertainty
(post-fit impact) and the others are fitted again — four fits per parameter, each with
``cabinetry.fit.fit`` (started from the best fit, which is faster and fails less often than
cabinetry's start from the initial values; that start is the fallback). Unlike ``cabinetry.fit.ranking``, which ranks every parameter, only the
systematic ones are ranked: the per-bin MC-statistics parameters would cost four fits each (a
hundred-bin histogram, four hundred fits) for impacts that are each small. A parameter that
changes no expected yield (a variation identical to the nominal, e.g. a jet energy scale in a
histogram of muons) has impact 0 without a fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from highrate.base.optional import require
from highrate.outputs.statmodel.fit import FitError, FitResult, fit_model, parameter_kinds


def ranking(model: Any, data: Any, result: FitResult) -> Any:
    """``cabinetry.fit.RankingResults`` of the systematic nuisance parameters (in model order)."""
    cabinetry = require("cabinetry", "fit", purpose="the ranking")
    sigma0 = cabinetry.model_utils.prefit_uncertainties(model)
    init = list(model.config.suggested_init())
    fixed = list(model.config.suggested_fixed())
    rows, impacts = [], []
    for i, kind in enumerate(parameter_kinds(model)):
        if kind != "systematic" or fixed[i] or sigma0[i] <= 0:
            continue
        best, sigma = float(result.values[i]), float(result.uncertainties[i])
        inert = _inert(model, result.values, i, sigma0[i])
        shifts = []
        for value in (best + sigma0[i], best - sigma0[i], best + sigma, best - sigma):
            if value == best or inert:
                shifts.append(0.0)
                continue
            shifts.append(_shifted_poi(model, data, result, i, float(value), init, fixed) - result.mu)
        rows.append(i)
        impacts.append(shifts)
    table = np.asarray(impacts, dtype=float).reshape(-1, 4)
    return cabinetry.fit.RankingResults(result.values[rows], result.uncertainties[rows],
                                        [result.names[i] for i in rows], *table.T)


def _shifted_poi(model: Any, data: Any, result: FitResult, i: int, value: float, init: list[float],
                 fixed: list[bool]) -> float:
    """The POI of the fit with parameter ``i`` fixed at ``value``: started from the best fit (Minuit
    strategy 0, which finds the POI as well as 1 in half the time), else from the model's initial
    values as ``cabinetry.fit.ranking`` does (strategy 1); NaN when both fail (the likelihood can be
    undefined there: a template extrapolated below zero)."""
    fix = list(fixed)
    fix[i] = True
    for start, strategy in ((result.values, 0), (init, 1)):
        pars = [float(v) for v in start]
        pars[i] = value
        try:
            shifted = fit_model(model, data, minos=False, strategies=(strategy,), init_pars=pars, fix_pars=fix)
        except FitError:
            continue
        return float(shifted.bestfit[result.poi_index])
    return float("nan")


def _inert(model: Any, values: np.ndarray, i: int, step: float) -> bool:
    """Whether parameter ``i`` leaves every expected yield as it is (at the best fit, +- ``step``)."""
    expected = [np.asarray(model.main_model.expected_data(values + d * step * (np.arange(len(values)) == i)))
                for d in (0.0, 1.0, -1.0)]
    return all(np.array_equal(expected[0], e) for e in expected[1:])


def ranking_dicts(ranked: Any) -> list[dict[str, Any]]:
    """The ranking as JSON-ready rows, largest post-fit impact first; an impact whose fit failed is None."""
    def number(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    rows = [{"name": name, "postfit": float(v), "postfit_uncertainty": float(u),
             "impact_prefit_up": number(a), "impact_prefit_down": number(b),
             "impact_postfit_up": number(c), "impact_postfit_down": number(d)}
            for name, v, u, a, b, c, d in zip(ranked.labels, ranked.bestfit, ranked.uncertainty, ranked.prefit_up,
                                              ranked.prefit_down, ranked.postfit_up, ranked.postfit_down, strict=True)]
    return sorted(rows, key=lambda r: -max(abs(r["impact_postfit_up"] or 0.0), abs(r["impact_postfit_down"] or 0.0)))

"""The maximum-likelihood fit of a pyhf workspace with cabinetry: best-fit values, Hesse
uncertainties, correlations, the MINOS interval of ``mu``, goodness of fit, pulls, significance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from highrate.base.optional import require
from highrate.errors import HighrateError
from highrate.outputs.statmodel.cabinetry_config import quiet_cabinetry


@dataclass
class FitResult:
    """Best-fit parameters (one entry per pyhf parameter, vectors unrolled) and the likelihood."""

    names: list[str]
    values: np.ndarray
    uncertainties: np.ndarray
    correlations: np.ndarray
    twice_nll: float
    poi: str
    poi_index: int
    interval: dict[str, Any] = field(default_factory=dict)
    significance: dict[str, Any] = field(default_factory=dict)
    goodness_of_fit: float | None = None  # p-value of the saturated-model test, when computed
    cabinetry: Any = None  # the cabinetry.fit.FitResults it was made of

    @property
    def mu(self) -> float:
        return float(self.values[self.poi_index])

    @property
    def mu_uncertainty(self) -> float:
        return float(self.uncertainties[self.poi_index])


class FitError(HighrateError, RuntimeError):
    """The maximum-likelihood fit did not converge."""


def model_and_data(workspace: Any, *, asimov: bool = False) -> tuple[Any, Any]:
    """cabinetry's model (HistFactory interpolation codes 4 and 4p) and data (with auxiliary data)."""
    cabinetry = require("cabinetry", "fit", purpose="the fit")
    return cabinetry.model_utils.model_and_data(dict(workspace), asimov=asimov)


def fit_model(model: Any, data: Any, *, minos: bool = True, strategies: tuple[int, ...] = (1, 2), **options: Any) -> Any:
    """``cabinetry.fit.fit`` (Migrad, Hesse; MINOS for the POI and the goodness of fit with
    ``minos``) with the first Minuit strategy of ``strategies``, retried with the next when it
    fails; :class:`FitError` when all fail."""
    cabinetry = require("cabinetry", "fit", purpose="the fit")
    pyhf = require("pyhf", "fit", purpose="the fit")
    failure: Exception | None = None
    with quiet_cabinetry():
        for strategy in strategies:
            try:
                return cabinetry.fit.fit(model, data, minos=[model.config.poi_name] if minos else None,
                                         goodness_of_fit=minos, strategy=strategy, **options)
            except pyhf.exceptions.FailedMinimization as err:
                failure = err
    raise FitError(f"the maximum-likelihood fit did not converge: {str(failure).splitlines()[0]}")


def fit(workspace: Any, *, interval: bool = True, significance: bool = False, asimov: bool = False) -> FitResult:
    """Fit the workspace's data (or its Asimov data set) with cabinetry.

    ``interval``: the 68% MINOS (profile-likelihood) interval of the POI and the goodness of fit;
    ``significance``: the asymptotic discovery significance of the POI > 0 (more fits).
    """
    model, data = model_and_data(workspace, asimov=asimov)
    return fit_result(model, data, fit_model(model, data, minos=interval), significance=significance)


def fit_result(model: Any, data: Any, res: Any, *, significance: bool = False) -> FitResult:
    """:class:`FitResult` of a ``cabinetry.fit.FitResults``."""
    poi, index = model.config.poi_name, model.config.poi_index
    out = FitResult(list(res.labels), np.asarray(res.bestfit, float), np.asarray(res.uncertainty, float),
                    np.asarray(res.corr_mat, float), float(res.best_twice_nll), poi, index,
                    cabinetry=res)
    gof = float(res.goodness_of_fit)
    out.goodness_of_fit = gof if 0 <= gof <= 1 else None  # -1: not computed, NaN: no degrees of freedom
    if poi in res.minos_uncertainty:
        lo, hi = res.minos_uncertainty[poi]
        lower, upper = model.config.suggested_bounds()[index]
        out.interval = {"method": "MINOS (profile likelihood, -2 Delta ln L = 1)", "lower": out.mu + lo,
                        "upper": out.mu + hi, "lower_at_bound": bool(np.isclose(out.mu + lo, lower)),
                        "upper_at_bound": bool(np.isclose(out.mu + hi, upper))}
    if significance:
        out.significance = discovery_significance(model, data)
    return out


def discovery_significance(model: Any, data: Any) -> dict[str, Any]:
    """``cabinetry.fit.significance``: observed and expected asymptotic significance (q0)."""
    cabinetry = require("cabinetry", "fit", purpose="the fit")
    try:
        with quiet_cabinetry():
            s = cabinetry.fit.significance(model, data)
    except Exception as err:  # a failed fit is reported, not fatal
        return {"error": str(err)}
    return {"z": float(s.observed_significance), "p0": float(s.observed_p_value),
            "expected_z": float(s.expected_significance), "expected_p0": float(s.expected_p_value),
            "method": "asymptotic, q0 (cabinetry.fit.significance)"}


def modifier_types(model: Any) -> dict[str, str]:
    """parameter set -> its modifier type (``normfactor``, ``normsys``, ``histosys``, ``staterror``...)."""
    return {name: kind for name, kind in model.config.modifiers}


def parameter_kinds(model: Any) -> list[str]:
    """Per parameter: ``poi``, ``staterror`` (MC statistics), ``normfactor`` or ``systematic``."""
    types = modifier_types(model)
    out = []
    for name in model.config.par_order:
        kind = types.get(name, "")
        k = "poi" if name == model.config.poi_name else kind if kind in ("staterror", "normfactor") else "systematic"
        out += [k] * model.config.param_set(name).n_parameters
    return out


def pulls(model: Any, result: FitResult) -> list[dict[str, Any]]:
    """Constrained parameters: pre-fit ``theta0 +- sigma0``, post-fit value, pull and constraint."""
    cabinetry = require("cabinetry", "fit", purpose="the fit")
    theta0 = cabinetry.model_utils.asimov_parameters(model)
    sigma0 = cabinetry.model_utils.prefit_uncertainties(model)
    out = []
    for i, (name, kind) in enumerate(zip(result.names, parameter_kinds(model), strict=True)):
        if sigma0[i] <= 0:
            continue  # unconstrained (mu) or fixed
        value, unc = float(result.values[i]), float(result.uncertainties[i])
        out.append({"name": name, "kind": kind, "prefit": float(theta0[i]), "prefit_uncertainty": float(sigma0[i]),
                    "postfit": value, "postfit_uncertainty": unc, "pull": (value - theta0[i]) / sigma0[i],
                    "constraint": unc / sigma0[i]})
    return out


def result_dict(model: Any, result: FitResult, **extra: Any) -> dict[str, Any]:
    """``fit_results.json``: every parameter, the POI, the NLL, the interval and significance."""
    return {
        "poi": result.poi,
        "mu": result.mu,
        "mu_uncertainty": result.mu_uncertainty,
        "mu_interval": result.interval,
        "significance": result.significance,
        "goodness_of_fit": {"p_value": result.goodness_of_fit, "method": "saturated model (cabinetry)"},
        "twice_nll": result.twice_nll,
        "nll": 0.5 * result.twice_nll,
        "parameter_names": result.names,
        "parameters": {n: {"value": float(v), "uncertainty": float(u)}
                       for n, v, u in zip(result.names, result.values, result.uncertainties, strict=True)},
        "correlations": result.correlations.tolist(),
        "n_parameters": len(result.names),
        "n_bins": int(sum(model.config.channel_nbins.values())),
        "backend": "cabinetry + pyhf (numpy, Minuit: Migrad, Hesse, MINOS for the POI)",
        **extra,
    }

"""Maximum-likelihood fit of a pyhf workspace: best-fit values, uncertainties, pulls, mu interval."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from highrate.base.optional import require
from highrate.errors import HighrateError


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

    @property
    def mu(self) -> float:
        return float(self.values[self.poi_index])

    @property
    def mu_uncertainty(self) -> float:
        return float(self.uncertainties[self.poi_index])

    def covariance(self) -> np.ndarray:
        return self.correlations * np.outer(self.uncertainties, self.uncertainties)


class FitError(HighrateError, RuntimeError):
    """The maximum-likelihood fit did not converge."""


@contextlib.contextmanager
def _quiet_pyhf() -> Iterator[None]:
    """Silence pyhf's log of a failed minimisation (it is retried or reported as a FitError)."""
    logger = logging.getLogger("pyhf.optimize.mixins")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def minuit_backend(tolerance: float = 1e-3) -> Iterator[None]:
    """pyhf's numpy backend with the Minuit optimizer, the previous backend restored afterwards."""
    pyhf = require("pyhf", "fit", purpose="the fit")
    require("iminuit", "fit", purpose="the fit")  # pyhf's minuit optimizer imports it only when it runs
    previous = pyhf.get_backend()
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=tolerance))
    try:
        yield
    finally:
        pyhf.set_backend(*previous)


def parameter_names(model: Any) -> list[str]:
    """One name per parameter in pyhf's order: ``mu``, ``JES``, ``staterror_baseline[3]``, ..."""
    return list(model.config.par_names)


def fit(workspace: Any, *, interval: bool = True, significance: bool = False) -> FitResult:
    """Fit the workspace's observed data (with its auxiliary data) with Minuit; Hesse uncertainties.

    ``interval``: also the 68% profile-likelihood interval of the POI (where -2 Delta log L = 1);
    ``significance``: the asymptotic discovery significance sqrt(q0) of the POI > 0 (one more fit,
    at mu = 0, slow for models with many bins: off by default).
    """
    pyhf = require("pyhf", "fit", purpose="the fit")
    model = workspace.model()
    data = workspace.data(model)
    with minuit_backend(), _quiet_pyhf():
        best = None
        for strategy in (1, 2):
            try:
                best, corr, twice_nll, _ = pyhf.infer.mle.fit(
                    data, model, return_uncertainties=True, return_correlations=True, return_fitted_val=True,
                    return_result_obj=True, strategy=strategy,
                )
                break
            except pyhf.exceptions.FailedMinimization as err:
                failure = err
        if best is None:
            raise FitError(f"the maximum-likelihood fit did not converge: {str(failure).splitlines()[0]}")
        result = FitResult(parameter_names(model), np.asarray(best[:, 0], float), np.asarray(best[:, 1], float),
                           np.asarray(corr, float), float(twice_nll), model.config.poi_name, model.config.poi_index)
        if interval:
            result.interval = profile_interval(model, data, result)
        if significance:
            result.significance = discovery_significance(model, data, result)
    return result


def _fixed_twice_nll(model: Any, data: Any, mu: float) -> float:
    pyhf = require("pyhf", "fit", purpose="the fit")
    # Migrad strategy 0 is fast and, for the value of the minimum, good enough; strategy 1 if it fails.
    # (Starting from the best fit is no faster: Migrad's first steps are then badly scaled.)
    try:
        _, value = pyhf.infer.mle.fixed_poi_fit(mu, data, model, return_fitted_val=True, strategy=0)
    except pyhf.exceptions.FailedMinimization:
        _, value = pyhf.infer.mle.fixed_poi_fit(mu, data, model, return_fitted_val=True, strategy=1)
    return float(value)


def profile_interval(model: Any, data: Any, result: FitResult, *, level: float = 1.0,
                     tolerance: float = 1e-3) -> dict[str, Any]:
    """The POI values where ``-2 Delta ln L = level`` on each side of the best fit.

    Secant steps on the signed root ``sqrt(-2 Delta ln L)``, nearly linear in the POI: a few
    fixed-POI fits per side. A side that reaches the POI's bound reports the bound.
    """
    lo_bound, hi_bound = model.config.suggested_bounds()[result.poi_index]
    mu_hat, sigma = result.mu, max(result.mu_uncertainty, 1e-9)
    target = float(np.sqrt(level))
    scan: dict[float, float] = {mu_hat: 0.0}

    def root(mu: float) -> float:
        if mu not in scan:
            scan[mu] = max(_fixed_twice_nll(model, data, mu) - result.twice_nll, 0.0)
        return float(np.sqrt(scan[mu]))

    def crossing(direction: int) -> tuple[float, bool]:
        bound = hi_bound if direction > 0 else lo_bound
        a, ga = mu_hat, 0.0
        b = float(np.clip(mu_hat + direction * sigma * target, lo_bound, hi_bound))
        if b == a:
            return float(bound), True
        gb = root(b)
        for _ in range(12):
            if abs(gb - target) < tolerance * max(target, 1.0):
                return b, False
            slope = (gb - ga) / (b - a) if gb != ga else direction / sigma
            new = b + (target - gb) / slope
            if direction * (new - mu_hat) <= 0:  # a wild step: halve towards the best fit instead
                new = 0.5 * (mu_hat + b)
            new = float(np.clip(new, lo_bound, hi_bound))
            if new == bound and new == b:
                return float(bound), True
            a, ga, b = b, gb, new
            gb = root(b)
            if b == bound and gb < target:
                return float(bound), True
        raise RuntimeError("the profile-likelihood interval did not converge")

    try:
        lower, lower_at_bound = crossing(-1)
        upper, upper_at_bound = crossing(+1)
    except Exception as err:  # a fit that failed on the way is reported, not fatal
        return {"method": "profile likelihood", "error": str(err)}
    return {"method": f"profile likelihood, -2 Delta ln L = {level:g}", "lower": lower, "upper": upper,
            "lower_at_bound": lower_at_bound, "upper_at_bound": upper_at_bound,
            "scan": [{"mu": m, "delta_twice_nll": v} for m, v in sorted(scan.items())]}


def discovery_significance(model: Any, data: Any, result: FitResult) -> dict[str, Any]:
    """Asymptotic significance of the POI against 0: ``q0 = -2 ln L(0) / L(mu_hat)`` for ``mu_hat > 0``."""
    try:
        q0 = _fixed_twice_nll(model, data, 0.0) - result.twice_nll if result.mu > 0 else 0.0
    except Exception as err:  # a failed fit is reported, not fatal
        return {"error": str(err)}
    z = math.sqrt(max(q0, 0.0))
    return {"q0": q0, "z": z, "p0": 0.5 * math.erfc(z / math.sqrt(2)), "method": "asymptotic, q0"}


def pulls(model: Any, result: FitResult) -> list[dict[str, Any]]:
    """Constrained parameters: pre-fit ``theta0 +- sigma0``, post-fit value, pull and constraint."""
    out = []
    i = 0
    for name in model.config.par_order:
        ps = model.config.param_set(name)
        n = ps.n_parameters
        if ps.constrained:
            widths = np.atleast_1d(ps.width())
            centres = np.atleast_1d(ps.auxdata) if ps.pdf_type == "normal" else np.ones(n)
            kind = "staterror" if name.startswith("staterror_") else "systematic"
            for k in range(n):
                theta0, sigma0 = float(centres[k]), float(widths[k])
                value, unc = float(result.values[i + k]), float(result.uncertainties[i + k])
                out.append({"name": result.names[i + k], "kind": kind, "prefit": theta0, "prefit_uncertainty": sigma0,
                            "postfit": value, "postfit_uncertainty": unc,
                            "pull": (value - theta0) / sigma0 if sigma0 > 0 else 0.0,
                            "constraint": unc / sigma0 if sigma0 > 0 else 0.0})
        i += n
    return out


def prefit_uncertainties(model: Any) -> np.ndarray:
    """sigma0 of every parameter (0 for the unconstrained ones, e.g. ``mu``)."""
    out = []
    for name in model.config.par_order:
        ps = model.config.param_set(name)
        out.extend(np.atleast_1d(ps.width()) if ps.constrained else [0.0] * ps.n_parameters)
    return np.asarray(out, dtype=float)


def expected_with_band(model: Any, pars: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected yields per sample ``(n_samples, n_bins)``, their total, and its 1 sigma (linear propagation)."""
    pars = np.asarray(pars, dtype=float)
    by_sample = np.asarray(model.main_model.expected_data(pars, return_by_sample=True), dtype=float)
    total = by_sample.sum(axis=0)
    sigmas = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    jac = np.zeros((len(total), len(pars)))
    for k in np.flatnonzero(sigmas > 0):
        h = 1e-2 * sigmas[k]
        up, down = pars.copy(), pars.copy()
        up[k] += h
        down[k] -= h
        jac[:, k] = (np.asarray(model.main_model.expected_data(up)) - np.asarray(model.main_model.expected_data(down))) / (2 * h)
    var = np.einsum("ik,kl,il->i", jac, covariance, jac)
    return by_sample, total, np.sqrt(np.clip(var, 0.0, None))


def result_dict(model: Any, result: FitResult, **extra: Any) -> dict[str, Any]:
    """``fit_results.json``: every parameter, the POI, the NLL, the interval and significance."""
    return {
        "poi": result.poi,
        "mu": result.mu,
        "mu_uncertainty": result.mu_uncertainty,
        "mu_interval": result.interval,
        "significance": result.significance,
        "twice_nll": result.twice_nll,
        "nll": 0.5 * result.twice_nll,
        "parameter_names": result.names,
        "parameters": {n: {"value": float(v), "uncertainty": float(u)}
                       for n, v, u in zip(result.names, result.values, result.uncertainties, strict=True)},
        "correlations": result.correlations.tolist(),
        "n_parameters": len(result.names),
        "n_bins": int(sum(model.config.channel_nbins.values())),
        "backend": "pyhf numpy + minuit (Hesse uncertainties)",
        **extra,
    }

"""A HEPData submission of the fit, written with ``hepdata_lib`` and checked with
``hepdata_validator``'s full-submission validator.

Tables: per region the observed data and the pre-fit and post-fit yields of every sample with the
total and its uncertainty (the bins of the model); the signal strength (Hesse and MINOS); every
constrained parameter before and after the fit; the impacts of the ranking; the correlations of
the systematic parameters. The pyhf workspace and the plots travel as additional resources.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from highrate.base.optional import require
from highrate.errors import HighrateError
from highrate.outputs.statmodel.yields import RegionYields


def hepdata_lib(purpose: str = "the HEPData submission") -> Any:
    """``hepdata_lib``, without the warning of the ROOT import it tries on the way (a ROOT wheel
    in alpha warns that it is one): highrate does not use ROOT here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return require("hepdata_lib", "fit", purpose=purpose)


class InvalidSubmission(HighrateError, ValueError):
    """The HEPData validator rejected the submission."""


def _variable(lib: Any, name: str, values: Any, *, independent: bool = False, binned: bool = False,
              errors: dict[str, Any] | None = None, qualifiers: dict[str, str] | None = None) -> Any:
    var = lib.Variable(name, is_independent=independent, is_binned=binned, values=list(values),
                       zero_uncertainties_warning=False)
    for label, err in (errors or {}).items():
        symmetric = np.ndim(err) == 1
        unc = lib.Uncertainty(label, is_symmetric=symmetric)
        unc.values = [float(e) for e in err] if symmetric else [(float(a), float(b)) for a, b in err]
        var.add_uncertainty(unc)
    for key, value in (qualifiers or {}).items():
        var.add_qualifier(key, value)
    return var


def _table(lib: Any, name: str, description: str, variables: list[Any], images: list[Path] = ()) -> Any:
    table = lib.Table(name)
    table.description = description
    table.location = "highrate fit"
    for var in variables:
        table.add_variable(var)
    for image in images:
        if image.is_file():
            table.add_additional_resource(f"Plot: {image.stem}", str(image.resolve()), copy_file=True)
    return table


def region_table(lib: Any, ry: RegionYields, *, asimov: bool, images: list[Path] = ()) -> Any:
    """The yields of one region: data, and per stage every sample, the total and its uncertainty."""
    ch, keep = ry.channel, ry.keep
    bins = list(zip(ch.edges[:-1][keep], ch.edges[1:][keep], strict=True))
    where = {"Region": ch.name, "Observable": ch.histogram}
    variables = [_variable(lib, ch.label or ch.histogram, bins, independent=True, binned=True),
                 _variable(lib, "Asimov data" if asimov else "Data", ry.data, qualifiers=where)]
    for stage, y in ry.stages.items():
        title = "Pre-fit" if stage == "prefit" else "Post-fit"
        for sample, values in zip(y.samples, y.by_sample, strict=True):
            if values.any():
                variables.append(_variable(lib, f"{title} {sample}", values, qualifiers=where))
        variables.append(_variable(lib, f"{title} total", y.total, errors={"total uncertainty": y.uncertainty},
                                   qualifiers=where))
    description = (f"Events per bin of {ch.histogram} in region {ch.name}: the "
                   f"{'Asimov data set' if asimov else 'observed data'}, the expected yield of every sample "
                   "before and after the fit, and their total with its uncertainty (all nuisance parameters; "
                   "after the fit with their correlations). Bins where the simulation expects no events are "
                   "not in the model and not listed.")
    return _table(lib, f"Yields {ch.name} {ch.histogram}", description, variables, images)


def fit_tables(lib: Any, summary: dict[str, Any], pulls: list[dict[str, Any]], ranking: list[dict[str, Any]],
               correlations: tuple[list[str], np.ndarray] | None) -> list[Any]:
    """The signal strength, the nuisance parameters, the impacts and the correlations."""
    mu, sigma = summary["mu"], summary["mu_uncertainty"]
    values = [_variable(lib, "Parameter", [summary["poi"]], independent=True),
              _variable(lib, "Best-fit value (Hesse)", [mu], errors={"Hesse": [sigma]})]
    interval = summary.get("mu_interval") or {}
    if "lower" in interval:
        values.append(_variable(lib, "Best-fit value (MINOS)", [mu],
                                errors={"MINOS": [(interval["lower"] - mu, interval["upper"] - mu)]}))
    tables = [_table(lib, "Signal strength", f"The fitted signal strength {summary['poi']} of sample "
                     f"{summary['signal']}: Hesse uncertainty and the MINOS (profile likelihood) interval.", values)]
    names = [p["name"] for p in pulls]
    tables.append(_table(lib, "Nuisance parameters", "Every constrained parameter of the model before and after "
                         "the fit (the MC-statistics parameters are named staterror_REGION[BIN]).", [
        _variable(lib, "Parameter", names, independent=True),
        _variable(lib, "Pre-fit value", [p["prefit"] for p in pulls],
                  errors={"pre-fit uncertainty": [p["prefit_uncertainty"] for p in pulls]}),
        _variable(lib, "Post-fit value", [p["postfit"] for p in pulls],
                  errors={"post-fit uncertainty": [p["postfit_uncertainty"] for p in pulls]}),
    ]))
    rows = [r for r in ranking if all(v is not None for k, v in r.items() if k.startswith("impact_"))]
    if rows:
        impacts = [_variable(lib, "Parameter", [r["name"] for r in rows], independent=True)]
        for key, title in (("prefit_up", "pre-fit up"), ("prefit_down", "pre-fit down"),
                           ("postfit_up", "post-fit up"), ("postfit_down", "post-fit down")):
            impacts.append(_variable(lib, f"Impact on {summary['poi']} ({title})", [r[f"impact_{key}"] for r in rows]))
        tables.append(_table(lib, "Impacts", f"The shift of the fitted {summary['poi']} when each nuisance parameter "
                             "is fixed at its best-fit value plus or minus its pre-fit or post-fit uncertainty, "
                             "largest post-fit impact first.", impacts))
    if correlations is not None and len(correlations[0]) > 1:
        labels, matrix = correlations
        x, y = np.meshgrid(np.arange(len(labels)), np.arange(len(labels)), indexing="ij")
        tables.append(_table(lib, "Correlations", "The correlations of the signal strength and the systematic "
                             "nuisance parameters after the fit.", [
            _variable(lib, "Parameter 1", [labels[i] for i in x.ravel()], independent=True),
            _variable(lib, "Parameter 2", [labels[j] for j in y.ravel()], independent=True),
            _variable(lib, "Correlation", matrix[x.ravel(), y.ravel()]),
        ]))
    return tables


def write_submission(folder: str | Path, tables: list[Any], *, resources: list[tuple[str, Path]] = (),
                     comment: str = "") -> Path:
    """Write ``tables`` to ``folder`` (emptied first) and ``folder``.tar.gz beside it; validate the
    folder with the HEPData validator (:class:`InvalidSubmission` naming the problems). Returns
    the archive."""
    lib = hepdata_lib()
    folder = Path(folder).resolve()
    submission = lib.Submission()
    submission.comment = comment
    for table in tables:
        submission.add_table(table)
    for description, path in resources:
        submission.add_additional_resource(description, str(Path(path).resolve()), copy_file=True)
    archive = folder.with_name(folder.name + ".tar.gz")
    # hepdata_lib writes submission.tar.gz into the working folder: a temporary one
    with tempfile.TemporaryDirectory(prefix="highrate-hepdata-") as tmp, contextlib.chdir(tmp), \
            contextlib.redirect_stdout(io.StringIO()):  # and prints what it does
        submission.create_files(str(folder), validate=False, remove_old=True)
        shutil.move(Path(tmp) / "submission.tar.gz", archive)
    problems = validate(folder)
    if problems:
        raise InvalidSubmission(f"the HEPData submission in {str(folder)!r} is not valid: " + "; ".join(problems))
    return archive


def validate(path: str | Path) -> list[str]:
    """The problems ``hepdata_validator``'s full-submission validator finds in a submission folder
    or archive (``[]``: valid)."""
    module = require("hepdata_validator.full_submission_validator", "fit", purpose="validating a HEPData submission")
    validator = module.FullSubmissionValidator()
    path = Path(path)
    valid = validator.validate(archive=str(path)) if path.is_file() else validator.validate(directory=str(path))
    if valid:
        return []
    return [f"{Path(file).name}: {m.message}" for file, messages in validator.get_messages().items() for m in messages]

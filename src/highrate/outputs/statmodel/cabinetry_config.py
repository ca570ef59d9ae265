"""The cabinetry configuration of :class:`~highrate.outputs.statmodel.inputs.FitInputs`, its
templates, and the pyhf workspace cabinetry builds from them.

- Regions: one per channel (category), over the bins where the simulation expects events.
- Samples: every MC sample (in the regions where its nominal yield is positive) and the data.
- NormFactor ``mu`` on the signal, bounds [0, 10].
- Systematics: the luminosity as a ``Normalization`` (``lumi``: up ``1 + X``, down ``1 / (1 + X)``,
  Combine's log-normal ``lnN``); every variation as a ``NormPlusShape`` named like the variation
  (cabinetry splits it into a ``normsys`` and, in regions of more than one bin, a ``histosys``).
  The ``Down`` template of a one-sided variation is its ``Up`` symmetrized
  (:func:`~highrate.outputs.statmodel.inputs.symmetrized`: cabinetry's ``Symmetrize``, with the
  bins it would make negative set to 0), given to cabinetry like any other template.
- MC statistics: cabinetry's ``staterror`` per region from the templates' variances.

cabinetry reads the templates through a template builder registered with its ``Router`` (no
ntuples are read); they are saved in ``HistogramFolder``, so that
``cabinetry.workspace.build(cabinetry.configuration.load("cabinetry.yml"))`` rebuilds the workspace.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from highrate.base.optional import require
from highrate.errors import ConfigError
from highrate.outputs.statmodel.inputs import NOMINAL, Channel, FitInputs, Template

POI = "mu"
LUMI = "lumi"
MU_BOUNDS = (0.0, 10.0)
DATA = "data_obs"


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


@contextlib.contextmanager
def quiet_cabinetry() -> Iterator[None]:
    """Quiet for the block, unless the user asked for INFO or DEBUG logging (``--debug``): cabinetry
    warns of every empty bin, pyhf logs every failed minimisation (retried or reported), and Minuit
    (which cabinetry runs at print level 1) prints its progress and every step where the
    likelihood is undefined (a template extrapolated below zero), megabytes per fit."""
    loggers = [logging.getLogger(n) for n in ("cabinetry", "pyhf")]
    levels = [lg.level for lg in loggers]
    verbose = any(lg.getEffectiveLevel() <= logging.INFO for lg in loggers)
    with contextlib.ExitStack() as stack:
        if not verbose:
            for lg in loggers:
                lg.setLevel(logging.CRITICAL)
            stack.enter_context(contextlib.redirect_stdout(_Discard()))
            stack.enter_context(contextlib.redirect_stderr(_Discard()))
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _sample_regions(inputs: FitInputs) -> dict[str, list[str]]:
    """sample -> the regions where its nominal yield (in the kept bins) is positive."""
    out: dict[str, list[str]] = {}
    for ch in inputs.channels:
        keep = ch.kept()
        for sample, templates in ch.samples.items():
            if templates[NOMINAL].values[keep].sum() > 0:
                out.setdefault(sample, []).append(ch.name)
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != inputs.signal, kv[0])))


def _systematics(inputs: FitInputs, sample_regions: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One ``NormPlusShape`` per variation, on the samples it varies in the regions where it does."""
    samples: dict[str, set[str]] = {}  # variation -> samples
    regions: dict[str, set[str]] = {}  # variation -> regions
    for ch in inputs.channels:
        for sample in ch.samples:
            if ch.name in sample_regions.get(sample, []):
                for syst in ch.systematics(sample):
                    samples.setdefault(syst, set()).add(sample)
                    regions.setdefault(syst, set()).add(ch.name)
    order = [ch.name for ch in inputs.channels]
    return [{"Name": syst, "Type": "NormPlusShape", "Up": {}, "Down": {}, "Samples": sorted(samples[syst]),
             "Regions": [r for r in order if r in regions[syst]]} for syst in sorted(samples)]


def config(inputs: FitInputs, folder: str | Path, *, lumi_uncertainty: float = 0.025,
           source: str = "") -> dict[str, Any]:
    """The cabinetry configuration (validated against cabinetry's schema); templates in ``folder``."""
    sample_regions = _sample_regions(inputs)
    if inputs.signal not in sample_regions:
        raise ConfigError(f"the signal sample {inputs.signal!r} expects no events in "
                          f"{', '.join(map(repr, inputs.regions))}: nothing to fit.")
    if DATA in sample_regions:
        raise ConfigError(f"an MC sample is named {DATA!r}, the name of the data in the model: rename it.")
    systematics = _systematics(inputs, sample_regions)
    taken = {e["Name"] for e in systematics} & {POI, LUMI}
    if taken:
        raise ConfigError(f"a variation is named {sorted(taken)[0]!r}, a parameter the fit adds itself "
                          f"({POI!r}: the signal strength, {LUMI!r}: the luminosity): rename it.")
    if lumi_uncertainty > 0:
        systematics.insert(0, {"Name": LUMI, "Type": "Normalization", "Up": {"Normalization": lumi_uncertainty},
                               "Down": {"Normalization": 1.0 / (1.0 + lumi_uncertainty) - 1.0}})
    cfg = {
        "General": {"Measurement": f"{inputs.signal}_{POI}", "POI": POI, "HistogramFolder": str(Path(folder).resolve()),
                    # cabinetry's own readers are not used: highrate's template builder gives every template
                    "InputPath": f"{source or 'highrate output'}:{{RegionPath}}", "VariationPath": ""},
        "Regions": [{"Name": ch.name, "RegionPath": ch.histogram} for ch in inputs.channels],
        "Samples": [{"Name": s, "Regions": r} for s, r in sample_regions.items()] + [{"Name": DATA, "Data": True}],
        "NormFactors": [{"Name": POI, "Samples": inputs.signal, "Nominal": 1.0, "Bounds": list(MU_BOUNDS)}],
        "Systematics": systematics,
    }
    if not cfg["Systematics"]:
        del cfg["Systematics"]
    _check_file_names(cfg)
    require("cabinetry", "fit", purpose="highrate fit").configuration.validate(cfg)
    return cfg


def _check_file_names(cfg: dict[str, Any]) -> None:
    """cabinetry names a template file ``{region}_{sample}[_{systematic}_{Up|Down}]``: two names
    that join alike would overwrite each other's templates."""
    seen: dict[str, tuple[str, ...]] = {}
    for r in cfg["Regions"]:
        for s in cfg["Samples"]:
            for syst in [None, *cfg.get("Systematics", [])]:
                parts = (r["Name"], s["Name"]) + ((syst["Name"],) if syst else ())
                name = "_".join(parts)
                if seen.setdefault(name, parts) != parts:
                    raise ConfigError(f"the names {seen[name]} and {parts} give cabinetry the same template file "
                                      f"{name!r}: rename a region, sample or variation.")


def _histogram(template: Template) -> Any:
    bh = require("boost_histogram", "fit", purpose="highrate fit")
    n = len(template.values)
    h = bh.Histogram(bh.axis.Regular(n, 0.0, float(n)), storage=bh.storage.Weight())  # the kept bins, by index
    view = h.view()
    view["value"], view["variance"] = template.values, np.clip(template.variances, 0.0, None)
    return h


def router(inputs: FitInputs) -> Any:
    """A ``cabinetry.route.Router`` whose template builder returns every template of ``inputs``
    (over the kept bins, as a ``boost_histogram`` with weighted storage)."""
    cabinetry = require("cabinetry", "fit", purpose="highrate fit")
    channels: dict[str, Channel] = {ch.name: ch for ch in inputs.channels}
    out = cabinetry.route.Router()

    @out.register_template_builder()
    def highrate_templates(region: dict[str, Any], sample: dict[str, Any], systematic: dict[str, Any],
                           template: str | None) -> Any:
        ch = channels[region["Name"]]
        keep = ch.kept()
        if sample.get("Data"):
            return _histogram(Template(ch.data[keep], ch.data[keep]))
        nominal = ch.samples[sample["Name"]][NOMINAL]
        t = nominal if template is None else ch.variation(sample["Name"], systematic["Name"], template)
        t = Template(t.values[keep], t.variances[keep])
        if template is not None and t.values.sum() <= 0:
            # a variation that removes the sample: cabinetry's normsys needs a positive yield
            t = Template(1e-6 * nominal.values[keep], nominal.variances[keep])
        return _histogram(t)

    return out


def build_spec(inputs: FitInputs, *, lumi_uncertainty: float = 0.025, folder: str | Path | None = None,
               source: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """``(workspace, cabinetry config)``: cabinetry builds the templates (into ``folder``, a
    temporary one by default), post-processes them and builds the pyhf workspace (validated)."""
    cabinetry = require("cabinetry", "fit", purpose="highrate fit")
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="highrate-templates-"))
        elif Path(folder).exists():
            shutil.rmtree(folder)  # stale templates of another model would be read back
        cfg = config(inputs, folder, lumi_uncertainty=lumi_uncertainty, source=source)
        with quiet_cabinetry():
            cabinetry.templates.build(cfg, router=router(inputs))
            cabinetry.templates.postprocess(cfg)
            spec = cabinetry.workspace.build(cfg)
    return spec, cfg


def build_workspace(inputs: FitInputs, *, lumi_uncertainty: float = 0.025) -> Any:
    """The ``pyhf.Workspace`` of :func:`build_spec`."""
    pyhf = require("pyhf", "fit", purpose="the pyhf workspace")
    return pyhf.Workspace(build_spec(inputs, lumi_uncertainty=lumi_uncertainty)[0])

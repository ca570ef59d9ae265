"""The reference Z→μμ analysis with corrections and systematics.

On top of analysis_nominal.py (whose selection and histograms it imports): the golden-JSON luminosity mask on data, normalisation to
cross-section x luminosity / sum of genWeight, pileup reweighting and muon ID/ISO scale factors
from correctionlib files (each with up/down), jet energy scale and resolution shifts (jets and
MET, objects re-run), and a cartesian category of jet multiplicity x leading-muon charge.
The correction files are taken from the dataset metadata key ``corrections`` (a folder, as
``highrate generate`` writes), else from ./corrections next to this file.
"""

import dataclasses
from pathlib import Path

import awkward as ak
import numpy as np
from analysis_nominal import analysis as nominal  # the selection and histograms, shared

from highrate import Analysis, Axis, Cut, Histogram, ShapeVariation, Weight
from highrate.categories import cartesian
from highrate.corrections import jes_uncertainty, muon_sf, pileup_weight
from highrate.jagged import nth_value, unflatten
from highrate.kinematics import scale_pt
from highrate.lumimask import LumiMask
from highrate.randomness import normal_from_keys

CORRECTIONS = Path(__file__).resolve().parent / "corrections"
_golden: dict[Path, LumiMask] = {}


def corrections(meta) -> Path:
    return Path(meta.get("corrections", CORRECTIONS))
JER_RESOLUTION = 0.05  # relative smearing width of the JER variation


def lumi_mask(events, params, meta):
    if meta["is_mc"]:
        return events.run > 0
    path = corrections(meta) / "golden.json"
    if path not in _golden:
        _golden[path] = LumiMask(path)
    return _golden[path](events)


def normalisation(events, params, meta):
    return meta["xsec"] * meta["lumi"] / meta["sum_genweight"]


def pileup(events, params, meta):
    path = corrections(meta) / "pileup.json"
    return pileup_weight(events, path, ("nominal", "up", "down"))


def muon_scale_factors(name):
    def weight(events, params, meta):
        return muon_sf(events.MuonGood, corrections(meta) / "muon_sf.json", name=name,
                       variation=("nominal", "systup", "systdown"))
    return weight


def _shift_jets(events, factor):
    """Jets with pt scaled by ``factor`` (jagged), and MET corrected for the change."""
    jets, met = scale_pt(events.Jet, factor, events.MET)
    return {"Jet": jets, "MET": met}


def jes(events, direction, meta, shared):
    if "unc" not in shared:  # the same uncertainty moves the jets up and down: evaluate it once
        shared["unc"] = jes_uncertainty(events.Jet, corrections(meta) / "jes.json")
    unc = shared["unc"]
    return _shift_jets(events, 1 + unc if direction == "up" else 1 - unc)


def _jer_numbers(events):
    """One standard normal number per jet, the same for a jet every time (keyed by event and index)."""
    jets = events.Jet
    if ak.backend(jets) == "typetracer":  # tracing: only which branches are read matters
        keys = ak.values_astype(events.event, np.float64) + events.luminosityBlock
        return ak.values_astype(jets.pt, np.float64) * 0 + keys[:, None] * 0
    n = ak.to_numpy(ak.num(jets, axis=1))
    key = np.repeat(ak.to_numpy(events.event), n)
    index = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    lumi = np.repeat(ak.to_numpy(events.luminosityBlock), n)
    return unflatten(normal_from_keys(key, lumi, index), n)


def jer(events, direction, meta, shared):
    if "z" not in shared:
        shared["z"] = _jer_numbers(events)
    sign = 1 if direction == "up" else -1
    return _shift_jets(events, 1 + sign * JER_RESOLUTION * shared["z"])


_leading = {"lead_mu_pos": [Cut("lead_mu_pos", lambda ev: nth_value(ev.MuonGood.charge, 0, fill=0) > 0)],
            "lead_mu_neg": [Cut("lead_mu_neg", lambda ev: nth_value(ev.MuonGood.charge, 0, fill=0) < 0)]}
_jets = {"0j": [Cut("0j", lambda ev: ak.num(ev.JetGood) == 0)],
         "1j": [Cut("ge1j", lambda ev: ak.num(ev.JetGood) >= 1)]}

analysis = Analysis(
    name="zmumu",
    skim=[Cut("lumi_mask", lumi_mask), *nominal.skim],
    objects=nominal.objects,  # MuonGood, JetGood, mll
    preselection=nominal.preselection,
    categories={"baseline": [], **cartesian({"jets": _jets, "charge": _leading})},
    weights=[
        Weight("genWeight", lambda ev: ev.genWeight),
        Weight("normalisation", normalisation),
        Weight("pileup", pileup, varied=True),
        Weight("muon_id", muon_scale_factors("muon_id_sf"), varied=True),
        Weight("muon_iso", muon_scale_factors("muon_iso_sf"), varied=True),
    ],
    variations=[ShapeVariation("JES", jes), ShapeVariation("JER", jer)],
    histograms=[*nominal.histograms, Histogram("MET_pt", Axis("MET.pt", 50, 0, 200, label=r"$p_T^{miss}$ [GeV]"))],
)


def _nominal_weights():
    def pileup_nominal(events, params, meta):
        return pileup_weight(events, corrections(meta) / "pileup.json", "nominal")

    def muon_nominal(name):
        def weight(events, params, meta):
            return muon_sf(events.MuonGood, corrections(meta) / "muon_sf.json", name=name)
        return weight

    return [analysis.weights[0], analysis.weights[1], Weight("pileup", pileup_nominal),
            Weight("muon_id", muon_nominal("muon_id_sf")), Weight("muon_iso", muon_nominal("muon_iso_sf"))]


# The same selection, categories and corrections at their nominal values, without variations:
# the reference point for what systematics cost (benchmarks/bench_systematics.py).
without_systematics = dataclasses.replace(analysis, name="zmumu_no_syst", weights=tuple(_nominal_weights()),
                                          variations=())

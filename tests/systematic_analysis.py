"""examples/zmumu plus a varied weight, a normalisation, a jet category, a JES shift (runs on the
preselected events) and a muon isolation shift (changes the preselection) (tests)."""

import dataclasses
from pathlib import Path

import awkward as ak
import numpy as np

from highrate import Cut, ShapeVariation, Weight, load_analysis

_base = load_analysis(Path(__file__).resolve().parents[1] / "examples" / "zmumu" / "analysis_nominal.py")
JES = np.float32(0.03)
LUMI = 59_700.0  # pb^-1


def npv_weight(events):
    w = 1.0 + 0.01 * events.PV.npvsGood
    return w, w * 1.05, w * 0.95


def normalisation(events, params, meta):
    return meta["xsec"] * params["lumi"] / meta["sum_genweight"]


def jes(events, direction):
    factor = np.float32(1) + JES if direction == "up" else np.float32(1) - JES
    return {"Jet": ak.with_field(events.Jet, events.Jet.pt * factor, "pt")}


ISO = np.float32(0.2)


def iso(events, direction):
    """Muon isolation shifted: MuonGood, and with it the preselection, change (the skim does not)."""
    factor = np.float32(1) + ISO if direction == "up" else np.float32(1) - ISO
    return {"Muon": ak.with_field(events.Muon, events.Muon.pfRelIso04_all * factor, "pfRelIso04_all")}


analysis = dataclasses.replace(
    _base,
    name="zmumu_systematics",
    categories={"baseline": (), "with_jet": (Cut("jet", lambda ev: ak.num(ev.JetGood) >= 1),)},
    weights=(*_base.weights, Weight("npv", npv_weight, varied=True),
             Weight("norm", normalisation, params={"lumi": LUMI})),
    variations=(ShapeVariation("JES", jes), ShapeVariation("ISO", iso)),
    source=None,
)

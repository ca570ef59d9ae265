"""The reference Z→μμ analysis, nominal only: skim, MuonGood/JetGood, dilepton preselection,
six histograms, weight genWeight. The benchmarks and the exactness tests run this one;
analysis.py adds corrections, systematics and categories on top of it. Both run unchanged on
NanoAOD v12 (Jet_jetId) and v15 (the jet ID recomputed from the jets' energy fractions)."""

import awkward as ak

from highrate import Analysis, Axis, Cut, Histogram, Weight
from highrate.jagged import nth_value
from highrate.jetid import passes_jet_id
from highrate.kinematics import leading_pair_mass


def muon_good(events, params):
    mu = events.Muon
    good = mu.tightId & (mu.pfRelIso04_all < params["iso"]) & (mu.pt > params["pt"]) & (abs(mu.eta) < params["eta"])
    return mu[good]


def jet_good(events, params):
    jet = events.Jet
    # the jetId bits where the files have them (NanoAOD v12), else the Run-3 recipe (v15)
    return jet[(jet.pt > params["pt"]) & (abs(jet.eta) < params["eta"]) & passes_jet_id(jet, params["jetId"])]


def dilepton(events, params):
    mu = events.MuonGood
    lead_pt = nth_value(mu.pt, 0, fill=0.0)
    charge = nth_value(mu.charge, 0, fill=0) * nth_value(mu.charge, 1, fill=0)
    mll = events.mll
    return (ak.num(mu) == 2) & (lead_pt > params["lead_pt"]) & (charge < 0) & (mll > params["mll"][0]) & (mll < params["mll"][1])


analysis = Analysis(
    name="zmumu",
    skim=[
        Cut("PV_npvsGood", lambda ev: ev.PV.npvsGood > 0),
        Cut("goodVertices", lambda ev: ev.Flag.goodVertices),
        Cut("muon_pt18", lambda ev, p: ak.any(ev.Muon.pt > p["pt"], axis=1), params={"pt": 18}),
        Cut("HLT_IsoMu24", lambda ev: ev.HLT.IsoMu24),
    ],
    objects={
        "MuonGood": lambda ev: muon_good(ev, {"iso": 0.15, "pt": 15, "eta": 2.4}),
        "JetGood": lambda ev: jet_good(ev, {"pt": 30, "eta": 2.4, "jetId": "tight"}),
        "mll": lambda ev: leading_pair_mass(ev.MuonGood),  # NaN without two good muons
    },
    preselection=[
        Cut("dilepton", dilepton, params={"lead_pt": 25, "mll": (60, 120)}),
    ],
    categories={"baseline": []},
    weights=[Weight("genWeight", lambda ev: ev.genWeight)],
    histograms=[
        Histogram("mll", Axis("mll", 120, 60, 120, label=r"$m_{\mu\mu}$ [GeV]")),
        Histogram("MuonGood_pt_1", Axis("MuonGood.pt[0]", 100, 0, 200, label=r"Leading muon $p_T$ [GeV]")),
        Histogram("MuonGood_eta_1", Axis("MuonGood.eta[0]", 50, -2.5, 2.5, label=r"Leading muon $\eta$")),
        Histogram("MuonGood_phi_1", Axis("MuonGood.phi[0]", 64, -3.2, 3.2, label=r"Leading muon $\phi$")),
        Histogram("nJetGood", Axis("nJetGood", 10, 0, 10, label="Number of good jets")),
        Histogram("JetGood_pt_1", Axis("JetGood.pt[0]", 100, 0, 500, label=r"Leading jet $p_T$ [GeV]")),
    ],
)

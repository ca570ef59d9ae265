"""An independent plain-numpy implementation of examples/zmumu, for exact comparisons.

It shares no code with highrate: branches are read with uproot as flat numpy arrays and the
selection is written with numpy index arithmetic.
"""

from __future__ import annotations

import numpy as np
import uproot

BRANCHES = [
    "PV_npvsGood", "Flag_goodVertices", "HLT_IsoMu24", "nMuon", "Muon_pt", "Muon_eta", "Muon_phi",
    "Muon_mass", "Muon_charge", "Muon_tightId", "Muon_pfRelIso04_all", "nJet", "Jet_pt", "Jet_eta", "Jet_jetId",
]
HISTS = {  # name: (bins, lo, hi)
    "mll": (120, 60, 120), "MuonGood_pt_1": (100, 0, 200), "MuonGood_eta_1": (50, -2.5, 2.5),
    "MuonGood_phi_1": (64, -3.2, 3.2), "nJetGood": (10, 0, 10), "JetGood_pt_1": (100, 0, 500),
}


def read(path: str, start: int | None = None, stop: int | None = None, *, is_mc: bool) -> dict[str, np.ndarray]:
    t = uproot.open(path)["Events"]
    names = BRANCHES + (["genWeight", "Pileup_nTrueInt"] if is_mc else []) + ["run", "luminosityBlock"]
    out = {}
    for name in names:
        a = t[name].array(library="np", entry_start=start, entry_stop=stop)
        out[name] = np.concatenate(a) if a.dtype == object else a
        if a.dtype == object and len(a) and len(out[name]) == 0:
            out[name] = np.zeros(0, dtype=t[name].interpretation.content.to_dtype)
    return out


def mass(pt1, eta1, phi1, m1, pt2, eta2, phi2, m2):
    """The formula documented in highrate.kinematics, in float64."""
    pt1, eta1, phi1, m1, pt2, eta2, phi2, m2 = (np.asarray(x, dtype=np.float64)
                                                for x in (pt1, eta1, phi1, m1, pt2, eta2, phi2, m2))
    s1, s2 = np.sinh(eta1), np.sinh(eta2)
    e1 = np.sqrt(pt1**2 * (1 + s1**2) + m1**2)
    e2 = np.sqrt(pt2**2 * (1 + s2**2) + m2**2)
    dot = pt1 * pt2 * (np.cos(phi1 - phi2) + s1 * s2)
    return np.sqrt(np.maximum(m1**2 + m2**2 + 2 * (e1 * e2 - dot), 0.0))


def analyse(d: dict[str, np.ndarray], *, is_mc: bool) -> dict:
    """Cutflow and histogram contents (sumw, sumw2 per bin) of the Z→μμ selection."""
    n = len(d["nMuon"])
    mu_evt = np.repeat(np.arange(n), d["nMuon"])
    jet_evt = np.repeat(np.arange(n), d["nJet"])
    w = d["genWeight"].astype(np.float64) if is_mc else np.ones(n)
    cut1 = d["PV_npvsGood"] > 0
    cut2 = cut1 & d["Flag_goodVertices"]
    any18 = np.bincount(mu_evt[d["Muon_pt"] > 18], minlength=n) > 0
    cut3 = cut2 & any18
    skim = cut3 & d["HLT_IsoMu24"]
    good = d["Muon_tightId"] & (d["Muon_pfRelIso04_all"] < 0.15) & (d["Muon_pt"] > 15) & (np.abs(d["Muon_eta"]) < 2.4)
    ngood = np.bincount(mu_evt[good], minlength=n)
    good_idx = np.flatnonzero(good)
    first_good = np.full(n, -1)
    second_good = np.full(n, -1)
    # first and second good muon of each event (muons are in file order within events)
    order = np.argsort(mu_evt[good_idx], kind="stable")
    g_evt = mu_evt[good_idx][order]
    g_idx = good_idx[order]
    starts = np.searchsorted(g_evt, np.arange(n), side="left")
    has1 = ngood >= 1
    has2 = ngood >= 2
    first_good[has1] = g_idx[starts[has1]]
    second_good[has2] = g_idx[starts[has2] + 1]
    two = skim & (ngood == 2)
    i1, i2 = first_good[two], second_good[two]
    mll = np.full(n, np.nan)
    mll[two] = mass(d["Muon_pt"][i1], d["Muon_eta"][i1], d["Muon_phi"][i1], d["Muon_mass"][i1],
                    d["Muon_pt"][i2], d["Muon_eta"][i2], d["Muon_phi"][i2], d["Muon_mass"][i2])
    lead = np.zeros(n, dtype=np.float32)
    lead[two] = d["Muon_pt"][i1]
    opp = np.zeros(n, dtype=bool)
    opp[two] = d["Muon_charge"][i1] * d["Muon_charge"][i2] < 0
    with np.errstate(invalid="ignore"):
        presel = two & (lead > 25) & opp & (mll > 60) & (mll < 120)
    jgood = (d["Jet_pt"] > 30) & (np.abs(d["Jet_eta"]) < 2.4) & (d["Jet_jetId"] >= 2)
    njet = np.bincount(jet_evt[jgood], minlength=n)
    jg_idx = np.flatnonzero(jgood)
    jstarts = np.searchsorted(jet_evt[jg_idx], np.arange(n), side="left")
    ev = np.flatnonzero(presel)
    values = {
        "mll": (mll[ev], ev),
        "MuonGood_pt_1": (d["Muon_pt"][first_good[ev]], ev),
        "MuonGood_eta_1": (d["Muon_eta"][first_good[ev]], ev),
        "MuonGood_phi_1": (d["Muon_phi"][first_good[ev]], ev),
        "nJetGood": (njet[ev], ev),
    }
    with_jet = ev[njet[ev] > 0]
    values["JetGood_pt_1"] = (d["Jet_pt"][jg_idx[jstarts[with_jet]]], with_jet)
    hists = {}
    for name, (x, idx) in values.items():
        bins, lo, hi = HISTS[name]
        sumw, _ = np.histogram(x, bins=bins, range=(lo, hi), weights=w[idx])
        sumw2, _ = np.histogram(x, bins=bins, range=(lo, hi), weights=w[idx] ** 2)
        hists[name] = (sumw, sumw2)
    cutflow = {
        "initial": n, "skim/PV_npvsGood": int(cut1.sum()), "skim/goodVertices": int(cut2.sum()),
        "skim/muon_pt18": int(cut3.sum()), "skim/HLT_IsoMu24": int(skim.sum()), "skim": int(skim.sum()),
        "presel/dilepton": int(presel.sum()), "presel": int(presel.sum()),
    }
    first_jet = np.full(n, -1)
    has_jet = njet > 0
    first_jet[has_jet] = jg_idx[jstarts[has_jet]]
    per_event = {"mll": mll[ev], "w": w[ev], "njet": njet[ev], "npv": d["PV_npvsGood"][ev],
                 "jet_pt_1": d["Jet_pt"][first_jet[ev]], "has_jet": has_jet[ev],
                 "mu1_pt": d["Muon_pt"][first_good[ev]], "mu1_eta": d["Muon_eta"][first_good[ev]],
                 "mu2_pt": d["Muon_pt"][second_good[ev]], "mu2_eta": d["Muon_eta"][second_good[ev]],
                 "mu1_charge": d["Muon_charge"][first_good[ev]]}
    if "Pileup_nTrueInt" in d:
        per_event["ntrue"] = d["Pileup_nTrueInt"][ev]
    return {"cutflow": cutflow, "hists": hists, "sumw": float(w[presel].sum()), "n": n, "events": per_event}


def combine(parts: list[dict]) -> dict:
    out = {"cutflow": {}, "hists": {}, "sumw": 0.0, "n": 0}
    for p in parts:
        for k, v in p["cutflow"].items():
            out["cutflow"][k] = out["cutflow"].get(k, 0) + v
        for k, (a, b) in p["hists"].items():
            if k in out["hists"]:
                out["hists"][k] = (out["hists"][k][0] + a, out["hists"][k][1] + b)
            else:
                out["hists"][k] = (a.copy(), b.copy())
        out["sumw"] += p["sumw"]
        out["n"] += p["n"]
    return out

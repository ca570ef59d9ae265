"""Quantities come before categories, weights and subsamples: their cuts read them as event fields
(``ev.mll``), under tracing too, and shape variations recompute what reads a changed quantity.

The expected numbers come from plain numpy over the same files, read with uproot.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

import highrate
from highrate import Analysis, Axis, Cut, Histogram, ShapeVariation, Weight
from highrate.kinematics import leading_pair_mass

SCALE = {"nominal": 1.0, "MuonScaleUp": 1.05, "MuonScaleDown": 0.95}
BINS = (40, 0.0, 200.0)


def muon_good(ev):
    mu = ev.Muon
    return mu[(mu.pt > 15) & (abs(mu.eta) < 2.4)]


def muon_scale(ev, direction):
    factor = SCALE["MuonScaleUp" if direction == "up" else "MuonScaleDown"]
    return {"Muon": ak.with_field(ev.Muon, ev.Muon.pt * np.float32(factor), "pt")}


ANALYSIS = Analysis(
    name="quantities_in_categories",
    objects={"MuonGood": muon_good},
    preselection=[Cut("two_muons", lambda ev: ak.num(ev.MuonGood) >= 2)],
    # ht is read by a category cut only: tracing must still find the branch it reads (Jet_pt)
    quantities={"mll": lambda ev: leading_pair_mass(ev.MuonGood), "ht": lambda ev: ak.sum(ev.Jet.pt, axis=1)},
    categories={
        "all": [],
        "high_mll": [Cut("high_mll", lambda ev: ev.mll > 100)],
        "busy": [Cut("busy", lambda ev: ev.ht > 100)],
    },
    subsamples={"DYJetsToLL": {"above": [Cut("above", lambda ev: ev.mll > 91)],
                               "below": [Cut("below", lambda ev: ev.mll <= 91)]}},
    weights=[Weight("genWeight", lambda ev: ev.genWeight),
             Weight("by_mll", lambda ev: ev.mll / 91.0, mc_only=False)],  # a weight reads a quantity too
    variations=[ShapeVariation("MuonScale", muon_scale)],
    histograms=[Histogram("mll", Axis("mll", *BINS))],
)


def reference(files: list[str], *, is_mc: bool, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Per event, in numpy: preselected, mll, ht and the weight."""
    branches = ["nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "nJet", "Jet_pt"] + (
        ["genWeight"] if is_mc else [])
    d: dict[str, list[np.ndarray]] = {b: [] for b in branches}
    for path in files:
        arrays = uproot.open(path)["Events"].arrays(branches, library="np")
        for b in branches:
            a = arrays[b]
            d[b].append(np.concatenate(a) if a.dtype == object else a)
    f = {b: np.concatenate(v) for b, v in d.items()}
    n = len(f["nMuon"])
    pt = f["Muon_pt"] * np.float32(scale) if scale != 1.0 else f["Muon_pt"]
    event = np.repeat(np.arange(n), f["nMuon"])
    good = np.flatnonzero((pt > 15) & (np.abs(f["Muon_eta"]) < 2.4))
    ngood = np.bincount(event[good], minlength=n)
    presel = ngood >= 2
    first = np.concatenate([[0], np.cumsum(ngood)[:-1]])[presel]  # the first good muon's place in ``good``
    i1, i2 = good[first], good[first + 1]
    p1 = [np.asarray(x[i1], np.float64) for x in (pt, f["Muon_eta"], f["Muon_phi"], f["Muon_mass"])]
    p2 = [np.asarray(x[i2], np.float64) for x in (pt, f["Muon_eta"], f["Muon_phi"], f["Muon_mass"])]
    energy = [np.sqrt((p[0] * np.cosh(p[1])) ** 2 + p[3] ** 2) for p in (p1, p2)]
    px = p1[0] * np.cos(p1[2]) + p2[0] * np.cos(p2[2])
    py = p1[0] * np.sin(p1[2]) + p2[0] * np.sin(p2[2])
    pz = p1[0] * np.sinh(p1[1]) + p2[0] * np.sinh(p2[1])
    mll = np.sqrt(np.maximum((energy[0] + energy[1]) ** 2 - px**2 - py**2 - pz**2, 0.0))
    jet_event = np.repeat(np.arange(n), f["nJet"])
    ht = np.bincount(jet_event, weights=f["Jet_pt"].astype(np.float64), minlength=n)[presel]
    weight = mll / 91.0
    if is_mc:
        weight = f["genWeight"][presel].astype(np.float64) * weight
    return {"mll": mll, "ht": ht, "weight": weight}


@pytest.fixture(scope="module")
def outcome(sample):
    return highrate.run(ANALYSIS, highrate.load_datasets(sample), options=highrate.RunOptions(chunk_size=5000))


def test_the_tracer_finds_what_a_quantity_read_only_by_a_category_reads(outcome):
    for plan in outcome.plans.values():
        assert "Jet_pt" in plan.branches  # read by quantity ht, used by category busy only


@pytest.mark.parametrize("variation", list(SCALE))
def test_categories_weights_and_subsamples_see_the_quantities(outcome, sample, variation):
    result = outcome.result
    for dataset in highrate.load_datasets(sample):
        if variation != "nominal" and not dataset.is_mc:
            continue
        ref = reference(list(dataset.files), is_mc=dataset.is_mc, scale=SCALE[variation])
        mll, ht, w = ref["mll"], ref["ht"], ref["weight"]
        # no event sits so close to a cut that float rounding could move it: the counts are exact
        assert np.abs(mll - 100).min() > 1e-6 and np.abs(mll - 91).min() > 1e-6 and np.abs(ht - 100).min() > 1e-3
        masks = {"all": np.ones(len(mll), bool), "high_mll": mll > 100, "busy": ht > 100}
        assert 0 < masks["high_mll"].sum() < len(mll) and 0 < masks["busy"].sum() < len(mll)
        parts = {dataset.name: np.ones(len(mll), bool)}
        if dataset.is_mc:
            parts = {f"{dataset.name}_above": mll > 91, f"{dataset.name}_below": mll <= 91}
        for name, part in parts.items():
            for cat, mask in masks.items():
                m = mask & part
                if variation == "nominal":
                    events, sumw, sumw2 = result.categories[name][cat]
                    assert events == m.sum(), (name, cat)
                    np.testing.assert_allclose([sumw, sumw2], [w[m].sum(), (w[m] ** 2).sum()], rtol=1e-12)
                h = result.histograms[("mll", name, cat, variation)]
                expected, _ = np.histogram(mll[m], bins=BINS[0], range=BINS[1:], weights=w[m])
                np.testing.assert_allclose(h.values(), expected, rtol=1e-12, atol=1e-9, err_msg=f"{name} {cat}")
    up, nominal = (result.histograms[("mll", "DYJetsToLL_M-50_above", "high_mll", v)] for v in ("MuonScaleUp", "nominal"))
    assert up.values().sum() != nominal.values().sum()  # the variation recomputed the quantity's category

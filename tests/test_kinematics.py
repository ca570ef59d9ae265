"""Kinematics helpers against plain numpy: scale_pt bit for bit; delta phi, delta R, nearest-object
matching, cleaning and scikit-hep vector records over generated events, alone and inside a run."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

import highrate
from highrate import Analysis, Axis, Cut, Histogram
from highrate.kinematics import (
    clean,
    delta_phi,
    delta_r,
    delta_r_table,
    leading_pair_mass,
    nearest,
    nth,
    pair_mass,
    scale_pt,
    to_vector,
)


def _jets(rng, n_events):
    counts = rng.poisson(2.5, n_events)
    n = counts.sum()
    jets = ak.zip({"pt": ak.unflatten(rng.exponential(40, n).astype(np.float32) + 15, counts),
                   "phi": ak.unflatten(rng.uniform(-np.pi, np.pi, n).astype(np.float32), counts),
                   "eta": ak.unflatten(rng.normal(0, 2, n).astype(np.float32), counts)})
    met = ak.zip({"pt": rng.exponential(30, n_events).astype(np.float32),
                  "phi": rng.uniform(-np.pi, np.pi, n_events).astype(np.float32)})
    return jets, met, counts


def _expected(jets, met, counts, scale):
    pt = ak.to_numpy(ak.flatten(jets.pt))
    phi = ak.to_numpy(ak.flatten(jets.phi))
    new = (pt * scale).astype(np.float32)
    dpt = (new - pt).astype(np.float64)
    event = np.repeat(np.arange(len(counts)), counts)
    dpx = np.zeros(len(counts))
    dpy = np.zeros(len(counts))
    for i, e in enumerate(event):  # one object at a time, in order
        dpx[e] += dpt[i] * np.float64(np.cos(phi[i]))
        dpy[e] += dpt[i] * np.float64(np.sin(phi[i]))
    mpt, mphi = ak.to_numpy(met.pt), ak.to_numpy(met.phi)
    mex, mey = mpt * np.cos(mphi) - dpx, mpt * np.sin(mphi) - dpy
    return new, np.hypot(mex, mey).astype(np.float32), np.arctan2(mey, mex).astype(np.float32)


@pytest.mark.parametrize("kind", ["jagged", "scalar", "filtered"])
def test_scale_pt_matches_numpy(kind):
    rng = np.random.default_rng(11)
    jets, met, counts = _jets(rng, 2000)
    if kind == "filtered":  # a lazily filtered collection, as after an object selection
        jets = jets[jets.pt > 30]
        counts = ak.to_numpy(ak.num(jets))
    n = int(counts.sum())
    scale = 1.0 + 0.05 * rng.normal(size=n) if kind != "scalar" else np.float64(1.03)
    factor = ak.unflatten(scale, counts) if kind != "scalar" else scale
    new_jets, new_met = scale_pt(jets, factor, met)
    pt, met_pt, met_phi = _expected(jets, met, counts, scale)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(new_jets.pt)), pt)
    assert ak.flatten(new_jets.pt).type.content.primitive == "float32"
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(new_jets.eta)), ak.to_numpy(ak.flatten(jets.eta)))
    np.testing.assert_array_equal(ak.to_numpy(new_met.pt), met_pt)
    np.testing.assert_array_equal(ak.to_numpy(new_met.phi), met_phi)


def test_scale_pt_again_on_the_same_jets_and_on_others():
    """Up, down and other jets: what scale_pt keeps between calls on the same jets (their event
    index, cos and sin of phi, MET's components) never leaks into a call on other jets."""
    rng = np.random.default_rng(5)
    jets, met, counts = _jets(rng, 1500)
    n = int(counts.sum())
    for scale in (1.0 + 0.03 * rng.normal(size=n), 1.0 - 0.03 * rng.normal(size=n)):
        new_jets, new_met = scale_pt(jets, ak.unflatten(scale, counts), met)
        pt, met_pt, met_phi = _expected(jets, met, counts, scale)
        np.testing.assert_array_equal(ak.to_numpy(ak.flatten(new_jets.pt)), pt)
        np.testing.assert_array_equal(ak.to_numpy(new_met.pt), met_pt)
        np.testing.assert_array_equal(ak.to_numpy(new_met.phi), met_phi)
    other, other_met, other_counts = _jets(np.random.default_rng(6), 1500)
    scale = np.full(int(other_counts.sum()), 1.02)
    new_jets, new_met = scale_pt(other, ak.unflatten(scale, other_counts), other_met)
    pt, met_pt, met_phi = _expected(other, other_met, other_counts, scale)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(new_jets.pt)), pt)
    np.testing.assert_array_equal(ak.to_numpy(new_met.pt), met_pt)
    np.testing.assert_array_equal(ak.to_numpy(new_met.phi), met_phi)


# --- delta phi, delta R, nearest, cleaning and vector, against numpy over generated events ---------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A small generated NanoAOD file and its muons and jets as flat numpy arrays per event."""
    from highrate.testing import generate_sample

    (path,) = generate_sample(tmp_path_factory.mktemp("kin"), name="DY", events=3000, files=1, seed=3, is_mc=True)
    with uproot.open(path) as f:
        arrays = f["Events"].arrays(["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Jet_pt", "Jet_eta", "Jet_phi",
                                     "Jet_mass"])
    muons = ak.zip({k: arrays[f"Muon_{k}"] for k in ("pt", "eta", "phi", "mass")})
    jets = ak.zip({k: arrays[f"Jet_{k}"] for k in ("pt", "eta", "phi", "mass")})
    return path, muons, jets


def _np_dphi(a, b):
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return d - 2 * np.pi * np.rint(d / (2 * np.pi))


def _np_dr(eta1, phi1, eta2, phi2):
    """delta R of every pair (rows: first objects, columns: second), in float64."""
    deta = np.subtract.outer(np.asarray(eta1, np.float64), np.asarray(eta2, np.float64))
    dphi = _np_dphi(np.asarray(phi1)[:, None], np.asarray(phi2)[None, :])
    return np.sqrt(deta * deta + dphi * dphi)


def _events(collection):
    """Per event, ``{field: numpy array}`` of the objects (flattened once, then sliced)."""
    flat = {k: ak.to_numpy(ak.flatten(collection[k])) for k in ("pt", "eta", "phi", "mass")}
    stops = np.cumsum(ak.to_numpy(ak.num(collection)))
    starts = stops - ak.to_numpy(ak.num(collection))
    return [{k: v[a:b] for k, v in flat.items()} for a, b in zip(starts, stops, strict=True)]


def test_delta_phi_and_delta_r_match_numpy(generated):
    _, muons, jets = generated
    has = (ak.num(muons) > 0) & (ak.num(jets) > 0)
    mu, jet = ak.firsts(muons[has]), ak.firsts(jets[has])
    dphi = ak.to_numpy(delta_phi(mu, jet))
    expected = _np_dphi(ak.to_numpy(mu.phi), ak.to_numpy(jet.phi))
    np.testing.assert_array_equal(dphi, expected)
    assert dphi.min() >= -np.pi and dphi.max() <= np.pi and np.abs(dphi).max() > 3.0  # it wraps
    raw = ak.to_numpy(mu.phi).astype(np.float64) - ak.to_numpy(jet.phi)
    np.testing.assert_allclose(dphi, (raw + np.pi) % (2 * np.pi) - np.pi, rtol=0, atol=1e-12)
    deta = ak.to_numpy(mu.eta).astype(np.float64) - ak.to_numpy(jet.eta)
    np.testing.assert_array_equal(ak.to_numpy(delta_r(mu, jet)), np.sqrt(deta * deta + expected * expected))
    # a collection against one object per event: one value per object
    per_jet = delta_r(jets[has], mu)
    assert ak.to_list(ak.num(per_jet)) == ak.to_list(ak.num(jets[has]))


@pytest.mark.parametrize("filtered", [False, True])
def test_nearest_table_and_clean_match_numpy(generated, filtered):
    _, muons, jets = generated
    if filtered:  # lazily filtered collections, as after an object selection with awkward
        muons, jets = muons[muons.pt > 10], jets[jets.pt > 25]
    match, dr = nearest(jets, muons)
    bounded, _ = nearest(jets, muons, max_dr=0.4)
    table = delta_r_table(jets, muons)
    cleaned = clean(jets, muons, 0.4)
    want = {"table": [], "dr": [], "pt": [], "bounded": [], "cleaned": []}
    for j, m in zip(_events(jets), _events(muons), strict=True):
        expected = _np_dr(j["eta"], j["phi"], m["eta"], m["phi"])
        nearest_dr = expected.min(axis=1, initial=np.inf)
        best = expected.argmin(axis=1) if len(m["pt"]) else np.zeros(len(j["pt"]), dtype=int)
        pt = np.where(np.isfinite(nearest_dr), m["pt"][best] if len(m["pt"]) else np.nan, np.nan)
        want["table"].append(expected.ravel())
        want["dr"].append(nearest_dr)
        want["pt"].append(pt)
        want["bounded"].append(np.where(nearest_dr <= 0.4, pt, np.nan))
        want["cleaned"].append(j["pt"][nearest_dr > 0.4])
    want = {k: np.concatenate(v) for k, v in want.items()}
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(table, axis=None)), want["table"])
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(dr)), want["dr"])
    np.testing.assert_array_equal(ak.to_numpy(ak.fill_none(ak.flatten(match.pt), np.nan)), want["pt"])
    np.testing.assert_array_equal(ak.to_numpy(ak.fill_none(ak.flatten(bounded.pt), np.nan)), want["bounded"])
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(cleaned.pt)), want["cleaned"])
    assert ak.to_list(ak.num(table)) == ak.to_list(ak.num(jets))
    assert np.isinf(want["dr"]).sum() > 20 and (want["dr"] <= 0.4).sum() > 20  # every case is tested
    assert 0 < len(want["cleaned"]) < len(want["dr"])


def test_the_helpers_trace_to_the_same_types(generated):
    _, muons, jets = generated
    traced_mu = ak.Array(muons.layout.to_typetracer(forget_length=True))
    traced_jet = ak.Array(jets.layout.to_typetracer(forget_length=True))
    for f in (lambda a, b: nearest(a, b)[0], lambda a, b: nearest(a, b)[1], delta_r_table, clean,
              lambda a, b: nearest(a, b, max_dr=0.4)[0]):
        real, traced = f(jets, muons), f(traced_jet, traced_mu)
        assert str(real.type.content) == str(traced.type.content)


def test_to_vector(generated):
    _, muons, _ = generated
    two = muons[ak.num(muons) >= 2]
    v = to_vector(two)
    mass = ak.to_numpy((v[:, 0] + v[:, 1]).mass)
    expected = leading_pair_mass(two)
    np.testing.assert_allclose(mass, expected, rtol=1e-4, atol=1e-3)  # vector computes in float32
    np.testing.assert_allclose(ak.to_numpy(v[:, 0].deltaR(v[:, 1])), ak.to_numpy(delta_r(two[:, 0], two[:, 1])),
                               rtol=1e-5, atol=1e-5)
    met = to_vector(ak.zip({"pt": np.array([10.0, 20.0]), "phi": np.array([0.0, np.pi / 2])}))
    np.testing.assert_allclose(ak.to_numpy(met.px), [10.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="pt and phi"):
        to_vector(ak.zip({"x": np.zeros(2)}))


# --- the helpers inside a run: traced first, then on real chunks ------------------------------------


def _good_muons(ev):
    mu = ev.Muon
    return mu[(mu.pt > 10) & (abs(mu.eta) < 2.4)]


def _apart(ev):
    mu = ev.GoodMuon
    return ak.fill_none(delta_r(nth(mu, 0), nth(mu, 1)) > 1.0, False)


def _matched_muon_pt(ev):
    match, _ = nearest(ev.GoodJet, ev.GoodMuon, max_dr=0.4)
    return ak.fill_none(match.pt, -1.0)


def _vector_mass(ev):
    v = to_vector(ev.GoodMuon)
    return (v[:, 0] + v[:, 1]).mass


ANALYSIS = Analysis(
    name="kinematics_helpers",
    objects={
        "GoodMuon": _good_muons,
        "GoodJet": lambda ev: ev.Jet[ev.Jet.pt > 20],
        "CleanJet": lambda ev: clean(ev.GoodJet, ev.GoodMuon, 0.4),
    },
    preselection=[Cut("two_muons", lambda ev: ak.num(ev.GoodMuon) >= 2), Cut("apart", _apart)],
    categories={"all": []},
    quantities={
        "dr_jet_muon": lambda ev: nearest(ev.GoodJet, ev.GoodMuon)[1],
        "matched_pt": _matched_muon_pt,
        "mass": _vector_mass,
    },
    histograms=[
        Histogram("nCleanJet", Axis("nCleanJet", 8, 0, 8)),
        Histogram("dr_jet_muon", Axis("dr_jet_muon", 40, 0, 4)),
        Histogram("matched_pt", Axis("matched_pt", 20, -10, 90)),
        Histogram("mass", Axis("mass", 30, 0, 150)),
    ],
)


def _reference(muons, jets):
    """The same selection and quantities, one event at a time in numpy."""
    out = {"nCleanJet": [], "dr_jet_muon": [], "matched_pt": [], "mass": [], "presel": 0}
    for m, j in zip(_events(muons), _events(jets), strict=True):
        good = (m["pt"] > 10) & (np.abs(m["eta"]) < 2.4)
        m = {k: v[good] for k, v in m.items()}
        j = {k: v[j["pt"] > 20] for k, v in j.items()}
        if len(m["pt"]) < 2 or not _np_dr(m["eta"][:1], m["phi"][:1], m["eta"][1:2], m["phi"][1:2])[0, 0] > 1.0:
            continue
        out["presel"] += 1
        table = _np_dr(j["eta"], j["phi"], m["eta"], m["phi"])
        nearest_dr = table.min(axis=1, initial=np.inf)
        out["nCleanJet"].append(int((nearest_dr > 0.4).sum()))
        out["dr_jet_muon"] += nearest_dr.tolist()
        out["matched_pt"] += [float(m["pt"][k]) if d <= 0.4 else -1.0 for k, d in zip(table.argmin(axis=1), nearest_dr,
                                                                                       strict=True)] if len(j["pt"]) else []
        out["mass"].append(float(pair_mass(*(tuple(m[k][n] for k in ("pt", "eta", "phi", "mass")) for n in (0, 1)))))
    return out


def test_helpers_in_a_run_match_numpy(generated):
    path, muons, jets = generated
    dataset = highrate.Dataset("DY", "DY", (str(path),), metadata={"is_mc": True})
    result = highrate.run(ANALYSIS, [dataset], options=highrate.RunOptions(chunk_size=1000)).result
    ref = _reference(muons, jets)
    assert ref["presel"] > 50 and sum(ref["nCleanJet"]) > 0
    for name, axis in (("nCleanJet", (8, 0, 8)), ("dr_jet_muon", (40, 0, 4)), ("matched_pt", (20, -10, 90))):
        got = result.histograms[(name, "DY", "all", "nominal")]
        expected, _ = np.histogram(ref[name], bins=np.linspace(axis[1], axis[2], axis[0] + 1))
        np.testing.assert_array_equal(got.values(), expected, err_msg=name)
    mass = result.histograms[("mass", "DY", "all", "nominal")].values()
    expected, _ = np.histogram(ref["mass"], bins=np.linspace(0, 150, 31))
    assert expected.sum() > 0.9 * ref["presel"]
    assert np.abs(mass - expected).sum() <= 2  # vector's float32 may move a value across an edge

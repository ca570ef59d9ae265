"""scale_pt against a plain numpy computation of its documented formula, bit for bit."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from highrate.kinematics import scale_pt


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

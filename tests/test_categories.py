"""Cartesian categories and subsamples against independent numpy selections."""

from __future__ import annotations

import dataclasses

import awkward as ak
import numpy as np
import pytest
from reference_zmumu import analyse, read

import highrate
from highrate import Cut
from highrate.categories import cartesian
from highrate.errors import ConfigError

few_pv = Cut("few_pv", lambda ev: ev.PV.npvsGood < 30)
many_pv = Cut("many_pv", lambda ev: ev.PV.npvsGood >= 30)
no_jet = Cut("no_jet", lambda ev: ak.num(ev.JetGood) == 0)
jets = Cut("jets", lambda ev: ak.num(ev.JetGood) >= 1)


@pytest.fixture(scope="module")
def mc_and_reference(sample, zmumu_path):
    mc = next(d for d in highrate.load_datasets(sample) if d.is_mc)
    parts = [analyse(read(f, is_mc=True), is_mc=True)["events"] for f in mc.files]
    ref = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return highrate.load_analysis(zmumu_path), mc, ref


def mll_hist(ref, mask):
    return np.histogram(ref["mll"][mask], bins=120, range=(60, 120), weights=ref["w"][mask])[0]


def test_cartesian_names_and_cuts():
    cats = cartesian({"pv": {"lowpv": [few_pv], "highpv": [many_pv]}, "jet": {"0j": [no_jet], "1j": [jets]}})
    assert list(cats) == ["lowpv_0j", "lowpv_1j", "highpv_0j", "highpv_1j"]
    assert cats["highpv_1j"] == (many_pv, jets)
    with pytest.raises(ConfigError):
        cartesian({"pv": {}})


def test_cartesian_categories_match_numpy(mc_and_reference):
    base, mc, ref = mc_and_reference
    cats = cartesian({"pv": {"lowpv": [few_pv], "highpv": [many_pv]}, "jet": {"0j": [no_jet], "1j": [jets]}})
    analysis = dataclasses.replace(base, categories=cats, source=None)
    out = highrate.run(analysis, [mc], options=highrate.RunOptions(chunk_size=6000)).result
    masks = {
        "lowpv_0j": (ref["npv"] < 30) & (ref["njet"] == 0), "lowpv_1j": (ref["npv"] < 30) & (ref["njet"] >= 1),
        "highpv_0j": (ref["npv"] >= 30) & (ref["njet"] == 0), "highpv_1j": (ref["npv"] >= 30) & (ref["njet"] >= 1),
    }
    for cat, mask in masks.items():
        assert mask.sum() > 20, cat
        np.testing.assert_array_equal(out.histograms[("mll", mc.name, cat, "nominal")].values(), mll_hist(ref, mask))
        assert out.categories[mc.name][cat][0] == mask.sum()


def test_categories_sharing_no_events_filled_together(mc_and_reference):
    """Disjoint categories are filled in one pass; a category of all events is their sum;
    categories overlapping them are filled on their own. All against numpy, per-event and
    per-leading-jet histograms, sums of weights and of their squares."""
    base, mc, ref = mc_and_reference
    cells = cartesian({"pv": {"lowpv": [few_pv], "highpv": [many_pv]}, "jet": {"0j": [no_jet], "1j": [jets]}})
    cats = {"baseline": (), **cells, "any_jet": (jets,), "high_pv": (many_pv,)}
    analysis = dataclasses.replace(base, categories=cats, source=None)
    out = highrate.run(analysis, [mc], options=highrate.RunOptions(chunk_size=6000)).result
    low, jet = ref["npv"] < 30, ref["njet"] >= 1
    masks = {"lowpv_0j": low & ~jet, "lowpv_1j": low & jet, "highpv_0j": ~low & ~jet, "highpv_1j": ~low & jet,
             "any_jet": jet, "high_pv": ~low}
    w = ref["w"]
    for cat, mask in masks.items():
        assert mask.sum() > 20, cat
        h = out.histograms[("mll", mc.name, cat, "nominal")]
        np.testing.assert_array_equal(h.values(), mll_hist(ref, mask), err_msg=cat)
        np.testing.assert_array_equal(
            h.variances(), np.histogram(ref["mll"][mask], bins=120, range=(60, 120), weights=w[mask] ** 2)[0])
        lead = mask & ref["has_jet"]
        jet_h = out.histograms[("JetGood_pt_1", mc.name, cat, "nominal")]
        np.testing.assert_array_equal(
            jet_h.values(), np.histogram(ref["jet_pt_1"][lead], bins=100, range=(0, 500), weights=w[lead])[0])
    everything = np.ones(len(w), dtype=bool)
    np.testing.assert_allclose(out.histograms[("mll", mc.name, "baseline", "nominal")].values(),
                               mll_hist(ref, everything), rtol=1e-12)
    np.testing.assert_allclose(out.histograms[("mll", mc.name, "baseline", "nominal")].variances(),
                               np.histogram(ref["mll"], bins=120, range=(60, 120), weights=w**2)[0], rtol=1e-12)


def test_subsamples_split_a_dataset_exactly(mc_and_reference):
    base, mc, ref = mc_and_reference
    parts = {"even": [Cut("even", lambda ev: ev.PV.npvsGood % 2 == 0)],
             "odd": [Cut("odd", lambda ev: ev.PV.npvsGood % 2 == 1)]}
    analysis = dataclasses.replace(base, subsamples={mc.sample: parts}, source=None)
    out = highrate.run(analysis, [mc], options=highrate.RunOptions(chunk_size=6000)).result
    datasets = {k[1] for k in out.histograms}
    assert datasets == {f"{mc.name}_even", f"{mc.name}_odd"}  # the whole dataset is not filled twice
    for part, mask in (("even", ref["npv"] % 2 == 0), ("odd", ref["npv"] % 2 == 1)):
        h = out.histograms[("mll", f"{mc.name}_{part}", "baseline", "nominal")]
        np.testing.assert_array_equal(h.values(), mll_hist(ref, mask))
        assert out.categories[f"{mc.name}_{part}"]["baseline"][0] == mask.sum()
    assert out.cutflow[mc.name]["presel"] == len(ref["mll"])  # the cutflow stays per dataset


def test_subsamples_in_the_report(mc_and_reference, tmp_path):
    from highrate.outputs.write import write_outputs

    base, mc, _ = mc_and_reference
    parts = {"even": [Cut("even", lambda ev: ev.PV.npvsGood % 2 == 0)],
             "odd": [Cut("odd", lambda ev: ev.PV.npvsGood % 2 == 1)]}
    analysis = dataclasses.replace(base, subsamples={mc.sample: parts}, source=None)
    options = highrate.RunOptions(chunk_size=6000)
    report = write_outputs(tmp_path, highrate.run(analysis, [mc], options=options), analysis, options)
    entry = report["datasets"][f"{mc.name}_odd"]
    assert entry["subsample_of"] == mc.name
    assert entry["metadata"]["sample"] == f"{mc.sample}_odd" and entry["metadata"]["is_mc"] is True

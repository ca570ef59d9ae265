"""The full examples/zmumu analysis: every variation and category, checked against numpy and
correctionlib called directly on the same events."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot
from reference_zmumu import analyse, read

import highrate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "zmumu"
VARIATIONS = {"nominal", "pileupUp", "pileupDown", "muon_idUp", "muon_idDown", "muon_isoUp", "muon_isoDown",
              "JESUp", "JESDown", "JERUp", "JERDown"}


@pytest.fixture(scope="module")
def run(sample):
    analysis = highrate.load_analysis(EXAMPLE / "analysis.py")
    datasets = highrate.load_datasets(sample)
    return datasets, highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=8000))


def reference(ds):
    parts = [analyse(read(f, is_mc=ds.is_mc), is_mc=ds.is_mc)["events"] for f in ds.files]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_histograms_for_every_variation_and_category(run):
    datasets, out = run
    mc = next(d for d in datasets if d.is_mc)
    data = next(d for d in datasets if not d.is_mc)
    keys = out.result.histograms
    assert {k[3] for k in keys if k[1] == mc.name} == VARIATIONS
    assert {k[3] for k in keys if k[1] == data.name} == {"nominal"}
    assert {k[2] for k in keys} == {"baseline", "0j_lead_mu_pos", "0j_lead_mu_neg", "1j_lead_mu_pos", "1j_lead_mu_neg"}
    # the four cartesian categories partition the baseline
    for ds in (mc.name, data.name):
        cats = out.result.categories[ds]
        assert sum(cats[c][0] for c in cats if c != "baseline") == cats["baseline"][0]


def test_lumi_mask_removes_exactly_the_masked_pairs(run):
    datasets, out = run
    data = next(d for d in datasets if not d.is_mc)
    golden = json.loads((Path(data.metadata["corrections"]) / "golden.json").read_text())
    allowed = {(int(r), lumi) for r, ranges in golden.items() for a, b in ranges for lumi in range(a, b + 1)}
    kept = 0
    for f in data.files:
        t = uproot.open(f)["Events"]
        runs, lumis = t["run"].array(library="np"), t["luminosityBlock"].array(library="np")
        kept += sum((int(r), int(lumi)) in allowed for r, lumi in zip(runs, lumis, strict=True))
    steps = out.result.cutflow[data.name]
    assert 0 < steps["skim/lumi_mask"] == kept < steps["initial"]
    mc = next(d for d in datasets if d.is_mc)
    assert out.result.cutflow[mc.name]["skim/lumi_mask"] == out.result.cutflow[mc.name]["initial"]


def test_weight_variations_equal_correctionlib_products(run):
    import correctionlib

    datasets, out = run
    mc = next(d for d in datasets if d.is_mc)
    ev = reference(mc)
    folder = Path(mc.metadata["corrections"])
    pu = correctionlib.CorrectionSet.from_file(str(folder / "pileup.json"))["pileup"]
    sf = correctionlib.CorrectionSet.from_file(str(folder / "muon_sf.json"))

    def muons(name, v):
        c = sf[name]
        return (c.evaluate(np.abs(ev["mu1_eta"]).astype(float), ev["mu1_pt"].astype(float), v)
                * c.evaluate(np.abs(ev["mu2_eta"]).astype(float), ev["mu2_pt"].astype(float), v))

    sumw = sum(float(uproot.open(f)["Runs"]["genEventSumw"].array(library="np").sum()) for f in mc.files)
    meta = out.plans[mc.name].meta
    norm = meta["xsec"] * meta["lumi"] / sumw
    ntrue = ev["ntrue"].astype(float)
    factors = {"pileup": [pu.evaluate(ntrue, v) for v in ("nominal", "up", "down")],
               "muon_id": [muons("muon_id_sf", v) for v in ("nominal", "systup", "systdown")],
               "muon_iso": [muons("muon_iso_sf", v) for v in ("nominal", "systup", "systdown")]}
    base = ev["w"] * norm
    nominal = base * factors["pileup"][0] * factors["muon_id"][0] * factors["muon_iso"][0]
    h = out.result.histograms[("mll", mc.name, "baseline", "nominal")]
    np.testing.assert_allclose(h.values().sum(), nominal.sum(), rtol=1e-10)
    for name, (nom, up, down) in factors.items():
        for suffix, varied in (("Up", up), ("Down", down)):
            expected = nominal / nom * varied
            h = out.result.histograms[("mll", mc.name, "baseline", f"{name}{suffix}")]
            mll, _ = np.histogram(ev["mll"], bins=120, range=(60, 120), weights=expected)
            np.testing.assert_allclose(h.values(), mll, rtol=1e-9, atol=1e-9, err_msg=f"{name}{suffix}")
            assert not np.isclose(h.values().sum(), nominal.sum(), rtol=1e-6)


def test_jer_is_reproducible_and_moves_jets_only(run, sample):
    datasets, out = run
    mc = next(d for d in datasets if d.is_mc)
    again = highrate.run(highrate.load_analysis(EXAMPLE / "analysis.py"), [mc],
                         options=highrate.RunOptions(chunk_size=3000))  # other chunks, same numbers
    for var in ("JERUp", "JERDown", "JESUp"):
        key = ("JetGood_pt_1", mc.name, "baseline", var)
        np.testing.assert_allclose(again.result.histograms[key].values(), out.result.histograms[key].values(),
                                   rtol=1e-12)
        nominal = out.result.histograms[("JetGood_pt_1", mc.name, "baseline", "nominal")].values()
        assert not np.array_equal(out.result.histograms[key].values(), nominal)
        # muons are untouched: the dimuon mass in the baseline only changes through nothing
        np.testing.assert_array_equal(out.result.histograms[("mll", mc.name, "baseline", var)].values(),
                                      out.result.histograms[("mll", mc.name, "baseline", "nominal")].values())
    met = {v: out.result.histograms[("MET_pt", mc.name, "baseline", v)].values() for v in ("nominal", "JESUp")}
    assert not np.array_equal(met["nominal"], met["JESUp"])  # MET follows the jets


def test_worker_processes_get_the_example_and_its_helper_module(run):
    datasets, out = run
    mc = next(d for d in datasets if d.is_mc)
    # analysis.py imports analysis_nominal.py from its folder: it travels to the workers by value
    parallel = highrate.run(highrate.load_analysis(EXAMPLE / "analysis.py"), [mc],
                            options=highrate.RunOptions(executor="processes", workers=2, chunk_size=8000))
    assert parallel.result.failed == []
    for key, h in out.result.histograms.items():
        if key[1] == mc.name:
            np.testing.assert_allclose(parallel.result.histograms[key].values(), h.values(), rtol=1e-12, err_msg=str(key))


def test_editing_a_helper_module_changes_the_analysis_hash(tmp_path):
    import shutil

    copy = tmp_path / "zmumu"
    shutil.copytree(EXAMPLE, copy)
    before = highrate.load_analysis(copy / "analysis.py").hash()
    helper = copy / "analysis_nominal.py"
    helper.write_text(helper.read_text().replace('"lead_pt": 25', '"lead_pt": 26'))
    assert highrate.load_analysis(copy / "analysis.py").hash() != before


def test_fast_paths_change_nothing(run, monkeypatch):
    """The full example with highrate's numpy fast paths switched off (awkward does every
    operation, the preselection filters with ``events[mask]``, variations run on the skimmed
    events): every histogram and cutflow is bit-identical."""
    from highrate.arrays import fast as fastarrays
    from highrate.engine.stages import cuts, recording

    datasets, fast = run
    monkeypatch.setattr(fastarrays, "_FUNCTIONS", {})
    monkeypatch.setattr(fastarrays, "_ufunc", lambda *args: None)
    monkeypatch.setattr(fastarrays, "_mask_select", lambda *args: None)
    monkeypatch.setattr(cuts, "filter_events", lambda events, mask: events[mask])
    monkeypatch.setattr(recording.Dependencies, "affected", lambda self, analysis, fields: {"*"} | set(analysis.objects))
    monkeypatch.setenv("HIGHRATE_CACHE", "off")
    plain = highrate.run(highrate.load_analysis(EXAMPLE / "analysis.py"), datasets,
                         options=highrate.RunOptions(chunk_size=8000))
    assert plain.result.histograms.keys() == fast.result.histograms.keys()
    for key, h in fast.result.histograms.items():
        other = plain.result.histograms[key]
        np.testing.assert_array_equal(h.values(flow=True), other.values(flow=True), err_msg=str(key))
        np.testing.assert_array_equal(h.variances(flow=True), other.variances(flow=True), err_msg=str(key))
    assert plain.result.cutflow == fast.result.cutflow


def test_modules_of_the_folder_the_analysis_does_not_use_are_left_alone(tmp_path, monkeypatch):
    """The program loading an analysis may live in the analysis' folder (a driver script, the
    tests here): its modules keep their identity, and they are not shipped as helpers."""
    import shutil
    import sys

    copy = tmp_path / "zmumu"
    shutil.copytree(EXAMPLE, copy)
    (copy / "driver_module.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(copy))
    import driver_module

    try:
        analysis = highrate.load_analysis(copy / "analysis.py")
        assert sys.modules["driver_module"] is driver_module
        assert "# module driver_module" not in analysis.source
        assert "# module analysis_nominal" in analysis.source  # the helper it does import
    finally:
        sys.modules.pop("driver_module", None)

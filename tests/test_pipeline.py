"""End-to-end: highrate's histograms and cutflows equal an independent numpy computation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot
from compare import assert_matches_reference
from reference_zmumu import HISTS, analyse, combine, read

import highrate
from highrate.engine.result import accumulate
from highrate.outputs.write import write_outputs


def expected(datasets: list[highrate.Dataset]) -> dict[str, dict]:
    return {
        d.name: combine([analyse(read(f, is_mc=d.is_mc), is_mc=d.is_mc) for f in d.files]) for d in datasets
    }


@pytest.fixture(scope="module")
def setup(sample, zmumu_path):
    analysis = highrate.load_analysis(zmumu_path)
    datasets = highrate.load_datasets(sample)
    return analysis, datasets, expected(datasets)


def check(outcome: highrate.RunOutcome, truth: dict[str, dict]) -> None:
    assert_matches_reference(outcome.result, truth)


def test_sample_has_signal(setup):
    _, _, truth = setup
    for ds in truth.values():  # a test on an empty selection would prove nothing
        assert ds["cutflow"]["presel"] > 1000
        assert ds["hists"]["JetGood_pt_1"][0].sum() != 0


@pytest.mark.parametrize(
    ("executor", "workers"), [("sequential", None), ("processes", 2), ("dask", 2)]
)
def test_executors_match_numpy(setup, executor, workers):
    analysis, datasets, truth = setup
    options = highrate.RunOptions(executor=executor, workers=workers, chunk_size=5000)
    outcome = highrate.run(analysis, datasets, options=options)
    assert outcome.chunks > 4
    check(outcome, truth)


def test_chunks_align_with_clusters_and_cover_every_entry(setup):
    analysis, datasets, truth = setup
    outcome = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=3000))
    check(outcome, truth)  # 1500-entry clusters: every boundary lies on one


def test_limit_options(setup):
    analysis, datasets, _ = setup
    options = highrate.RunOptions(chunk_size=5000, limit_files=1, limit_chunks=2)
    outcome = highrate.run(analysis, datasets, options=options)
    for d in datasets:
        first = d.files[0]
        n = uproot.open(first)["Events"].num_entries
        assert outcome.result.counts[d.name]["chunks"] == 2
        assert outcome.result.counts[d.name]["total"] == min(n, 2 * 5000) or outcome.result.counts[d.name]["total"] < n
        part = analyse(read(first, 0, outcome.result.counts[d.name]["total"], is_mc=d.is_mc), is_mc=d.is_mc)
        assert outcome.result.cutflow[d.name] == part["cutflow"]


def test_only_used_branches_are_read(setup):
    analysis, datasets, _ = setup
    outcome = highrate.run(analysis, datasets[:1], options=highrate.RunOptions(chunk_size=100_000))
    plan = outcome.plans[datasets[0].name]
    assert set(plan.branches) == {
        "PV_npvsGood", "Flag_goodVertices", "HLT_IsoMu24", "genWeight", "nMuon", "Muon_pt", "Muon_eta",
        "Muon_phi", "Muon_mass", "Muon_charge", "Muon_tightId", "Muon_pfRelIso04_all", "nJet", "Jet_pt",
        "Jet_eta", "Jet_jetId",
    }
    # bytes read are exactly the compressed baskets of those branches, nothing else
    expected_bytes = 0
    for f in datasets[0].files:
        t = uproot.open(f)["Events"]
        for b in plan.branches:
            expected_bytes += int(np.sum(t[b].member("fBasketBytes")[: t[b].num_baskets]))
    assert outcome.result.counts[datasets[0].name]["bytes_read"] == expected_bytes


def test_data_has_no_weights_and_mc_does(setup):
    analysis, datasets, _ = setup
    outcome = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=100_000))
    mc = next(d.name for d in datasets if d.is_mc)
    data = next(d.name for d in datasets if not d.is_mc)
    assert "genWeight" in outcome.plans[mc].branches
    assert "genWeight" not in outcome.plans[data].branches


def test_accumulate_is_associative(setup):
    analysis, datasets, _ = setup
    from highrate.execution.tasks import AnalysisPayload, Task
    from highrate.execution.worker import process_chunk

    outcome = highrate.run(analysis, datasets[:1], options=highrate.RunOptions(chunk_size=4000))
    plan = outcome.plans[datasets[0].name]
    from highrate.data.io.files import describe
    from highrate.data.partition import WorkItem, split_entries

    info = describe(datasets[0].files[0], "Events")
    items = [WorkItem(datasets[0].name, info.url, "Events", a, b) for a, b in split_entries(info.entries, info.clusters, 4000)]
    payload = AnalysisPayload.of(analysis)
    parts = [process_chunk(Task(i, plan, payload)) for i in items]
    assert len(parts) >= 3
    left = accumulate([accumulate(parts[:2]), accumulate(parts[2:])])
    right = accumulate([parts[0], accumulate(parts[1:])])
    flat = accumulate(parts)
    for r in (left, right):
        assert r.cutflow == flat.cutflow and r.counts == flat.counts
        for k, h in flat.histograms.items():
            np.testing.assert_array_equal(r.histograms[k].values(), h.values())
    before = parts[0].histograms[("mll", datasets[0].name, "baseline", "nominal")].values().copy()
    accumulate(parts)
    np.testing.assert_array_equal(parts[0].histograms[("mll", datasets[0].name, "baseline", "nominal")].values(), before)


def test_the_analysis_is_pickled_only_to_leave_the_process(setup):
    """A sequential run never pickles the analysis; a payload sent elsewhere carries it by value."""
    import pickle

    from highrate.execution.tasks import AnalysisPayload

    analysis = setup[0]
    payload = AnalysisPayload.of(analysis)
    assert payload._blob is None and payload.get() is analysis
    copy = pickle.loads(pickle.dumps(payload))
    assert copy.hash == payload.hash and copy._blob == payload._blob is not None
    import cloudpickle

    again = cloudpickle.loads(copy.blob)
    assert again.hash() == analysis.hash() and [c.name for c in again.skim] == [c.name for c in analysis.skim]


def test_outputs_written_and_readable(setup, tmp_path):
    analysis, datasets, truth = setup
    options = highrate.RunOptions(chunk_size=6000)
    outcome = highrate.run(analysis, datasets, options=options)
    report = write_outputs(tmp_path, outcome, analysis, options)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["events"] == report["events"]
    total = sum(t["n"] for t in truth.values())
    assert on_disk["events"]["total"] == total
    assert on_disk["events"]["skimmed"] == sum(t["cutflow"]["skim"] for t in truth.values())
    assert on_disk["events"]["preselected"] == sum(t["cutflow"]["presel"] for t in truth.values())
    assert on_disk["events_per_s"] == pytest.approx(total / on_disk["wall_s"])
    assert on_disk["failed_chunks"] == []
    assert on_disk["bytes_read"] > 0 and on_disk["analysis"]["hash"] == analysis.hash()
    assert on_disk["versions"]["uproot"] == uproot.__version__
    from importlib.metadata import version

    for package in ("highrate", "awkward", "numpy", "hist", "boost-histogram", "dask", "distributed"):
        assert on_disk["versions"][package] == version(package), package  # the installed metadata's
    for ds, t in truth.items():
        assert on_disk["cutflow"][ds]["steps"] == t["cutflow"]
        assert on_disk["cutflow"][ds]["categories"]["baseline"]["events"] == t["cutflow"]["presel"]
    with uproot.open(tmp_path / "histograms.root") as f:
        for ds, t in truth.items():
            for name in HISTS:
                h = f[f"{name}/{ds}/baseline/nominal"]
                np.testing.assert_array_equal(h.values(), t["hists"][name][0])
                np.testing.assert_array_equal(h.variances(), t["hists"][name][1])
    pickled = highrate.outputs.histograms.read_pickle(tmp_path / "histograms.pkl")
    ds = datasets[0].name
    np.testing.assert_array_equal(pickled[("mll", ds, "baseline", "nominal")].values(), truth[ds]["hists"]["mll"][0])

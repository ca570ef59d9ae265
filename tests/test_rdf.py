"""RDataFrame analyses (highrate.rdf): examples/zmumu_rdf against the independent numpy reference
and the columnar example, on sequential, processes and Dask (DistRDF) executors."""

from __future__ import annotations

import ast
import json
import pickle
import shutil
from pathlib import Path

import distributed
import numpy as np
import pytest
import uproot
import yaml

ROOT = pytest.importorskip("ROOT", reason="the ROOT wheel is not installed: pip install 'highrate[rdf]'")

from reference_zmumu import HISTS, analyse, combine, read  # noqa: E402

from highrate.cli.main import main  # noqa: E402
from highrate.rdf import loading  # noqa: E402
from highrate.rdf.loading import is_rdf_analysis  # noqa: E402
from highrate.rdf.results import to_hist, variation_name  # noqa: E402
from highrate.testing import generate_dataset_set  # noqa: E402

EXAMPLES = Path(__file__).parents[1] / "examples"
RDF = EXAMPLES / "zmumu_rdf" / "analysis.py"
COLUMNAR = EXAMPLES / "zmumu" / "analysis_nominal.py"
DATASETS = {"DYJetsToLL_M-50": True, "SingleMuon_2018": False}  # name: is_mc


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate_dataset_set(tmp_path_factory.mktemp("rdf"), events=20000, files=2, seed=1)


def _run(analysis: Path, datasets: Path, out: Path, *extra: str) -> tuple[dict, dict]:
    assert main(["run", str(analysis), "--datasets", str(datasets), "--output", str(out), "--no-progress",
                 "--no-checkpoints", *extra]) == 0
    with (out / "histograms.pkl").open("rb") as f:
        return pickle.load(f), json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def sequential(sample):
    return _run(RDF, sample, sample.parent / "rdf-seq")


def _reference(datasets: Path, name: str, is_mc: bool) -> dict:
    files = sorted((datasets.parent / name).glob("*.root"))
    return combine([analyse(read(str(f), is_mc=is_mc), is_mc=is_mc) for f in files])


def test_detects_rdf_analysis_files():
    assert is_rdf_analysis(RDF)
    assert not is_rdf_analysis(COLUMNAR)


def test_sequential_matches_numpy_reference(sample, sequential):
    hists, report = sequential
    assert report["engine"] == "rdataframe"
    for name, is_mc in DATASETS.items():
        ref = _reference(sample, name, is_mc)
        assert report["cutflow"][name]["steps"] == ref["cutflow"]
        assert report["datasets"][name]["events"] == {"total": ref["n"], "skimmed": ref["cutflow"]["skim"],
                                                      "preselected": ref["cutflow"]["presel"]}
        for hname in HISTS:
            h = hists[(hname, name, "baseline", "nominal")]
            sumw, sumw2 = ref["hists"][hname]
            np.testing.assert_allclose(h.values(), sumw, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(h.variances(), sumw2, rtol=1e-9, atol=1e-9)
    assert report["events_per_s"] > 0 and report["mb_per_s"] > 0
    assert (sample.parent / "rdf-seq" / "histograms.root").stat().st_size > 0


def test_same_histograms_as_the_columnar_example(sample, sequential):
    hists, report = sequential
    columnar, creport = _run(COLUMNAR, sample, sample.parent / "columnar")
    assert set(hists) == set(columnar)
    for key, h in columnar.items():
        np.testing.assert_allclose(hists[key].values(flow=True), h.values(flow=True), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(hists[key].variances(flow=True), h.variances(flow=True), rtol=1e-9, atol=1e-9)
    for name in DATASETS:
        assert report["cutflow"][name]["steps"] == creport["cutflow"][name]["steps"]
        assert report["datasets"][name]["metadata"] == creport["datasets"][name]["metadata"]  # sum_genweight too


def test_processes_give_the_same_result(sample, sequential):
    hists, report = _run(RDF, sample, sample.parent / "rdf-proc", "--executor", "processes", "--workers", "2")
    assert report["options"]["executor"] == "processes"
    assert report["cutflow"] == sequential[1]["cutflow"]
    for key, h in sequential[0].items():
        np.testing.assert_array_equal(hists[key].values(flow=True), h.values(flow=True))


def test_dask_distrdf_gives_the_same_histograms(sample, sequential):
    hists, report = _run(RDF, sample, sample.parent / "rdf-dask", "--executor", "dask", "--workers", "2")
    assert report["options"]["executor"] == "dask"
    assert report["events"]["total"] == 40000
    assert report["cutflow"] == sequential[1]["cutflow"]  # DistRDF: each named filter counted
    for key, h in sequential[0].items():
        np.testing.assert_allclose(hists[key].values(flow=True), h.values(flow=True), rtol=1e-9)


def test_variation_names_follow_highrate():
    assert variation_name("nominal") == "nominal"
    assert variation_name("pileup:up") == "pileupUp"
    assert variation_name("pileup:down") == "pileupDown"
    assert variation_name("jes:3") == "jes_3"


def test_th1_becomes_hist_with_flow_and_sumw2():
    th = ROOT.TH1D("t_rdf", ";x title;", 4, 0.0, 4.0)
    th.Sumw2()
    for x, w in ((-1.0, 2.0), (0.5, 1.5), (0.7, 0.5), (3.5, 3.0), (9.0, 1.0)):
        th.Fill(x, w)
    h = to_hist(th, "x")
    np.testing.assert_allclose(h.values(flow=True), [2.0, 2.0, 0, 0, 3.0, 1.0])
    np.testing.assert_allclose(h.variances(flow=True), [4.0, 1.5**2 + 0.5**2, 0, 0, 9.0, 1.0])
    assert h.axes[0].label == "x title"


VARIED = '''"""The example with the muons' pT varied by ±1 % through RDataFrame's Vary."""
import importlib.util

_spec = importlib.util.spec_from_file_location("zmumu_rdf_example", {example!r})
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)


def build(df, dataset):
    scaled = df.Vary("Muon_pt", "ROOT::RVec<ROOT::RVecF>{{Muon_pt * 1.01f, Muon_pt * 0.99f}}", ["up", "down"],
                     "muon_scale")
    return _example.build(scaled, dataset)
'''


def test_vary_gives_highrate_variations_equal_to_numpy(sample, tmp_path):
    """Vary + VariationsFor: each tag is a highrate variation (muon_scaleUp/Down) whose histogram
    is the numpy reference run on muons scaled the same way (in float32, as RDataFrame does)."""
    analysis = tmp_path / "varied.py"
    analysis.write_text(VARIED.format(example=str(RDF)))
    name = "DYJetsToLL_M-50"
    hists, report = _run(analysis, sample, tmp_path / "out", "--dataset", name)
    files = sorted((sample.parent / name).glob("*.root"))
    for variation, factor in (("nominal", None), ("muon_scaleUp", 1.01), ("muon_scaleDown", 0.99)):
        parts = []
        for f in files:
            d = read(str(f), is_mc=True)
            if factor is not None:
                d = {**d, "Muon_pt": d["Muon_pt"] * np.float32(factor)}
            parts.append(analyse(d, is_mc=True))
        ref = combine(parts)
        h = hists[("mll", name, "baseline", variation)]
        np.testing.assert_allclose(h.values(), ref["hists"]["mll"][0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(h.variances(), ref["hists"]["mll"][1], rtol=1e-9, atol=1e-9)
        if variation == "nominal":
            assert report["cutflow"][name]["steps"] == ref["cutflow"]
    assert {k[3] for k in hists} == {"nominal", "muon_scaleUp", "muon_scaleDown"}


def test_root_urls_with_a_failing_replica_give_the_local_histograms(sample, sequential, xrootd_server, tmp_path):
    """The MC files served by a real XRootD server, each listed with a first replica that does
    not exist: ROOT opens the second, the report names the first's failure, and the histograms
    are those of the local files."""
    name = "DYJetsToLL_M-50"
    entries = []
    for f in sorted((sample.parent / name).glob("*.root")):
        copy = xrootd_server.export_dir / "rdf" / f.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, copy)
        entries.append({"replicas": [xrootd_server.url(f"rdf/missing_{f.name}"), xrootd_server.url(copy)]})
    meta = yaml.safe_load(sample.read_text())["datasets"][name]["metadata"]
    remote = tmp_path / "remote.yaml"
    remote.write_text(yaml.safe_dump({"datasets": {name: {"files": entries, "metadata": meta}}}))
    hists, report = _run(RDF, remote, tmp_path / "out")
    assert report["cutflow"][name] == sequential[1]["cutflow"][name]
    for key, h in sequential[0].items():
        if key[1] == name:
            np.testing.assert_array_equal(hists[key].values(flow=True), h.values(flow=True))
    failed = [f for f in report["files"].values() if f["replica_failures"]]
    assert len(failed) == len(entries) and all("missing_" in f["replica_failures"][0]["replica"] for f in failed)


def test_simulation_gets_sum_genweight_like_a_columnar_run(sample, sequential):
    """build(df, dataset) sees dataset.metadata["sum_genweight"], the sum of Runs/genEventSumw."""
    report = sequential[1]
    files = sorted((sample.parent / "DYJetsToLL_M-50").glob("*.root"))
    expected = sum(float(uproot.open(f)["Runs"]["genEventSumw"].array(library="np").sum()) for f in files)
    assert report["datasets"]["DYJetsToLL_M-50"]["metadata"]["sum_genweight"] == pytest.approx(expected, rel=1e-12)
    assert "sum_genweight" not in report["datasets"]["SingleMuon_2018"]["metadata"]


@pytest.mark.parametrize("executor", ["sequential", "dask"])
def test_skip_bad_files_reports_the_file_and_keeps_the_others(sample, tmp_path, executor):
    """A file that is not ROOT: without --skip-bad-files the run stops naming it; with it, the
    file is a failed chunk of the report and the histograms are those of the good file alone."""
    name = "DYJetsToLL_M-50"
    good = sorted((sample.parent / name).glob("*.root"))[0]
    bad = tmp_path / "broken.root"
    bad.write_bytes(b"not a ROOT file" * 100)
    meta = yaml.safe_load(sample.read_text())["datasets"][name]["metadata"]
    extra = ["--executor", executor] + (["--workers", "1"] if executor == "dask" else [])

    def datasets(files):
        path = tmp_path / f"{len(files)}.yaml"
        path.write_text(yaml.safe_dump({"datasets": {name: {"files": [str(f) for f in files], "metadata": meta}}}))
        return path

    both = datasets([good, bad])
    assert main(["run", str(RDF), "--datasets", str(both), "--output", str(tmp_path / "stop"), "--no-progress",
                 *extra]) == 2  # the error names the file
    hists, report = _run(RDF, both, tmp_path / "skip", "--skip-bad-files", *extra)
    alone, _ = _run(RDF, datasets([good]), tmp_path / "alone", *extra)
    assert [f["file"] for f in report["failed_chunks"]] == [str(bad)]
    for key, h in alone.items():
        np.testing.assert_array_equal(hists[key].values(flow=True), h.values(flow=True))


def test_scheduler_address_runs_distrdf_on_that_cluster(sample, sequential, tmp_path):
    """--scheduler ADDRESS: the DistRDF dataframes run on the cluster of that scheduler (two
    worker processes started here), with the sequential run's cutflow and histograms."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        hists, report = _run(RDF, sample, tmp_path / "out", "--scheduler", cl.scheduler_address)
        with distributed.Client(cl) as client:
            ran_here = client.run(lambda: "ROOT" in __import__("sys").modules)
    assert report["options"]["executor"] == "dask"
    assert report["cutflow"] == sequential[1]["cutflow"]
    assert all(ran_here.values())  # the event loops ran in the cluster's workers
    for key, h in sequential[0].items():
        np.testing.assert_allclose(hists[key].values(flow=True), h.values(flow=True), rtol=1e-9)


def test_cluster_profile_runs_distrdf_like_a_columnar_analysis(sample, sequential, tmp_path, monkeypatch):
    """--cluster PROFILE: a user's profile (extending the shipped 'local') starts the cluster and
    DistRDF runs on it, as a columnar analysis would with the same command."""
    clusters = tmp_path / "clusters.yaml"
    clusters.write_text("clusters:\n  two-local: {extends: local, jobs: 2, memory: 3GB}\n")
    monkeypatch.setenv("HIGHRATE_CLUSTERS", str(clusters))
    hists, report = _run(RDF, sample, tmp_path / "out", "--cluster", "two-local")
    assert report["options"]["executor"] == "cluster:two-local"
    assert report["cutflow"] == sequential[1]["cutflow"]
    for key, h in sequential[0].items():
        np.testing.assert_allclose(hists[key].values(flow=True), h.values(flow=True), rtol=1e-9)


def test_an_https_replica_roots_wheel_cannot_read_gives_way_to_root(sample, sequential, xrootd_server, https_server,
                                                                     tmp_path):
    """The `root` wheel reads no https:// (no Davix): with an https:// replica first and a root://
    one second, each file is read over root://, and the report says why https:// was passed over."""
    name = "DYJetsToLL_M-50"
    entries = []
    for f in sorted((sample.parent / name).glob("*.root")):
        for folder in (xrootd_server.export_dir, https_server.root_dir):
            (folder / "rdf-web").mkdir(parents=True, exist_ok=True)
            shutil.copy(f, folder / "rdf-web" / f.name)
        entries.append({"replicas": [https_server.url(f"rdf-web/{f.name}"),
                                     xrootd_server.url(xrootd_server.export_dir / "rdf-web" / f.name)]})
    meta = yaml.safe_load(sample.read_text())["datasets"][name]["metadata"]
    remote = tmp_path / "web.yaml"  # highrate itself reads https:// (the metadata), trusting the server's CA
    remote.write_text(yaml.safe_dump({"sources": {"ca_file": str(https_server.ca_file)},
                                      "datasets": {name: {"files": entries, "metadata": meta}}}))
    hists, report = _run(RDF, remote, tmp_path / "out")
    assert report["cutflow"][name] == sequential[1]["cutflow"][name]
    for key, h in sequential[0].items():
        if key[1] == name:
            np.testing.assert_array_equal(hists[key].values(flow=True), h.values(flow=True))
    failures = [x for f in report["files"].values() for x in f["replica_failures"]]
    assert failures and all(x["replica"].startswith("https://") and "Davix" in x["error"] for x in failures), failures


def test_a_spurious_ast_depth_error_is_parsed_again(monkeypatch):
    """CPython 3.11 shares the AST converter's depth counter between threads (gh-106905): a
    parse racing another thread's fails once with a SystemError. The race cannot be made to
    happen on demand, so the first parse here raises what CPython raises then."""
    real, calls = ast.parse, []

    def racing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=132, after=148)")
        return real(*args, **kwargs)

    monkeypatch.setattr(loading.ast, "parse", racing)
    assert is_rdf_analysis(RDF) and len(calls) == 2
    assert not is_rdf_analysis(COLUMNAR)

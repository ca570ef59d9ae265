"""highrate fit: pyhf workspace, maximum-likelihood fit of mu, pulls, plots and Combine datacards."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import hist
import numpy as np
import pytest
import uproot

from highrate.cli.main import main
from highrate.errors import ConfigError
from highrate.outputs.statmodel import build_workspace, load_inputs, read_datacard, run_fit

EDGES = np.linspace(0.0, 100.0, 41)
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])
FILES = ["workspace.json", "fit_results.json", "pulls.json", "pulls.png", "prefit_SR.png", "postfit_SR.png",
         "datacard_SR.txt", "shapes.root"]


def _hist(values: np.ndarray, variances: np.ndarray) -> hist.Hist:
    h = hist.Hist(hist.axis.Regular(len(EDGES) - 1, EDGES[0], EDGES[-1], name="x", label="x [GeV]"),
                  storage=hist.storage.Weight())
    h.view()["value"], h.view()["variance"] = values, variances
    return h


def _signal(shift: float = 0.0) -> np.ndarray:
    """A Gaussian peak (300 events at mu = 1) at 50 + shift, width 5."""
    pdf = np.exp(-0.5 * ((CENTRES - 50.0 - shift) / 5.0) ** 2)
    return 300.0 * pdf / pdf.sum()


def _background(slope: float = 1.0) -> np.ndarray:
    """A falling exponential, 2000 events."""
    pdf = np.exp(-CENTRES / (40.0 * slope))
    return 2000.0 * pdf / pdf.sum()


def _write_outdir(outdir: Path, hists: dict[str, hist.Hist], meta: dict[str, dict]) -> Path:
    outdir.mkdir(parents=True, exist_ok=True)
    with (outdir / "histograms.pkl").open("wb") as f:
        pickle.dump(hists, f)
    report = {"datasets": {ds: {"metadata": m} for ds, m in meta.items()}}
    (outdir / "report.json").write_text(json.dumps(report))
    return outdir


def synthetic_outdir(outdir: Path, mu_true: float, *, seed: int = 1, categories: tuple[str, ...] = ("SR",)) -> Path:
    """Signal (two datasets of one sample) + background with JES variations; data = Poisson(mu S + B).

    The pickle is keyed by 'histogram/dataset/category/variation' strings, as highrate 0.1 wrote
    it: the fit reads such outputs too."""
    rng = np.random.default_rng(seed)
    hists: dict[str, hist.Hist] = {}
    mc_weight = 0.01  # MC of 100x the data's statistics: small stat errors
    for cat in categories:
        templates = {
            "sig_a": {"nominal": 0.5 * _signal(), "JESUp": 0.5 * _signal(2.0) * 1.03, "JESDown": 0.5 * _signal(-2.0) * 0.97},
            "sig_b": {"nominal": 0.5 * _signal(), "JESUp": 0.5 * _signal(2.0) * 1.03, "JESDown": 0.5 * _signal(-2.0) * 0.97},
            "bkg": {"nominal": _background(), "JESUp": _background(1.05), "JESDown": _background(0.95)},
        }
        for ds, variations in templates.items():
            for var, values in variations.items():
                hists[f"x/{ds}/{cat}/{var}"] = _hist(values, mc_weight * values)
        expected = mu_true * _signal() + _background()
        data = rng.poisson(expected).astype(float)
        hists[f"x/data/{cat}/nominal"] = _hist(data, data)
    meta = {
        "sig_a": {"is_mc": True, "sample": "Signal", "dataset": "sig_a", "year": "2018"},
        "sig_b": {"is_mc": True, "sample": "Signal", "dataset": "sig_b", "year": "2018"},
        "bkg": {"is_mc": True, "sample": "Background", "dataset": "bkg", "year": "2018"},
        "data": {"is_mc": False, "sample": "DATA", "dataset": "data", "year": "2018"},
    }
    return _write_outdir(outdir, hists, meta)


@pytest.mark.parametrize("mu_true", [1.7, 0.6])
def test_fit_recovers_mu(tmp_path, mu_true):
    outdir = synthetic_outdir(tmp_path / "out", mu_true)
    res = run_fit(outdir, histogram="x", signal="Signal", plots=False, significance=True)
    mu, sigma = res["mu"], res["mu_uncertainty"]
    print(f"mu_true={mu_true}: mu = {mu:.4f} +- {sigma:.4f}, interval {res['mu_interval']['lower']:.4f}"
          f"..{res['mu_interval']['upper']:.4f}, Z = {res['significance']['z']:.2f}")
    assert abs(mu - mu_true) < 2 * sigma
    assert 0 < sigma < 0.5 * mu_true
    interval = res["mu_interval"]
    assert interval["lower"] < mu < interval["upper"]
    assert interval["upper"] - interval["lower"] == pytest.approx(2 * sigma, rel=0.15)
    assert res["parameter_names"][0] == "JES" and "mu" in res["parameter_names"]
    assert set(res["parameters"]) == set(res["parameter_names"])
    assert res["converged"]


def test_asimov_fit_is_nominal(tmp_path):
    outdir = synthetic_outdir(tmp_path / "out", 1.7)
    res = run_fit(outdir, histogram="x", signal="Signal", asimov=True, plots=False)
    assert res["mu"] == pytest.approx(1.0, abs=1e-3)
    assert res["asimov"] and res["data_datasets"] == []
    pulls = json.loads((outdir / "fit" / "pulls.json").read_text())
    assert {"JES", "lumi"} <= {p["name"] for p in pulls}
    for p in pulls:
        assert abs(p["pull"]) < 0.01, p
        assert 0 < p["constraint"] <= 1.0 + 1e-3, p
    jes = next(p for p in pulls if p["name"] == "JES")
    assert jes["constraint"] < 0.9  # the shape of the JES variation is measured by the data


def test_workspace_is_schema_valid_and_has_all_modifiers(tmp_path):
    import pyhf

    outdir = synthetic_outdir(tmp_path / "out", 1.0, categories=("SR", "CR"))
    inputs = load_inputs(outdir, "x", "Signal")
    ws = build_workspace(inputs, lumi_uncertainty=0.03)
    pyhf.Workspace(json.loads(json.dumps(dict(ws))))  # round-trips through JSON
    assert sorted(ws.channels) == ["CR", "SR"]
    assert sorted(ws.samples) == ["Background", "Signal"]
    model = ws.model()
    assert model.config.poi_name == "mu"
    assert {"mu", "lumi", "JES", "staterror_SR", "staterror_CR"} == set(model.config.par_order)
    signal = next(s for s in ws["channels"][0]["samples"] if s["name"] == "Signal")
    types = {(m["name"], m["type"]) for m in signal["modifiers"]}
    assert {("mu", "normfactor"), ("lumi", "normsys"), ("JES", "histosys"), ("JES", "normsys")} <= types
    assert np.allclose(signal["data"], _signal())  # the two signal datasets are summed
    lumi = next(m for m in signal["modifiers"] if m["name"] == "lumi")
    assert lumi["data"]["hi"] == pytest.approx(1.03)


def test_cli_writes_everything_and_datacard_matches_shapes(tmp_path, capsys):
    outdir = synthetic_outdir(tmp_path / "out", 1.7)
    assert main(["fit", str(outdir), "--histogram", "x", "--signal", "Signal", "--significance"]) == 0
    captured = capsys.readouterr()
    assert "mu = " in captured.out + captured.err and "significance" in captured.out + captured.err
    fitdir = outdir / "fit"
    for name in FILES:
        assert (fitdir / name).is_file() and (fitdir / name).stat().st_size > 0, name
    card = read_datacard(fitdir / "datacard_SR.txt")
    assert card["shapes"] == [["*", "*", "shapes.root", "$CHANNEL/$PROCESS", "$CHANNEL/$PROCESS_$SYSTEMATIC"]]
    assert card["imax"] == "1" and card["jmax"] == "1"
    assert [(p["name"], p["index"]) for p in card["processes"]] == [("Signal", 0), ("Background", 1)]
    assert {s["name"]: s["type"] for s in card["systematics"]} == {"lumi": "lnN", "JES": "shape"}
    assert card["auto_mc_stats"] == ["* autoMCStats 0"]
    with uproot.open(fitdir / "shapes.root") as f:
        for p in card["processes"]:
            assert p["rate"] == pytest.approx(f[f"SR/{p['name']}"].values().sum(), rel=1e-5)
            for d in ("Up", "Down"):
                assert f[f"SR/{p['name']}_JES{d}"].values().sum() > 0
        assert card["observation"]["SR"] == pytest.approx(f["SR/data_obs"].values().sum(), rel=1e-5)
        assert np.allclose(f["SR/Signal"].variances(), 0.01 * _signal())  # sumw2 kept for autoMCStats
    assert card["processes"][0]["rate"] == pytest.approx(300.0, rel=1e-5)
    results = json.loads((fitdir / "fit_results.json").read_text())
    assert results["mu"] > 0 and results["nll"] == pytest.approx(0.5 * results["twice_nll"])


def test_cli_custom_output_and_categories(tmp_path):
    outdir = synthetic_outdir(tmp_path / "out", 1.0, categories=("SR", "CR"))
    assert main(["fit", str(outdir), "--histogram", "x", "--signal", "Signal", "--category", "CR",
                 "--output", str(tmp_path / "f"), "--lumi-uncertainty", "0.05", "--asimov"]) == 0
    assert (tmp_path / "f" / "datacard_CR.txt").is_file() and not (tmp_path / "f" / "datacard_SR.txt").exists()
    card = read_datacard(tmp_path / "f" / "datacard_CR.txt")
    assert card["systematics"][0]["values"][("CR", "Signal")] == "1.05"


def test_read_datacard_rejects_inconsistent_columns(tmp_path):
    outdir = synthetic_outdir(tmp_path / "out", 1.0)
    run_fit(outdir, histogram="x", signal="Signal", plots=False)
    path = outdir / "fit" / "datacard_SR.txt"
    lines = path.read_text().splitlines()
    lines = [ln + "  1.0" if ln.startswith("lumi") else ln for ln in lines]  # one column too many
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="columns"):
        read_datacard(path)


@pytest.mark.parametrize(("args", "message"), [
    (["--histogram", "y", "--signal", "Signal"], "unknown histogram 'y'"),
    (["--histogram", "x", "--signal", "Signl"], "Did you mean 'Signal'"),
    (["--histogram", "x", "--signal", "Signal", "--category", "RS"], "no category 'RS'"),
    (["--histogram", "x", "--signal", "Signal", "--lumi-uncertainty", "-1"], "lumi-uncertainty"),
])
def test_errors_for_unknown_names(tmp_path, args, message):
    outdir = synthetic_outdir(tmp_path / "out", 1.0)
    with pytest.raises(ConfigError, match=message):
        run_fit(outdir, histogram=args[1], signal=args[3], categories=args[5:6] if "--category" in args else None,
                lumi_uncertainty=float(args[5]) if "--lumi-uncertainty" in args else 0.025)
    assert main(["fit", str(outdir), *args]) == 2


def test_errors_for_missing_inputs(tmp_path, capsys):
    with pytest.raises(ConfigError, match="does not exist"):
        load_inputs(tmp_path / "nowhere", "x", "Signal")
    assert main(["fit", str(tmp_path / "nowhere"), "--histogram", "x", "--signal", "S"]) == 2
    captured = capsys.readouterr()
    assert "does not exist" in captured.out + captured.err
    outdir = synthetic_outdir(tmp_path / "out", 1.0)
    (outdir / "report.json").unlink()
    with pytest.raises(ConfigError, match=r"no report\.json"):
        load_inputs(outdir, "x", "Signal")
    outdir = synthetic_outdir(tmp_path / "out2", 1.0)
    (outdir / "histograms.pkl").unlink()
    with pytest.raises(ConfigError, match=r"neither histograms\.pkl nor histograms\.root"):
        load_inputs(outdir, "x", "Signal")


def test_no_data_needs_asimov(tmp_path):
    outdir = synthetic_outdir(tmp_path / "out", 1.0)
    with (outdir / "histograms.pkl").open("rb") as f:
        hists = {k: v for k, v in pickle.load(f).items() if "/data/" not in k}
    with (outdir / "histograms.pkl").open("wb") as f:
        pickle.dump(hists, f)
    with pytest.raises(ConfigError, match="--asimov"):
        load_inputs(outdir, "x", "Signal")
    assert load_inputs(outdir, "x", "Signal", asimov=True).asimov


def test_reads_histograms_root_without_pickle(tmp_path):
    outdir = synthetic_outdir(tmp_path / "out", 1.7)
    with (outdir / "histograms.pkl").open("rb") as f:
        hists = pickle.load(f)
    with uproot.recreate(outdir / "histograms.root") as f:
        for k, h in hists.items():
            f[k] = h
    (outdir / "histograms.pkl").unlink()
    inputs = load_inputs(outdir, "x", "Signal")
    assert np.allclose(inputs.channels[0].samples["Signal"]["nominal"].values, _signal())
    assert inputs.channels[0].systematics("Background") == ["JES"]


@pytest.fixture(scope="module")
def pipeline_outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``highrate run`` of the Z->mumu example on a small synthetic DY sample, written with write_outputs."""
    import highrate
    from highrate.outputs.write import write_outputs
    from highrate.testing import generate_sample

    base = tmp_path_factory.mktemp("fit_pipeline")
    files = generate_sample(base / "nanoaod", name="DYJetsToLL_M-50", events=20_000, files=1, seed=11, is_mc=True)
    dataset = highrate.Dataset("DYJetsToLL_M-50", "DYJetsToLL", tuple(str(f) for f in files),
                               metadata={"is_mc": True, "year": "2018", "xsec": 6077.22, "lumi": 1.0})
    analysis = highrate.load_analysis(Path(__file__).resolve().parents[1] / "examples" / "zmumu" / "analysis.py")
    options = highrate.RunOptions(executor="sequential")
    outdir = base / "out"
    write_outputs(outdir, highrate.run(analysis, [dataset], options=options), analysis, options)
    return outdir


def _add_pseudo_data(outdir: Path, mu_true: float, seed: int) -> float:
    """Add a flat background (MC sample "Flat") and pseudo-data = Poisson(mu_true * DY + flat); returns
    the flat background per bin."""
    with (outdir / "histograms.pkl").open("rb") as f:
        hists = pickle.load(f)
    dy = hists[("mll", "DYJetsToLL_M-50", "baseline", "nominal")]  # written by write_outputs: tuple keys
    values = dy.values()
    flat = 0.2 * values.max()
    bkg = dy.copy()
    bkg.view()["value"], bkg.view()["variance"] = np.full_like(values, flat), np.full_like(values, flat * 1e-4)
    data = dy.copy()
    counts = np.random.default_rng(seed).poisson(mu_true * values + flat).astype(float)
    data.view()["value"], data.view()["variance"] = counts, counts
    hists[("mll", "FlatBkg", "baseline", "nominal")] = bkg
    hists[("mll", "PseudoData", "baseline", "nominal")] = data
    with (outdir / "histograms.pkl").open("wb") as f:
        pickle.dump(hists, f)
    report = json.loads((outdir / "report.json").read_text())
    report["datasets"]["FlatBkg"] = {"metadata": {"is_mc": True, "sample": "Flat", "dataset": "FlatBkg", "year": "2018"}}
    report["datasets"]["PseudoData"] = {"metadata": {"is_mc": False, "sample": "DATA", "dataset": "PseudoData",
                                                     "year": "2018"}}
    (outdir / "report.json").write_text(json.dumps(report))
    return flat


def test_fit_on_real_pipeline_output(pipeline_outdir, tmp_path):
    import shutil

    outdir = tmp_path / "out"
    shutil.copytree(pipeline_outdir, outdir, ignore=shutil.ignore_patterns("checkpoints"))
    report = json.loads((outdir / "report.json").read_text())
    assert report["datasets"]["DYJetsToLL_M-50"]["metadata"]["sample"] == "DYJetsToLL"
    with pytest.raises(ConfigError, match="--asimov"):  # the MC-only run has no data
        load_inputs(outdir, "mll", "DYJetsToLL")
    mu_true = 0.8
    _add_pseudo_data(outdir, mu_true, seed=5)
    assert main(["fit", str(outdir), "--histogram", "mll", "--signal", "DYJetsToLL", "--category", "baseline"]) == 0
    res = json.loads((outdir / "fit" / "fit_results.json").read_text())
    pulls = {p["name"]: p for p in json.loads((outdir / "fit" / "pulls.json").read_text())}
    print(f"pipeline: mu_true={mu_true}: mu = {res['mu']:.4f} +- {res['mu_uncertainty']:.4f}; pulls "
          + ", ".join(f"{n} {p['pull']:+.2f}+-{p['constraint']:.2f}" for n, p in pulls.items() if p["kind"] != "staterror"))
    assert abs(res["mu"] - mu_true) < 2 * res["mu_uncertainty"]
    assert 0 < res["mu_uncertainty"] < 0.1
    variations = {k[3] for k in pickle.loads((outdir / "histograms.pkl").read_bytes())
                  if k[:3] == ("mll", "DYJetsToLL_M-50", "baseline")}
    for syst in {v[:-2] for v in variations if v.endswith("Up")} & {"pileup", "muon_id", "muon_iso"}:
        assert syst in pulls and abs(pulls[syst]["pull"]) < 3  # the weight variations change mll: in the model
    assert res["channels"] == ["baseline"] and res["data_datasets"] == ["PseudoData"]
    card = read_datacard(outdir / "fit" / "datacard_baseline.txt")
    assert [(p["name"], p["index"]) for p in card["processes"]] == [("DYJetsToLL", 0), ("Flat", 1)]
    with uproot.open(outdir / "fit" / "shapes.root") as f:
        for p in card["processes"]:
            assert p["rate"] == pytest.approx(f[f"baseline/{p['name']}"].values().sum(), rel=1e-5)
    for name in ("workspace.json", "pulls.png", "prefit_baseline.png", "postfit_baseline.png"):
        assert (outdir / "fit" / name).is_file()


def test_names_unfit_for_a_datacard_are_refused(tmp_path):
    outdir = synthetic_outdir(tmp_path / "out", 1.0, categories=("S R",))
    with pytest.raises(ConfigError, match="category name 'S R'"):
        run_fit(outdir, histogram="x", signal="Signal", plots=False)

"""highrate fit: the cabinetry model, the maximum-likelihood fit of mu (cabinetry + pyhf), ranking,
pulls, plots and Combine datacards, on synthetic templates whose truth is known."""

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
FILES = ["workspace.json", "cabinetry.yml", "fit_results.json", "pulls.json", "pulls.png", "impacts.png",
         "correlations.png", "prefit_SR.png", "postfit_SR.png", "datacard_SR.txt", "shapes.root", "hepdata.tar.gz",
         "hepdata/submission.yaml"]
QUICK = {"plots": False, "impacts": False, "hepdata": False}  # the fit alone


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


def _peak(centres: np.ndarray, centre: float, width: float, total: float) -> np.ndarray:
    pdf = np.exp(-0.5 * ((centres - centre) / width) ** 2)
    return total * pdf / pdf.sum()


def _falling(centres: np.ndarray, scale: float, total: float, tilt: float = 0.0) -> np.ndarray:
    pdf = np.exp(-centres / scale) * (1 + tilt * (centres - centres.mean()) / np.ptp(centres))
    return total * pdf / pdf.sum()


X_EDGES, Y_EDGES = np.linspace(0.0, 100.0, 21), np.linspace(0.0, 200.0, 11)


def _region_templates(centres: np.ndarray, signal: tuple[float, float, float], bkg: tuple[float, float]) -> dict:
    """Templates of one region: the signal (a peak) with JES (shift and +-3%) and JER (width), the
    background (falling) with JES (slope) and a one-sided JER (a tilt), and the background's
    alternate samples: PS_var (harder) and scaleup/scaledown (+-5%)."""
    c, w, n = signal
    s, nb = bkg
    return {
        "Signal": {"nominal": _peak(centres, c, w, n), "JESUp": 1.03 * _peak(centres, c + 0.04 * c, w, n),
                   "JESDown": 0.97 * _peak(centres, c - 0.04 * c, w, n), "JERUp": _peak(centres, c, 1.2 * w, n),
                   "JERDown": _peak(centres, c, 0.8 * w, n)},
        "Background": {"nominal": _falling(centres, s, nb), "JESUp": _falling(centres, 1.05 * s, nb),
                       "JESDown": _falling(centres, 0.95 * s, nb), "JERUp": _falling(centres, s, nb, tilt=0.1)},
        "PS_var": _falling(centres, 1.1 * s, 1.02 * nb), "scaleup": _falling(centres, s, 1.05 * nb),
        "scaledown": _falling(centres, s, 0.95 * nb),
    }


def agc_like_templates() -> dict[str, dict]:
    """Two regions with different histograms: SR fits 'x' (20 bins), CR fits 'y' (10 bins)."""
    return {"SR": ("x", X_EDGES, _region_templates(0.5 * (X_EDGES[1:] + X_EDGES[:-1]), (50.0, 5.0, 300.0), (40.0, 2000.0))),
            "CR": ("y", Y_EDGES, _region_templates(0.5 * (Y_EDGES[1:] + Y_EDGES[:-1]), (100.0, 20.0, 40.0), (80.0, 5000.0)))}


def injected(templates: dict, mu: float, jes: float) -> np.ndarray:
    """The expectation at signal strength ``mu`` and JES at ``jes`` standard deviations (linear
    between the nominal and the varied templates), every other parameter at its nominal."""
    out = 0.0
    for sample, scale in (("Signal", mu), ("Background", 1.0)):
        t = templates[sample]
        side = t["JESUp"] if jes >= 0 else t["JESDown"]
        out = out + scale * (t["nominal"] + abs(jes) * (side - t["nominal"]))
    return out


def agc_like_outdir(outdir: Path, mu_true: float, *, jes: float = 0.0, seed: int = 3) -> Path:
    """An output folder as the AGC analysis writes it: datasets grouped by ``process`` (the
    background split in two datasets), the background's alternate samples as datasets with
    ``systematic``, different histograms in the two categories, pseudo-data with ``mu_true`` and
    JES at ``jes`` injected. Other histograms ('z', the alternates' own variations) are ignored."""
    rng = np.random.default_rng(seed)
    hists: dict[str, hist.Hist] = {}

    def put(name: str, edges: np.ndarray, ds: str, cat: str, var: str, values: np.ndarray, weight: float = 0.01):
        h = hist.Hist(hist.axis.Variable(edges, name=name, label=f"{name} [GeV]"), storage=hist.storage.Weight())
        h.view()["value"], h.view()["variance"] = values, weight * values
        hists[f"{name}/{ds}/{cat}/{var}"] = h

    for cat, (name, edges, t) in agc_like_templates().items():
        for var, values in t["Signal"].items():
            put(name, edges, "sig", cat, var, values)
        for var, values in t["Background"].items():
            put(name, edges, "bkg_a", cat, var, 0.6 * values)
            put(name, edges, "bkg_b", cat, var, 0.4 * values)
        # a one-sided variation filled as a pair (Down = nominal, as the AGC's jet resolution) in
        # one dataset, not filled in the other (which then contributes its nominal)
        put(name, edges, "bkg_a", cat, "JERDown", 0.6 * t["Background"]["nominal"])
        for ds in ("PS_var", "scaleup", "scaledown"):
            put(name, edges, f"bkg_{ds}", cat, "nominal", t[ds])
        put(name, edges, "bkg_PS_var", cat, "JESUp", 2 * t["PS_var"])  # an alternate's own variation: not used
        data = rng.poisson(injected(t, mu_true, jes)).astype(float)
        put(name, edges, "data", cat, "nominal", data, weight=1.0)
        put("z", edges, "data", cat, "nominal", data, weight=1.0)
    meta = {"sig": {"is_mc": True, "sample": "signal_sample", "process": "Signal"},
            "bkg_a": {"is_mc": True, "sample": "bkg_a", "process": "Background"},
            "bkg_b": {"is_mc": True, "sample": "bkg_b", "process": "Background"},
            "bkg_PS_var": {"is_mc": True, "process": "Background", "systematic": "PS_var"},
            "bkg_scaleup": {"is_mc": True, "process": "Background", "systematic": "scaleup"},
            "bkg_scaledown": {"is_mc": True, "process": "Background", "systematic": "scaledown"},
            "data": {"is_mc": False, "sample": "data"}}
    return _write_outdir(outdir, hists, meta)


AGC_ARGS = ["--signal", "Signal", "--region", "SR=x", "--region", "CR=y"]


@pytest.fixture(scope="module")
def agc_fit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """``highrate fit`` with everything (plots, impacts, HEPData) on the AGC-like output folder,
    mu = 1.4 and JES = +0.5 sigma injected."""
    outdir = agc_like_outdir(tmp_path_factory.mktemp("agc") / "out", 1.4, jes=0.5)
    assert main(["fit", str(outdir), *AGC_ARGS]) == 0
    return outdir / "fit", json.loads((outdir / "fit" / "fit_results.json").read_text())


@pytest.mark.parametrize("mu_true", [1.7, 0.6])
def test_fit_recovers_mu(tmp_path, mu_true):
    outdir = synthetic_outdir(tmp_path / "out", mu_true)
    res = run_fit(outdir, histogram="x", signal="Signal", significance=True, **QUICK)
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
    res = run_fit(outdir, histogram="x", signal="Signal", asimov=True, **QUICK)
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
    run_fit(outdir, histogram="x", signal="Signal", **QUICK)
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
    # every variation is a nuisance parameter, also those that leave mll as it is (the jet energy
    # scale and resolution: the old hand-written model dropped them); their impact is 0
    assert {"JES", "JER"} <= {v[:-2] for v in variations if v.endswith("Up")}
    assert {v[:-2] for v in variations if v.endswith("Up")} <= set(pulls)
    ranking = {r["name"]: r for r in res["ranking"]}
    assert ranking["JES"]["impact_postfit_up"] == 0 and abs(ranking["lumi"]["impact_postfit_up"]) > 0
    assert res["channels"] == ["baseline"] and res["data_datasets"] == ["PseudoData"]
    card = read_datacard(outdir / "fit" / "datacard_baseline.txt")
    assert [(p["name"], p["index"]) for p in card["processes"]] == [("DYJetsToLL", 0), ("Flat", 1)]
    with uproot.open(outdir / "fit" / "shapes.root") as f:
        for p in card["processes"]:
            assert p["rate"] == pytest.approx(f[f"baseline/{p['name']}"].values().sum(), rel=1e-5)
    for name in ("workspace.json", "pulls.png", "impacts.png", "prefit_baseline.png", "postfit_baseline.png",
                 "hepdata/submission.yaml"):
        assert (outdir / "fit" / name).is_file()


def test_names_unfit_for_a_datacard_are_refused(tmp_path):
    outdir = synthetic_outdir(tmp_path / "out", 1.0, categories=("S R",))
    with pytest.raises(ConfigError, match="category name 'S R'"):
        run_fit(outdir, histogram="x", signal="Signal", **QUICK)


def test_alternate_sample_rule():
    from highrate.outputs.statmodel.samples import alternate_variations, roles

    assert alternate_variations(["scaleup", "scaledown", "ME_var", "PS_var", "pileup", "isr_Up", "isr_Down"]) == {
        "ME_var": "ME_varUp", "PS_var": "PS_varUp", "isr_Down": "isrDown", "isr_Up": "isrUp", "pileup": "pileupUp",
        "scaledown": "scaleDown", "scaleup": "scaleUp"}
    found = roles({"tt": {"is_mc": True, "process": "ttbar", "sample": "x"}, "tt2": {"is_mc": True, "sample": "ttbar"},
                   "tt_up": {"is_mc": True, "process": "ttbar", "systematic": "scaleup"},
                   "tt_down": {"is_mc": True, "sample": "ttbar", "systematic": "scaledown"},
                   "d": {"is_mc": False, "process": "ttbar"}})
    assert {ds: (r.kind, r.sample, r.variation) for ds, r in found.items()} == {
        "tt": ("sample", "ttbar", ""), "tt2": ("sample", "ttbar", ""), "tt_up": ("alternate", "ttbar", "scaleUp"),
        "tt_down": ("alternate", "ttbar", "scaleDown"), "d": ("data", "", "")}


def test_symmetrized_is_cabinetrys_mirror_without_negative_bins():
    from highrate.outputs.statmodel.inputs import symmetrized

    nominal, up = np.array([100.0, 50.0, 2.0]), np.array([110.0, 52.0, 7.0])
    r = up.sum() / nominal.sum()
    mirror = (2 - r) * (2 * nominal - up / r)  # cabinetry: normalisation 2 - r, shape 2 nominal - up / r
    assert mirror[2] < 0
    assert np.allclose(symmetrized(nominal, up), [mirror[0], mirror[1], 0.0])


def test_pseudo_data_fit_recovers_injected_mu_and_jes(agc_fit):
    _, res = agc_fit
    jes = res["parameters"]["JES"]
    print(f"injected mu = 1.4, JES = +0.5: mu = {res['mu']:.4f} +- {res['mu_uncertainty']:.4f}, "
          f"JES = {jes['value']:+.3f} +- {jes['uncertainty']:.3f}")
    assert abs(res["mu"] - 1.4) < 2 * res["mu_uncertainty"]
    assert 0 < res["mu_uncertainty"] < 0.2
    assert abs(jes["value"] - 0.5) < 2 * jes["uncertainty"] and jes["uncertainty"] < 0.9  # measured by the data
    assert res["converged"] and 0.01 < res["goodness_of_fit"]["p_value"] <= 1
    interval = res["mu_interval"]
    assert interval["lower"] < res["mu"] < interval["upper"]
    assert interval["upper"] - interval["lower"] == pytest.approx(2 * res["mu_uncertainty"], rel=0.15)


def test_regions_with_different_histograms(agc_fit):
    import pyhf

    fitdir, res = agc_fit
    assert res["regions"] == {"SR": "x", "CR": "y"} and res["channels"] == ["SR", "CR"]
    ws = pyhf.Workspace(json.loads((fitdir / "workspace.json").read_text()))
    model = ws.model()
    assert model.config.channel_nbins == {"CR": len(Y_EDGES) - 1, "SR": len(X_EDGES) - 1}
    assert sorted(ws.samples) == ["Background", "Signal"]  # the alternates are no samples, 'process' groups
    observed = np.asarray(ws.data(model, include_auxdata=False))
    for cat, (name, _, t) in agc_like_templates().items():
        data = observed[model.config.channel_slices[cat]]
        assert np.allclose(data, _hist_values(fitdir.parent / "histograms.pkl", f"{name}/data/{cat}/nominal"))
        bkg = next(s for c in ws["channels"] if c["name"] == cat for s in c["samples"] if s["name"] == "Background")
        assert np.allclose(bkg["data"], t["Background"]["nominal"])  # bkg_a + bkg_b
        card = read_datacard(fitdir / f"datacard_{cat}.txt")
        assert card["observation"][cat] == pytest.approx(data.sum())
        assert {s["name"] for s in card["systematics"]} == {"lumi", "JES", "JER", "PS_var", "scale"}
    for stage in ("prefit", "postfit"):
        for cat in ("SR", "CR"):
            assert (fitdir / f"{stage}_{cat}.png").stat().st_size > 0


def _hist_values(pkl: Path, key: str) -> np.ndarray:
    from highrate.outputs.histograms import read_pickle

    return read_pickle(pkl)[tuple(key.split("/"))].values()


def test_alternate_samples_and_one_sided_variations_are_symmetrized(agc_fit):
    import yaml

    fitdir, _ = agc_fit
    spec = json.loads((fitdir / "workspace.json").read_text())
    templates = agc_like_templates()
    for channel in spec["channels"]:
        t = templates[channel["name"]][2]
        mods = {s["name"]: {(m["name"], m["type"]): m["data"] for m in s["modifiers"]} for s in channel["samples"]}
        nominal = t["Background"]["nominal"]
        # one-sided: the alternate sample PS_var and the background's JERUp, mirrored by cabinetry
        for syst, up in (("PS_var", t["PS_var"]), ("JER", t["Background"]["JERUp"])):
            r = up.sum() / nominal.sum()
            norm, shape = mods["Background"][(syst, "normsys")], mods["Background"][(syst, "histosys")]
            assert norm["hi"] == pytest.approx(r) and norm["lo"] == pytest.approx(2 - r)
            assert np.allclose(shape["hi_data"], up / r) and np.allclose(shape["lo_data"], 2 * nominal - up / r)
        # two-sided: scaleup/scaledown are one nuisance 'scale'; the signal's JER has both sides
        assert mods["Background"][("scale", "normsys")] == pytest.approx({"hi": 1.05, "lo": 0.95})
        sig = t["Signal"]
        assert mods["Signal"][("JER", "normsys")]["lo"] == pytest.approx(sig["JERDown"].sum() / sig["nominal"].sum())
        assert ("PS_var", "normsys") not in mods["Signal"] and ("mu", "normfactor") in mods["Signal"]
        assert {("JES", "normsys"), ("JES", "histosys"), ("lumi", "normsys")} <= set(mods["Background"])
    config = yaml.safe_load((fitdir / "cabinetry.yml").read_text())
    entries = {e["Name"]: e for e in config["Systematics"]}
    assert set(entries) == {"lumi", "JES", "JER", "PS_var", "scale"} and entries["lumi"]["Type"] == "Normalization"
    assert entries["PS_var"]["Samples"] == ["Background"] and entries["JER"]["Samples"] == ["Background", "Signal"]
    assert json.loads((fitdir / "fit_results.json").read_text())["symmetrized"] == {"JER": ["Background"],
                                                                                   "PS_var": ["Background"]}
    # highrate's symmetrized Down is cabinetry's own (Symmetrize: true), as long as no bin goes negative
    cabinetry = pytest.importorskip("cabinetry")
    entries["PS_var"]["Down"] = {"Symmetrize": True}
    own = cabinetry.workspace.build(config)
    for theirs, ours in zip(own["channels"], spec["channels"], strict=True):
        a, b = ({(s["name"], m["name"], m["type"]): m["data"] for s in c["samples"] for m in s["modifiers"]}
                for c in (theirs, ours))
        assert a.keys() == b.keys()
        for key in (("Background", "PS_var", "normsys"), ("Background", "PS_var", "histosys")):
            assert np.allclose(np.hstack(list(a[key].values())), np.hstack(list(b[key].values()))), key
    # the datacards' shapes hold the same mirrored Down as the workspace
    with uproot.open(fitdir / "shapes.root") as f:
        for cat in ("SR", "CR"):
            bkg = next(s for c in spec["channels"] if c["name"] == cat for s in c["samples"] if s["name"] == "Background")
            mods = {(m["name"], m["type"]): m["data"] for m in bkg["modifiers"]}
            for syst in ("PS_var", "JER"):
                down = mods[(syst, "normsys")]["lo"] * np.asarray(mods[(syst, "histosys")]["lo_data"])
                assert np.allclose(f[f"{cat}/Background_{syst}Down"].values(), down)


def test_ranking_and_correlations_are_consistent(agc_fit):
    fitdir, res = agc_fit
    ranking = {r["name"]: r for r in res["ranking"]}
    assert set(ranking) == {"JES", "JER", "PS_var", "scale", "lumi"}  # MC statistics not ranked
    names = res["parameter_names"]
    corr = np.asarray(res["correlations"])
    assert np.allclose(corr, corr.T) and np.allclose(np.diag(corr), 1.0) and np.all(np.abs(corr) <= 1 + 1e-9)
    mu, sigma_mu = names.index("mu"), res["mu_uncertainty"]
    impacts = [max(abs(r["impact_postfit_up"]), abs(r["impact_postfit_down"])) for r in res["ranking"]]
    assert impacts == sorted(impacts, reverse=True)
    for name, r in ranking.items():
        assert all(v is not None and np.isfinite(v) for k, v in r.items() if k.startswith("impact_")), r
        # to first order, fixing a parameter at +-1 sigma shifts mu by +-rho sigma_mu
        rho = corr[mu, names.index(name)]
        for side, sign in (("up", 1), ("down", -1)):
            assert abs(r[f"impact_postfit_{side}"] - sign * rho * sigma_mu) < 0.3 * sigma_mu * max(abs(rho), 0.1), r
        assert abs(r["impact_postfit_up"]) <= abs(r["impact_prefit_up"]) + 0.02 * sigma_mu  # constrained: smaller
    assert (fitdir / "impacts.png").stat().st_size > 0 and (fitdir / "correlations.png").stat().st_size > 0
    pulls = {p["name"]: p for p in json.loads((fitdir / "pulls.json").read_text())}
    assert {"JES", "JER", "PS_var", "scale", "lumi"} <= set(pulls)
    assert {p["kind"] for p in pulls.values()} == {"systematic", "staterror"}


@pytest.mark.parametrize(("args", "message"), [
    (["--histogram", "x", *AGC_ARGS], "not both"),
    (["--signal", "Signal"], "--region CATEGORY=HISTOGRAM"),
    (["--signal", "Signal", "--region", "SR=q"], "unknown histogram 'q'"),
    (["--signal", "Signal", "--region", "CR=x"], "histogram 'x' has no category 'CR'"),
    (["--signal", "Signal", "--region", "SR=x", "--region", "SR=z"], "each category once"),
])
def test_region_errors(tmp_path, capsys, args, message):
    outdir = agc_like_outdir(tmp_path / "out", 1.0)
    assert main(["fit", str(outdir), *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.out + captured.err
    with pytest.raises(SystemExit):
        main(["fit", str(outdir), "--signal", "Signal", "--region", "SR"])  # not CATEGORY=HISTOGRAM


def test_alternate_of_an_unknown_process_is_refused(tmp_path):
    outdir = agc_like_outdir(tmp_path / "out", 1.0)
    report = json.loads((outdir / "report.json").read_text())
    report["datasets"]["bkg_PS_var"]["metadata"]["process"] = "Backgrund"
    (outdir / "report.json").write_text(json.dumps(report))
    with pytest.raises(ConfigError, match=r"variation of process 'Backgrund'.*Did you mean 'Background'"):
        load_inputs(outdir, None, "Signal", regions={"SR": "x"})

"""The AGC ttbar reference analysis (examples/agc) on the synthetic AGC samples
(highrate.testing.agc): the samples themselves, then every observable, category and systematic
of the analysis checked against a plain numpy/awkward implementation on the same files."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml

import highrate
from highrate.cli.main import main
from highrate.outputs.statmodel.pipeline import run_fit
from highrate.testing import AGC_SAMPLES, generate_agc_file, generate_agc_set
from highrate.testing.agc import SIGNAL_STRENGTH, data_luminosity

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 3000
MC = [s for s in AGC_SAMPLES if AGC_SAMPLES[s]["is_mc"]]
BRANCHES = {
    "run": "uint32_t", "luminosityBlock": "uint32_t", "event": "uint64_t", "genWeight": "float",
    "nJet": "int32_t", "Jet_pt": "float[]", "Jet_eta": "float[]", "Jet_phi": "float[]", "Jet_mass": "float[]",
    "Jet_btagCSVV2": "float[]", "nElectron": "int32_t", "Electron_pt": "float[]", "Electron_eta": "float[]",
    "Electron_phi": "float[]", "Electron_mass": "float[]", "Electron_cutBased": "int32_t[]",
    "Electron_sip3d": "float[]", "nMuon": "int32_t", "Muon_pt": "float[]", "Muon_eta": "float[]",
    "Muon_phi": "float[]", "Muon_mass": "float[]", "Muon_tightId": "bool[]", "Muon_sip3d": "float[]",
    "Muon_pfRelIso04_all": "float[]",
}


@pytest.fixture(scope="module")
def agc_set(tmp_path_factory):
    return generate_agc_set(tmp_path_factory.mktemp("agc"), events=EVENTS, files=2)


# --- the samples ------------------------------------------------------------------------------


def test_sample_list_and_metadata():
    assert list(AGC_SAMPLES) == ["ttbar", "ttbar_scaledown", "ttbar_scaleup", "ttbar_ME_var", "ttbar_PS_var",
                                 "single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets", "data"]
    assert AGC_SAMPLES["ttbar"]["xsec"] == pytest.approx(729.84)
    assert AGC_SAMPLES["wjets"]["xsec"] == pytest.approx(61457 * 0.252)
    for name, meta in AGC_SAMPLES.items():
        assert meta["lumi"] == 3378.0
        if name == "data":
            assert meta["is_mc"] is False and "xsec" not in meta
        elif name.startswith("ttbar_"):
            assert meta["process"] == "ttbar" and meta["systematic"] == name.removeprefix("ttbar_")
        else:
            assert meta["process"] == name and "systematic" not in meta


def test_files_have_the_agc_branches_and_runs_tree(tmp_path):
    path = generate_agc_file(tmp_path / "tt.root", "ttbar", events=500, seed=3)
    with uproot.open(path) as f:
        events = f["Events"]
        assert {b.name: b.typename for b in events.branches} == BRANCHES
        runs = f["Runs"].arrays(library="np")
        w = events["genWeight"].array(library="np").astype(np.float64)
        assert runs["genEventSumw"][0] == pytest.approx(w.sum(), rel=1e-12)
        assert runs["genEventCount"][0] == 500
        pt = events["Jet_pt"].array()
        assert ak.all(pt[:, :-1] >= pt[:, 1:])  # sorted by pT, as NanoAOD
    data = generate_agc_file(tmp_path / "data.root", "data", events=200, seed=3)
    with uproot.open(data) as f:
        assert "genWeight" not in f["Events"] and "genEventSumw" not in f["Runs"]


def test_contents_depend_on_the_seed_alone(tmp_path):
    a = generate_agc_file(tmp_path / "a.root", "data", events=700, seed=5, file_index=1)
    b = generate_agc_file(tmp_path / "b.root", "data", events=700, seed=5, file_index=1, compression="lz4")
    c = generate_agc_file(tmp_path / "c.root", "data", events=700, seed=6, file_index=1)
    read = [uproot.open(p)["Events"].arrays() for p in (a, b, c)]
    assert ak.array_equal(read[0], read[1])
    assert not ak.array_equal(read[0].Jet_pt, read[2].Jet_pt)
    assert read[0].event[0] == 1_000_000_001


def test_datasets_file(agc_set):
    datasets = {d.name: d for d in highrate.load_datasets(agc_set)}
    assert list(datasets) == list(AGC_SAMPLES)
    lumi = data_luminosity(2 * EVENTS)
    for name, ds in datasets.items():
        assert len(ds.files) == 2 and ds.sample == name
        assert dict(ds.metadata) == {**AGC_SAMPLES[name], "lumi": pytest.approx(lumi, rel=1e-9)}
    raw = yaml.safe_load(agc_set.read_text())
    assert raw["datasets"]["ttbar_PS_var"]["metadata"]["systematic"] == "PS_var"
    # the pseudo-data mixes the processes in the proportions of their expected yields
    rates = {p: AGC_SAMPLES[p]["xsec"] * (SIGNAL_STRENGTH if p == "ttbar" else 1) for p in
             ("ttbar", "single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets")}
    assert lumi == pytest.approx(2 * EVENTS / sum(rates.values()))


def test_selection_has_work_to_do(agc_set):
    ev = uproot.open(agc_set.parent / "ttbar" / "ttbar_0.root")["Events"].arrays()
    leptons = np.bincount(ak.to_numpy(ak.num(ev.Electron_pt[ev.Electron_pt > 30]) + ak.num(ev.Muon_pt[ev.Muon_pt > 30])))
    assert leptons[0] > 0 and leptons[1] > 0 and leptons[2] > 0
    jets = ak.to_numpy(ak.sum((ev.Jet_pt > 30) & (abs(ev.Jet_eta) < 2.4), axis=1))
    assert (jets == 3).sum() > 0 and (jets >= 4).sum() > 0


# --- the analysis, against a plain numpy implementation ---------------------------------------

ANALYSIS = ROOT / "examples" / "agc" / "analysis.py"
EDGES = np.linspace(50.0, 550.0, 26)
SHAPES = ("nominal", "pt_scaleUp", "pt_scaleDown", "pt_resUp", "pt_resDown")
WEIGHT_VARIATIONS = [f"btag_var_{i}{d}" for i in range(4) for d in ("Up", "Down")] + ["scale_varUp", "scale_varDown"]


@pytest.fixture(scope="module")
def agc_run(agc_set):
    analysis = highrate.load_analysis(ANALYSIS)
    datasets = highrate.load_datasets(agc_set)
    return datasets, highrate.run(analysis, datasets).result


def _normals(run, lumi, event, counts):
    """The analysis' keyed smearing numbers, one per jet of the file."""
    from highrate.randomness import normal_from_keys

    index = np.concatenate([np.arange(c) for c in counts]) if len(counts) else np.zeros(0, np.int64)
    rep = [np.repeat(x, counts) for x in (run, lumi, event)]
    return normal_from_keys(*rep, index)


def _trijet(pt, eta, phi, mass, btag, n):
    """Per event (padded jets, n valid): the mass of the largest-pT trijet with a b tag, by
    enumerating index triples of the padded table."""
    width = pt.shape[1]
    triples = np.array([(i, j, k) for i in range(width) for j in range(i + 1, width) for k in range(j + 1, width)])
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    s = {name: sum(v[:, triples[:, c]] for c in range(3)) for name, v in (("px", px), ("py", py), ("pz", pz), ("e", e))}
    valid = triples[None, :, 2] < n[:, None]
    has_b = np.any(btag[:, triples] >= 0.5, axis=2) & valid
    tpt = np.where(has_b, np.hypot(s["px"], s["py"]), -1.0)
    best = np.argmax(tpt, axis=1)
    pick = {k: v[np.arange(len(n)), best] for k, v in s.items()}
    m = np.sqrt(np.maximum(pick["e"] ** 2 - pick["px"] ** 2 - pick["py"] ** 2 - pick["pz"] ** 2, 0))
    return np.where(has_b.any(axis=1), m, np.nan)


def _reference_file(path, meta, sumw):
    """{variation: {category: (values, weights per variation)}} for one file, in numpy."""
    t = uproot.open(path)["Events"]
    a = t.arrays(library="np")
    njet = a["nJet"]
    flat = {k: np.concatenate(a[f"Jet_{k}"]) if len(njet) else np.zeros(0, np.float32)
            for k in ("pt", "eta", "phi", "mass", "btagCSVV2")}
    event_of = np.repeat(np.arange(len(njet)), njet)

    def count(mask_per_object, counts):
        return np.bincount(np.repeat(np.arange(len(counts)), counts)[mask_per_object], minlength=len(counts))

    e_pt, e_eta = np.concatenate(a["Electron_pt"]), np.concatenate(a["Electron_eta"])
    e_ok = (e_pt > 30) & (np.abs(e_eta) < 2.1) & (np.concatenate(a["Electron_cutBased"]) == 4) & \
        (np.concatenate(a["Electron_sip3d"]) < 4)
    m_pt, m_eta = np.concatenate(a["Muon_pt"]), np.concatenate(a["Muon_eta"])
    m_ok = (m_pt > 30) & (np.abs(m_eta) < 2.1) & np.concatenate(a["Muon_tightId"]) & \
        (np.concatenate(a["Muon_sip3d"]) < 4) & (np.concatenate(a["Muon_pfRelIso04_all"]) < 0.15)
    one_lepton = count(e_ok, a["nElectron"]) + count(m_ok, a["nMuon"]) == 1
    z = _normals(a["run"], a["luminosityBlock"], a["event"], njet) if meta["is_mc"] else None
    shifts = {"nominal": None}
    if meta["is_mc"]:
        shifts.update({"pt_scaleUp": np.float32(1.03), "pt_scaleDown": np.float32(0.97),
                       "pt_resUp": np.float32(1) + np.float32(0.05) * z, "pt_resDown": None})
    if meta["is_mc"]:
        base = a["genWeight"].astype(np.float64) * meta["xsec"] * meta["lumi"] / sumw
    else:
        base = np.ones(len(njet))
    out = {}
    nominal_jets = None
    for variation, factor in shifts.items():
        pt, mass = flat["pt"], flat["mass"]
        if factor is not None:
            pt, mass = (pt * factor).astype(np.float32), (mass * factor).astype(np.float32)
        good = (pt > 30) & (np.abs(flat["eta"]) < 2.4)
        n = np.bincount(event_of[good], minlength=len(njet))
        nb = np.bincount(event_of[good & (flat["btagCSVV2"] >= 0.5)], minlength=len(njet))
        selected = one_lepton & (n >= 4) & (nb >= 1)
        # padded table of the selected jets
        width = max(int(n.max(initial=0)), 3)
        # each good jet's place among the good jets of its event
        rank = np.cumsum(good) - 1 - np.repeat(np.concatenate([[0], np.cumsum(good)])[np.cumsum(njet) - njet], njet)
        table = {k: np.full((len(njet), width), np.nan) for k in ("pt", "eta", "phi", "mass", "btag")}
        for k, v in (("pt", pt), ("eta", flat["eta"]), ("phi", flat["phi"]), ("mass", mass),
                     ("btag", flat["btagCSVV2"])):
            table[k][event_of[good], rank[good]] = v[good]
        ht = np.nansum(table["pt"], axis=1)
        mbjj = _trijet(table["pt"], table["eta"], table["phi"], table["mass"], table["btag"], n)
        weights = {"nominal": base}
        if variation == "nominal":
            nominal_jets = table["pt"]
            if meta["is_mc"]:
                for i in range(4):
                    shift = 0.075 * np.nan_to_num(nominal_jets[:, i]) / 50
                    weights[f"btag_var_{i}Up"], weights[f"btag_var_{i}Down"] = base * (1 + shift), base * (1 - shift)
                s = 0.025 if meta.get("process") == "wjets" else 0.0
                weights["scale_varUp"], weights["scale_varDown"] = base * (1 + s), base * (1 - s)
        out[variation] = {
            "4j1b": (ht[selected & (nb == 1)], {k: w[selected & (nb == 1)] for k, w in weights.items()}),
            "4j2b": (mbjj[selected & (nb >= 2)], {k: w[selected & (nb >= 2)] for k, w in weights.items()}),
        }
    return out


def _reference(ds):
    sumw = sum(uproot.open(f)["Runs"]["genEventSumw"].array(library="np").sum() for f in ds.files) if ds.is_mc else 1
    parts = [_reference_file(f, ds.metadata, sumw) for f in ds.files]
    merged = {}
    for variation in parts[0]:
        merged[variation] = {}
        for cat in ("4j1b", "4j2b"):
            values = np.concatenate([p[variation][cat][0] for p in parts])
            ws = {k: np.concatenate([p[variation][cat][1][k] for p in parts]) for k in parts[0][variation][cat][1]}
            merged[variation][cat] = (values, ws)
    return merged


def _binned(values, weights):
    """Sums of weights and of squares per bin, underflow and overflow included (as hist)."""
    index = np.floor((values - 50.0) / 20.0).astype(np.int64) + 1
    index = np.clip(index, 0, 26)
    return (np.bincount(index, weights, minlength=27), np.bincount(index, weights * weights, minlength=27))


def _check(h, values, weights):
    sums, squares = _binned(values, weights)
    view = h.view(flow=True)
    np.testing.assert_allclose(view.value, sums, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(view.variance, squares, rtol=1e-6, atol=1e-12)


def test_histogram_and_variation_names(agc_run):
    datasets, result = agc_run
    assert {(k[0], k[2]) for k in result.histograms} == {("HT", "4j1b"), ("m_bjj", "4j2b")}
    for ds in datasets:
        variations = {k[3] for k in result.histograms if k[1] == ds.name}
        assert variations == ({*SHAPES, *WEIGHT_VARIATIONS} if ds.is_mc else {"nominal"})


@pytest.mark.parametrize("name", list(AGC_SAMPLES))
def test_every_histogram_matches_numpy(agc_run, name):
    datasets, result = agc_run
    ds = next(d for d in datasets if d.name == name)
    ref = _reference(ds)
    for cat, hist_name in (("4j1b", "HT"), ("4j2b", "m_bjj")):
        values, weights = ref["nominal"][cat]
        count, sumw, _ = result.categories[name][cat]
        assert count == len(values) > 0  # counts exact
        assert sumw == pytest.approx(weights["nominal"].sum(), rel=1e-6)
        _check(result.histograms[(hist_name, name, cat, "nominal")], values, weights["nominal"])
        if not ds.is_mc:
            continue
        for variation in WEIGHT_VARIATIONS:
            _check(result.histograms[(hist_name, name, cat, variation)], values, weights[variation])
        for variation in SHAPES[1:]:
            values_v, weights_v = ref[variation][cat]
            _check(result.histograms[(hist_name, name, cat, variation)], values_v, weights_v["nominal"])


def test_variations_do_what_they_say(agc_run):
    datasets, result = agc_run
    h = result.histograms
    for ds in datasets:
        if not ds.is_mc:
            continue
        for hist_name, cat in (("HT", "4j1b"), ("m_bjj", "4j2b")):
            nominal = h[(hist_name, ds.name, cat, "nominal")].values(flow=True)
            # pt_res is one-sided: its Down is the nominal
            assert (h[(hist_name, ds.name, cat, "pt_resDown")].values(flow=True) == nominal).all()
            if ds.metadata["process"] == "ttbar":  # enough events that smearing moves some to another bin
                assert not np.array_equal(h[(hist_name, ds.name, cat, "pt_resUp")].values(flow=True), nominal)
            up, down = (h[(hist_name, ds.name, cat, f"scale_var{d}")].values(flow=True).sum() for d in ("Up", "Down"))
            factor = 0.025 if ds.name == "wjets" else 0.0
            assert up == pytest.approx(nominal.sum() * (1 + factor), rel=1e-9)
            assert down == pytest.approx(nominal.sum() * (1 - factor), rel=1e-9)
    # jets only gain (lose) pT: 4j2b keeps every event and gains (loses) some (ttbar's weights are positive)
    up, nominal, down = (h[("m_bjj", "ttbar", "4j2b", v)].sum(flow=True).value for v in ("pt_scaleUp", "nominal", "pt_scaleDown"))
    assert up > nominal > down


def test_alternative_ttbar_samples_differ_from_the_nominal(agc_run):
    _, result = agc_run
    nominal = result.histograms[("m_bjj", "ttbar", "4j2b", "nominal")].values()
    for alt in ("ttbar_scaledown", "ttbar_scaleup", "ttbar_ME_var", "ttbar_PS_var"):
        other = result.histograms[("m_bjj", alt, "4j2b", "nominal")].values()
        assert not np.allclose(other, nominal, rtol=0.01)
    # the top-quark mass peak: the trijet mass peaks in the bin of 170-190 GeV or a neighbour
    assert 5 <= int(np.argmax(nominal)) <= 7


def test_m_bjj_chooses_the_largest_pt_trijet_with_a_b_tag():
    analysis = highrate.load_analysis(ANALYSIS)
    m_bjj = analysis.quantities["m_bjj"]

    def jet(pt, eta, phi, mass, btag):
        return {"pt": pt, "eta": eta, "phi": phi, "mass": mass, "btagCSVV2": btag}

    jets = ak.Array([
        # the three hardest jets have no b tag: the trijet must take a b-tagged soft jet
        [jet(200.0, 0.0, 0.0, 10.0, 0.1), jet(150.0, 0.5, 2.0, 10.0, 0.2), jet(120.0, -0.5, -2.0, 10.0, 0.3),
         jet(40.0, 1.0, 1.0, 5.0, 0.9), jet(32.0, -1.8, 2.5, 4.0, 0.7)],
        # two b tags; five jets, ten trijets
        [jet(90.0, 0.1, 0.0, 8.0, 0.6), jet(80.0, -1.0, 3.0, 8.0, 0.1), jet(70.0, 2.0, 1.5, 8.0, 0.5),
         jet(60.0, 0.0, -1.5, 8.0, 0.0), jet(35.0, -2.0, 0.3, 4.0, 0.99)],
        # no b tag at all: no trijet qualifies
        [jet(100.0, 0.0, 0.0, 10.0, 0.1), jet(90.0, 1.0, 2.0, 10.0, 0.1), jet(80.0, -1.0, 4.0, 10.0, 0.1)],
        # one b tag: not in 4j2b, where alone m_bjj is filled, so not computed
        [jet(100.0, 0.0, 0.0, 10.0, 0.9), jet(90.0, 1.0, 2.0, 10.0, 0.1), jet(80.0, -1.0, 4.0, 10.0, 0.1),
         jet(70.0, 0.3, 1.0, 10.0, 0.1)],
    ])
    events = ak.Array({"JetGood": jets})
    events = ak.with_field(events, analysis.objects["nBtag"](events), "nBtag")
    got = ak.to_numpy(m_bjj(events))

    def p4(j):
        return np.array([np.sqrt((j["pt"] * np.cosh(j["eta"])) ** 2 + j["mass"] ** 2), j["pt"] * np.cos(j["phi"]),
                         j["pt"] * np.sin(j["phi"]), j["pt"] * np.sinh(j["eta"])])

    from itertools import combinations

    for k, jets in enumerate(events.JetGood.to_list()):
        best = None
        for trio in combinations(jets, 3):
            if not any(j["btagCSVV2"] >= 0.5 for j in trio):
                continue
            s = sum(p4(j) for j in trio)
            if best is None or np.hypot(s[1], s[2]) > np.hypot(best[1], best[2]):
                best = s
        if best is None or sum(j["btagCSVV2"] >= 0.5 for j in jets) < 2:
            assert np.isnan(got[k])
        else:
            assert got[k] == pytest.approx(np.sqrt(best[0] ** 2 - (best[1:] ** 2).sum()), rel=1e-9)
    assert got[0] < 400  # not the mass of the three hardest (untagged) jets


# --- histograms restricted to categories (Histogram(..., categories=[...])) ------------------


def test_histogram_categories_validation():
    from highrate import Analysis, Axis, Histogram
    from highrate.errors import ConfigError

    h = Histogram("HT", Axis("HT", 10, 0, 100), categories="4j1b")
    assert h.categories == ("4j1b",) and h.fills("4j1b") and not h.fills("4j2b")
    assert Histogram("HT", Axis("HT", 10, 0, 100)).fills("anything")
    # without categories the repr (and so the analysis hash) is what it was before they existed
    assert repr(Histogram("x", Axis("x", 1, 0, 1))) == f"Histogram(name='x', axes=({Axis('x', 1, 0, 1)!r},))"
    with pytest.raises(ConfigError, match="non-empty"):
        Histogram("HT", Axis("HT", 10, 0, 100), categories=[])
    with pytest.raises(ConfigError, match=r"unknown category '4j3b'.*4j2b"):
        Analysis(categories={"4j1b": [], "4j2b": []}, histograms=[Histogram("HT", Axis("HT", 10, 0, 100), categories=["4j3b"])])


def test_a_histogram_restricted_to_a_category_equals_the_unrestricted_one_there(agc_set, agc_run):
    """Also in smaller chunks than the main run's one per file: the smearing and every sum are
    independent of the chunking."""
    import dataclasses

    from highrate import Histogram

    analysis = highrate.load_analysis(ANALYSIS)
    everywhere = [Histogram(f"{h.name}_all", h.axes) for h in analysis.histograms]
    both = dataclasses.replace(analysis, histograms=(*analysis.histograms, *everywhere))
    ttbar = [d for d in highrate.load_datasets(agc_set) if d.name == "ttbar"]
    h = highrate.run(both, ttbar, options=highrate.RunOptions(chunk_size=1000)).result.histograms
    assert {(k[0], k[2]) for k in h} == {("HT", "4j1b"), ("m_bjj", "4j2b"), ("HT_all", "4j1b"), ("HT_all", "4j2b"),
                                         ("m_bjj_all", "4j1b"), ("m_bjj_all", "4j2b")}
    main = agc_run[1].histograms
    for name, cat in (("HT", "4j1b"), ("m_bjj", "4j2b")):
        for variation in (*SHAPES, *WEIGHT_VARIATIONS):
            key = (name, "ttbar", cat, variation)
            for other in (h[(f"{name}_all", "ttbar", cat, variation)], main[key]):
                np.testing.assert_allclose(h[key].view(flow=True).value, other.view(flow=True).value, rtol=1e-12)


# --- one command ------------------------------------------------------------------------------


def test_demo_agc_generates_once_and_runs(tmp_path):
    import json

    from highrate.cli.main import main

    args = ["demo", "agc", "--events", "1000", "--files", "1", "--cache-dir", str(tmp_path / "cache")]
    assert main([*args, "--output", str(tmp_path / "out")]) == 0
    files = sorted((tmp_path / "cache").rglob("*.root"))
    assert len(files) == len(AGC_SAMPLES)
    written = {f: f.stat().st_mtime_ns for f in files}
    assert main([*args, "--output", str(tmp_path / "out2")]) == 0
    assert {f: f.stat().st_mtime_ns for f in files} == written  # reused, not generated again
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["events"]["total"] == 1000 * len(AGC_SAMPLES) and report["failed_chunks"] == []
    with uproot.open(tmp_path / "out" / "histograms.root") as f:
        assert f["m_bjj/ttbar/4j2b/pt_scaleUp"].values().sum() > 0
        assert f["HT/ttbar_PS_var/4j1b/nominal"].values().sum() > 0


# --- the fit ----------------------------------------------------------------------------------


def test_the_fit_to_pseudo_data_recovers_the_injected_signal_strength(agc_set, tmp_path):
    """highrate run, then highrate fit's model of both regions (cabinetry, pyhf) on the pseudo-data,
    which holds ttbar at the injected mu: the fitted mu agrees with it within its error, and every
    systematic of the analysis is a nuisance parameter."""
    out = tmp_path / "out"
    assert main(["run", str(ANALYSIS), "--datasets", str(agc_set), "--output", str(out), "--no-progress",
                 "--no-checkpoints"]) == 0
    fitted = run_fit(out, signal="ttbar", regions={"4j1b": "HT", "4j2b": "m_bjj"}, impacts=False, plots=False,
                     hepdata=False)
    assert abs(fitted["mu"] - SIGNAL_STRENGTH) <= fitted["mu_uncertainty"], (fitted["mu"], fitted["mu_uncertainty"])
    names = set(fitted["parameters"])
    for syst in ("pt_scale", "pt_res", "btag_var_0", "btag_var_3", "scale_var", "scale", "ME_var", "PS_var", "lumi"):
        assert syst in names, (syst, sorted(names))

"""Tests of the synthetic NanoAOD generator in ``highrate.testing``.

Every check reads the files back with uproot and recomputes the expectation with numpy.
"""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml

from highrate.testing import (
    COMPRESSION_LEVELS,
    branch_names,
    generate_dataset_set,
    generate_file,
    generate_sample,
)

N_EVENTS = 20_000  # default baskets: 2500 entries -> 8 baskets/clusters

_FLAGS = [
    "Flag_goodVertices", "Flag_globalSuperTightHalo2016Filter", "Flag_HBHENoiseFilter",
    "Flag_HBHENoiseIsoFilter", "Flag_EcalDeadCellTriggerPrimitiveFilter",
    "Flag_BadPFMuonFilter", "Flag_eeBadScFilter", "Flag_METFilters",
]
_COLLECTIONS = {
    "Muon": [("pt", "float"), ("eta", "float"), ("phi", "float"), ("mass", "float"),
             ("charge", "int32_t"), ("tightId", "bool"), ("pfRelIso04_all", "float"),
             ("dxy", "float"), ("dz", "float")],
    "Electron": [("pt", "float"), ("eta", "float"), ("phi", "float"), ("mass", "float"),
                 ("charge", "int32_t"), ("cutBased", "int32_t"), ("pfRelIso03_all", "float"),
                 ("dxy", "float"), ("dz", "float")],
    "Jet": [("pt", "float"), ("eta", "float"), ("phi", "float"), ("mass", "float"),
            ("btagDeepFlavB", "float"), ("jetId", "int32_t"), ("hadronFlavour", "int32_t")],
}
_MC_ONLY = {"genWeight", "Pileup_nTrueInt", "Jet_hadronFlavour"}


def expected_types(is_mc: bool) -> dict[str, str]:
    """The NanoAOD v9 branch list (in order) with uproot's typenames of the ROOT types."""
    out = {"run": "uint32_t", "luminosityBlock": "uint32_t", "event": "uint64_t",
           "genWeight": "float", "PV_npvsGood": "int32_t"}
    out.update(dict.fromkeys([*_FLAGS, "HLT_IsoMu24", "HLT_Ele32_WPTight_Gsf"], "bool"))
    for coll, fields in _COLLECTIONS.items():
        out[f"n{coll}"] = "int32_t"
        out.update({f"{coll}_{name}": f"{t}[]" for name, t in fields})
    out.update({"MET_pt": "float", "MET_phi": "float", "Pileup_nTrueInt": "float"})
    return {k: v for k, v in out.items() if is_mc or k not in _MC_ONLY}


def flat(tree: uproot.TTree, name: str) -> np.ndarray:
    """A branch's values as one flat numpy array (jagged content concatenated)."""
    arr = tree[name].array()
    return ak.to_numpy(ak.flatten(arr) if arr.ndim > 1 else arr)


def all_flat(path) -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        tree = f["Events"]
        names = tree.keys()  # iterating a TTree yields TBranches, not names
        return {name: flat(tree, name) for name in names}


@pytest.fixture(scope="module")
def mc_path(tmp_path_factory):
    return generate_file(tmp_path_factory.mktemp("mc") / "mc.root", events=N_EVENTS, seed=11)


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return generate_file(tmp_path_factory.mktemp("data") / "data.root", events=N_EVENTS,
                         seed=11, is_mc=False)


@pytest.fixture(scope="module")
def small_mc_path(tmp_path_factory):
    """3000 events with seed 3: the reference for the option-varying tests."""
    return generate_file(tmp_path_factory.mktemp("small") / "small.root", events=3000, seed=3)


@pytest.fixture(scope="module")
def mc(mc_path):
    with uproot.open(mc_path) as f:
        yield f


@pytest.fixture(scope="module")
def data(data_path):
    with uproot.open(data_path) as f:
        yield f


@pytest.mark.parametrize("is_mc", [True, False])
def test_branch_names_and_root_types(mc, data, is_mc):
    f = mc if is_mc else data
    tree = f["Events"]
    expected = expected_types(is_mc)
    assert tree.keys() == list(expected)
    assert branch_names(is_mc=is_mc) == list(expected)
    assert {b.name: b.typename for b in tree.branches} == expected
    assert tree.num_entries == N_EVENTS
    assert sorted(f.keys(cycle=False)) == ["Events", "LuminosityBlocks", "Runs"]


def test_data_has_no_mc_branches(data):
    keys = set(data["Events"].keys())
    assert keys.isdisjoint(_MC_ONLY)
    assert data["Runs"].keys() == ["run"]


@pytest.mark.parametrize("is_mc", [True, False])
def test_jagged_nanoaod_layout(mc, data, is_mc):
    tree = (mc if is_mc else data)["Events"]
    for coll, fields in _COLLECTIONS.items():
        counts = tree[f"n{coll}"].array(library="np")
        assert counts.dtype == np.int32
        for name, _ in fields:
            branch_name = f"{coll}_{name}"
            if branch_name not in tree:
                assert not is_mc and branch_name in _MC_ONLY
                continue
            branch = tree[branch_name]
            assert branch.title.split("/")[0] == f"{branch_name}[n{coll}]"
            assert branch.count_branch.name == f"n{coll}"
            np.testing.assert_array_equal(ak.to_numpy(ak.num(branch.array())), counts)


def test_several_baskets_and_clusters(mc):
    tree = mc["Events"]
    for branch in tree.branches:
        assert branch.num_baskets >= 2, branch.name
    offsets = tree.common_entry_offsets()
    assert len(offsets) - 1 >= 2
    assert offsets[-1] == N_EVENTS


def test_basket_events_option(tmp_path):
    p = generate_file(tmp_path / "b.root", events=2500, seed=1, basket_events=700)
    with uproot.open(p) as f:
        tree = f["Events"]
        assert all(b.num_baskets == 4 for b in tree.branches)  # 700+700+700+400
        assert list(tree["Muon_pt"].entry_offsets) == [0, 700, 1400, 2100, 2500]


@pytest.mark.parametrize("coll", ["Muon", "Electron", "Jet"])
def test_collections_sorted_by_pt(mc, coll):
    tree = mc["Events"]
    pt = flat(tree, f"{coll}_pt")
    counts = tree[f"n{coll}"].array(library="np")
    first_of_event = np.zeros(len(pt), dtype=bool)
    first_of_event[np.cumsum(counts)[:-1][counts[1:] > 0]] = True
    inside = ~first_of_event[1:]  # consecutive pairs within one event
    assert np.all(np.diff(pt)[inside] <= 0)
    assert np.all(pt > 0)


def test_runs_tree_sums_match_genweight(mc):
    w = mc["Events"]["genWeight"].array(library="np")
    runs = mc["Runs"].arrays(library="np")
    assert mc["Runs"].keys() == ["run", "genEventCount", "genEventSumw", "genEventSumw2"]
    assert [b.typename for b in mc["Runs"].branches] == [
        "uint32_t", "int64_t", "double", "double"]
    np.testing.assert_array_equal(runs["run"], [1])
    assert runs["genEventCount"].tolist() == [N_EVENTS]
    assert runs["genEventSumw"][0] == np.sum(w.astype(np.float64))
    assert runs["genEventSumw2"][0] == np.sum(w.astype(np.float64) ** 2)


@pytest.mark.parametrize("is_mc", [True, False])
def test_luminosity_blocks_are_the_distinct_pairs(mc, data, is_mc):
    f = mc if is_mc else data
    ev = f["Events"].arrays(["run", "luminosityBlock"], library="np")
    lumis = f["LuminosityBlocks"].arrays(library="np")
    assert f["LuminosityBlocks"]["run"].typename == "uint32_t"
    pairs = np.unique(np.stack([ev["run"], ev["luminosityBlock"]], axis=1), axis=0)
    np.testing.assert_array_equal(np.stack([lumis["run"], lumis["luminosityBlock"]], axis=1),
                                  pairs)
    np.testing.assert_array_equal(f["Runs"]["run"].array(library="np"), np.unique(ev["run"]))


def test_mc_event_numbering(tmp_path):
    p = generate_file(tmp_path / "f.root", events=3000, seed=2, first_event=1500, run=7)
    with uproot.open(p) as f:
        ev = f["Events"].arrays(["run", "luminosityBlock", "event"], library="np")
    np.testing.assert_array_equal(ev["event"], np.arange(1501, 4501, dtype=np.uint64))
    assert set(ev["run"].tolist()) == {7}
    np.testing.assert_array_equal(ev["luminosityBlock"], 1 + (ev["event"] - 1) // 1000)


def test_data_runs_and_lumis(data):
    ev = data["Events"].arrays(["run", "luminosityBlock", "event"], library="np")
    runs = np.unique(ev["run"])
    assert 2 <= len(runs) <= 4
    assert np.all((runs >= 315252) & (runs <= 325175))  # 2018 collision runs
    assert np.all(np.diff(ev["event"].astype(np.int64)) == 1)
    assert np.all(np.diff(ev["run"].astype(np.int64)) >= 0)
    for r in runs:
        lumi = ev["luminosityBlock"][ev["run"] == r].astype(np.int64)
        steps = np.diff(lumi)
        assert set(np.unique(steps).tolist()) <= {0, 1}
        per_lumi = np.bincount(lumi - lumi.min())
        assert 200 <= np.max(per_lumi) <= 500  # a few hundred events per lumi section


def leading_opposite_sign_mass(tree) -> np.ndarray:
    mu = tree.arrays(["Muon_pt", "Muon_eta", "Muon_phi", "Muon_charge"])
    mu = mu[ak.num(mu.Muon_pt) >= 2]
    lead = mu[:, 0]
    rest = mu[:, 1:]
    second = ak.firsts(rest[rest.Muon_charge != lead.Muon_charge])
    ok = ~ak.is_none(second.Muon_pt)
    lead, second = lead[ok], second[ok]

    def p4(m):
        pt, eta, phi = (ak.to_numpy(m[k]).astype(np.float64)
                        for k in ("Muon_pt", "Muon_eta", "Muon_phi"))
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        e = np.sqrt(px**2 + py**2 + pz**2 + 0.10566**2)
        return e, px, py, pz

    e1, x1, y1, z1 = p4(lead)
    e2, x2, y2, z2 = p4(second)
    m2 = (e1 + e2) ** 2 - (x1 + x2) ** 2 - (y1 + y2) ** 2 - (z1 + z2) ** 2
    return np.sqrt(np.maximum(m2, 0.0))


@pytest.mark.parametrize("is_mc", [True, False])
def test_dimuon_mass_peaks_at_z(mc, data, is_mc):
    mass = leading_opposite_sign_mass((mc if is_mc else data)["Events"])
    counts, edges = np.histogram(mass, bins=60, range=(60.0, 120.0))
    peak = 0.5 * (edges[np.argmax(counts)] + edges[np.argmax(counts) + 1])
    assert 88.0 <= peak <= 94.0
    assert counts.max() > 10 * np.median(counts[:10])  # a peak, not a plateau


def test_physics_plausibility(mc):
    ev = mc["Events"].arrays()
    w = ak.to_numpy(ev.genWeight)
    assert len(np.unique(np.abs(w))) == 1 and w[0] != 0
    assert 0.005 <= np.mean(w < 0) <= 0.03
    muon_pt, muon_eta = ak.flatten(ev.Muon_pt), ak.flatten(ev.Muon_eta)
    assert ak.all(muon_pt > 3) and ak.all(abs(muon_eta) < 2.5)
    assert ak.any(abs(muon_eta) > 2.4)  # some muons just beyond the usual acceptance
    assert ak.all(ak.flatten(ev.Muon_mass) == np.float32(0.10566))
    assert set(ak.to_numpy(ak.flatten(ev.Muon_charge)).tolist()) == {-1, 1}
    assert 2.3 <= ak.mean(ev.nJet) <= 3.2
    jet_pt = ak.flatten(ev.Jet_pt)
    assert ak.all(jet_pt >= 15) and ak.max(jet_pt) > 200
    assert ak.all(abs(ak.flatten(ev.Jet_eta)) < 4.7)
    assert set(ak.to_numpy(ak.flatten(ev.Jet_hadronFlavour)).tolist()) <= {0, 4, 5}
    assert set(ak.to_numpy(ak.flatten(ev.Jet_jetId)).tolist()) <= {0, 2, 6}
    btag = ak.to_numpy(ak.flatten(ev.Jet_btagDeepFlavB))
    assert np.all((btag >= 0) & (btag <= 1)) and 0.05 <= np.mean(btag > 0.5) <= 0.15
    assert ak.max(ev.nElectron) <= 2
    assert set(ak.to_numpy(ak.flatten(ev.Electron_cutBased)).tolist()) <= set(range(5))
    npv = ak.to_numpy(ev.PV_npvsGood)
    assert 25 <= npv.mean() <= 35 and 0.001 <= np.mean(npv == 0) <= 0.01
    assert 20 <= ak.mean(ev.MET_pt) <= 35
    assert 25 <= ak.mean(ev.Pileup_nTrueInt) <= 40
    for flag in _FLAGS:
        assert ak.mean(ev[flag]) > 0.98
    met_filters = np.logical_and.reduce([ak.to_numpy(ev[f]) for f in _FLAGS[:-1]])
    np.testing.assert_array_equal(ak.to_numpy(ev.Flag_METFilters), met_filters)
    # HLT_IsoMu24 follows the leading muon
    lead_pt = ak.to_numpy(ak.fill_none(ak.firsts(ev.Muon_pt), 0.0))
    lead_iso = ak.to_numpy(ak.fill_none(ak.firsts(ev.Muon_pfRelIso04_all), 9.0))
    lead_eta = ak.to_numpy(ak.fill_none(ak.firsts(ev.Muon_eta), 9.0))
    good = (lead_pt > 24) & (lead_iso < 0.15) & (np.abs(lead_eta) < 2.4)
    trig = ak.to_numpy(ev.HLT_IsoMu24)
    assert 0.85 <= trig[good].mean() <= 0.95
    assert trig[~good].mean() <= 0.03


def test_data_muon_efficiencies_are_the_simulations_times_the_scale_factors(mc, data, tmp_path):
    """In the scale factors' range, a data muon passes the tight ID (the isolation) as often as a
    simulated one weighted by muon_sf.json's ID (isolation) scale factor."""
    import correctionlib

    from highrate.testing.corrections import write_corrections

    sf = correctionlib.CorrectionSet.from_file(str(write_corrections(tmp_path)["muon_sf"]))

    def muons(f):
        t = f["Events"]
        pt, eta = flat(t, "Muon_pt").astype(float), flat(t, "Muon_eta").astype(float)
        inside = (pt > 15) & (np.abs(eta) < 2.4) & (pt < 200)
        return (pt[inside], np.abs(eta[inside]), flat(t, "Muon_tightId")[inside],
                flat(t, "Muon_pfRelIso04_all")[inside] < 0.15)

    pt, eta, tight, iso = muons(mc)
    d_pt, _, d_tight, d_iso = muons(data)
    assert len(pt) > 10_000 and len(d_pt) > 10_000
    for name, passed, d_passed in (("muon_id_sf", tight, d_tight), ("muon_iso_sf", iso, d_iso)):
        factor = sf[name].evaluate(eta, pt, "nominal")
        expected = np.mean(passed * factor)
        error = np.sqrt(expected * (1 - expected) / len(d_pt) + np.var(passed * factor) / len(pt))
        assert abs(np.mean(d_passed) - expected) < 4 * error, name
        assert np.mean(d_passed) < np.mean(passed) - 4 * error, name  # the scale factors matter


def test_deterministic_by_seed(tmp_path, mc_path):
    again = generate_file(tmp_path / "again.root", events=N_EVENTS, seed=11)
    reference, repeat = all_flat(mc_path), all_flat(again)
    assert list(reference) == list(repeat)
    for name in reference:
        assert reference[name].dtype == repeat[name].dtype
        assert reference[name].tobytes() == repeat[name].tobytes(), name
    other = all_flat(generate_file(tmp_path / "other.root", events=N_EVENTS, seed=12))
    for name in ("Muon_pt", "Jet_pt", "MET_pt", "PV_npvsGood", "genWeight", "nJet"):
        assert reference[name].tobytes() != other[name].tobytes(), name


def test_contents_independent_of_baskets_and_compression(tmp_path):
    a = all_flat(generate_file(tmp_path / "a.root", events=70_000, seed=5))
    b = all_flat(generate_file(tmp_path / "b.root", events=70_000, seed=5, compression="lz4",
                               basket_events=12_345))
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)


def test_mc_and_data_streams_differ(mc_path, data_path):
    a, b = all_flat(mc_path), all_flat(data_path)
    assert a["MET_pt"].tobytes() != b["MET_pt"].tobytes()


@pytest.mark.parametrize("name", ["zlib", "lzma", "lz4", "zstd", "ZSTD", "Lz4"])
def test_compression_algorithms(tmp_path, small_mc_path, name):
    algorithms = {"zlib": uproot.ZLIB, "lzma": uproot.LZMA, "lz4": uproot.LZ4,
                  "zstd": uproot.ZSTD}
    p = generate_file(tmp_path / "c.root", events=3000, seed=3, compression=name)
    with uproot.open(p) as f:
        comp = f.file.compression
        assert isinstance(comp, algorithms[name.lower()])
        assert comp.level == COMPRESSION_LEVELS[name.lower()]
        # random float32 mantissas barely compress (lz4 stores them raw); constants do
        branch = f["Events"]["run"]
        assert branch.compressed_bytes < branch.uncompressed_bytes / 4
        values = flat(f["Events"], "Muon_pt")
    assert values.tobytes() == all_flat(small_mc_path)["Muon_pt"].tobytes()


def test_default_levels_and_explicit_level(tmp_path):
    assert COMPRESSION_LEVELS == {"zlib": 4, "lzma": 9, "lz4": 4, "zstd": 5}
    p = generate_file(tmp_path / "l.root", events=1000, seed=3, compression="zlib", level=1)
    with uproot.open(p) as f:
        assert isinstance(f.file.compression, uproot.ZLIB) and f.file.compression.level == 1


def test_bad_compression_raises(tmp_path):
    with pytest.raises(ValueError, match=r"compression.*'zlib', 'lzma', 'lz4', 'zstd'"):
        generate_file(tmp_path / "x.root", events=10, seed=1, compression="brotli")
    assert not (tmp_path / "x.root").exists()
    with pytest.raises(ValueError, match="compression"):
        generate_dataset_set(tmp_path / "set", events=10, files=1, seed=1, compression="gzip")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"events": -1}, "events"),
    ({"seed": -3}, "seed"),
    ({"extra_branches": -1}, "extra_branches"),
    ({"basket_events": 0}, "basket_events"),
])
def test_invalid_options_raise(tmp_path, kwargs, match):
    options = {"events": 10, "seed": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        generate_file(tmp_path / "x.root", **options)


@pytest.mark.parametrize("n", [1, 2, 37, 250])
def test_extra_branches(tmp_path, n, small_mc_path):
    p = generate_file(tmp_path / "x.root", events=3000, seed=3, extra_branches=n)
    with uproot.open(p) as f:
        tree = f["Events"]
        names = tree.keys()
        core = list(expected_types(True))
        assert names[: len(core)] == core
        extra = names[len(core):]
        assert len(extra) == n and len(set(names)) == len(names)
        assert extra == branch_names(is_mc=True, extra_branches=n)[len(core):]
        for name in extra:
            branch = tree[name]
            assert branch.typename in {"float", "int32_t", "bool", "float[]", "int32_t[]",
                                       "bool[]"}
            assert branch.num_baskets >= 2
            if branch.typename.endswith("[]"):
                counter = branch.count_branch.name
                assert counter in extra and counter == "n" + name.split("_")[0]
                np.testing.assert_array_equal(ak.num(branch.array()),
                                              tree[counter].array(library="np"))
        prefixes = {name.split("_")[0] for name in extra}
    if n >= 37:
        assert {"nTau", "Tau", "fixedGridRhoFastjetAll", "PuppiMET", "Flag"} <= prefixes
    if n >= 250:
        assert {"HLT", "nPhoton", "FatJet"} <= prefixes
    # the core branches are untouched by the extra ones
    reference = all_flat(small_mc_path)
    extended = all_flat(p)
    assert all(reference[k].tobytes() == extended[k].tobytes() for k in reference)


def test_extra_branch_catalogue_reaches_cmssw_sizes():
    names = branch_names(is_mc=True, extra_branches=2700 - 46)
    assert len(names) == len(set(names)) == 2700
    assert sum(name.startswith("HLT_") for name in names) > 1000
    assert sum(name.startswith("L1_") for name in names) > 200


def test_generate_sample(tmp_path):
    paths = generate_sample(tmp_path, name="DY", events=10_001, files=3, seed=4, is_mc=True)
    assert [p.name for p in paths] == ["DY_0.root", "DY_1.root", "DY_2.root"]
    assert all(p.parent == tmp_path / "DY" for p in paths)
    contents = [all_flat(p) for p in paths]
    assert [len(c["event"]) for c in contents] == [3334, 3334, 3333]
    events = np.concatenate([c["event"] for c in contents])
    np.testing.assert_array_equal(events, np.arange(1, 10_002, dtype=np.uint64))
    assert contents[0]["MET_pt"][:3333].tobytes() != contents[1]["MET_pt"][:3333].tobytes()
    # file i is seeded from (seed, i): file 0 matches a single file with that seed
    single = all_flat(generate_file(tmp_path / "single.root", events=3334, seed=4))
    assert all(single[k].tobytes() == contents[0][k].tobytes() for k in single)
    # regenerating with fewer files removes the stale ones so that globs stay right
    generate_sample(tmp_path, name="DY", events=100, files=2, seed=4, is_mc=True)
    assert sorted(p.name for p in (tmp_path / "DY").iterdir()) == ["DY_0.root", "DY_1.root"]


def test_generate_sample_data_runs_are_disjoint(tmp_path):
    paths = generate_sample(tmp_path, name="D", events=6000, files=2, seed=4, is_mc=False)
    runs = []
    for p in paths:
        with uproot.open(p) as f:
            assert "genWeight" not in f["Events"]
            runs.append(set(f["Runs"]["run"].array(library="np").tolist()))
    assert runs[0].isdisjoint(runs[1])


def test_generate_dataset_set(tmp_path):
    yaml_path = generate_dataset_set(tmp_path, events=3001, files=2, seed=9)
    assert yaml_path == tmp_path / "datasets.yaml"
    text = yaml_path.read_text()
    assert text.startswith("# highrate datasets file")
    spec = yaml.safe_load(text)
    for entry in spec["datasets"].values():
        assert entry["metadata"].pop("corrections") == str((tmp_path / "corrections").resolve())
    lumi = spec["datasets"]["DYJetsToLL_M-50"]["metadata"].pop("lumi")
    golden = json.loads((tmp_path / "corrections" / "golden.json").read_text())
    allowed = {(int(r), ls) for r, ranges in golden.items() for a, b in ranges for ls in range(a, b + 1)}
    kept = 0
    for path in (tmp_path / "SingleMuon_2018").glob("*.root"):
        with uproot.open(path) as f:
            ids = f["Events"].arrays(["run", "luminosityBlock"], library="np")
        kept += sum((int(r), int(ls)) in allowed for r, ls in zip(ids["run"], ids["luminosityBlock"], strict=True))
    assert 0 < kept < 3001
    # the luminosity (pb^-1) of the data's lumi sections the golden JSON keeps
    assert lumi == pytest.approx(kept / 6077.22, rel=1e-5)
    assert spec["datasets"]["SingleMuon_2018"]["metadata"].pop("lumi") == lumi
    assert spec == {"datasets": {
        "DYJetsToLL_M-50": {
            "sample": "DYJetsToLL", "files": ["DYJetsToLL_M-50/*.root"], "tree": "Events",
            "metadata": {"is_mc": True, "year": "2018", "xsec": 6077.22},
        },
        "SingleMuon_2018": {
            "sample": "DATA_SingleMuon", "files": ["SingleMuon_2018/*.root"], "tree": "Events",
            "metadata": {"is_mc": False, "year": "2018", "era": "A"},
        },
    }}
    for name, ds in spec["datasets"].items():
        files = sorted(yaml_path.parent.glob(ds["files"][0]))
        assert [p.name for p in files] == [f"{name}_0.root", f"{name}_1.root"]
        total = 0
        for p in files:
            with uproot.open(p) as f:
                tree = f[ds["tree"]]
                total += tree.num_entries
                assert ("genWeight" in tree) is ds["metadata"]["is_mc"]
        assert total == 3001


def test_zero_events_file(tmp_path):
    p = generate_file(tmp_path / "empty.root", events=0, seed=1)
    with uproot.open(p) as f:
        assert f["Events"].num_entries == 0
        assert f["Events"].keys() == list(expected_types(True))
        assert f["Runs"]["genEventCount"].array(library="np").tolist() == [0]

"""NanoAOD skims written outside CMSSW read like CMSSW's: collections from the ``X_*`` branches.

ROOT skims and uproot's writer give every jagged branch a counter of its own (``nMuon_pt``
beside ``Muon_pt``; often ``nMuon`` too) and write no ``Runs`` tree. Here such files are made
with uproot's writer from generated CMSSW-like files, and every collection and the Z→μμ
reference analysis are checked against numpy over the original files.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from compare import assert_matches_reference
from reference_zmumu import analyse, combine, read

import highrate
from highrate.data.io.files import describe, forget
from highrate.engine.events import EventSchema
from highrate.errors import InputFileError
from highrate.testing import generate_file

EVENTS = 3000
ZMUMU = Path(__file__).resolve().parents[1] / "examples" / "zmumu" / "analysis_nominal.py"


def write_skim(source: Path, target: Path, *, keep_counters: bool, entries: slice = slice(None)) -> Path:
    """``source``'s Events tree rewritten by uproot: one counter per jagged branch, no Runs tree;
    with ``keep_counters`` the collection counters (``nMuon``) are kept as plain branches too."""
    with uproot.open(source) as f:
        tree = f["Events"]
        names = [b.name for b in tree.branches if keep_counters or not (b.name.startswith("n") and b.name[1:2].isupper())]
        arrays = tree.arrays(names, library="ak", entry_start=entries.start, entry_stop=entries.stop)
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_ttree(target, {name: arrays[name] for name in names})


def write_ttree(path: Path, arrays: dict) -> Path:
    """A TTree ``Events`` as uproot writes one (a plain dict assignment would write an RNTuple)."""
    types = {k: v.type.content if isinstance(v, ak.Array) else np.asarray(v).dtype for k, v in arrays.items()}
    with uproot.recreate(path, compression=uproot.ZSTD(1)) as out:
        out.mktree("Events", types)
        out["Events"].extend({k: v if isinstance(v, ak.Array) else np.asarray(v) for k, v in arrays.items()})
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("skims")
    mc = generate_file(out / "cmssw" / "mc.root", events=EVENTS, seed=31, is_mc=True, basket_events=1000)
    data = generate_file(out / "cmssw" / "data.root", events=EVENTS, seed=32, is_mc=False, basket_events=1000)
    return {
        "mc": mc, "data": data,
        "mc_uproot": write_skim(mc, out / "uproot" / "mc.root", keep_counters=False),
        "data_uproot": write_skim(data, out / "uproot" / "data.root", keep_counters=False),
        "mc_root": write_skim(mc, out / "root" / "mc.root", keep_counters=True),
        "data_root": write_skim(data, out / "root" / "data.root", keep_counters=True),
    }


def test_the_skims_have_per_branch_counters_and_no_runs_tree(files):
    with uproot.open(files["mc_uproot"]) as f:
        trees = [k.split(";")[0] for k in f.keys()]  # noqa: SIM118 (uproot directories list cycles)
        assert trees == ["Events"]
        tree = f["Events"]
        branches = set(tree.keys())
        assert "nMuon_pt" in branches and "nMuon" not in branches
        assert tree["Muon_pt"].count_branch.name == "nMuon_pt"
    with uproot.open(files["mc_root"]) as f:
        assert {"nMuon", "nMuon_pt", "nJet_pt"} <= set(f["Events"].keys())


@pytest.mark.parametrize("kind", ["uproot", "root"])
def test_every_collection_equals_numpy(files, kind):
    path = str(files[f"mc_{kind}"])
    forget(path)
    info = describe(path, "Events")
    schema = EventSchema.from_branches(info.branches)
    names = {c.name for c in schema.collections}
    assert {"Muon", "Jet", "Electron"} <= names
    assert not any(n.startswith("n") and "_" in n for n in schema.field_names())  # no nMuon_pt fields
    with uproot.open(files["mc"]) as f:  # the original CMSSW-like file
        original = f["Events"]
        for c in schema.collections:
            truth_counts = original[f"n{c.name}"].array(library="np")
            with uproot.open(path) as g:
                tree = g["Events"]
                arrays = {b: tree[b].array(library="np") if not info.branches[b].counter
                          else ak.flatten(tree[b].array(library="ak")).to_numpy()
                          for _, b in c.fields}
                arrays[c.counter] = tree[c.counter].array(library="np")
                for _, b in c.fields:
                    own = info.branches[b].counter
                    arrays[own] = tree[own].array(library="np")
            sub = schema.subset([b for _, b in c.fields])
            events = sub.build(arrays, EVENTS, where=path)
            np.testing.assert_array_equal(ak.num(events[c.name]), truth_counts)
            for field, branch in c.fields:
                expected = ak.flatten(original[branch].array(library="ak")).to_numpy()
                np.testing.assert_array_equal(ak.flatten(events[c.name][field]).to_numpy(), expected,
                                              err_msg=f"{c.name}.{field}")


@pytest.mark.parametrize("kind", ["uproot", "root"])
def test_the_reference_analysis_runs_unchanged_on_skims(files, kind, tmp_path):
    yaml = tmp_path / "datasets.yaml"
    yaml.write_text(
        "datasets:\n"
        f"  mc: {{files: [{files[f'mc_{kind}']}], metadata: {{is_mc: true}}}}\n"
        f"  data: {{files: [{files[f'data_{kind}']}], metadata: {{is_mc: false}}}}\n")
    datasets = highrate.load_datasets(yaml)
    outcome = highrate.run(highrate.load_analysis(ZMUMU), datasets, options=highrate.RunOptions(chunk_size=1000))
    truth = {
        "mc": combine([analyse(read(str(files["mc"]), is_mc=True), is_mc=True)]),
        "data": combine([analyse(read(str(files["data"]), is_mc=False), is_mc=False)]),
    }
    assert_matches_reference(outcome.result, truth)


def test_counters_that_disagree_name_the_branches(files, tmp_path):
    """A skim whose nMuon and nMuon_pt differ in one entry stops with both branches named."""
    with uproot.open(files["mc_root"]) as f:
        tree = f["Events"]
        arrays = tree.arrays(["nMuon", "Muon_pt", "Muon_eta"], library="ak")
    counts = ak.to_numpy(arrays["nMuon"]).copy()
    first = int(np.flatnonzero(counts > 0)[0])
    counts[first] -= 1  # nMuon says one muon less than Muon_pt has
    bad = tmp_path / "bad.root"
    write_ttree(bad, {"nMuon": counts, "Muon_pt": arrays["Muon_pt"], "Muon_eta": arrays["Muon_eta"]})
    info = describe(str(bad), "Events")
    schema = EventSchema.from_branches(info.branches)
    (muon,) = schema.collections
    assert muon.counter == "nMuon"
    with uproot.open(bad) as f:
        tree = f["Events"]
        flat = {b: ak.flatten(tree[b].array(library="ak")).to_numpy() for b in ("Muon_pt", "Muon_eta")}
        flat |= {b: tree[b].array(library="np") for b in ("nMuon", "nMuon_pt", "nMuon_eta")}
    with pytest.raises(InputFileError, match=rf"'nMuon_pt' \(counting 'Muon_pt'\) and 'nMuon' differ in 1 entries, "
                                             rf"the first at entry {first}"):
        schema.build(flat, len(counts), where=str(bad))


def test_an_unknown_field_of_a_wide_file_fits_on_a_screen(tmp_path):
    """A typo on a 1,200-branch file names the close fields and the collections, not every branch."""
    wide = generate_file(tmp_path / "wide.root", events=500, seed=33, is_mc=True, extra_branches=1200)
    (tmp_path / "datasets.yaml").write_text(f"datasets:\n  mc: {{files: [{wide}], metadata: {{is_mc: true}}}}\n")
    analysis = highrate.Analysis(skim=[highrate.Cut("muons", lambda ev: ak.num(ev.Muons) > 0)])
    with pytest.raises(highrate.HighrateError) as info:
        highrate.run(analysis, highrate.load_datasets(tmp_path / "datasets.yaml"))
    message = str(info.value)
    assert len(message) < 2000, len(message)
    assert "skim cut 'muons'" in message and "no field named 'Muons'" in message
    assert "Did you mean 'Muon'" in message
    collections = message.split("Collections: ")[1].split(".")[0].split(", ")
    assert {"Muon", "Electron", "Jet"} <= set(collections)
    with uproot.open(wide) as f:
        names = f["Events"].keys()
        flat = [b for b in names if "_" not in b and not b.startswith("n")]
    assert len(flat) > 10 and not any(f"'{b}'" in message or f" {b}," in message for b in flat[-5:])


def test_without_a_runs_tree_the_normalisation_sums_genweight_and_says_so(files, tmp_path, caplog):
    with uproot.open(files["mc"]) as f:
        runs_sum = float(np.sum(f["Runs"]["genEventSumw"].array(library="np"), dtype=np.float64))
        weights_sum = float(np.sum(f["Events"]["genWeight"].array(library="np"), dtype=np.float64))
    for path, expected, source in ((files["mc"], runs_sum, "Runs"), (files["mc_uproot"], weights_sum, "genWeight")):
        forget(str(path))
        info = describe(str(path), "Events")
        assert (info.gen_sumw, info.gen_sumw_from) == (pytest.approx(expected, rel=1e-12), source)
    assert describe(str(files["data_uproot"]), "Events").gen_sumw is None  # data: no genWeight

    normalised = highrate.Analysis(
        weights=[highrate.Weight("norm", lambda ev, p, meta: meta["xsec"] * meta["lumi"] / meta["sum_genweight"])],
        histograms=[highrate.Histogram("n", highrate.Axis("nMuon", 1, 0, 100))],
    )

    def total(extra: str) -> float:
        yaml = tmp_path / "datasets.yaml"
        yaml.write_text(f"datasets:\n  mc: {{files: [{files['mc_uproot']}], "
                        f"metadata: {{is_mc: true, xsec: 2.0, lumi: 3.0{extra}}}}}\n")
        outcome = highrate.run(normalised, highrate.load_datasets(yaml))
        return float(outcome.result.histograms[("n", "mc", "baseline", "nominal")].values().sum())

    with caplog.at_level("WARNING", logger="highrate.execution.planning"):
        assert total("") == pytest.approx(6.0 * EVENTS / weights_sum, rel=1e-9)
    assert "have no Runs tree" in caplog.text and "mc.root" in caplog.text
    assert total(", sum_genweight: 1500.0") == pytest.approx(6.0 * EVENTS / 1500.0, rel=1e-9)  # the user's value wins

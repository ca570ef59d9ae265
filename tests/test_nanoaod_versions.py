"""The synthetic NanoAOD as v12 (``Jet_jetId``) and v15 (jet energy fractions instead), and the
Z→μμ example running unchanged on both.

The same seed gives the same events in both versions; the Run-3 jet ID recipe, written here
again in numpy, gives on the v15 fractions the class of the v12 bits; and the example's results
(histograms, cutflows, yields) are the same on both, and those of the numpy reference.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from compare import assert_matches_reference, assert_same_result
from reference_zmumu import analyse, combine, read

import highrate
from highrate.cli.main import main
from highrate.testing import branch_names, generate_dataset_set, generate_file

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "zmumu"
V15_JET = {"neHEF": "float", "neEmEF": "float", "chHEF": "float", "chEmEF": "float", "muEF": "float",
           "chMultiplicity": "uint8_t", "neMultiplicity": "uint8_t"}
TREES = ("Events", "Runs", "LuminosityBlocks")


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The datasets file of the same seed as v12 and as v15."""
    out = tmp_path_factory.mktemp("versions")
    return {v: generate_dataset_set(out / f"v{v}", events=20_000, files=1, seed=3, nanoaod_version=v)
            for v in (12, 15)}


@pytest.fixture(scope="module")
def two_chunks(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """A data file of two generation chunks (65,536 events each), as v12 and as v15."""
    out = tmp_path_factory.mktemp("chunks")
    return {v: generate_file(out / f"v{v}.root", events=70_000, seed=11, is_mc=False, nanoaod_version=v)
            for v in (12, 15)}


def pairs(samples: dict[int, Path], two_chunks: dict[int, Path]) -> list[tuple[Path, Path, bool]]:
    """(v12 file, v15 file, is_mc) of every sample."""
    out = [(two_chunks[12], two_chunks[15], False)]
    for name, is_mc in (("DYJetsToLL_M-50", True), ("SingleMuon_2018", False)):
        old, new = (samples[v].parent / name / f"{name}_0.root" for v in (12, 15))
        out.append((old, new, is_mc))
    return out


def recipe(eta, ne_hef, ne_em, ch_hef, ch_em, mu, n_ch, n_ne):
    """(tight, tight lepton veto) of the JME Run-3 recipe for AK4 PUPPI jets, in float64."""
    aeta = np.abs(eta.astype(np.float64))
    ne_hef, ne_em, ch_hef, ch_em, mu = (x.astype(np.float64) for x in (ne_hef, ne_em, ch_hef, ch_em, mu))
    n_ch, n_ne = n_ch.astype(np.int64), n_ne.astype(np.int64)
    tight = np.select(
        [aeta <= 2.6, aeta <= 2.7, aeta <= 3.0],
        [(ne_hef < 0.99) & (ne_em < 0.9) & (n_ch + n_ne > 1) & (ch_hef > 0.01) & (n_ch > 0),
         (ne_hef < 0.9) & (ne_em < 0.99),
         ne_hef < 0.99],
        default=(n_ne >= 2) & (ne_em < 0.4),
    )
    veto = tight & np.where(aeta <= 2.7, (mu < 0.8) & (ch_em < 0.8), True)
    return tight, veto


def flat_branches(path: Path, tree: str = "Events") -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        arrays = f[tree].arrays(library="np")
    return {k: np.concatenate(v) if v.dtype == object else v for k, v in arrays.items()}


def test_every_other_branch_is_the_v12_branch(samples, two_chunks):
    for old, new, is_mc in pairs(samples, two_chunks):
        with uproot.open(old) as f12, uproot.open(new) as f15:
            types12 = {k: b.typename for k, b in f12["Events"].items()}
            types15 = {k: b.typename for k, b in f15["Events"].items()}
        assert list(types15) == branch_names(is_mc=is_mc, nanoaod_version=15)
        assert list(types12) == branch_names(is_mc=is_mc)
        assert "Jet_jetId" in types12 and "Jet_jetId" not in types15
        assert {k: types15[k] for k in types15 if k not in types12} == {f"Jet_{k}": f"{t}[]" for k, t in V15_JET.items()}
        assert {k: v for k, v in types12.items() if k != "Jet_jetId"} == {k: types15[k] for k in types12 if k != "Jet_jetId"}
        for tree in TREES:
            a, b = flat_branches(old, tree), flat_branches(new, tree)
            common = [k for k in a if k != "Jet_jetId"]
            assert len(common) == len(a) - (tree == "Events")
            for name in common:
                assert a[name].dtype == b[name].dtype, name
                np.testing.assert_array_equal(a[name], b[name], err_msg=f"{old.name} {tree} {name}")


def test_the_recipe_on_the_v15_fractions_gives_the_v12_class(samples, two_chunks):
    regions = {"central": (0, 2.6), "edge": (2.6, 2.7), "transition": (2.7, 3.0), "forward": (3.0, np.inf)}
    seen = dict.fromkeys(((r, c) for r in regions for c in (0, 2, 6)), 0)
    for old, new, _ in pairs(samples, two_chunks):
        bits = flat_branches(old)["Jet_jetId"]
        d = flat_branches(new)
        fields = {k: d[f"Jet_{k}"] for k in V15_JET}
        assert {str(v.dtype) for k, v in fields.items() if "Multiplicity" not in k} == {"float32"}
        assert fields["chMultiplicity"].dtype == fields["neMultiplicity"].dtype == np.uint8
        tight, veto = recipe(d["Jet_eta"], *fields.values())
        aeta = np.abs(d["Jet_eta"].astype(np.float64))
        np.testing.assert_array_equal(tight, bits & 2 > 0)
        # beyond |eta| 2.7 the recipe's lepton veto is its tight ID: a v12 jetId of 2 there
        # (tight, not lepton veto) has no v15 equivalent and passes both
        beyond = (bits == 2) & (aeta > 2.7)
        assert beyond.sum() > 0
        np.testing.assert_array_equal(veto[~beyond], (bits & 4 > 0)[~beyond])
        assert veto[beyond].all()
        for region, (lo, hi) in regions.items():
            inside = (aeta > lo) & (aeta <= hi)
            for c in (0, 2, 6):
                seen[region, c] += int((inside & (bits == c)).sum())
        fractions = np.stack([fields[k] for k in ("neHEF", "neEmEF", "chHEF", "chEmEF", "muEF")]).astype(np.float64)
        assert fractions.min() >= 0 and fractions.sum(axis=0).max() < 1 + 1e-6
        assert (fields["chMultiplicity"][aeta > 2.7] == 0).all()  # beyond the tracker: neutral jets
    assert min(seen.values()) > 0, seen  # every class in every region of the recipe


def test_the_recipe_helper_agrees(samples):
    """highrate.jetid on the v15 jets: the same decisions as the numpy recipe above."""
    from highrate.jetid import passes_jet_id

    path = samples[15].parent / "DYJetsToLL_M-50" / "DYJetsToLL_M-50_0.root"
    with uproot.open(path) as f:
        jets = ak.zip({k: f["Events"][f"Jet_{k}"].array() for k in ("eta", *V15_JET)})
    tight, veto = recipe(*(ak.to_numpy(ak.flatten(jets[k])) for k in ("eta", *V15_JET)))
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(passes_jet_id(jets, "tight"))), tight)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(passes_jet_id(jets, "tightLepVeto"))), veto)


def test_the_datasets_file_names_the_version(samples):
    for version, path in samples.items():
        for ds in highrate.load_datasets(path):
            assert ds.metadata.get("nanoaod_version") == (15 if version == 15 else None)


def without_bytes(result: highrate.Result) -> highrate.Result:
    """The result with ``bytes_read`` left out of its counts: v15 reads other jet branches."""
    counts = {ds: {k: v for k, v in c.items() if k != "bytes_read"} for ds, c in result.counts.items()}
    return dataclasses.replace(result, counts=counts)


@pytest.mark.parametrize("example", ["analysis_nominal.py", "analysis.py"])
def test_the_example_gives_the_same_results_on_v12_and_v15(samples, example):
    analysis = highrate.load_analysis(EXAMPLE / example)
    outcomes = {v: highrate.run(analysis, highrate.load_datasets(path), options=highrate.RunOptions(chunk_size=8000))
                for v, path in samples.items()}
    for v, outcome in outcomes.items():
        assert outcome.result.failed == []
        for plan in outcome.plans.values():  # the jetId bits on v12, the recipe's fractions on v15
            assert ("Jet_jetId" in plan.branches) == (v == 12)
            assert ("Jet_neHEF" in plan.branches) == (v == 15)
    a, b = outcomes[12].result, outcomes[15].result
    assert len(a.histograms) >= 12 and sum(h.values().sum() for h in a.histograms.values()) > 0
    assert_same_result(without_bytes(a), without_bytes(b))
    if example == "analysis_nominal.py":  # and both are the numpy reference's, made from the v12 files
        truth = {d.name: combine([analyse(read(f, is_mc=d.is_mc), is_mc=d.is_mc) for f in d.files])
                 for d in highrate.load_datasets(samples[12])}
        assert_matches_reference(b, truth)


def test_generate_writes_v15_from_the_command_line(tmp_path, capsys):
    assert main(["generate", str(tmp_path), "--events", "3000", "--files", "1", "--nanoaod-version", "15"]) == 0
    with uproot.open(tmp_path / "DYJetsToLL_M-50" / "DYJetsToLL_M-50_0.root") as f:
        names = list(f["Events"].keys())
    assert names == branch_names(is_mc=True, nanoaod_version=15)
    assert highrate.load_datasets(tmp_path / "datasets.yaml")[0].metadata["nanoaod_version"] == 15
    with pytest.raises(SystemExit):
        main(["generate", str(tmp_path), "--nanoaod-version", "13"])
    with pytest.raises(ValueError, match="nanoaod_version"):
        generate_file(tmp_path / "x.root", events=10, seed=1, nanoaod_version=14)
    with pytest.raises(ValueError, match="nanoaod_version"):
        generate_dataset_set(tmp_path / "none", events=10, files=1, seed=1, nanoaod_version=9)
    assert not (tmp_path / "none").exists()

"""The Run-3 jet ID recipe against an independent numpy evaluation, the jetId bits of older
NanoAOD, a real run on v12-like and v15-like files, and the correctionlib route."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot
from correctionlib import schemav2

import highrate
from highrate.errors import ConfigError
from highrate.jetid import jet_id_from_correction, passes_jet_id, tight, tight_lepton_veto

FIELDS = ("eta", "neHEF", "neEmEF", "chHEF", "chEmEF", "muEF", "chMultiplicity", "neMultiplicity")


def generated_jets(n_events: int, seed: int, *, boundaries: bool = True) -> ak.Array:
    """Jets with fractions and multiplicities spread over every threshold of the recipe (and, with
    ``boundaries``, |η| exactly on the region edges)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 6, n_events)
    n = int(counts.sum())
    eta = rng.uniform(-5, 5, n)
    if boundaries:
        on_edge = rng.random(n) < 0.1
        eta[on_edge] = rng.choice([-3.0, -2.7, -2.6, 2.6, 2.7, 3.0], on_edge.sum())
    flat = {
        "eta": eta.astype(np.float32),
        "pt": rng.exponential(40, n).astype(np.float32),
        "neHEF": rng.uniform(0.8, 1.0, n).astype(np.float32),
        "neEmEF": rng.uniform(0.3, 1.0, n).astype(np.float32),
        "chHEF": rng.uniform(0.0, 0.05, n).astype(np.float32),
        "chEmEF": rng.uniform(0.6, 1.0, n).astype(np.float32),
        "muEF": rng.uniform(0.6, 1.0, n).astype(np.float32),
        "chMultiplicity": rng.integers(0, 4, n).astype(np.uint8),
        "neMultiplicity": rng.integers(0, 4, n).astype(np.uint8),
    }
    return ak.unflatten(ak.zip(flat), counts)


def reference(jets: ak.Array, *, lepton_veto: bool) -> np.ndarray:
    """The recipe's table, region by region with np.select, per flat jet."""
    f = {k: ak.to_numpy(ak.flatten(jets[k])).astype(np.float64) for k in FIELDS}
    aeta = np.abs(f["eta"])
    region = np.select([aeta <= 2.6, aeta <= 2.7, aeta <= 3.0], [0, 1, 2], default=3)
    n_ch, n_ne = f["chMultiplicity"], f["neMultiplicity"]
    decisions = [
        (f["neHEF"] < 0.99) & (f["neEmEF"] < 0.9) & (n_ch + n_ne > 1) & (f["chHEF"] > 0.01) & (n_ch > 0),
        (f["neHEF"] < 0.9) & (f["neEmEF"] < 0.99),
        f["neHEF"] < 0.99,
        (n_ne >= 2) & (f["neEmEF"] < 0.4),
    ]
    passed = np.choose(region, decisions)
    if lepton_veto:
        passed &= (region >= 2) | ((f["muEF"] < 0.8) & (f["chEmEF"] < 0.8))
    return passed


def test_tight_and_lepton_veto_equal_the_reference():
    jets = generated_jets(20_000, seed=5)
    for function, veto in ((tight, False), (tight_lepton_veto, True)):
        got = function(jets)
        np.testing.assert_array_equal(ak.num(got), ak.num(jets))
        expected = reference(jets, lepton_veto=veto)
        np.testing.assert_array_equal(ak.to_numpy(ak.flatten(got)), expected)
        assert 0.05 < expected.mean() < 0.95  # both outcomes occur


def test_a_filtered_collection_gives_the_same_decisions():
    jets = generated_jets(5_000, seed=6)
    selected = jets[jets.pt > 30]
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(tight(selected))), reference(selected, lepton_veto=False))


def test_jetid_bits_are_used_where_present_unless_the_metadata_says_v15():
    jets = generated_jets(3_000, seed=7)
    bits = ak.unflatten(np.random.default_rng(8).choice([0, 2, 6], int(ak.sum(ak.num(jets)))).astype(np.int32),
                        ak.num(jets))
    old = ak.with_field(jets, bits, "jetId")
    flat_bits = ak.to_numpy(ak.flatten(bits))
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(passes_jet_id(old, "tight"))), flat_bits >= 2)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(passes_jet_id(old, "tightLepVeto"))), flat_bits == 6)
    recomputed = passes_jet_id(old, "tight", {"nanoaod_version": 15})
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(recomputed)), reference(jets, lepton_veto=False))
    with pytest.raises(ConfigError, match=r"level 'tigth' is unknown.*Did you mean 'tight'"):
        passes_jet_id(jets, "tigth")
    with pytest.raises(ConfigError, match="lack neHEF"):
        passes_jet_id(jets[["eta", "pt"]])


def write_nanoaod(path, jets: ak.Array, *, with_jetid: bool) -> None:
    """A NanoAOD-like Events tree of the jets (v12 with Jet_jetId, v15 without)."""
    fields = {k: jets[k] for k in ("pt", *FIELDS)}
    if with_jetid:
        fields["jetId"] = ak.values_astype(tight_lepton_veto(jets), np.int32) * 4 + ak.values_astype(tight(jets), np.int32) * 2
    events = {"run": np.ones(len(jets), np.uint32), "Jet": ak.zip(fields)}
    with uproot.recreate(path) as f:
        f.mktree("Events", {k: v.type.content if isinstance(v, ak.Array) else v.dtype for k, v in events.items()})
        f["Events"].extend(events)


@pytest.mark.parametrize("level", ["tight", "tightLepVeto"])
@pytest.mark.parametrize("version", [12, 15])
def test_one_analysis_runs_on_v12_and_v15_files(tmp_path, version, level):
    """Tracing finds what the level reads (tight needs no lepton fraction), and the run has it."""
    jets = generated_jets(6_000, seed=9, boundaries=False)
    path = tmp_path / f"nano_v{version}.root"
    write_nanoaod(path, jets, with_jetid=version == 12)
    (tmp_path / "datasets.yaml").write_text(f"datasets:\n  mc: {{files: [{path}], metadata: {{is_mc: true}}}}\n")
    analysis = highrate.Analysis(
        objects={"JetGood": lambda ev: ev.Jet[passes_jet_id(ev.Jet, level) & (ev.Jet.pt > 30)]},
        histograms=[highrate.Histogram("n", highrate.Axis("nJetGood", 6, 0, 6))],
    )
    outcome = highrate.run(analysis, highrate.load_datasets(tmp_path / "datasets.yaml"),
                           options=highrate.RunOptions(chunk_size=2000))
    branches = outcome.plans["mc"].branches
    assert ("Jet_jetId" in branches) == (version == 12)
    assert ("Jet_muEF" in branches) == (version == 15 and level == "tightLepVeto")
    passed = reference(jets, lepton_veto=level == "tightLepVeto") & (ak.to_numpy(ak.flatten(jets.pt)) > 30)
    per_event = np.add.reduceat(passed, np.r_[0, np.cumsum(ak.num(jets))[:-1]]) * (ak.to_numpy(ak.num(jets)) > 0)
    expected = np.bincount(np.minimum(per_event, 6), minlength=7)[:6]
    np.testing.assert_array_equal(outcome.result.histograms[("n", "mc", "baseline", "nominal")].values(), expected)


def _all_of(conditions: list[tuple[str, str, float]]) -> object:
    """Nested binnings that give 1 where every (input, "<" or ">", threshold) holds, else 0."""
    node: object = 1.0
    for name, op, threshold in reversed(conditions):
        content = [node, 0.0] if op == "<" else [0.0, node]
        node = schemav2.Binning(nodetype="binning", input=name, edges=[-1e6, threshold, 1e6], content=content, flow="clamp")
    return node


def recipe_as_correction(path) -> None:
    """The tight recipe written as a correctionlib file, as JME publishes it (continuous inputs)."""
    central = _all_of([("neHEF", "<", 0.99), ("neEmEF", "<", 0.9), ("multiplicity", ">", 1.5),
                       ("chHEF", ">", 0.01), ("chMultiplicity", ">", 0.5)])
    edge = _all_of([("neHEF", "<", 0.9), ("neEmEF", "<", 0.99)])
    transition = _all_of([("neHEF", "<", 0.99)])
    forward = _all_of([("neMultiplicity", ">", 1.5), ("neEmEF", "<", 0.4)])
    data = schemav2.Binning(nodetype="binning", input="eta", edges=[-6, -3.0, -2.7, -2.6, 2.6, 2.7, 3.0, 6],
                            content=[forward, transition, edge, central, edge, transition, forward], flow="clamp")
    names = ["eta", "chHEF", "neHEF", "chEmEF", "neEmEF", "muEF", "chMultiplicity", "neMultiplicity", "multiplicity"]
    correction = schemav2.Correction(
        name="AK4PUPPI_Tight", version=1, inputs=[schemav2.Variable(name=n, type="real") for n in names],
        output=schemav2.Variable(name="id", type="real"), data=data)
    path.write_text(schemav2.CorrectionSet(schema_version=2, corrections=[correction]).model_dump_json(exclude_unset=True))


def test_the_correctionlib_route_agrees_with_the_recipe(tmp_path):
    path = tmp_path / "jetid.json"
    recipe_as_correction(path)
    jets = generated_jets(5_000, seed=10, boundaries=False)
    got = jet_id_from_correction(jets, path, "AK4PUPPI_Tight")
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(got)), reference(jets, lepton_veto=False))
    with pytest.raises(ConfigError, match="needs the input 'muEF'"):
        jet_id_from_correction(jets[["eta", "chHEF", "neHEF", "chEmEF", "neEmEF", "chMultiplicity", "neMultiplicity"]],
                               path, "AK4PUPPI_Tight")

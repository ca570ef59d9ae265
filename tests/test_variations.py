"""Weight variations, normalisation and shape variations against independent numpy computations."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from reference_zmumu import analyse, read

import highrate

HERE = Path(__file__).resolve().parent
SYST = HERE / "systematic_analysis.py"


@pytest.fixture(scope="module")
def mc(sample):
    datasets = highrate.load_datasets(sample)
    return next(d for d in datasets if d.is_mc)


@pytest.fixture(scope="module")
def outcome(mc):
    analysis = highrate.load_analysis(SYST)
    return highrate.run(analysis, [mc], options=highrate.RunOptions(chunk_size=5000))


def reference(mc, jet_scale: np.float32 | None = None, iso_scale: np.float32 | None = None) -> dict[str, np.ndarray]:
    parts = []
    for f in mc.files:
        d = read(f, is_mc=True)
        if jet_scale is not None:
            d["Jet_pt"] = d["Jet_pt"] * jet_scale  # float32, as the variation computes it
        if iso_scale is not None:
            d["Muon_pfRelIso04_all"] = d["Muon_pfRelIso04_all"] * iso_scale
        parts.append(analyse(d, is_mc=True)["events"])
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def norm(mc) -> float:
    sumw = sum(float(uproot.open(f)["Runs"]["genEventSumw"].array(library="np").sum()) for f in mc.files)
    return mc.metadata["xsec"] * 59_700.0 / sumw


def hist_of(out, name, category, variation, ds):
    return out.result.histograms[(name, ds, category, variation)]


def test_normalisation_and_weight_variations(outcome, mc):
    ev = reference(mc)
    npv = 1.0 + 0.01 * ev["npv"]
    base = ev["w"] * norm(mc)
    for variation, factor in (("nominal", npv), ("npvUp", npv * 1.05), ("npvDown", npv * 0.95)):
        h = hist_of(outcome, "mll", "baseline", variation, mc.name)
        expected, _ = np.histogram(ev["mll"], bins=120, range=(60, 120), weights=base * factor)
        np.testing.assert_allclose(h.values(), expected, rtol=1e-10, atol=1e-9, err_msg=variation)
    assert outcome.plans[mc.name].meta["sum_genweight"] == pytest.approx(mc.metadata["xsec"] * 59_700.0 / norm(mc))


def test_jes_up_equals_the_selection_rerun_on_shifted_jets(outcome, mc):
    from systematic_analysis import JES

    npv = 1.0 + 0.01 * reference(mc)["npv"]
    for variation, scale in (("JESUp", np.float32(1) + JES), ("JESDown", np.float32(1) - JES)):
        ev = reference(mc, jet_scale=scale)
        w = ev["w"] * norm(mc) * npv
        counts, _ = np.histogram(ev["njet"], bins=10, range=(0, 10), weights=w)
        np.testing.assert_allclose(hist_of(outcome, "nJetGood", "baseline", variation, mc.name).values(), counts,
                                   rtol=1e-10, atol=1e-9)
        has = ev["has_jet"]
        pt1, _ = np.histogram(ev["jet_pt_1"][has], bins=100, range=(0, 500), weights=w[has])
        np.testing.assert_allclose(hist_of(outcome, "JetGood_pt_1", "baseline", variation, mc.name).values(), pt1,
                                   rtol=1e-10, atol=1e-9)
        # the category with a jet changes membership with the shift
        mll_cat, _ = np.histogram(ev["mll"][has], bins=120, range=(60, 120), weights=w[has])
        np.testing.assert_allclose(hist_of(outcome, "mll", "with_jet", variation, mc.name).values(), mll_cat,
                                   rtol=1e-10, atol=1e-9)
    nominal = hist_of(outcome, "nJetGood", "baseline", "nominal", mc.name).values()
    assert not np.array_equal(nominal, hist_of(outcome, "nJetGood", "baseline", "JESUp", mc.name).values())
    # muons are not touched by JES: MuonGood is reused, and so mll in the baseline is unchanged
    np.testing.assert_array_equal(hist_of(outcome, "mll", "baseline", "JESUp", mc.name).values(),
                                  hist_of(outcome, "mll", "baseline", "nominal", mc.name).values())


def test_iso_shift_reruns_the_preselection(outcome, mc):
    """A variation that changes what the preselection reads runs on the skimmed events."""
    from systematic_analysis import ISO

    npv = 1.0 + 0.01 * reference(mc)["npv"]
    for variation, scale in (("ISOUp", np.float32(1) + ISO), ("ISODown", np.float32(1) - ISO)):
        ev = reference(mc, iso_scale=scale)
        w = ev["w"] * norm(mc) * (1.0 + 0.01 * ev["npv"])
        expected, _ = np.histogram(ev["mll"], bins=120, range=(60, 120), weights=w)
        np.testing.assert_allclose(hist_of(outcome, "mll", "baseline", variation, mc.name).values(), expected,
                                   rtol=1e-10, atol=1e-9, err_msg=variation)
        assert len(ev["mll"]) != len(npv)  # the shift moves events in or out of the preselection
        counts, _ = np.histogram(ev["njet"], bins=10, range=(0, 10), weights=w)
        np.testing.assert_allclose(hist_of(outcome, "nJetGood", "baseline", variation, mc.name).values(), counts,
                                   rtol=1e-10, atol=1e-9, err_msg=variation)


def test_variations_know_what_they_replace(outcome, mc):
    """Tracing records the fields each variation replaces; JES, which the preselection does not
    read, then runs on the preselected events only (its results are checked above)."""
    deps = outcome.plans[mc.name].deps
    assert deps.variations == {"JES": {"Jet"}, "ISO": {"Muon"}}
    analysis = highrate.load_analysis(SYST)
    assert deps.affected(analysis, deps.variations["JES"]) == {"Jet", "JetGood"}
    assert deps.affected(analysis, deps.variations["ISO"]) == {"Muon", "MuonGood", "mll"}
    # traced through the downstream stages: the shifted jets' unused fields are not read
    branches = outcome.plans[mc.name].branches
    assert {"Jet_pt", "Jet_eta", "Jet_jetId"} <= set(branches)
    assert not {"Jet_mass", "Jet_phi", "Jet_btagDeepFlavB"} & set(branches)


def test_object_dependencies_found_by_tracing(outcome, mc):
    deps = outcome.plans[mc.name].deps.objects
    assert deps["MuonGood"] == {"Muon"}
    assert deps["JetGood"] == {"Jet"}
    assert deps["mll"] == {"MuonGood"}


def test_data_gets_neither_mc_weights_nor_shape_variations(sample):
    data = next(d for d in highrate.load_datasets(sample) if not d.is_mc)
    out = highrate.run(highrate.load_analysis(SYST), [data], options=highrate.RunOptions(chunk_size=10_000))
    variations = {k[3] for k in out.result.histograms}
    assert variations == {"nominal"}
    assert "Pileup_nTrueInt" not in out.plans[data.name].branches


def test_shape_variation_output_names(outcome):
    variations = {k[3] for k in outcome.result.histograms}
    assert variations == {"nominal", "npvUp", "npvDown", "JESUp", "JESDown", "ISOUp", "ISODown"}


def test_up_and_down_share_one_dict_per_chunk(mc, zmumu_path):
    """``shared`` is one dict for both directions of a chunk, and a new one for the next chunk."""
    import dataclasses

    seen = []

    def shift(events, direction, meta, shared):
        shared[direction] = True
        if ak.backend(events) != "typetracer":  # the trace calls it too, on shapeless events
            seen.append((direction, id(shared), dict(shared)))
        return {"Jet": events.Jet}

    nominal = highrate.load_analysis(zmumu_path)
    analysis = dataclasses.replace(nominal, variations=(highrate.ShapeVariation("same", shift),))
    run = highrate.run(analysis, [mc], options=highrate.RunOptions(chunk_size=5000))
    real = seen
    assert len(real) == 2 * run.chunks
    for up, down in zip(real[::2], real[1::2], strict=True):
        assert (up[0], down[0]) == ("up", "down") and up[1] == down[1]
        assert up[2] == {"up": True} and down[2] == {"up": True, "down": True}
    for key, h in run.result.histograms.items():  # an identity shift changes nothing
        if key[3] in ("sameUp", "sameDown"):
            np.testing.assert_array_equal(h.values(), run.result.histograms[(*key[:3], "nominal")].values())


def test_unchanged_histograms_are_not_filled_again(mc, monkeypatch):
    """JES moves no muon: in the category without a jet cut, the muon histograms of JESUp/Down are
    the nominal ones, copied rather than filled again; everything else is filled."""
    from highrate.engine.stages.chunk_recorder import ChunkRecorder

    copied = set()
    real = ChunkRecorder.same

    def spy(self, histogram, category, source, variation, *, dataset=None):
        copied.add((histogram.name, category, variation))
        return real(self, histogram, category, source, variation, dataset=dataset)

    monkeypatch.setattr(ChunkRecorder, "same", spy)
    highrate.run(highrate.load_analysis(SYST), [mc], options=highrate.RunOptions(chunk_size=5000, limit_chunks=2))
    muon = ("mll", "MuonGood_pt_1", "MuonGood_eta_1", "MuonGood_phi_1")
    assert copied == {(h, "baseline", v) for h in muon for v in ("JESUp", "JESDown")}

"""highrate.lumimask.LumiMask against a Python set of the golden JSON's (run, lumi) pairs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from highrate.errors import ConfigError
from highrate.lumimask import LumiMask, LumiMaskError
from highrate.testing import DATA_SAMPLE


def allowed_pairs(golden: Path) -> set[tuple[int, int]]:
    document = json.loads(golden.read_text())
    return {(int(run), lumi) for run, ranges in document.items()
            for first, last in ranges for lumi in range(first, last + 1)}


def data_ids(sample: Path) -> tuple[np.ndarray, np.ndarray]:
    runs, lumis = [], []
    for path in sorted((sample.parent / DATA_SAMPLE).glob("*.root")):
        with uproot.open(path) as f:
            ids = f["Events"].arrays(["run", "luminosityBlock"], library="np")
        runs.append(ids["run"])
        lumis.append(ids["luminosityBlock"])
    return np.concatenate(runs), np.concatenate(lumis)


def test_mask_removes_exactly_the_masked_lumis(sample: Path) -> None:
    golden = sample.parent / "corrections" / "golden.json"
    for name in ("pileup.json", "muon_sf.json", "jes.json"):
        assert (sample.parent / "corrections" / name).is_file()
    run, lumi = data_ids(sample)
    allowed = allowed_pairs(golden)
    expected = np.array([(r, lu) in allowed for r, lu in zip(run.tolist(), lumi.tolist(), strict=True)])
    mask = LumiMask(golden)
    got = mask.mask(run, lumi)
    assert got.dtype == np.bool_ and got.shape == run.shape
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(mask.mask(ak.Array(run), ak.Array(lumi)), expected)
    np.testing.assert_array_equal(mask(ak.zip({"run": run, "luminosityBlock": lumi})), expected)
    # some events go: one whole run, and lumi ranges inside the others
    assert 0 < expected.sum() < len(expected)
    runs_in_data = set(np.unique(run).tolist())
    dropped_runs = runs_in_data - {int(r) for r in json.loads(golden.read_text())}
    assert len(dropped_runs) == 1
    partly = {r for r in runs_in_data - dropped_runs if not expected[run == r].all()}
    assert len(partly) >= 2
    assert pickle.loads(pickle.dumps(mask)).mask(run, lumi).sum() == expected.sum()


def test_ranges_are_inclusive_and_merged(tmp_path: Path) -> None:
    path = tmp_path / "golden.json"
    path.write_text(json.dumps({"7": [[3, 5], [1, 2], [4, 10], [20, 20]], "9": [[1, 1]], "8": []}))
    mask = LumiMask(path)
    allowed = {(7, lumi) for lumi in [*range(1, 11), 20]} | {(9, 1)}
    lumis = np.arange(0, 25, dtype=np.uint32)
    for run in (6, 7, 8, 9, 10):
        runs = np.full(len(lumis), run, dtype=np.uint32)
        np.testing.assert_array_equal(mask.mask(runs, lumis), [(run, int(lu)) in allowed for lu in lumis])
    assert mask.mask(np.array([], dtype=np.int64), np.array([], dtype=np.int64)).shape == (0,)
    assert "3 runs, 3 lumi ranges" in repr(mask)


def test_typetracer_input(tmp_path: Path) -> None:
    ids = ak.zip({"run": np.array([315252, 315253], dtype=np.uint32),
                  "luminosityBlock": np.array([1, 2], dtype=np.uint32)})
    layout, report = ak.typetracer.typetracer_with_report(ids.layout.form_with_key())
    path = tmp_path / "golden.json"
    path.write_text('{"315252": [[1, 5]]}')
    out = LumiMask(path)(ak.Array(layout))
    assert ak.backend(out) == "typetracer" and str(out.type.content) == "bool"
    assert len(report.data_touched) == 2  # run and luminosityBlock are read


@pytest.mark.parametrize("text, match", [
    ("{ nope", "is not valid JSON"),
    ("[[1, 2]]", "top level is a list"),
    ('{"abc": [[1, 2]]}', "'abc' is not a run number"),
    ('{"1": [[5, 2]]}', r"lumi range \[5, 2\]"),
    ('{"1": [[1]]}', r"lumi range \[1\]"),
    ('{"1": [[1.5, 2]]}', r"lumi range \[1.5, 2\]"),
    ('{"1": "1-5"}', "maps to '1-5'"),
])
def test_malformed_golden_json(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad_golden.json"
    path.write_text(text)
    with pytest.raises(LumiMaskError, match=match) as info:
        LumiMask(path)
    assert "bad_golden.json" in str(info.value) and isinstance(info.value, ConfigError)


def test_missing_golden_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.json.*does not exist"):
        LumiMask(tmp_path / "missing.json")


def test_golden_json_and_corrections_in_an_analysis(sample: Path) -> None:
    """A run with the golden JSON as a data skim cut and correction weights on MC, checked
    against uproot + correctionlib directly."""
    import correctionlib

    import highrate
    from highrate import Analysis, Axis, Cut, Histogram, Weight
    from highrate.corrections import muon_sf, pileup_weight
    from highrate.testing import MC_SAMPLE

    corrections = sample.parent / "corrections"
    golden = LumiMask(corrections / "golden.json")

    def good(ev):
        mu = ev.Muon
        return mu[(mu.pt > 15) & (mu.pt < 200) & (abs(mu.eta) < 2.4) & mu.tightId]

    analysis = Analysis(
        name="corrections",
        skim=[Cut("golden", lambda ev, p, meta: ev.run > 0 if meta["is_mc"] else golden(ev))],
        objects={"MuonGood": good},
        preselection=[Cut("two_muons", lambda ev: ak.num(ev.MuonGood) >= 2)],
        weights=[Weight("pileup", lambda ev: pileup_weight(ev, corrections / "pileup.json")),
                 Weight("muon_id", lambda ev: muon_sf(ev.MuonGood, corrections / "muon_sf.json"))],
        histograms=[Histogram("nMuonGood", Axis("nMuonGood", 20, 0, 20))],
    )
    result = highrate.run(analysis, highrate.load_datasets(sample)).result

    def read(name: str) -> tuple[ak.Array, np.ndarray, ak.Array]:
        branches = ["Muon_pt", "Muon_eta", "Muon_tightId"] + (["Pileup_nTrueInt"] if name == MC_SAMPLE else [])
        parts = []
        for path in sorted((sample.parent / name).glob("*.root")):
            with uproot.open(path) as f:
                parts.append(f["Events"].arrays(branches))
        ev = ak.concatenate(parts)
        sel = (ev.Muon_pt > 15) & (ev.Muon_pt < 200) & (abs(ev.Muon_eta) < 2.4) & ev.Muon_tightId
        return ev, ak.to_numpy(ak.sum(sel, axis=1)) >= 2, sel

    # data: events in the golden JSON with two good muons, unweighted
    run, lumi = data_ids(sample)
    allowed = allowed_pairs(corrections / "golden.json")
    in_golden = np.array([(r, lu) in allowed for r, lu in zip(run.tolist(), lumi.tolist(), strict=True)])
    _, two, _ = read(DATA_SAMPLE)
    data_key = ("nMuonGood", DATA_SAMPLE, "baseline", "nominal")
    assert result.histograms[data_key].sum().value == np.sum(in_golden & two) < np.sum(two)
    # MC: pileup weight x product of the muons' ID scale factors, from correctionlib directly
    ev, two, sel = read(MC_SAMPLE)
    pu = correctionlib.CorrectionSet.from_file(str(corrections / "pileup.json"))["pileup"]
    sf = correctionlib.CorrectionSet.from_file(str(corrections / "muon_sf.json"))["muon_id_sf"]
    pt, eta = ev.Muon_pt[sel][two], ev.Muon_eta[sel][two]
    per_muon = sf.evaluate(np.abs(ak.to_numpy(ak.flatten(eta))).astype(float),
                           ak.to_numpy(ak.flatten(pt)).astype(float), "nominal")
    w = pu.evaluate(ak.to_numpy(ev.Pileup_nTrueInt[two]).astype(float), "nominal") * ak.to_numpy(
        ak.prod(ak.unflatten(per_muon, ak.num(pt)), axis=1))
    mc_key = ("nMuonGood", MC_SAMPLE, "baseline", "nominal")
    assert result.histograms[mc_key].sum().value == pytest.approx(w.sum(), rel=1e-9)

"""Files a physicist passes around that are not a plain CMSSW NanoAOD: empty ones, another tree
name, extra trees, and an object used only through its count. Each against numpy."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from compare import assert_matches_reference
from reference_zmumu import analyse, combine, read

import highrate
from highrate.testing import generate_file

ZMUMU = Path(__file__).resolve().parents[1] / "examples" / "zmumu" / "analysis_nominal.py"
EVENTS = 4000


def rewrite(src: Path, dst: Path, *, entries: int | None = None, tree: str = "Events",
            extra_trees: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> Path:
    """``src``'s Events rewritten by uproot's writer CMSSW-style (one ``nX`` per collection): its
    first ``entries`` entries, as tree ``tree``, beside small ``extra_trees``."""
    with uproot.open(src) as f:
        events = f["Events"]
        names = [b.name for b in events.branches if b.name not in drop]
        jagged = {b.name for b in events.branches if b.count_branch is not None and b.name not in drop}
        arrays = events.arrays(names, library="ak", entry_stop=entries)
    collections = sorted({n.split("_")[0] for n in jagged})
    out = {n: arrays[n] for n in names if n not in jagged and n[1:] not in collections}
    for c in collections:
        out[c] = ak.zip({n[len(c) + 1:]: arrays[n] for n in sorted(jagged) if n.startswith(f"{c}_")})
    dst.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(dst) as g:
        g.mktree(tree, {k: v.type.content for k, v in out.items()})
        if len(arrays):
            g[tree].extend(out)
        for name in extra_trees:
            g.mktree(name, {"x": np.int32})
            g[name].extend({"x": np.arange(3, dtype=np.int32)})
    return dst


@pytest.fixture(scope="module")
def mc(tmp_path_factory) -> Path:
    return generate_file(tmp_path_factory.mktemp("odd") / "mc.root", events=EVENTS, seed=41, is_mc=True)


def run_on(tmp_path: Path, files: list[Path], *, analysis: Path | highrate.Analysis = ZMUMU,
           tree: str = "Events") -> highrate.RunOutcome:
    yaml = tmp_path / "datasets.yaml"
    listed = ", ".join(str(f) for f in files)
    yaml.write_text(f"datasets:\n  mc: {{files: [{listed}], tree: {tree}, metadata: {{is_mc: true}}}}\n")
    loaded = highrate.load_analysis(analysis) if isinstance(analysis, Path) else analysis
    return highrate.run(loaded, highrate.load_datasets(yaml), options=highrate.RunOptions(chunk_size=1500))


def test_an_empty_file_with_extra_trees_adds_nothing(mc, tmp_path):
    empty = [rewrite(mc, tmp_path / f"empty{i}.root", entries=0, extra_trees=("MetaData", "ParameterSets"))
             for i in range(2)]
    with uproot.open(empty[0]) as f:
        assert f["Events"].num_entries == 0 and {"MetaData;1", "ParameterSets;1"} <= set(f.keys())
    outcome = run_on(tmp_path, [empty[0], mc, empty[1]])
    assert_matches_reference(outcome.result, {"mc": combine([analyse(read(str(mc), is_mc=True), is_mc=True)])})


def test_another_tree_name_is_read_when_the_dataset_names_it(mc, tmp_path):
    skim = rewrite(mc, tmp_path / "skim.root", tree="Skim", extra_trees=("Runs",))
    outcome = run_on(tmp_path, [skim], tree="Skim")
    assert_matches_reference(outcome.result, {"mc": combine([analyse(read(str(mc), is_mc=True), is_mc=True)])})
    with pytest.raises(highrate.HighrateError, match=r"has no tree 'Events'; trees in it: \['Skim', 'Runs'\]"):
        run_on(tmp_path, [skim])


def test_an_object_used_only_through_its_count(mc, tmp_path):
    """``objects={"MuonAll": ev.Muon}`` histogrammed as ``nMuonAll`` reads only nMuon, and runs."""
    analysis = highrate.Analysis(
        objects={"MuonAll": lambda ev: ev.Muon},
        histograms=[highrate.Histogram("n", highrate.Axis("nMuonAll", 8, 0, 8))],
    )
    outcome = run_on(tmp_path, [mc], analysis=analysis)
    assert outcome.plans["mc"].branches == ("nMuon",)
    with uproot.open(mc) as f:
        counts = f["Events"]["nMuon"].array(library="np")
    expected = np.bincount(np.minimum(counts, 8), minlength=9)[:8]
    np.testing.assert_array_equal(outcome.result.histograms[("n", "mc", "baseline", "nominal")].values(), expected)


def test_files_lacking_a_branch_are_named_together(mc, tmp_path):
    """Two of three files lack HLT_IsoMu24: one error names both, and the count."""
    lacking = [rewrite(mc, tmp_path / f"no_hlt{i}.root", drop=("HLT_IsoMu24",)) for i in range(2)]
    with pytest.raises(highrate.HighrateError) as info:
        run_on(tmp_path, [mc, *lacking])
    message = str(info.value)
    assert "dataset 'mc': 2 of its 3 files lack branches the analysis reads from tree 'Events'" in message
    assert all(f"'{f}' lacks branch 'HLT_IsoMu24'" in message for f in lacking)
    assert f"'{mc}'" not in message and "--skip-bad-files" in message


def test_a_branch_some_files_lack_takes_the_value_columns_gives(mc, tmp_path):
    """Analysis(columns={"HLT_IsoMu24": False, "Muon_tightId": True}): files lacking them run as if
    every event failed the trigger and every muon passed the ID; the others as they are."""
    lacking = rewrite(mc, tmp_path / "lacking.root", drop=("HLT_IsoMu24", "Muon_tightId"))
    analysis = highrate.Analysis(
        skim=[highrate.Cut("trigger_or_any", lambda ev: ev.HLT.IsoMu24 | (ak.num(ev.Muon) > 0))],
        objects={"MuonTight": lambda ev: ev.Muon[ev.Muon.tightId]},
        histograms=[highrate.Histogram("n", highrate.Axis("nMuonTight", 8, 0, 8))],
        columns={"HLT_IsoMu24": False, "Muon_tightId": True},
    )
    outcome = run_on(tmp_path, [mc, lacking], analysis=analysis)
    with uproot.open(mc) as f:
        events = f["Events"].arrays(["HLT_IsoMu24", "nMuon", "Muon_tightId"], library="ak")
    expected = np.zeros(8)
    as_given = (events.HLT_IsoMu24, events.Muon_tightId)  # the full file
    made = (np.zeros(len(events), bool), ak.ones_like(events.Muon_tightId, dtype=bool))  # the lacking one
    for trigger, tight in (as_given, made):
        keep = ak.to_numpy(trigger | (events.nMuon > 0))
        n = ak.to_numpy(ak.sum(tight, axis=1))[keep]
        expected += np.bincount(np.minimum(n, 8), minlength=9)[:8]
    np.testing.assert_array_equal(outcome.result.histograms[("n", "mc", "baseline", "nominal")].values(), expected)
    assert outcome.result.failed == []

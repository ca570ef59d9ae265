"""The TTree metadata read by hand (``data/io/ttree_meta.py``) against uproot's own reading of
the same files: every branch's type, counter and basket layout, the entries, cluster
boundaries, UUID and generator-weight sum that describing a file gives, and a clean refusal
(uproot describes the file) for what the reader does not know."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import uproot

from highrate.data.io import files, metacache, ttree_meta
from highrate.data.io.reader import read_columns
from highrate.testing import generate_file


def _by_uproot(path: Path, tree: str) -> tuple[files.FileInfo, dict]:
    """What describing the file gave before: uproot's model of the tree."""
    ttree, size = files._parse_tree(str(path), tree, None)
    layouts: dict = {}
    try:
        return files._describe(str(path), tree, ttree, size, layouts), layouts
    finally:
        ttree.file.close()


def _by_hand(path: Path, tree: str) -> files.FileInfo:
    found = files.info_by_hand(str(path), str(path), tree)
    assert found is not None, "the reader refused a file it should read"
    return found


CASES = {
    "zstd": dict(events=5000, compression="zstd", basket_events=700),
    "lzma": dict(events=3000, compression="lzma", basket_events=1000),
    "zlib, one basket": dict(events=800, compression="zlib", basket_events=5000),
    "lz4, wide": dict(events=1500, compression="lz4", basket_events=400, extra_branches=300),
    "data": dict(events=2000, is_mc=False, basket_events=600),
}


@pytest.mark.parametrize("case", CASES)
def test_description_equals_uproots(tmp_path, case):
    path = generate_file(tmp_path / "f.root", seed=4, **CASES[case])
    expected, expected_layouts = _by_uproot(path, "Events")
    got, layouts = _by_hand(path, "Events")
    assert got == expected
    assert len(got.branches) > 20 and (got.gen_sumw is None) == (case == "data")
    assert set(layouts) == set(expected_layouts)
    for name, want in expected_layouts.items():
        have = layouts[name]
        if want is None:
            assert have is None, name
            continue
        assert (have.dtype, have.jagged, have.counter) == (want.dtype, want.jagged, want.counter), name
        for member in ("seeks", "nbytes", "entries"):
            np.testing.assert_array_equal(getattr(have, member), getattr(want, member), err_msg=f"{name} {member}")


def test_a_file_without_runs_sums_its_gen_weights(tmp_path):
    path = generate_file(tmp_path / "f.root", events=2500, seed=9, basket_events=900)
    with uproot.update(path) as f:
        del f["Runs"]
    got, _ = _by_hand(path, "Events")
    expected, _ = _by_uproot(path, "Events")
    assert got == expected and got.gen_sumw_from == "genWeight"
    with uproot.open(path) as f:
        assert got.gen_sumw == pytest.approx(float(np.sum(f["Events"]["genWeight"].array(library="np"))), rel=1e-12)


def test_what_the_reader_does_not_know_goes_to_uproot(tmp_path):
    path = tmp_path / "objects.root"
    with uproot.recreate(path) as f:
        f["Events"] = {"x": np.arange(10, dtype=np.float32)}
        f["hist"] = np.histogram(np.arange(5), bins=3)
    assert ttree_meta.describe_local(str(path), "hist") is None  # not a TTree
    assert ttree_meta.describe_local(str(path), "Other") is None  # no such tree: uproot names it
    assert ttree_meta.describe_local(str(path), "dir/Events") is None
    truncated = tmp_path / "cut.root"
    truncated.write_bytes(path.read_bytes()[:-200])
    assert ttree_meta.describe_local(str(truncated), "Events") is None
    with pytest.raises(files.InputFileError, match="truncated"):
        files.describe(str(truncated), "Events")


def test_a_root_written_file_is_read_or_refused_cleanly(tmp_path):
    """A file written by ROOT itself (a TTree with a counter and a jagged branch), where the ROOT
    wheel is installed: the reader's answer equals uproot's, or it leaves the file to uproot."""
    ROOT = pytest.importorskip("ROOT")
    path = tmp_path / "root.root"
    out = ROOT.TFile.Open(str(path), "RECREATE")
    tree = ROOT.TTree("Events", "Events")
    n = np.zeros(1, dtype=np.int32)
    pt = np.zeros(8, dtype=np.float32)
    w = np.zeros(1, dtype=np.float32)
    tree.Branch("nMuon", n, "nMuon/I")
    tree.Branch("Muon_pt", pt, "Muon_pt[nMuon]/F")
    tree.Branch("genWeight", w, "genWeight/F")
    tree.SetAutoFlush(300)
    rng = np.random.default_rng(1)
    for _ in range(2000):
        n[0] = rng.integers(0, 8)
        pt[: n[0]] = rng.exponential(20, n[0])
        w[0] = rng.normal(1, 0.1)
        tree.Fill()
    out.Write()
    out.Close()
    expected, expected_layouts = _by_uproot(path, "Events")
    found = files.info_by_hand(str(path), str(path), "Events")
    if found is None:
        pytest.skip("the reader leaves this ROOT version's files to uproot")
    got = found[0]
    assert got == expected and got.branches["Muon_pt"].counter == "nMuon"
    for name, want in expected_layouts.items():
        np.testing.assert_array_equal(found[1][name].seeks, want.seeks, err_msg=name)
        np.testing.assert_array_equal(found[1][name].entries, want.entries, err_msg=name)


def test_describe_reads_by_hand_and_the_chunks_need_no_parse(tmp_path, monkeypatch):
    monkeypatch.setenv("HIGHRATE_CACHE", "off")
    monkeypatch.setattr(metacache, "_memory", {})
    path = generate_file(tmp_path / "f.root", events=3000, seed=5, basket_events=700)
    parses: list[str] = []
    real = files._parse_tree
    monkeypatch.setattr(files, "_parse_tree", lambda *a: parses.append(a[0]) or real(*a))
    info = files.describe(str(path), "Events")
    with files.opened(str(path), "Events") as handle:
        got, _ = read_columns(handle, ["Muon_pt", "nMuon", "genWeight"], 0, info.entries, where="test")
    assert parses == []
    with uproot.open(path) as f:
        events = f["Events"]
        np.testing.assert_array_equal(got["genWeight"], events["genWeight"].array(library="np"))
        np.testing.assert_array_equal(got["nMuon"], events["nMuon"].array(library="np"))
        np.testing.assert_array_equal(got["Muon_pt"], np.concatenate(events["Muon_pt"].array(library="np")))
    files.forget(str(path))


def test_a_nanoaod_sized_tree(tmp_path):
    """1,250 branches, as a slim CMSSW NanoAOD: every branch as uproot sees it."""
    path = generate_file(tmp_path / "wide.root", events=500, seed=2, basket_events=250, extra_branches=1200)
    fd = os.open(path, os.O_RDONLY)
    try:
        file_uuid, meta = ttree_meta.read_tree(fd, "Events")
    finally:
        os.close(fd)
    with uproot.open(path) as f:
        assert file_uuid == str(f.file.uuid)
        assert list(meta.branches) == [b.name for b in f["Events"].itervalues(recursive=True)]
    assert len(meta.branches) > 1200 and meta.entries == 500

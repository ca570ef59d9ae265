"""RNTuple input: a TTree file and its RNTuple twin give the same description, arrays and results.

The twins: a TTree written by ``highrate.testing.generate_file`` and its RNTuple written by
uproot (every branch a top-level field, a jagged one a collection with its own offsets, one
RNTuple cluster per TTree cluster, ``Runs`` too), with the ``nX`` counters kept and without
them (then each collection is counted from its offsets, as ``nMuon_pt``). Where ROOT is at hand
(``import ROOT`` works, or HIGHRATE_ROOT_PYTHON names a Python where it does), ROOT's
RNTupleImporter writes a third twin with ROOT's encodings: split, zigzag and delta columns,
projected fields with cardinality counters, several pages per column and page checksums.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from compare import assert_matches_reference
from late_reading import assert_late_reading_matches
from reference_zmumu import analyse, combine, read

import highrate
from highrate.data.io import files, metacache
from highrate.data.io.files import describe, forget, open_tree
from highrate.data.io.reader import read_columns, read_columns_costed, stored_bytes
from highrate.data.partition import split_entries
from highrate.errors import InputFileError, MissingBranchError
from highrate.testing import generate_file
from highrate.testing.nanoaod import compression_of

EVENTS, CLUSTER = 6000, 1000
RANGES = [(0, EVENTS), (0, CLUSTER), (CLUSTER - 3, 2 * CLUSTER + 5), (2 * CLUSTER, 4 * CLUSTER), (4321, 4322),
          (EVENTS - 1, EVENTS)]


def _counters(tree) -> set[str]:
    return {b.count_branch.name for b in tree.values() if getattr(b, "count_branch", None) is not None}


def to_rntuple(src: Path, dst: Path, *, counters: bool = True, compression: str = "zstd") -> Path:
    """The RNTuple twin of a generated TTree file, written by uproot with the same codec."""
    with uproot.open(src) as f:
        tree = f["Events"]
        names = [b.name for b in tree.branches if counters or b.name not in _counters(tree)]
        runs = f["Runs"].arrays(library="np")
        with uproot.recreate(dst, compression=compression_of(compression, None)) as out:
            ntuple = None
            for a, b in pairwise(tree.common_entry_offsets()):
                arrays = tree.arrays(names, entry_start=a, entry_stop=b, how=dict)
                if ntuple is None:
                    ntuple = out.mkrntuple("Events", ak.Array(arrays))
                else:
                    ntuple.extend(arrays)
            out["Runs"] = dict(runs)
    return dst


_ROOT_IMPORT = """
import sys, ROOT
Importer = getattr(ROOT, "RNTupleImporter", None) or ROOT.Experimental.RNTupleImporter
Options = getattr(ROOT, "RNTupleWriteOptions", None) or ROOT.Experimental.RNTupleWriteOptions
importer = Importer.Create(sys.argv[1], "Events", sys.argv[2])
options = Options()
options.SetCompression(505)
options.SetApproxZippedClusterSize(64 * 1024)  # ~600 entries: several clusters
options.SetMaxUnzippedPageSize(4096)  # and several pages per column and cluster
importer.SetWriteOptions(options)
importer.SetIsQuiet(True)
importer.Import()
"""


def _root_python() -> str | None:
    if importlib.util.find_spec("ROOT") is not None:
        return sys.executable
    return os.environ.get("HIGHRATE_ROOT_PYTHON") or None


@pytest.fixture(scope="module")
def twins(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("rntuple")
    found: dict[str, Path] = {}
    for codec in ("zstd", "lzma"):
        tt = found[f"tt-{codec}"] = generate_file(out / f"tt-{codec}.root", events=EVENTS, seed=21,
                                                  compression=codec, basket_events=CLUSTER)
        found[f"rn-{codec}"] = to_rntuple(tt, out / f"rn-{codec}.root", compression=codec)
    found["bare"] = to_rntuple(found["tt-zstd"], out / "bare.root", counters=False)
    return found


@pytest.fixture(scope="module")
def root_twin(twins, tmp_path_factory) -> Path:
    python = _root_python()
    if python is None:
        pytest.skip("ROOT is not importable and HIGHRATE_ROOT_PYTHON is not set")
    target = tmp_path_factory.mktemp("root-rntuple") / "imported.root"
    subprocess.run([python, "-c", _ROOT_IMPORT, str(twins["tt-zstd"]), str(target)], check=True, capture_output=True)
    return target


def _tree_of(twins, name: str) -> Path:
    return twins["tt-lzma" if name.endswith("lzma") else "tt-zstd"]


# ---------------------------------------------------------------------------------------------
# the description


@pytest.mark.parametrize("name", ["rn-zstd", "rn-lzma"])
def test_the_description_is_the_ttree_twins(twins, name):
    tt, rn = describe(str(_tree_of(twins, name)), "Events"), describe(str(twins[name]), "Events")
    assert rn.kind == "rntuple" and tt.kind == "ttree"
    assert (rn.entries, rn.clusters, rn.branches, rn.other_branches) == (tt.entries, tt.clusters, tt.branches, ())
    assert list(rn.branches) == list(tt.branches)  # in the file's order: the events' fields are the TTree's
    assert rn.clusters == tuple(range(0, EVENTS + 1, CLUSTER))
    assert rn.gen_sumw == tt.gen_sumw is not None


def test_without_counters_each_collection_is_counted_from_its_offsets(twins):
    tt, bare = describe(str(twins["tt-zstd"]), "Events"), describe(str(twins["bare"]), "Events")
    assert "nMuon" not in bare.branches
    assert bare.branches["Muon_pt"] == files.BranchInfo("f4", "nMuon_pt")
    assert bare.branches["nMuon_pt"] == files.BranchInfo("i4", None)
    jagged = {n for n, b in tt.branches.items() if b.counter}
    assert {n for n, b in bare.branches.items() if b.counter} == jagged
    assert set(bare.branches) == (set(tt.branches) - {b.counter for b in tt.branches.values()}) | {
        f"n{n}" for n in jagged}


# ---------------------------------------------------------------------------------------------
# the arrays: those of the TTree twin and of uproot's own RNTuple reading


def _uproot_rntuple(path: Path, names: list[str], start: int, stop: int) -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        arrays = f["Events"].arrays(names, entry_start=start, entry_stop=stop)
    return {n: ak.to_numpy(ak.flatten(arrays[n], axis=None)) for n in names}


@pytest.mark.parametrize("name", ["rn-zstd", "rn-lzma", "bare"])
def test_every_branch_equals_the_ttree_twin_and_uproot(twins, name):
    path = str(twins[name])
    names = list(describe(path, "Events").branches)
    in_tree = describe(str(_tree_of(twins, name)), "Events").branches
    computed = {n: f"n{n[1:].split('_')[0]}" for n in names if n not in in_tree}  # nMuon_pt: as nMuon
    tree, ntuple = open_tree(str(_tree_of(twins, name)), "Events"), open_tree(path, "Events")
    try:
        for start, stop in RANGES:
            got, nbytes = read_columns(ntuple, names, start, stop, where="test")
            assert list(got) == names and nbytes > 0
            ref, _ = read_columns(tree, [n for n in in_tree if n in names or n in computed.values()], start, stop,
                                  where="test")
            theirs = _uproot_rntuple(twins[name], [n for n in names if n not in computed], start, stop)
            for n in names:
                expected = ref[computed.get(n, n)]
                assert got[n].dtype.isnative and got[n].dtype == expected.dtype, n
                np.testing.assert_array_equal(got[n], expected, err_msg=f"{n} [{start}, {stop})")
                if n in theirs:
                    np.testing.assert_array_equal(got[n], theirs[n], err_msg=f"{n} [{start}, {stop})")
        assert len(computed) == (sum(1 for b in in_tree.values() if b.counter) if name == "bare" else 0)
    finally:
        forget(path)


def test_an_unknown_branch_is_named(twins):
    handle = open_tree(str(twins["rn-zstd"]), "Events")
    with pytest.raises(MissingBranchError, match=r"'Muon_ptt'.*Did you mean 'Muon_pt'"):
        read_columns(handle, ["Muon_ptt"], 0, 10, where="test")
    forget(str(twins["rn-zstd"]))


def test_branches_the_page_reader_leaves_to_uproot(twins):
    """Columns it does not decode (reduced-precision floats, several representations) are read by
    uproot with the same answer: here the fallback is forced on a collection and a flat field."""
    path = str(twins["rn-zstd"])
    handle = open_tree(path, "Events")
    names = ["nMuon", "Muon_pt", "genWeight", "Jet_pt"]
    try:
        fast, _ = read_columns(handle, names, CLUSTER - 3, 3 * CLUSTER + 1, where="test")
        for name in ("Muon_pt", "genWeight"):
            handle.layouts[name] = replace(handle.layouts[name], values=None)
        slow, _ = read_columns(handle, names, CLUSTER - 3, 3 * CLUSTER + 1, where="test")
        for name in names:
            assert slow[name].dtype == fast[name].dtype
            np.testing.assert_array_equal(slow[name], fast[name], err_msg=name)
    finally:
        forget(path)


# ---------------------------------------------------------------------------------------------
# the whole analysis: identical results


def _run(path: Path, zmumu_path: Path, **options) -> highrate.RunOutcome:
    ds = [highrate.Dataset("DY", "DY", (str(path),), metadata={"is_mc": True})]
    return highrate.run(highrate.load_analysis(zmumu_path), ds, options=highrate.RunOptions(**options))


def assert_same_physics(a: highrate.Result, b: highrate.Result) -> None:
    """Bit-identical histograms, cutflows, category yields and counts, but the bytes read: an
    RNTuple's pages are not a TTree's baskets."""
    assert a.failed == b.failed == []
    assert a.histograms.keys() == b.histograms.keys()
    for k, h in a.histograms.items():
        np.testing.assert_array_equal(h.values(), b.histograms[k].values(), err_msg=str(k))
        np.testing.assert_array_equal(h.variances(), b.histograms[k].variances(), err_msg=str(k))
    assert a.cutflow == b.cutflow and a.categories == b.categories

    def counts(r: highrate.Result) -> dict:
        return {ds: {k: v for k, v in c.items() if k != "bytes_read"} for ds, c in r.counts.items()}

    assert counts(a) == counts(b)


@pytest.fixture(scope="module")
def truth(twins) -> dict[str, dict]:
    """The independent numpy reference, from the TTree twins (the RNTuples hold the same events)."""
    return {codec: {"DY": analyse(read(str(twins[f"tt-{codec}"]), is_mc=True), is_mc=True)} for codec in ("zstd", "lzma")}


@pytest.mark.parametrize(("name", "chunk_size"), [("rn-zstd", CLUSTER), ("rn-lzma", 2600), ("bare", 450)])
def test_the_analysis_gives_identical_results_on_both_twins(twins, truth, zmumu_path, name, chunk_size):
    """2600 snaps every chunk to a cluster boundary; 450 cuts clusters (offsets then decoded)."""
    codec = "lzma" if name == "rn-lzma" else "zstd"
    on_tree = _run(_tree_of(twins, name), zmumu_path, chunk_size=chunk_size)
    on_ntuple = _run(twins[name], zmumu_path, chunk_size=chunk_size)
    assert on_ntuple.plans["DY"].late  # the late path: most branches decoded after the skim
    assert_same_physics(on_ntuple.result, on_tree.result)
    assert_matches_reference(on_ntuple.result, truth[codec])


def test_the_analysis_on_worker_processes(twins, truth, zmumu_path):
    outcome = _run(twins["rn-zstd"], zmumu_path, chunk_size=CLUSTER, executor="processes", workers=2)
    assert_matches_reference(outcome.result, truth["zstd"])


def test_collections_of_records_read_as_branches(twins, truth, zmumu_path, tmp_path):
    """CMSSW's layout: ``Muon`` a collection of records {pt, eta, ...}, ``PV`` a record
    {npvsGood}; counted from the collection's offsets, the branches are the TTree's."""
    path = tmp_path / "records.root"
    with uproot.open(twins["tt-zstd"]) as f:
        tree = f["Events"]
        counters = _counters(tree)
        with uproot.recreate(path, compression=compression_of("zstd", None)) as out:
            ntuple = None
            for a, b in pairwise(tree.common_entry_offsets()):
                arrays = tree.arrays([b.name for b in tree.branches if b.name not in counters], entry_start=a, entry_stop=b,
                                     how=dict)
                groups: dict[str, dict] = {}
                for n, values in arrays.items():
                    prefix, _, rest = n.partition("_")
                    groups.setdefault(prefix if rest else n, {})[rest or ""] = values
                fields = {k: (v[""] if list(v) == [""] else ak.zip(v)) for k, v in groups.items()}
                if ntuple is None:
                    ntuple = out.mkrntuple("Events", ak.Array(fields))
                else:
                    ntuple.extend(fields)
    tt, rec = describe(str(twins["tt-zstd"]), "Events"), describe(str(path), "Events")
    assert rec.branches == tt.branches and rec.clusters == tt.clusters
    assert_matches_reference(_run(path, zmumu_path, chunk_size=CLUSTER).result, truth["zstd"])


# ---------------------------------------------------------------------------------------------
# what is read, and when


def _column_pages(ntuple, fid: int) -> set[tuple[int, int]]:
    """(offset, bytes) of every page of the columns uproot lists for field ``fid``."""
    ids = [c.idx for c in ntuple.column_records if c.field_id == fid]
    return {(int(p.locator.offset), int(p.locator.num_bytes)) for links in ntuple.page_link_list for cid in ids
            for p in links[cid].pages}


def _expected_pages(path: Path, branches: tuple[str, ...], counted_by_offsets: bool) -> set[tuple[int, int]]:
    """The pages a run must read: every needed field's values; a collection's offsets only where
    its counter is computed from them."""
    with uproot.open(path) as f:
        ntuple = f["Events"]
        records = ntuple.field_records
        top = {r.field_name: i for i, r in enumerate(records) if r.parent_field_id == i}
        kids = {r.parent_field_id: i for i, r in enumerate(records) if r.parent_field_id != i}
        pages: set[tuple[int, int]] = set()
        for name in branches:
            if name in top and top[name] in kids:  # a collection: its item's column
                pages |= _column_pages(ntuple, kids[top[name]])
                if counted_by_offsets:
                    pages |= _column_pages(ntuple, top[name])
            elif name in top:
                pages |= _column_pages(ntuple, top[name])
            else:  # the counter nMuon_pt of a file without nMuon: Muon_pt's offsets
                pages |= _column_pages(ntuple, top[name[1:]])
        return pages


@pytest.mark.parametrize("name", ["rn-zstd", "bare"])
def test_only_the_needed_pages_are_read_each_once(twins, zmumu_path, name, monkeypatch):
    """Chunks on cluster boundaries: every page of a needed column is read by one chunk, once,
    and nothing else is (the late branches' pages included)."""
    info = describe(str(twins[name]), "Events")
    with uproot.open(twins[name]) as f:
        summaries = f["Events"].cluster_summaries
        assert info.clusters == (*(c.num_first_entry for c in summaries), EVENTS)
    assert {b for r in split_entries(info.entries, info.clusters, 2600) for b in r} <= set(info.clusters)
    reads: list[tuple[int, int]] = []
    real = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, at: reads.append((at, n)) or real(fd, n, at))
    outcome = _run(twins[name], zmumu_path, chunk_size=2600)
    expected = _expected_pages(twins[name], outcome.plans["DY"].branches, counted_by_offsets=name == "bare")
    read_pages = {p for p in expected for at, n in reads if at <= p[0] and p[0] + p[1] <= at + n}
    assert read_pages == expected
    assert sum(n for _, n in reads) == sum(n for _, n in expected)  # no page twice, nothing else
    assert outcome.result.counts["DY"]["bytes_read"] == sum(n for _, n in expected)
    size = twins[name].stat().st_size
    assert sum(n for _, n in expected) < 0.5 * size


def test_what_reading_branches_would_cost(twins):
    """``stored_bytes``: the pages of the columns behind the branches, a shared column once."""
    with uproot.open(twins["rn-zstd"]) as f:
        ntuple = f["Events"]
        ids = {r.field_name: i for i, r in enumerate(ntuple.field_records)}
        muon_pt = ids["Muon_pt"]
        pages = _column_pages(ntuple, ids["nMuon"]) | _column_pages(ntuple, muon_pt) | _column_pages(ntuple, muon_pt + 1)
    handle = open_tree(str(twins["rn-zstd"]), "Events")
    assert stored_bytes(handle, ["nMuon", "Muon_pt", "nMuon"]) == sum(n for _, n in pages)
    forget(str(twins["rn-zstd"]))


def test_late_fields_equal_a_full_read(twins):
    path = str(twins["rn-zstd"])
    handle = open_tree(path, "Events")
    try:
        assert_late_reading_matches(handle, [(0, EVENTS), (CLUSTER - 7, 3 * CLUSTER + 11), (4500, 4501)])
        # read from a duplicate descriptor: right even once the open file is closed
        full, _ = read_columns(handle, ["nJet", "Jet_pt"], 0, EVENTS, where="test")
        _, _, _, deferred = read_columns_costed(handle, ["nJet", "Jet_pt"], 0, EVENTS, where="test", defer=["Jet_pt"])
        forget(path)
        keep = np.arange(0, len(full["Jet_pt"]), 3)
        np.testing.assert_array_equal(deferred.take("Jet_pt", keep), full["Jet_pt"][keep])
    finally:
        forget(path)


def _corrupt_page(src: Path, dst: Path, field: str, cluster: int) -> tuple[int, int]:
    """Zero 300 bytes inside the first page of ``field``'s values in ``cluster``; its entries."""
    shutil.copy(src, dst)
    with uproot.open(src) as f:
        ntuple = f["Events"]
        records = ntuple.field_records
        fid = next(i for i, r in enumerate(records) if r.field_name == field and r.parent_field_id == i)
        item = next(i for i, r in enumerate(records) if r.parent_field_id == fid and i != fid)
        column = next(c.idx for c in ntuple.column_records if c.field_id == item)
        page = ntuple.page_link_list[cluster][column].pages[0]
        summary = ntuple.cluster_summaries[cluster]
    with open(dst, "r+b") as out:
        out.seek(page.locator.offset + 9 + 16)
        out.write(bytes(min(300, page.locator.num_bytes - 9 - 16)))
    return int(summary.num_first_entry), int(summary.num_first_entry + summary.num_entries)


def test_a_corrupt_page_names_the_branch_and_entries(twins, truth, zmumu_path, tmp_path):
    path = tmp_path / "corrupt.root"
    a, b = _corrupt_page(twins["rn-zstd"], path, "Jet_pt", cluster=2)
    handle = open_tree(str(path), "Events")
    try:
        with pytest.raises(InputFileError, match=rf"file X \[{a}, {b}\): reading branch 'Jet_pt' failed.*page"):
            read_columns(handle, ["nJet", "Jet_pt"], a, b, where=f"file X [{a}, {b})")
        outcome = _run(path, zmumu_path, chunk_size=CLUSTER, skip_bad_files=True, retries=1)
        assert "Jet_pt" in outcome.plans["DY"].late
        [failed] = outcome.result.failed
        assert (failed["entry_start"], failed["entry_stop"]) == (a, b)
        assert "'Jet_pt'" in failed["error"] and "corrupt.root" in failed["error"], failed["error"]
        outcome.result.failed = []
        tree = str(twins["tt-zstd"])
        rest = {"DY": combine([analyse(read(tree, 0, a, is_mc=True), is_mc=True),
                               analyse(read(tree, b, None, is_mc=True), is_mc=True)])}
        assert_matches_reference(outcome.result, rest)
    finally:
        forget(str(path))


# ---------------------------------------------------------------------------------------------
# remembered metadata, remote files


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    monkeypatch.delenv("HIGHRATE_CACHE", raising=False)
    monkeypatch.setattr(metacache, "_memory", {})  # as in a new process
    return folder / "highrate" / "tree-meta"


def test_a_described_rntuple_is_read_without_parsing(cache, twins, tmp_path, monkeypatch):
    path = tmp_path / "twin.root"
    shutil.copy(twins["rn-zstd"], path)
    first = describe(str(path), "Events")
    assert len(list(cache.glob("*.json"))) == 1
    forget(str(path))
    monkeypatch.setattr(metacache, "_memory", {})
    parses: list[str] = []
    real = files._parse_tree
    monkeypatch.setattr(files, "_parse_tree", lambda url, tree, access: parses.append(url) or real(url, tree, access))
    assert describe(str(path), "Events") == first
    handle = open_tree(str(path), "Events")
    try:
        assert handle.kind == "rntuple" and handle.uuid == first.uuid and handle.size == path.stat().st_size
        names = ["nMuon", "Muon_pt", "HLT_IsoMu24", "genWeight"]
        for start, stop in [(0, EVENTS), (CLUSTER - 3, 2 * CLUSTER + 1)]:
            got, _ = read_columns(handle, names, start, stop, where="test")
            for n, values in _uproot_rntuple(path, names, start, stop).items():
                np.testing.assert_array_equal(got[n], values, err_msg=n)
        assert parses == []  # answered and read from what was remembered
    finally:
        forget(str(path))


@pytest.mark.parametrize("scheme", ["root", "https"])
def test_a_remote_rntuple_equals_the_local_one(scheme, twins, zmumu_path, xrootd_server, https_server):
    local = _run(twins["rn-zstd"], zmumu_path, chunk_size=CLUSTER).result
    if scheme == "root":
        copy = xrootd_server.export_dir / "rntuple" / "twin.root"
        url, access = xrootd_server.url(copy), highrate.data.io.sources.AccessOptions()
    else:
        copy = https_server.root_dir / "rntuple" / "twin.root"
        url = https_server.url(copy)
        access = highrate.data.io.sources.AccessOptions(ca_file=str(https_server.ca_file))
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(twins["rn-zstd"], copy)
    ds = [highrate.Dataset("DY", "DY", (url,), metadata={"is_mc": True}, access=access)]
    remote = highrate.run(highrate.load_analysis(zmumu_path), ds, options=highrate.RunOptions(chunk_size=CLUSTER)).result
    assert_same_physics(remote, local)
    assert remote.counts["DY"]["bytes_read"] == local.counts["DY"]["bytes_read"]
    (stats,) = remote.sources.values()
    chunks, needed = local.counts["DY"]["chunks"], local.counts["DY"]["bytes_read"]
    assert stats["chunks"] == chunks
    assert chunks <= stats["requests"] <= 2 * chunks  # chunks on clusters: one batch each
    assert needed <= stats["bytes"] < 1.5 * needed


# ---------------------------------------------------------------------------------------------
# ROOT's own RNTuple (split, zigzag and delta encodings, projections, checksums)


def test_the_root_twin_reads_as_the_ttree(twins, truth, zmumu_path, root_twin):
    tt, rn = describe(str(twins["tt-zstd"]), "Events"), describe(str(root_twin), "Events")
    assert {n: b.counter for n, b in rn.branches.items()} == {n: b.counter for n, b in tt.branches.items()}
    assert len(rn.clusters) > 5 and rn.clusters[-1] == EVENTS
    names = list(tt.branches)
    tree, ntuple = open_tree(str(twins["tt-zstd"]), "Events"), open_tree(str(root_twin), "Events")
    try:
        for start, stop in RANGES:
            got, _ = read_columns(ntuple, names, start, stop, where="test")
            ref, _ = read_columns(tree, names, start, stop, where="test")
            for n in names:
                np.testing.assert_array_equal(got[n], ref[n], err_msg=f"{n} [{start}, {stop})")
    finally:
        forget(str(root_twin))
    on_tree = _run(twins["tt-zstd"], zmumu_path, chunk_size=1500)
    on_ntuple = _run(root_twin, zmumu_path, chunk_size=1500)
    assert_same_physics(on_ntuple.result, on_tree.result)
    assert_matches_reference(on_ntuple.result, truth["zstd"])


def test_a_corrupt_page_of_the_root_twin_fails_its_checksum(root_twin, tmp_path):
    path = tmp_path / "corrupt.root"
    shutil.copy(root_twin, path)
    with uproot.open(root_twin) as f:
        ntuple = f["Events"]
        fid = next(i for i, r in enumerate(ntuple.field_records) if r.field_name == "_collection2")
        column = next(c.idx for c in ntuple.column_records if c.field_id == fid)  # Muon's offsets
        page = ntuple.page_link_list[1][column].pages[0]
        entries = ntuple.cluster_summaries[1]
    with open(path, "r+b") as out:
        out.seek(page.locator.offset + page.locator.num_bytes - 1)
        out.write(b"\xff")
    a, b = int(entries.num_first_entry), int(entries.num_first_entry + entries.num_entries)
    handle = open_tree(str(path), "Events")
    try:
        with pytest.raises(InputFileError, match=r"reading branch 'nMuon' failed.*page.*checksum does not match"):
            read_columns(handle, ["nMuon", "Muon_pt"], a, b, where="test")  # nMuon: from the offsets
    finally:
        forget(str(path))

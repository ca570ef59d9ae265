"""Branches the skim does not read are decoded after it, for the skimmed events only.

Tracing finds the branches the skim reads; the others are fetched with the chunk but decoded
once the skim's mask is known. Results must be exactly those of a full read, a corrupt late
basket must fail its chunk alone, and a skim that reads more than tracing saw must still get
its branches.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import uproot
from compare import assert_matches_reference, assert_same_result
from late_reading import assert_late_reading_matches
from reference_zmumu import analyse, combine, read

import highrate
from highrate.data.io.files import describe, forget, open_tree
from highrate.data.io.reader import read_columns, read_columns_costed
from highrate.data.io.sources import AccessOptions
from highrate.data.partition import WorkItem
from highrate.engine.events import EventSchema
from highrate.engine.result import accumulate
from highrate.engine.stages.recording import Dependencies
from highrate.engine.tracing import trace
from highrate.execution.tasks import AnalysisPayload, DatasetPlan, Task
from highrate.execution.worker import process_chunk
from highrate.testing import generate_file

SKIM = {"PV_npvsGood", "Flag_goodVertices", "HLT_IsoMu24", "nMuon", "Muon_pt"}
BASKET = 1000


@pytest.fixture(scope="module")
def nanoaod(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("late")
    return {codec: generate_file(out / f"{codec}.root", events=6000, seed=11, compression=codec,
                                 basket_events=BASKET) for codec in ("zstd", "lzma")}


def test_tracing_finds_what_the_skim_reads(zmumu_path, nanoaod):
    analysis = highrate.load_analysis(zmumu_path)
    schema = EventSchema.from_branches(describe(str(nanoaod["zstd"]), "Events").branches)
    branches, deps = trace(analysis, schema, {"is_mc": True})
    assert deps.skim == SKIM
    plan = DatasetPlan.of("DY", {}, schema.subset(branches), branches, deps,
                                          AccessOptions(), skim=True)
    # counters stay early: the skim filter needs every collection's counts
    assert set(plan.late) == set(branches) - SKIM - {"nJet"}
    assert set(plan.skim_schema.branches) == SKIM | {"nJet"}
    without_skim = replace(analysis, skim=())
    assert trace(without_skim, schema, {"is_mc": True})[1].skim is None
    # branches listed for code the tracer cannot see are read before the skim, which may use them
    listed = replace(analysis, columns=("Jet_eta",))
    assert trace(listed, schema, {"is_mc": True})[1].skim == SKIM | {"Jet_eta", "nJet"}


@pytest.mark.parametrize("codec", ["zstd", "lzma"])
def test_deferred_branches_equal_a_full_read(nanoaod, codec):
    path = str(nanoaod[codec])
    handle = open_tree(path, "Events")
    try:
        assert_late_reading_matches(handle, [(0, 6000), (BASKET - 7, 3 * BASKET + 11), (4500, 4501)])
    finally:
        forget(path)


def test_late_baskets_of_a_local_file_are_read_when_decoded(nanoaod):
    """From a duplicate descriptor: the values are right even once the open file is closed."""
    path = str(nanoaod["zstd"])
    handle = open_tree(path, "Events")
    full, _ = read_columns(handle, ["nJet", "Jet_pt"], 0, 6000, where="test")
    _, _, _, deferred = read_columns_costed(handle, ["nJet", "Jet_pt"], 0, 6000, where="test", defer=["Jet_pt"])
    forget(path)  # closes the tree's own descriptor
    keep = np.arange(0, len(full["Jet_pt"]), 3)
    np.testing.assert_array_equal(deferred.take("Jet_pt", keep), full["Jet_pt"][keep])
    unused = read_columns_costed(open_tree(path, "Events"), ["nJet", "Jet_pt"], 0, 6000, where="test",
                                 defer=["Jet_pt"])[3]
    unused.close()  # a chunk that fails before its skim lets the descriptor go
    assert not unused._close.alive
    forget(path)


def _corrupt(src: Path, dst: Path, branch: str, basket: int) -> tuple[int, int]:
    """Zero 300 bytes inside basket ``basket`` of ``branch``; its entry range."""
    shutil.copy(src, dst)
    with uproot.open(src) as f:
        b = f["Events"][branch]
        seek, size = int(b.member("fBasketSeek")[basket]), int(b.member("fBasketBytes")[basket])
        edges = np.asarray(b.member("fBasketEntry"))
    with open(dst, "r+b") as out:
        out.seek(seek)
        keylen = int.from_bytes(out.read(18)[14:16], "big")
        lo = seek + keylen + 9 + 16
        out.seek(lo)
        out.write(bytes(min(300, seek + size - 8 - lo)))
    return int(edges[basket]), int(edges[basket + 1])


def test_a_corrupt_late_basket_fails_its_chunk_alone(zmumu_path, nanoaod, tmp_path):
    analysis = highrate.load_analysis(zmumu_path)
    original = nanoaod["zstd"]
    path = tmp_path / "corrupt.root"
    a, b = _corrupt(original, path, "Jet_pt", basket=2)
    ds = [highrate.Dataset("DY", "DY", (str(path),), metadata={"is_mc": True})]
    options = highrate.RunOptions(chunk_size=BASKET, skip_bad_files=True, retries=1)
    try:
        outcome = highrate.run(analysis, ds, options=options)
        assert "Jet_pt" in outcome.plans["DY"].late
        [failed] = outcome.result.failed
        assert (failed["entry_start"], failed["entry_stop"]) == (a, b)
        assert "'Jet_pt'" in failed["error"] and "corrupt.root" in failed["error"], failed["error"]
        outcome.result.failed = []  # the rest is exactly the other chunks
        truth = {"DY": combine([analyse(read(str(original), 0, a, is_mc=True), is_mc=True),
                                analyse(read(str(original), b, None, is_mc=True), is_mc=True)])}
        assert_matches_reference(outcome.result, truth)
    finally:
        forget(str(path))


def test_a_skim_reading_more_than_traced_still_gets_its_branches(zmumu_path, nanoaod, monkeypatch):
    """If tracing missed a branch the skim reads, the chunk is read in full instead."""
    analysis = highrate.load_analysis(zmumu_path)
    ds = [highrate.Dataset("DY", "DY", (str(nanoaod["zstd"]),), metadata={"is_mc": True})]
    outcome = highrate.run(analysis, ds, options=highrate.RunOptions(chunk_size=2000))
    plan = outcome.plans["DY"]
    assert plan.late
    blind = Dependencies(plan.deps.objects, plan.deps.variations, skim=frozenset(SKIM - {"HLT_IsoMu24"}))
    wrong = DatasetPlan.of(plan.dataset, plan.meta, plan.schema, plan.branches, blind,
                                           plan.access, skim=True)
    assert "HLT_IsoMu24" in wrong.late
    info = describe(str(nanoaod["zstd"]), "Events")
    payload = AnalysisPayload.of(analysis)
    items = [WorkItem("DY", info.url, "Events", s, min(s + 2000, info.entries))
             for s in range(0, info.entries, 2000)]
    right = [process_chunk(Task(item, plan, payload)) for item in items]
    full_reads: list[bool] = []
    real = highrate.execution.worker._run
    monkeypatch.setattr(highrate.execution.worker, "_run",
                        lambda *a, late, **kw: full_reads.append(not late) or real(*a, late=late, **kw))
    fallen_back = [process_chunk(Task(item, wrong, payload)) for item in items]
    assert full_reads.count(True) == len(items)  # each chunk: the skim failed on the early branches
    assert all(not r.failed for r in fallen_back)
    assert_same_result(accumulate(fallen_back), accumulate(right))
    assert_same_result(accumulate(right), outcome.result)
    # the same when the skim reads the field by item rather than by attribute
    by_item = replace(analysis, skim=tuple(
        highrate.Cut(c.name, lambda ev: ev["HLT"]["IsoMu24"]) if c.name == "HLT_IsoMu24" else c for c in analysis.skim
    ))
    full_reads.clear()
    items_result = [process_chunk(Task(item, wrong, AnalysisPayload.of(by_item))) for item in items]
    assert full_reads.count(True) == len(items) and all(not r.failed for r in items_result)
    assert accumulate(items_result).cutflow == accumulate(right).cutflow

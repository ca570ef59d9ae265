"""The caches of columns, stage results and chunk results: a cached run gives exactly what a run
without the cache gives, and an edit recomputes its stage and what follows, nothing before.

Every run here is real (real ROOT files written by the generator, the sequential executor in
this process so that the stages' counts are visible); each cached result is compared with a run
with the cache off, and the cutflow with plain numpy over the same files.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

import highrate
from highrate.base.packing import pack, unpack
from highrate.base.store import Corrupt, CorruptEntry, Store, parse_size
from highrate.execution import caching
from highrate.spec.fingerprint import definition_key
from highrate.testing import generate_dataset_set

HELPERS = '''
def good_muon(mu):
    return (mu.pt > {muon_pt}) & (abs(mu.eta) < 2.4)
'''

ANALYSIS = '''
from pathlib import Path

import awkward as ak

import helpers
from highrate import Analysis, Axis, Cut, Histogram, Weight
from highrate.corrections import pileup_weight
from highrate.kinematics import leading_pair_mass

PILEUP = Path(__file__).parent / "pileup.json"
SKIM_PT = {skim_pt}

analysis = Analysis(
    name="cached",
    skim=[Cut("muon_pt", lambda ev: ak.any(ev.Muon.pt > SKIM_PT, axis=1))],
    objects={{
        "MuonGood": lambda ev: ev.Muon[helpers.good_muon(ev.Muon)],
        "JetGood": lambda ev: ev.Jet[ev.Jet.pt > {jet_pt}],
    }},
    preselection=[Cut("two_muons", lambda ev, p: ak.num(ev.MuonGood) >= p["n"], params={{"n": {n_muons}}})],
    quantities={{"mll": lambda ev: leading_pair_mass(ev.MuonGood)}},
    categories={{"baseline": [], "with_jet": [Cut("jet", lambda ev: ak.num(ev.JetGood) >= 1)]}},
    weights=[Weight("pileup", lambda ev, p, meta: pileup_weight(ev, PILEUP, "nominal")),
             Weight("norm", lambda ev, p, meta: meta["xsec"] / 1000.0)],
    histograms=[
        Histogram("mll", Axis("mll", {mll_bins}, 60, 120)),
        Histogram("lead_pt", Axis("MuonGood.pt[0]", 20, 0, 200)),
        {extra}
    ],
)
'''

BASE = {"muon_pt": 20, "skim_pt": 18, "jet_pt": 30, "n_muons": 2, "mll_bins": 30, "extra": ""}
STAGES = ("skim", "objects", "preselection", "quantities", "weights", "categories", "fill")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with two MC files, their datasets file and a pileup correction."""
    folder = tmp_path_factory.mktemp("cache_inputs")
    generate_dataset_set(folder, events=6000, files=2, seed=11, compression="zstd", basket_events=1000)
    return folder


@pytest.fixture
def work(tmp_path: Path, inputs: Path) -> Path:
    """The analysis (with its helper module and correction file) and a private copy of the data."""
    shutil.copytree(inputs, tmp_path / "data")
    shutil.copy(tmp_path / "data" / "corrections" / "pileup.json", tmp_path / "pileup.json")
    write_analysis(tmp_path, **BASE)
    return tmp_path


def write_analysis(folder: Path, **values: object) -> None:
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)  # an edit within the second of the last
    (folder / "helpers.py").write_text(HELPERS.format(**values))
    (folder / "analysis.py").write_text(ANALYSIS.format(**values))


def datasets(folder: Path) -> list[highrate.Dataset]:
    found = highrate.load_datasets(folder / "data" / "datasets.yaml")
    return [d for d in found if d.metadata.get("is_mc")]


def run(folder: Path, *, cache: bool = True, **options: object) -> highrate.RunOutcome:
    analysis = highrate.load_analysis(folder / "analysis.py")
    opts = highrate.RunOptions(chunk_size=1500, cache=cache, cache_dir=str(folder / "cache"), **options)
    return highrate.run(analysis, datasets(folder), options=opts)


def misses(outcome: highrate.RunOutcome) -> dict[str, int]:
    return {stage: outcome.result.cache.get(stage, {}).get("misses", 0) for stage in (*STAGES, "columns", "results")}


def assert_same(a: highrate.RunOutcome, b: highrate.RunOutcome) -> None:
    """Bit-identical histograms, cutflows and category sums."""
    assert a.result.histograms.keys() == b.result.histograms.keys()
    for key, h in a.result.histograms.items():
        other = b.result.histograms[key]
        assert np.array_equal(h.values(flow=True), other.values(flow=True)), key
        assert np.array_equal(h.variances(flow=True), other.variances(flow=True)), key
    assert a.result.cutflow == b.result.cutflow
    assert a.result.categories == b.result.categories


def check_against_clean_run(folder: Path) -> highrate.RunOutcome:
    cached = run(folder)
    assert_same(cached, run(folder, cache=False))
    return cached


def test_cached_runs_equal_clean_runs_and_numpy(work: Path) -> None:
    first = check_against_clean_run(work)
    chunks = first.chunks
    assert misses(first)["skim"] == chunks and misses(first)["columns"] > 0
    again = check_against_clean_run(work)
    # unchanged analysis and inputs: every chunk's result straight from the cache, nothing read
    assert again.chunk_counts["cached"] == chunks and again.result.cache["results"]["hits"] == chunks
    assert set(again.result.cache) == {"results"}  # no stage looked up, no column read
    # the cutflow, independently: numpy over the files
    muons = [uproot.open(f)["Events"].arrays(["Muon_pt"]) for d in datasets(work) for f in d.files]
    pt = ak.concatenate([m.Muon_pt for m in muons])
    dataset = datasets(work)[0].name
    assert again.result.cutflow[dataset]["skim"] == int(np.sum(ak.any(pt > 18, axis=1)))


@pytest.mark.parametrize(
    ("edit", "recomputed", "kept"),
    [
        # re-binning a histogram refills it: every stage's result comes from the cache
        ({"mll_bins": 45}, (), STAGES),
        # a histogram added on an existing quantity: its fill values only
        ({"extra": 'Histogram("lead_eta", Axis("MuonGood.eta[0]", 10, -2.5, 2.5)),'}, ("fill",),
         ("skim", "objects", "preselection", "weights")),
        # a cut's parameter: the preselection onwards
        ({"n_muons": 1}, ("preselection", "quantities", "weights", "categories", "fill"), ("skim", "objects")),
        # a lambda's body (JetGood): that object and what follows it; the objects before it are kept
        ({"jet_pt": 40}, ("objects", "preselection", "fill"), ("skim",)),
        # a helper in another module that an object calls
        ({"muon_pt": 25}, ("objects", "preselection", "fill"), ("skim",)),
        # a global the skim reads: everything after the columns
        ({"skim_pt": 22}, ("skim", "objects", "preselection", "fill"), ()),
    ],
    ids=["rebin", "new-histogram", "parameter", "lambda-body", "helper-module", "skim-global"],
)
def test_an_edit_recomputes_its_stage_and_what_follows(work: Path, edit: dict, recomputed: tuple,
                                                       kept: tuple) -> None:
    check_against_clean_run(work)
    write_analysis(work, **{**BASE, **edit})
    outcome = check_against_clean_run(work)
    found = misses(outcome)
    for stage in recomputed:
        assert found[stage] > 0, (stage, found)
    for stage in kept:
        assert found[stage] == 0, (stage, found)
    assert found["columns"] == 0  # no branch decoded again
    if edit == {"jet_pt": 40}:  # MuonGood (before JetGood) came from the cache: one object per chunk
        assert found["objects"] == outcome.chunks


def test_a_changed_correction_file_recomputes_the_weights_only(work: Path) -> None:
    check_against_clean_run(work)
    correction = json.loads((work / "pileup.json").read_text())
    nominal = correction["corrections"][0]["data"]["content"][0]["value"]
    nominal["content"] = [v * 1.5 for v in nominal["content"]]
    (work / "pileup.json").write_text(json.dumps(correction))
    outcome = check_against_clean_run(work)
    found = misses(outcome)
    assert found["weights"] == outcome.chunks and found["results"] == outcome.chunks
    assert found["skim"] == found["objects"] == found["preselection"] == found["fill"] == 0


def test_changed_metadata_recomputes_the_stages_that_read_it(work: Path) -> None:
    check_against_clean_run(work)
    path = work / "data" / "datasets.yaml"
    path.write_text(path.read_text().replace("xsec: ", "note: edited, xsec: ", 1))  # a key no stage reads
    assert check_against_clean_run(work).chunk_counts["cached"] == 4
    path.write_text(path.read_text().replace("xsec: ", "xsec: 2", 1))  # the normalisation's
    outcome = check_against_clean_run(work)
    found = misses(outcome)
    assert found["weights"] == outcome.chunks
    assert found["skim"] == found["objects"] == found["preselection"] == found["fill"] == found["columns"] == 0


def test_a_file_replaced_under_its_name_recomputes_its_chunks_only(work: Path, tmp_path_factory) -> None:
    first = check_against_clean_run(work)
    other = tmp_path_factory.mktemp("other_inputs")
    generate_dataset_set(other, events=6000, files=2, seed=99, compression="zstd", basket_events=1000)
    dataset = datasets(work)[0]
    replaced = Path(dataset.files[0])
    shutil.copy(next((other / replaced.parent.name).glob("*.root")), replaced)
    outcome = check_against_clean_run(work)
    per_file = first.chunks // len(dataset.files)
    assert outcome.chunk_counts["cached"] == first.chunks - per_file  # the other file's chunks
    assert misses(outcome)["skim"] == per_file


def test_a_highrate_version_bump_recomputes_everything(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = check_against_clean_run(work)
    monkeypatch.setattr(caching, "VERSIONS", caching.VERSIONS + " (next)")
    outcome = check_against_clean_run(work)
    found = misses(outcome)
    assert found["skim"] == first.chunks and found["columns"] == misses(first)["columns"]


def test_a_corrupt_entry_is_reported_recomputed_and_replaced(work: Path) -> None:
    check_against_clean_run(work)
    write_analysis(work, **{**BASE, "mll_bins": 45})  # no whole-result hits: the stages are looked up
    store = Store(work / "cache")
    entries = sorted((work / "cache" / "stages").glob("*/*.entry"))
    for path in entries:  # flip a byte of every stage result's arrays
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
    with pytest.warns(CorruptEntry):
        outcome = check_against_clean_run(work)
    assert sum(misses(outcome)[s] for s in STAGES) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptEntry)  # replaced by good entries: no warning now
        write_analysis(work, **{**BASE, "mll_bins": 46})
        again = check_against_clean_run(work)
    assert sum(misses(again)[s] for s in STAGES) == 0
    assert store.info()["entries"] > 0


def _run_in_process(folder: str) -> dict:
    outcome = run(Path(folder))
    return {str(k): v.values(flow=True).tolist() for k, v in outcome.result.histograms.items()}


def test_two_runs_writing_the_same_entries_at_once(work: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        a, b = pool.map(_run_in_process, [str(work), str(work)])
    assert a == b
    clean = run(work, cache=False)
    assert a == {str(k): v.values(flow=True).tolist() for k, v in clean.result.histograms.items()}
    for path in (work / "cache").glob("*/*/*.entry"):  # every entry whole and verified
        kind, key = path.parent.parent.name, path.stem
        entry = Store(work / "cache").get(kind, key)
        assert entry is not None
        entry.arrays()


def test_cache_off_by_environment(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIGHRATE_CACHE", "off")
    analysis = highrate.load_analysis(work / "analysis.py")
    outcome = highrate.run(analysis, datasets(work),
                           options=highrate.RunOptions(chunk_size=1500, cache_dir=str(work / "cache")))
    assert outcome.result.cache == {}
    assert not (work / "cache").exists()


# --- the store -------------------------------------------------------------------------------


def test_store_round_trip_and_checksums(tmp_path: Path) -> None:
    store = Store(tmp_path)
    arrays = [np.arange(1000, dtype=np.float32), np.array([True, False, True]), np.zeros((0,), np.int64),
              np.array([(1,), (2,)], dtype=[("charge", "<i4")]), np.arange(4, dtype=">f8")]
    written = store.put("k", "abc123", {"note": "x"}, arrays)
    entry = store.get("k", "abc123")
    assert entry is not None and entry.header == {"note": "x"} and entry.nbytes == written
    for a, b in zip(arrays, entry.arrays(), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    path = next(tmp_path.glob("k/*/*.entry"))
    data = bytearray(path.read_bytes())
    data[len(data) - 4160 + 100] ^= 1  # inside the first array (the arrays end 4160 bytes after it starts)
    path.write_bytes(bytes(data))
    entry = store.get("k", "abc123")
    with pytest.warns(CorruptEntry), pytest.raises(Corrupt):
        entry.arrays()
    assert not path.exists()
    store.put("k", "abc123", {}, arrays)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.warns(CorruptEntry):
        assert store.get("k", "abc123") is None


def test_store_evicts_least_recently_used(tmp_path: Path) -> None:
    store = Store(tmp_path, max_bytes=10**9)
    for i in range(5):
        store.put("k", f"key{i}", {}, [np.zeros(10_000, np.uint8)])
        os.utime(store._path("k", f"key{i}"), (1000 + i, 1000 + i))
    assert store.get("k", "key0") is not None  # used now: the most recent
    count, freed = store.prune(3 * 10_200)
    assert count == 2 and freed > 20_000
    assert [store.get("k", f"key{i}") is not None for i in range(5)] == [True, False, False, True, True]
    small = Store(tmp_path / "small", max_bytes=25_000)
    for i in range(5):
        small.put("k", f"key{i}", {}, [np.zeros(10_000, np.uint8)])
    assert small.info()["bytes"] <= 25_000
    info = store.info()
    assert info["entries"] == 3 and info["kinds"]["k"]["entries"] == 3
    store.clear()
    assert store.info()["entries"] == 0
    assert parse_size("10G") == 10 * 1024**3 and parse_size("500M") == 500 * 1024**2 and parse_size("123") == 123


def test_packing_keeps_awkward_arrays_and_structure() -> None:
    jagged = ak.zip({"pt": ak.Array([[1.0, 2.0], [], [3.0]]), "eta": ak.Array([[0.1, 0.2], [], [0.3]])},
                    with_name="Muon")
    value = {"mask": np.array([True, False]), "objects": jagged, "steps": [["skim", 3]], "n": None, "t": (1, 2.5)}
    tree, arrays = pack(value)
    back = unpack(json.loads(json.dumps(tree)), arrays)
    assert ak.to_list(back["objects"]) == ak.to_list(jagged)
    assert ak.parameters(back["objects"]) == ak.parameters(jagged)
    assert np.array_equal(back["mask"], value["mask"]) and back["steps"] == [["skim", 3]]
    assert back["t"] == (1, 2.5) and back["n"] is None


def test_definition_keys_follow_helpers_globals_and_closures() -> None:
    scale = np.array([1.0, 2.0])

    def helper(x):
        return x * scale

    def cut(ev):
        return helper(ev) > LIMIT

    first = definition_key(cut)
    globals()["LIMIT"] = 4
    assert definition_key(cut) != first  # a global it reads
    before = definition_key(cut)
    scale[1] = 3.0
    assert definition_key(cut) != before  # a numpy array a helper closes over
    assert definition_key(cut) == definition_key(cut)


LIMIT = 3


# --- on Dask ---------------------------------------------------------------------------------


def test_dask_workers_keep_their_own_caches_and_get_their_chunks_back(work: Path, monkeypatch) -> None:
    """Two real worker processes, each with its own cache folder (as on two machines): a second
    run sends each chunk back to the worker that ran it; a lost worker costs only its cache, and
    a new executor on the same (long-lived) scheduler finds the chunks' workers too."""
    import distributed

    from highrate.execution.executors.dask import DaskExecutor

    monkeypatch.setenv("HIGHRATE_CACHE_DIR", str(work / "driver-cache"))  # the driver's: holds nothing
    folders = {name: work / f"cache-{name}" for name in ("a", "b")}
    workers = {name: {"cls": distributed.Nanny, "options": {"nthreads": 1, "env": {"HIGHRATE_CACHE_DIR": str(f)}}}
               for name, f in folders.items()}
    scheduler = {"cls": distributed.Scheduler, "options": {"dashboard_address": None, "host": "127.0.0.1"}}

    def go(ex: DaskExecutor, bins: int) -> highrate.RunOutcome:
        write_analysis(work, **{**BASE, "mll_bins": bins})
        outcome = highrate.run(highrate.load_analysis(work / "analysis.py"), datasets(work),
                               options=highrate.RunOptions(chunk_size=1500), executor=ex)
        assert_same(outcome, run(work, cache=False))
        return outcome

    with distributed.SpecCluster(workers=workers, scheduler=scheduler) as cluster, \
            distributed.Client(cluster) as client:
        ex = DaskExecutor.from_client(client)
        first = go(ex, 30)
        assert all(any(f.glob("stages/*/*.entry")) for f in folders.values())  # both workers cached chunks
        second = go(ex, 45)  # every stage result found where the chunk went
        assert misses(second)["skim"] == 0 and second.result.cache["skim"]["hits"] == first.chunks
        ex._homes.save()  # as closing the command does
        again = DaskExecutor.from_client(client)  # the next command on the (long-lived) cluster
        assert misses(go(again, 47))["skim"] == 0
        cluster.scale(1)  # one worker goes, and its cache with it
        deadline = time.monotonic() + 60
        while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.workers)) > 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        third = go(ex, 50)
        lost = misses(third)["skim"]
        assert 0 < lost < first.chunks  # the survivor's chunks were warm, the lost worker's recomputed

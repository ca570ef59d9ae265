"""Remembered file metadata: a file described once is read later without parsing its TTree,
and any change to the file, a damaged entry or HIGHRATE_CACHE=off makes highrate parse it again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

import highrate
from highrate.data.io import files, metacache, ttree_meta
from highrate.data.io.files import describe, forget, open_tree
from highrate.data.io.reader import read_columns
from highrate.errors import MissingBranchError
from highrate.testing import generate_file

BRANCHES = ["event", "nMuon", "Muon_pt", "Muon_charge", "HLT_IsoMu24", "genWeight"]


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    monkeypatch.delenv("HIGHRATE_CACHE", raising=False)
    monkeypatch.setattr(metacache, "_memory", {})  # as in a new process
    return folder / "highrate" / "tree-meta"


@pytest.fixture()
def nanoaod(tmp_path) -> Path:
    return generate_file(tmp_path / "f.root", events=3000, seed=3, basket_events=700)


def _new_process(monkeypatch, *paths: Path) -> list[str]:
    """Forget open files and loaded entries; count TTree parses from now on, by uproot or by
    hand (``ttree_meta``)."""
    for p in paths:
        forget(str(p))
    monkeypatch.setattr(metacache, "_memory", {})
    parses: list[str] = []
    real, by_hand = files._parse_tree, ttree_meta.describe_local

    def counting(url, tree, access):
        parses.append(url)
        return real(url, tree, access)

    def counting_by_hand(path, tree):
        found = by_hand(path, tree)
        if found is not None:
            parses.append(path)
        return found

    monkeypatch.setattr(files, "_parse_tree", counting)
    monkeypatch.setattr(ttree_meta, "describe_local", counting_by_hand)
    return parses


def _expected(path: Path, names: list[str], start: int, stop: int) -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        arrays = f["Events"].arrays(names, entry_start=start, entry_stop=stop)
    return {n: ak.to_numpy(ak.flatten(arrays[n], axis=None)) for n in names}


def test_a_described_file_is_read_without_parsing(cache, nanoaod, monkeypatch):
    first = describe(str(nanoaod), "Events")
    assert len(list(cache.glob("*.json"))) == 1
    parses = _new_process(monkeypatch, nanoaod)
    again = describe(str(nanoaod), "Events")
    assert again == first
    handle = open_tree(str(nanoaod), "Events")
    assert handle.uuid == first.uuid and handle.size == first.size == nanoaod.stat().st_size
    for start, stop in [(0, 3000), (650, 1500), (2999, 3000)]:
        got, nbytes = read_columns(handle, BRANCHES, start, stop, where="test")
        for name, values in _expected(nanoaod, BRANCHES, start, stop).items():
            np.testing.assert_array_equal(got[name], values, err_msg=name)
        assert nbytes > 0
    assert parses == []  # the numeric branches needed nothing but the remembered layouts
    with pytest.raises(MissingBranchError, match="Did you mean 'Muon_pt'"):
        read_columns(handle, ["Muon_ptt"], 0, 10, where="test")
    assert parses == [str(nanoaod)]  # the error's suggestions came from the parsed tree
    forget(str(nanoaod))


def test_branches_the_fast_path_cannot_read_parse_the_tree(cache, tmp_path, monkeypatch):
    path = tmp_path / "mixed.root"
    with uproot.recreate(path) as f:
        tree = f.mktree("Events", {"x": np.float32, "label": "string"})
        tree.extend({"x": np.arange(50, dtype=np.float32), "label": ak.Array([f"e{i}" for i in range(50)])})
    describe(str(path), "Events")
    parses = _new_process(monkeypatch, path)
    handle = open_tree(str(path), "Events")
    got, _ = read_columns(handle, ["x"], 0, 50, where="test")
    np.testing.assert_array_equal(got["x"], np.arange(50, dtype=np.float32))
    assert parses == []
    got, _ = read_columns(handle, ["label"], 10, 20, where="test")  # through uproot: its bytes
    assert got["label"].tobytes() == "".join(f"e{i}" for i in range(10, 20)).encode()
    assert parses == [str(path)]
    forget(str(path))


def test_a_changed_file_is_described_again(cache, nanoaod, monkeypatch):
    old = describe(str(nanoaod), "Events")
    forget(str(nanoaod))
    generate_file(nanoaod, events=2000, seed=4, basket_events=500)  # same path, other contents
    parses = _new_process(monkeypatch, nanoaod)
    new = describe(str(nanoaod), "Events")
    assert parses == [str(nanoaod)]
    assert new.entries == 2000 and new.uuid != old.uuid
    handle = open_tree(str(nanoaod), "Events")
    got, _ = read_columns(handle, BRANCHES, 0, 2000, where="test")
    for name, values in _expected(nanoaod, BRANCHES, 0, 2000).items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)
    forget(str(nanoaod))


def test_damaged_or_stale_entries_and_the_off_switch(cache, nanoaod, monkeypatch):
    described = describe(str(nanoaod), "Events")
    (entry,) = cache.glob("*.json")
    doc = json.loads(entry.read_text())
    doc["header"] = "00" * 64  # a header that is not this file's
    entry.write_text(json.dumps(doc))
    parses = _new_process(monkeypatch, nanoaod)
    assert describe(str(nanoaod), "Events") == described
    assert parses == [str(nanoaod)]
    entry.write_text("{not json")
    parses = _new_process(monkeypatch, nanoaod)
    assert describe(str(nanoaod), "Events") == described
    assert parses == [str(nanoaod)]
    for stale in cache.glob("*.json"):
        os.remove(stale)
    monkeypatch.setenv("HIGHRATE_CACHE", "off")
    parses = _new_process(monkeypatch, nanoaod)
    describe(str(nanoaod), "Events")
    assert parses == [str(nanoaod)] and list(cache.glob("*.json")) == []
    forget(str(nanoaod))


def test_with_the_cache_off_more_files_than_stay_open_are_parsed_once(cache, tmp_path, monkeypatch):
    """Describing every file and then reading each (a sequential run's order) parses each file
    once, even with HIGHRATE_CACHE=off and more files than stay open: the process remembers what
    it described, and nothing is written to the cache folder."""
    paths = [generate_file(tmp_path / f"f{i}.root", events=500, seed=i, basket_events=200)
             for i in range(files._MAX_OPEN + 3)]
    monkeypatch.setenv("HIGHRATE_CACHE", "off")
    parses = _new_process(monkeypatch, *paths)
    infos = [describe(str(p), "Events") for p in paths]
    for path, info in zip(paths, infos, strict=True):
        with files.opened(str(path), "Events") as handle:
            got, _ = read_columns(handle, BRANCHES, 0, info.entries, where="test")
        for name, values in _expected(path, BRANCHES, 0, info.entries).items():
            np.testing.assert_array_equal(got[name], values, err_msg=f"{path.name} {name}")
    assert sorted(parses) == sorted(str(p) for p in paths)
    assert not cache.exists() or list(cache.glob("*.json")) == []
    for path in paths:
        forget(str(path))


def test_a_file_rewritten_in_place_with_the_same_stat_is_described_again(cache, nanoaod, monkeypatch):
    """Size, modification time and inode can all stay the same when a file is rewritten within the
    file system's time resolution; its first bytes (the TFile header, the start of its UUID) do not."""
    monkeypatch.setenv("HIGHRATE_CACHE", "off")  # the process' own memory, which skips the folder's checks
    parses = _new_process(monkeypatch, nanoaod)
    describe(str(nanoaod), "Events")
    forget(str(nanoaod))
    describe(str(nanoaod), "Events")
    assert parses == [str(nanoaod)]  # remembered
    st = nanoaod.stat()
    data = bytearray(nanoaod.read_bytes())
    data[60] ^= 0xFF  # a byte of the UUID: another file as far as the header tells
    with open(nanoaod, "r+b") as f:
        f.write(data)
    os.utime(nanoaod, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert nanoaod.stat().st_ino == st.st_ino and nanoaod.stat().st_size == st.st_size
    forget(str(nanoaod))
    describe(str(nanoaod), "Events")
    assert parses == [str(nanoaod)] * 2
    forget(str(nanoaod))


def test_runs_with_remembered_metadata_fill_the_same_histograms(cache, sample, zmumu_path, monkeypatch):
    analysis = highrate.load_analysis(zmumu_path)
    datasets = highrate.load_datasets(sample)
    paths = [Path(f) for d in datasets for f in d.files]
    first = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=5000)).result
    parses = _new_process(monkeypatch, *paths)
    second = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=5000)).result
    assert parses == []
    assert first.histograms.keys() == second.histograms.keys()
    for key, h in first.histograms.items():
        np.testing.assert_array_equal(h.values(flow=True), second.histograms[key].values(flow=True))
    assert first.cutflow == second.cutflow
    for p in paths:
        forget(str(p))


def test_a_run_on_remembered_files_does_not_import_uproot(cache, sample, zmumu_path):
    """uproot is needed only for what highrate's TTree reader and basket reader do not know; its
    import is ~10% of a short command. These files are described by hand the first time, then
    remembered."""
    script = (
        "import sys, highrate\n"
        f"analysis = highrate.load_analysis({str(zmumu_path)!r})\n"
        f"datasets = highrate.load_datasets({str(sample)!r})\n"
        "out = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=5000))\n"
        "print(out.result.counts, 'uproot' in sys.modules)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(cache.parent.parent)}
    first, second = (subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                     check=True).stdout.split("\n")[-2] for _ in range(2))
    assert first.endswith(" False")  # described by ttree_meta
    assert second.endswith(" False")  # remembered
    assert first == second and "DYJetsToLL_M-50" in first  # the same counts


class _RecordingExecutor:
    """The sequential executor, noting which functions it is given (a real executor: it runs them)."""

    name = "recording"

    def __init__(self) -> None:
        from highrate.execution.executors.local import SequentialExecutor

        self.inner = SequentialExecutor()
        self.functions: list[str] = []

    def map_unordered(self, function, items):
        self.functions.append(function.__name__)
        return self.inner.map_unordered(function, items)

    def close(self) -> None:
        pass


def test_remembered_files_are_described_by_the_driver(cache, sample, zmumu_path, monkeypatch):
    """Files known from an earlier run are not sent to workers to be described: the driver looks
    them up before any worker starts, and the run's result is the same."""
    analysis = highrate.load_analysis(zmumu_path)
    datasets = highrate.load_datasets(sample)
    paths = [Path(f) for d in datasets for f in d.files]
    options = highrate.RunOptions(chunk_size=5000, cache=False)  # each run sends its chunks to the workers
    first_ex, second_ex, third_ex = _RecordingExecutor(), _RecordingExecutor(), _RecordingExecutor()
    first = highrate.run(analysis, datasets, options=options, executor=first_ex)
    assert first_ex.functions == ["describe_file", "process_indexed"]
    _new_process(monkeypatch, *paths)
    second = highrate.run(analysis, datasets, options=options, executor=second_ex)
    assert second_ex.functions == ["process_indexed"]
    assert [i.url for d in datasets for i in second.files[d.name]] == [str(p) for p in paths]
    assert first.result.cutflow == second.result.cutflow and first.result.counts == second.result.counts
    # one file changed since: only that one goes to the workers
    os.utime(paths[0], ns=(paths[0].stat().st_atime_ns, paths[0].stat().st_mtime_ns + 1_000_000_000))
    parses = _new_process(monkeypatch, *paths)
    third = highrate.run(analysis, datasets, options=options, executor=third_ex)
    assert third_ex.functions == ["describe_file", "process_indexed"]
    assert parses == [str(paths[0])]  # parsed again by the worker that described it
    assert third.result.cutflow == first.result.cutflow
    for p in paths:
        forget(str(p))


def test_a_removed_file_is_named_as_missing(cache, nanoaod, monkeypatch):
    from highrate.errors import InputFileError

    describe(str(nanoaod), "Events")
    _new_process(monkeypatch, nanoaod)
    nanoaod.unlink()
    with pytest.raises(InputFileError, match=r"f\.root' does not exist"):
        open_tree(str(nanoaod), "Events")

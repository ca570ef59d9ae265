"""The fast basket reader (highrate.data.io.reader.read_columns) returns exactly what uproot returns.

Every comparison is against an independent ``uproot.open`` of the same file: flat branches via
``TBranch.array(library="np")``, jagged ones via ``ak.flatten(TBranch.array())``. Compressed
byte counts are checked against the ``fBasketBytes`` of the baskets overlapping the range.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from highrate.data.io.files import OpenTree, forget, open_tree
from highrate.data.io.reader import read_columns
from highrate.errors import InputFileError
from highrate.testing import generate_file

CODECS = ["zlib", "lzma", "lz4", "zstd"]
EVENTS = 2100
BASKET = 250  # 8 full baskets and a last partial one of 100 entries
WHERE = "test file, entries [{}, {})"


# ---------------------------------------------------------------------------------------------
# helpers: the independent uproot answer


def reference(tree, name: str, start: int, stop: int) -> np.ndarray:
    branch = tree[name]
    if isinstance(branch.interpretation, uproot.interpretation.jagged.AsJagged):
        return ak.to_numpy(ak.flatten(branch.array(entry_start=start, entry_stop=stop)))
    return branch.array(library="np", entry_start=start, entry_stop=stop)


def overlapping_bytes(tree, names, start: int, stop: int) -> int:
    """Compressed bytes of the baskets whose entries intersect ``[start, stop)``."""
    total = 0
    for name in names:
        branch = tree[name]
        n = branch.num_baskets
        edges = np.asarray(branch.member("fBasketEntry"))[: n + 1]
        sizes = np.asarray(branch.member("fBasketBytes"))[:n]
        overlap = (edges[:-1] < stop) & (edges[1:] > start)
        total += int(sizes[overlap].sum())
    return total


def assert_same(out: dict[str, np.ndarray], tree, names, start: int, stop: int) -> None:
    assert list(out) == list(names)
    for name in names:
        got, ref = out[name], reference(tree, name, start, stop)
        assert isinstance(got, np.ndarray), name
        assert got.dtype == ref.dtype, (name, got.dtype, ref.dtype)
        assert got.dtype.isnative, (name, got.dtype)
        assert np.array_equal(got, ref), (name, start, stop)


def read(handle, names, start, stop):
    return read_columns(handle, names, start, stop, where=WHERE.format(start, stop))


def basket_edges(tree, name: str = "Muon_pt") -> np.ndarray:
    branch = tree[name]
    return np.asarray(branch.member("fBasketEntry"))[: branch.num_baskets + 1]


def empty_object_range(tree) -> tuple[int, int]:
    """The longest run of events without muons, electrons nor jets (at least 2 events)."""
    empty = np.ones(tree.num_entries, dtype=bool)
    for counter in ("nMuon", "nElectron", "nJet"):
        empty &= tree[counter].array(library="np") == 0
    best = (0, 0)
    i = 0
    while i < len(empty):
        if empty[i]:
            j = i
            while j < len(empty) and empty[j]:
                j += 1
            if j - i > best[1] - best[0]:
                best = (i, j)
            i = j
        else:
            i += 1
    if best[1] - best[0] < 2:  # fall back to muon-free events only
        empty = tree["nMuon"].array(library="np") == 0
        starts = np.flatnonzero(empty[:-1] & empty[1:])
        best = (int(starts[0]), int(starts[0]) + 2)
    return best


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("reader")
    return {
        codec: generate_file(out / f"{codec}.root", events=EVENTS, seed=11, compression=codec,
                             basket_events=BASKET)
        for codec in CODECS
    }


@pytest.fixture(scope="module", params=CODECS)
def codec_file(request, files):
    path = files[request.param]
    with uproot.open(path) as f:
        yield request.param, path, f["Events"]
    forget(str(path))


def ranges(tree) -> dict[str, tuple[int, int]]:
    edges = basket_edges(tree)
    n = tree.num_entries
    assert len(edges) == 10 and edges[-1] - edges[-2] == 100  # many baskets, a partial last one
    return {
        "whole file": (0, n),
        "aligned": (int(edges[2]), int(edges[6])),
        "aligned start, mid end": (int(edges[1]), int(edges[4]) + 17),
        "mid start, aligned end": (int(edges[3]) + 1, int(edges[7])),
        "unaligned": (int(edges[1]) + 123, int(edges[8]) - 31),
        "inside one basket": (int(edges[4]) + 10, int(edges[4]) + 200),
        "one entry": (int(edges[5]) + 7, int(edges[5]) + 8),
        "first entry": (0, 1),
        "last entry": (n - 1, n),
        "last partial basket": (int(edges[-2]), n),
        "into the last basket": (int(edges[-3]) + 200, n - 50),
        "inside the last basket": (int(edges[-2]) + 20, n - 20),
        "empty objects": empty_object_range(tree),
    }


# ---------------------------------------------------------------------------------------------
# tests


def test_file_covers_the_types(files):
    with uproot.open(files["zstd"]) as f:
        tree = f["Events"]
        dtypes, names = {}, tree.keys()
        for name in names:
            interp = tree[name].interpretation
            jagged = isinstance(interp, uproot.interpretation.jagged.AsJagged)
            content = interp.content if jagged else interp
            dtypes.setdefault((jagged, np.dtype(content.to_dtype)), name)
    for kind in [(False, np.float32), (False, np.int32), (False, np.bool_), (False, np.uint32),
                 (False, np.uint64), (True, np.float32), (True, np.int32), (True, np.bool_)]:
        assert (kind[0], np.dtype(kind[1])) in dtypes, kind
    assert tree["event"].interpretation.from_dtype == np.dtype(">u8")
    assert tree["nMuon"].interpretation.from_dtype == np.dtype(">i4")


def test_ranges_equal_uproot(codec_file):
    codec, path, tree = codec_file
    handle = open_tree(str(path), "Events")
    names = tree.keys()
    assert len(names) > 40
    for label, (start, stop) in ranges(tree).items():
        out, nbytes = read(handle, names, start, stop)
        assert all(handle.layouts[b] is not None for b in names)  # all on the fast path
        assert_same(out, tree, names, start, stop)
        assert nbytes == overlapping_bytes(tree, names, start, stop), (codec, label)
        if label == "empty objects":
            assert stop - start >= 2
            assert len(out["Muon_pt"]) == 0 and len(out["nMuon"]) == stop - start
        if label == "whole file":
            assert nbytes == overlapping_bytes(tree, names, 0, tree.num_entries)
            # every basket of every branch, nothing else
            assert nbytes == sum(int(np.sum(tree[b].member("fBasketBytes")[: tree[b].num_baskets]))
                                 for b in names)


def test_branch_subsets_and_order(codec_file):
    """Jagged branches without their counter, counters after contents, a single branch."""
    _, path, tree = codec_file
    handle = open_tree(str(path), "Events")
    edges = basket_edges(tree)
    start, stop = int(edges[2]) + 40, int(edges[5]) + 3
    for names in (["Muon_pt"], ["Jet_jetId", "Muon_tightId", "nJet"], ["event"],
                  ["Muon_charge", "nMuon", "run", "Flag_goodVertices"]):
        out, nbytes = read(handle, names, start, stop)
        assert_same(out, tree, names, start, stop)
        assert nbytes >= overlapping_bytes(tree, names, start, stop)


def test_empty_entry_range(codec_file):
    _, path, tree = codec_file
    handle = open_tree(str(path), "Events")
    edges = basket_edges(tree)
    names = ["event", "nMuon", "Muon_pt", "Muon_tightId", "HLT_IsoMu24"]
    for at in (0, int(edges[3]), int(edges[3]) + 5, tree.num_entries):
        out, _ = read(handle, names, at, at)
        assert_same(out, tree, names, at, at)
        assert all(len(a) == 0 for a in out.values())


def test_without_file_descriptor(files):
    """The path for remote files (uproot's source instead of pread) gives the same arrays."""
    path = str(files["lz4"])
    with uproot.open(path) as f:
        tree = f["Events"]
        handle = OpenTree(path, uproot.open(path)["Events"], None)
        try:
            names = ["event", "genWeight", "nMuon", "Muon_pt", "Muon_tightId", "nJet", "Jet_jetId"]
            for start, stop in [(0, EVENTS), (333, 1777), (2000, 2100)]:
                out, nbytes = read(handle, names, start, stop)
                assert_same(out, tree, names, start, stop)
                assert nbytes == overlapping_bytes(tree, names, start, stop)
        finally:
            handle.close()


def test_results_are_independent_arrays(files):
    """Arrays are fresh: changing one does not change a later read (no shared cache)."""
    path = str(files["zstd"])
    handle = open_tree(path, "Events")
    first, _ = read(handle, ["nMuon", "Muon_pt"], 0, 500)
    first["Muon_pt"][:] = -1
    again, _ = read(handle, ["nMuon", "Muon_pt"], 0, 500)
    assert (again["Muon_pt"] != -1).all()


# ---------------------------------------------------------------------------------------------
# files written directly with uproot: uncompressed, large baskets, types the fast path skips


def _write_plain(path: Path, compression) -> None:
    rng = np.random.default_rng(5)
    with uproot.recreate(path, compression=compression) as f:
        tree = f.mktree("Events", {"x": np.float32, "big": np.uint64, "flag": np.bool_,
                                   "Obj": "var * {pt: float32, q: int16}"})
        for i, n in enumerate([300, 300, 150, 1]):
            counts = np.zeros(n, dtype=np.int32) if i == 1 else rng.integers(0, 4, n).astype(np.int32)
            total = int(counts.sum())
            obj = ak.zip({"pt": ak.unflatten(rng.normal(30, 5, total).astype(np.float32), counts),
                          "q": ak.unflatten(rng.integers(-3, 3, total).astype(np.int16), counts)})
            tree.extend({"x": rng.normal(size=n).astype(np.float32),
                         "big": rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2),
                         "flag": rng.random(n) < 0.5, "Obj": obj})


@pytest.mark.parametrize("compression", [None, uproot.ZLIB(1), uproot.LZ4(1)], ids=["none", "zlib", "lz4"])
def test_uproot_written_file(tmp_path, compression):
    """Includes an uncompressed file and a basket whose entries are all empty collections."""
    path = tmp_path / "plain.root"
    _write_plain(path, compression)
    handle = open_tree(str(path), "Events")
    try:
        with uproot.open(path) as f:
            tree = f["Events"]
            names = ["x", "big", "flag", "nObj", "Obj_pt", "Obj_q"]
            assert tree["Obj_pt"].num_baskets == 4
            for start, stop in [(0, 751), (300, 600), (310, 590), (250, 650), (599, 751), (750, 751)]:
                out, nbytes = read(handle, names, start, stop)
                assert_same(out, tree, names, start, stop)
                assert nbytes == overlapping_bytes(tree, names, start, stop)
            out, _ = read(handle, ["nObj", "Obj_pt"], 300, 600)
            assert len(out["Obj_pt"]) == 0
    finally:
        forget(str(path))


def compression_blocks(path: Path, branch) -> list[bytes]:
    """The algorithm tags of the compression blocks of the first basket of ``branch``."""
    seek, size = int(branch.member("fBasketSeek")[0]), int(branch.member("fBasketBytes")[0])
    with open(path, "rb") as f:
        f.seek(seek)
        raw = f.read(size)
    objlen, keylen = int.from_bytes(raw[6:10], "big"), int.from_bytes(raw[14:16], "big")
    payload, pos, tags = raw[keylen:], 0, []
    if len(payload) == objlen:
        return tags  # stored uncompressed
    while pos < len(payload):
        tags.append(payload[pos : pos + 2])
        pos += 9 + (payload[pos + 3] | payload[pos + 4] << 8 | payload[pos + 5] << 16)
    return tags


@pytest.mark.parametrize("codec", ["zstd", "zlib", "lz4"])
def test_basket_larger_than_one_compression_block(tmp_path, codec):
    """ROOT splits baskets over 16 MiB into several compression blocks."""
    path = tmp_path / "big.root"
    algorithm = {"zstd": uproot.ZSTD(1), "zlib": uproot.ZLIB(1), "lz4": uproot.LZ4(1)}[codec]
    counts = np.full(1_125_000, 4, dtype=np.int32)
    values = (np.arange(counts.sum(), dtype=np.float32) * 0.5) % 1000
    with uproot.recreate(path, compression=algorithm) as f:
        f.mktree("Events", {"j": "var * float32"}).extend({"j": ak.unflatten(values, counts)})
    handle = open_tree(str(path), "Events")
    try:
        with uproot.open(path) as f:
            tree = f["Events"]
            assert tree["j"].num_baskets == 1
            assert len(compression_blocks(path, tree["j"])) >= 2
            for start, stop in [(0, len(counts)), (10, len(counts) - 3), (500_000, 500_001)]:
                out, nbytes = read(handle, ["nj", "j"], start, stop)
                assert_same(out, tree, ["nj", "j"], start, stop)
                assert nbytes == overlapping_bytes(tree, ["nj", "j"], start, stop)
    finally:
        forget(str(path))


@pytest.fixture
def fallback_file(tmp_path) -> Path:
    path = tmp_path / "fallback.root"
    with uproot.recreate(path, compression=uproot.ZLIB(1)) as f:
        tree = f.mktree("Events", {"fixed": np.dtype((np.float64, (3,))), "x": np.float32,
                                   "label": "string", "Obj": "var * {pt: float32}"})
        for i in range(3):
            n = 100
            counts = (np.arange(n) % 3).astype(np.int32)
            tree.extend({
                "fixed": np.arange(n * 3, dtype=np.float64).reshape(n, 3) + 1000 * i,
                "x": np.arange(n, dtype=np.float32) + i,
                "label": ak.Array([f"e{i}_{k}" for k in range(n)]),
                "Obj": ak.zip({"pt": ak.unflatten(np.arange(counts.sum(), dtype=np.float32), counts)}),
            })
    yield path
    forget(str(path))


def test_fallback_string_branch(fallback_file):
    """A std::string branch goes through uproot; its flat content is the strings' bytes."""
    handle = open_tree(str(fallback_file), "Events")
    with uproot.open(fallback_file) as f:
        tree = f["Events"]
        assert not isinstance(tree["label"].interpretation, uproot.interpretation.numerical.AsDtype)
        for start, stop in [(0, 300), (50, 250), (120, 130)]:
            out, nbytes = read(handle, ["x", "label", "nObj", "Obj_pt"], start, stop)
            assert_same({k: out[k] for k in ("x", "nObj", "Obj_pt")}, tree, ["x", "nObj", "Obj_pt"],
                        start, stop)
            strings = tree["label"].array(library="np", entry_start=start, entry_stop=stop)
            assert out["label"].tobytes() == "".join(strings).encode()
            assert nbytes == overlapping_bytes(tree, ["x", "label", "nObj", "Obj_pt"], start, stop)


def test_fallback_fixed_size_array_branch(fallback_file):
    handle = open_tree(str(fallback_file), "Events")
    with uproot.open(fallback_file) as f:
        tree = f["Events"]
        assert tree["fixed"].interpretation.from_dtype.shape == (3,)
        for start, stop in [(0, 300), (50, 250), (120, 130)]:
            out, nbytes = read(handle, ["x", "fixed"], start, stop)
            ref = tree["fixed"].array(library="np", entry_start=start, entry_stop=stop)
            # either the (n, 3) array or its flat content is a faithful answer
            assert out["fixed"].dtype == ref.dtype and out["fixed"].size == ref.size
            assert np.array_equal(out["fixed"].reshape(ref.shape), ref)
            assert_same({"x": out["x"]}, tree, ["x"], start, stop)
            assert nbytes == overlapping_bytes(tree, ["x", "fixed"], start, stop)


# ---------------------------------------------------------------------------------------------
# corrupt baskets


def _corrupt_copy(src: Path, dst: Path, basket: int, *, zero: int = 300) -> tuple[int, int]:
    """Zero ``zero`` bytes of basket ``basket`` of Muon_pt after its key and block header;
    return that basket's entry range."""
    shutil.copy(src, dst)
    with uproot.open(src) as f:
        branch = f["Events"]["Muon_pt"]
        seek = int(branch.member("fBasketSeek")[basket])
        size = int(branch.member("fBasketBytes")[basket])
        edges = basket_edges(f["Events"])
    with open(dst, "r+b") as out:
        out.seek(seek)
        keylen = int.from_bytes(out.read(18)[14:16], "big")
        lo = seek + keylen + 9 + 16  # past the key and the compression block header
        hi = min(lo + zero, seek + size - 8)
        assert hi - lo >= 200
        out.seek(lo)
        out.write(bytes(hi - lo))
    return int(edges[basket]), int(edges[basket + 1])


@pytest.mark.parametrize("codec", CODECS)
def test_corrupt_basket_raises_input_file_error(files, tmp_path, codec):
    path = tmp_path / f"corrupt_{codec}.root"
    b0, b1 = _corrupt_copy(files[codec], path, basket=3)
    handle = open_tree(str(path), "Events")
    try:
        with uproot.open(files[codec]) as f:
            tree = f["Events"]  # the intact original
            names = ["event", "nMuon", "Muon_pt"]
            for start, stop in [(b0 + 10, b1 - 10), (0, EVENTS), (b0 - 5, b0 + 1), (b1 - 1, b1 + 40)]:
                where = WHERE.format(start, stop)
                with pytest.raises(InputFileError) as info:
                    read_columns(handle, names, start, stop, where=where)
                message = str(info.value)
                assert where in message and "'Muon_pt'" in message, message
            # ranges that do not touch the basket still read, from the same open handle
            for start, stop in [(0, b0), (b1, EVENTS), (10, b0 - 3), (b1 + 1, b1 + 2)]:
                out, nbytes = read(handle, names, start, stop)
                assert_same(out, tree, names, start, stop)
                assert nbytes == overlapping_bytes(tree, names, start, stop)
            # the other branches of the corrupt range are fine
            out, _ = read(handle, ["event", "nMuon", "Jet_pt"], b0, b1)
            assert_same(out, tree, ["event", "nMuon", "Jet_pt"], b0, b1)
    finally:
        forget(str(path))


def test_lz4_bit_flip_is_detected(files, tmp_path):
    src, path = files["lz4"], tmp_path / "flip.root"
    shutil.copy(src, path)
    with uproot.open(src) as f:
        branch = f["Events"]["Muon_pt"]
        seek, size = int(branch.member("fBasketSeek")[3]), int(branch.member("fBasketBytes")[3])
        b0, b1 = (int(x) for x in basket_edges(f["Events"])[3:5])
    with open(path, "r+b") as out:
        out.seek(seek + size // 2)
        byte = out.read(1)[0]
        out.seek(seek + size // 2)
        out.write(bytes([byte ^ 0x01]))
    with uproot.open(path) as f, pytest.raises(ValueError, match="checksum"):
        f["Events"]["Muon_pt"].array(entry_start=b0, entry_stop=b1)  # uproot notices
    handle = open_tree(str(path), "Events")
    try:
        with pytest.raises(InputFileError, match="Muon_pt"):
            read(handle, ["nMuon", "Muon_pt"], b0, b1)
    finally:
        forget(str(path))


def test_counts_that_disagree_with_the_baskets(codec_file):
    """Whole baskets are decompressed in place: counts that promise fewer or more values than
    the baskets hold give an error, never a write past the output or a short array."""
    from highrate.data.io.baskets import read_branch

    _, path, tree = codec_file
    handle = open_tree(str(path), "Events")
    read(handle, ["Muon_pt"], 0, 1)  # makes the branch's layout
    layout = handle.layouts["Muon_pt"]
    edges = basket_edges(tree)
    start, stop = int(edges[1]), int(edges[4])  # three whole baskets
    counts = tree["nMuon"].array(entry_start=start, entry_stop=stop, library="np").astype(np.int64)
    expected = ak.to_numpy(ak.flatten(tree["Muon_pt"].array(entry_start=start, entry_stop=stop)))
    np.testing.assert_array_equal(read_branch(layout, handle.fd, start, stop, counts), expected)
    fewer, more = counts.copy(), counts.copy()
    fewer[counts > 0] -= 1
    more += 1
    for wrong in (fewer, more):
        with pytest.raises(ValueError, match="values"):
            read_branch(layout, handle.fd, start, stop, wrong)

"""FastArray's numpy paths give awkward's values, types and errors (plain ``ak.Array(x.layout)`` copies)."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest

from highrate.arrays.fast import (
    FastArray,
    fast,
    is_packed,
    list_index,
    list_items,
    list_positions,
    take_packed,
)
from highrate.data.io.files import BranchInfo
from highrate.engine.collections import Collection, Events, Group
from highrate.engine.events import EventSchema

DTYPES = [np.float32, np.int32, np.bool_]


def values(rng, dtype, n):
    if dtype is np.bool_:
        return rng.random(n) < 0.5
    if dtype is np.int32:
        return rng.integers(-3, 4, n).astype(np.int32)
    return rng.normal(0, 3, n).astype(dtype)


def jagged(counts, data) -> ak.Array:
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return fast(ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), ak.contents.NumpyArray(data))))


def sample(dtype, kind="lists", n=40, seed=0):
    """x, y: jagged with the same lists (separate offsets buffers), or flat; e: one value per event."""
    rng = np.random.default_rng(seed)
    if kind == "flat":
        return fast(ak.Array(values(rng, dtype, n))), fast(ak.Array(values(rng, dtype, n))), values(rng, dtype, n)
    counts = np.zeros(n, int) if kind == "empty" else rng.integers(0, 4, n)
    total = int(counts.sum())
    return jagged(counts, values(rng, dtype, total)), jagged(counts, values(rng, dtype, total)), values(rng, dtype, n)


def make_events(n=60, seed=1) -> ak.Array:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, n).astype(np.int32)
    total = int(counts.sum())
    arrays = {"run": rng.integers(1, 5, n).astype(np.uint32), "nMuon": counts,
              "Muon_pt": rng.exponential(30, total).astype(np.float32), "Muon_charge": values(rng, np.int32, total),
              "MET_pt": rng.exponential(30, n).astype(np.float32), "MET_phi": values(rng, np.float32, n)}
    branches = {name: BranchInfo(str(a.dtype), "nMuon" if name.startswith("Muon_") else None)
                for name, a in arrays.items()}
    return EventSchema.from_branches(branches).build(arrays, n)


def plain(x):  # awkward's own path for everything: no behavior, no FastArray class
    return ak.Array(x.layout) if isinstance(x, ak.Array) else x


def listed(x):
    def clean(v):
        if isinstance(v, list):
            return [clean(i) for i in v]
        if isinstance(v, dict):
            return {k: clean(i) for k, i in v.items()}
        return "nan" if isinstance(v, float) and math.isnan(v) else v

    return clean(ak.to_list(x))


def same(got, expected):
    assert str(ak.type(got)) == str(ak.type(expected))
    assert listed(got) == listed(expected)


def outcome(fn, *args):
    """fn(*args) as comparable data: its values and type, or the class of the error it raised."""
    try:
        out = fn(*args)
    except Exception as err:
        return type(err)
    if isinstance(out, tuple):
        return tuple(outcome(lambda o=o: o) for o in out)
    return str(ak.type(out)), listed(out)


# ---- ufuncs ------------------------------------------------------------------------------------

UFUNCS = {
    "gt": lambda x, y, e: x > 1,
    "and": lambda x, y, e: x & y,
    "or": lambda x, y, e: (x > 0) | y,
    "invert": lambda x, y, e: ~x,
    "abs": lambda x, y, e: abs(x),
    "mul_python_float": lambda x, y, e: x * 2.5,
    "mul_float64": lambda x, y, e: x * np.float64(2.5),
    "jagged_jagged": lambda x, y, e: x * y,
    "shared_offsets": lambda x, y, e: x + (x * 2),
    "per_event": lambda x, y, e: x * e,
    "per_event_left": lambda x, y, e: e + x,
    "sqrt": lambda x, y, e: np.sqrt(abs(x)),
    "truediv": lambda x, y, e: x / 2,
}
BITWISE = {"and", "or", "invert"}


@pytest.mark.parametrize("kind", ["lists", "empty", "flat"])
@pytest.mark.parametrize(("name", "dtype"), [(n, d) for n in UFUNCS for d in DTYPES
                                             if not (n in BITWISE and d is np.float32)])
def test_ufuncs_equal_awkward(name, dtype, kind):
    x, y, e = sample(dtype, kind)
    assert isinstance(x, FastArray)
    got = UFUNCS[name](x, y, e)
    assert isinstance(got, FastArray)
    same(got, UFUNCS[name](plain(x), plain(y), e))
    dtype_out = ak.to_numpy(ak.flatten(plain(got), axis=None)).dtype
    if dtype is np.float32 and name == "mul_python_float":
        assert dtype_out == np.float32  # NEP 50: a python float does not promote
    if name == "mul_float64":
        assert dtype_out == np.float64


def fallback_inputs(wrap):
    x, y, e = sample(np.float32)
    view = fast(x[3:])  # offsets do not start at 0
    other, _, _ = sample(np.float32, seed=9)  # other lists
    reordered = jagged(np.asarray(ak.num(x))[::-1], x.layout.content.data)  # other lists, same total
    parts = {"x": x, "y": y, "view": view, "packed": fast(ak.to_packed(view)), "other": other, "reordered": reordered,
             "flat": fast(ak.Array(e)), "record": ak.zip({"a": x}), "rebuilt": fast(ak.Array(x.tolist()))}
    return {k: wrap(v) for k, v in parts.items()}, e


FALLBACKS = {
    "same_lists_rebuilt": lambda a, e: a["x"] * a["rebuilt"],
    "view_scalar": lambda a, e: a["view"] * 2,
    "view_vs_packed": lambda a, e: a["view"] + a["packed"],
    "view_per_event": lambda a, e: a["view"] * e[3:],
    "out": lambda a, e: np.add(a["flat"], 1, out=np.empty(len(e))),
    "divmod": lambda a, e: np.divmod(a["x"], 2),
    "modf": lambda a, e: np.modf(a["x"]),
    "record": lambda a, e: a["x"] + a["record"],
    "other_lists": lambda a, e: a["x"] + a["other"],
    "reordered_lists": lambda a, e: a["x"] + a["reordered"],
    "per_event_too_short": lambda a, e: a["x"] * e[:-1],
    "flat_too_short": lambda a, e: a["flat"] + e[:-1],
    "jagged_vs_column": lambda a, e: a["x"] * np.asarray(e).reshape(-1, 1),
    "flat_vs_strings": lambda a, e: a["flat"] == np.array(["a"] * len(e)),
    "mask_other_lists": lambda a, e: a["x"][a["other"] > 0],
    "mask_reordered_lists": lambda a, e: a["x"][a["reordered"] > 0],
    "mask_view_vs_packed": lambda a, e: a["view"][a["packed"] > 0],
    "mask_per_event": lambda a, e: a["x"][e > 0],
}


@pytest.mark.parametrize("name", FALLBACKS)
def test_fallbacks_give_awkwards_results_and_errors(name):
    fast_in, e = fallback_inputs(lambda v: v)
    plain_in, _ = fallback_inputs(plain)
    assert isinstance(fast_in["view"], FastArray) and isinstance(fast_in["rebuilt"], FastArray)
    assert outcome(FALLBACKS[name], fast_in, e) == outcome(FALLBACKS[name], plain_in, e)


@pytest.mark.parametrize("name", ["other_lists", "reordered_lists", "per_event_too_short", "flat_too_short"])
def test_mismatched_lengths_raise_awkwards_error(name):
    with pytest.raises(ValueError):
        FALLBACKS[name](*fallback_inputs(lambda v: v))


# ---- masks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_masks_equal_awkward(dtype):
    x, _, e = sample(dtype)
    for arr in (x, fast(x[3:]), fast(ak.Array(e))):
        got = arr[arr > 0]
        assert isinstance(got, FastArray)
        same(got, plain(arr)[plain(arr) > 0])
    flat, mask = fast(ak.Array(e)), np.asarray(e) > 0
    assert isinstance(flat[mask], FastArray)
    same(flat[mask], plain(flat)[mask])


def test_collection_mask_keeps_class_and_equals_awkward():
    mu = make_events().Muon
    got = mu[mu.pt > 20]
    expected = plain(mu)[plain(mu).pt > 20]
    assert isinstance(got, Collection)
    for field in mu.fields:
        assert isinstance(got[field], FastArray)
        same(got[field], expected[field])
    counts = np.asarray(ak.num(mu))
    other = jagged(counts[np.argsort(counts)], mu.pt.layout.content.data) > 20  # other lists, same total
    assert outcome(lambda m, k: m[k], mu, other) == outcome(lambda m, k: m[k], plain(mu), plain(other))


# ---- ak.* functions ----------------------------------------------------------------------------


def test_num_equals_awkward():
    x, _, _ = sample(np.float32)
    mu = make_events().Muon
    for arr in (x, fast(x[3:]), mu):
        for axis in (1, -1):
            got = ak.num(arr, axis=axis)
            assert isinstance(got, FastArray)
            same(got, ak.num(plain(arr), axis=axis))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("func", [ak.any, ak.all, ak.count_nonzero])
def test_reducers_equal_awkward(func, dtype):
    x, _, _ = sample(dtype)
    if dtype is np.float32:  # NaN counts as non-zero
        data = x.layout.content.data
        data[::5] = np.nan
    for arr in (x, fast(x[3:]), sample(dtype, "empty")[0]):
        got = func(arr, axis=1)
        assert isinstance(got, FastArray)
        same(got, func(plain(arr), axis=1))
    for kwargs in ({"axis": None}, {"axis": 1, "keepdims": True}, {"axis": 1, "mask_identity": True}, {"axis": 0}):
        assert outcome(lambda a, k=kwargs: func(a, **k), x) == outcome(lambda a, k=kwargs: func(a, **k), plain(x))


def test_flatten_to_numpy_values_astype_equal_awkward():
    x, _, e = sample(np.int32)
    flat = fast(ak.Array(e))
    for arr in (x, fast(x[3:])):
        same(ak.flatten(arr, axis=1), ak.flatten(plain(arr), axis=1))
        assert outcome(lambda a: ak.flatten(a, axis=None), arr) == outcome(lambda a: ak.flatten(a, axis=None), plain(arr))
    got = ak.to_numpy(flat)
    assert isinstance(got, np.ndarray) and got.dtype == np.int32
    np.testing.assert_array_equal(got, ak.to_numpy(plain(flat)))
    assert outcome(ak.to_numpy, x) == outcome(ak.to_numpy, plain(x))  # jagged: awkward's error
    for arr in (x, fast(x[3:]), flat):
        assert outcome(ak.values_astype, arr, "datetime64[s]") == outcome(ak.values_astype, plain(arr), "datetime64[s]")
        for to in (np.float64, np.int64):
            got = ak.values_astype(arr, to)
            assert isinstance(got, FastArray)
            same(got, ak.values_astype(plain(arr), to))


def test_with_field_on_events_equals_awkward():
    events = make_events()
    n = len(events)
    for what, where in ((np.arange(n) * 0.5, "w"), (np.arange(n), "run"), (5, "five"), (events.MET.pt * 2, "met2")):
        got = ak.with_field(events, what, where)
        assert isinstance(got, Events)
        same(got, ak.with_field(plain(events), plain(what), where))


def test_with_field_on_collection():
    mu = make_events().Muon
    got = ak.with_field(mu, mu.pt * 2, "pt")
    assert isinstance(got, Collection)  # awkward's own with_field drops the list's parameters
    same(ak.without_parameters(plain(got)), ak.with_field(plain(mu), plain(mu.pt) * 2, "pt"))
    view = mu[1:]  # offsets do not start at 0: other lists than a packed array of the same counts
    packed = fast(ak.to_packed(view.pt)) * 2
    assert listed(ak.with_field(view, packed, "pt")) == listed(ak.with_field(plain(view), plain(packed), "pt"))
    counts = np.asarray(ak.num(mu))
    other = jagged(counts[np.argsort(counts)], mu.pt.layout.content.data)  # other lists, same total: awkward's error
    assert outcome(lambda m: ak.with_field(m, other, "pt"), mu) == outcome(lambda m: ak.with_field(m, plain(other), "pt"), plain(mu))


def test_other_functions_take_awkwards_path():
    x, y, _ = sample(np.float32)
    for fn in (lambda a, b: ak.sum(a, axis=1), lambda a, b: ak.firsts(a), lambda a, b: ak.zip({"a": a, "b": b}),
               lambda a, b: ak.max(a, axis=1), lambda a, b: ak.where(a > 0, a, b)):
        assert outcome(fn, x, y) == outcome(fn, plain(x), plain(y))


# ---- take_packed and Events --------------------------------------------------------------------


LAYOUTS = {"record": lambda: make_events().MET.layout, "numbers": lambda: make_events().run.layout,
           "list_of_records": lambda: make_events().Muon.layout, "list_of_numbers": lambda: sample(np.float32)[0].layout,
           "view": lambda: sample(np.float32)[0][3:].layout}


@pytest.mark.parametrize("name", LAYOUTS)
def test_take_packed_equals_to_packed(name):
    layout = LAYOUTS[name]()
    index = np.random.default_rng(3).integers(0, layout.length, 25)
    got = take_packed(layout, index)
    expected = ak.to_packed(ak.Array(layout)[index]).layout
    assert got is not None and got.is_equal_to(expected)


@pytest.mark.parametrize("array", [ak.Array(["a", "bc"]), ak.Array([1, None]), ak.Array([["a"], ["bc"]]),
                                   ak.Array([[1], None]), ak.Array(np.ones((2, 3)))], ids=str)
def test_take_packed_refuses_other_layouts(array):
    assert take_packed(array.layout, np.array([1, 0])) is None


def test_filtered_events_hand_out_packed_fast_fields():
    events = make_events()
    mask = np.asarray(events.MET.pt > 20)
    ev, expected = events[mask], plain(events)[mask]
    assert isinstance(ev.layout, ak.contents.IndexedArray)
    getters = {"Muon": lambda e: e.Muon, "Muon.pt": lambda e: e.Muon.pt, "MET": lambda e: e["MET"],
               "MET.pt": lambda e: e.MET.pt, "run": lambda e: e.run}
    kinds = {"Muon": Collection, "Muon.pt": FastArray, "MET": Group, "MET.pt": FastArray, "run": FastArray}
    for name, get in getters.items():
        got = get(ev)
        assert isinstance(got, kinds[name]), name
        assert got.layout.is_equal_to(ak.to_packed(get(expected)).layout), name  # packed, same parameters
        same(got, get(expected))
    assert ev.Muon is ev.Muon and ev.run is ev["run"] and ev.MET is ev.MET


def test_typetracer_arrays_take_awkwards_path():
    events = make_events()
    tt = ak.Array(events.layout.to_typetracer(forget_length=True), behavior=events.behavior)
    x = ak.Array(sample(np.float32)[0].layout.to_typetracer(forget_length=True))
    assert type(fast(x)) is ak.Array
    ops = [lambda e: e.run, lambda e: e.MET.pt * 2.5, lambda e: e.Muon.pt > 20, lambda e: ak.num(e.Muon),
           lambda e: e.Muon[e.Muon.pt > 20], lambda e: ak.any(e.Muon.pt > 20, axis=1), lambda e: ak.flatten(e.Muon.pt),
           lambda e: ak.values_astype(e.run, np.float64), lambda e: ak.with_field(e, e.run * 2, "r2"),
           lambda e: ak.with_field(e.Muon, e.Muon.pt * 2, "pt"), lambda e: ak.count_nonzero(e.Muon.pt, axis=1)]
    for op in ops:
        got = op(tt)
        assert not isinstance(got, FastArray)
        assert str(got.type.content) == str(op(plain(events)).type.content)


# ---- known divergences from awkward (src bugs; strict, so a fix shows up as XPASS) --------------

EDGE_CASES = {  # inputs where the fast paths must step aside: tuples, masked arrays, strings
    "tuple_after_selection": lambda ev, m: ev[np.arange(len(ev)) % 2 == 0].pair,
    "masked_operand": lambda ev, m: ev.run * m,
    "masked_mask": lambda ev, m: ev.run[m > 2],
    "with_field_masked": lambda ev, m: ak.with_field(ev, m, "m"),
    "with_field_strings": lambda ev, m: ak.with_field(ev, np.array(["a"] * len(ev)), "s"),
}


@pytest.mark.parametrize("name", EDGE_CASES)
def test_edge_cases_match_awkward(name):
    events = make_events()
    events = ak.with_field(events, ak.zip((events.run, events.MET.pt)), "pair")
    masked = np.ma.masked_array(np.arange(len(events), dtype=float), mask=np.arange(len(events)) % 3 == 0)
    assert outcome(EDGE_CASES[name], events, masked) == outcome(EDGE_CASES[name], plain(events), masked)


def test_field_cache_follows_assignment():
    events = make_events()
    mask = np.asarray(events.MET.pt > 20)
    ev = events[mask]
    _ = ev.run
    ev["w"] = np.ones(len(ev))
    ev["run"] = plain(ak.with_field(events, events.run + 100, "run"))[mask].run  # an IndexedArray
    same(ev.run, plain(ev)["run"])


def test_attrs_are_kept():
    x = fast(ak.Array(np.arange(3.0), attrs={"unit": "GeV"}))
    assert isinstance(x * 2, FastArray)
    assert (x * 2).attrs == {"unit": "GeV"}
    assert ak.num(fast(ak.Array([[1.0], []], attrs={"unit": "GeV"}))).attrs == {"unit": "GeV"}


def test_preselection_filter_matches_awkward():
    """cuts.filter_events: a record of lazily filtered fields, equal to ``events[mask]`` field by field,
    including fields filtered twice, option-type fields (awkward's own path) and added fields."""
    from highrate.engine.stages.cuts import filter_events as _filter

    events = make_events()
    events = ak.with_field(events, ak.Array([None if i % 4 == 0 else i for i in range(len(events))]), "opt")
    mask = np.asarray(events.MET.pt > 20)
    for ev in (events[["run", "Muon", "MET"]], events):
        got, expected = _filter(ev, mask), plain(ev)[mask]
        assert ak.to_list(got) == ak.to_list(expected) and str(got.type) == str(expected.type)
    twice = _filter(_filter(events[["run", "Muon", "MET"]], mask), np.arange(int(mask.sum())) % 3 == 0)
    assert ak.to_list(twice) == ak.to_list(plain(events[["run", "Muon", "MET"]])[mask][::3])
    events = make_events()
    added = ak.with_field(_filter(events, mask), np.arange(int(mask.sum())), "i")
    assert type(added) is Events and added.i.tolist() == list(range(int(mask.sum())))
    assert isinstance(added.layout, ak.contents.RecordArray)  # the fast with_field kept it a record
    assert ak.to_list(added.Muon) == ak.to_list(plain(events)[mask].Muon)
    assert isinstance(added.Muon, Collection) and isinstance(added.Muon.layout, ak.contents.ListOffsetArray)


def test_unflatten_is_fast_and_equals_awkward():
    from highrate.jagged import unflatten

    values, counts = np.arange(6, dtype=np.float32), np.array([2, 0, 3, 1])
    got = unflatten(values, counts)
    assert isinstance(got, FastArray)
    assert got.tolist() == ak.unflatten(values, counts).tolist()
    assert (1 + got).tolist() == [[1.0, 2.0], [], [3.0, 4.0, 5.0], [6.0]]
    with pytest.raises(ValueError, match="6 values for 5 objects"):
        unflatten(values, np.array([2, 3]))


@pytest.mark.parametrize("counts", [
    [], [0], [0, 0, 0], [3], [0, 2, 0, 0, 1, 4, 0], [1, 1, 1, 1], [2, 0],
    np.random.default_rng(5).poisson(1.4, 5000),
])
def test_list_positions_and_index_equal_np_repeat(counts):
    counts = np.asarray(counts, dtype=np.int64)
    rng = np.random.default_rng(len(counts))
    starts = np.cumsum(rng.integers(0, 3, len(counts)) + counts) - counts  # gaps between lists, as after a filter
    new_starts = np.cumsum(counts) - counts
    expected = np.repeat(starts - new_starts, counts) + np.arange(counts.sum())
    np.testing.assert_array_equal(list_positions(starts, counts), expected)
    content = np.arange(int((starts + counts).max(initial=0)))
    np.testing.assert_array_equal(content[list_items(starts, counts)], expected)
    packed = new_starts + 7  # back to back: a slice, no copy
    assert isinstance(list_items(packed, counts), slice)
    np.testing.assert_array_equal(np.arange(counts.sum() + 7)[list_items(packed, counts)], np.arange(counts.sum()) + 7)
    np.testing.assert_array_equal(list_index(counts), np.repeat(np.arange(len(counts)), counts))


def test_is_packed_says_when_to_packed_would_change_nothing():
    records = ak.Array([[{"pt": 1.0, "q": 1}, {"pt": 2.0, "q": -1}], [], [{"pt": 3.0, "q": 1}]])
    packed = [records, ak.to_packed(records[1:]), ak.to_packed(records[[True, False, True]]), records.pt,
              ak.Array(np.arange(5.0))]
    unpacked = [records[1:], records[[True, False, True]], records[:, :1], ak.Array(np.arange(10.0)[::2])]
    for array in packed:
        assert is_packed(array.layout), array
        assert ak.to_packed(array).layout.is_equal_to(array.layout)
    for array in unpacked:
        assert not is_packed(array.layout), array

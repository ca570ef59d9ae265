"""Datasets whose metadata differ only where the analysis does not look share one trace.

Each run below traces through a counting wrapper of the real tracer, and every histogram is
checked against numpy over the same file, so that a trace shared where it must not be (the
wrong branches read) shows as a wrong number, not only as a wrong count.
"""

from __future__ import annotations

import os

import awkward as ak
import numpy as np
import pytest
import uproot

import highrate
import highrate.execution.planning as planning
from highrate.engine.tracesharing import WatchedMeta
from highrate.testing import generate_file

EDGES = np.linspace(0.0, 200.0, 41)


@pytest.fixture(scope="module")
def nanoaod(tmp_path_factory):
    return str(generate_file(tmp_path_factory.mktemp("sharing") / "mc.root", events=4000, seed=5))


@pytest.fixture
def traces(monkeypatch, computing):
    """The datasets each run actually traced (the others shared a trace)."""
    seen: list[str] = []
    real = planning.trace

    def counting(analysis, schema, meta):
        seen.append(getattr(meta, "plain", meta)["dataset"])  # unrecorded
        return real(analysis, schema, meta)

    monkeypatch.setattr(planning, "trace", counting)
    return seen


def leading_pt(events, params, meta):
    # a float of the metadata decides which collection is read: looked at, so not shared across
    muons = meta["muons"] > 0.5 or meta["process"] == "wjets"
    collection = events.Muon if muons else events.Jet
    return ak.fill_none(ak.firsts(collection.pt), -1.0)


def normalisation(events, params, meta):
    return meta["xsec"] * meta["lumi"] / 1000.0  # arithmetic only: any xsec shares the trace


def log_weight(events, params, meta):
    return np.log(meta["xsec"])  # numpy wants a real float: traced again with the plain metadata


def analysis(weight):
    return highrate.Analysis(
        name="sharing",
        quantities={"lead": leading_pt},
        weights=[highrate.Weight("w", weight)],
        histograms=[highrate.Histogram("lead", highrate.Axis("lead", 40, 0.0, 200.0))],
    )


def dataset(path, name, **meta):
    return highrate.Dataset(name=name, sample=name, files=(path,), metadata={"is_mc": True, "lumi": 2.0, **meta})


def expected(path, collection, weight):
    pt = uproot.open(path)["Events"][f"{collection}_pt"].array()
    lead = ak.to_numpy(ak.fill_none(ak.firsts(pt), -1.0)).astype(np.float64)
    return np.histogram(lead, bins=EDGES, weights=np.full(len(lead), weight))[0]


def values(outcome, name):
    (h,) = [h for (hist, ds, _, variation), h in outcome.result.histograms.items()
            if hist == "lead" and ds == name and variation == "nominal"]
    return h.values()


def test_datasets_differing_in_an_arithmetic_float_share_one_trace(nanoaod, traces):
    datasets = [dataset(nanoaod, "a", xsec=1.0, muons=0.0, process="tt"),
                dataset(nanoaod, "b", xsec=2.5, muons=0.2, process="st"),
                dataset(nanoaod, "c", xsec=500.0, muons=1.0, process="tt"),
                dataset(nanoaod, "d", xsec=3.0, muons=0.0, process="tt", year="2017"),
                dataset(nanoaod, "e", xsec=3.0, muons=0.0, process="wjets"),
                dataset(nanoaod, "f", xsec=4.0, muons=0.0, process="wjets")]
    outcome = highrate.run(analysis(normalisation), datasets)
    # a traced; b shares it (its float and its string compare as a's did); c's float compares the
    # other way, so c reads its own branches; d has a key the analysis never reads; e's string
    # compares the other way; f shares e's
    assert traces == ["a", "c", "e"]
    expect = {"a": (1.0, "Jet"), "b": (2.5, "Jet"), "c": (500.0, "Muon"), "d": (3.0, "Jet"), "e": (3.0, "Muon"),
              "f": (4.0, "Muon")}
    for name, (xsec, collection) in expect.items():
        np.testing.assert_allclose(values(outcome, name), expected(nanoaod, collection, xsec * 2.0 / 1000.0),
                                   rtol=1e-12, err_msg=name)
    assert "Muon_pt" in outcome.plans["c"].branches and "Muon_pt" not in outcome.plans["a"].branches
    assert "Jet_pt" in outcome.plans["b"].branches and "Jet_pt" not in outcome.plans["c"].branches


def test_a_float_only_numpy_can_use_is_traced_with_the_plain_metadata(nanoaod, traces):
    datasets = [dataset(nanoaod, "a", xsec=3.0, muons=0.0, process="tt"),
                dataset(nanoaod, "b", xsec=4.0, muons=0.0, process="tt")]
    outcome = highrate.run(analysis(log_weight), datasets)
    assert traces == ["a", "a", "b", "b"]  # the watched trace failed each time, the plain one ran
    for name, xsec in (("a", 3.0), ("b", 4.0)):
        np.testing.assert_allclose(values(outcome, name), expected(nanoaod, "Jet", np.log(xsec)), rtol=1e-12)


def test_what_the_watched_metadata_records():
    meta = WatchedMeta({"xsec": 2.0, "lumi": 3.0, "process": "tt", "year": 2018, "k": 1.5})
    scale = meta["xsec"] * meta["lumi"]
    assert meta.get("is_mc") is None
    assert meta["process"] != "ww" and meta["process"] not in ("zz", "yy")
    assert meta.exact == {"is_mc": meta.exact["is_mc"]} and meta.floats == {"xsec", "lumi"}
    assert meta.admits({"xsec": 7.0, "lumi": 1.0, "process": "tt", "year": 1999, "k": 0.0})
    assert meta.admits({"xsec": 7.0, "lumi": 1.0, "process": "st"})  # compares as "tt" did
    assert not meta.admits({"xsec": 7.0, "lumi": 1.0, "process": "ww"})
    assert not meta.admits({"xsec": 7, "lumi": 1.0, "process": "tt"})  # an int where a float was
    assert not meta.admits({"xsec": 7.0, "lumi": 1.0, "process": "tt", "is_mc": True})  # was absent
    assert scale > 5  # looking at a value computed from two keys makes both exact
    assert not meta.admits({"xsec": 7.0, "lumi": 3.0, "process": "tt"})
    assert meta.admits({"xsec": 2.0, "lumi": 3.0, "process": "tt", "k": 9.0})
    for look in (bool, str, hash, float, int, round, np.float64, np.asarray, lambda x: f"{x:.1f}", lambda x: {2.0: 1}.get(x),
                 lambda x: x > 3):  # a computed value compared
        fresh = WatchedMeta({"k": 2.0})
        look(fresh["k"] * 2)
        assert fresh.exact == {"k": 2.0}, look
    for look in (hash, str, len, lambda x: x[0], lambda x: x.startswith("t"), lambda x: x + "s", lambda x: f"{x}",
                 lambda x: {"tt": 1}.get(x), lambda x: "t" in x):
        fresh = WatchedMeta({"p": "tt"})
        look(fresh["p"])
        assert fresh.exact == {"p": "tt"}, look
    fresh = WatchedMeta({"path": "/a/b.json"})
    with pytest.raises(FileNotFoundError):
        os.stat(fresh["path"])  # a C function takes the string as it is: unseen, so it must be the same
    assert not fresh.admits({"path": "/c/d.json"}) and fresh.admits({"path": "/a/b.json"})
    fresh = WatchedMeta({"k": 2.0})
    dict(fresh)  # copying the metadata reads every key and value
    assert fresh.everything and not fresh.admits({"k": 3.0}) and fresh.admits({"k": 2.0})

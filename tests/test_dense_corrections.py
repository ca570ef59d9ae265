"""The numpy table lookup of highrate.corrections gives exactly correctionlib's numbers."""

from __future__ import annotations

import json

import correctionlib
import numpy as np
import pytest

from highrate.corrections import CorrectionError, evaluate, load_correction
from highrate.corrections._dense import dense_of

ETA = [0.0, 0.9, 1.2, 2.1, 2.4]
PT = [15.0, 20.0, 25.0, 40.0, 120.0]


def _file(tmp_path, flow):
    rng = np.random.default_rng(5)

    def grid():
        return {"nodetype": "multibinning", "inputs": ["abseta", "pt"], "edges": [ETA, PT],
                "content": [float(v) for v in rng.uniform(0.9, 1.1, (len(ETA) - 1) * (len(PT) - 1))],
                "flow": flow}

    doc = {"schema_version": 2, "corrections": [
        {"name": "sf", "version": 1, "output": {"name": "weight", "type": "real"},
         "inputs": [{"name": "abseta", "type": "real"}, {"name": "pt", "type": "real"},
                    {"name": "syst", "type": "string"}],
         "data": {"nodetype": "category", "input": "syst",
                  "content": [{"key": k, "value": grid()} for k in ("nominal", "up", "down")]}},
        {"name": "pu", "version": 1, "output": {"name": "weight", "type": "real"},
         "inputs": [{"name": "ntrue", "type": "real"}],
         "data": {"nodetype": "binning", "input": "ntrue", "edges": [0.0, 10.0, 20.5, 40.0, 99.0],
                  "content": [0.5, 1.0, 1.5, 2.0], "flow": flow}},
    ]}
    path = tmp_path / f"c_{flow}.json"
    path.write_text(json.dumps(doc))
    return path


def _values(rng, edges, n, *, inside):
    lo, hi = edges[0], edges[-1]
    x = rng.uniform(lo, hi, n) if inside else rng.uniform(lo - 5, hi + 5, n)
    x[: len(edges)] = edges  # every edge exactly
    if inside:
        x[len(edges) - 1] = np.nextafter(hi, lo)  # the last edge itself is out of range
    return x


@pytest.mark.parametrize("flow", ["clamp", "error"])
def test_same_numbers_as_correctionlib(tmp_path, flow):
    path = _file(tmp_path, flow)
    reference = correctionlib.CorrectionSet.from_file(str(path))
    rng = np.random.default_rng(1)
    inside = flow == "error"
    eta, pt = _values(rng, ETA, 5000, inside=inside), _values(rng, PT, 5000, inside=inside)
    sf = load_correction(path, "sf")
    inputs = [("abseta", "real"), ("pt", "real"), ("syst", "string")]
    assert dense_of(sf.path, "sf", inputs, sf._impl) is not None  # the fast path is taken
    for syst in ("nominal", "up", "down"):
        np.testing.assert_array_equal(evaluate(sf, eta, pt, syst), reference["sf"].evaluate(eta, pt, syst))
    ntrue = _values(rng, [0.0, 10.0, 20.5, 40.0, 99.0], 3000, inside=inside)
    np.testing.assert_array_equal(evaluate(load_correction(path, "pu"), ntrue), reference["pu"].evaluate(ntrue))


def test_out_of_range_and_unknown_keys_are_correctionlibs_errors(tmp_path):
    path = _file(tmp_path, "error")
    sf = load_correction(path, "sf")
    with pytest.raises(CorrectionError, match="outside"):
        evaluate(sf, np.array([0.5, 3.0]), np.array([30.0, 30.0]), "nominal")
    with pytest.raises(CorrectionError, match="syst"):
        evaluate(sf, np.array([0.5]), np.array([30.0]), "sideways")


def test_several_variations_at_once_equal_one_by_one(tmp_path):
    import awkward as ak

    from highrate.corrections import muon_sf

    path = _file(tmp_path, "clamp")
    rng = np.random.default_rng(9)
    counts = rng.poisson(1.5, 3000)
    muons = ak.zip({"eta": ak.unflatten(rng.uniform(-2.6, 2.6, counts.sum()).astype(np.float32), counts),
                    "pt": ak.unflatten(rng.uniform(10, 150, counts.sum()).astype(np.float32), counts)})
    muons = muons[muons.pt > 12]  # a filtered collection, as objects are
    together = muon_sf(muons, path, name="sf", variation=("nominal", "up", "down"))
    reference = correctionlib.CorrectionSet.from_file(str(path))["sf"]
    for syst, got in zip(("nominal", "up", "down"), together, strict=True):
        np.testing.assert_array_equal(got, muon_sf(muons, path, name="sf", variation=syst))
        flat = reference.evaluate(np.abs(ak.to_numpy(ak.flatten(muons.eta))).astype(float),
                                  ak.to_numpy(ak.flatten(muons.pt)).astype(float), syst)
        expected = np.array([np.prod(x) for x in ak.unflatten(flat, ak.num(muons))])
        np.testing.assert_array_equal(got, expected)


def test_a_file_changed_on_disk_is_compiled_anew(tmp_path):
    """A long-lived process (a Session, --watch) sees the new numbers of a correction file
    rewritten while it runs: the compiled table follows the file, not its name."""
    path = _file(tmp_path, "clamp")
    ntrue = np.array([5.0, 15.0, 30.0, 50.0])
    np.testing.assert_array_equal(evaluate(load_correction(path, "pu"), ntrue), [0.5, 1.0, 1.5, 2.0])
    doc = json.loads(path.read_text())
    doc["corrections"][1]["data"]["content"] = [5.0, 10.0, 15.0, 20.0]
    path.write_text(json.dumps(doc, indent=1))  # another size, whatever the clock's resolution
    np.testing.assert_array_equal(evaluate(load_correction(path, "pu"), ntrue), [5.0, 10.0, 15.0, 20.0])

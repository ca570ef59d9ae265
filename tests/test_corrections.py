"""highrate.corrections against independent numpy lookups of the synthetic correction files."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

correctionlib = pytest.importorskip("correctionlib")
from correctionlib import schemav2  # noqa: E402

from highrate.arrays.fast import FastArray  # noqa: E402
from highrate.corrections import (  # noqa: E402
    Correction,
    CorrectionError,
    clear_cache,
    evaluate,
    jes_uncertainty,
    load_correction,
    load_correction_set,
    muon_sf,
    pileup_weight,
)
from highrate.errors import ConfigError  # noqa: E402
from highrate.testing.corrections import write_corrections  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_corrections(tmp_path_factory.mktemp("corrections"))


# ---- independent lookups: parse the JSON with json, find bins with np.digitize -------------


def _node(path: Path, name: str, variation: str | None = None) -> dict:
    document = json.loads(path.read_text())
    data = next(c for c in document["corrections"] if c["name"] == name)["data"]
    if variation is not None:
        assert data["nodetype"] == "category"
        data = next(item["value"] for item in data["content"] if item["key"] == variation)
    return data


def _index(x: np.ndarray, edges: list[float], clamp: bool) -> np.ndarray:
    i = np.digitize(x, edges) - 1
    if clamp:
        return np.clip(i, 0, len(edges) - 2)
    assert ((i >= 0) & (i < len(edges) - 1)).all()
    return i


def lookup_1d(node: dict, x: np.ndarray) -> np.ndarray:
    return np.asarray(node["content"])[_index(x, node["edges"], node["flow"] == "clamp")]


def lookup_2d(node: dict, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    clamp = node["flow"] == "clamp"
    ex, ey = node["edges"]
    table = np.asarray(node["content"]).reshape(len(ex) - 1, len(ey) - 1)
    return table[_index(x, ex, clamp), _index(y, ey, clamp)]


def _jagged(rng: np.random.Generator, n: int, mean: float, eta: float, pt: tuple[float, float]) -> ak.Array:
    counts = rng.poisson(mean, n)
    total = int(counts.sum())
    return ak.zip({
        "eta": ak.unflatten(rng.uniform(-eta, eta, total).astype(np.float32), counts),
        "pt": ak.unflatten(rng.uniform(*pt, total).astype(np.float32), counts),
    })


def reduceat_product(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    out = np.ones(len(counts))
    nonempty = counts > 0
    if values.size:
        out[nonempty] = np.multiply.reduceat(values, (np.cumsum(counts) - counts)[nonempty])
    return out


# ---- the files ------------------------------------------------------------------------------


def test_files_validate_with_correctionlib(files: dict[str, Path]) -> None:
    assert set(files) == {"pileup", "muon_sf", "jes", "golden"}
    expected = {"pileup": {"pileup"}, "muon_sf": {"muon_id_sf", "muon_iso_sf", "muon_id_sf_clamped"},
                "jes": {"jes_uncertainty"}}
    for key, names in expected.items():
        schemav2.CorrectionSet.model_validate(json.loads(files[key].read_text()))
        assert set(correctionlib.CorrectionSet.from_file(str(files[key]))) == names
    pu = load_correction(files["pileup"], "pileup")
    assert [(i.name, i.type) for i in pu.inputs] == [("NumTrueInteractions", "real"), ("weights", "string")]
    sf = load_correction(files["muon_sf"], "muon_id_sf")
    assert [(i.name, i.type) for i in sf.inputs] == [("eta", "real"), ("pt", "real"), ("scale_factors", "string")]
    assert _node(files["muon_sf"], "muon_id_sf", "nominal")["flow"] == "error"
    assert _node(files["muon_sf"], "muon_id_sf_clamped", "nominal")["flow"] == "clamp"
    assert _node(files["pileup"], "pileup", "up")["flow"] == "clamp"
    assert _node(files["jes"], "jes_uncertainty")["flow"] == "clamp"


def test_pileup_matches_numpy_and_variations(files: dict[str, Path]) -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-5, 110, 20_000), [0.0, 99.999, 100.0, 150.0]])  # with overflow
    pu = load_correction(files["pileup"], "pileup")
    values = {}
    for variation in ("nominal", "up", "down"):
        values[variation] = evaluate(pu, x, variation)
        np.testing.assert_allclose(values[variation], lookup_1d(_node(files["pileup"], "pileup", variation), x))
    # the generator's MC profile: weights average to one, up/down move the tails in opposite ways
    mc = rng.gamma(10.0, 3.2, 200_000)
    assert abs(np.mean(evaluate(pu, mc, "nominal")) - 1) < 0.02
    peak = np.array([30.5])
    assert abs(evaluate(pu, peak, "up")[0] / evaluate(pu, peak, "nominal")[0] - 1) < 0.05
    high, low = np.array([60.5]), np.array([12.5])
    assert evaluate(pu, high, "up") > evaluate(pu, high, "nominal") > evaluate(pu, high, "down")
    assert evaluate(pu, low, "up") < evaluate(pu, low, "nominal") < evaluate(pu, low, "down")


@pytest.mark.parametrize("name", ["muon_id_sf", "muon_iso_sf", "muon_id_sf_clamped"])
def test_muon_sf_matches_numpy(files: dict[str, Path], name: str) -> None:
    rng = np.random.default_rng(2)
    eta = rng.uniform(0, 2.3999, 20_000)
    pt = rng.uniform(15, 199.99, 20_000)
    sf = load_correction(files["muon_sf"], name)
    nominal = evaluate(sf, eta, pt, "nominal")
    np.testing.assert_allclose(nominal, lookup_2d(_node(files["muon_sf"], name, "nominal"), eta, pt))
    assert ((nominal > 0.95) & (nominal <= 1.0)).all()
    up, down = evaluate(sf, eta, pt, "systup"), evaluate(sf, eta, pt, "systdown")
    np.testing.assert_allclose(up, lookup_2d(_node(files["muon_sf"], name, "systup"), eta, pt))
    np.testing.assert_allclose(down, lookup_2d(_node(files["muon_sf"], name, "systdown"), eta, pt))
    np.testing.assert_allclose(up - nominal, nominal - down, atol=1e-9)
    assert ((up - nominal > 0.002) & (up - nominal < 0.02)).all()


def test_clamped_muon_sf_uses_edge_bins(files: dict[str, Path]) -> None:
    sf = load_correction(files["muon_sf"], "muon_id_sf_clamped")
    eta, pt = np.array([0.1, 2.6, 3.0]), np.array([5.0, 20.5, 900.0])
    expected = lookup_2d(_node(files["muon_sf"], "muon_id_sf_clamped", "nominal"), eta, pt)
    np.testing.assert_allclose(evaluate(sf, eta, pt, "nominal"), expected)
    inside = evaluate(sf, np.array([0.1, 2.35, 2.35]), np.array([15.0, 20.5, 199.0]), "nominal")
    np.testing.assert_allclose(expected, inside)


def test_jes_uncertainty_matches_numpy(files: dict[str, Path]) -> None:
    jets = _jagged(np.random.default_rng(3), 5000, 3.0, 5.5, (5.0, 8000.0))
    unc = jes_uncertainty(jets, files["jes"])
    assert ak.all(ak.num(unc) == ak.num(jets))
    assert isinstance(unc, FastArray)  # arithmetic on it (1 + unc) runs in numpy
    flat_eta, flat_pt = ak.to_numpy(ak.flatten(jets.eta)), ak.to_numpy(ak.flatten(jets.pt))
    expected = lookup_2d(_node(files["jes"], "jes_uncertainty"), flat_eta, flat_pt)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(unc)), expected)
    assert ((expected >= 0.01) & (expected <= 0.04)).all()
    jes = load_correction(files["jes"], "jes_uncertainty")
    assert evaluate(jes, 0.5, 25.0) > evaluate(jes, 0.5, 600.0)  # larger at low pt
    assert evaluate(jes, 4.0, 25.0) > evaluate(jes, 0.5, 25.0)  # and at high |eta|
    assert evaluate(jes, -4.0, 25.0) == evaluate(jes, 4.0, 25.0)


# ---- jagged inputs ----------------------------------------------------------------------------


def test_jagged_equals_flat_and_product_equals_reduceat(files: dict[str, Path]) -> None:
    muons = _jagged(np.random.default_rng(4), 20_000, 1.6, 2.39, (15.0, 199.0))
    selected = muons[muons.pt > 40]  # a filtered (indexed) layout, as analyses produce
    sf = load_correction(files["muon_sf"], "muon_iso_sf")
    for mu in (muons, selected, selected[::3]):
        jagged = evaluate(sf, abs(mu.eta), mu.pt, "systup")
        assert ak.all(ak.num(jagged) == ak.num(mu))
        flat = evaluate(sf, np.abs(ak.to_numpy(ak.flatten(mu.eta))), ak.to_numpy(ak.flatten(mu.pt)), "systup")
        np.testing.assert_array_equal(ak.to_numpy(ak.flatten(jagged)), flat)
        product = muon_sf(mu, files["muon_sf"], name="muon_iso_sf", variation="systup")
        assert isinstance(product, np.ndarray) and product.dtype == np.float64
        counts = ak.to_numpy(ak.num(mu))
        np.testing.assert_allclose(product, reduceat_product(flat, counts), rtol=1e-12)
        np.testing.assert_allclose(product, ak.to_numpy(ak.prod(jagged, axis=1)), rtol=1e-12)
        assert (product[counts == 0] == 1).all()


def test_per_event_inputs_are_repeated_for_each_object(files: dict[str, Path]) -> None:
    jets = _jagged(np.random.default_rng(5), 1000, 2.0, 4.0, (20.0, 300.0))
    per_event_pt = np.linspace(20, 300, 1000)
    jes = load_correction(files["jes"], "jes_uncertainty")
    out = evaluate(jes, jets.eta, per_event_pt)
    repeated = ak.broadcast_arrays(per_event_pt, jets.eta)[0]
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(out)), ak.to_numpy(ak.flatten(evaluate(jes, jets.eta, repeated))))


def test_pileup_weight_on_events_record(files: dict[str, Path]) -> None:
    n_true = np.random.default_rng(6).gamma(10.0, 3.2, 1000).astype(np.float32)
    events = ak.zip({"Pileup": ak.zip({"nTrueInt": n_true})}, depth_limit=1)
    w = pileup_weight(events, files["pileup"], "down")
    np.testing.assert_allclose(w, lookup_1d(_node(files["pileup"], "pileup", "down"), n_true.astype(np.float64)))
    several = pileup_weight(events, files["pileup"], ("nominal", "up", "down"))  # bins found once for all three
    assert len(several) == 3
    for variation, got in zip(("nominal", "up", "down"), several, strict=True):
        np.testing.assert_array_equal(got, pileup_weight(events, files["pileup"], variation))
        np.testing.assert_allclose(got, lookup_1d(_node(files["pileup"], "pileup", variation),
                                                  n_true.astype(np.float64)))


# ---- errors -----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CorrectionError, match=r"nope\.json.*does not exist") as info:
        load_correction(tmp_path / "nope.json", "pileup")
    assert isinstance(info.value, ConfigError)


def test_not_a_correctionlib_file(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(CorrectionError, match=r"golden\.json.*is not a correctionlib file"):
        load_correction(files["golden"], "pileup")
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    with pytest.raises(CorrectionError, match=r"broken\.json.*is not a correctionlib file"):
        load_correction(broken, "pileup")


def test_missing_correction_lists_available(files: dict[str, Path]) -> None:
    with pytest.raises(CorrectionError) as info:
        load_correction(files["muon_sf"], "muon_isosf")
    message = str(info.value)
    assert "muon_sf.json" in message and "'muon_isosf'" in message
    for name in ("muon_id_sf", "muon_iso_sf", "muon_id_sf_clamped"):
        assert repr(name) in message
    assert "Did you mean 'muon_iso_sf'" in message


def test_out_of_range_with_error_flow(files: dict[str, Path]) -> None:
    sf = load_correction(files["muon_sf"], "muon_id_sf")
    muons = ak.zip({"eta": ak.Array([[0.5, 1.0], [], [2.0]]), "pt": ak.Array([[30.0, 9.5], [], [250.0]])})
    with pytest.raises(CorrectionError) as info:
        muon_sf(muons, files["muon_sf"])
    message = str(info.value)
    assert "'muon_id_sf'" in message and "muon_sf.json" in message and "'pt'" in message
    assert "[15, 200)" in message and "9.5" in message and "250" in message and "'error'" in message
    with pytest.raises(CorrectionError, match=r"'muon_id_sf'.*input 'eta'.*2\.5"):
        evaluate(sf, np.array([0.5, 2.5]), np.array([30.0, 30.0]), "nominal")
    # the clamped twin accepts the same input
    assert muon_sf(muons, files["muon_sf"], name="muon_id_sf_clamped").shape == (3,)


def test_bad_variation_and_arity(files: dict[str, Path]) -> None:
    pu = load_correction(files["pileup"], "pileup")
    with pytest.raises(CorrectionError, match=r"'pileup'.*'weights'.*'nomnal'.*'nominal', 'up', 'down'"):
        evaluate(pu, np.array([30.0]), "nomnal")
    with pytest.raises(CorrectionError, match=r"takes \(NumTrueInteractions: real, weights: string\)"):
        evaluate(pu, np.array([30.0]))
    with pytest.raises(CorrectionError, match=r"'NumTrueInteractions' has missing values"):
        evaluate(pu, ak.firsts(ak.Array([[30.0], []])), "nominal")
    assert evaluate(pu, 30, "up") == evaluate(pu, 30.0, "up")  # a Python int for a real input
    with pytest.raises(CorrectionError, match="different lengths"):
        evaluate(load_correction(files["jes"], "jes_uncertainty"), np.ones(3), np.ones(4))


# ---- caching, pickling, typetracers --------------------------------------------------------


def test_loaded_once_per_process_and_reloaded_when_changed(files: dict[str, Path], tmp_path: Path) -> None:
    a = load_correction(files["muon_sf"], "muon_id_sf")
    assert load_correction(str(files["muon_sf"]), "muon_id_sf") is a
    assert load_correction_set(files["muon_sf"]) is load_correction_set(files["muon_sf"])
    assert pickle.loads(pickle.dumps(a)) is a  # pickles as (path, name): workers hit the cache
    copy = tmp_path / "pu.json"
    copy.write_bytes(files["pileup"].read_bytes())
    first = load_correction(copy, "pileup")
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert load_correction(copy, "pileup") is not first  # a changed file is read again
    clear_cache()
    assert load_correction(files["muon_sf"], "muon_id_sf") is not a
    assert isinstance(a, Correction) and "muon_id_sf" in repr(a)


def test_typetracer_inputs(files: dict[str, Path]) -> None:
    muons = _jagged(np.random.default_rng(7), 10, 2.0, 2.0, (20.0, 100.0))
    events = ak.zip({"Muon": muons, "Pileup": ak.zip({"nTrueInt": np.linspace(0, 60, 10)})}, depth_limit=1)
    layout, report = ak.typetracer.typetracer_with_report(events.layout.form_with_key())
    tracer = ak.Array(layout)
    sf = load_correction(files["muon_sf"], "muon_id_sf")
    jagged = evaluate(sf, abs(tracer.Muon.eta), tracer.Muon.pt, "nominal")
    assert ak.backend(jagged) == "typetracer" and str(jagged.type.content) == "var * float64"
    per_event = muon_sf(tracer.Muon, files["muon_sf"])
    assert ak.backend(per_event) == "typetracer" and str(per_event.type.content) == "float64"
    pu = pileup_weight(tracer, files["pileup"])
    assert ak.backend(pu) == "typetracer" and str(pu.type.content) == "float64"
    unc = jes_uncertainty(tracer.Muon, files["jes"])
    assert str(unc.type.content) == "var * float64"
    assert len(report.data_touched) >= 3  # eta, pt and nTrueInt were touched
    forgotten = ak.Array(muons.pt.layout.to_typetracer(forget_length=True))
    assert str(evaluate(sf, forgotten, forgotten, "nominal").type.content) == "var * float64"

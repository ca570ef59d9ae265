"""CPU and GPU versions of a stage: the registry, stages files, device selection, the array-API
kernels (under array-api-strict, numpy and, where there is a GPU, CuPy) and runs that use them.

Without an NVIDIA GPU and CuPy the GPU tests skip and say why; with one they compare every
output of the GPU path with its CPU twin: counts exactly, floats to 1e-6 relative.
"""

from __future__ import annotations

import math
import textwrap

import array_api_strict as xps
import awkward as ak
import hist
import numpy as np
import pytest

import highrate
from highrate.devices import hot, kernels
from highrate.devices.loading import load_stages
from highrate.devices.registry import Stage, StageTimes, lookup, stage
from highrate.devices.select import dask_resources, gpu_count, no_gpu_reason, resolve
from highrate.errors import ConfigError
from highrate.kinematics import leading_pair_mass as cpu_leading_pair_mass

needs_gpu = pytest.mark.skipif(gpu_count() == 0, reason=f"no GPU for the CuPy path: {no_gpu_reason()}")


# ---------------------------------------------------------------- inputs: muons, independent of highrate


def muons(n_events: int = 20_000, seed: int = 3) -> ak.Array:
    """Muon-like objects, 0-4 per event, with NanoAOD's float32 fields."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 5, n_events)
    n = int(counts.sum())
    fields = {
        "pt": rng.exponential(25, n).astype(np.float32) + 3,
        "eta": rng.uniform(-3, 3, n).astype(np.float32),
        "phi": rng.uniform(-math.pi, math.pi, n).astype(np.float32),
        "mass": np.full(n, 0.10566, dtype=np.float32),
        "pfRelIso04_all": rng.exponential(0.1, n).astype(np.float32),
        "tightId": rng.random(n) < 0.8,
    }
    return ak.unflatten(ak.zip(fields), counts)


def reference_pair_mass(mu: ak.Array) -> np.ndarray:
    """Four-vector sum of the first two muons, in plain numpy (not highrate's formula)."""
    out = np.full(len(mu), np.nan)
    two = ak.to_numpy(ak.num(mu)) >= 2
    lead = mu[two]
    p = []
    for i in (0, 1):
        pt, eta, phi, m = (ak.to_numpy(lead[f][:, i]).astype(np.float64) for f in ("pt", "eta", "phi", "mass"))
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        p.append((px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + m**2)))
    e, x, y, z = (p[0][3] + p[1][3], p[0][0] + p[1][0], p[0][1] + p[1][1], p[0][2] + p[1][2])
    out[two] = np.sqrt(np.maximum(e**2 - x**2 - y**2 - z**2, 0))
    return out


def flat_of(mu: ak.Array, field: str, xp: object) -> object:
    return xp.asarray(ak.to_numpy(ak.flatten(mu[field])))


def offsets_of(mu: ak.Array, xp: object) -> object:
    return xp.asarray(np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(mu)))]).astype(np.int64))


# ---------------------------------------------------------------- kernels: array-api-strict and numpy


@pytest.mark.parametrize("xp", [xps, np], ids=["array-api-strict", "numpy"])
def test_object_mask_and_counts(xp):
    mu = muons()
    mask = kernels.object_mask(flat_of(mu, "pt", xp), flat_of(mu, "eta", xp), pt_min=15, abs_eta_max=2.4,
                               also=(flat_of(mu, "tightId", xp), flat_of(mu, "pfRelIso04_all", xp) < 0.15))
    good = mu.tightId & (mu.pfRelIso04_all < 0.15) & (mu.pt > 15) & (abs(mu.eta) < 2.4)
    assert np.array_equal(np.asarray(mask), ak.to_numpy(ak.flatten(good)))
    kept = np.asarray(kernels.counts(kernels.masked_offsets(mask, offsets_of(mu, xp))))
    assert np.array_equal(kept, ak.to_numpy(ak.sum(good, axis=1)))
    assert 1000 < kept.sum() < len(ak.flatten(mu))  # the cut keeps some and drops some
    assert np.array_equal(np.asarray(kernels.compress(flat_of(mu, "pt", xp), mask)),
                          ak.to_numpy(ak.flatten(mu.pt[good])))


@pytest.mark.parametrize("xp", [xps, np], ids=["array-api-strict", "numpy"])
def test_leading_pair_mass_matches_four_vector_sum(xp):
    mu = muons()
    got = np.asarray(kernels.leading_pair_mass(*(flat_of(mu, f, xp) for f in ("pt", "eta", "phi", "mass")),
                                               offsets_of(mu, xp)))
    expected = reference_pair_mass(mu)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got).sum() > 1000 and (~np.isnan(got)).sum() > 1000
    np.testing.assert_allclose(got[~np.isnan(got)], expected[~np.isnan(expected)], rtol=1e-9)
    # and highrate's own CPU helper, bit for bit where it uses the same formula in the same order
    np.testing.assert_array_equal(got, cpu_leading_pair_mass(mu))


@pytest.mark.parametrize("xp", [xps, np], ids=["array-api-strict", "numpy"])
def test_delta_r(xp):
    rng = np.random.default_rng(1)
    eta1, eta2 = rng.uniform(-3, 3, (2, 5000))
    phi1, phi2 = rng.uniform(-math.pi, math.pi, (2, 5000))
    got = np.asarray(kernels.delta_r(*(xp.asarray(a) for a in (eta1, phi1, eta2, phi2))))
    dphi = np.angle(np.exp(1j * (phi1 - phi2)))  # an independent wrap into [-pi, pi]
    np.testing.assert_allclose(got, np.hypot(eta1 - eta2, dphi), rtol=1e-12)


@pytest.mark.parametrize("xp", [xps, np], ids=["array-api-strict", "numpy"])
@pytest.mark.parametrize("weighted", [True, False])
def test_fill_regular_matches_boost_histogram(xp, weighted):
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(90, 15, 50_000), [np.nan, -np.inf, np.inf, 60.0, 120.0]])
    w = rng.normal(1.0, 0.3, x.size) if weighted else None
    got = np.asarray(kernels.fill_regular(xp.asarray(x), None if w is None else xp.asarray(w), 120, 60, 120))
    h = hist.Hist(hist.axis.Regular(120, 60, 120), storage=hist.storage.Weight())
    h.fill(x, weight=w)
    view = h.view(flow=True)
    np.testing.assert_allclose(got[:, 0], view.value, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got[:, 1], view.variance, rtol=1e-9, atol=1e-9)
    assert got[-1, 0] != 0 and got[0, 0] != 0  # NaN and +inf in overflow, -inf and below in underflow


def test_bin_sums_without_bincount_equal_bincount():
    """The sort-and-running-sum path (array-api-strict has no bincount) against np.bincount."""
    rng = np.random.default_rng(2)
    index = rng.integers(0, 50, 100_000)
    w = rng.exponential(2.0, index.size)
    sumw, sumw2 = kernels.bin_sums(xps.asarray(index), xps.asarray(w), 53)
    np.testing.assert_allclose(np.asarray(sumw), np.bincount(index, w, 53), rtol=1e-11)
    np.testing.assert_allclose(np.asarray(sumw2), np.bincount(index, w * w, 53), rtol=1e-11)
    assert np.asarray(sumw)[50:].sum() == 0


def test_variable_bins():
    edges = np.array([0.0, 10.0, 25.0, 60.0])
    x = np.array([-1.0, 0.0, 9.99, 10.0, 59.0, 60.0, np.nan])
    got = np.asarray(kernels.variable_bins(xps.asarray(x), xps.asarray(edges)))
    axis = hist.axis.Variable(edges)
    assert got.tolist() == [0, 1, 1, 2, 3, 4, 4]
    assert got.tolist()[:-1] == [int(axis.index(v)) + 1 for v in x[:-1]]


def test_hot_stages_on_cpu_equal_awkward():
    mu = muons()
    good = mu[mu.tightId & (mu.pfRelIso04_all < 0.15) & (mu.pt > 15) & (abs(mu.eta) < 2.4)]
    got = hot.select_objects(mu, "cpu", pt_min=15, abs_eta_max=2.4, flags=("tightId",), below={"pfRelIso04_all": 0.15})
    assert ak.to_list(got.pt) == ak.to_list(good.pt)
    np.testing.assert_array_equal(hot.leading_pair_mass(good, "cpu"), cpu_leading_pair_mass(good))
    sums = hot.fill_regular(np.asarray(cpu_leading_pair_mass(good)), None, 120, 60, 120, "cpu")
    assert sums[1:-1, 0].sum() == np.count_nonzero((cpu_leading_pair_mass(good) >= 60)
                                                   & (cpu_leading_pair_mass(good) < 120))


# ---------------------------------------------------------------- the GPU twin (CuPy), where there is one


@needs_gpu
def test_gpu_kernels_equal_cpu_twin():
    import array_api_compat.cupy as xcp

    mu = muons(200_000)
    fields = ("pt", "eta", "phi", "mass")
    cpu = kernels.leading_pair_mass(*(flat_of(mu, f, np) for f in fields), offsets_of(mu, np))
    gpu = kernels.leading_pair_mass(*(flat_of(mu, f, xcp) for f in fields), offsets_of(mu, xcp)).get()
    assert np.array_equal(np.isnan(cpu), np.isnan(gpu))
    np.testing.assert_allclose(gpu[~np.isnan(gpu)], cpu[~np.isnan(cpu)], rtol=1e-6)
    x, w = np.nan_to_num(cpu, nan=-1.0), np.random.default_rng(0).normal(1, 0.2, cpu.size)
    np.testing.assert_allclose(hot.fill_regular(x, w, 120, 60, 120, "gpu"), hot.fill_regular(x, w, 120, 60, 120, "cpu"),
                               rtol=1e-6)
    assert np.array_equal(hot.fill_regular(x, None, 120, 60, 120, "gpu"), hot.fill_regular(x, None, 120, 60, 120, "cpu"))


@needs_gpu
def test_gpu_selection_equals_cpu_twin():
    mu = muons(200_000)
    cuts = {"pt_min": 15, "abs_eta_max": 2.4, "flags": ("tightId",), "below": {"pfRelIso04_all": 0.15}}
    assert ak.to_list(ak.num(hot.select_objects(mu, "gpu", **cuts))) == ak.to_list(ak.num(hot.select_objects(mu, "cpu", **cuts)))
    gpu_mask, cpu_mask = hot.object_mask(mu, "gpu", **cuts), hot.object_mask(mu, "cpu", **cuts)
    assert ak.all(gpu_mask == cpu_mask)


# ---------------------------------------------------------------- device selection


def test_device_rule():
    assert resolve("cpu", gpus=2) == "cpu"
    assert resolve("auto", gpus=0) == "cpu"
    assert resolve("auto", gpus=1) == "gpu"
    assert resolve("gpu", gpus=1) == "gpu"
    with pytest.raises(ConfigError, match="device 'gpu' was asked for, but no GPU"):
        resolve("gpu", gpus=0)
    with pytest.raises(ConfigError, match="'tpu' is not one of auto, cpu, gpu"):
        resolve("tpu")
    assert dask_resources("gpu") == {"GPU": 1} and dask_resources("auto") is None


def test_run_options_device():
    assert highrate.RunOptions().device == "auto"
    with pytest.raises(ConfigError, match="'fpga' is not one of"):
        highrate.RunOptions(device="fpga")


@pytest.mark.skipif(gpu_count() > 0, reason="this machine has a GPU: --device gpu is not an error here")
def test_cli_device_gpu_without_gpu_fails_clearly(sample, zmumu_path, tmp_path, capsys):
    from highrate.cli.main import main

    code = main(["run", str(zmumu_path), "--datasets", str(sample), "--output", str(tmp_path / "out"),
                 "--device", "gpu", "--no-progress"])
    assert code != 0
    assert "device 'gpu' was asked for" in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.json").exists()  # failed before reading anything


# ---------------------------------------------------------------- the registry and stages files


def test_decorator_registers_versions_and_binds_by_device():
    calls: list[str] = []

    @stage("devtest::pick")
    def pick(events, params):
        calls.append("cpu")
        return events * 2

    @stage("devtest::pick", device="gpu")
    def pick_gpu(events, params):
        calls.append("gpu")
        return events * 2

    found = lookup("devtest::pick", "test")
    assert found.implementations == {"cpu": pick, "gpu": pick_gpu}
    assert pick(3, {}) == 6 and calls == ["cpu"]  # the decorator returns the function itself
    times = StageTimes()
    assert found.bind("gpu", times)(5, {}) == 10 and calls[-1] == "gpu"
    assert found.bind("cpu", times)(5, {}) == 10 and calls[-1] == "cpu"
    assert found(1, {}) == 2 and calls[-1] == "cpu"  # called as it is: the CPU version (tracing)
    assert set(times.stages["devtest::pick"]) == {"cpu", "gpu"}
    assert times.stages["devtest::pick"]["gpu"]["calls"] == 1 and times.stages["devtest::pick"]["cpu"]["calls"] == 1


def test_cpu_only_stage_runs_on_cpu_when_gpu_asked():
    @stage("devtest::cpu_only")
    def only(events):
        return events + 1

    times = StageTimes()
    assert lookup("devtest::cpu_only", "test").bind("gpu", times)(1) == 2
    assert list(times.stages["devtest::cpu_only"]) == ["cpu"]


def test_gpu_signature_must_match_cpu():
    @stage("devtest::sig")
    def cpu_version(events, params):
        return events

    def gpu_version(events):
        return events

    with pytest.raises(ConfigError, match=r"stage 'devtest::sig': the gpu version .*gpu_version\(events\) must take"):
        stage("devtest::sig", device="gpu")(gpu_version)


def test_unknown_stage_and_missing_cpu_version_name_the_entry():
    @stage("devtest::gpu_only", device="gpu")
    def gpu_only(events):
        return events

    with pytest.raises(ConfigError, match=r"analysis 'a': object 'X' names the stage 'devtest::picc'.*Did you mean 'devtest::pick'"):
        stage("devtest::pick")(lambda events, params: events)
        highrate.Analysis(name="a", objects={"X": "devtest::picc"})
    with pytest.raises(ConfigError, match="'devtest::gpu_only' has a gpu version but no cpu version"):
        highrate.Analysis(name="a", quantities={"q": "devtest::gpu_only"})
    with pytest.raises(ConfigError, match="names the stage 'devtest::cpu_only': use it in an Analysis"):
        highrate.Cut("c", "devtest::cpu_only")(None, {})


STAGES_MODULE = '''
import awkward as ak

def muon_good(events):
    mu = events.Muon
    return mu[mu.tightId & (mu.pfRelIso04_all < 0.15) & (mu.pt > 15) & (abs(mu.eta) < 2.4)]

def muon_good_gpu(events):
    from highrate.devices import hot
    return hot.select_objects(events.Muon, "gpu", pt_min=15, abs_eta_max=2.4, flags=("tightId",),
                              below={"pfRelIso04_all": 0.15})

def mll(events):
    from highrate.kinematics import leading_pair_mass
    return leading_pair_mass(events.MuonGood)

def mll_gpu(events):
    from highrate.devices import hot
    return hot.leading_pair_mass(events.MuonGood, "gpu")

def two_muons(events):
    return ak.num(events.MuonGood) == 2

def wrong_gpu(events, params):
    return events
'''


@pytest.fixture
def stages_file(tmp_path):
    (tmp_path / "devstages_mod.py").write_text(STAGES_MODULE)
    path = tmp_path / "stages.yaml"
    path.write_text(textwrap.dedent("""
        zmumu::muon_good:
          cpu: devstages_mod.muon_good
          gpu: devstages_mod.muon_good_gpu
        zmumu::mll:
          cpu: devstages_mod:mll
          gpu: devstages_mod:mll_gpu
        zmumu::two_muons:
          cpu: devstages_mod.two_muons
    """))
    return path


def test_load_stages_file(stages_file):
    found = load_stages(stages_file, register_them=False)
    assert sorted(found) == ["zmumu::mll", "zmumu::muon_good", "zmumu::two_muons"]
    assert all(isinstance(s, Stage) for s in found.values())
    assert found["zmumu::mll"].implementations["gpu"].__name__ == "mll_gpu"
    assert list(found["zmumu::two_muons"].implementations) == ["cpu"]


@pytest.mark.parametrize(("entry", "message"), [
    ("zmumu::x:\n  cpu: devstages_mod.nope\n", r"stage 'zmumu::x', cpu: module 'devstages_mod' has no 'nope'"),
    ("zmumu::x:\n  cpu: no_such_module_xyz.f\n", r"stage 'zmumu::x', cpu: cannot import module 'no_such_module_xyz'"),
    ("zmumu::x:\n  gpu: devstages_mod.mll_gpu\n", r"stage 'zmumu::x': has no 'cpu' version"),
    ("zmumu::x:\n  cpu: devstages_mod.mll\n  tpu: devstages_mod.mll\n", r"stage 'zmumu::x': unknown device 'tpu'"),
    ("zmumu::x:\n  cpu: devstages_mod.mll\n  gpu: devstages_mod.wrong_gpu\n",
     r"stage 'zmumu::x': the gpu version devstages_mod.wrong_gpu\(events, params\) must take what the cpu version"),
    ("muon_good:\n  cpu: devstages_mod.mll\n", r"stage 'muon_good': a stage name reads 'namespace::stage'"),
])
def test_stages_file_errors_name_the_entry(tmp_path, stages_file, entry, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(entry)
    with pytest.raises(ConfigError, match=message) as err:
        load_stages(bad, register_them=False)
    assert "bad.yaml" in str(err.value)


# ---------------------------------------------------------------- runs with registered stages


def zmumu_with_stages(stages_file, **extra):
    from highrate import Analysis, Axis, Cut, Histogram, Weight

    return Analysis(
        name="zmumu_devices",
        skim=[Cut("HLT_IsoMu24", lambda ev: ev.HLT.IsoMu24)],
        objects={"MuonGood": "zmumu::muon_good"},
        preselection=[Cut("two_muons", "zmumu::two_muons")],
        quantities={"mll": "zmumu::mll"},
        weights=[Weight("genWeight", lambda ev: ev.genWeight)],
        histograms=[Histogram("mll", Axis("mll", 120, 60, 120)),
                    Histogram("MuonGood_pt_1", Axis("MuonGood.pt[0]", 100, 0, 200))],
        stages=stages_file, **extra,
    )


def muon_good(events):
    """The CPU twin of the stages file's muon selection, as a plain function."""
    mu = events.Muon
    return mu[mu.tightId & (mu.pfRelIso04_all < 0.15) & (mu.pt > 15) & (abs(mu.eta) < 2.4)]


def zmumu_plain():
    from highrate import Analysis, Axis, Cut, Histogram, Weight
    from highrate.kinematics import leading_pair_mass

    return Analysis(
        name="zmumu_plain",
        skim=[Cut("HLT_IsoMu24", lambda ev: ev.HLT.IsoMu24)],
        objects={"MuonGood": muon_good},
        preselection=[Cut("two_muons", lambda ev: ak.num(ev.MuonGood) == 2)],
        quantities={"mll": lambda ev: leading_pair_mass(ev.MuonGood)},
        weights=[Weight("genWeight", lambda ev: ev.genWeight)],
        histograms=[Histogram("mll", Axis("mll", 120, 60, 120)),
                    Histogram("MuonGood_pt_1", Axis("MuonGood.pt[0]", 100, 0, 200))],
    )


def test_analysis_resolves_stage_names_and_hashes_their_code(stages_file):
    a = zmumu_with_stages(stages_file)
    assert isinstance(a.objects["MuonGood"], Stage) and isinstance(a.preselection[0].function, Stage)
    assert a.objects["MuonGood"].implementations["gpu"].__name__ == "muon_good_gpu"
    assert {f.__name__ for f in a.functions()} >= {"muon_good", "muon_good_gpu", "mll", "mll_gpu", "two_muons"}
    assert a.hash() == zmumu_with_stages(stages_file).hash()
    other = stages_file.with_name("other.yaml")
    other.write_text(stages_file.read_text().replace("devstages_mod:mll_gpu", "devstages_mod:muon_good_gpu"))
    assert zmumu_with_stages(other).hash() != a.hash()  # another GPU version: another definition
    bound = a.on_device("gpu", StageTimes())
    assert bound.objects["MuonGood"].__wrapped__.__name__ == "muon_good_gpu"
    assert bound.preselection[0].function.__wrapped__.__name__ == "two_muons"  # no GPU version: the CPU one
    assert zmumu_plain().on_device("gpu") is not None


def test_run_with_registered_stages_equals_plain_analysis(sample, stages_file, tmp_path):
    from highrate.outputs.write import write_outputs

    datasets = highrate.load_datasets(sample)
    options = highrate.RunOptions(chunk_size=6000, device="cpu")
    staged = highrate.run(zmumu_with_stages(stages_file), datasets, options=options)
    plain = highrate.run(zmumu_plain(), datasets, options=options)
    assert staged.result.cutflow == plain.result.cutflow
    assert staged.result.cutflow["DYJetsToLL_M-50"]["presel"] > 1000
    for key, h in plain.result.histograms.items():
        other = staged.result.histograms[key]
        np.testing.assert_array_equal(other.view(flow=True).value, h.view(flow=True).value)
        np.testing.assert_array_equal(other.view(flow=True).variance, h.view(flow=True).variance)
    report = write_outputs(tmp_path / "out", staged, zmumu_with_stages(stages_file), options)
    assert report["options"]["device"] == "cpu"
    assert set(report["stages"]) == {"zmumu::muon_good", "zmumu::mll", "zmumu::two_muons"}
    for name, by_device in report["stages"].items():
        assert list(by_device) == ["cpu"], name
        assert by_device["cpu"]["calls"] == staged.chunks  # once per chunk: no shape variation
        assert by_device["cpu"]["seconds"] > 0 and by_device["cpu"]["to_host_s"] == 0


@needs_gpu
def test_gpu_run_equals_cpu_run(sample, stages_file):
    datasets = highrate.load_datasets(sample)
    # the CPU twin: the same analysis written with plain functions, which run nowhere but the CPU
    cpu = highrate.run(zmumu_plain(), datasets, options=highrate.RunOptions(chunk_size=6000, device="cpu"))
    gpu = highrate.run(zmumu_with_stages(stages_file), datasets,
                       options=highrate.RunOptions(chunk_size=6000, device="gpu"))
    assert gpu.result.cutflow == cpu.result.cutflow
    for key, h in cpu.result.histograms.items():
        g = gpu.result.histograms[key].view(flow=True)
        np.testing.assert_allclose(g.value, h.view(flow=True).value, rtol=1e-6)
        np.testing.assert_allclose(g.variance, h.view(flow=True).variance, rtol=1e-6)
    stages = gpu.result.stages
    assert "gpu" in stages["zmumu::muon_good"] and list(stages["zmumu::two_muons"]) == ["cpu"]


def test_dask_gpu_tasks_go_to_workers_declaring_gpu():
    from highrate.execution.executors.dask import DaskExecutor

    ex = DaskExecutor(workers=1, resources={"GPU": 1})
    try:
        assert sorted(ex.map_unordered(abs, [-1, -2, 3], resources={"GPU": 1})) == [1, 2, 3]
        assert ex.client.scheduler_info()["workers"].popitem()[1]["resources"] == {"GPU": 1}
    finally:
        ex.close()
    plain = DaskExecutor(workers=1)
    try:
        with pytest.raises(ConfigError, match="no worker declares them: start GPU workers with `dask worker SCHEDULER --resources GPU=1`"):
            list(plain.map_unordered(abs, [1], resources={"GPU": 1}))
        assert list(plain.map_unordered(abs, [-4])) == [4]
    finally:
        plain.close()


# ---------------------------------------------------------------- histogram fills as stages


@pytest.mark.parametrize("xp", [xps, np], ids=["array-api-strict", "numpy"])
def test_fill_of_two_axes_matches_boost_histogram(xp):
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.normal(90, 20, 30_000), [np.nan, 60.0, 120.0, -np.inf]])
    y = np.concatenate([rng.exponential(30, 30_000), [5.0, np.nan, 10.0, 250.0]])
    w = rng.normal(1.0, 0.3, x.size)
    edges = np.array([0.0, 10.0, 25.0, 60.0, 200.0])
    got = np.asarray(kernels.fill((xp.asarray(x), xp.asarray(y)), xp.asarray(w), ((30, 60.0, 120.0), xp.asarray(edges))))
    h = hist.Hist(hist.axis.Regular(30, 60, 120), hist.axis.Variable(edges), storage=hist.storage.Weight())
    h.fill(x, y, weight=w)
    view = h.view(flow=True)
    assert got.shape == (32, 6, 2)
    np.testing.assert_allclose(got[..., 0], view.value, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got[..., 1], view.variance, rtol=1e-9, atol=1e-9)


def zmumu_filled_by(fill):
    """Z→μμ with two disjoint categories and one of all events, a varied weight, and histograms of
    a regular axis, a variable per-object axis and two axes, each filled by ``fill``."""
    from dataclasses import replace

    from highrate import Axis, Cut, Histogram, Weight

    def npv(events):
        n = events.PV.npvsGood
        return 1.0 + 0.01 * n, 1.0 + 0.02 * n, 1.0 - 0.005 * n

    plain = zmumu_plain()
    return replace(
        plain, name="zmumu_fills",
        categories={"all": [], "barrel": [Cut("barrel", lambda ev: abs(ev.MuonGood.eta[:, 0]) < 1.2)],
                    "endcap": [Cut("endcap", lambda ev: abs(ev.MuonGood.eta[:, 0]) >= 1.2)]},
        weights=[*plain.weights, Weight("npv", npv, varied=True)],
        histograms=[Histogram("mll", Axis("mll", 120, 60, 120), fill=fill),
                    Histogram("pt", Axis("MuonGood.pt", edges=(0.0, 20.0, 30.0, 45.0, 80.0, 200.0)), fill=fill),
                    Histogram("mll_pt1", [Axis("mll", 30, 60, 120), Axis("MuonGood.pt[0]", 20, 0, 200)],
                              categories=["barrel", "endcap"], fill=fill)],
    )


def test_run_with_fill_stage_equals_engine_fill(sample, tmp_path):
    from highrate.outputs.write import write_outputs

    datasets = highrate.load_datasets(sample)
    options = highrate.RunOptions(chunk_size=6000, device="cpu")
    staged = highrate.run(zmumu_filled_by("highrate::fill"), datasets, options=options)
    engine = highrate.run(zmumu_filled_by(None), datasets, options=options)
    assert staged.result.cutflow == engine.result.cutflow
    assert set(staged.result.histograms) == set(engine.result.histograms)
    assert {k[3] for k in engine.result.histograms} == {"nominal", "npvUp", "npvDown"}
    for key, h in engine.result.histograms.items():
        got = staged.result.histograms[key].view(flow=True)
        np.testing.assert_allclose(got.value, h.view(flow=True).value, rtol=1e-12, err_msg=str(key))
        np.testing.assert_allclose(got.variance, h.view(flow=True).variance, rtol=1e-12, err_msg=str(key))
    assert engine.result.histograms[("pt", "DYJetsToLL_M-50", "all", "nominal")].sum().value > 1000
    report = write_outputs(tmp_path / "out", staged, zmumu_filled_by("highrate::fill"), options)
    fills = report["stages"]["highrate::fill"]
    assert list(fills) == ["cpu"] and fills["cpu"]["seconds"] > 0
    # one call per category and variation: 3 categories x 2 histograms + 2 x 1 = 8 per variation;
    # 4 chunks of MC (nominal, npvUp, npvDown) and 4 of data (nominal)
    assert staged.chunks == 8
    assert fills["cpu"]["calls"] == 4 * 3 * 8 + 4 * 8


def test_fill_stage_from_a_stages_file(sample, tmp_path):
    """A fill of the analysis' own, with both versions named in a stages file."""
    from dataclasses import replace

    (tmp_path / "devfills_mod.py").write_text(textwrap.dedent("""
        import numpy as np

        def counts(values, weights, histogram):  # unweighted, by np.histogram over the inner bins
            axis = histogram.axes[0]
            inner, _ = np.histogram(values[0], bins=axis.bins, range=(axis.start, axis.stop))
            x = np.asarray(values[0])
            out = np.zeros((axis.bins + 2, 2))
            out[1:-1, 0] = out[1:-1, 1] = inner
            out[0, :] = np.count_nonzero(x < axis.start)
            out[-1, :] = np.count_nonzero(~(x <= axis.stop))  # NaN too
            return out

        def counts_gpu(values, weights, histogram):
            return counts(values, weights, histogram)
    """))
    stages = tmp_path / "fills.yaml"
    stages.write_text("zmumu::counts: {cpu: devfills_mod.counts, gpu: devfills_mod.counts_gpu}\n")
    base = zmumu_filled_by(None)
    analysis = replace(base, stages=stages, weights=(), categories={"all": []},
                       histograms=[highrate.Histogram("mll", highrate.Axis("mll", 120, 60, 120), fill="zmumu::counts")])
    datasets = highrate.load_datasets(sample)
    outcome = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=6000, device="cpu"))
    reference = highrate.run(replace(analysis, histograms=[highrate.Histogram("mll", highrate.Axis("mll", 120, 60, 120))]),
                             datasets, options=highrate.RunOptions(chunk_size=6000, device="cpu"))
    for key, h in reference.result.histograms.items():
        assert h.sum(flow=True).value > 1000
        np.testing.assert_array_equal(outcome.result.histograms[key].values(flow=True), h.values(flow=True))
    assert outcome.result.stages["zmumu::counts"]["cpu"]["calls"] == outcome.chunks


def test_fill_errors_name_the_histogram_and_the_code():
    with pytest.raises(ConfigError, match=r"histogram 'mll', fill: 'zmumu::nofill' is not registered|names the stage 'zmumu::nofill'"):
        zmumu_filled_by("zmumu::nofill")
    with pytest.raises(ConfigError, match=r"histogram 'mll', fill: 'no_stage' is neither a registered stage"):
        zmumu_filled_by("no_stage")
    with pytest.raises(ConfigError, match=r"histogram 'mll', fill: the function must take \(values, weights, histogram\)"):
        zmumu_filled_by(lambda values, weights: None)
    with pytest.raises(ConfigError, match="fill must name a stage"):
        highrate.Histogram("h", highrate.Axis("mll", 10, 0, 1), fill=3)


def test_fill_returning_the_wrong_shape_is_the_users_bug(sample):
    from highrate.errors import UserCodeError

    def flat_fill(values, weights, histogram):  # forgets the flow bins
        return np.zeros((histogram.axes[0].bins, 2))

    datasets = highrate.load_datasets(sample)
    with pytest.raises(UserCodeError) as err:
        highrate.run(zmumu_filled_by(flat_fill), datasets, options=highrate.RunOptions(chunk_size=6000))
    text = str(err.value)
    assert "histogram 'mll', fill 'test_fill_returning_the_wrong_shape_is_the_users_bug.<locals>.flat_fill'" in text
    assert "returned an array of shape (120, 2)" in text and "shape (122, 2)" in text
    assert "test_devices.py:" in text


@needs_gpu
def test_gpu_fill_stage_equals_cpu_fill(sample):
    datasets = highrate.load_datasets(sample)
    cpu = highrate.run(zmumu_filled_by(None), datasets, options=highrate.RunOptions(chunk_size=6000, device="cpu"))
    gpu = highrate.run(zmumu_filled_by("highrate::fill"), datasets,
                       options=highrate.RunOptions(chunk_size=6000, device="gpu"))
    for key, h in cpu.result.histograms.items():
        g = gpu.result.histograms[key].view(flow=True)
        np.testing.assert_allclose(g.value, h.view(flow=True).value, rtol=1e-6)
        np.testing.assert_allclose(g.variance, h.view(flow=True).variance, rtol=1e-6)
    stages = gpu.result.stages
    assert list(stages["highrate::fill"]) == ["gpu"]


def test_fill_is_part_of_the_definition_hash():
    def fill_a(values, weights, histogram):
        return 1

    def fill_b(values, weights, histogram):
        return 2

    hashes = {zmumu_filled_by(f).hash() for f in (None, "highrate::fill", fill_a, fill_b)}
    assert len(hashes) == 4
    assert zmumu_filled_by(fill_a).hash() == zmumu_filled_by(fill_a).hash()
    assert zmumu_filled_by(fill_a).reads_key() == zmumu_filled_by(None).reads_key()  # reads the same branches

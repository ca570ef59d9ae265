#!/usr/bin/env python
"""By-hand: the hot stages and the Z→μμ chunk pipeline on the CPU and, where there is one, the GPU.

Per chunk size (events; about 2 muons per event): the object selection mask, the leading-pair
invariant mass and a weighted 120-bin fill (sums and squared sums), each

- ``cpu awkward``: highrate's CPU helpers (awkward masks, ``kinematics.leading_pair_mass``,
  ``np.bincount`` as ``engine/binning.py`` fills);
- ``cpu kernel``: the array-API kernel of ``highrate.devices.kernels`` on numpy;
- ``gpu kernel``: the same kernel on CuPy with its inputs on the GPU already (no transfer);
- ``gpu + transfer``: host arrays in, host arrays out (``highrate.devices.hot``), as a GPU stage
  version runs inside a CPU pipeline.

Then the whole Z→μμ chunk pipeline (``highrate.run`` over a generated sample, one chunk per file,
for each ``--pipeline-events``; events/s of the whole chunk and of its stages after decompression)
with registered stages for the muon selection and the pair mass (and on the GPU the fill
``highrate::fill``; on the CPU the engine's own), ``--device cpu`` and ``gpu``,
and the per-stage costs the run reports. Without CuPy and a GPU the GPU rows say why they are
missing. Best of ``--repeat`` runs; numbers in ms.

Run: python benchmarks/bench_devices.py [--sizes 100000 500000 1000000 2000000] [--repeat 5]
     [--pipeline-events 100000 1000000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from highrate.devices import hot, kernels
from highrate.devices.select import gpu_count, no_gpu_reason
from highrate.devices.transfer import flat, namespace
from highrate.kinematics import leading_pair_mass

CUTS = {"pt_min": 15.0, "abs_eta_max": 2.4, "flags": ("tightId",), "below": {"pfRelIso04_all": 0.15}}


def muons(n_events: int, seed: int = 1) -> ak.Array:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(2.0, n_events)
    n = int(counts.sum())
    return ak.unflatten(ak.zip({
        "pt": (rng.exponential(25, n) + 3).astype(np.float32), "eta": rng.uniform(-3, 3, n).astype(np.float32),
        "phi": rng.uniform(-math.pi, math.pi, n).astype(np.float32), "mass": np.full(n, 0.10566, np.float32),
        "pfRelIso04_all": rng.exponential(0.1, n).astype(np.float32), "tightId": rng.random(n) < 0.8,
    }), counts)


def best_ms(function: Callable[[], Any], repeat: int, sync: Callable[[], None] = lambda: None) -> float:
    function()
    sync()  # the first call compiles (CuPy) and warms caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        function()
        sync()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def stages(mu: ak.Array, device: str, repeat: int, sync: Callable[[], None]) -> dict[str, dict[str, float]]:
    """Each hot stage's best time: kernel alone (inputs on the device) and with transfers."""
    xp = namespace(device)
    parts = {f: flat(mu[f], device) for f in ("pt", "eta", "phi", "mass", "pfRelIso04_all", "tightId")}
    offsets = parts["pt"][1]
    values = np.nan_to_num(leading_pair_mass(mu), nan=-1.0)
    weights = np.random.default_rng(0).normal(1, 0.2, values.size)
    x, w = xp.asarray(values), xp.asarray(weights)
    return {
        "mask": {
            "kernel": best_ms(lambda: kernels.object_mask(parts["pt"][0], parts["eta"][0], pt_min=15, abs_eta_max=2.4,
                                                          also=(parts["tightId"][0], parts["pfRelIso04_all"][0] < 0.15)),
                              repeat, sync),
            "with_transfer": best_ms(lambda: hot.object_mask(mu, device, **CUTS), repeat, sync),
        },
        "pair_mass": {
            "kernel": best_ms(lambda: kernels.leading_pair_mass(*(parts[f][0] for f in ("pt", "eta", "phi", "mass")),
                                                                offsets), repeat, sync),
            "with_transfer": best_ms(lambda: hot.leading_pair_mass(mu, device), repeat, sync),
        },
        "fill": {
            "kernel": best_ms(lambda: kernels.fill_regular(x, w, 120, 60, 120), repeat, sync),
            "with_transfer": best_ms(lambda: hot.fill_regular(values, weights, 120, 60, 120, device), repeat, sync),
        },
    }


def awkward_baseline(mu: ak.Array, repeat: int) -> dict[str, float]:
    """highrate's CPU path for the same stages."""
    values = np.nan_to_num(leading_pair_mass(mu), nan=-1.0)
    weights = np.random.default_rng(0).normal(1, 0.2, values.size)

    def fill() -> None:
        index = kernels.regular_bins(values, 120, 60, 120)
        np.bincount(index, weights, 122), np.bincount(index, weights * weights, 122)

    return {
        "mask": best_ms(lambda: mu.tightId & (mu.pfRelIso04_all < 0.15) & (mu.pt > 15) & (abs(mu.eta) < 2.4), repeat),
        "pair_mass": best_ms(lambda: leading_pair_mass(mu), repeat),
        "fill": best_ms(fill, repeat),
    }


STAGES_MODULE = '''
import awkward as ak
from highrate.devices import hot
from highrate.kinematics import leading_pair_mass

CUTS = dict(pt_min=15, abs_eta_max=2.4, flags=("tightId",), below={"pfRelIso04_all": 0.15})

def muon_good(events):
    mu = events.Muon
    return mu[mu.tightId & (mu.pfRelIso04_all < 0.15) & (mu.pt > 15) & (abs(mu.eta) < 2.4)]

def muon_good_gpu(events):
    return hot.select_objects(events.Muon, "gpu", **CUTS)

def mll(events):
    return leading_pair_mass(events.MuonGood)

def mll_gpu(events):
    return hot.leading_pair_mass(events.MuonGood, "gpu")
'''


def pipeline(events: int, devices: list[str], folder: Path) -> dict[str, Any]:
    """The Z→μμ chunk pipeline, one chunk of ``events``, per device: events/s and stage costs."""
    import highrate
    from highrate import Analysis, Axis, Cut, Histogram, Weight
    from highrate.testing import generate_dataset_set

    sample = generate_dataset_set(folder / f"sample{events}", events=events, files=1, seed=3)
    (folder / "benchstages_mod.py").write_text(STAGES_MODULE)
    (folder / "stages.yaml").write_text("bench::muon_good: {cpu: benchstages_mod.muon_good, gpu: benchstages_mod.muon_good_gpu}\n"
                                        "bench::mll: {cpu: benchstages_mod.mll, gpu: benchstages_mod.mll_gpu}\n")
    def analysis(device: str) -> Analysis:  # each device fills its best way: the engine's bincount, the GPU kernel
        return Analysis(
            name="zmumu_devices", stages=folder / "stages.yaml",
            skim=[Cut("HLT_IsoMu24", lambda ev: ev.HLT.IsoMu24)],
            objects={"MuonGood": "bench::muon_good"}, quantities={"mll": "bench::mll"},
            preselection=[Cut("two_muons", lambda ev: ak.num(ev.MuonGood) == 2)],
            weights=[Weight("genWeight", lambda ev: ev.genWeight)],
            histograms=[Histogram("mll", Axis("mll", 120, 60, 120), fill="highrate::fill" if device == "gpu" else None)],
        )

    datasets = highrate.load_datasets(sample)[:1]
    out: dict[str, Any] = {}
    for device in devices:
        options = highrate.RunOptions(chunk_size=events, device=device, cache=False)  # every chunk computed
        highrate.run(analysis(device), datasets, options=options)  # warm: trace cached, files described
        outcome = highrate.run(analysis(device), datasets, options=options)
        costs = outcome.result.stages
        after_read = sum(s for k, s in outcome.result.timings.items() if k not in ("read", "merge"))
        out[device] = {"events_per_s": events / outcome.timings["processing_s"],
                       "after_read_events_per_s": events / after_read,
                       "stages": {n: {d: {k: round(v, 6) for k, v in c.items()} for d, c in by.items()}
                                  for n, by in costs.items()}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 500_000, 1_000_000, 2_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pipeline-events", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="events of the pipeline's one chunk, one run per size")
    parser.add_argument("--json", default=None, help="write the numbers here too")
    args = parser.parse_args()
    gpu = gpu_count() > 0
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if gpu:
        import cupy

        sync = cupy.cuda.Device().synchronize
    else:
        print(f"GPU rows skipped: {no_gpu_reason()}")
    results: dict[str, Any] = {"sizes": {}}
    print(f"{'events':>9} {'stage':>9} {'cpu awkward':>12} {'cpu kernel':>11} {'gpu kernel':>11} {'gpu+transfer':>13}  (ms)")
    for size in args.sizes:
        mu = muons(size)
        row = {"cpu_awkward": awkward_baseline(mu, args.repeat), "cpu": stages(mu, "cpu", args.repeat, lambda: None)}
        if gpu:
            row["gpu"] = stages(mu, "gpu", args.repeat, sync)
        results["sizes"][size] = row
        for name in ("mask", "pair_mass", "fill"):
            g = row.get("gpu", {}).get(name, {})
            print(f"{size:>9} {name:>9} {row['cpu_awkward'][name]:>12.2f} {row['cpu'][name]['kernel']:>11.2f} "
                  f"{g.get('kernel', float('nan')):>11.2f} {g.get('with_transfer', float('nan')):>13.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        results["pipeline"] = {n: pipeline(n, ["cpu", "gpu"] if gpu else ["cpu"], Path(tmp)) for n in args.pipeline_events}
    for n, by_device in results["pipeline"].items():
        for device, p in by_device.items():
            print(f"pipeline {n:>9} {device}: {p['events_per_s'] / 1e6:.2f} M events/s, after decompression "
                  f"{p['after_read_events_per_s'] / 1e6:.2f} M events/s; stages: {json.dumps(p['stages'])}")
        if "gpu" in by_device:
            print(f"pipeline {n:>9} gpu / cpu after decompression: "
                  f"{by_device['gpu']['after_read_events_per_s'] / by_device['cpu']['after_read_events_per_s']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

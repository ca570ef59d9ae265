#!/usr/bin/env python
"""By-hand benchmark of the two engines on the same files: the Z→μμ analysis written for
highrate's columnar engine (``examples/zmumu/analysis_nominal.py``) and for RDataFrame
(``examples/zmumu_rdf/analysis.py``), each run by ``highrate run`` on the MC sample of
``bench_zmumu.py`` (generated once into ``--workdir``, page-cached before measuring).

For each compression, engine and worker count (1: ``--executor sequential``; 2: ``--executor
processes --workers 2``), ``--repeat`` fresh processes with highrate's cache off
(``HIGHRATE_CACHE=off``: every run computes). Reported, medians over the repetitions:

* ``whole command``: the wall time of the process, interpreter start, imports, ROOT's JIT and
  the outputs included;
* ``event loop``: for RDataFrame the seconds of its event loops (``report.json`` ``stages_s``
  ``event_loop``, summed over the files, so divided by the workers for a wall-time figure); for
  the columnar engine the seconds of the chunks' stages (read, skim, objects, ..., fill: the
  same work), divided by the workers likewise.

The two engines' histograms are compared each time (``mll`` sum of weights, relative difference).

    python benchmarks/bench_rdf.py --events 2000000 --files 4 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_zmumu import MC, generate, mc_files, warm_up  # noqa: E402

REPO = HERE.parent
ENGINES = {"columnar": REPO / "examples" / "zmumu" / "analysis_nominal.py",
           "rdataframe": REPO / "examples" / "zmumu_rdf" / "analysis.py"}
WORKERS = {1: ["--executor", "sequential"], 2: ["--executor", "processes", "--workers", "2"]}


def one_run(analysis: Path, datasets: Path, out: Path, workers: int) -> dict:
    """One whole command in a fresh process: wall time, the event loop's seconds, the mll sum."""
    cmd = [sys.executable, "-m", "highrate", "run", str(analysis), "--datasets", str(datasets),
           "--dataset", MC, "--output", str(out), "--no-progress", "--no-checkpoints", *WORKERS[workers]]
    env = {**os.environ, "HIGHRATE_CACHE": "off"}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    wall = time.perf_counter() - t0
    report = json.loads((out / "report.json").read_text())
    stages = report.get("stages_s", {})
    loop = stages["event_loop"] if "event_loop" in stages else sum(v for k, v in stages.items() if k != "merge")
    with (out / "histograms.pkl").open("rb") as f:
        hists = pickle.load(f)
    mll = sum(float(h.values().sum()) for (name, ds, _, var), h in hists.items()
              if (name, ds, var) == ("mll", MC, "nominal"))
    return {"wall_s": wall, "loop_s": loop / workers, "events": report["events"]["total"], "mll_sumw": mll}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--compressions", default="zstd,lzma")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "highrate-bench"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    comps = args.compressions.split(",")
    yamls = generate(workdir, args.events, args.files, comps, args.seed, jobs=os.cpu_count() or 1)
    found: dict[str, dict] = {}
    agreement = []
    print("| compression | engine | workers | whole command (s) | events/s | event loop (s) | events/s (loop) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for comp in comps:
        warm_up(mc_files(yamls[comp]))
        for workers in WORKERS:
            runs: dict[str, list[dict]] = {engine: [] for engine in ENGINES}
            for _ in range(args.repeat):  # engines interleaved: the machine's drift hits both
                for engine, analysis in ENGINES.items():
                    out = workdir / f"rdf-bench-{comp}-{engine}-{workers}"
                    runs[engine].append(one_run(analysis, yamls[comp], out, workers))
            for engine, rs in runs.items():
                wall = statistics.median(r["wall_s"] for r in rs)
                loop = statistics.median(r["loop_s"] for r in rs)
                n = rs[0]["events"]
                print(f"| {comp} | {engine} | {workers} | {wall:.2f} | {n / wall:,.0f} | {loop:.2f} | {n / loop:,.0f} |",
                      flush=True)
                found[f"{comp}/{engine}/{workers}"] = {"wall_s": wall, "loop_s": loop, "events": n,
                                                       "mll_sumw": rs[0]["mll_sumw"]}
            a, b = runs["columnar"][0]["mll_sumw"], runs["rdataframe"][0]["mll_sumw"]
            agreement.append(f"{comp}, {workers} worker(s): mll sum(w) columnar {a:.6e}, RDataFrame {b:.6e}, "
                             f"relative difference {abs(a - b) / abs(a):.1e}")
    print("\n" + "\n".join(agreement))
    if args.json:
        Path(args.json).write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()

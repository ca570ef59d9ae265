#!/usr/bin/env python
"""By-hand: the cost of the full systematic Z→μμ analysis per event against the nominal-only one.

Full = examples/zmumu/analysis.py: lumi mask, normalisation, pileup and muon ID/ISO scale
factors with up/down (3 varied weights = 6 weight variations), JES and JER up/down (4 shape
variations, objects re-run where they depend on jets), 5 categories. no_syst = the same
analysis with the corrections at their nominal values and no variations. Nominal =
examples/zmumu/analysis_nominal.py (one category, genWeight only). All run sequentially (one core) on the same MC files,
interleaved, best of ``--repeat``, each traced every time (the trace cache is off). Ratios are given
for the whole run and per event, i.e. for the chunks alone (without the file metadata and the
trace, which are paid once per run whatever the number of events).

Run: python benchmarks/bench_systematics.py [--events 2000000] [--workdir bench-data/systematics]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk-size", type=int, default=250_000)
    ap.add_argument("--workdir", default="bench-data/systematics")
    args = ap.parse_args()

    # every analysis traced in every run: no_syst is built in Python and is never cached, so a
    # remembered trace for the others would flatter them
    os.environ["HIGHRATE_CACHE"] = "off"
    import highrate
    from highrate.testing import generate_dataset_set

    work = Path(args.workdir)
    yaml_path = work / "datasets.yaml"
    if not yaml_path.exists():
        generate_dataset_set(work, events=args.events, files=args.files, seed=11, compression="zstd")
    mc = [d for d in highrate.load_datasets(yaml_path) if d.is_mc]
    import importlib.util
    import sys

    sys.path.insert(0, str(REPO / "examples/zmumu"))  # the example imports analysis_nominal
    spec = importlib.util.spec_from_file_location("zmumu_full", REPO / "examples/zmumu/analysis.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    analyses = {
        "nominal": highrate.load_analysis(REPO / "examples/zmumu/analysis_nominal.py"),
        "no_syst": module.without_systematics,
        "full": highrate.load_analysis(REPO / "examples/zmumu/analysis.py"),
    }
    options = highrate.RunOptions(chunk_size=args.chunk_size)
    best: dict[str, float] = {}  # the whole run
    chunks: dict[str, float] = {}  # the chunks alone: file metadata and tracing (once per run) left out
    for _ in range(args.repeat):
        for name, analysis in analyses.items():
            t0 = time.perf_counter()
            out = highrate.run(analysis, mc, options=options)
            wall = time.perf_counter() - t0
            per_run = out.timings["metadata_s"] + out.timings["plan_s"]
            best[name] = min(best.get(name, wall), wall)
            chunks[name] = min(chunks.get(name, wall), wall - per_run)
            n_hists = len(out.result.histograms)
    events = sum(c["total"] for c in out.result.counts.values())
    print(f"{'':8s} {'whole run':>28s}   {'chunks only':>28s}")
    for name, wall in best.items():
        print(f"{name:8s} {events / wall / 1e6:6.2f} M events/s ({wall:5.2f} s)   "
              f"{events / chunks[name] / 1e6:6.2f} M events/s ({chunks[name]:5.2f} s)   for {events:,} events")
    print(f"full histograms: {n_hists}")
    for other, label in (("no_syst", "same analysis without systematics"), ("nominal", "nominal-only example")):
        print(f"full / {label}: {best['full'] / best[other]:.2f}x whole run, "
              f"{chunks['full'] / chunks[other]:.2f}x per event (chunks only)")

if __name__ == "__main__":
    main()

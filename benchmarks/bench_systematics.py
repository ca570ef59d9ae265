#!/usr/bin/env python
"""By-hand: the cost of the full systematic Z→μμ analysis per event against the nominal-only one.

Full = examples/zmumu/analysis.py: lumi mask, normalisation, pileup and muon ID/ISO scale
factors with up/down (3 varied weights = 6 weight variations), JES and JER up/down (4 shape
variations, objects re-run where they depend on jets), 5 categories. no_syst = the same
analysis with the corrections at their nominal values and no variations. Nominal =
examples/zmumu/analysis_nominal.py (one category, genWeight only). Both run sequentially (one core) on the same MC files,
interleaved, best of ``--repeat``; the ratio is of processing time per event.

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
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, analysis in analyses.items():
            t0 = time.perf_counter()
            out = highrate.run(analysis, mc, options=options)
            wall = time.perf_counter() - t0
            best[name] = min(best.get(name, wall), wall)
            n_hists = len(out.result.histograms)
    events = sum(c["total"] for c in out.result.counts.values())
    for name, wall in best.items():
        print(f"{name:8s} {events / wall / 1e6:.2f} M events/s ({wall:.2f} s for {events:,} events)")
    print(f"full histograms: {n_hists}")
    print(f"cost per event, full / same analysis without systematics: {best['full'] / best['no_syst']:.2f}x")
    print(f"cost per event, full / nominal-only example (analysis_nominal.py): {best['full'] / best['nominal']:.2f}x")


if __name__ == "__main__":
    main()

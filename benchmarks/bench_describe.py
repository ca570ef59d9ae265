#!/usr/bin/env python
"""By-hand: describing a file (entries, branches, counters, basket layouts, generator-weight sum)
with highrate's TTree reader (``data/io/ttree_meta.py``) against uproot's model of the TTree.

For each generated file — the synthetic NanoAOD of the tests (~50 branches) and a CMSSW-sized one
(``--extra-branches``, ~1,250 branches) — it times both ways of describing it, alternating, in this
process with the page cache warm, and checks that both give the same description.

Run: python benchmarks/bench_describe.py [--repeat 7] [--extra-branches 1200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from highrate.data.io import files
from highrate.testing import generate_file


def by_uproot(path: Path) -> files.FileInfo:
    ttree, size = files._parse_tree(str(path), "Events", None)
    try:
        return files._describe(str(path), "Events", ttree, size, {})
    finally:
        ttree.file.close()


def by_hand(path: Path) -> files.FileInfo:
    found = files.info_by_hand(str(path), str(path), "Events")
    if found is None:
        raise SystemExit(f"{path}: the TTree reader refused the file")
    return found[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--extra-branches", type=int, default=1200)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {
            "synthetic NanoAOD": generate_file(Path(tmp) / "small.root", events=20_000, seed=1),
            f"+{args.extra_branches} branches": generate_file(Path(tmp) / "wide.root", events=2_000, seed=1,
                                                              extra_branches=args.extra_branches),
        }
        for label, path in inputs.items():
            if by_hand(path) != by_uproot(path):
                raise SystemExit(f"{label}: the descriptions differ")
            times: dict[str, list[float]] = {"uproot": [], "by hand": []}
            for _ in range(args.repeat):
                for name, describe in (("uproot", by_uproot), ("by hand", by_hand)):
                    t0 = time.perf_counter()
                    info = describe(path)
                    times[name].append(time.perf_counter() - t0)
            ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
            results[label] = {"branches": len(info.branches) + len(info.other_branches), **ms}
            print(f"{label:>22}: {results[label]['branches']:5d} branches; uproot {ms['uproot']:7.1f} ms, "
                  f"by hand {ms['by hand']:6.1f} ms ({ms['uproot'] / ms['by hand']:.1f}x), medians of {args.repeat}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

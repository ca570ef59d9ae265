#!/usr/bin/env python
"""By-hand: Dask scheduler overhead per task and per highrate chunk, and 1 -> 2 worker scaling.

1. ``--tasks`` no-op tasks through a LocalCluster (2 single-threaded worker processes):
   the scheduler's cost per task, end to end (submit, schedule, run, gather).
2. highrate on the generated sample with tiny chunks (``--tiny-chunk`` entries), so that the
   per-chunk fixed cost (task transfer, open-file cache lookup, stage set-up, result transfer,
   accumulation) dominates: seconds per chunk.
3. highrate with the default chunk size on 1 and 2 Dask workers: the scaling factor.

Run: python benchmarks/bench_scheduler.py [--events 1000000] [--workdir bench-data/scheduler]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def noop(x: int) -> int:
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--tiny-chunk", type=int, default=2000)
    ap.add_argument("--workdir", default="bench-data/scheduler")
    args = ap.parse_args()

    import distributed

    import highrate
    from highrate.testing import generate_sample

    work = Path(args.workdir)
    files = sorted((work / "DY").glob("*.root"))
    if not files:
        generate_sample(work, name="DY", events=args.events, files=2, seed=3, is_mc=True, compression="zstd")
        files = sorted((work / "DY").glob("*.root"))
    dataset = highrate.Dataset("DY", "DY", tuple(map(str, files)), metadata={"is_mc": True})
    analysis = highrate.load_analysis(Path(__file__).resolve().parents[1] / "examples/zmumu/analysis_nominal.py")

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            distributed.Client(cl) as client:
        client.gather(client.map(noop, range(100)))  # warm up
        t0 = time.perf_counter()
        client.gather(client.map(noop, range(args.tasks), pure=False))
        per_task = (time.perf_counter() - t0) / args.tasks
        print(f"no-op tasks: {args.tasks} in {per_task * args.tasks:.2f} s = {per_task * 1e3:.3f} ms/task "
              f"({1 / per_task:,.0f} tasks/s, 2 workers)")

        from highrate.execution.executors.dask import DaskExecutor

        ex = DaskExecutor.from_client(client)
        for chunk in (args.tiny_chunk, 250_000):
            opts = highrate.RunOptions(chunk_size=chunk)
            highrate.run(analysis, [dataset], options=opts, executor=ex)  # warm the workers' file caches
            out = highrate.run(analysis, [dataset], options=opts, executor=ex)
            proc = out.timings["processing_s"]
            print(f"highrate chunk_size={chunk:,}: {out.chunks} chunks in {proc:.2f} s = "
                  f"{proc / out.chunks * 1e3:.2f} ms/chunk, {args.events / proc / 1e6:.2f} M events/s (2 workers)")

    rates = {}
    for workers in (1, 2):
        opts = highrate.RunOptions(executor="dask", workers=workers, chunk_size=250_000)
        out = highrate.run(analysis, [dataset], options=opts)
        rates[workers] = args.events / out.timings["processing_s"]
        print(f"dask {workers} worker(s): {rates[workers] / 1e6:.2f} M events/s (processing only)")
    print(f"scaling 2/1 workers: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()

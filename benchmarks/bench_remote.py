#!/usr/bin/env python
"""By-hand remote-read benchmark: the Z->mumu example over root:// and https:// on loopback.

Not run in CI. In one invocation it

1. generates (or reuses, shared with ``bench_zmumu.py``) ``--events`` synthetic NanoAOD MC
   events per compression in ``--workdir``,
2. starts a real XRootD server and a real nginx (HTTPS + WebDAV, self-signed certificate)
   on 127.0.0.1 serving that folder (``tests/servers/storage.py``),
3. warms the page cache, then measures ``highrate.run`` of ``analysis_nominal.py`` in a
   FRESH subprocess per measurement, for each source (``local``, ``root``, ``https``) and
   executor (1 sequential worker, 2 process workers), repeated ``--repeat`` times in
   interleaved order, and
4. prints events/s (processing only, median), the ratio to local files, and the bytes over
   the wire and requests per chunk against the compressed bytes of the needed branches.

Run ``python benchmarks/bench_remote.py --help``; results are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # the storage servers of the tests: tests/servers/
from bench_zmumu import ANALYSIS, MC, generate, warm_up  # noqa: E402

RESULT_TAG = "BENCH_RESULT "


def child(spec: dict) -> dict:
    """One measurement, in its own process: run the analysis over the given files."""
    from dataclasses import replace

    import highrate
    from highrate.data.io.sources import AccessOptions

    analysis = highrate.load_analysis(spec["analysis"])
    (dataset,) = [d for d in highrate.load_datasets(spec["datasets"]) if d.name == MC]
    dataset = replace(dataset, files=tuple(spec["files"]), access=AccessOptions(ca_file=spec["ca_file"]))
    options = highrate.RunOptions(executor=spec["executor"], workers=spec["workers"], chunk_size=spec["chunk_size"],
                                  checkpoint_dir=None)
    outcome = highrate.run(analysis, [dataset], options=options)
    r = outcome.result
    counts = r.counts[MC]
    return {
        "events": counts["total"],
        "processing_s": outcome.timings["processing_s"],
        "metadata_s": outcome.timings["metadata_s"],
        "wall_s": outcome.wall_s,
        "needed_bytes": counts["bytes_read"],
        "sources": r.sources,
        "chunks": counts["chunks"],
        "mll": [float(h.sum().value) for (n, _d, _c, _v), h in sorted(r.histograms.items()) if n == "mll"],
    }


def measure(spec: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    env = {**os.environ, "SSL_CERT_FILE": spec["ca_file"]}
    out = subprocess.run([sys.executable, __file__, "--child", f.name], capture_output=True, text=True, env=env)
    os.unlink(f.name)
    for line in out.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise RuntimeError(f"measurement failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(HERE.parent / "bench-data"))
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--compression", nargs="+", default=["zstd", "lzma"])
    parser.add_argument("--chunk-size", type=int, default=250_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(RESULT_TAG + json.dumps(child(json.loads(Path(args.child).read_text()))), flush=True)
        return

    from servers.storage import NginxServer, XRootDServer

    workdir = Path(args.workdir).resolve()
    yamls = generate(workdir, args.events, args.files, args.compression, seed=42, jobs=2)
    scratch = Path(tempfile.mkdtemp(prefix="highrate-bench-remote-"))
    rows = []
    with XRootDServer(workdir, scratch / "xrootd") as xrd, NginxServer(workdir, scratch / "nginx") as web:
        for comp, yaml_path in yamls.items():
            import highrate

            (ds,) = [d for d in highrate.load_datasets(yaml_path) if d.name == MC]
            local = [str(f) for f in ds.files]
            warm_up(local)
            urls = {
                "local": local,
                "root": [xrd.url(f) for f in local],
                "https": [web.url(Path(f).relative_to(workdir)) for f in local],
            }
            results: dict[tuple[str, int], list[dict]] = {}
            for rep in range(args.repeat):
                order = list(urls) if rep % 2 == 0 else list(reversed(urls))
                for workers in args.workers:
                    for source in order:
                        spec = {"analysis": str(ANALYSIS), "datasets": str(yaml_path), "files": urls[source],
                                "ca_file": str(web.ca_file), "chunk_size": args.chunk_size,
                                "executor": "sequential" if workers == 1 else "processes", "workers": workers}
                        res = measure(spec)
                        results.setdefault((source, workers), []).append(res)
                        print(f"[{comp}] {source:5s} {workers}w rep {rep}: "
                              f"{res['events'] / res['processing_s'] / 1e6:.2f} M events/s", flush=True)
            reference = results[("local", args.workers[0])][0]["mll"]
            for key, runs in results.items():
                assert all(r["mll"] == reference for r in runs), f"{key}: histograms differ from local files"
            for (source, workers), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0] != "local")):
                rate = statistics.median(r["events"] / r["processing_s"] for r in runs)
                local_rate = statistics.median(r["events"] / r["processing_s"] for r in results[("local", workers)])
                r0 = runs[0]
                wire = sum(s["bytes"] for s in r0["sources"].values())
                requests = sum(s["requests"] for s in r0["sources"].values())
                rows.append((comp, source, workers, rate, rate / local_rate, r0["needed_bytes"], wire,
                             requests / max(r0["chunks"], 1), statistics.median(r["metadata_s"] for r in runs)))
    print()
    print(f"{args.events:,} events, {args.files} files, chunk size {args.chunk_size:,}, median of {args.repeat}; "
          f"processing time only (after file metadata)")
    print("| codec | source | workers | M events/s | vs local | needed MB | over the wire MB | requests/chunk | metadata s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for comp, source, workers, rate, ratio, needed, wire, per_chunk, meta in rows:
        wire_text = f"{wire / 1e6:.1f}" if source != "local" else "-"
        req_text = f"{per_chunk:.1f}" if source != "local" else "-"
        print(f"| {comp} | {source} | {workers} | {rate / 1e6:.2f} | {ratio:.2f}x | {needed / 1e6:.1f} | "
              f"{wire_text} | {req_text} | {meta:.2f} |")
    print(f"\n(measured {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""By-hand RNTuple benchmark: highrate on an RNTuple against its TTree twin and uproot's floor.

Not run in CI. In one invocation it

1. generates ``--events`` synthetic NanoAOD MC events per compression (default ZSTD) with
   ``highrate.testing.generate_file`` and writes the RNTuple twin with uproot (every branch a
   top-level field, one RNTuple cluster per TTree cluster, the same codec and level), and with
   ``--root-python PATH`` (a Python where ``import ROOT`` works) a second twin written by ROOT's
   RNTupleImporter (split, zigzag and delta encodings, cardinality counters, page checksums);
   all cached in ``--workdir``;
2. reads every file once so the input is in the page cache;
3. measures, each as a FRESH process (imports count), interleaved, ``--repeat`` times:

   * ``read``   -- highrate's reader (``read_columns``) of exactly the branches the Z->mumu
                   analysis reads, over exactly highrate's chunks, nothing computed;
   * ``uproot`` -- uproot's own ``arrays(branches, entry_start, entry_stop)`` of the same
                   branches over the same chunks: for an RNTuple, the floor the issue names;
   * ``run``    -- ``highrate.run`` of ``examples/zmumu/analysis_nominal.py``, sequential;

   and prints events/s (best of the repetitions; ``processing`` excludes interpreter start and
   imports) and the ratios paired by repetition (median and range), which cancel the machine's
   drift: RNTuple / TTree for ``read`` and ``run``, highrate / uproot on the RNTuple.

Run ``python benchmarks/bench_rntuple.py --help``; see benchmarks/README.md.
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
from itertools import pairwise
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ANALYSIS = REPO / "examples" / "zmumu" / "analysis_nominal.py"
TREE = "Events"
RESULT_TAG = "BENCH_RESULT "

_ROOT_IMPORT = """
import sys, ROOT
Importer = getattr(ROOT, "RNTupleImporter", None) or ROOT.Experimental.RNTupleImporter
Options = getattr(ROOT, "RNTupleWriteOptions", None) or ROOT.Experimental.RNTupleWriteOptions
importer = Importer.Create(sys.argv[1], "Events", sys.argv[2])
options = Options()
options.SetCompression(int(sys.argv[3]))
options.SetApproxZippedClusterSize(int(sys.argv[4]))
importer.SetWriteOptions(options)
importer.SetIsQuiet(True)
importer.Import()
"""


# --------------------------------------------------------------------------------------
# inputs (parent process)
# --------------------------------------------------------------------------------------

def to_rntuple(src: Path, dst: Path, compression: str) -> None:
    """The RNTuple twin, written by uproot: one cluster per TTree cluster, same codec."""
    import awkward as ak
    import uproot

    from highrate.testing.nanoaod import compression_of

    partial = dst.with_name(f".{dst.name}.part")
    with uproot.open(src) as f:
        tree = f[TREE]
        names = [b.name for b in tree.branches]
        with uproot.recreate(partial, compression=compression_of(compression, None)) as out:
            ntuple = None
            for a, b in pairwise(tree.common_entry_offsets()):
                arrays = tree.arrays(names, entry_start=a, entry_stop=b, how=dict)
                if ntuple is None:
                    ntuple = out.mkrntuple(TREE, ak.Array(arrays))
                else:
                    ntuple.extend(arrays)
            out["Runs"] = f["Runs"].arrays(library="np")
    os.replace(partial, dst)


def generate(workdir: Path, events: int, compression: str, root_python: str | None) -> dict[str, Path]:
    import uproot

    from highrate.testing import generate_file
    from highrate.testing.nanoaod import COMPRESSION_LEVELS

    folder = workdir / f"rntuple-{compression}-{events}ev"
    folder.mkdir(parents=True, exist_ok=True)
    files = {"ttree": folder / "ttree.root", "rntuple": folder / "rntuple.root"}
    if not files["ttree"].exists():
        print(f"[gen] {files['ttree']}", flush=True)
        generate_file(files["ttree"], events=events, seed=7, compression=compression)
    if not files["rntuple"].exists():
        print(f"[gen] {files['rntuple']} (uproot)", flush=True)
        to_rntuple(files["ttree"], files["rntuple"], compression)
    if root_python:
        files["rntuple-root"] = folder / "rntuple-root.root"
        if not files["rntuple-root"].exists():
            print(f"[gen] {files['rntuple-root']} (ROOT's RNTupleImporter)", flush=True)
            algorithm = {"zlib": 1, "lzma": 2, "lz4": 4, "zstd": 5}[compression]
            settings = 100 * algorithm + min(COMPRESSION_LEVELS[compression], 9)
            # clusters of about the TTree's entries (ROOT's default, 128 MiB, would make a few
            # clusters of a million events of this narrow file, which real NanoAOD never has)
            with uproot.open(files["rntuple"]) as f:
                per_cluster = files["rntuple"].stat().st_size // len(f[TREE].cluster_summaries)
            subprocess.run([root_python, "-c", _ROOT_IMPORT, str(files["ttree"]), str(files["rntuple-root"]),
                            str(settings), str(per_cluster)], check=True, capture_output=True)
    return files


def plan(files: dict[str, Path], chunk_size: int) -> tuple[list[str], dict[str, list[tuple[int, int]]]]:
    """The branches the analysis reads (its plan, one chunk run) and each file's chunks."""
    import highrate
    from highrate.data.io.files import describe
    from highrate.data.partition import split_entries

    ds = [highrate.Dataset("DY", "DY", (str(files["ttree"]),), metadata={"is_mc": True})]
    outcome = highrate.run(highrate.load_analysis(ANALYSIS), ds,
                           options=highrate.RunOptions(chunk_size=chunk_size, limit_chunks=1))
    chunks = {}
    for kind, path in files.items():
        info = describe(str(path), TREE)  # remembered for the measured processes
        chunks[kind] = split_entries(info.entries, info.clusters, chunk_size)
    return list(outcome.plans["DY"].branches), chunks


def _busy_s() -> float:
    """CPU seconds the whole machine has been busy (all processes)."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def wait_quiet(max_wait_s: float, threshold: float = 0.3) -> float:
    """Wait (up to ``max_wait_s``) until other processes use < ``threshold`` cores over 1 s."""
    deadline = time.perf_counter() + max_wait_s
    while True:
        b0 = _busy_s()
        time.sleep(1.0)
        load = _busy_s() - b0
        if not load > threshold or time.perf_counter() >= deadline:
            return load
        time.sleep(2.0)


def measure(label: str, spec: dict, spec_dir: Path, wait_idle: float) -> dict:
    path = spec_dir / "spec.json"
    path.write_text(json.dumps(spec))
    wait_quiet(wait_idle)
    busy0 = _busy_s()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--_child", str(path)],
                          capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    busy = _busy_s() - busy0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{label} failed (rc={proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    result = json.loads(lines[-1][len(RESULT_TAG):])
    result["wall_s"] = wall
    result["other_cores"] = max(busy - result["cpu_s"], 0.0) / wall  # others' load while it ran: noise
    print(f"      {label}: {result['events']:,} events, {result['events'] / wall:,.0f} ev/s "
          f"(processing {result['events'] / result['processing_s']:,.0f} ev/s); "
          f"other load {result['other_cores']:.2f} cores", flush=True)
    return result


# --------------------------------------------------------------------------------------
# children (fresh processes); each prints one RESULT_TAG line
# --------------------------------------------------------------------------------------

def child(spec: dict) -> dict:
    t0 = time.perf_counter()
    if spec["what"] == "uproot":
        import uproot

        t1 = time.perf_counter()
        with uproot.open(spec["file"], object_cache=None, array_cache=None) as f:
            events = f[TREE]
            for start, stop in spec["chunks"]:
                arrays = events.arrays(spec["branches"], entry_start=start, entry_stop=stop, how=dict)
                assert set(spec["branches"]) <= set(arrays)  # (with ROOT's anonymous collections)
                del arrays
    elif spec["what"] == "read":
        from highrate.data.io.files import opened
        from highrate.data.io.reader import read_columns

        t1 = time.perf_counter()
        with opened(spec["file"], TREE) as handle:
            for start, stop in spec["chunks"]:
                arrays, _ = read_columns(handle, spec["branches"], start, stop, where=spec["file"])
                assert len(arrays) == len(spec["branches"])
                del arrays
    else:
        import highrate

        analysis = highrate.load_analysis(str(ANALYSIS))
        t1 = time.perf_counter()
        ds = [highrate.Dataset("DY", "DY", (spec["file"],), metadata={"is_mc": True})]
        outcome = highrate.run(analysis, ds, options=highrate.RunOptions(chunk_size=spec["chunk_size"],
                                                                          executor="sequential"))
        assert not outcome.result.failed
        mll = outcome.result.histograms[("mll", "DY", "baseline", "nominal")]
        return {"events": spec["events"], "processing_s": time.perf_counter() - t1, "import_s": t1 - t0,
                "mll_sumw": float(mll.sum().value)}
    return {"events": spec["events"], "processing_s": time.perf_counter() - t1, "import_s": t1 - t0}


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=2_000_000)
    p.add_argument("--compressions", nargs="+", default=["zstd"])
    p.add_argument("--chunk-size", type=int, default=250_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=REPO / "bench-data")
    p.add_argument("--root-python", help="a Python where `import ROOT` works: also a twin written by ROOT")
    p.add_argument("--skip-run", action="store_true", help="measure the readers only")
    p.add_argument("--wait-idle", type=float, default=20.0,
                   help="before each measurement wait up to this many seconds for other processes to leave the CPUs")
    p.add_argument("--json", type=Path, help="write every measurement here")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        result = child(json.loads(Path(args._child).read_text()))
        usage = os.times()
        result["cpu_s"] = usage.user + usage.system + usage.children_user + usage.children_system
        print(RESULT_TAG + json.dumps(result), flush=True)
        return

    import uproot

    print(f"# uproot {uproot.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} cores", flush=True)
    measured: dict[tuple[str, str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for comp in args.compressions:
            files = generate(args.workdir, args.events, comp, args.root_python)
            for path in files.values():  # page-cache the inputs
                with open(path, "rb") as f:
                    while f.read(16 << 20):
                        pass
            branches, chunks = plan(files, args.chunk_size)
            print(f"[plan] {len(branches)} branches, {len(chunks['ttree'])} chunks", flush=True)
            whats = ["read", "uproot"] + ([] if args.skip_run else ["run"])
            for rep in range(args.repeat):
                print(f"[rep {rep + 1}/{args.repeat}] {comp}", flush=True)
                for what in whats:
                    for kind, path in files.items():
                        spec = {"what": what, "file": str(path), "branches": branches, "chunks": chunks[kind],
                                "chunk_size": args.chunk_size, "events": args.events}
                        result = measure(f"{what} {kind}", spec, Path(tmp), args.wait_idle)
                        measured.setdefault((comp, what, kind), []).append(result)
    report(measured, args.compressions)
    if args.json:
        args.json.write_text(json.dumps({" ".join(k): v for k, v in measured.items()}, indent=1))


def report(measured: dict[tuple[str, str, str], list[dict]], comps: list[str]) -> None:
    print()
    print("Best of the repetitions, events/s (whole command | processing only):")
    print()
    print("| compression | what | file | events/s | events/s processing |")
    print("|---|---|---|---:|---:|")
    for (comp, what, kind), runs in measured.items():
        best = min(runs, key=lambda r: r["wall_s"])
        fastest = min(r["processing_s"] for r in runs)
        print(f"| {comp} | {what} | {kind} | {best['events'] / best['wall_s']:,.0f} | "
              f"{best['events'] / fastest:,.0f} |")
    print()
    print("Ratios of events/s, processing only, paired by repetition (median, range):")
    print()
    print("| compression | ratio | median | range |")
    print("|---|---|---:|---:|")
    for comp in comps:
        kinds = sorted({k for c, _, k in measured if c == comp and k != "ttree"})
        pairs = [(f"{what} {kind} / {what} ttree", (comp, what, "ttree"), (comp, what, kind))
                 for what in ("read", "run") for kind in kinds]
        pairs += [(f"read {kind} / uproot {kind}", (comp, "uproot", kind), (comp, "read", kind)) for kind in kinds]
        for name, den, num in pairs:
            if den not in measured or num not in measured:
                continue
            ratios = [d["processing_s"] / n["processing_s"] for d, n in zip(measured[den], measured[num], strict=True)]
            print(f"| {comp} | {name} | {statistics.median(ratios):.2f} | {min(ratios):.2f} to {max(ratios):.2f} |")
    sums = {(c, k): r[0].get("mll_sumw") for (c, w, k), r in measured.items() if w == "run"}
    if sums:
        print()
        print("sum of weights of mll (must agree within a compression):", sums)


if __name__ == "__main__":
    main()

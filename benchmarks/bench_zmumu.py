#!/usr/bin/env python
"""By-hand Z->mumu throughput benchmark: highrate vs. the uproot I/O floor vs. coffea.

Not run in CI. In one invocation it

1. generates ``--events`` synthetic NanoAOD MC events (DYJetsToLL_M-50) per compression
   (default ZSTD and LZMA) with ``highrate.testing`` (cached in ``--workdir``),
2. reads every file once so the input is in the page cache (warm-up),
3. measures, each as a FRESH subprocess (interpreter start and imports count, like a
   user's command), for every compression:

   * ``floor``      -- uproot ``TTree.arrays`` of exactly the branches highrate reads, over
                       exactly highrate's chunks (entry ranges), file opened once, nothing
                       computed: the I/O + decompression + deserialisation floor;
   * ``highrate-1`` -- ``highrate.run`` with ``executor="sequential"``;
   * ``highrate-2`` -- ``highrate.run`` with ``executor="processes", workers=2``;
   * ``coffea``     -- ``coffea.processor.Runner`` + ``IterativeExecutor`` + NanoAODSchema
                       running the same selection (``coffea_zmumu.py``) in its own venv;

   and prints a Markdown table (events/s of the whole command, events/s of the processing
   only, ratio to the floor, peak RSS) plus the 2-worker scaling and highrate/coffea ratio.

Peak RSS: ``peak RSS`` is the largest resident set of any single process of the measurement:
the child's own ``VmHWM`` or the ``RUSAGE_CHILDREN`` max RSS of the workers it reaped, both
reported by the child itself (``os.wait4``'s ru_maxrss is not used because Linux carries the
driver's RSS into a spawned child's high-water mark), or the largest single-process RSS seen
by a 20 Hz psutil sampler (forkserver workers are not the child's children); ``tree RSS`` is the sampled (20 Hz,
psutil) peak of the SUM over the child and all its descendants. ``other load`` is the CPU
(in cores) that OTHER processes on the machine used during the measurement (system busy time
minus the measured process tree's): a noise indicator, ~0 when the machine was ours.

Run ``python benchmarks/bench_zmumu.py --help``; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ANALYSIS = REPO / "examples" / "zmumu" / "analysis_nominal.py"
COFFEA_SCRIPT = HERE / "coffea_zmumu.py"
MC = "DYJetsToLL_M-50"
TREE = "Events"
RESULT_TAG = "BENCH_RESULT "

_YAML = """\
# written by benchmarks/bench_zmumu.py (MC sample only, one generate_sample call per file)
datasets:
  {mc}:
    sample: DYJetsToLL
    files: [part*/{mc}/*.root]
    tree: Events
    metadata: {{is_mc: true, year: "2018", xsec: 6077.22}}
"""


# --------------------------------------------------------------------------------------
# data generation (parent process)
# --------------------------------------------------------------------------------------

def _gen_one(task: tuple[str, int, int, int, int, str]) -> str:
    outdir, _index, events, first_event, seed, compression = task
    from highrate.testing.nanoaod import generate_sample

    generate_sample(outdir, name=MC, is_mc=True, events=events, files=1, seed=seed,
                    compression=compression, first_event=first_event)
    return outdir


def generate(workdir: Path, events: int, files: int, compressions: list[str], seed: int,
             jobs: int) -> dict[str, Path]:
    """One folder per compression; each file is its own ``generate_sample`` call (own seed,
    continued event numbering) so files can be written in parallel. Cached: a folder whose
    ``COMPLETE.json`` matches the request is reused."""
    per_file = [events // files + (1 if i < events % files else 0) for i in range(files)]
    todo, yamls, pending = [], {}, []
    for comp in compressions:
        folder = workdir / f"{comp}-{events}ev-{files}f-seed{seed}"
        yamls[comp] = folder / "datasets.yaml"
        spec = {"events": events, "files": files, "seed": seed, "compression": comp}
        marker = folder / "COMPLETE.json"
        if marker.exists() and json.loads(marker.read_text()) == spec and yamls[comp].exists():
            print(f"[gen] reusing {folder}", flush=True)
            continue
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        offset = 0
        for i, n in enumerate(per_file):
            todo.append((str(folder / f"part{i:03d}"), i, n, offset, seed * 1000 + i, comp))
            offset += n
        pending.append((folder, spec))
    if todo:
        t0 = time.perf_counter()
        # LZMA level 9 dominates; put its files first so both cores stay busy
        todo.sort(key=lambda t: t[5] != "lzma")
        print(f"[gen] writing {len(todo)} files with {jobs} processes ...", flush=True)
        with ProcessPoolExecutor(jobs) as pool:
            list(pool.map(_gen_one, todo))
        for folder, spec in pending:
            (folder / "datasets.yaml").write_text(_YAML.format(mc=MC), encoding="utf-8")
            (folder / "COMPLETE.json").write_text(json.dumps(spec))
        print(f"[gen] done in {time.perf_counter() - t0:.0f} s", flush=True)
    return yamls


def mc_files(yaml_path: Path) -> list[str]:
    import highrate

    (ds,) = [d for d in highrate.load_datasets(yaml_path) if d.name == MC]
    return [str(f) for f in ds.files]


def warm_up(files: list[str]) -> int:
    """Read every byte once so all measurements see page-cached input."""
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            while chunk := fh.read(16 << 20):
                total += len(chunk)
    return total


def highrate_chunks(files: list[str], chunk_size: int) -> list[tuple[str, list[tuple[int, int]]]]:
    """The entry ranges highrate's runner uses (``split_entries`` over ``describe``)."""
    from highrate.data.io.files import describe
    from highrate.data.partition import split_entries

    out = []
    for url in files:
        info = describe(url, TREE)
        out.append((url, [tuple(r) for r in split_entries(info.entries, info.clusters, chunk_size)]))
    return out


def highrate_branches(yaml_path: Path, chunk_size: int) -> list[str]:
    """The branches highrate reads for the MC dataset (its plan; one chunk is run)."""
    import highrate

    analysis = highrate.load_analysis(ANALYSIS)
    datasets = [d for d in highrate.load_datasets(yaml_path) if d.name == MC]
    outcome = highrate.run(analysis, datasets, options=highrate.RunOptions(
        executor="sequential", chunk_size=chunk_size, limit_chunks=1, limit_files=1))
    return list(outcome.plans[MC].branches)


# --------------------------------------------------------------------------------------
# measurement (parent process): fresh subprocess, wall time, peak RSS
# --------------------------------------------------------------------------------------

def _sample_tree_rss(pid: int, stop: threading.Event, peak: list, cpu: dict[int, float]) -> None:
    try:
        import psutil
    except ImportError:
        return
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        total = 0
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for p in procs:
            try:
                rss = p.memory_info().rss
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system  # own time only: children_* would double-count
            except psutil.Error:
                continue
            total += rss
            peak[1] = max(peak[1], rss)
        peak[0] = max(peak[0], total)
        stop.wait(0.05)


def print_profile(stats: pstats.Stats, what: str, own: str, top: int) -> None:
    """The top entries of a cProfile: ``own`` (a path pattern) and the array libraries by
    cumulative time, then everything by own time."""
    print(f"=== cProfile of {what}, by cumulative time ===")
    stats.sort_stats("cumulative").print_stats(own, top)
    print("=== uproot / awkward / numpy / hist, by cumulative time ===")
    stats.sort_stats("cumulative").print_stats(r"uproot|awkward|numpy|hist", top)
    print("=== everything, by own (tottime) time ===")
    stats.sort_stats("tottime").print_stats(top)


def _system_busy_s() -> float:
    try:
        import psutil
    except ImportError:
        return float("nan")
    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def wait_quiet(max_wait_s: float, threshold: float = 0.3) -> float:
    """Wait (up to ``max_wait_s``) until other processes use < ``threshold`` cores over 1 s;
    return the load seen last. Other users' test suites make a shared 2-core box noisy."""
    deadline = time.perf_counter() + max_wait_s
    while True:
        b0 = _system_busy_s()
        time.sleep(1.0)
        load = _system_busy_s() - b0
        if not load > threshold or time.perf_counter() >= deadline:
            return load
        print(f"      (machine busy: {load:.1f} cores used by others; waiting)", flush=True)
        time.sleep(2.0)


def measure(label: str, cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` as a fresh process; return its JSON result plus wall and memory."""
    print(f"[run] {label}: {' '.join(cmd[-6:])}", flush=True)
    busy0 = _system_busy_s()
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        stop, peak, cpu = threading.Event(), [0, 0], {}
        sampler = threading.Thread(target=_sample_tree_rss, args=(proc.pid, stop, peak, cpu), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
        busy1 = _system_busy_s()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed (rc={proc.returncode}):\n{stdout[-3000:]}\n{stderr[-5000:]}")
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if not lines:
        raise RuntimeError(f"{label}: no result line in output:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    result = json.loads(lines[-1][len(RESULT_TAG):])
    # ru_maxrss of a child carries the driver's own RSS over fork/exec (Linux keeps the
    # high-water mark across execve), so the child reports its VmHWM itself; workers it
    # reaped are in children_rss_mb (forked workers share the parent's pages at start).
    # forkserver workers are reaped by the forkserver, not by the child: also use the
    # largest single-process RSS seen by the sampler.
    peak_mb = max(result.get("self_rss_mb", 0.0), result.get("children_rss_mb", 0.0), peak[1] / 2**20)
    own_cpu = max(usage.ru_utime + usage.ru_stime, sum(cpu.values()))
    # CPU used on this machine by OTHER processes while we measured (other users' tests...),
    # in cores: the noise indicator; ~0 means the measurement had the machine to itself
    other = (busy1 - busy0 - own_cpu) / wall if busy0 == busy0 else float("nan")
    result.update(label=label, wall_s=wall, peak_rss_mb=peak_mb, wait4_maxrss_mb=usage.ru_maxrss / 1024,
                  tree_rss_mb=peak[0] / 2**20, cpu_s=own_cpu, other_cores=max(other, 0.0))
    rate = result["events"] / wall
    proc_rate = result["events"] / result["processing_s"] if result.get("processing_s") else float("nan")
    print(f"      {result['events']:,} events in {wall:.2f} s = {rate:,.0f} ev/s "
          f"(processing only {proc_rate:,.0f} ev/s); peak RSS {result['peak_rss_mb']:.0f} MB, "
          f"tree {result['tree_rss_mb']:.0f} MB; CPU {own_cpu:.1f} s; other load {result['other_cores']:.2f} cores",
          flush=True)
    return result


def print_paired(every: dict[tuple[str, str], list[dict]], comps: list[str]) -> None:
    """The same ratios per repetition, then their median and range. A repetition measures every
    configuration within seconds, so pairing them cancels the machine's slower drift, which a
    best-of-N against best-of-N does not."""
    print()
    print("Paired by repetition (whole command; median and range over the repetitions):")
    print()
    print("| compression | highrate-1 / floor | highrate-2 / highrate-1 | highrate-1 / coffea |")
    print("|---|---:|---:|---:|")
    for comp in comps:
        cells = []
        for num, den in (("floor", "highrate-1"), ("highrate-1", "highrate-2"), ("coffea", "highrate-1")):
            a, b = every.get((num, comp), []), every.get((den, comp), [])
            if not a or not b:
                cells.append("n/a")
                continue
            ratios = [x["wall_s"] / y["wall_s"] for x, y in zip(a, b, strict=True)]  # equal events: a rate ratio
            cells.append(f"{statistics.median(ratios):.2f} ({min(ratios):.2f} to {max(ratios):.2f})")
        print(f"| {comp} | " + " | ".join(cells) + " |")


def byte_compile_highrate() -> None:
    """Byte-compile highrate's modules, as pip does for an installed package.

    The dependencies (uproot, awkward, ...) were installed with their bytecode. An editable
    highrate under ``PYTHONDONTWRITEBYTECODE=1`` would otherwise be compiled from source in
    every measured process (~50 ms), a cost no installed copy has."""
    import compileall

    import highrate

    compileall.compile_dir(Path(highrate.__file__).parent, quiet=1)


def _child_cmd(kind: str, spec: dict, spec_dir: Path, python: str = sys.executable) -> list[str]:
    path = spec_dir / f"spec-{kind}-{spec.get('compression', '')}.json"
    path.write_text(json.dumps(spec))
    return [python, str(Path(__file__).resolve()), "--_child", kind, "--_spec", str(path)]


# --------------------------------------------------------------------------------------
# children (fresh processes); each prints one RESULT_TAG line
# --------------------------------------------------------------------------------------

def child_floor(spec: dict) -> dict:
    t0 = time.perf_counter()
    import uproot

    t_import = time.perf_counter() - t0
    branches = spec["branches"]
    events = 0
    t1 = time.perf_counter()
    for url, ranges in spec["chunks"]:
        with uproot.open(url, object_cache=None, array_cache=None) as f:
            tree = f[TREE]
            for start, stop in ranges:
                arrays = tree.arrays(branches, entry_start=start, entry_stop=stop, how=dict)
                assert len(arrays) == len(branches)
                events += stop - start
                del arrays
    return {"events": events, "processing_s": time.perf_counter() - t1, "import_s": t_import}


def child_highrate(spec: dict) -> dict:
    t0 = time.perf_counter()
    import highrate
    from highrate.outputs.report import build_report

    t_import = time.perf_counter() - t0
    analysis = highrate.load_analysis(spec["analysis"])
    datasets = [d for d in highrate.load_datasets(spec["datasets"]) if d.name == MC]
    options = highrate.RunOptions(executor=spec["executor"], workers=spec["workers"],
                                  chunk_size=spec["chunk_size"])
    run = highrate.run
    if spec.get("profile"):
        import cProfile

        prof = cProfile.Profile()
        outcome = prof.runcall(run, analysis, datasets, options=options)
        prof.dump_stats(spec["profile"])
        print_profile(pstats.Stats(prof), "highrate.run: highrate's own code", r"highrate[/\\]", 25)
    else:
        outcome = run(analysis, datasets, options=options)
    report = build_report(outcome, analysis, options)
    mll = [h for (name, ds, _cat, _var), h in outcome.result.histograms.items()
           if name == "mll" and ds == MC]
    variations = sorted({k[3] for k in outcome.result.histograms})
    nominal = [h for (name, ds, _cat, var), h in outcome.result.histograms.items()
               if name == "mll" and ds == MC and var in ("nominal", "")] or mll
    return {
        "events": int(report["events"]["total"]),
        "processing_s": outcome.wall_s,
        "metadata_s": outcome.timings.get("metadata_s"),
        "import_s": t_import,
        "chunks": outcome.chunks,
        "branches": list(outcome.plans[MC].branches),
        "mll_sumw": float(sum(h.sum().value for h in nominal)),
        "mll_entries_hists": len(mll),
        "variations": variations,
        "preselected": int(report["events"]["preselected"]),
    }


def own_peak_rss_mb() -> dict:
    """This process's high-water RSS (``VmHWM``, reset at exec, so not inherited from the
    benchmark driver) and the largest of its reaped child processes (workers)."""
    import resource

    hwm = float("nan")
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    except OSError:
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"self_rss_mb": hwm, "children_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def run_child(kind: str, spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    result = {"floor": child_floor, "highrate": child_highrate}[kind](spec)
    result.update(own_peak_rss_mb())
    print(RESULT_TAG + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------

def environment(coffea_python: str | None) -> str:
    """Versions and the state of the highrate checkout (the package changes often)."""
    import platform
    from importlib.metadata import version

    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"

    dirty = git("status", "--porcelain", "--", "src")
    lines = [f"# highrate {git('rev-parse', '--short', 'HEAD') or '?'}"
             + (f" + uncommitted changes in src/ ({len(dirty.splitlines())} files)" if dirty else ""),
             "# " + ", ".join(f"{m} {version(m)}" for m in ("uproot", "awkward", "numpy", "hist"))
             + f", python {platform.python_version()}, {platform.machine()}"]
    if coffea_python:
        out = subprocess.run([coffea_python, "-c", "import coffea, uproot, awkward; print("
                              "f'coffea {coffea.__version__}, uproot {uproot.__version__}, "
                              "awkward {awkward.__version__}')"], capture_output=True, text=True)
        lines.append(f"# coffea venv: {out.stdout.strip() or out.stderr.strip()[-200:]}")
    return "\n".join(lines)


def default_coffea_python() -> str | None:
    cand = REPO / ".venv-coffea" / "bin" / "python"
    return str(cand) if cand.exists() else None


def fmt_rate(x: float) -> str:
    return f"{x / 1e3:,.0f} k" if x == x else "n/a"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=2_000_000, help="MC events per compression (default 2M)")
    p.add_argument("--files", type=int, default=4, help="files per compression (default 4)")
    p.add_argument("--workdir", type=Path, default=REPO / "bench-data",
                   help="where inputs are generated/cached (default ./bench-data, git-ignored)")
    p.add_argument("--compressions", nargs="+", default=["zstd", "lzma"],
                   choices=["zstd", "lzma", "zlib", "lz4"])
    p.add_argument("--chunk-size", type=int, default=250_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--skip-coffea", action="store_true", help="do not measure coffea")
    p.add_argument("--coffea-python", default=default_coffea_python(),
                   help="python of the venv with coffea (default ./.venv-coffea/bin/python)")
    p.add_argument("--skip-two-workers", action="store_true")
    p.add_argument("--repeat", type=int, default=3,
                   help="measure each configuration N times (interleaved), keep the fastest (default 3)")
    p.add_argument("--profile", type=Path, default=None,
                   help="also run highrate (1 worker, first compression) under cProfile; "
                        "write the pstats dump here and print the top entries")
    p.add_argument("--wait-idle", type=float, default=20.0, metavar="S",
                   help="before each measurement wait up to S seconds for other processes to "
                        "leave the CPUs (< 0.3 cores busy); 0 disables (default 20)")
    p.add_argument("--cache", choices=["warm", "off"], default="warm",
                   help="warm (default): highrate's remembered trace and file metadata are in place, as on a "
                        "user's second run over the same files (the branch-finding run before the measurements "
                        "fills them); off: HIGHRATE_CACHE=off, every run traces and parses the TTrees")
    p.add_argument("--json", type=Path, default=None, help="write all measurements here")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    p.add_argument("--_spec", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        run_child(args._child, args._spec)
        return

    if args.cache == "off":
        os.environ["HIGHRATE_CACHE"] = "off"  # inherited by every measured process
    t_start = time.perf_counter()
    print(f"# highrate Z->mumu benchmark: {args.events:,} MC events x {args.compressions}, "
          f"{args.files} files, chunk size {args.chunk_size:,}, {os.cpu_count()} CPUs", flush=True)
    print(environment(coffea_python=None if args.skip_coffea else args.coffea_python), flush=True)
    yamls = generate(args.workdir, args.events, args.files, args.compressions, args.seed,
                     jobs=max(1, min(os.cpu_count() or 1, 4)))
    coffea_python = None if args.skip_coffea else args.coffea_python
    if not args.skip_coffea and not coffea_python:
        print("[warn] no coffea python found (create .venv-coffea, see benchmarks/README.md); "
              "skipping coffea", flush=True)

    byte_compile_highrate()
    spec_dir = Path(tempfile.mkdtemp(prefix="bench-zmumu-"))
    plans = {}
    for comp, yaml_path in yamls.items():
        files = mc_files(yaml_path)
        nbytes = warm_up(files)
        branches = highrate_branches(yaml_path, args.chunk_size)
        chunks = highrate_chunks(files, args.chunk_size)
        print(f"[prep] {comp}: {len(files)} files, {nbytes / 2**20:.0f} MiB (page-cached), "
              f"{sum(len(r) for _, r in chunks)} chunks, {len(branches)} branches: {' '.join(branches)}",
              flush=True)
        plans[comp] = dict(files=files, yaml=str(yaml_path), branches=branches, chunks=chunks,
                           nbytes=nbytes)

    def configs(comp: str) -> list[tuple[str, list[str]]]:
        pl = plans[comp]
        hr = dict(analysis=str(ANALYSIS), datasets=pl["yaml"], chunk_size=args.chunk_size,
                  compression=comp)
        out = [
            ("floor", _child_cmd("floor", dict(branches=pl["branches"], chunks=pl["chunks"],
                                               compression=comp), spec_dir)),
            ("highrate-1", _child_cmd("highrate", dict(hr, executor="sequential", workers=None), spec_dir)),
        ]
        if not args.skip_two_workers:
            spec = dict(hr, executor="processes", workers=2, compression=comp + "-2")
            out.append(("highrate-2", _child_cmd("highrate", spec, spec_dir)))
        if coffea_python:
            out.append(("coffea", [coffea_python, str(COFFEA_SCRIPT), "--chunk-size", str(args.chunk_size),
                                   "--dataset", MC, *pl["files"]]))
        return out

    results: dict[tuple[str, str], dict] = {}
    every: dict[tuple[str, str], list[dict]] = {}  # all repetitions, in order, for the paired ratios
    for rep in range(args.repeat):
        for comp in plans:
            warm_up(plans[comp]["files"])
            for label, cmd in configs(comp):
                if args.wait_idle > 0:
                    wait_quiet(args.wait_idle)
                r = measure(f"{label} {comp}" + (f" (rep {rep + 1})" if args.repeat > 1 else ""), cmd)
                key = (label, comp)
                every.setdefault(key, []).append(r)
                # keep the fastest repetition (contention by other processes only slows down)
                if key not in results or r["wall_s"] < results[key]["wall_s"]:
                    results[key] = r

    if args.profile:
        comp = next(iter(plans))
        pl = plans[comp]
        spec = dict(analysis=str(ANALYSIS), datasets=pl["yaml"], chunk_size=args.chunk_size,
                    executor="sequential", workers=None, compression=comp + "-prof",
                    profile=str(args.profile.resolve()))
        cmd = _child_cmd("highrate", spec, spec_dir)
        print(f"[profile] {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True, cwd=REPO)

    # ---------------- report ----------------
    print()
    print(f"## Results ({args.events:,} events per compression, {os.cpu_count()} CPUs, "
          f"chunk size {args.chunk_size:,}, best of {args.repeat})")
    print()
    print("| implementation | compression | events/s (whole command) | events/s (processing only) "
          "| ratio to floor | wall s | CPU s | peak RSS MB | tree RSS MB | other load |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for comp in plans:
        floor = results.get(("floor", comp))
        for label in ("floor", "highrate-1", "highrate-2", "coffea"):
            r = results.get((label, comp))
            if r is None:
                continue
            rate = r["events"] / r["wall_s"]
            prate = r["events"] / r["processing_s"] if r.get("processing_s") else float("nan")
            ratio = rate / (floor["events"] / floor["wall_s"]) if floor else float("nan")
            name = {"floor": "uproot floor (arrays, same branches/chunks)",
                    "highrate-1": "highrate, 1 worker (sequential)",
                    "highrate-2": "highrate, 2 workers (processes)",
                    "coffea": "coffea Runner + IterativeExecutor"}[label]
            print(f"| {name} | {comp} | {fmt_rate(rate)} | {fmt_rate(prate)} | {ratio:.2f} "
                  f"| {r['wall_s']:.2f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['tree_rss_mb']:.0f} "
                  f"| {r['other_cores']:.2f} |")
    print()
    print("| compression | highrate-1 / floor | highrate-2 / highrate-1 | highrate-1 / coffea "
          "| mll sum(w) highrate | mll sum(w) coffea | rel. diff |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for comp in plans:
        def rate(label: str, proc: bool = False, comp: str = comp) -> float:
            r = results.get((label, comp))
            if r is None:
                return float("nan")
            return r["events"] / (r["processing_s"] if proc else r["wall_s"])
        h1, h2, fl, cf = rate("highrate-1"), rate("highrate-2"), rate("floor"), rate("coffea")
        hw = results[("highrate-1", comp)]["mll_sumw"]
        cw = results.get(("coffea", comp), {}).get("mll_sumw", float("nan"))
        rel = abs(hw - cw) / abs(hw) if hw else float("nan")
        print(f"| {comp} | {h1 / fl:.2f} (proc. only {rate('highrate-1', True) / rate('floor', True):.2f}) "
              f"| {h2 / h1:.2f} (proc. only {rate('highrate-2', True) / rate('highrate-1', True):.2f}) "
              f"| {h1 / cf:.2f} (proc. only {rate('highrate-1', True) / rate('coffea', True):.2f}) "
              f"| {hw:.6g} | {cw:.6g} | {rel:.1e} |")
    if args.repeat >= 3:
        print_paired(every, list(plans))
    print()
    print("Targets (one worker): highrate >= 0.9x floor and >= 2.5x coffea on ZSTD; >= 0.9x floor "
          "on LZMA; 2 workers >= 1.8x one worker.")
    print(f"Total benchmark wall time: {time.perf_counter() - t_start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({f"{k[0]} {k[1]}": v for k, v in results.items()}, indent=1))
    shutil.rmtree(spec_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

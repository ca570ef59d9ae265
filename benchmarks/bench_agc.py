#!/usr/bin/env python
"""By-hand benchmark: highrate's AGC ttbar analysis against the AGC's coffea reference processor.

Not run in CI. In one invocation it

1. generates the synthetic AGC set (``highrate.testing.agc.generate_agc_set``: nine simulated
   samples and pseudo-data, ``--events`` events per sample and file) once per compression
   (default ZSTD and LZMA; cached in ``--workdir``), one process per sample;
2. reads every file once so the input is in the page cache;
3. measures, each as a FRESH process (interpreter start, imports, file metadata, writing the
   outputs: the whole command a user types), for every compression and repetition:

   * ``highrate-1`` -- ``highrate run examples/agc/analysis.py --datasets D --executor
     sequential`` with highrate's cache off (``--no-cache``, ``HIGHRATE_CACHE=off``), so every
     run traces the analysis, describes the files and processes every chunk (``--cache warm``:
     the trace and the file metadata remembered from a first run, chunk results never);
   * ``highrate-2`` -- the same with ``--executor processes --workers 2``;
   * ``coffea-1``   -- ``benchmarks/agc_coffea.py`` (the AGC processor, ``processor.Runner``
     with ``IterativeExecutor``, ``NanoAODSchema``) in its own venv (``.venv-coffea``);
   * ``coffea-2``   -- the same with ``FuturesExecutor(workers=2)``;

4. checks that all four filled the same histograms (every ``HT`` / ``m_bjj`` histogram per
   dataset, category and variation: counts of the pseudo-data per bin equal, sums of weights
   and of squared weights to float precision), and prints Markdown tables: events/s per core
   of the whole command, the ratio highrate / coffea paired by repetition, peak RSS per process.

Peak RSS: every process of the measured tree (the command, its workers, a forkserver) is sampled
every 20 ms; its peak is the last ``VmHWM`` read from ``/proc/PID/status`` (the high-water mark
of its own address space, reset at ``exec``, so nothing is inherited from this driver).
``peak RSS / process`` is the largest of them (the figure the 500 MB-per-worker target is about),
``tree RSS`` the largest sampled sum of ``VmRSS`` over the tree.

Run ``python benchmarks/bench_agc.py --help``; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_zmumu import (  # the harness's shared parts
    _system_busy_s,
    byte_compile_highrate,
    default_coffea_python,
    environment,
    print_profile,
    wait_quiet,
    warm_up,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ANALYSIS = REPO / "examples" / "agc" / "analysis.py"
COFFEA_SCRIPT = HERE / "agc_coffea.py"
LABELS = ("highrate-1", "highrate-2", "coffea-1", "coffea-2")
NAMES = {"highrate-1": "highrate, 1 worker (sequential)",
         "highrate-2": "highrate, 2 workers (processes)",
         "coffea-1": "coffea, 1 worker (IterativeExecutor)",
         "coffea-2": "coffea, 2 workers (FuturesExecutor)"}


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------

def _gen_sample(task: tuple[str, str, int, int, str, int]) -> str:
    folder, sample, events, files, compression, seed = task
    from highrate.testing.agc import generate_agc_set

    generate_agc_set(folder, events=events, files=files, compression=compression, seed=seed, samples=[sample])
    return sample


def generate(workdir: Path, events: int, files: int, compressions: list[str], seed: int,
             jobs: int) -> dict[str, Path]:
    """The whole AGC set per compression in ``workdir/agc-{comp}-...``; reused when its
    ``COMPLETE.json`` matches. Each sample is one ``generate_agc_set(..., samples=[name])`` call
    in its own process (into ``_parts/name``); the parts are moved into place and their
    ``datasets.yaml`` entries joined, in the order of ``AGC_SAMPLES``."""
    import yaml

    from highrate.testing.agc import AGC_SAMPLES

    samples = list(AGC_SAMPLES)
    yamls, todo, pending = {}, [], []
    for comp in compressions:
        folder = workdir / f"agc-{comp}-{events}ev-{files}f-seed{seed}"
        yamls[comp] = folder / "datasets.yaml"
        spec = {"events": events, "files": files, "seed": seed, "compression": comp, "samples": samples}
        marker = folder / "COMPLETE.json"
        if marker.exists() and json.loads(marker.read_text()) == spec and yamls[comp].exists():
            print(f"[gen] reusing {folder}", flush=True)
            continue
        if folder.exists():
            shutil.rmtree(folder)
        (folder / "_parts").mkdir(parents=True)
        todo += [(str(folder / "_parts" / s), s, events, files, comp, seed) for s in samples]
        pending.append((folder, spec))
    if not todo:
        return yamls
    t0 = time.perf_counter()
    todo.sort(key=lambda t: t[4] != "lzma")  # LZMA writes slowest: first, so that the cores stay busy
    print(f"[gen] writing {len(todo)} samples x {files} file(s) of {events:,} events with {jobs} processes ...",
          flush=True)
    with ProcessPoolExecutor(jobs) as pool:
        list(pool.map(_gen_sample, todo))
    for folder, spec in pending:
        datasets: dict = {}
        for s in samples:
            part = folder / "_parts" / s
            datasets.update(yaml.safe_load((part / "datasets.yaml").read_text())["datasets"])
            (part / s).rename(folder / s)
        shutil.rmtree(folder / "_parts")
        header = (f"# written by benchmarks/bench_agc.py: the synthetic AGC set (highrate.testing.agc), "
                  f"{events} events per sample and file, {spec['compression']}\n")
        (folder / "datasets.yaml").write_text(header + yaml.safe_dump({"datasets": datasets}, sort_keys=False),
                                              encoding="utf-8")
        (folder / "COMPLETE.json").write_text(json.dumps(spec))
    print(f"[gen] done in {time.perf_counter() - t0:.0f} s", flush=True)
    return yamls


def input_files(yaml_path: Path) -> dict[str, list[str]]:
    import highrate

    return {d.name: [str(f) for f in d.files] for d in highrate.load_datasets(yaml_path)}


# --------------------------------------------------------------------------------------
# measurement: a fresh process, its wall time, the peak RSS of each of its processes
# --------------------------------------------------------------------------------------

def _status_kb(pid: int) -> tuple[int, int]:
    """``(VmHWM, VmRSS)`` of ``pid`` in kB, (0, 0) once it is gone."""
    hwm = rss = 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                    break
    except (OSError, ValueError):
        pass
    return hwm, rss


def _sample_tree(pid: int, stop: threading.Event, peaks: dict[int, int], tree: list[int],
                 cpu: dict[int, float]) -> None:
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        total = 0
        for p in procs:
            hwm, rss = _status_kb(p.pid)
            if hwm:
                peaks[p.pid] = max(peaks.get(p.pid, 0), hwm)
            total += rss
            try:
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system
            except psutil.Error:
                pass
        tree[0] = max(tree[0], total)
        stop.wait(0.02)


def run_measured(label: str, cmd: list[str], env: dict[str, str]) -> dict:
    """Run ``cmd`` as a fresh process; its wall time, CPU, peak RSS per process and of the tree."""
    print(f"[run] {label}", flush=True)
    busy0 = _system_busy_s()
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        stop, peaks, tree, cpu = threading.Event(), {}, [0], {}
        sampler = threading.Thread(target=_sample_tree, args=(proc.pid, stop, peaks, tree, cpu), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
        busy1 = _system_busy_s()
        rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if rc != 0:
        raise RuntimeError(f"{label} failed (rc={rc}): {' '.join(cmd)}\n{stdout[-3000:]}\n{stderr[-5000:]}")
    own_cpu = max(usage.ru_utime + usage.ru_stime, sum(cpu.values()))
    return {"label": label, "wall_s": wall, "cpu_s": own_cpu, "stdout": stdout[-4000:],
            "peak_rss_mb": max(peaks.values(), default=0) / 1024,
            "rss_by_process_mb": sorted((v / 1024 for v in peaks.values()), reverse=True),
            "tree_rss_mb": tree[0] / 1024,
            "other_cores": max((busy1 - busy0 - own_cpu) / wall, 0.0)}


def highrate_cmd(yaml_path: Path, out: Path, workers: int, chunk_size: int) -> list[str]:
    exe = str(Path(sys.executable).with_name("highrate"))
    executor = ["--executor", "sequential"] if workers == 1 else ["--executor", "processes", "--workers", str(workers)]
    return [exe, "run", str(ANALYSIS), "--datasets", str(yaml_path), *executor, "--chunk-size", str(chunk_size),
            "--output", str(out), "--no-cache", "--no-progress"]


def coffea_cmd(python: str, yaml_path: Path, out: Path, workers: int, chunk_size: int) -> list[str]:
    executor = ["--executor", "iterative"] if workers == 1 else ["--executor", "futures", "--workers", str(workers)]
    return [python, str(COFFEA_SCRIPT), str(yaml_path), *executor, "--chunk-size", str(chunk_size),
            "--output", str(out)]


def highrate_env(args: argparse.Namespace, out_dir: Path) -> dict[str, str]:
    """``--cache off``: HIGHRATE_CACHE=off, nothing remembered. ``warm``: the traces and file
    metadata highrate remembers in a cache folder of this benchmark's own (filled by a first,
    unmeasured run), the results of chunks never (``--no-cache``)."""
    if args.cache == "off":
        return dict(os.environ, HIGHRATE_CACHE="off", PYTHONUNBUFFERED="1")
    env = {k: v for k, v in os.environ.items() if k != "HIGHRATE_CACHE"}
    return dict(env, XDG_CACHE_HOME=str(out_dir / "cache"), PYTHONUNBUFFERED="1")


def measure(label: str, comp: str, yaml_path: Path, out_dir: Path, args: argparse.Namespace) -> dict:
    workers = int(label[-1])
    env = highrate_env(args, out_dir)
    if label.startswith("highrate"):
        out = out_dir / f"{label}-{comp}"
        shutil.rmtree(out, ignore_errors=True)
        r = run_measured(f"{label} {comp}", highrate_cmd(yaml_path, out, workers, args.chunk_size), env)
        report = json.loads((out / "report.json").read_text())
        r.update(events=int(report["events"]["total"]), processing_s=float(report["wall_s"]),
                 histograms=str(out / "histograms.pkl"))
    else:
        out = out_dir / f"{label}-{comp}.json"
        out.unlink(missing_ok=True)
        r = run_measured(f"{label} {comp}", coffea_cmd(args.coffea_python, yaml_path, out, workers,
                                                        args.chunk_size), env)
        result = json.loads(out.read_text())
        r.update(events=int(result["events"]), processing_s=float(result["processing_s"]),
                 histograms=str(out))
    r["workers"] = workers
    print(f"      {r['events']:,} events in {r['wall_s']:.2f} s = {r['events'] / r['wall_s']:,.0f} ev/s "
          f"({r['events'] / r['wall_s'] / workers:,.0f} per core; processing only "
          f"{r['events'] / r['processing_s']:,.0f} ev/s); peak RSS per process {r['peak_rss_mb']:.0f} MB, "
          f"tree {r['tree_rss_mb']:.0f} MB; CPU {r['cpu_s']:.1f} s; other load {r['other_cores']:.2f} cores",
          flush=True)
    return r


# --------------------------------------------------------------------------------------
# agreement of the histograms
# --------------------------------------------------------------------------------------

def load_histograms(path: str) -> dict[tuple[str, str, str, str], tuple[list[float], list[float]]]:
    """``(histogram, dataset, category, variation) -> (values, variances)`` with flow bins, from
    highrate's ``histograms.pkl`` or agc_coffea.py's JSON."""
    if path.endswith(".json"):
        raw = json.loads(Path(path).read_text())["histograms"]
        return {tuple(k.split("/")): (v["values"], v["variances"]) for k, v in raw.items()}
    from highrate.outputs.histograms import read_pickle

    return {k: (h.values(flow=True).tolist(), h.variances(flow=True).tolist()) for k, h in read_pickle(path).items()}


def compare(reference: dict, other: dict) -> dict[str, dict]:
    """Per variation: histograms compared, missing on either side, largest relative difference
    of the sums of weights and of squared weights per bin, and whether the pseudo-data's counts
    (weight 1) are equal per bin."""
    import numpy as np

    out: dict[str, dict] = {}
    for key in sorted(set(reference) | set(other)):
        var = key[3]
        row = out.setdefault(var, {"histograms": 0, "only_reference": [], "only_other": [], "max_rel_sumw": 0.0,
                                   "max_rel_sumw2": 0.0, "data_counts_equal": None, "sumw": 0.0})
        if key not in other:
            row["only_reference"].append("/".join(key))
            continue
        if key not in reference:
            row["only_other"].append("/".join(key))
            continue
        row["histograms"] += 1
        (v1, w1), (v2, w2) = (tuple(np.asarray(x, dtype=np.float64) for x in pair) for pair in (reference[key], other[key]))
        for name, a, b in (("max_rel_sumw", v1, v2), ("max_rel_sumw2", w1, w2)):
            if a.shape != b.shape:
                row[name] = float("inf")
                continue
            scale = np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-300)
            row[name] = max(row[name], float(np.max(np.abs(a - b) / scale, initial=0.0)))
        row["sumw"] += float(v1.sum())
        if key[1] == "data":
            equal = v1.shape == v2.shape and bool(np.array_equal(v1, v2))
            row["data_counts_equal"] = equal if row["data_counts_equal"] is None else row["data_counts_equal"] and equal
    return out


def print_agreement(title: str, table: dict[str, dict]) -> bool:
    print()
    print(title)
    print()
    print("| variation | histograms | missing | max rel. diff sum(w) per bin | max rel. diff sum(w²) per bin "
          "| pseudo-data counts per bin | sum(w) over the histograms |")
    print("|---|---:|---:|---:|---:|---|---:|")
    ok = True
    for var in sorted(table, key=lambda v: (v != "nominal", v)):
        row = table[var]
        missing = len(row["only_reference"]) + len(row["only_other"])
        data = {None: "n/a (MC only)", True: "equal", False: "**differ**"}[row["data_counts_equal"]]
        ok &= missing == 0 and row["max_rel_sumw"] < 1e-5 and row["max_rel_sumw2"] < 1e-5 and row["data_counts_equal"] is not False
        print(f"| {var} | {row['histograms']} | {missing} | {row['max_rel_sumw']:.1e} | {row['max_rel_sumw2']:.1e} "
              f"| {data} | {row['sumw']:.6g} |")
        for side in ("only_reference", "only_other"):
            if row[side]:
                print(f"|   {side}: {', '.join(row[side][:6])}{' ...' if len(row[side]) > 6 else ''} | | | | | | |")
    return ok


# --------------------------------------------------------------------------------------
# profile (a child process)
# --------------------------------------------------------------------------------------

def child_profile(argv: list[str], dump: str) -> None:
    """``highrate run ...`` (``argv``) in this process under cProfile; print the top entries."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    from highrate.cli.main import main

    code = main(argv)
    prof.disable()
    prof.dump_stats(dump)
    print_profile(pstats.Stats(prof), "`highrate run` (1 worker): highrate's own code and the analysis",
                  r"highrate[/\\]|examples[/\\]agc", 35)
    sys.exit(code)


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------

def _paired(a: list[dict], b: list[dict]) -> str:
    """Median (range) over repetitions of rate(a) / rate(b), each repetition's own pair."""
    ratios = [(x["events"] / x["wall_s"]) / (y["events"] / y["wall_s"]) for x, y in zip(a, b, strict=False)]
    if not ratios:
        return "n/a"
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f} to {max(ratios):.2f})"


def _paired_cpu(a: list[dict], b: list[dict]) -> str:
    """Median (range) over repetitions of (events per CPU-second of a) / (of b)."""
    ratios = [(x["events"] / x["cpu_s"]) / (y["events"] / y["cpu_s"]) for x, y in zip(a, b, strict=False)]
    if not ratios:
        return "n/a"
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f} to {max(ratios):.2f})"


def print_report(every: dict[tuple[str, str], list[dict]], agreement: dict, title: str) -> bool:
    """The Markdown tables: best repetition per configuration, ratios paired by repetition (of
    wall time per core, and of CPU time: the fairer one when other processes share the cores),
    and the agreement of the histograms. Returns whether the histograms agree."""
    comps = list(dict.fromkeys(comp for _, comp in every))
    labels = [lb for lb in LABELS if any((lb, c) in every for c in comps)]
    reps = max(len(v) for v in every.values())
    print()
    print(f"## Results ({title}; best of {reps})")
    print()
    print("| implementation | compression | events | events/s per core (whole command) | events/s (whole command) "
          "| events/s (processing only) | events per CPU-second | wall s | CPU s | peak RSS / process MB "
          "| tree RSS MB | other load |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in every.items()}
    for comp in comps:
        for label in labels:
            r = best.get((label, comp))
            if r is None:
                continue
            rate = r["events"] / r["wall_s"]
            print(f"| {NAMES[label]} | {comp} | {r['events']:,} | {rate / r['workers'] / 1e3:,.0f} k | {rate / 1e3:,.0f} k "
                  f"| {r['events'] / r['processing_s'] / 1e3:,.0f} k | {r['events'] / r['cpu_s'] / 1e3:,.0f} k "
                  f"| {r['wall_s']:.2f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['tree_rss_mb']:.0f} "
                  f"| {r['other_cores']:.2f} |")
    pairs = (("highrate-1", "coffea-1"), ("highrate-2", "coffea-2"), ("highrate-2", "highrate-1"),
             ("coffea-2", "coffea-1"))
    if any(lb.startswith("coffea") for lb in labels):
        for what, fn in (("events/s of the whole command (per core too where both use as many workers; "
                          "2 / 1: the scaling)", _paired),
                         ("events per CPU-second (2 / 1: the efficiency of the second worker)", _paired_cpu)):
            print()
            print(f"Ratios of {what}, paired by repetition (median and range over the repetitions):")
            print()
            print("| compression | " + " | ".join(f"{a} / {b}" for a, b in pairs) + " |")
            print("|---|" + "---:|" * len(pairs))
            for comp in comps:
                cells = []
                for a, b in pairs:
                    cells.append(fn(every.get((a, comp), []), every.get((b, comp), [])))
                print(f"| {comp} | " + " | ".join(cells) + " |")
    ok = True
    for comp, per_label in agreement.items():
        for label, table in per_label.items():
            ok &= print_agreement(f"Histograms of {label} against highrate-1 ({comp}):", table)
    print()
    print("Histograms agree." if ok else "**The histograms DIFFER** (see above).")
    print("Targets: highrate >= 3x coffea per core; peak RSS <= 500 MB per worker.")
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=100_000,
                   help="events per sample and file; 10 samples (9 simulated, pseudo-data), so 1M events "
                        "in all by default")
    p.add_argument("--files", type=int, default=1, help="files per sample (default 1)")
    p.add_argument("--seed", type=int, default=2015)
    p.add_argument("--workdir", type=Path, default=REPO / "bench-data",
                   help="where the inputs are generated and reused (default ./bench-data, git-ignored)")
    p.add_argument("--compressions", nargs="+", default=["zstd", "lzma"], choices=["zstd", "lzma", "zlib", "lz4"])
    p.add_argument("--chunk-size", type=int, default=250_000, help="entries per chunk, both sides (default 250,000)")
    p.add_argument("--repeat", type=int, default=3, help="interleaved repetitions (default 3)")
    p.add_argument("--skip-coffea", action="store_true")
    p.add_argument("--skip-two-workers", action="store_true")
    p.add_argument("--coffea-python", default=default_coffea_python(),
                   help="python of the venv with coffea (default ./.venv-coffea/bin/python)")
    p.add_argument("--wait-idle", type=float, default=20.0, metavar="S",
                   help="before each measurement wait up to S s for other processes to leave the CPUs "
                        "(< 0.3 cores busy); 0 disables (default 20)")
    p.add_argument("--profile", type=Path, default=None,
                   help="afterwards run highrate (1 worker, first compression) under cProfile: pstats dump "
                        "here, top entries printed")
    p.add_argument("--cache", choices=["off", "warm"], default="off",
                   help="off (default): HIGHRATE_CACHE=off, every highrate run traces the analysis and reads the "
                        "files' metadata; warm: both remembered from a first, unmeasured run (a user's run over "
                        "files and an analysis seen before); chunk results are never taken from the cache")
    p.add_argument("--json", type=Path, default=None, help="write every measurement here")
    p.add_argument("--outputs", type=Path, default=None,
                   help="keep the runs' outputs here (default: a temporary folder, removed)")
    p.add_argument("--report-from", type=Path, default=None, metavar="JSON",
                   help="print the tables of an earlier run's --json file, and nothing else")
    p.add_argument("--_profile_child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._profile_child:
        child_profile(args._profile_child[1:], args._profile_child[0])
        return
    if args.report_from:
        saved = json.loads(args.report_from.read_text())
        every = {tuple(k.split(" ", 1)): v for k, v in saved["runs"].items()}
        print_report(every, saved["agreement"], saved.get("title", str(args.report_from)))
        return

    t_start = time.perf_counter()
    labels = [lb for lb in LABELS if not (args.skip_two_workers and lb.endswith("-2"))]
    if args.skip_coffea or not args.coffea_python:
        if not args.skip_coffea:
            print("[warn] no coffea python (create .venv-coffea, see benchmarks/README.md): coffea skipped", flush=True)
        args.coffea_python = None
        labels = [lb for lb in labels if lb.startswith("highrate")]
    print(f"# highrate AGC ttbar benchmark: {args.events:,} events per sample and file x {args.files} file(s) x "
          f"10 samples, {args.compressions}, chunk size {args.chunk_size:,}", flush=True)
    print(environment(args.coffea_python), flush=True)
    if not ANALYSIS.exists():
        sys.exit(f"{ANALYSIS} is missing")
    yamls = generate(args.workdir, args.events, args.files, args.compressions, args.seed,
                     jobs=max(1, min(os.cpu_count() or 1, 4)))
    byte_compile_highrate()
    out_dir = args.outputs or Path(tempfile.mkdtemp(prefix="bench-agc-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {comp: [f for fs in input_files(y).values() for f in fs] for comp, y in yamls.items()}
    for comp, fs in files.items():
        print(f"[prep] {comp}: {len(fs)} files, {warm_up(fs) / 2**20:.0f} MiB (page-cached)", flush=True)

    if args.cache == "warm":
        for comp, yaml_path in yamls.items():
            print(f"[prep] {comp}: one unmeasured highrate run, so that its trace and file metadata are remembered",
                  flush=True)
            out = out_dir / f"prime-{comp}"
            subprocess.run(highrate_cmd(yaml_path, out, 1, args.chunk_size), check=True, cwd=REPO,
                           env=highrate_env(args, out_dir), stdout=subprocess.DEVNULL)
            shutil.rmtree(out, ignore_errors=True)

    every: dict[tuple[str, str], list[dict]] = {}
    agreement: dict[str, dict] = {}
    for rep in range(args.repeat):
        for comp, yaml_path in yamls.items():
            warm_up(files[comp])
            for label in labels:
                if args.wait_idle > 0:
                    wait_quiet(args.wait_idle)
                r = measure(label, comp, yaml_path, out_dir, args)
                r["rep"] = rep + 1
                every.setdefault((label, comp), []).append(r)
            if rep == 0:  # the histograms of every configuration against highrate-1's
                ref = load_histograms(every[("highrate-1", comp)][0]["histograms"])
                agreement[comp] = {lb: compare(ref, load_histograms(every[(lb, comp)][0]["histograms"]))
                                   for lb in labels if lb != "highrate-1"}

    title = (f"{args.events:,} events per sample x {args.files} file(s) x 10 samples per compression, "
             f"{os.cpu_count()} CPUs, chunk size {args.chunk_size:,}, highrate's cache {args.cache}")
    print_report(every, agreement, title)

    if args.profile:
        comp = next(iter(yamls))
        out = out_dir / "profile"
        shutil.rmtree(out, ignore_errors=True)
        argv = highrate_cmd(yamls[comp], out, 1, args.chunk_size)[1:]
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_profile_child", str(args.profile.resolve()), *argv]
        print(f"\n[profile] {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True, cwd=REPO, env=highrate_env(args, out_dir))
    print(f"Total benchmark wall time: {time.perf_counter() - t_start:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"title": title, "runs": {f"{k[0]} {k[1]}": v for k, v in every.items()},
                                         "agreement": agreement}, indent=1))
    if args.outputs is None:
        shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

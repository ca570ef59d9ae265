#!/usr/bin/env python
"""By-hand benchmark of the analyst's tenth pass: re-runs after an edit, against the first pass.

Not run in CI. For each compression (default ZSTD and LZMA) it generates ``--events`` synthetic
NanoAOD MC events (the files of ``bench_zmumu.py``, cached in ``--workdir``), warms the page
cache, and measures, with 2 workers, the Z→μμ example (``examples/zmumu/analysis_nominal.py``)
and edited copies of it:

* ``first``     -- the first pass: empty cache of columns and stage results, no remembered trace;
* ``unchanged`` -- the same analysis again (a whole command: the same command line, answered by
                   its up-to-date stamp; and with another ``--output``, from the chunk results);
* ``rebinned``  -- the mll histogram re-binned (120 → 60 bins);
* ``added``     -- a histogram of a quantity no histogram filled before (the second muon's pT);
* ``presel``    -- the preselection's leading-muon cut 25 → 26 GeV;
* ``skim``      -- the skim's muon cut 18 → 20 GeV;

each (a) as a whole command, ``highrate run ... --executor processes --workers 2`` in a fresh
process (interpreter start and imports count), (a') the same commands while ``highrate serve``
listens (each forked from the warm server), and (b) in one warm ``highrate.Session`` with 2
worker processes. Every ratio is against the first pass of the same kind, in the same
invocation. In the Session every cached result is compared, bit for bit, with a run of the same
analysis with the cache off. Also reported: the first pass with the cache off (what writing the
cache costs), the Session's 1- vs 2-worker scaling without the cache, and the largest worker RSS.

    python benchmarks/bench_iterate.py --events 2000000 --files 4
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_zmumu import ANALYSIS, generate, mc_files, warm_up  # noqa: E402

EDITS = {
    "unchanged": [],
    "rebinned": [('Axis("mll", 120, 60, 120', 'Axis("mll", 60, 60, 120')],
    "added": [('    ],\n)', '        Histogram("MuonGood_pt_2", Axis("MuonGood.pt[1]", 100, 0, 200)),\n    ],\n)')],
    "presel": [('"lead_pt": 25', '"lead_pt": 26')],
    "skim": [('params={"pt": 18}', 'params={"pt": 20}')],
}


def variant(folder: Path, name: str) -> Path:
    """The example analysis with the edit ``name``, written as ``folder/<name>/analysis.py``."""
    text = ANALYSIS.read_text()
    for old, new in EDITS.get(name, []):
        assert old in text, (name, old)
        text = text.replace(old, new)
    out = folder / name / "analysis.py"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def whole_command(analysis: Path, datasets: Path, env: dict[str, str], out: Path, *, cache: bool = True) -> float:
    cmd = [sys.executable, "-m", "highrate", "run", str(analysis), "--datasets", str(datasets), "--executor",
           "processes", "--workers", "2", "--output", str(out), "--no-progress", "--no-checkpoints"]
    if not cache:
        cmd.append("--no-cache")
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def fresh_env(workdir: Path) -> dict[str, str]:
    """Empty caches: highrate's folder (remembered traces and file metadata) and the chunk cache."""
    for name in ("xdg", "chunks"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    return {**os.environ, "XDG_CACHE_HOME": str(workdir / "xdg"), "HIGHRATE_CACHE_DIR": str(workdir / "chunks")}


def bench_commands(folder: Path, datasets: Path, workdir: Path) -> dict[str, float]:
    env = fresh_env(workdir)
    times = {"first (cache off)": whole_command(variant(folder, "unchanged"), datasets, env, workdir / "out",
                                                cache=False)}
    env = fresh_env(workdir)
    times["first"] = whole_command(variant(folder, "unchanged"), datasets, env, workdir / "out")
    for name in EDITS:
        times[name] = whole_command(variant(folder, name), datasets, env, workdir / "out")
        if name == "unchanged":  # another command line has no up-to-date stamp: the chunk results' cache
            times["unchanged, another --output"] = whole_command(variant(folder, name), datasets, env,
                                                                 workdir / "out-other")
    return times


def bench_served(folder: Path, datasets: Path, workdir: Path) -> dict[str, float]:
    """The same whole commands while a ``highrate serve`` of this environment listens: each is
    forked from the warm server (no interpreter start, no imports)."""
    env = fresh_env(workdir)
    server = subprocess.Popen([sys.executable, "-m", "highrate", "serve", "--idle-timeout", "600"], env=env,
                              stderr=subprocess.DEVNULL)
    try:
        probe = subprocess.run([sys.executable, "-c", "from highrate.cli.warm import socket_path; print(socket_path())"],
                               env=env, capture_output=True, text=True, check=True).stdout.strip()
        while not Path(probe).exists():
            time.sleep(0.05)
        times = {"first": whole_command(variant(folder, "unchanged"), datasets, env, workdir / "out-served")}
        for name in EDITS:
            times[name] = whole_command(variant(folder, name), datasets, env, workdir / "out-served")
        return times
    finally:
        server.terminate()
        server.wait(timeout=30)


def bench_session(folder: Path, datasets: Path, workdir: Path) -> tuple[dict[str, float], dict[str, float]]:
    import numpy as np

    import highrate

    os.environ.update(fresh_env(workdir))
    times: dict[str, float] = {}
    with highrate.Session(executor="processes", workers=2) as s:
        first = s.run(variant(folder, "unchanged"), datasets, progress=False)
        times["first"] = first.wall_s
        stored = first.result.cache["columns"]["bytes_written"]
        compressed = sum(c["bytes_read"] for c in first.result.counts.values())
        print(f"column cache: {stored / 1e6:,.0f} MB raw for {compressed / 1e6:,.0f} MB of compressed baskets "
              f"({stored / compressed:.2f}x)")
        for name in EDITS:
            cached = s.run(variant(folder, name), datasets, progress=False)
            times[name] = cached.wall_s
            clean = s.run(variant(folder, name), datasets, progress=False, cache=False)
            for key, h in clean.result.histograms.items():
                assert np.array_equal(h.values(flow=True), cached.result.histograms[key].values(flow=True)), key
                assert np.array_equal(h.variances(flow=True), cached.result.histograms[key].variances(flow=True))
            assert clean.result.cutflow == cached.result.cutflow, name
    scaling = {}
    for workers in (1, 2):  # steady state without the cache: the second run of a session
        with highrate.Session(executor="processes", workers=workers) as s:
            s.run(variant(folder, "unchanged"), datasets, progress=False, cache=False)
            scaling[f"{workers} worker(s), cache off"] = s.run(variant(folder, "unchanged"), datasets,
                                                               progress=False, cache=False).wall_s
    return times, scaling


def table(title: str, times: dict[str, float], events: int) -> str:
    first = times["first"]
    lines = [f"\n### {title}\n", "| run | wall (s) | events/s | vs first pass |", "|---|---:|---:|---:|"]
    for name, t in times.items():
        lines.append(f"| {name} | {t:.3f} | {events / t:,.0f} | {first / t:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--compressions", default="zstd,lzma")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "highrate-bench"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    comps = args.compressions.split(",")
    yamls = generate(workdir, args.events, args.files, comps, args.seed, jobs=os.cpu_count() or 1)
    found: dict[str, dict] = {}
    for comp in comps:
        warm_up(mc_files(yamls[comp]))
        folder = workdir / f"iterate-{comp}"
        commands = bench_commands(folder, yamls[comp], folder)
        served = bench_served(folder, yamls[comp], folder)
        session, scaling = bench_session(folder, yamls[comp], folder)
        found[comp] = {"command": commands, "served": served, "session": session, "scaling": scaling}
        print(table(f"{comp.upper()}, whole command (2 workers)", commands, args.events))
        print(table(f"{comp.upper()}, whole command with highrate serve (2 workers)", served, args.events))
        print(table(f"{comp.upper()}, warm Session (2 workers)", session, args.events))
        one, two = scaling.values()
        print(f"\nSession without the cache: 1 worker {one:.3f} s, 2 workers {two:.3f} s: {one / two:.2f}x")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\nlargest worker peak RSS: {rss:,.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps({**found, "worker_peak_rss_mb": rss}, indent=2))


if __name__ == "__main__":
    main()

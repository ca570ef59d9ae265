"""``highrate run --watch``: run once, then again through one warm Session whenever the analysis
file, its helper modules or the datasets file change, printing what moved since the last run."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from highrate.engine.result import Result
from highrate.errors import ConfigError, HighrateError, RunFailedError, UserCodeError
from highrate.execution.options import RunOptions
from highrate.interactive.session import Session, SessionResult

POLL_S = 0.5  # how often the files are looked at
SETTLE_S = 0.1  # an editor may write a file in several steps: wait until it stops changing
NOISE = 1e-9  # relative changes below this are the order in which chunks were summed, not an edit

Stamps = dict[Path, tuple[int, int] | None]


def watch(analysis_path: str | Path, datasets_path: str | Path, names: list[str] | None, output: str,
          args: argparse.Namespace, options: RunOptions) -> int:
    """Run, then re-run on every change until Ctrl-C (or ``--watch-runs`` re-runs); exit code 0."""
    from highrate.rdf.loading import is_rdf_analysis

    if is_rdf_analysis(analysis_path):
        raise ConfigError("--watch runs highrate analyses (analysis = Analysis(...)), not RDataFrame ones.")
    analysis_file, datasets_file = Path(analysis_path).resolve(), Path(datasets_path).resolve()
    # Ctrl-C is for this process, which then stops the workers: forked ones ignore it instead of
    # each printing a traceback
    default = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        session = Session(**{f.name: getattr(options, f.name) for f in fields(options)})
    finally:
        signal.signal(signal.SIGINT, default)
    helpers: list[Path] = []
    last: SessionResult | None = None
    rerun, changed = 0, []
    try:
        with session:
            while True:
                stamps = _stamps([analysis_file, datasets_file, *helpers])
                current, helpers = _attempt(session, analysis_file, datasets_file, names, output, args, options,
                                            helpers)
                stamps.update(_stamps(h for h in helpers if h not in stamps))
                if current is not None:
                    _say(_first_run(current, rerun, output) if last is None else
                         describe(last, current, rerun, changed))
                    last = current
                if args.watch_runs is not None and rerun >= args.watch_runs:
                    return 0
                _say(f"watching {_shown(analysis_file)}, {_shown(datasets_file)}"
                     + (f" and {len(helpers)} helper module(s)" if helpers else "") + " (Ctrl-C to stop)")
                changed = _wait_for_change(stamps)
                rerun += 1
    except KeyboardInterrupt:
        _say("stopped watching.")
        return 0


def _attempt(session: Session, analysis_file: Path, datasets_file: Path, names: list[str] | None, output: str,
             args: argparse.Namespace, options: RunOptions, helpers: list[Path]) -> tuple[SessionResult | None, list[Path]]:
    """One run, its outputs written; an error is printed (the watch goes on) and gives None."""
    from highrate.cli.console import console, progress_bar
    from highrate.data.datasets import load_datasets, select
    from highrate.outputs.write import write_outputs
    from highrate.spec.loading import _local_modules, load_analysis

    try:
        analysis = load_analysis(analysis_file)
        # the modules it imported from its folder: what load_analysis bundles with it
        helpers = sorted(Path(m.__file__).resolve() for m in _local_modules(analysis_file.parent))
        datasets = select(load_datasets(datasets_file), names)
        with progress_bar(enabled=not args.no_progress and sys.stderr.isatty()) as update:
            result = session.run(analysis, datasets, progress=update)
    except HighrateError as err:
        if isinstance(err, UserCodeError) and err.traceback and getattr(args, "debug", False):
            print(err.traceback.rstrip(), file=sys.stderr)
        console.print(f"[bold red]error:[/bold red] {_escape(str(err))}", highlight=False, soft_wrap=True)
        if isinstance(err, RunFailedError):  # too much input failed: the run's outputs still say what
            write_outputs(output, err.outcome, analysis, options, inputs=_inputs(analysis_file, datasets_file, names))
        return None, helpers
    except Exception as err:  # a bug of ours must not end the watch either
        console.print(f"[bold red]error:[/bold red] {type(err).__name__}: {_escape(str(err))}", highlight=False,
                      soft_wrap=True)
        return None, helpers
    write_outputs(output, result.outcome, analysis, options, inputs=_inputs(analysis_file, datasets_file, names))
    return result, helpers


def describe(old: SessionResult, new: SessionResult, rerun: int, changed: list[Path]) -> str:
    """What moved between two runs: histograms, cutflow steps, the wall time."""
    lines = [f"re-run {rerun} ({', '.join(_shown(p) for p in changed) or 'no file'} changed): "
             f"{new.wall_s:.2f} s (previous run {old.wall_s:.2f} s)"]
    moved = histogram_changes(old.result, new.result)
    if moved:
        lines.append("  histograms that moved (max relative change of a bin):")
        lines += [f"    {name} {dataset} {category}: {what}" for (name, dataset, category), what in moved.items()]
    steps = cutflow_changes(old.result, new.result)
    if steps:
        lines.append("  cutflow:")
        lines += [f"    {dataset}: {step}: {_count(a)} → {_count(b)}" for dataset, step, a, b in steps]
    if not moved and not steps:
        lines.append("  no histogram or cutflow changed")
    return "\n".join(lines)


def histogram_changes(old: Result, new: Result) -> dict[tuple[str, str, str], str]:
    """Per (histogram, dataset, category) that changed: "new", "removed", "binning changed" or the
    largest relative change of a bin over its variations (``inf``: a bin that was empty is not)."""
    group = lambda r: {k[:3] for k in r.histograms}  # noqa: E731
    out: dict[tuple[str, str, str], str] = {}
    for key in sorted(group(old) | group(new)):
        before = {k[3]: h for k, h in old.histograms.items() if k[:3] == key}
        after = {k[3]: h for k, h in new.histograms.items() if k[:3] == key}
        if not before or not after:
            out[key] = "new" if after else "removed"
            continue
        common = sorted(set(before) & set(after))
        if any(before[v].axes != after[v].axes for v in common):
            out[key] = "binning changed"
            continue
        change = max((_relative(before[v].values(), after[v].values()) for v in common), default=0.0)
        text = "inf" if change == np.inf else f"{change:.4%}" if change > NOISE else ""
        if set(before) != set(after):
            text = ", ".join(filter(None, [text, f"variations {len(before)} → {len(after)}"]))
        if text:
            out[key] = text
    return out


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    """max |b - a| / |a| over bins; inf where a bin with a = 0 has b != 0."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = np.abs(b - a)
    if np.any((a == 0) & (diff > 0)):
        return float(np.inf)
    nonzero = a != 0
    return float(np.max(diff[nonzero] / np.abs(a[nonzero]), initial=0.0))


def cutflow_changes(old: Result, new: Result) -> list[tuple[str, str, int | None, int | None]]:
    """(dataset, step, before, after) of every cutflow count that changed (None: absent)."""
    out = []
    for dataset in sorted(set(old.cutflow) | set(new.cutflow)):
        before, after = old.cutflow.get(dataset, {}), new.cutflow.get(dataset, {})
        steps = list(before) + [s for s in after if s not in before]
        out += [(dataset, s, before.get(s), after.get(s)) for s in steps if before.get(s) != after.get(s)]
    return out


def _first_run(result: SessionResult, rerun: int, output: str) -> str:
    events = sum(int(c.get("total", 0)) for c in result.counts.values())
    return (f"{'run' if rerun == 0 else f're-run {rerun}'}: {result.wall_s:.2f} s, {events:,} events, {len({k[0] for k in result.histograms})} "
            f"histogram(s); outputs in {output}")


def _wait_for_change(stamps: Stamps) -> list[Path]:
    """Sleep until a watched file changes; the files that did, once they stopped changing."""
    while True:
        time.sleep(POLL_S)
        now = _stamps(stamps)
        if now != stamps:
            while (settled := _stamps(stamps)) != now:
                now = settled
                time.sleep(SETTLE_S)
            return [p for p in stamps if now[p] != stamps[p]]


def _stamps(paths: Iterable[Path]) -> Stamps:
    """Each file's (mtime in ns, size), or None where it is missing (an editor between writes)."""
    out: Stamps = {}
    for p in paths:
        try:
            st = p.stat()
            out[p] = (st.st_mtime_ns, st.st_size)
        except OSError:
            out[p] = None
    return out


def _inputs(analysis_file: Path, datasets_file: Path, names: list[str] | None) -> dict[str, Any]:
    return {"analysis": str(analysis_file), "datasets": str(datasets_file), "dataset_names": names}


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _count(n: int | None) -> str:
    return "-" if n is None else str(n)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _say(text: str) -> None:
    print(text, flush=True)  # plain print: rich would wrap long lines when stdout is not a terminal

"""The verbs that run an analysis: ``run``, ``demo``, ``rerun-failed``, and ``generate`` for its inputs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from highrate.cli.flags import add_debug
from highrate.errors import RunFailedError


def add_running_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``run``, ``demo``, ``rerun-failed`` and ``generate`` verbs."""
    run = sub.add_parser("run", help="run an analysis over a datasets file", description="Run ANALYSIS.py over the datasets.")
    run.add_argument("analysis", help="Python file defining 'analysis = Analysis(...)'")
    run.add_argument("--datasets", required=True, help="datasets YAML file")
    run.add_argument("--dataset", action="append", default=None, metavar="NAME", help="only this dataset (repeatable)")
    run.add_argument("--output", default="highrate-output", help="output folder (default: %(default)s)")
    run.add_argument("--watch", action="store_true",
                     help="after the run, re-run on every change of the analysis file, its helper modules or the "
                     "datasets file, on the same warm workers, and print what changed; Ctrl-C stops")
    run.add_argument("--watch-runs", type=int, default=None, metavar="N",
                     help="with --watch, stop after N re-runs (for tests and scripts)")
    _run_options(run)
    add_debug(run)
    run.set_defaults(handler=_cmd_run)

    demo = sub.add_parser("demo", help="generate the default sample once and run the Z→μμ example on it "
                          "(highrate demo agc: the AGC ttbar analysis on its samples)")
    demo.add_argument("example", nargs="?", choices=("zmumu", "agc"), default="zmumu",
                      help="which reference analysis: zmumu (default) or agc")
    demo.add_argument("--events", type=int, default=None,
                      help="events per sample (default: 1000000 for zmumu, 200000 for agc)")
    demo.add_argument("--files", type=int, default=None, help="files per sample (default: 4 for zmumu, 2 for agc)")
    demo.add_argument("--cache-dir", default=None,
                      help="highrate's cache folder: the sample, and the cache of columns and stage results in its "
                      "chunks/ (default: ~/.cache/highrate)")
    demo.add_argument("--output", default=None,
                      help="output folder (default: highrate-demo, or highrate-demo-agc for agc)")
    _run_options(demo, cache_dir=False)
    add_debug(demo)
    demo.set_defaults(handler=_cmd_demo)

    rerun = sub.add_parser(
        "rerun-failed", help="process only the failed chunks of an earlier run and merge them in",
        description="Rerun the failed chunks of OUTDIR's run: every chunk that succeeded is taken from its "
        "checkpoint, so only the failed ones are computed; outputs in OUTDIR are rewritten.",
    )
    rerun.add_argument("outdir", help="the output folder of the earlier run")
    rerun.add_argument("--executor", default=None,
                       help="sequential | processes | dask (default: processes with --workers N > 1, else sequential)")
    rerun.add_argument("--workers", type=int, default=None)
    rerun.add_argument("--scheduler", default=None, metavar="ADDR")
    rerun.add_argument("--cluster", default=None, metavar="NAME", help="cluster profile (see `highrate cluster list`)")
    rerun.add_argument("--retries", type=int, default=2, metavar="N")
    rerun.add_argument("--no-progress", action="store_true")
    add_debug(rerun)
    rerun.set_defaults(handler=_cmd_rerun_failed)

    gen = sub.add_parser("generate", help="write a synthetic NanoAOD data set (MC and data) with datasets.yaml")
    gen.add_argument("outdir", help="output folder")
    gen.add_argument("--events", type=int, default=100_000, help="events per sample (default: %(default)s)")
    gen.add_argument("--files", type=int, default=2, help="files per sample (default: %(default)s)")
    gen.add_argument("--seed", type=int, default=42, help="random seed (default: %(default)s)")
    gen.add_argument("--compression", default="zstd", choices=["zlib", "lzma", "lz4", "zstd"], help="(default: %(default)s)")
    gen.add_argument("--extra-branches", type=int, default=0, help="extra branches, to mimic wide CMSSW files")
    gen.add_argument("--nanoaod-version", type=int, default=12, choices=[12, 15], help="15: jet energy fractions, no Jet_jetId (default: %(default)s)")
    add_debug(gen)
    gen.set_defaults(handler=_cmd_generate)



def _run_options(p: argparse.ArgumentParser, *, cache_dir: bool = True) -> None:
    p.add_argument("--executor", default=None,
                   help="sequential | processes | dask (default: processes with --workers N > 1, else sequential); "
                   "see also --scheduler, --cluster")
    p.add_argument("--workers", type=int, default=None, help="worker processes (processes, dask)")
    p.add_argument("--scheduler", default=None, metavar="ADDR", help="existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--cluster", default=None, metavar="NAME", help="cluster profile (see `highrate cluster list`)")
    p.add_argument("--gateway", default=None, metavar="URL",
                   help="a Dask Gateway's address: run on a new cluster from it (--workers N workers), shut down at the end")
    p.add_argument("--chunk-size", type=int, default=250_000, help="entries per chunk (default: %(default)s)")
    p.add_argument("--limit-files", type=int, default=None, metavar="N", help="at most N files per dataset")
    p.add_argument("--limit-chunks", type=int, default=None, metavar="N", help="at most N chunks per dataset")
    p.add_argument("--skip-bad-files", action="store_true", help="record unreadable files/chunks in report.json and go on")
    p.add_argument("--max-failed-fraction", type=float, default=None, metavar="F",
                   help="with --skip-bad-files, fail the run when a dataset loses more than this share (0-1) of its "
                   "input (default: only when a dataset processed nothing)")
    p.add_argument("--retries", type=int, default=2, metavar="N", help="extra attempts per failing chunk (default: %(default)s)")
    p.add_argument("--chunk-timeout", type=float, default=None, metavar="S",
                   help="report a chunk (or a file's opening) whose read takes longer than S seconds")
    p.add_argument("--resume", action="store_true", help="reuse the chunk results checkpointed by an earlier run into --output")
    p.add_argument("--no-checkpoints", action="store_true", help="do not store chunk results in OUTPUT/checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-cache", action="store_true",
                   help="neither read nor write the cache of columns and stage results (as HIGHRATE_CACHE=off)")
    if cache_dir:
        p.add_argument("--cache-dir", default=None, metavar="DIR",
                       help="the cache of columns and stage results (default: $HIGHRATE_CACHE_DIR, else "
                       "~/.cache/highrate/chunks; on Dask, each worker's own)")
    p.add_argument("--cache-size", default=None, metavar="SIZE",
                   help="the cache's size limit, e.g. 500M, 20G (default: $HIGHRATE_CACHE_SIZE, else 10G)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"],
                   help="where stages with a GPU version run: auto uses a GPU when CuPy finds one; gpu fails "
                   "without one (on Dask: workers started with --resources GPU=1) (default: %(default)s)")



def _options(args: argparse.Namespace, output: str):
    from highrate.errors import ConfigError
    from highrate.execution.options import RunOptions

    if args.resume and args.no_checkpoints:
        raise ConfigError("--resume needs the checkpoints; drop --no-checkpoints.")
    if args.retries < 0:
        raise ConfigError(f"--retries must be 0 or more, got {args.retries}.")
    gateway = getattr(args, "gateway", None)
    if gateway and (args.cluster or args.scheduler):
        raise ConfigError("give one of --gateway, --cluster and --scheduler.")
    cluster = gateway or args.cluster  # a gateway's address is an ad-hoc cluster profile
    return RunOptions(
        executor="cluster" if cluster else "dask" if args.scheduler else _executor(args),
        workers=args.workers, scheduler=args.scheduler, cluster=cluster,
        chunk_size=args.chunk_size, limit_files=args.limit_files, limit_chunks=args.limit_chunks,
        skip_bad_files=args.skip_bad_files, retries=args.retries, resume=args.resume,
        max_failed_fraction=getattr(args, "max_failed_fraction", None),
        chunk_timeout=getattr(args, "chunk_timeout", None),
        checkpoint_dir=None if args.no_checkpoints else str(Path(output) / "checkpoints"),
        columns_dir=str(Path(output) / "columns"),
        device=_device(args),
        cache=False if getattr(args, "no_cache", False) else None,
        cache_dir=_cache_dir(args),
        cache_size=_size(getattr(args, "cache_size", None)),
    )


def _cache_dir(args: argparse.Namespace) -> str | None:
    """--cache-dir: the cache's folder (for the demo, highrate's cache folder, which holds it)."""
    from highrate.base.cachedir import cache_root

    folder = getattr(args, "cache_dir", None)
    if folder and getattr(args, "command", None) == "demo":
        return str(cache_root(folder) / "chunks")
    return folder


def _size(text: str | None) -> int | None:
    from highrate.base.store import parse_size
    from highrate.errors import ConfigError

    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as err:
        raise ConfigError(f"--cache-size: {err}") from None


def _device(args: argparse.Namespace) -> str:
    """--device; ``gpu`` is checked here when the chunks run on this machine, before any is read."""
    from highrate.devices.select import resolve

    device = getattr(args, "device", "auto")
    if device == "gpu" and not (args.cluster or getattr(args, "gateway", None) or args.scheduler
                                or args.executor == "dask"):
        resolve(device)
    return device



def _executor(args: argparse.Namespace) -> str:
    """The --executor given, else processes for --workers N > 1 (said on stderr), else sequential."""
    if args.executor:
        return str(args.executor)
    if args.workers is not None and args.workers > 1:
        from highrate.cli.console import console

        console.print(f"--workers {args.workers}: running on {args.workers} worker processes (--executor processes).",
                      highlight=False)
        return "processes"
    return "sequential"


def _execute(analysis_path: str | Path, datasets_path: str | Path, names: list[str] | None, output: str,
             args: argparse.Namespace) -> int:
    from highrate.cli.console import console, print_summary, progress_bar, results
    from highrate.data.datasets import load_datasets, select
    from highrate.execution.executors import make_executor
    from highrate.execution.runner import run
    from highrate.outputs.write import write_outputs
    from highrate.rdf.loading import is_rdf_analysis
    from highrate.spec.loading import load_analysis

    if is_rdf_analysis(analysis_path):  # `def build(df, dataset)`: the RDataFrame engine (highrate.rdf)
        return _execute_rdf(analysis_path, datasets_path, names, output, args)
    analysis = load_analysis(analysis_path)
    datasets = select(load_datasets(datasets_path), names)
    options = _options(args, output)
    executor = make_executor(options.executor, workers=options.workers, scheduler=options.scheduler,
                             cluster=options.cluster)
    try:
        if getattr(executor, "dashboard_link", None):
            console.print(f"Dask dashboard: {executor.dashboard_link}", highlight=False)
        with progress_bar(enabled=not args.no_progress and sys.stderr.isatty()) as update:
            try:
                outcome, failed = run(analysis, datasets, options=options, executor=executor, progress=update), None
            except RunFailedError as err:  # too much failed: still write what the run did, then fail
                outcome, failed = err.outcome, err
    finally:
        executor.close()
    inputs = {"analysis": str(Path(analysis_path).resolve()), "datasets": str(Path(datasets_path).resolve()),
              "dataset_names": names}
    report = write_outputs(output, outcome, analysis, options, inputs=inputs)
    results.export_text(clear=True)  # what it printed before: not this run's summary
    print_summary(report, output)
    if failed is not None:
        raise failed
    if not report["failed_chunks"]:
        _stamp(args, [analysis_path, datasets_path], datasets, analysis, options, outcome, output)
    return 1 if report["failed_chunks"] and not options.skip_bad_files else 0


def _stamp(args: argparse.Namespace, paths: list[str | Path], datasets: list[Any], analysis: Any, options: Any,
           outcome: Any, output: str) -> None:
    """Record what the outputs were made from (cli/uptodate.py), when every chunk's result went
    through this machine's cache and nothing is read from elsewhere."""
    from highrate.base.cachedir import caching_enabled
    from highrate.cli.console import results
    from highrate.cli.uptodate import applies, record

    argv, stamp = getattr(args, "argv", None), getattr(args, "stamp", None)
    files = [url for d in datasets for f in d.files for url in d.where(f).replicas]
    if (argv is None or stamp is None or not applies(argv) or options.executor not in ("sequential", "processes")
            or options.cache is False or not caching_enabled() or analysis.save_columns is not None
            or any("://" in url for url in files)):
        return
    record(stamp, summary=results.export_text(clear=True), sources=map(str, paths), files=files,
           reads=outcome.result.inputs, globs=[p for d in datasets for p in d.patterns], outputs=output)



def _execute_rdf(analysis_path: str | Path, datasets_path: str | Path, names: list[str] | None, output: str,
                 args: argparse.Namespace) -> int:
    """An RDataFrame analysis: the same datasets, executors and outputs, run by highrate.rdf."""
    from highrate.cli.console import print_summary
    from highrate.data.datasets import load_datasets, select
    from highrate.rdf.running import run_rdf, write_rdf_outputs

    datasets = select(load_datasets(datasets_path), names)
    options = _options(args, output)
    outcome = run_rdf(analysis_path, datasets, options)
    inputs = {"analysis": str(Path(analysis_path).resolve()), "datasets": str(Path(datasets_path).resolve()),
              "dataset_names": names}
    report = write_rdf_outputs(output, outcome, analysis_path, options, inputs=inputs)
    print_summary(report, output)
    return 1 if report["failed_chunks"] and not options.skip_bad_files else 0



def _cmd_run(args: argparse.Namespace) -> int:
    if args.watch_runs is not None and (not args.watch or args.watch_runs < 0):
        from highrate.errors import ConfigError

        raise ConfigError("--watch-runs N needs --watch and N >= 0.")
    if args.watch:
        from highrate.cli.watching import watch

        return watch(args.analysis, args.datasets, args.dataset, args.output, args, _options(args, args.output))
    return _execute(args.analysis, args.datasets, args.dataset, args.output, args)



def _cmd_rerun_failed(args: argparse.Namespace) -> int:
    import json

    from highrate.errors import ConfigError

    path = Path(args.outdir) / "report.json"
    try:
        report = json.loads(path.read_text())
        inputs, opts = report["inputs"], report["options"]
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"{str(path)!r} is not the report of a highrate run ({err}).") from err
    if not (Path(args.outdir) / "checkpoints").is_dir():
        raise ConfigError(f"{args.outdir!r} has no checkpoints: rerun the whole job with 'highrate run'.")
    if not report["failed_chunks"]:
        from highrate.cli.console import console

        console.print("no failed chunks: nothing to rerun.")
        return 0
    for key in ("chunk_size", "limit_files", "limit_chunks", "max_failed_fraction"):
        setattr(args, key, opts.get(key))
    args.resume, args.no_checkpoints, args.skip_bad_files = True, False, True
    args.scheduler = args.scheduler or None
    return _execute(inputs["analysis"], inputs["datasets"], inputs["dataset_names"], args.outdir, args)



def _cmd_demo(args: argparse.Namespace) -> int:
    from highrate.cli.demo import DEMOS, agc_inputs, demo_inputs

    example = getattr(args, "example", "zmumu")
    events, files = DEMOS[example]
    events = events if args.events is None else args.events
    files = files if args.files is None else args.files
    inputs = agc_inputs if example == "agc" else demo_inputs
    analysis, datasets = inputs(events=events, files=files, cache_dir=args.cache_dir)
    output = args.output or ("highrate-demo-agc" if example == "agc" else "highrate-demo")
    return _execute(analysis, datasets, None, output, args)



def _cmd_generate(args: argparse.Namespace) -> int:
    from highrate.cli.console import console
    from highrate.testing import generate_dataset_set

    path = generate_dataset_set(
        args.outdir, events=args.events, files=args.files, seed=args.seed,
        compression=args.compression, extra_branches=args.extra_branches, nanoaod_version=args.nanoaod_version,
    )
    console.print(f"wrote {args.files} file(s) x 2 samples of {args.events:,} events; datasets file: {path}")
    return 0

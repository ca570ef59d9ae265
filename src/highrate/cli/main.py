"""The ``highrate`` command: run, demo, generate, datasets, plot, fit, cluster, rerun-failed.

Each verb imports the layers it uses when it runs, so that ``highrate --help`` and the quick verbs
do not pay for numpy, awkward and uproot (~0.3 s).
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from highrate.errors import HighrateError


def console_main() -> None:
    """The ``highrate`` console script (and ``python -m highrate``): :func:`main`, then exit."""
    code = main()
    # The process ends here. Frozen, the objects it leaves (every module numpy, awkward and hist
    # brought) are skipped by the interpreter's final garbage collection: ~50 ms less per command.
    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: this process's arguments); returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except HighrateError as err:
        if args.debug:
            raise
        from rich.markup import escape

        from highrate.cli.console import console

        # escaped: file names, globs and entry ranges hold brackets that rich would take for markup
        console.print(f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="highrate", description="High-rate declarative columnar analysis.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run an analysis over a datasets file", description="Run ANALYSIS.py over the datasets.")
    run.add_argument("analysis", help="Python file defining 'analysis = Analysis(...)'")
    run.add_argument("--datasets", required=True, help="datasets YAML file")
    run.add_argument("--dataset", action="append", default=None, metavar="NAME", help="only this dataset (repeatable)")
    run.add_argument("--output", default="highrate-output", help="output folder (default: %(default)s)")
    _run_options(run)
    _debug(run)
    run.set_defaults(handler=_cmd_run)

    demo = sub.add_parser("demo", help="generate the default sample once and run the Z→μμ example on it")
    demo.add_argument("--events", type=int, default=1_000_000, help="events per sample (default: %(default)s)")
    demo.add_argument("--files", type=int, default=4, help="files per sample (default: %(default)s)")
    demo.add_argument("--cache-dir", default=None, help="where the sample is kept (default: ~/.cache/highrate)")
    demo.add_argument("--output", default="highrate-demo", help="output folder (default: %(default)s)")
    _run_options(demo)
    _debug(demo)
    demo.set_defaults(handler=_cmd_demo)

    rerun = sub.add_parser(
        "rerun-failed", help="process only the failed chunks of an earlier run and merge them in",
        description="Rerun the failed chunks of OUTDIR's run: every chunk that succeeded is taken from its "
        "checkpoint, so only the failed ones are computed; outputs in OUTDIR are rewritten.",
    )
    rerun.add_argument("outdir", help="the output folder of the earlier run")
    rerun.add_argument("--executor", default="sequential", help="(default: %(default)s)")
    rerun.add_argument("--workers", type=int, default=None)
    rerun.add_argument("--scheduler", default=None, metavar="ADDR")
    rerun.add_argument("--cluster", default=None, metavar="NAME", help="cluster profile (see `highrate cluster list`)")
    rerun.add_argument("--retries", type=int, default=2, metavar="N")
    rerun.add_argument("--no-progress", action="store_true")
    _debug(rerun)
    rerun.set_defaults(handler=_cmd_rerun_failed)

    gen = sub.add_parser("generate", help="write a synthetic NanoAOD data set (MC and data) with datasets.yaml")
    gen.add_argument("outdir", help="output folder")
    gen.add_argument("--events", type=int, default=100_000, help="events per sample (default: %(default)s)")
    gen.add_argument("--files", type=int, default=2, help="files per sample (default: %(default)s)")
    gen.add_argument("--seed", type=int, default=42, help="random seed (default: %(default)s)")
    gen.add_argument("--compression", default="zstd", choices=["zlib", "lzma", "lz4", "zstd"], help="(default: %(default)s)")
    gen.add_argument("--extra-branches", type=int, default=0, help="extra branches, to mimic wide CMSSW files")
    _debug(gen)
    gen.set_defaults(handler=_cmd_generate)
    plot = sub.add_parser("plot", help="data/MC plots and cutflow tables from the output folder of a run",
                          description="Data/MC plots of every 1D histogram and category of OUTDIR, and cutflow tables.")
    plot.add_argument("outdir", help="the output folder of 'highrate run'")
    plot.add_argument("--output", default=None, metavar="DIR", help="where to write (default: OUTDIR/plots)")
    plot.add_argument("--histogram", action="append", default=None, metavar="NAME", help="only this histogram (repeatable)")
    plot.add_argument("--category", action="append", default=None, metavar="NAME", help="only this category (repeatable)")
    plot.add_argument("--format", nargs="+", default=["png", "pdf"], choices=["png", "pdf", "svg"], help="(default: png pdf)")
    plot.add_argument("--lumi", type=float, default=None, metavar="FB", help="luminosity in fb^-1 for the label")
    plot.add_argument("--label", default="Preliminary", help="text after 'CMS' (default: %(default)s)")
    plot.add_argument("--log", action="store_true", help="logarithmic y axis")
    _debug(plot)
    plot.set_defaults(handler=_cmd_plot)
    _cluster_parser(sub)
    _fit_parser(sub)
    _datasets_parser(sub)
    return parser


def _datasets_parser(sub: argparse._SubParsersAction) -> None:
    ds = sub.add_parser(
        "datasets", help="list the files of a datasets file: replicas, sites, sizes (resolves rucio:// DIDs)",
        description="List every file of the datasets with its replicas (best first), sites and sizes. Rucio DIDs "
        "are resolved (or read from the cache). With --check each file is opened through the same failover as a "
        "run; with ANALYSIS.py too, the bytes of the branches it needs are shown.",
    )
    ds.add_argument("analysis", nargs="?", default=None, help="Python file defining 'analysis = Analysis(...)'")
    ds.add_argument("--datasets", required=True, help="datasets YAML file")
    ds.add_argument("--dataset", action="append", default=None, metavar="NAME", help="only this dataset (repeatable)")
    ds.add_argument("--check", action="store_true", help="open every file (first working replica)")
    ds.add_argument("--refresh", action="store_true", help="ask Rucio again instead of using the cache")
    ds.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _debug(ds)
    ds.set_defaults(handler=_cmd_datasets)


def _cmd_datasets(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from rich.console import Console
    from rich.markup import escape

    from highrate.data.datasets import load_datasets, select
    from highrate.execution.listing import list_files

    console = Console()  # the listing is the command's output: stdout, unlike progress and errors

    analysis = None
    if args.analysis:
        from highrate.spec.loading import load_analysis

        analysis = load_analysis(args.analysis)
    datasets = select(load_datasets(args.datasets, refresh=args.refresh), args.dataset)
    rows = list_files(datasets, check=args.check or analysis is not None, analysis=analysis)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
        return 1 if any(r.error for r in rows) else 0
    current = None
    for r in rows:
        if r.dataset != current:
            current = r.dataset
            files = [x for x in rows if x.dataset == current]
            known = [x.size for x in files if x.size]
            total = f", {sum(known) / 1e6:,.1f} MB" if len(known) == len(files) else ""
            console.print(f"[bold]{escape(current)}[/bold]: {len(files)} file(s){total}", highlight=False)
        size = f"{r.size / 1e6:,.2f} MB" if r.size else "size unknown"
        extra = f", {r.entries:,} entries" if r.entries is not None else ""
        if r.needed_bytes is not None and r.size:
            extra += f", analysis reads {r.needed_bytes / 1e6:,.2f} MB ({100 * r.needed_bytes / r.size:.1f}%)"
        console.print(f"  {escape(r.name)} ({size}{extra})", highlight=False, soft_wrap=True)
        failed = {f["replica"]: f["error"] for f in r.failures}
        for i, replica in enumerate(r.replicas):
            site = f" [{r.sites[i]}]" if i < len(r.sites) else ""
            mark = " <- served" if replica == r.served_by else ""
            if replica in failed:
                mark = f" FAILED: {failed[replica]}"
            console.print(f"    {i + 1}. {escape(replica)}{escape(site)}{escape(mark)}", highlight=False, soft_wrap=True)
        if r.error:
            console.print(f"    [red]error:[/red] {escape(r.error)}", highlight=False, soft_wrap=True)
    return 1 if any(r.error for r in rows) else 0


def _cluster_parser(sub: argparse._SubParsersAction) -> None:
    cluster = sub.add_parser("cluster", help="list cluster profiles, show what one would submit")
    verbs = cluster.add_subparsers(dest="verb", required=True, metavar="VERB")
    show = verbs.add_parser("show", help="print the batch job script (or pod spec) of a profile; submits nothing")
    show.add_argument("name", help="profile name (see `highrate cluster list`)")
    _debug(show)
    show.set_defaults(handler=_cmd_cluster_show)
    lst = verbs.add_parser("list", help="list the cluster profiles: name, kind, file")
    _debug(lst)
    lst.set_defaults(handler=_cmd_cluster_list)


def _fit_parser(sub: argparse._SubParsersAction) -> None:
    fit = sub.add_parser(
        "fit", help="fit a signal strength to a histogram of a run (pyhf); write Combine datacards",
        description="Build a pyhf workspace of OUTDIR's HISTOGRAM (one channel per category), fit the signal "
        "strength mu, and write fit results, pulls, pre-/post-fit plots and CMS Combine datacards.",
    )
    fit.add_argument("outdir", help="the output folder of 'highrate run'")
    fit.add_argument("--histogram", required=True, metavar="NAME", help="histogram to fit, e.g. mll")
    fit.add_argument("--category", action="append", default=None, metavar="NAME",
                     help="category to fit (repeatable; default: all)")
    fit.add_argument("--signal", required=True, metavar="SAMPLE", help="the MC sample scaled by mu")
    fit.add_argument("--output", default=None, metavar="DIR", help="output folder (default: OUTDIR/fit)")
    fit.add_argument("--lumi-uncertainty", type=float, default=0.025, metavar="X",
                     help="relative luminosity uncertainty (default: %(default)s)")
    fit.add_argument("--asimov", action="store_true", help="fit the Asimov data set (nominal MC sum) instead of data")
    fit.add_argument("--significance", action="store_true", help="also the asymptotic discovery significance (one more fit)")
    _debug(fit)
    fit.set_defaults(handler=_cmd_fit)


def _debug(p: argparse.ArgumentParser) -> None:
    # SUPPRESS keeps `highrate --debug run ...` working: a subcommand default would override it
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and debug logging")


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", default="sequential",
                   help="sequential | processes | dask (default: %(default)s); see also --scheduler, --cluster")
    p.add_argument("--workers", type=int, default=None, help="worker processes (processes, dask)")
    p.add_argument("--scheduler", default=None, metavar="ADDR", help="existing Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--cluster", default=None, metavar="NAME", help="cluster profile (see `highrate cluster list`)")
    p.add_argument("--chunk-size", type=int, default=250_000, help="entries per chunk (default: %(default)s)")
    p.add_argument("--limit-files", type=int, default=None, metavar="N", help="at most N files per dataset")
    p.add_argument("--limit-chunks", type=int, default=None, metavar="N", help="at most N chunks per dataset")
    p.add_argument("--skip-bad-files", action="store_true", help="record unreadable files/chunks in report.json and go on")
    p.add_argument("--retries", type=int, default=2, metavar="N", help="extra attempts per failing chunk (default: %(default)s)")
    p.add_argument("--chunk-timeout", type=float, default=None, metavar="S",
                   help="report a chunk (or a file's opening) whose read takes longer than S seconds")
    p.add_argument("--resume", action="store_true", help="reuse the chunk results checkpointed by an earlier run into --output")
    p.add_argument("--no-checkpoints", action="store_true", help="do not store chunk results in OUTPUT/checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _options(args: argparse.Namespace, output: str):
    from highrate.errors import ConfigError
    from highrate.execution.options import RunOptions

    if args.resume and args.no_checkpoints:
        raise ConfigError("--resume needs the checkpoints; drop --no-checkpoints.")
    if args.retries < 0:
        raise ConfigError(f"--retries must be 0 or more, got {args.retries}.")
    return RunOptions(
        executor="cluster" if args.cluster else "dask" if args.scheduler else args.executor,
        workers=args.workers, scheduler=args.scheduler, cluster=args.cluster,
        chunk_size=args.chunk_size, limit_files=args.limit_files, limit_chunks=args.limit_chunks,
        skip_bad_files=args.skip_bad_files, retries=args.retries, resume=args.resume,
        chunk_timeout=getattr(args, "chunk_timeout", None),
        checkpoint_dir=None if args.no_checkpoints else str(Path(output) / "checkpoints"),
        columns_dir=str(Path(output) / "columns"),
    )


def _execute(analysis_path: str | Path, datasets_path: str | Path, names: list[str] | None, output: str,
             args: argparse.Namespace) -> int:
    from highrate.cli.console import console, print_summary, progress_bar
    from highrate.data.datasets import load_datasets, select
    from highrate.execution.executors import make_executor
    from highrate.execution.runner import run
    from highrate.outputs.write import write_outputs
    from highrate.spec.loading import load_analysis

    analysis = load_analysis(analysis_path)
    datasets = select(load_datasets(datasets_path), names)
    options = _options(args, output)
    executor = make_executor(options.executor, workers=options.workers, scheduler=options.scheduler,
                             cluster=options.cluster)
    try:
        if getattr(executor, "dashboard_link", None):
            console.print(f"Dask dashboard: {executor.dashboard_link}", highlight=False)
        with progress_bar(enabled=not args.no_progress and sys.stderr.isatty()) as update:
            outcome = run(analysis, datasets, options=options, executor=executor, progress=update)
    finally:
        executor.close()
    inputs = {"analysis": str(Path(analysis_path).resolve()), "datasets": str(Path(datasets_path).resolve()),
              "dataset_names": names}
    report = write_outputs(output, outcome, analysis, options, inputs=inputs)
    print_summary(report, output)
    return 1 if report["failed_chunks"] and not options.skip_bad_files else 0


def _cmd_run(args: argparse.Namespace) -> int:
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
    for key in ("chunk_size", "limit_files", "limit_chunks"):
        setattr(args, key, opts[key])
    args.resume, args.no_checkpoints, args.skip_bad_files = True, False, True
    args.scheduler = args.scheduler or None
    return _execute(inputs["analysis"], inputs["datasets"], inputs["dataset_names"], args.outdir, args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from highrate.cli.demo import demo_inputs

    analysis, datasets = demo_inputs(events=args.events, files=args.files, cache_dir=args.cache_dir)
    return _execute(analysis, datasets, None, args.output, args)


def _cmd_generate(args: argparse.Namespace) -> int:
    from highrate.cli.console import console
    from highrate.testing import generate_dataset_set

    path = generate_dataset_set(
        args.outdir, events=args.events, files=args.files, seed=args.seed,
        compression=args.compression, extra_branches=args.extra_branches,
    )
    console.print(f"wrote {args.files} file(s) x 2 samples of {args.events:,} events; datasets file: {path}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from highrate.cli.console import console
    from highrate.outputs.plotting import plot_outputs

    summary = plot_outputs(args.outdir, output=args.output, histograms=args.histogram, categories=args.category,
                           formats=args.format, lumi=args.lumi, label=args.label, log=args.log)
    for note in summary.skipped:
        console.print(f"skipped {note}", highlight=False)
    console.print(f"wrote {len(summary.files)} file(s) into {summary.output}", highlight=False)
    return 0

def _cmd_cluster_show(args: argparse.Namespace) -> int:
    from highrate.execution.clusters import describe, get_profile

    profile = get_profile(args.name)
    text = describe(profile)
    note = f"# {profile.where}, kind {profile.kind}: submits nothing"
    if profile.kind in ("slurm", "htcondor", "pbs", "lsf"):
        note += "; SCHEDULER_HOST:PORT and WORKER_NAME are filled in at run time"
    print(note, file=sys.stderr)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _cmd_cluster_list(args: argparse.Namespace) -> int:
    from highrate.execution.clusters import load_profiles

    profiles = load_profiles()
    width = max(len(n) for n in profiles)
    for name, profile in profiles.items():  # plain lines: easy to grep, never wrapped
        print(f"{name:<{width}}  {profile.kind:<10}  {profile.source}  {profile.description}".rstrip())
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    from highrate.cli.console import console
    from highrate.outputs.statmodel import run_fit

    output = args.output or str(Path(args.outdir) / "fit")
    res = run_fit(args.outdir, histogram=args.histogram, signal=args.signal, categories=args.category,
                  output=output, lumi_uncertainty=args.lumi_uncertainty, asimov=args.asimov,
                  significance=args.significance)
    interval = res["mu_interval"]
    text = f"mu = {res['mu']:.4f} +- {res['mu_uncertainty']:.4f}"
    if "lower" in interval:
        text += f" (68% profile interval [{interval['lower']:.4f}, {interval['upper']:.4f}])"
    if "z" in res["significance"]:
        text += f"; significance {res['significance']['z']:.2f} sigma"
    console.print(f"{text}{' (Asimov)' if args.asimov else ''}; -2 ln L = {res['twice_nll']:.3f}", highlight=False)
    console.print(f"wrote workspace.json, fit_results.json, pulls, plots and datacards to {output}", highlight=False)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

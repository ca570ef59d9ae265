"""The verbs that read a run's output folder: ``plot`` and ``fit``."""

from __future__ import annotations

import argparse
from pathlib import Path

from highrate.cli.flags import add_debug


def add_plot_parser(sub: argparse._SubParsersAction) -> None:
    """The ``plot`` verb."""
    plot = sub.add_parser("plot", help="data/MC plots and cutflow tables from the output folder of a run",
                          description="Data/MC plots of every 1D histogram and category of OUTDIR, and cutflow tables.")
    plot.add_argument("outdir", help="the output folder of 'highrate run'")
    plot.add_argument("--output", default=None, metavar="DIR", help="where to write (default: OUTDIR/plots)")
    plot.add_argument("--histogram", action="append", default=None, metavar="NAME", help="only this histogram (repeatable)")
    plot.add_argument("--category", action="append", default=None, metavar="NAME", help="only this category (repeatable)")
    plot.add_argument("--format", nargs="+", default=["png", "pdf"], choices=["png", "pdf", "svg"], help="(default: png pdf)")
    plot.add_argument("--lumi", type=float, default=None, metavar="FB",
                      help="scale MC to FB fb^-1 from the lumi in each MC dataset's metadata, and label the plots "
                      "with it (default: MC as the run filled it)")
    plot.add_argument("--label", default="Preliminary", help="text after 'CMS' (default: %(default)s)")
    plot.add_argument("--log", action="store_true", help="logarithmic y axis")
    add_debug(plot)
    plot.set_defaults(handler=_cmd_plot)



def _cmd_plot(args: argparse.Namespace) -> int:
    from highrate.cli.console import console
    from highrate.outputs.plotting import plot_outputs

    summary = plot_outputs(args.outdir, output=args.output, histograms=args.histogram, categories=args.category,
                           formats=args.format, lumi=args.lumi, label=args.label, log=args.log)
    for note in summary.skipped:
        console.print(f"skipped {note}", highlight=False)
    console.print(f"wrote {len(summary.files)} file(s) into {summary.output}", highlight=False)
    return 0



def add_fit_parser(sub: argparse._SubParsersAction) -> None:
    """The ``fit`` verb."""
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
    add_debug(fit)
    fit.set_defaults(handler=_cmd_fit)



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

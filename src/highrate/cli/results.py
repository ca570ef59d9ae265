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
        "fit", help="fit a signal strength to histograms of a run (cabinetry, pyhf); write plots, Combine "
        "datacards and a HEPData submission",
        description="Build the statistical model of OUTDIR's histograms with cabinetry (one region per category: "
        "--histogram in every category, or --region CATEGORY=HISTOGRAM each), fit the signal strength mu with pyhf, "
        "rank the nuisance parameters, and write the fit results, pulls, impacts, correlations, pre-/post-fit "
        "plots, CMS Combine datacards and a HEPData submission.",
    )
    fit.add_argument("outdir", help="the output folder of 'highrate run'")
    fit.add_argument("--histogram", default=None, metavar="NAME", help="histogram to fit in every category, e.g. mll")
    fit.add_argument("--category", action="append", default=None, metavar="NAME",
                     help="with --histogram: a category to fit (repeatable; default: all)")
    fit.add_argument("--region", action="append", default=None, metavar="CATEGORY=HISTOGRAM", type=_region,
                     help="fit HISTOGRAM in CATEGORY (repeatable; instead of --histogram), e.g. --region 4j1b=HT")
    fit.add_argument("--signal", required=True, metavar="SAMPLE", help="the MC sample scaled by mu")
    fit.add_argument("--output", default=None, metavar="DIR", help="output folder (default: OUTDIR/fit)")
    fit.add_argument("--lumi-uncertainty", type=float, default=0.025, metavar="X",
                     help="relative luminosity uncertainty (default: %(default)s)")
    fit.add_argument("--asimov", action="store_true", help="fit the Asimov data set (nominal MC sum) instead of data")
    fit.add_argument("--significance", action="store_true", help="also the asymptotic discovery significance (more fits)")
    fit.add_argument("--no-impacts", dest="impacts", action="store_false",
                     help="skip the ranking of the nuisance parameters (four fits each)")
    fit.add_argument("--hepdata", default=None, metavar="DIR",
                     help="where to write the HEPData submission (default: OUTPUT/hepdata, and DIR.tar.gz beside it)")
    add_debug(fit)
    fit.set_defaults(handler=_cmd_fit)


def _region(text: str) -> tuple[str, str]:
    category, sep, histogram = text.partition("=")
    if not sep or not category or not histogram:
        raise argparse.ArgumentTypeError(f"{text!r} is not CATEGORY=HISTOGRAM (e.g. 4j1b=HT)")
    return category, histogram


def _cmd_fit(args: argparse.Namespace) -> int:
    from highrate.cli.console import console
    from highrate.errors import ConfigError
    from highrate.outputs.statmodel import run_fit

    regions = dict(args.region or [])
    if args.region and len(regions) != len(args.region):
        raise ConfigError("--region: each category once (a category's events would be counted twice).")
    output = args.output or str(Path(args.outdir) / "fit")
    res = run_fit(args.outdir, histogram=args.histogram, signal=args.signal, categories=args.category,
                  regions=regions or None, output=output, lumi_uncertainty=args.lumi_uncertainty, asimov=args.asimov,
                  significance=args.significance, impacts=args.impacts, hepdata=args.hepdata or True)
    interval = res["mu_interval"]
    text = f"mu = {res['mu']:.4f} +- {res['mu_uncertainty']:.4f}"
    if "lower" in interval:
        text += f" (68% MINOS interval [{interval['lower']:.4f}, {interval['upper']:.4f}])"
    if "z" in res["significance"]:
        text += f"; significance {res['significance']['z']:.2f} sigma"
    console.print(f"{text}{' (Asimov)' if args.asimov else ''}; -2 ln L = {res['twice_nll']:.3f}", highlight=False)
    if res["ranking"]:
        top = res["ranking"][0]
        up, down = (f"{v:+.4f}" if v is not None else "failed" for v in (top["impact_postfit_up"],
                                                                        top["impact_postfit_down"]))
        console.print(f"largest impact: {top['name']} ({up} / {down})", highlight=False)
    console.print(f"wrote workspace.json, fit_results.json, pulls, impacts, plots, datacards and the HEPData "
                  f"submission to {output}", highlight=False)
    return 0

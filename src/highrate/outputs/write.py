"""Write all outputs of a run into one folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from highrate.execution.options import RunOptions, RunOutcome
from highrate.outputs.histograms import write_pickle, write_root
from highrate.outputs.report import build_report, write_report
from highrate.spec.analysis import Analysis


def write_outputs(
    outdir: str | Path, outcome: RunOutcome, analysis: Analysis, options: RunOptions,
    *, inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``histograms.root``, ``histograms.pkl`` and ``report.json``; returns the report.

    ``inputs`` (analysis and datasets files) lets ``highrate rerun-failed`` repeat the run.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    write_root(out / "histograms.root", outcome.result.histograms)
    write_pickle(out / "histograms.pkl", outcome.result.histograms)
    report = build_report(outcome, analysis, options)
    if inputs is not None:
        report["inputs"] = inputs
    write_report(out / "report.json", report)
    return report

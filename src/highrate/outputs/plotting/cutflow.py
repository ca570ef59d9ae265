"""Cutflow and category-yield tables (Markdown and CSV) from ``report.json``."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def cutflow_table(cutflow: Mapping[str, Mapping[str, Any]], *, datasets: Sequence[str] | None = None) -> list[Row]:
    """Rows ``{"step", "kind", ds: events, ds+" rel": eff, ds+" cum": eff}`` for steps then categories.

    ``rel`` is relative to the previous step (for a category: to the last step, the preselection);
    ``cum`` is relative to ``initial``. A step missing for a dataset gives ``None``.
    """
    names = list(datasets) if datasets is not None else list(cutflow)
    steps: list[str] = []
    for ds in names:
        steps += [s for s in cutflow[ds].get("steps", {}) if s not in steps]
    categories: list[str] = []
    for ds in names:
        categories += [c for c in cutflow[ds].get("categories", {}) if c not in categories]
    rows: list[Row] = []
    for i, step in enumerate(steps):
        row: Row = {"step": step, "kind": "step"}
        for ds in names:
            n = cutflow[ds].get("steps", {}).get(step)
            prev = cutflow[ds].get("steps", {}).get(steps[i - 1]) if i else n
            _fill(row, ds, n, prev, cutflow[ds].get("steps", {}).get("initial"))
        rows.append(row)
    for cat in categories:
        row = {"step": cat, "kind": "category"}
        for ds in names:
            ds_steps = cutflow[ds].get("steps", {})
            last = ds_steps[steps[-1]] if steps and steps[-1] in ds_steps else None
            entry = cutflow[ds].get("categories", {}).get(cat)
            _fill(row, ds, None if entry is None else entry.get("events"), last, ds_steps.get("initial"))
        rows.append(row)
    return rows


def yields_table(cutflow: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """Rows ``{"dataset", "category", "events", "sumw", "error"}`` with error = sqrt(sumw2)."""
    rows = []
    for ds, entry in cutflow.items():
        for cat, y in entry.get("categories", {}).items():
            rows.append({"dataset": ds, "category": cat, "events": int(y.get("events", 0)),
                         "sumw": float(y.get("sumw", 0.0)), "error": math.sqrt(max(float(y.get("sumw2", 0.0)), 0.0))})
    return rows


def write_cutflow(cutflow: Mapping[str, Mapping[str, Any]], outdir: Path) -> list[Path]:
    """Write ``cutflow.md`` (cutflow and yields), ``cutflow.csv`` and ``yields.csv`` into ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    names = list(cutflow)
    rows, yields = cutflow_table(cutflow), yields_table(cutflow)
    columns = ["step"] + [f"{ds} {k}".strip() for ds in names for k in ("", "rel", "cum")]
    with (outdir / "cutflow.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row[c] if row[c] is not None else "" for c in columns])
    with (outdir / "yields.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["dataset", "category", "events", "sumw", "error"])
        writer.writeheader()
        writer.writerows(yields)
    (outdir / "cutflow.md").write_text(_markdown(rows, yields, names))
    return [outdir / "cutflow.md", outdir / "cutflow.csv", outdir / "yields.csv"]


def _fill(row: Row, ds: str, n: float | None, prev: float | None, initial: float | None) -> None:
    row[ds] = None if n is None else int(n)
    row[f"{ds} rel"] = _ratio(n, prev)
    row[f"{ds} cum"] = _ratio(n, initial)


def _ratio(n: float | None, d: float | None) -> float | None:
    return None if n is None or not d else n / d


def _percent(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}%"


def _markdown(rows: list[Row], yields: list[Row], names: list[str]) -> str:
    head = ["step"] + [f"{ds} {k}".strip() for ds in names for k in ("", "rel.", "cum.")]
    lines = ["# Cutflow", "", "Events after each step; rel. = relative to the previous step (categories: to the "
             "last step), cum. = relative to `initial`.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for row in rows:
        cells = [f"**{row['step']}**" if row["kind"] == "category" else row["step"]]
        for ds in names:
            cells += ["" if row[ds] is None else str(row[ds]), _percent(row[f"{ds} rel"]), _percent(row[f"{ds} cum"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "# Category yields", "", "| dataset | category | events | sumw | sqrt(sumw2) |",
              "|---|---|---:|---:|---:|"]
    lines += [f"| {y['dataset']} | {y['category']} | {y['events']} | {y['sumw']:.6g} | {y['error']:.6g} |" for y in yields]
    return "\n".join(lines) + "\n"

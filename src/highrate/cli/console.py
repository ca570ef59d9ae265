"""Console output for the command line: a progress bar while running and the summary table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from highrate.execution.options import Progress as RunProgress

console = Console(stderr=True)  # progress, notes and errors
results = Console(record=True)  # the summary: the command's output, on stdout so that it can be piped;
# recorded, for the up-to-date stamp (cli/uptodate.py) to print again


def fresh() -> None:
    """New consoles for this process's own stdout and stderr (a command forked by ``highrate
    serve``: the terminal, colours and width are the client's, not the server's)."""
    global console, results
    console = Console(stderr=True)
    results = Console(record=True)


@contextmanager
def progress_bar(*, enabled: bool = True) -> Iterator[Any]:
    """A callback for :func:`highrate.run` that drives a rich progress bar."""
    if not enabled:
        yield lambda p: None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    )
    tasks: dict[str, Any] = {}

    def update(p: RunProgress) -> None:
        if p.stage not in tasks:
            label = "metadata " if p.stage == "files" else "chunks   "
            tasks[p.stage] = bar.add_task(label, total=p.total, rate="")
        task = tasks[p.stage]
        rate = ""
        if p.stage == "chunks" and p.elapsed_s > 0:
            rate = (f"{p.rate(p.events) / 1e6:.2f} M ev/s · skim {p.rate(p.skimmed) / 1e6:.2f} · "
                    f"presel {p.rate(p.preselected) / 1e6:.2f} · {p.rate(p.bytes_read) / 1e6:.0f} MB/s"
                    f" · {len(p.workers)} worker(s)")
            if p.retried:
                rate += f" [yellow]{p.retried} retried"
            if p.failed:
                rate += f" [red]{p.failed} failed"
        bar.update(task, completed=p.done, total=p.total, rate=rate)

    with bar:
        yield update


def print_summary(report: dict[str, Any], outdir: str | None = None) -> None:
    """The PocketCoffea-style table: Total / Skimmed / Preselected, events and events/s."""
    table = Table(title=f"highrate — {report['analysis']['name']} ({report['options']['executor']})")
    table.add_column("")
    table.add_column("events", justify="right")
    table.add_column("events/s", justify="right")
    rates = {"total": "events_per_s", "skimmed": "skimmed_per_s", "preselected": "preselected_per_s"}
    for label, key in (("Total", "total"), ("Skimmed", "skimmed"), ("Preselected", "preselected")):
        n = report["events"][key]
        table.add_row(label, f"{n:,}", f"{report[rates[key]]:,.0f}" if report["wall_s"] else "-")
    results.print(table)
    now = report.get("events_this_run", report["events"])["total"]
    if now != report["events"]["total"]:
        chunks = report["chunks"]
        source = " and ".join(name for name, n in (("checkpoints", chunks.get("resumed")),
                                                   ("the cache", chunks.get("cached"))) if n) or "checkpoints"
        results.print(f"{report['events']['total'] - now:,} events taken from {source}; the rates are over the "
                      f"{now:,} processed in this run", highlight=False)
    results.print(
        f"wall {report['wall_s']:.2f} s · read {report['bytes_read'] / 1e6:,.1f} MB compressed "
        f"({report['mb_per_s']:,.1f} MB/s) · chunks {report['chunks']['processed']}/{report['chunks']['total']}"
    )
    stages = {k: v for k, v in report.get("stages_s", {}).items() if v >= 0.005}
    if stages:
        results.print("time by stage (s, all workers): " + " · ".join(f"{k} {v:.2f}" for k, v in stages.items()),
                      highlight=False)
    cache = {k: v for k, v in report.get("cache", {}).items() if v.get("hits") or v.get("misses")}
    if cache:
        results.print("cache (hits/misses): " + " · ".join(
            f"{k} {v['hits']}/{v['misses']}" for k, v in cache.items())
            + f" · read {sum(v['bytes_read'] for v in cache.values()) / 1e6:,.1f} MB"
            f" · wrote {sum(v['bytes_written'] for v in cache.values()) / 1e6:,.1f} MB", highlight=False)
    remote = {k: v for k, v in report.get("sources", {}).items() if k != "local"}
    for name, src in remote.items():
        results.print(
            f"{escape(name)}: {src['bytes'] / 1e6:,.1f} MB in {src['requests']:,} requests "
            f"({src['mb_per_s']:,.1f} MB/s, {src['chunks']} chunks)", highlight=False
        )
    # what went wrong is a warning, with the progress and the errors on stderr
    switched = [(n, f) for n, f in report.get("files", {}).items() if f["replica_failures"]]
    if switched:
        console.print(f"[yellow]{len(switched)} file(s) failed over to another replica; see files in report.json:")
        for name, f in switched[:5]:
            bad = ", ".join(sorted({x["replica"] for x in f["replica_failures"]}))
            used = ", ".join(f["served_by"]) or "none"
            console.print(f"  [yellow]-[/yellow] {escape(name)}: failed {escape(bad)}; served by {escape(used)}")
    if report["failed_chunks"]:
        console.print(f"[red]{len(report['failed_chunks'])} chunk(s) failed; see failed_chunks in report.json:")
        for f in report["failed_chunks"][:5]:
            where = "whole file" if f["entry_start"] is None else f"entries [{f['entry_start']}, {f['entry_stop']})"
            line = f"{f['dataset']}: {f['file']} {where}: {f['error']}"
            console.print(f"  [red]-[/red] {escape(line)}")
    if outdir:
        results.print(f"outputs in [bold]{escape(str(outdir))}[/bold]: histograms.root, histograms.pkl, report.json")

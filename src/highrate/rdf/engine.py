"""One file of a dataset through the user's ``build(df, dataset)`` on a ``ROOT.RDataFrame``.

The file is opened through :func:`highrate.data.replicas.first_working`, so a replica that
cannot be opened (or lacks the tree) gives way to the next one, and the report names it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from highrate.base.optional import require
from highrate.data.datasets import Dataset
from highrate.data.replicas import first_working
from highrate.engine.result import Result
from highrate.errors import HighrateError, InputFileError
from highrate.execution.failures import file_failure
from highrate.rdf.counting import counting
from highrate.rdf.loading import load_build, uses_vary
from highrate.rdf.results import booked_keys, cutflow, to_hist, variation_name
from highrate.spec.usercode import raised

PURPOSE = "an RDataFrame analysis (a file defining build(df, dataset))"


def import_root() -> Any:
    """PyROOT, or the ``pip install 'highrate[rdf]'`` error."""
    return require("ROOT", "rdf", purpose=PURPOSE)


@dataclass(frozen=True)
class FileTask:
    """What a worker needs for one file: the analysis file's path, the dataset, the file's name,
    and whether a file that cannot be opened is reported and skipped (``--skip-bad-files``)."""

    analysis: str
    dataset: Dataset
    file: str
    skip_bad: bool = False


def book(root: Any, analysis: str, df: Any, dataset: Dataset) -> dict[tuple[str, str], Any]:
    """Call ``build(df, dataset)``; the results it booked, by ``(histogram, category)``."""
    build = load_build(analysis)
    try:
        booked = build(df, dataset)
    except HighrateError:
        raise
    except Exception as err:  # a bug in build(): the user's file:line, not highrate's
        raise raised(f"build(df, dataset) of {analysis!r} for dataset {dataset.name!r}", err) from err
    return booked_keys(booked, f"analysis file {analysis!r}")


def varied(root: Any, ptr: Any) -> Any:
    """``VariationsFor(ptr)``: the nominal and every variation of a result."""
    return root.RDF.Experimental.VariationsFor(ptr)


def collect(handles: dict[tuple[str, str], Any], dataset: str, *, with_variations: bool,
            ) -> dict[tuple[str, str, str, str], Any]:
    """The filled histograms, keyed ``(histogram, dataset, category, variation)``."""
    out = {}
    for (name, category), handle in handles.items():
        if with_variations:  # RResultMap of VariationsFor
            for tag in handle.GetKeys():
                out[(name, dataset, category, variation_name(str(tag)))] = to_hist(handle[str(tag)], name)
        else:
            out[(name, dataset, category, "nominal")] = to_hist(handle.GetValue(), name)
    return out


WEB = ("https://", "http://", "davs://", "dav://")


def open_root_file(root: Any, url: str, tree: str) -> Any:
    """``TFile.Open(url)``, which must hold ``tree``; an InputFileError saying why not (for a web
    URL: that the ``root`` wheel cannot read one, and what to list instead)."""
    try:
        f = root.TFile.Open(url, "READ")
    except OSError:  # PyROOT raises where C++ returns null
        f = None
    if not f or f.IsZombie():
        hint = (" This ROOT reads no https:// or davs:// (the `root` wheel has no Davix): list a root:// replica "
                "of the file, or use a ROOT built with Davix." if url.startswith(WEB) else "")
        raise InputFileError(f"ROOT cannot open {url!r}.{hint}")
    if not f.Get(tree):
        f.Close()
        raise InputFileError(f"{url!r} has no tree {tree!r} (the dataset's 'tree').")
    return f


def run_file(task: FileTask) -> Result:
    """Run the analysis over one file (the first replica that opens) and return its result."""
    root = import_root()
    ds = task.dataset
    where = ds.where(task.file)

    try:
        f, replica, failures = first_working(where.replicas, lambda url: open_root_file(root, url, ds.tree), what=f"opening {where.name!r}",
                                             timeout=ds.access.timeout if len(where.replicas) > 1 else None)
    except InputFileError as err:
        if not task.skip_bad:
            raise
        return Result(failed=[file_failure(ds.name, where.name, f"{type(err).__name__}: {err}")],
                      files={where.name: {"served_by": {}, "replica_failures": getattr(err, "failures", [])}})
    try:
        tree = f.Get(ds.tree)
        total = int(tree.GetEntries())
        df = root.RDataFrame(tree)
        with_vary = uses_vary(task.analysis)
        if with_vary:  # Report counts a varied filter in a varied universe: count the nominal ourselves
            counted, report = counting(df)
        else:
            counted, report = df, df.Report()
        booked = book(root, task.analysis, counted, ds)
        handles = {k: varied(root, p) for k, p in booked.items()} if with_vary else booked
        t0 = time.perf_counter()
        root.RDF.RunGraphs([df.Count()])  # the event loop, once for everything booked
        loop_s = time.perf_counter() - t0
        histograms = collect(handles, ds.name, with_variations=with_vary)
        steps, counts = cutflow(report, total)
        bytes_read = int(f.GetBytesRead())
    finally:
        f.Close()
    return Result(
        histograms=histograms,
        counts={ds.name: {**counts, "bytes_read": bytes_read, "chunks": 1}},
        cutflow={ds.name: steps},
        files={where.name: {"served_by": {replica: 1}, "replica_failures": failures}},
        timings={"event_loop": loop_s},
    )

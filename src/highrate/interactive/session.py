"""A warm session: one executor (worker processes or a Dask cluster) kept between runs, so that the
run after an edit skips starting workers, importing modules and opening files.

``Session.run`` waits and returns a :class:`SessionResult` (histograms, cutflow, ``hist``,
``plot``), or runs in a background thread and returns a :class:`RunHandle` whose ``partial()``
merges the chunks finished so far.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Literal, overload

import hist

from highrate.data.datasets import Dataset, load_datasets
from highrate.engine.result import Result, accumulate, finished
from highrate.errors import ConfigError, HighrateError, did_you_mean
from highrate.execution.executors import Executor, make_executor
from highrate.execution.options import Progress, RunOptions, RunOutcome
from highrate.execution.runner import run
from highrate.spec.analysis import Analysis
from highrate.spec.loading import load_analysis

ProgressArg = bool | Callable[[Progress], None]
PathArg = str | os.PathLike[str]
_FIXED = ("executor", "workers", "scheduler", "cluster")  # the session's executor, fixed for its life
_FOLD = 16  # chunk results kept before a background run folds them into its partial result


class RunCancelled(HighrateError):
    """A background run stopped by :meth:`RunHandle.cancel`."""


class Session:
    """An executor kept alive between runs: its worker processes (or Dask cluster), what they
    imported and opened, and this process's file descriptions stay warm for the next run.

    ``executor``, ``workers``, ``scheduler`` and ``cluster`` choose the executor as for
    :func:`highrate.run`; ``run_options`` are the other :class:`RunOptions` fields, the defaults
    of every :meth:`run`. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, executor: str = "processes", workers: int | None = None, scheduler: str | None = None,
                 cluster: str | None = None, **run_options: Any) -> None:
        self.options = RunOptions(executor=executor, workers=workers, scheduler=scheduler, cluster=cluster,
                                  **run_options)
        self.executor: Executor = make_executor(executor, workers=workers, scheduler=scheduler, cluster=cluster)
        self._lock = threading.Lock()  # one run at a time on the executor
        self._handles: list[RunHandle] = []
        self._closed = False

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @overload
    def run(self, analysis: Analysis | PathArg, datasets: Sequence[Dataset] | PathArg, *,
            wait: Literal[True] = ..., progress: ProgressArg = ..., **option_overrides: Any) -> SessionResult: ...

    @overload
    def run(self, analysis: Analysis | PathArg, datasets: Sequence[Dataset] | PathArg, *,
            wait: Literal[False], progress: ProgressArg = ..., **option_overrides: Any) -> RunHandle: ...

    def run(self, analysis: Analysis | PathArg, datasets: Sequence[Dataset] | PathArg, *, wait: bool = True,
            progress: ProgressArg = True, **option_overrides: Any) -> SessionResult | RunHandle:
        """Run ``analysis`` (an :class:`Analysis`, or a file loaded now, so edits are seen) over
        ``datasets`` (a list, or a datasets YAML file) on the session's executor.

        ``progress``: a bar (Jupyter's when ipywidgets is installed, else text on stderr), False
        for none, or a callback taking each :class:`Progress`. ``option_overrides``: RunOptions
        fields for this run only. Returns a :class:`SessionResult`; with ``wait=False`` a
        :class:`RunHandle` at once (runs queue: one runs at a time).
        """
        if self._closed:
            raise ConfigError("this Session is closed: make a new one.")
        fixed = sorted(set(option_overrides) & set(_FIXED))
        if fixed:
            raise ConfigError(f"{', '.join(fixed)}: fixed for the session's life; give it to Session(...).")
        options = replace(self.options, **option_overrides)
        # loaded here, not in the background: a syntax error shows at once
        if not isinstance(analysis, Analysis):
            analysis = load_analysis(analysis)
        if isinstance(datasets, str | os.PathLike):
            datasets = load_datasets(datasets)
        inputs = (analysis, list(datasets), options)
        if wait:
            return self._execute(*inputs, progress)
        handle = RunHandle(lambda h: self._execute(*inputs, progress, on_chunk=h._add, check=h._check))
        self._handles = [h for h in self._handles if not h.done()] + [handle]
        return handle

    def _execute(self, analysis: Analysis, datasets: list[Dataset], options: RunOptions, progress: ProgressArg,
                 on_chunk: Callable[[Result], None] | None = None,
                 check: Callable[[], None] = lambda: None) -> SessionResult:
        with self._lock, _reporter(progress) as report:
            def reporting(p: Progress) -> None:
                check()  # a cancelled background run stops at its next file or chunk
                report(p)
            outcome = run(analysis, datasets, options=options, executor=self.executor, progress=reporting,
                          on_chunk=on_chunk)
        return SessionResult(outcome, analysis, datasets, options)

    def close(self) -> None:
        """Cancel background runs and stop the executor (its workers, or the local Dask cluster)."""
        if self._closed:
            return
        self._closed = True
        for handle in self._handles:
            handle.cancel()
            handle._thread.join()
        self.executor.close()


class RunHandle:
    """A run going on in a background thread: ``done``, ``wait``, ``partial`` and ``cancel``."""

    def __init__(self, start: Callable[[RunHandle], SessionResult]) -> None:
        self._lock = threading.Lock()
        self._merged = Result()
        self._pending: list[Result] = []
        self._cancelled = threading.Event()
        self._result: SessionResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(start,), name="highrate-run", daemon=True)
        self._thread.start()

    def _main(self, start: Callable[[RunHandle], SessionResult]) -> None:
        try:
            self._result = start(self)
        except BaseException as err:  # re-raised by wait(), in the caller's thread
            self._error = err

    def _add(self, chunk: Result | tuple[int, Result, str]) -> None:
        self._check()
        if not isinstance(chunk, Result):  # a worker's (index, result, worker) outcome
            chunk = chunk[1]
        with self._lock:
            self._pending.append(chunk)
            if len(self._pending) >= _FOLD:  # bounded memory whether or not partial() is called
                self._merged, self._pending = accumulate([self._merged, *self._pending]), []

    def _check(self) -> None:
        # the runner has no stop button: raising from its callbacks ends the run between chunks
        if self._cancelled.is_set():
            raise RunCancelled("the run was cancelled.")

    def done(self) -> bool:
        """Whether the run has ended (finished, failed or cancelled)."""
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> SessionResult:
        """The result once the run ends; re-raises its error; :class:`TimeoutError` after ``timeout`` s."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the run is still going after {timeout} s.")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def partial(self) -> Result:
        """The chunks finished so far, merged (histograms as ``hist.Hist``)."""
        with self._lock:
            self._merged, self._pending = accumulate([self._merged, *self._pending]), []
            return finished(accumulate([self._merged]))  # a copy: the run goes on adding

    def cancel(self) -> bool:
        """Stop the run at its next chunk (or file); ``wait()`` then raises :class:`RunCancelled`.
        Chunks already running finish on the workers. False if the run had ended already."""
        self._cancelled.set()
        return not self.done()


@dataclass
class SessionResult:
    """A finished run: its :class:`RunOutcome`, the analysis and datasets, and ways to look at it."""

    outcome: RunOutcome
    analysis: Analysis
    datasets: list[Dataset]
    options: RunOptions

    @property
    def result(self) -> Result:
        return self.outcome.result

    @property
    def histograms(self) -> dict[tuple[str, str, str, str], hist.Hist]:
        """``{(histogram, dataset, category, variation): hist.Hist}``."""
        return self.result.histograms

    @property
    def cutflow(self) -> dict[str, dict[str, int]]:
        return self.result.cutflow

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return self.result.counts

    @property
    def wall_s(self) -> float:
        return self.outcome.wall_s

    def __repr__(self) -> str:
        events = sum(int(c.get("total", 0)) for c in self.counts.values())
        return (f"SessionResult({self.analysis.name}: {len(self.counts)} dataset(s), {events:,} events, "
                f"{len({k[0] for k in self.histograms})} histogram(s), {self.outcome.chunks} chunks, "
                f"{self.wall_s:.2f} s)")

    def hist(self, name: str, dataset: str | Sequence[str] | None = None, category: str | None = None,
             variation: str = "nominal") -> hist.Hist:
        """One histogram; ``dataset`` None sums every dataset (a list sums those), ``category``
        None is the histogram's only category."""
        keys = self._keys(name, category)
        chosen = {dataset} if isinstance(dataset, str) else None if dataset is None else set(dataset)
        picked = [self.histograms[k] for k in keys if k[3] == variation and (chosen is None or k[1] in chosen)]
        missing = sorted((chosen or set()) - {k[1] for k in keys})
        if missing or not picked:
            found = sorted({k[1] for k in keys} if missing else {k[3] for k in keys})
            what = f"dataset {missing[0]!r}" if missing else f"variation {variation!r}"
            raise ConfigError(f"histogram {name!r} has no {what}.{did_you_mean(missing[0] if missing else variation, found)}"
                              f" Available: {', '.join(found)}.")
        out = picked[0].copy()
        for h in picked[1:]:
            out += h
        return out

    def plot(self, name: str, category: str | None = None, *, log: bool = False, lumi: float | None = None,
             label: str = "Preliminary") -> Any:
        """The data/MC plot of ``highrate plot`` (a colour map of the MC for a 2D histogram) as a
        matplotlib Figure, shown inline in Jupyter. ``lumi`` (fb⁻¹) scales the MC to it."""
        from highrate.outputs.plotting import map_contents, scale_mc, stack_contents
        from highrate.outputs.plotting.contents import run_lumi_fb
        from highrate.outputs.plotting.maps import draw_map
        from highrate.outputs.plotting.stack import draw_stack

        keys = self._keys(name, category)
        entries = {(k[1], k[3]): self.histograms[k] for k in keys}
        meta = self._metadata
        if lumi is not None:
            entries = scale_mc(entries, meta, lumi)
        lumis = {v for ds, _ in entries if (v := run_lumi_fb(meta.get(ds, {}))) is not None}
        shown = lumi if lumi is not None else (lumis.pop() if len(lumis) == 1 else None)
        years = sorted({str(m["year"]) for ds, m in meta.items() if m.get("year") is not None})
        style = {"label": label, "lumi": shown, "year": "+".join(years) or None}
        with _no_pyplot_figures():
            if next(iter(entries.values())).ndim == 2:
                kind, contents = next(iter(map_contents(entries, meta).items()))
                fig = draw_map(contents, data=kind == "data", title="Data" if kind == "data" else "MC", **style)
            else:
                fig = draw_stack(stack_contents(entries, meta), log=log, **style)
        _inline_figures()
        return fig

    def _keys(self, name: str, category: str | None) -> list[tuple[str, str, str, str]]:
        """The keys of histogram ``name`` in ``category`` (None: its only category)."""
        keys = [k for k in self.histograms if k[0] == name]
        if not keys:
            names = sorted({k[0] for k in self.histograms})
            raise ConfigError(f"no histogram {name!r} in this result.{did_you_mean(name, names)} "
                              f"Available: {', '.join(names)}.")
        cats = sorted({k[2] for k in keys})
        if category is None and len(cats) > 1:
            raise ConfigError(f"histogram {name!r} is filled in categories {', '.join(cats)}: say which (category=...).")
        category = category or cats[0]
        if category not in cats:
            raise ConfigError(f"histogram {name!r} has no category {category!r}.{did_you_mean(category, cats)}")
        return [k for k in keys if k[2] == category]

    @cached_property
    def _metadata(self) -> dict[str, dict[str, Any]]:
        """``{dataset: metadata}`` as report.json has it (subsamples included): what plots read."""
        from highrate.outputs.report import build_report

        report = build_report(self.outcome, self.analysis, self.options)
        return {ds: dict(d.get("metadata") or {}) for ds, d in report["datasets"].items()}


class _Bar:
    """A tqdm bar per stage (file descriptions, then chunks) with events/s and cached chunks."""

    def __init__(self) -> None:
        if _in_jupyter() and importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.notebook import tqdm
        else:  # tqdm.auto would warn in a notebook without ipywidgets; the text bar works there
            from tqdm.std import tqdm
        self._tqdm = tqdm
        self._bar: Any = None
        self._stage = ""

    def __call__(self, p: Progress) -> None:
        if p.stage != self._stage:
            self.close()
            unit = " files" if p.stage == "files" else " chunks"
            self._bar = self._tqdm(total=p.total, desc="metadata" if p.stage == "files" else "chunks",
                                   unit=unit, file=sys.stderr, dynamic_ncols=True)
            self._stage = p.stage
        self._bar.total = p.total
        if p.stage == "chunks":
            self._bar.set_postfix_str(f"{p.rate(p.events):,.0f} ev/s, {p.cached} cached", refresh=False)
        self._bar.update(p.done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextlib.contextmanager
def _reporter(progress: ProgressArg) -> Iterator[Callable[[Progress], None]]:
    """``progress`` as a callback: a bar closed at the end (True), nothing (False), or itself."""
    if callable(progress):
        yield progress
    elif progress is True:
        bar = _Bar()
        try:
            yield bar
        finally:
            bar.close()
    else:
        yield lambda p: None


def _ipython() -> Any:
    module = sys.modules.get("IPython")
    return module.get_ipython() if module is not None else None


def _in_jupyter() -> bool:
    shell = _ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _inline_figures() -> None:
    """Let IPython show a Figure as a PNG: highrate's figures bypass pyplot, whose inline
    backend would otherwise have registered this."""
    shell = _ipython()
    if shell is None:
        return
    from matplotlib.figure import Figure

    png = shell.display_formatter.formatters["image/png"]
    try:
        png.lookup_by_type(Figure)
    except KeyError:
        png.for_type(Figure, _png)


@contextlib.contextmanager
def _no_pyplot_figures() -> Iterator[None]:
    """Close the pyplot figures opened in the block: mplhep's CMS label calls ``plt.gca()``,
    which opens an empty one that Jupyter's inline backend would show beside the plot."""
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    try:
        yield
    finally:
        for number in set(plt.get_fignums()) - before:
            plt.close(number)


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


__all__ = ["RunCancelled", "RunHandle", "Session", "SessionResult"]

"""highrate.Session: one executor kept warm across runs (processes, a real Dask LocalCluster), results
equal to a plain run and to the independent numpy computation, background runs, errors, plots."""

from __future__ import annotations

import os
import threading
from dataclasses import replace

import numpy as np
import pytest
from compare import assert_matches_reference, assert_same_result
from reference_zmumu import analyse, combine, read

import highrate
from highrate.errors import ConfigError, UserCodeError
from highrate.execution.runner import run
from highrate.interactive import RunCancelled, SessionResult

CHUNK = 5000


@pytest.fixture(scope="module")
def setup(sample, zmumu_path):
    analysis = highrate.load_analysis(zmumu_path)
    datasets = highrate.load_datasets(sample)
    truth = {d.name: combine([analyse(read(f, is_mc=d.is_mc), is_mc=d.is_mc) for f in d.files]) for d in datasets}
    return analysis, datasets, truth


def worker_pids(result: SessionResult) -> set[int]:
    """The processes that computed the run's chunks ("host:pid" keys)."""
    return {int(w.rsplit(":", 1)[1]) for w in result.outcome.chunk_counts["workers"]}


@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_same_workers_serve_both_runs_and_results_are_exact(setup, sample, zmumu_path, executor):
    analysis, datasets, truth = setup
    # the caches off: each run computes its chunks on the workers, whose identities are compared
    with highrate.Session(executor, workers=2, chunk_size=CHUNK, cache=False) as s:
        first = s.run(analysis, datasets, progress=False)
        second = s.run(str(zmumu_path), str(sample), progress=False)  # files: loaded for this run
        pids = worker_pids(first)
        assert len(pids) == 2 and worker_pids(second) == pids
        if executor == "dask":  # the cluster's own worker processes, alive between the runs
            assert pids <= set(s.executor.client.run(os.getpid).values())
        else:
            assert pids <= {p.pid for pool in s.executor._pools for p in pool._processes.values()}
    for r in (first, second):
        assert_matches_reference(r.result, truth)
    plain = run(analysis, datasets, options=highrate.RunOptions(executor=executor, workers=2, chunk_size=CHUNK,
                                                                 cache=False))
    assert_same_result(second.result, plain.result)
    assert second.counts == plain.result.counts and second.cutflow == plain.result.cutflow


@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_background_run_partial_results_grow_to_the_final(setup, executor):
    analysis, datasets, truth = setup
    totals: list[int] = []
    handle: dict[str, highrate.Session] = {}
    final_events = sum(t["n"] for t in truth.values())

    def events(r: highrate.Result) -> int:
        return sum(c["total"] for c in r.counts.values())

    def watch(p: highrate.Progress) -> None:  # in the run's thread, right after each chunk is merged in
        if p.stage == "chunks" and "h" in handle:
            part = handle["h"].partial()
            totals.append(events(part))
            for ds, flow in part.cutflow.items():  # a subset: no step above the final count
                assert all(n <= truth[ds]["cutflow"][k] for k, n in flow.items())

    with highrate.Session(executor, workers=2, chunk_size=2000, cache=False) as s:
        started = threading.Event()
        h = s.run(analysis, datasets, wait=False, progress=lambda p: (started.wait(10), watch(p)))
        handle["h"] = h
        started.set()
        result = h.wait(timeout=120)
        assert h.done()
    assert_matches_reference(result.result, truth)
    assert totals == sorted(totals) and len(set(totals)) >= 5 and totals[-1] == final_events
    assert_same_result(h.partial(), result.result)


def test_errors_come_from_wait_and_the_session_goes_on(setup):
    analysis, datasets, truth = setup

    def boom(ev):
        raise ZeroDivisionError("a bug in the analysis")

    broken = replace(analysis, preselection=[highrate.Cut("boom", boom)])
    with highrate.Session("processes", workers=2, chunk_size=CHUNK, cache=False) as s:
        h = s.run(broken, datasets, wait=False, progress=False)
        with pytest.raises(UserCodeError, match="a bug in the analysis"):
            h.wait(timeout=120)
        with pytest.raises(ConfigError, match="fixed for the session"):
            s.run(analysis, datasets, workers=4)
        assert_matches_reference(s.run(analysis, datasets, progress=False).result, truth)


def test_cancel_stops_a_background_run(setup):
    analysis, datasets, truth = setup
    with highrate.Session("processes", workers=2, chunk_size=500, cache=False) as s:
        first = threading.Event()

        def progress(p: highrate.Progress) -> None:
            if p.stage == "chunks" and p.done:
                first.set()

        h = s.run(analysis, datasets, wait=False, progress=progress)
        while not (first.wait(0.05) or h.done()):
            pass
        assert h.cancel(), h.wait()  # wait(): the run's own error, had it ended without one
        with pytest.raises(RunCancelled):
            h.wait(timeout=120)
        assert 0 < sum(c["total"] for c in h.partial().counts.values()) < sum(t["n"] for t in truth.values())
        assert_matches_reference(s.run(analysis, datasets, progress=False, chunk_size=CHUNK).result, truth)


def test_hist_plot_and_progress_bar(setup, capsys):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    analysis, datasets, truth = setup
    with highrate.Session("sequential", chunk_size=CHUNK) as s:
        r = s.run(analysis, datasets)
    err = capsys.readouterr().err
    assert "chunks" in err and "ev/s" in err and "cached" in err  # the tqdm text bar, on stderr
    mc, data = (d.name for d in datasets)
    np.testing.assert_array_equal(r.hist("mll", mc).values(), truth[mc]["hists"]["mll"][0])
    summed = r.hist("mll")  # every dataset
    np.testing.assert_array_equal(summed.values(), truth[mc]["hists"]["mll"][0] + truth[data]["hists"]["mll"][0])
    with pytest.raises(ConfigError, match="Did you mean 'mll'"):
        r.hist("mlll")
    fig = r.plot("mll")
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # the stack and the data/MC ratio
    assert fig.axes[1].get_ylabel() == "Data / MC"
    assert "zmumu" in repr(r) and "48,000 events" in repr(r)

"""Results merge in a tree, on the cluster for Dask; a stuck read is bounded by the chunk timeout."""

from __future__ import annotations

import os
import threading

import pytest
from compare import assert_same_result

import highrate
import highrate.execution.chunks as chunks
from highrate.errors import ExecutorError
from highrate.execution.executors.dask import DaskExecutor
from highrate.execution.worker import summarize

# how chunks are computed: each run computes, none takes an earlier run's results from the cache
pytestmark = pytest.mark.usefixtures("computing")


@pytest.fixture(scope="module")
def inputs(sample, zmumu_path):
    return highrate.load_analysis(zmumu_path), highrate.load_datasets(sample)


def test_tree_on_the_cluster_matches_and_the_driver_gets_summaries(inputs, monkeypatch):
    analysis, datasets = inputs
    flat = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=1000))
    assert flat.chunks >= 2 * chunks.FAN_IN  # at least two levels of the tree

    import distributed

    combined: list[int] = []
    seen_by_driver: list[highrate.Result] = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            distributed.Client(cl) as client:
        ex = DaskExecutor.from_client(client)
        combine = ex.combine
        monkeypatch.setattr(ex, "combine", lambda fn, refs: combined.append(len(refs)) or combine(fn, refs))
        keep = ex.map_keep

        def spy(function, items, summarize, **options):
            for summary, ref in keep(function, items, summarize, **options):
                seen_by_driver.append(summary[1])
                assert isinstance(ref, distributed.Future)  # the full result stays on the cluster
                yield summary, ref

        monkeypatch.setattr(ex, "map_keep", spy)
        tree = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=1000), executor=ex)
    assert_same_result(tree.result, flat.result)
    assert all(not r.histograms for r in seen_by_driver)
    assert combined.count(chunks.FAN_IN) >= 2 and sum(combined) >= flat.chunks


def test_summaries_drop_histograms_only(inputs):
    analysis, datasets = inputs
    full = highrate.run(analysis, datasets[:1], options=highrate.RunOptions(chunk_size=100_000)).result
    i, light, worker = summarize((3, full, "w"))
    assert (i, worker) == (3, "w") and not light.histograms
    assert light.counts == full.counts and light.cutflow == full.cutflow and light.failed == full.failed


def test_stuck_read_is_bounded_by_the_chunk_timeout(inputs, tmp_path):
    analysis, datasets = inputs
    fifo = tmp_path / "stuck.root"
    os.mkfifo(fifo)  # opening it for reading blocks until a writer comes: a hung file system
    good = datasets[0]
    ds = [highrate.Dataset(good.name, good.sample, (good.files[0], str(fifo)), metadata=good.metadata)]
    options = highrate.RunOptions(chunk_size=100_000, chunk_timeout=1.0, skip_bad_files=True)
    try:
        outcome = highrate.run(analysis, ds, options=options)
    finally:
        threading.Thread(target=lambda: open(fifo, "wb").close(), daemon=True).start()  # release the reader
    [failure] = outcome.result.failed
    assert failure["file"] == str(fifo) and "TimeoutError" in failure["error"] and "1 s" in failure["error"]
    alone = highrate.run(analysis, [highrate.Dataset(good.name, good.sample, good.files[:1], metadata=good.metadata)],
                         options=highrate.RunOptions(chunk_size=100_000))
    assert_same_result(outcome.result, alone.result)


def test_scheduler_workers_with_another_highrate_are_named(monkeypatch):
    import distributed

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        monkeypatch.setattr(highrate._version, "__version__", "0.0-driver")
        with pytest.raises(ExecutorError, match=r"runs highrate .*the driver 0\.0-driver.*Install highrate"):
            DaskExecutor(scheduler=cl.scheduler_address)

"""Executors: by name, unknown names, and a real Dask scheduler given by address."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from compare import assert_same_counts, assert_same_result

import highrate
from highrate.cli.main import main
from highrate.errors import ConfigError
from highrate.execution.executors import executors, make_executor


def test_unknown_executor_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown executor 'proceses'.*dask, processes, sequential.*'processes'"):
        make_executor("proceses")


def test_known_executor_names():
    assert {"sequential", "processes", "dask"} <= set(executors.names())


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def sequential(sample, zmumu_path):
    analysis = highrate.load_analysis(zmumu_path)
    datasets = highrate.load_datasets(sample)
    return highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=7000)).result


def test_scheduler_address_from_python(dask_cluster, sample, zmumu_path, sequential):
    analysis = highrate.load_analysis(zmumu_path)
    datasets = highrate.load_datasets(sample)
    options = highrate.RunOptions(scheduler=dask_cluster.scheduler_address, chunk_size=7000)
    outcome = highrate.run(analysis, datasets, options=options)
    assert outcome.executor == "dask"
    assert_same_result(outcome.result, sequential)


def test_scheduler_address_from_cli(dask_cluster, sample, zmumu_path, sequential, tmp_path):
    code = main([
        "run", str(zmumu_path), "--datasets", str(sample), "--scheduler", dask_cluster.scheduler_address,
        "--chunk-size", "7000", "--output", str(tmp_path), "--no-progress",
    ])
    assert code == 0
    with (tmp_path / "histograms.pkl").open("rb") as f:
        written = pickle.load(f)
    for (name, ds, cat, var), h in sequential.histograms.items():
        np.testing.assert_array_equal(written[(name, ds, cat, var)].values(), h.values())


def test_processes_from_a_fresh_command_fork_and_match(sample, zmumu_path, sequential, tmp_path):
    """A fresh single-threaded command forks its workers (the forkserver path runs in-process above)."""
    import subprocess
    import sys

    code = (
        "import sys, highrate\n"
        "from highrate.execution.executors.local import ProcessExecutor\n"
        "ex = ProcessExecutor(workers=2)\n"
        "print('start method', ex.start_method)\n"
        "o = highrate.run(highrate.load_analysis(sys.argv[1]), highrate.load_datasets(sys.argv[2]),\n"
        "                 options=highrate.RunOptions(chunk_size=7000), executor=ex)\n"
        "ex.close()\n"
        "import pickle; pickle.dump(o.result.histograms, open(sys.argv[3], 'wb'))\n"
    )
    out = tmp_path / "h.pkl"
    done = subprocess.run([sys.executable, "-c", code, str(zmumu_path), str(sample), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "start method fork" in done.stdout
    with out.open("rb") as f:
        forked = pickle.load(f)
    for k, h in sequential.histograms.items():
        np.testing.assert_array_equal(forked[k].values(), h.values(), err_msg=str(k))


def test_affinity_queue_keeps_keys_together_and_helps_at_the_end():
    from highrate.execution.executors.local import _NOTHING, _AffinityQueue

    items = [(f, i) for f in "abc" for i in range(3)]
    homes: dict = {}
    q = _AffinityQueue(items, lambda it: it[0], homes, workers=2)
    assert [q.next_for(0), q.next_for(0)] == [("a", 0), ("a", 1)]  # worker 0 keeps to "a"
    assert q.next_for(1) == ("b", 0)  # worker 1 takes the next key nobody has
    assert q.next_for(0) == ("a", 2)
    assert q.next_for(0) == ("c", 0)  # "a" done: the next free key
    assert [q.next_for(1), q.next_for(1)] == [("b", 1), ("b", 2)]
    assert q.next_for(1) == ("c", 2)  # nothing free: help with "c", from its far end
    assert [q.next_for(0), q.next_for(0), q.next_for(1)] == [("c", 1), _NOTHING, _NOTHING]
    assert homes == {"a": 0, "b": 1, "c": 0}
    # a later call (the chunks after the files' metadata) starts each worker on its own keys
    again = _AffinityQueue(list(reversed(items)), lambda it: it[0], homes, workers=2)
    assert again.next_for(1)[0] == "b" and again.next_for(0)[0] == "c"
    # without keys: in order
    plain = _AffinityQueue([3, 1, 2], None, {}, workers=2)
    assert [plain.next_for(1), plain.next_for(0), plain.next_for(1), plain.next_for(0)] == [3, 1, 2, _NOTHING]


def _pid_of(item):
    import os
    import time

    time.sleep(0.02)
    return item, os.getpid()


def test_processes_send_a_key_to_one_worker():
    ex = make_executor("processes", workers=2)
    try:
        items = [(f, i) for f in "abcd" for i in range(6)]
        done = list(ex.map_unordered(_pid_of, items, affinity=lambda it: it[0]))
    finally:
        ex.close()
    assert sorted(item for item, _ in done) == sorted(items)  # each once
    pairs = {(item[0], pid) for item, pid in done}
    assert len({pid for _, pid in pairs}) == 2
    # handed out in order without affinity, every key would meet both workers (8 pairs)
    assert len(pairs) <= 6, pairs


def test_a_worker_that_dies_is_replaced_and_its_chunk_run_again(sample, zmumu_path, sequential, tmp_path):
    """A worker killed mid-chunk (as the kernel's OOM killer would) costs a retry, not the run."""
    import dataclasses

    from highrate import Cut

    marker = tmp_path / "killed-once"

    def killed_once(ev):
        import os
        import signal

        import awkward as ak

        if ak.backend(ev.PV.npvsGood) != "typetracer" and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return ev.PV.npvsGood > 0  # the same as the first cut of the skim

    base = highrate.load_analysis(zmumu_path)
    analysis = dataclasses.replace(base, skim=(Cut("killed_once", killed_once), *base.skim), source=None)
    outcome = highrate.run(analysis, highrate.load_datasets(sample),
                           options=highrate.RunOptions(executor="processes", workers=2, chunk_size=7000))
    assert marker.exists()
    assert outcome.result.failed == []
    assert outcome.chunk_counts["retried"] >= 1  # the killed chunk (and any other it held)
    assert outcome.result.histograms.keys() == sequential.histograms.keys()
    for key, h in sequential.histograms.items():
        np.testing.assert_array_equal(outcome.result.histograms[key].values(), h.values(), err_msg=str(key))
    assert_same_counts(outcome.result, sequential)  # the retry may take the columns the killed one cached


def test_a_chunk_that_always_kills_its_worker_is_reported(sample, zmumu_path):
    import dataclasses

    from highrate import Cut
    from highrate.errors import WorkerLostError

    datasets = [d for d in highrate.load_datasets(sample) if d.is_mc]

    def kills_on_event_100(ev):
        import os
        import signal

        import awkward as ak
        import numpy as np

        if ak.backend(ev.event) != "typetracer" and np.any(ak.to_numpy(ev.event) == 100):
            os.kill(os.getpid(), signal.SIGKILL)
        return (ev.PV.npvsGood > 0) & (ev.event > 0)  # event numbers start at 1: reads 'event'

    base = highrate.load_analysis(zmumu_path)
    analysis = dataclasses.replace(base, skim=(Cut("kills", kills_on_event_100), *base.skim), source=None)
    options = highrate.RunOptions(executor="processes", workers=2, chunk_size=7000, retries=1)
    with pytest.raises(WorkerLostError, match=r"died while running.*entries \[0, "):
        highrate.run(analysis, datasets, options=options)
    options = dataclasses.replace(options, skip_bad_files=True)
    outcome = highrate.run(analysis, datasets, options=options)
    (lost,) = outcome.result.failed
    assert lost["error"].startswith("WorkerLostError") and lost["entry_start"] == 0 and lost["attempts"] == 2
    assert outcome.result.counts[datasets[0].name]["total"] == sum(i.entries for i in outcome.files[datasets[0].name]) - (
        lost["entry_stop"] - lost["entry_start"])


def test_dask_reports_a_chunk_that_kills_its_workers(sample, zmumu_path):
    """Dask reruns a task whose worker died; one that kills its workers each time is reported."""
    import dataclasses

    import dask
    import distributed

    from highrate import Cut
    from highrate.errors import WorkerLostError
    from highrate.execution.executors.dask import DaskExecutor

    datasets = [d for d in highrate.load_datasets(sample) if d.is_mc]

    def kills_on_event_100(ev):
        import os
        import signal

        import awkward as ak
        import numpy as np

        if ak.backend(ev.event) != "typetracer" and np.any(ak.to_numpy(ev.event) == 100):
            os.kill(os.getpid(), signal.SIGKILL)
        return (ev.PV.npvsGood > 0) & (ev.event > 0)

    base = highrate.load_analysis(zmumu_path)
    analysis = dataclasses.replace(base, skim=(Cut("kills", kills_on_event_100), *base.skim), source=None)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        ex = DaskExecutor.from_client(client)
        options = highrate.RunOptions(chunk_size=7000, retries=0)
        with pytest.raises(WorkerLostError, match=r"died each time.*entries \[\d+, "):
            highrate.run(analysis, datasets, options=options, executor=ex)
        outcome = highrate.run(analysis, datasets, options=dataclasses.replace(options, skip_bad_files=True),
                               executor=ex)
    # chunks queued on a worker when it died may be given up on with it (Dask's rule); each is
    # reported, none is dropped or counted twice
    failed = outcome.result.failed
    assert 0 in {f["entry_start"] for f in failed}
    assert all(f["error"].startswith("WorkerLostError") for f in failed)
    entries = sum(i.entries for i in outcome.files[datasets[0].name])
    missing = sum(f["entry_stop"] - f["entry_start"] for f in failed)
    assert outcome.result.counts[datasets[0].name]["total"] == entries - missing

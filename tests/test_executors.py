"""Executors: by name, unknown names, and a real Dask scheduler given by address."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from compare import assert_same_result

import highrate
from highrate.cli import main
from highrate.errors import ConfigError
from highrate.executors import executors, make_executor


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
        np.testing.assert_array_equal(written[f"{name}/{ds}/{cat}/{var}"].values(), h.values())


def test_processes_from_a_fresh_command_fork_and_match(sample, zmumu_path, sequential, tmp_path):
    """A fresh single-threaded command forks its workers (the forkserver path runs in-process above)."""
    import subprocess
    import sys

    code = (
        "import sys, highrate\n"
        "from highrate.executors.local import ProcessExecutor\n"
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

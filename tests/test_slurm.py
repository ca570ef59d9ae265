"""A live single-node Slurm: dask-jobqueue workers in real batch jobs give identical histograms.

`.ci/start-slurm.sh` starts munge, slurmctld and slurmd on 127.0.0.1 (CI runs it first). On a
developer's box without Slurm the tests skip; with CI=true they fail instead, so that a broken
Slurm setup cannot pass unnoticed.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from compare import assert_same_result

import highrate
from highrate.cli.main import main
from highrate.execution.executors import make_executor

START = Path(__file__).resolve().parents[1] / ".ci" / "start-slurm.sh"


def _slurm_problem() -> str | None:
    """Why Slurm cannot be used here, or None when a node answers idle."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "no sbatch/sinfo on PATH (run `sudo bash .ci/start-slurm.sh` to start a local Slurm)"
    if not os.environ.get("SLURM_CONF") and not Path("/etc/slurm/slurm.conf").is_file():
        return "SLURM_CONF is not set and /etc/slurm/slurm.conf does not exist (see .ci/start-slurm.sh)"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s: is slurmctld running?"
    if states.returncode != 0 or not {"idle", "mixed"} & set(states.stdout.split()):
        return f"no idle Slurm node (sinfo: {(states.stdout + states.stderr).strip() or 'no output'})"
    return None


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    """A clusters file with a 'ci-slurm' profile (the shipped 'slurm-local', logs in a temp dir)."""
    problem = _slurm_problem()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but Slurm is not usable: {problem}")
        pytest.skip(f"Slurm not available: {problem}")
    logs = tmp_path_factory.mktemp("slurm-logs")
    path = logs / "clusters.yaml"
    path.write_text(f"clusters:\n  ci-slurm: {{extends: slurm-local, jobs: 2, log_directory: '{logs}'}}\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HIGHRATE_CLUSTERS", str(path))
        yield logs


@pytest.fixture(scope="module")
def sequential(sample, zmumu_path):
    analysis = highrate.load_analysis(zmumu_path)
    return highrate.run(analysis, highrate.load_datasets(sample), options=highrate.RunOptions(chunk_size=7000)).result


def _queued_job_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-n", "highrate-ci-slurm", "-o", "%i"], capture_output=True, text=True,
                         check=True, timeout=20).stdout
    return set(out.split())


def test_workers_run_in_slurm_jobs_and_give_identical_histograms(slurm, sample, zmumu_path, sequential):
    analysis = highrate.load_analysis(zmumu_path)
    datasets = highrate.load_datasets(sample)
    executor = make_executor("sequential", cluster="ci-slurm")
    try:
        # every worker runs inside a batch job that squeue lists under the profile's job name
        job_ids = executor.client.run(lambda: os.environ.get("SLURM_JOB_ID"))
        assert len(job_ids) >= 1 and all(j and j.isdigit() for j in job_ids.values()), job_ids
        assert set(job_ids.values()) <= _queued_job_ids()
        outcome = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=7000), executor=executor)
    finally:
        executor.close()
    assert outcome.executor == "cluster:ci-slurm"
    assert_same_result(outcome.result, sequential)
    # the workers wrote their logs where the profile says
    assert any(slurm.glob("highrate-ci-slurm-*.err"))


def test_cli_run_with_a_slurm_profile(slurm, sample, zmumu_path, sequential, tmp_path):
    code = main(["run", str(zmumu_path), "--datasets", str(sample), "--cluster", "ci-slurm",
                 "--chunk-size", "7000", "--output", str(tmp_path / "out"), "--no-progress"])
    assert code == 0
    with (tmp_path / "out" / "histograms.pkl").open("rb") as f:
        written = pickle.load(f)
    for (name, ds, cat, var), h in sequential.histograms.items():
        np.testing.assert_array_equal(written[(name, ds, cat, var)].values(), h.values())

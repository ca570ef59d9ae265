"""Fault tolerance with real worker processes: retries, dying workers, unreadable files,
a crashed driver resumed from checkpoints, and rerunning only the failed chunks."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from compare import assert_same_result

import highrate
from highrate.cli.main import main

# how chunks are computed: each run computes, none takes an earlier run's results from the cache
pytestmark = pytest.mark.usefixtures("computing")

HERE = Path(__file__).resolve().parent
FAULTY = HERE / "faulty_analysis.py"
CHUNK = 4000


@pytest.fixture(scope="module")
def setup(sample):
    analysis = highrate.load_analysis(FAULTY)
    datasets = highrate.load_datasets(sample)
    clean = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=CHUNK))
    assert clean.chunks >= 10
    return analysis, datasets, clean


@pytest.mark.parametrize("executor", ["sequential", "processes"])
def test_chunk_failing_once_is_retried_and_counted_once(setup, tmp_path, monkeypatch, executor):
    _, datasets, clean = setup
    monkeypatch.setenv("HIGHRATE_FAULT_FAIL_ONCE", str(tmp_path / "failed-once"))
    analysis = highrate.load_analysis(FAULTY)
    options = highrate.RunOptions(executor=executor, workers=2, chunk_size=CHUNK)
    outcome = highrate.run(analysis, datasets, options=options)
    assert (tmp_path / "failed-once").exists()
    assert outcome.chunk_counts["retried"] == 1
    assert outcome.chunk_counts["computed"] == clean.chunks
    assert outcome.result.failed == []
    assert_same_result(outcome.result, clean.result)


def test_no_retries_reports_the_failure(setup, tmp_path, monkeypatch):
    _, datasets, clean = setup
    monkeypatch.setenv("HIGHRATE_FAULT_FAIL_ONCE", str(tmp_path / "failed-once"))
    analysis = highrate.load_analysis(FAULTY)
    options = highrate.RunOptions(chunk_size=CHUNK, retries=0, skip_bad_files=True)
    outcome = highrate.run(analysis, datasets, options=options)
    [failure] = outcome.result.failed
    assert "injected transient failure" in failure["error"] and failure["attempts"] == 1
    total = sum(c["total"] for c in outcome.result.counts.values())
    assert total == sum(c["total"] for c in clean.result.counts.values()) - (failure["entry_stop"] - failure["entry_start"])


def test_killed_dask_worker_loses_nothing(setup, tmp_path, monkeypatch):
    _, datasets, clean = setup
    marker = tmp_path / "killed"
    monkeypatch.setenv("HIGHRATE_FAULT_KILL_ONCE", str(marker))
    analysis = highrate.load_analysis(FAULTY)
    options = highrate.RunOptions(executor="dask", workers=2, chunk_size=CHUNK)
    outcome = highrate.run(analysis, datasets, options=options)
    assert marker.exists()  # a worker really died mid-run
    assert outcome.result.failed == []
    assert_same_result(outcome.result, clean.result)


def test_file_that_becomes_unreadable_is_excluded_exactly(setup, tmp_path):
    analysis, datasets, _ = setup
    victim_src = datasets[0].files[1]
    victim = tmp_path / Path(victim_src).name
    victim.write_bytes(Path(victim_src).read_bytes())
    files = (datasets[0].files[0], str(victim))
    ds = [highrate.Dataset(datasets[0].name, datasets[0].sample, files, metadata=datasets[0].metadata)]
    reference = highrate.run(analysis, [highrate.Dataset(ds[0].name, ds[0].sample, files[:1], metadata=ds[0].metadata)],
                             options=highrate.RunOptions(chunk_size=CHUNK))

    def corrupt_after_metadata(p: highrate.Progress) -> None:
        if p.stage == "files" and p.done == p.total:  # readable when described, not when read
            with victim.open("r+b") as f:
                f.seek(2000)
                f.write(b"\0" * (victim.stat().st_size - 4000))

    options = highrate.RunOptions(chunk_size=CHUNK, skip_bad_files=True, retries=1)
    outcome = highrate.run(analysis, ds, options=options, progress=corrupt_after_metadata)
    failed = outcome.result.failed
    assert {f["file"] for f in failed} == {str(victim)}
    ranges = sorted((f["entry_start"], f["entry_stop"]) for f in failed)
    assert len(ranges) == len(set(ranges))  # each failed chunk reported once
    import uproot

    assert sum(b - a for a, b in ranges) == uproot.open(victim_src)["Events"].num_entries
    assert all(f["attempts"] == 2 for f in failed)
    assert_same_result(outcome.result, reference.result)


def _cli_run(out: Path, sample: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "highrate", "run", str(FAULTY), "--datasets", str(sample),
           "--chunk-size", str(CHUNK), "--output", str(out), "--no-progress", *extra]
    return subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300)


def _histograms(out: Path) -> dict:
    with (out / "histograms.pkl").open("rb") as f:
        return pickle.load(f)


def test_crashed_driver_resumes_and_computes_only_the_missing_chunks(setup, sample, tmp_path):
    _, _, clean = setup
    out = tmp_path / "out"
    crash = _cli_run(out, sample, env={"HIGHRATE_FAULT_CRASH_AT": "6", "HIGHRATE_FAULT_COUNTER": str(tmp_path / "n")})
    assert crash.returncode == 9, crash.stderr  # the driver died half way, before writing outputs
    assert not (out / "report.json").exists()
    assert len(list((out / "checkpoints").glob("*.pkl"))) == 5

    resumed = _cli_run(out, sample, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["chunks"]["resumed"] == 5
    assert report["chunks"]["computed"] == clean.chunks - 5
    hists = _histograms(out)
    for (name, ds, cat, var), h in clean.result.histograms.items():
        np.testing.assert_array_equal(hists[(name, ds, cat, var)].values(), h.values())
    assert report["events"]["total"] == sum(c["total"] for c in clean.result.counts.values())


def test_changed_analysis_never_reuses_checkpoints(setup, sample, tmp_path):
    out = tmp_path / "out"
    assert _cli_run(out, sample).returncode == 0
    changed = tmp_path / "changed.py"
    text = FAULTY.read_text().replace('name="zmumu_faulty"', 'name="zmumu_faulty_v2"')
    changed.write_text(text.replace("Path(__file__).resolve().parents[1]", f"Path({str(HERE.parent)!r})"))
    cmd = [sys.executable, "-m", "highrate", "run", str(changed), "--datasets", str(sample), "--chunk-size",
           str(CHUNK), "--output", str(out), "--no-progress", "--resume"]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=300).returncode == 0
    report = json.loads((out / "report.json").read_text())
    assert report["chunks"]["resumed"] == 0
    assert report["chunks"]["computed"] == report["chunks"]["total"]


def test_rerun_failed_processes_only_the_failed_chunks(setup, sample, tmp_path, monkeypatch):
    _, _, clean = setup
    out = tmp_path / "out"
    monkeypatch.setenv("HIGHRATE_FAULT_FAIL_ONCE", str(tmp_path / "failed-once"))
    code = main(["run", str(FAULTY), "--datasets", str(sample), "--chunk-size", str(CHUNK), "--output", str(out),
                 "--no-progress", "--retries", "0", "--skip-bad-files"])
    assert code == 0
    first = json.loads((out / "report.json").read_text())
    assert len(first["failed_chunks"]) == 1
    monkeypatch.delenv("HIGHRATE_FAULT_FAIL_ONCE")
    assert main(["rerun-failed", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["failed_chunks"] == []
    assert report["chunks"]["computed"] == 1
    assert report["chunks"]["resumed"] == clean.chunks - 1
    hists = _histograms(out)
    for (name, ds, cat, var), h in clean.result.histograms.items():
        np.testing.assert_array_equal(hists[(name, ds, cat, var)].values(), h.values())

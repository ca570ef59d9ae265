"""``highrate run`` again with nothing changed answers from the up-to-date stamp (cli/uptodate.py),
and anything the outputs were made from — the analysis, a helper module, a correction file's
content, a new file matching a dataset's glob, a missing output, the installed libraries — makes
it run again. Real commands in fresh processes, on files written by the generator."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from highrate.cli import uptodate
from highrate.testing import generate_dataset_set

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "zmumu" / "analysis.py"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The full Z→μμ example (corrections, golden JSON, systematics), whose histograms'
    module imports a helper module, on a sample of its own (files may be added to it)."""
    generate_dataset_set(tmp_path / "data", events=4000, files=2, seed=11, compression="zstd")
    shutil.copy(EXAMPLE, tmp_path / "analysis.py")
    text = (EXAMPLE.parent / "analysis_nominal.py").read_text()  # which analysis.py imports
    text = text.replace("import awkward as ak\n", "import awkward as ak\nimport helper\n", 1)
    text = text.replace('Axis("mll", 120, 60, 120', 'Axis("mll", helper.BINS, 60, 120', 1)
    assert "helper.BINS" in text
    (tmp_path / "analysis_nominal.py").write_text(text)
    (tmp_path / "helper.py").write_text("BINS = 120\n")
    return tmp_path


def highrate(work: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    cmd = [sys.executable, "-m", "highrate", "run", "analysis.py", "--datasets", "data/datasets.yaml",
           "--output", "out", "--no-progress", *extra]
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def mll(work: Path) -> np.ndarray:
    with open(work / "out" / "histograms.pkl", "rb") as f:
        hists = pickle.load(f)
    return sum(np.asarray(h.values()) for (name, dataset, _, variation), h in hists.items()
               if (name, dataset, variation) == ("mll", "DYJetsToLL_M-50", "nominal"))


def test_an_unchanged_command_is_answered_from_the_stamp_and_any_input_makes_it_run(work: Path) -> None:
    first = highrate(work)
    assert not first.startswith("up to date")
    report = json.loads((work / "out" / "report.json").read_text())
    made = {p.name: p.stat().st_mtime_ns for p in (work / "out").iterdir() if p.is_file()}

    again = highrate(work)
    assert again.startswith("up to date")
    assert "Total" in again and f"{report['events']['total']:,}" in again  # the run's own summary
    assert {p.name: p.stat().st_mtime_ns for p in (work / "out").iterdir() if p.is_file()} == made
    assert len(mll(work)) == 120

    (work / "analysis.py").write_text((work / "analysis.py").read_text())  # saved, not edited
    assert highrate(work).startswith("up to date")

    (work / "helper.py").write_text("BINS = 60\n")  # a module the analysis imports
    assert not highrate(work).startswith("up to date")
    assert len(mll(work)) == 60
    assert highrate(work).startswith("up to date")

    pileup = work / "data" / "corrections" / "pileup.json"  # read by a weight, through highrate.corrections
    before = mll(work)
    pileup.write_text(pileup.read_text())  # touched, same content: still up to date
    assert highrate(work).startswith("up to date")
    doc = json.loads(pileup.read_text())
    nominal = next(c for c in doc["corrections"][0]["data"]["content"] if c["key"] == "nominal")["value"]
    nominal["content"] = [2.0 * w for w in nominal["content"]]
    pileup.write_text(json.dumps(doc))
    assert not highrate(work).startswith("up to date")
    np.testing.assert_allclose(mll(work).sum(), 2.0 * before.sum(), rtol=1e-6)  # every weight doubled

    (work / "out" / "histograms.root").unlink()  # an output gone
    assert not highrate(work).startswith("up to date")
    assert (work / "out" / "histograms.root").exists()

    folder = work / "data" / "DYJetsToLL_M-50"  # a new file matching the dataset's glob
    shutil.copy(folder / "DYJetsToLL_M-50_0.root", folder / "DYJetsToLL_M-50_9.root")
    before = json.loads((work / "out" / "report.json").read_text())["events"]["total"]
    assert not highrate(work).startswith("up to date")
    after = json.loads((work / "out" / "report.json").read_text())["events"]["total"]
    assert after - before == 2000  # the copy's events, once


def test_forced_runs_and_other_executors_never_take_the_stamp(work: Path) -> None:
    highrate(work)
    assert highrate(work).startswith("up to date")
    assert not highrate(work, "--no-cache").startswith("up to date")
    assert not highrate(work, env={"HIGHRATE_CACHE": "off"}).startswith("up to date")
    assert not highrate(work, "--workers", "2").startswith("up to date")  # another command line: its own stamp
    assert highrate(work, "--workers", "2").startswith("up to date")
    clear = subprocess.run([sys.executable, "-m", "highrate", "cache", "clear"], cwd=work, capture_output=True,
                           text=True, timeout=120)
    assert clear.returncode == 0 and "up-to-date stamp" in clear.stdout, clear.stdout + clear.stderr
    assert not highrate(work).startswith("up to date")


def test_a_changed_installation_or_interpreter_is_not_up_to_date(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    highrate(work)
    argv = ["run", "analysis.py", "--datasets", "data/datasets.yaml", "--output", "out", "--no-progress"]
    monkeypatch.chdir(work)
    assert uptodate.check(argv) is not None
    monkeypatch.setattr(uptodate, "environment", lambda: "another installation")
    assert uptodate.check(argv) is None


def test_a_dask_run_writes_no_stamp(work: Path) -> None:
    highrate(work, "--executor", "dask", "--workers", "1")
    assert not highrate(work, "--executor", "dask", "--workers", "1").startswith("up to date")

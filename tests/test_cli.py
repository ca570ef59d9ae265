"""The ``highrate`` command: exit codes, messages on stderr without tracebacks, ``--debug``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from highrate.cli.main import main
from highrate.errors import DatasetError, InputFileError
from highrate.testing import generate_file

ZMUMU = Path(__file__).resolve().parents[1] / "examples" / "zmumu" / "analysis_nominal.py"


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_file(tmp_path_factory.mktemp("cli") / "dy.root", events=3000, seed=5, basket_events=500)


def datasets_yaml(folder: Path, files: list[Path | str]) -> Path:
    path = folder / "datasets.yaml"
    entry = {"files": [str(f) for f in files], "metadata": {"is_mc": True}}
    path.write_text(yaml.safe_dump({"datasets": {"dy": entry}}))
    return path


def run_args(datasets: Path, out: Path, *extra: str) -> list[str]:
    return ["run", str(ZMUMU), "--datasets", str(datasets), "--output", str(out), "--chunk-size", "1000",
            "--no-progress", *extra]


def test_good_run_exits_zero_and_writes_outputs(good_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(run_args(datasets_yaml(tmp_path, [good_file]), out)) == 0
    captured = capsys.readouterr()
    assert "error" not in captured.err.lower()
    report = json.loads((out / "report.json").read_text())
    assert report["events"]["total"] == 3000
    assert report["chunks"] == {"total": 3, "processed": 3, "failed": 0, "computed": 3, "resumed": 0, "retried": 0,
                                "cached": 0}
    assert report["cache"]["skim"] == {"hits": 0, "misses": 3, "bytes_read": 0,
                                       "bytes_written": report["cache"]["skim"]["bytes_written"]}
    assert len(list((out / "checkpoints").glob("*.pkl"))) == 3
    assert report["failed_chunks"] == []
    assert (out / "histograms.root").is_file() and (out / "histograms.pkl").is_file()
    # the summary is the command's output, on stdout; progress and notes stay on stderr
    assert "Total" in captured.out and "Total" not in captured.err


def test_error_is_one_line_on_stderr_with_exit_code_2(tmp_path, capfd):
    missing = tmp_path / "missing.root"
    assert main(run_args(datasets_yaml(tmp_path, [missing]), tmp_path / "out")) == 2
    captured = capfd.readouterr()
    assert captured.out == ""
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: dataset 'dy': file ")
    assert str(missing) in lines[0]
    assert "Traceback" not in captured.err
    assert not (tmp_path / "out").exists()  # nothing is written for a run that did not happen


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(tmp_path, where):
    missing = tmp_path / "missing.root"
    args = run_args(datasets_yaml(tmp_path, [missing]), tmp_path / "out")
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    with pytest.raises(InputFileError, match=r"missing\.root"):
        main(args)


def test_brackets_in_messages_are_printed_verbatim(tmp_path, capsys):
    path = tmp_path / "datasets.yaml"
    path.write_text("datasets:\n  dy:\n    files: ['data/[ab]*.root']\n    metadata: {is_mc: true}\n")
    assert main(run_args(path, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "'data/[ab]*.root' matches no files" in err


def test_closing_markup_tag_in_a_file_name_does_not_crash(tmp_path, capsys):
    odd = tmp_path / "[/x]" / "f.root"  # not valid rich markup: would raise MarkupError unescaped
    assert main(run_args(datasets_yaml(tmp_path, [odd]), tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert str(odd) in err
    assert "Traceback" not in err


def test_unknown_dataset_name_is_named(good_file, tmp_path, capsys):
    assert main([*run_args(datasets_yaml(tmp_path, [good_file]), tmp_path / "out"), "--dataset", "dyy"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'dyy'" in err and "Did you mean 'dy'?" in err


def test_missing_datasets_file_is_named(tmp_path, capsys):
    assert main(run_args(tmp_path / "nope.yaml", tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "cannot read datasets file" in err and "nope.yaml" in err


def test_missing_analysis_file_is_named(good_file, tmp_path, capsys):
    args = run_args(datasets_yaml(tmp_path, [good_file]), tmp_path / "out")
    args[1] = str(tmp_path / "nope.py")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot read analysis file" in err and "nope.py" in err


def test_debug_reraises_dataset_errors(tmp_path):
    path = tmp_path / "datasets.yaml"
    path.write_text("datasets:\n  dy:\n    filez: [a.root]\n    metadata: {is_mc: true}\n")
    with pytest.raises(DatasetError, match="Did you mean 'files'"):
        main(["--debug", *run_args(path, tmp_path / "out")])


def test_bad_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", str(ZMUMU)])  # --datasets is required
    assert info.value.code == 2
    assert "--datasets" in capsys.readouterr().err


def test_generate_writes_a_datasets_file(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "gen"), "--events", "200", "--files", "1"]) == 0
    assert "datasets file" in capsys.readouterr().err
    from highrate.data.datasets import load_datasets

    names = [d.name for d in load_datasets(tmp_path / "gen" / "datasets.yaml")]
    assert names == ["DYJetsToLL_M-50", "SingleMuon_2018"]


def test_demo_generates_once_and_runs_the_example(tmp_path):
    """The README's first command: ``highrate demo`` makes its sample once, then runs on it."""
    import uproot

    args = ["demo", "--events", "6000", "--files", "2", "--cache-dir", str(tmp_path / "cache")]
    assert main([*args, "--output", str(tmp_path / "out1")]) == 0
    files = sorted((tmp_path / "cache").rglob("*.root"))
    assert len(files) == 4  # an MC and a data sample, 2 files each
    written = {f: f.stat().st_mtime_ns for f in files}
    assert main([*args, "--output", str(tmp_path / "out2")]) == 0
    assert {f: f.stat().st_mtime_ns for f in files} == written  # reused, not generated again
    entries = sum(uproot.open(f)["Events"].num_entries for f in files)
    for out in ("out1", "out2"):
        report = json.loads((tmp_path / out / "report.json").read_text())
        assert report["events"]["total"] == entries == 12_000
        assert report["failed_chunks"] == []
    h1 = uproot.open(tmp_path / "out1" / "histograms.root")["mll/DYJetsToLL_M-50/baseline/nominal"].values()
    h2 = uproot.open(tmp_path / "out2" / "histograms.root")["mll/DYJetsToLL_M-50/baseline/nominal"].values()
    assert h1.sum() > 0 and (h1 == h2).all()


def test_the_console_command_exits_with_mains_code(good_file, tmp_path):
    """``python -m highrate`` (as the ``highrate`` script) returns main's exit code, outputs written."""
    import subprocess
    import sys

    out = tmp_path / "out"
    good = subprocess.run([sys.executable, "-m", "highrate", *run_args(datasets_yaml(tmp_path, [good_file]), out)],
                          capture_output=True, text=True, timeout=300)
    assert good.returncode == 0, good.stderr
    assert json.loads((out / "report.json").read_text())["events"]["total"] == 3000
    missing = tmp_path / "missing"
    missing.mkdir()
    bad = subprocess.run([sys.executable, "-m", "highrate",
                          *run_args(datasets_yaml(missing, [tmp_path / "nope.root"]), tmp_path / "out2")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "nope.root" in bad.stdout + bad.stderr and "Traceback" not in bad.stderr


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The command in its own process: logging and the environment are per process."""
    return subprocess.run([sys.executable, "-m", "highrate", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_a_dask_run_is_quiet_and_its_summary_can_be_piped(good_file, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_LOGGING")}
    done = subprocess.run([sys.executable, "-m", "highrate", *run_args(datasets_yaml(tmp_path, [good_file]),
                           tmp_path / "out", "--executor", "dask", "--workers", "2")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "INFO" not in done.stderr and "distributed" not in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) <= 2  # the dashboard's address at most
    assert "Total" in done.stdout and "3,000" in done.stdout


def test_workers_without_an_executor_run_on_processes_and_say_so(good_file, tmp_path):
    done = cli(*run_args(datasets_yaml(tmp_path, [good_file]), tmp_path / "out", "--workers", "2"))
    assert done.returncode == 0, done.stderr
    assert "--workers 2: running on 2 worker processes (--executor processes)" in done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["options"]["executor"] == "processes" and report["events"]["total"] == 3000
    one = cli(*run_args(datasets_yaml(tmp_path, [good_file]), tmp_path / "one"))
    assert json.loads((tmp_path / "one" / "report.json").read_text())["options"]["executor"] == "sequential"
    assert "worker processes" not in one.stderr


def test_a_reader_that_stops_early_is_no_error(good_file, tmp_path):
    """`highrate datasets --json | head -1`: no BrokenPipeError traceback when head has read enough."""
    files = [generate_file(tmp_path / f"f{i}.root", events=100, seed=i) for i in range(40)]
    yaml_path = datasets_yaml(tmp_path, files)
    done = subprocess.run(f"{sys.executable} -m highrate datasets --datasets {yaml_path} --json | head -1",
                          shell=True, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "["
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr

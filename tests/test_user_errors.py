"""A bug in the analysis' own code is not a bad input file: it is a UserCodeError naming the
dataset, the stage, the chunk and the user's line, never retried, never skipped, on every executor.

And the failure policy: a run that skipped its bad files still fails when a dataset lost
everything, or more than --max-failed-fraction of its input; its report is written first.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import uproot
import yaml

import highrate
from highrate import Analysis, Axis, Cut, Histogram, ShapeVariation, Weight
from highrate.cli.main import main
from highrate.errors import HighrateError, RunFailedError, UserCodeError
from highrate.execution.failures import lost_fraction

CHUNK = 6000  # 12k-event files: two chunks each
MC = "DYJetsToLL_M-50"

ANALYSIS = '''"""An analysis whose preselection cut fails (tests)."""
import awkward as ak
import numpy as np
from highrate import Analysis, Axis, Cut, Histogram

LOG = {log!r}


def note(ev):
    if ak.backend(ev) != "typetracer":  # one line per call on real events: a retry would repeat one
        with open(LOG, "a") as f:
            f.write(f"{{int(ev.event[0])}} {{len(ev)}}\\n")


def index_error(ev):
    note(ev)
    return ev.Muon.pt[:, 1] > 20  # BAD: some events have fewer than two muons


def zero_division(ev):
    note(ev)
    n = ak.num(ev.Muon)
    if ak.backend(ev) == "typetracer":  # the division below needs numbers
        return n >= 2
    return n >= len(ev) // int(ak.sum(n > 100))  # BAD: no event has over 100 muons


def type_error(ev):
    note(ev)
    n = ak.num(ev.Muon)
    if ak.backend(ev) == "typetracer":
        return n >= 2
    return n >= float(n)  # BAD: an array is not a number


def while_tracing(ev):
    return np.ones(len(ev), dtype=bool)  # BAD: the length is unknown while tracing


analysis = Analysis(
    name="user_errors",
    columns=["event"],  # read by note() on real events only, where the tracer cannot see it
    preselection=[Cut("two_muons", {kind})],
    histograms=[Histogram("nMuon", Axis("nMuon", 6, 0, 6))],
)
'''


def write_analysis(folder: Path, kind: str) -> tuple[Path, Path]:
    """The analysis file with the cut ``kind`` and the file its calls are logged to."""
    log = folder / "calls.log"
    path = folder / "analysis.py"
    path.write_text(ANALYSIS.format(kind=kind, log=str(log)))
    return path, log


def bad_line(path: Path, function: str) -> tuple[int, str]:
    """(line number, text) of the line marked BAD in ``function``."""
    lines = path.read_text().splitlines()
    start = lines.index(next(x for x in lines if x.startswith(f"def {function}(")))
    number = next(i for i in range(start, len(lines)) if "# BAD" in lines[i])
    return number + 1, lines[number].strip()


def mc(sample: Path) -> list[highrate.Dataset]:
    return [d for d in highrate.load_datasets(sample) if d.name == MC]


@pytest.fixture(scope="module")
def dask_scheduler():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def options(executor: str, scheduler: str | None) -> highrate.RunOptions:
    return highrate.RunOptions(executor=executor, workers=2, scheduler=scheduler if executor == "dask" else None,
                               chunk_size=CHUNK, retries=2, skip_bad_files=True)


@pytest.mark.parametrize("executor", ["sequential", "processes", "dask"])
@pytest.mark.parametrize(("function", "exception"), [("index_error", "IndexError"),
                                                    ("zero_division", "ZeroDivisionError"),
                                                    ("type_error", "TypeError")])
def test_an_exception_in_a_cut_names_stage_chunk_and_line(sample, tmp_path, request, executor, function, exception):
    scheduler = request.getfixturevalue("dask_scheduler") if executor == "dask" else None
    path, log = write_analysis(tmp_path, function)
    with pytest.raises(UserCodeError) as info:  # skip_bad_files is on: it still stops the run
        highrate.run(highrate.load_analysis(path), mc(sample), options=options(executor, scheduler))
    err = info.value
    assert isinstance(err, HighrateError) and isinstance(err, RuntimeError)
    assert err.exc_type == exception and not err.tracing
    message = str(err)
    line, text = bad_line(path, function)
    start, stop = err.entries
    for part in (f"dataset {MC!r}", "preselection cut 'two_muons'", f"raised {exception}", f"file {err.file!r}",
                 f"entries [{start}, {stop})", f"analysis.py:{line}: {text}", f"{exception}:",
                 "not in the input", "--debug"):
        assert part in message, (part, message)
    assert err.file in mc(sample)[0].files and stop - start > 0
    assert len(message.splitlines()) <= 6  # fits on a screen; the traceback is kept apart
    # the traceback comes back from the worker, as text, with the user's frame in it
    assert f'analysis.py", line {line}, in {function}' in err.traceback
    assert f"\n{exception}: " in err.traceback
    # run once per chunk: never retried; the failing chunk is among those run
    calls = log.read_text().splitlines()
    assert len(calls) == len(set(calls)), calls
    first_event = int(uproot.open(err.file)["Events"]["event"].array(library="np", entry_start=start,
                                                                       entry_stop=start + 1)[0])
    assert f"{first_event} {stop - start}" in calls
    if executor == "sequential":
        assert len(calls) == 1  # the run stopped at the first chunk


def test_the_error_survives_pickling(sample, tmp_path):
    path, _ = write_analysis(tmp_path, "index_error")
    with pytest.raises(UserCodeError) as info:
        highrate.run(highrate.load_analysis(path), mc(sample), options=highrate.RunOptions(chunk_size=CHUNK))
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is UserCodeError and str(copy) == str(info.value)
    assert copy.traceback == info.value.traceback and copy.entries == info.value.entries


def test_an_exception_while_tracing_names_the_stage_and_line(sample, tmp_path):
    path, log = write_analysis(tmp_path, "while_tracing")
    with pytest.raises(UserCodeError) as info:
        highrate.run(highrate.load_analysis(path), mc(sample), options=highrate.RunOptions(chunk_size=CHUNK))
    err = info.value
    line, text = bad_line(path, "while_tracing")
    message = str(err)
    assert err.tracing and err.exc_type == "TypeError" and err.file is None
    for part in ("preselection cut 'two_muons' raised TypeError", f"dataset {MC!r}", "before reading any data",
                 f"analysis.py:{line}: {text}", "columnar"):
        assert part in message, (part, message)
    assert not log.exists()  # no chunk ran


WRONG_RETURNS = {  # cut: (what the message says it returned, what it says a cut must return)
    "lambda ev: ev.MET.pt": ("returned float32 values", "one boolean per event"),
    "lambda ev: ev.Muon.pt > 20": ("returned a per-object mask", "ak.any(mask, axis=1)"),
    "lambda ev: ev.MET.pt[ev.MET.pt > 20] > 0": ("returned", "a mask, not the selected events"),
    "lambda ev: True": ("returned a single value (array(True))", "one boolean per event"),
}


@pytest.mark.parametrize("cut", list(WRONG_RETURNS))
def test_a_cut_returning_the_wrong_type_says_what_it_returned(sample, tmp_path, cut):
    path, _ = write_analysis(tmp_path, cut)
    with pytest.raises(UserCodeError) as info:
        highrate.run(highrate.load_analysis(path), mc(sample),
                     options=highrate.RunOptions(chunk_size=CHUNK, skip_bad_files=True))
    message = str(info.value)
    returned, must = WRONG_RETURNS[cut]
    line = next(i for i, x in enumerate(path.read_text().splitlines(), 1) if cut in x)
    for part in ("preselection cut 'two_muons' " + returned, must, f"analysis.py:{line}", cut, f"dataset {MC!r}"):
        assert part in message, (part, message)
    if info.value.entries is not None:  # the length is found wrong on a chunk
        n = (stop := info.value.entries[1]) - info.value.entries[0]
        kept = int((uproot.open(info.value.file)["Events"]["MET_pt"].array(
            library="np", entry_start=info.value.entries[0], entry_stop=stop) > 20).sum())
        assert f"returned {kept} values for {n} events" in message
    else:  # the type is found wrong while tracing, before any chunk
        assert info.value.tracing and "MET.pt[" not in cut


STAGES = {  # stage named in the message: (definition, what happened)
    "object 'Leading'": ({"objects": {"Leading": lambda ev: ev.Muon[:, 0]}}, "raised IndexError"),
    "quantity 'met'": ({"quantities": {"met": lambda ev: ev.MET.pt[ev.MET.pt > 20]}}, "returned"),
    "weight 'first'": ({"weights": [Weight("first", lambda ev: ev.genWeight[:10])]}, "returned 10 values for"),
    "category 'two' cut 'second'": ({"categories": {"two": [Cut("second", lambda ev: ev.Muon.pt[:, 1] > 20)]}},
                                    "raised IndexError"),
    "shape variation 'Scale' (up)": ({"variations": [ShapeVariation("Scale", lambda ev, direction: [ev.Muon])]},
                                     "returned a list"),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_kind_of_stage_is_named(sample, stage):
    definition, happened = STAGES[stage]
    analysis = Analysis(name="stages", histograms=[Histogram("met", Axis("MET.pt", 10, 0, 100))], **definition)
    with pytest.raises(UserCodeError) as info:
        highrate.run(analysis, mc(sample), options=highrate.RunOptions(chunk_size=CHUNK, skip_bad_files=True))
    message = str(info.value)
    assert message.startswith(f"{stage} {happened}"), message
    assert "test_user_errors.py:" in message  # the definition above: this file is the user's code here


def test_cli_prints_the_message_and_with_debug_the_workers_traceback(sample, tmp_path, capsys):
    path, _ = write_analysis(tmp_path, "index_error")
    line, text = bad_line(path, "index_error")
    args = ["run", str(path), "--datasets", str(sample), "--dataset", MC, "--output", str(tmp_path / "out"),
            "--chunk-size", str(CHUNK), "--no-progress", "--skip-bad-files", "--executor", "processes",
            "--workers", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "preselection cut 'two_muons' raised IndexError" in err and f"analysis.py:{line}: {text}" in err
    assert "Traceback" not in err
    assert main(["--debug", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert f'analysis.py", line {line}, in index_error' in err
    assert err.index("Traceback") < err.index("error: preselection cut 'two_muons'")  # the message comes last


# the failure policy ----------------------------------------------------------------------------


def datasets_file(folder: Path, files: list[Path | str]) -> Path:
    path = folder / "datasets.yaml"
    entry = {"files": [str(f) for f in files], "metadata": {"is_mc": True}}
    path.write_text(yaml.safe_dump({"datasets": {"dy": entry}}))
    return path


def not_root(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("this is not a ROOT file\n")
    return path


def cli_run(analysis: Path, datasets: Path, out: Path, *extra: str) -> int:
    return main(["run", str(analysis), "--datasets", str(datasets), "--output", str(out), "--chunk-size",
                 str(CHUNK), "--no-progress", "--skip-bad-files", *extra])


def test_every_file_bad_fails_the_run_and_writes_the_report(zmumu_path, tmp_path, capsys):
    bad = [not_root(tmp_path, f"bad_{i}.root") for i in range(7)]
    datasets = datasets_file(tmp_path, bad)
    assert cli_run(zmumu_path, datasets, tmp_path / "out") == 2
    err = capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "report.json").read_text())  # written before the exit
    assert sorted(f["file"] for f in report["failed_chunks"]) == sorted(map(str, bad))
    assert report["events"]["total"] == 0
    assert "dataset 'dy' processed no event" in err
    assert sum(str(b) in err for b in bad) >= 5 and "and 2 more" in err  # the first few, then a count

    with pytest.raises(RunFailedError) as info:  # the same through the API, with the outcome kept
        highrate.run(highrate.load_analysis(zmumu_path), highrate.load_datasets(datasets),
                     options=highrate.RunOptions(skip_bad_files=True))
    assert isinstance(info.value, RuntimeError)
    assert len(info.value.outcome.result.failed) == 7


@pytest.mark.parametrize(("threshold", "code"), [(None, 0), ("0.25", 2), ("0.75", 0)])
def test_max_failed_fraction(zmumu_path, sample, tmp_path, capsys, threshold, code):
    good = mc(sample)[0].files[0]
    datasets = datasets_file(tmp_path, [good, not_root(tmp_path, "bad.root")])  # half of the input is bad
    extra = ["--max-failed-fraction", threshold] if threshold else []
    assert cli_run(zmumu_path, datasets, tmp_path / "out", *extra) == code
    err = capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [f["file"] for f in report["failed_chunks"]] == [str(tmp_path / "bad.root")]
    assert report["events"]["total"] == uproot.open(good)["Events"].num_entries
    if code:
        assert "dataset 'dy' lost 50% of its input" in err and "--max-failed-fraction 0.25" in err


def test_max_failed_fraction_must_be_a_fraction(zmumu_path, sample, tmp_path, capsys):
    assert cli_run(zmumu_path, sample, tmp_path / "out", "--max-failed-fraction", "2") == 2
    assert "must be between 0 and 1, got 2.0" in capsys.readouterr().err


def test_a_failed_chunk_costs_its_share_of_the_file():
    failed = [
        {"dataset": "dy", "file": "a.root", "entry_start": 0, "entry_stop": 3000},  # a quarter of a.root
        {"dataset": "dy", "file": "c.root", "entry_start": None, "entry_stop": None},  # c.root: not opened
        {"dataset": "other", "file": "x.root", "entry_start": None, "entry_stop": None},
    ]
    entries = {"a.root": 12_000, "b.root": 12_000}
    assert lost_fraction(failed, "dy", 4, entries) == pytest.approx((0.25 + 1) / 4)
    assert lost_fraction(failed, "other", 1, entries) == 1.0

"""Where a run's time goes: seconds per stage kind in report.json, per worker too, and a resumed
run's rates over the events it processed itself."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

import highrate
from highrate.cli.main import main
from highrate.engine.stages.clock import StageClock
from highrate.testing import generate_file

# how chunks are computed: each run computes, none takes an earlier run's results from the cache
pytestmark = pytest.mark.usefixtures("computing")

SLEEP = 0.15  # per chunk: well above a read of 1000 events even on a loaded 2-core machine


def test_the_clock_counts_each_stage_once():
    clock = StageClock()
    with clock("skim"):
        time.sleep(0.02)
        with clock("read"):  # inside the skim: the skim is paused meanwhile
            time.sleep(0.03)
        time.sleep(0.01)
    assert clock.seconds["read"] == pytest.approx(0.03, abs=0.015)
    assert clock.seconds["skim"] == pytest.approx(0.03, abs=0.015)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("timings")
    path = generate_file(folder / "dy.root", events=4000, seed=8, basket_events=1000)
    (folder / "datasets.yaml").write_text(yaml.safe_dump(
        {"datasets": {"dy": {"files": [str(path)], "metadata": {"is_mc": True}}}}))
    (folder / "slow.py").write_text(f'''
import time
import awkward as ak
from highrate import Analysis, Axis, Cut, Histogram

def slow_count(ev):
    if ak.backend(ev.run) != "typetracer":  # the skim reads run
        time.sleep({SLEEP})  # the quantity stage of every chunk takes at least this long
    return ak.num(ev.Muon)

analysis = Analysis(
    skim=[Cut("any", lambda ev: ev.run > 0)],
    quantities={{"n_muons": slow_count}},
    histograms=[Histogram("n", Axis("n_muons", 5, 0, 5))],
)
''')
    return folder


@pytest.mark.parametrize("executor", ["sequential", "processes"])
def test_the_report_says_where_the_time_went(sample, tmp_path, executor):
    out = tmp_path / "out"
    code = main(["run", str(sample / "slow.py"), "--datasets", str(sample / "datasets.yaml"), "--output", str(out),
                 "--chunk-size", "1000", "--no-progress", "--executor", executor, "--workers", "2"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    stages = report["stages_s"]
    chunks = report["chunks"]["computed"]
    assert chunks == 4
    assert stages["quantities"] >= SLEEP * chunks
    assert max(stages, key=stages.get) == "quantities"
    assert {"read", "skim", "fill", "merge"} <= set(stages)
    # counted once each: the stages of the chunks fit in the time the workers had
    assert sum(v for k, v in stages.items() if k != "merge") <= report["wall_s"] * 2 + 0.05
    workers = report["workers"]
    assert sum(w["chunks"] for w in workers.values()) == chunks
    assert sum(w["stages_s"]["quantities"] for w in workers.values()) == pytest.approx(stages["quantities"])


def test_a_resumed_run_rates_only_what_it_processed(sample, tmp_path):
    args = ["run", str(sample / "slow.py"), "--datasets", str(sample / "datasets.yaml"), "--output",
            str(tmp_path / "out"), "--chunk-size", "1000", "--no-progress"]
    assert main(args) == 0
    checkpoints = sorted((tmp_path / "out" / "checkpoints").glob("*.pkl"))
    assert len(checkpoints) == 4
    checkpoints[0].unlink()  # one chunk of 1,000 events to compute again
    assert main([*args, "--resume"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["events"]["total"] == 4000
    assert report["events_this_run"]["total"] == 1000
    assert report["chunks"]["resumed"] == 3 and report["chunks"]["computed"] == 1
    assert report["events_per_s"] == pytest.approx(1000 / report["wall_s"])
    assert report["bytes_read_this_run"] < report["bytes_read"]
    assert report["stages_s"]["quantities"] == pytest.approx(SLEEP, abs=0.03)  # the one chunk computed


def test_progress_rates_leave_out_resumed_chunks(sample, tmp_path):
    analysis = highrate.load_analysis(sample / "slow.py")
    datasets = highrate.load_datasets(sample / "datasets.yaml")
    options = highrate.RunOptions(chunk_size=1000, checkpoint_dir=str(tmp_path / "ck"))
    highrate.run(analysis, datasets, options=options)
    seen: list[highrate.Progress] = []
    highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=1000, checkpoint_dir=str(tmp_path / "ck"),
                                                                 resume=True), progress=seen.append)
    last = [p for p in seen if p.stage == "chunks"][-1]
    assert last.done == last.total == 4 and last.events == 0

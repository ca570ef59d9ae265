"""Remembered traces: a second run reuses the first run's plan; anything that could change the
answer (the analysis or its helper modules, the files' branches, the metadata) asks again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import highrate
from highrate.engine import plancache, tracing

ZMUMU = Path(__file__).resolve().parents[1] / "examples" / "zmumu"


@pytest.fixture
def traces(monkeypatch, tmp_path):
    """Count the real traces; the cache lives in tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    calls = []
    real = tracing.trace

    def counting(*args, **kwargs):
        calls.append(args[0].name)
        return real(*args, **kwargs)

    monkeypatch.setattr("highrate.execution.planning.trace", counting)
    return calls


def _run(analysis_file: Path, sample: Path) -> highrate.RunOutcome:
    mc = [d for d in highrate.load_datasets(sample) if d.is_mc]
    return highrate.run(highrate.load_analysis(analysis_file), mc,
                        options=highrate.RunOptions(chunk_size=6000, limit_chunks=2))


def test_second_run_reuses_the_trace(traces, sample, tmp_path):
    first = _run(ZMUMU / "analysis.py", sample)
    second = _run(ZMUMU / "analysis.py", sample)
    assert len(traces) == 1
    (plan1,), (plan2,) = first.plans.values(), second.plans.values()
    assert plan2.branches == plan1.branches and plan2.deps == plan1.deps
    assert plan2.deps.variations == {"JES": {"Jet", "MET"}, "JER": {"Jet", "MET"}}
    assert plan2.deps.skim and plan2.deps.skim == plan1.deps.skim and plan2.late == plan1.late
    for key, h in first.result.histograms.items():
        assert (second.result.histograms[key].values() == h.values()).all(), key
    assert len(list((tmp_path / "cache" / "highrate" / "traces").glob("*.json"))) == 1


def test_an_edited_helper_module_is_traced_again(traces, sample, tmp_path):
    folder = tmp_path / "analysis"
    shutil.copytree(ZMUMU, folder)
    _run(folder / "analysis.py", sample)
    helper = folder / "analysis_nominal.py"  # analysis.py imports its selection from here
    helper.write_text(helper.read_text().replace('"pt": 30, "eta": 2.4', '"pt": 35, "eta": 2.4'))
    _run(folder / "analysis.py", sample)
    assert len(traces) == 2


def test_other_metadata_or_branches_are_traced_again(traces, sample):
    analysis = highrate.load_analysis(ZMUMU / "analysis_nominal.py")
    mc, data = sorted(highrate.load_datasets(sample), key=lambda d: not d.is_mc)
    highrate.run(analysis, [mc], options=highrate.RunOptions(limit_chunks=1))
    highrate.run(analysis, [data], options=highrate.RunOptions(limit_chunks=1))  # no genWeight: other branches
    highrate.run(analysis, [mc], options=highrate.RunOptions(limit_chunks=1))
    assert len(traces) == 2


def test_switched_off_and_damaged_entries(traces, sample, monkeypatch, tmp_path):
    _run(ZMUMU / "analysis_nominal.py", sample)
    (entry,) = (tmp_path / "cache" / "highrate" / "traces").glob("*.json")
    entry.write_text("{not json")
    _run(ZMUMU / "analysis_nominal.py", sample)  # a damaged entry is traced again and rewritten
    monkeypatch.setenv("HIGHRATE_CACHE", "off")
    _run(ZMUMU / "analysis_nominal.py", sample)
    assert len(traces) == 3
    assert plancache._load(entry) is not None


def test_analyses_built_in_python_are_remembered_by_their_definitions(traces, sample):
    """What tracing answers depends on the steps' definitions and the quantities histograms read,
    not on the binning: a re-binned histogram keeps the trace, a new cut is traced."""
    import dataclasses

    from highrate import Cut

    analysis = dataclasses.replace(highrate.load_analysis(ZMUMU / "analysis_nominal.py"), source=None)
    mc = [d for d in highrate.load_datasets(sample) if d.is_mc]
    options = highrate.RunOptions(limit_chunks=1)
    for _ in range(2):
        highrate.run(analysis, mc, options=options)
    mll = analysis.histograms[0]
    rebinned = dataclasses.replace(mll, axes=(dataclasses.replace(mll.axes[0], bins=7),))
    highrate.run(dataclasses.replace(analysis, histograms=(rebinned, *analysis.histograms[1:])), mc, options=options)
    assert len(traces) == 1
    edited = dataclasses.replace(analysis, skim=(*analysis.skim, Cut("met", lambda ev: ev.MET.pt > 0)))
    outcome = highrate.run(edited, mc, options=options)
    assert len(traces) == 2 and "MET_pt" in next(iter(outcome.plans.values())).branches


def test_an_analysis_derived_from_a_loaded_one_is_traced_again(traces, sample):
    """``dataclasses.replace`` keeps the file's text: the definition hash must still tell them
    apart, or the derived analysis would get the loaded one's branches (and checkpoints)."""
    import os
    import subprocess
    import sys
    from dataclasses import replace

    from highrate import Axis, Histogram

    loaded = highrate.load_analysis(ZMUMU / "analysis_nominal.py")
    derived = replace(loaded, histograms=(*loaded.histograms, Histogram("met", Axis("MET.pt", 10, 0, 100))))
    assert derived.hash() != loaded.hash() and replace(loaded).hash() == loaded.hash()
    mc = [d for d in highrate.load_datasets(sample) if d.is_mc]
    options = highrate.RunOptions(chunk_size=6000, limit_chunks=2)
    highrate.run(loaded, mc, options=options)
    outcome = highrate.run(derived, mc, options=options)
    assert len(traces) == 2 and "MET_pt" in next(iter(outcome.plans.values())).branches
    met = next(h for k, h in outcome.result.histograms.items() if k[0] == "met")
    # one fill per preselected event: the histogram holds their sum of weights
    assert met.sum(flow=True).value == pytest.approx(outcome.result.categories[mc[0].name]["baseline"][1], rel=1e-12)
    # the same in every process, whatever the string hash seed (checkpoints are found again)
    code = f"import highrate; print(highrate.load_analysis({str(ZMUMU / 'analysis.py')!r}).hash())"
    seeds = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": s},
                            capture_output=True, text=True, check=True).stdout.strip() for s in ("1", "2")}
    assert seeds == {highrate.load_analysis(ZMUMU / "analysis.py").hash()}
    code = f"import highrate; print(highrate.load_analysis({str(ZMUMU / 'analysis.py')!r}).reads_key())"
    seeds = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": s},
                            capture_output=True, text=True, check=True).stdout.strip() for s in ("1", "2")}
    assert seeds == {highrate.load_analysis(ZMUMU / "analysis.py").reads_key()}

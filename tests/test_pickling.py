"""An analysis whose functions are functools.cache'd, in the analysis file and in a helper module
beside it, runs on worker processes (spec/pickling.py) and gives the sequential run's result."""

from __future__ import annotations

import fnmatch
import functools
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

import highrate
from highrate.errors import ConfigError
from highrate.spec.pickling import dumps

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "zmumu" / "analysis_nominal.py"


def test_cached_functions_travel_as_what_they_wrap(sample: Path, tmp_path: Path) -> None:
    (tmp_path / "thresholds.py").write_text("import functools\n\n\n@functools.lru_cache(maxsize=8)\n"
                                            "def lead_pt():\n    return 25\n")
    text = EXAMPLE.read_text().replace("import awkward as ak\n", "import functools\n\nimport awkward as ak\n"
                                       "import thresholds\n\n\n@functools.cache\ndef iso():\n    return 0.15\n", 1)
    text = text.replace('{"iso": 0.15,', '{"iso": iso(),').replace("(lead_pt > params[\"lead_pt\"])",
                                                                 "(lead_pt > thresholds.lead_pt())")
    assert "iso()" in text and "thresholds.lead_pt()" in text
    (tmp_path / "analysis.py").write_text(text)
    analysis = highrate.load_analysis(tmp_path / "analysis.py")
    datasets = highrate.load_datasets(sample)
    options = {"chunk_size": 5000, "cache": False}
    parallel = highrate.run(analysis, datasets, options=highrate.RunOptions(executor="processes", workers=2, **options))
    reference = highrate.run(highrate.load_analysis(EXAMPLE), datasets, options=highrate.RunOptions(**options))
    assert parallel.result.histograms.keys() == reference.result.histograms.keys()
    for key, h in reference.result.histograms.items():
        assert np.array_equal(parallel.result.histograms[key].values(flow=True), h.values(flow=True)), key


def test_a_library_cached_function_still_travels_by_reference() -> None:
    assert isinstance(fnmatch._compile_pattern, type(functools.cache(len)))  # an importable cached function
    assert cloudpickle.loads(dumps(fnmatch._compile_pattern)) is fnmatch._compile_pattern
    assert cloudpickle.loads(dumps(functools.reduce)) is functools.reduce


def test_an_analysis_that_cannot_leave_the_process_is_a_clear_error(sample: Path, tmp_path: Path) -> None:
    """A lock (unpicklable) held by a cut: one error naming the analysis and what to do, before any
    worker runs a chunk."""
    text = EXAMPLE.read_text().replace("import awkward as ak\n", "import threading\n\nimport awkward as ak\n\n"
                                       "LOCK = threading.Lock()\n", 1)
    text = text.replace('Cut("PV_npvsGood", lambda ev: ev.PV.npvsGood > 0)',
                        'Cut("PV_npvsGood", lambda ev: LOCK is not None and ev.PV.npvsGood > 0)')
    assert "LOCK is not None" in text
    (tmp_path / "analysis.py").write_text(text)
    analysis = highrate.load_analysis(tmp_path / "analysis.py")
    with pytest.raises(ConfigError, match=r"cannot be sent to worker processes.*--executor sequential"):
        highrate.run(analysis, highrate.load_datasets(sample),
                     options=highrate.RunOptions(executor="processes", workers=2, cache=False))

"""``highrate run --watch`` as a real process: edits to the analysis and to its helper module re-run
it, the printed deltas equal an independent numpy computation, errors keep it watching, and
Ctrl-C (SIGINT to the whole process group, as a terminal sends it) ends it with exit code 0."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from reference_zmumu import HISTS, analyse, read

import highrate

TIMEOUT = 120


class Watcher:
    """``highrate run ... --watch`` in its own process group; its output, line by line."""

    def __init__(self, folder: Path, datasets: Path, *extra: str) -> None:
        command = [sys.executable, "-m", "highrate", "run", str(folder / "analysis.py"), "--datasets", str(datasets),
                   "--output", str(folder / "out"), "--workers", "2", "--chunk-size", "5000", "--watch", *extra]
        self.proc = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, pattern: str) -> list[str]:
        """The lines up to and including the next one matching ``pattern``."""
        got, deadline = [], time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            got.append(line)
            self.lines.append(line)
            if re.search(pattern, line):
                return got
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n" + "\n".join(self.lines))

    def finish(self) -> int:
        try:
            code = self.proc.wait(TIMEOUT)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.lines += [line for line in iter(self._queue.get, None)]
        return code


@pytest.fixture
def folder(tmp_path: Path, zmumu_path: Path) -> Path:
    """The Z→μμ analysis, its leading-muon threshold taken from a helper module beside it."""
    source = zmumu_path.read_text()
    assert '"lead_pt": 25' in source
    source = source.replace('"lead_pt": 25', '"lead_pt": LEAD_PT').replace(
        "import awkward as ak\n", "import awkward as ak\nfrom thresholds import LEAD_PT\n")
    (tmp_path / "analysis.py").write_text(source)
    (tmp_path / "thresholds.py").write_text("LEAD_PT = 25\n")
    return tmp_path


def expected_deltas(datasets: list[highrate.Dataset]) -> tuple[dict, dict]:
    """Independently (numpy over the files): each histogram's largest relative bin change and the
    preselection counts when the leading muon must pass 30 GeV instead of 25."""
    moved, counts = {}, {}
    for d in datasets:
        parts = [analyse(read(f, is_mc=d.is_mc), is_mc=d.is_mc)["events"] for f in d.files]
        ev = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        keep = ev["mu1_pt"] > 30
        counts[d.name] = (len(keep), int(keep.sum()))
        values = {"mll": (ev["mll"], True), "MuonGood_pt_1": (ev["mu1_pt"], True),
                  "MuonGood_eta_1": (ev["mu1_eta"], True), "nJetGood": (ev["njet"], True),
                  "JetGood_pt_1": (ev["jet_pt_1"], ev["has_jet"])}
        for name, (x, filled) in values.items():
            bins, lo, hi = HISTS[name]
            old = np.histogram(x[filled], bins, (lo, hi), weights=ev["w"][filled])[0]
            new_mask = filled & keep
            new = np.histogram(x[new_mask], bins, (lo, hi), weights=ev["w"][new_mask])[0]
            # genWeight has both signs: a bin can sum to 0 before the cut and not after (inf)
            grown = np.any((old == 0) & (new != 0))
            moved[(name, d.name)] = np.inf if grown else np.max(np.abs(new - old)[old != 0] / np.abs(old[old != 0]))
    return moved, counts


def test_edits_rerun_and_print_what_moved(folder, sample):
    datasets = highrate.load_datasets(sample)
    moved, counts = expected_deltas(datasets)
    w = Watcher(folder, sample, "--watch-runs", "3")
    try:
        assert any(line.startswith("run: ") and "48,000 events" in line for line in w.until("^watching "))
        analysis = folder / "analysis.py"
        good = analysis.read_text()
        analysis.write_text(good + "\nbroken = (\n")  # a syntax error: printed, and the watch goes on
        out = w.until("^watching ")
        assert any("syntax error" in line and "analysis.py" in line for line in out), out
        analysis.write_text(good)  # back as it was: nothing moved since the last good run
        out = w.until("^watching ")
        assert out[0].startswith("re-run 2 (analysis.py changed): ")
        assert "  no histogram or cutflow changed" in out
        (folder / "thresholds.py").write_text("LEAD_PT = 30\n")  # the helper module
        out = w.until("cutflow:")
        assert re.match(r"re-run 3 \(thresholds.py changed\): [\d.]+ s \(previous run [\d.]+ s\)$", out[0]), out
        assert w.finish() == 0
    finally:
        if w.proc.poll() is None:
            os.killpg(w.proc.pid, signal.SIGKILL)
    printed = {}
    for line in w.lines:
        m = re.fullmatch(r" {4}(\w+) (\S+) baseline: (?:([\d.]+)%|inf)", line)
        if m:
            printed[(m[1], m[2])] = float(m[3]) / 100 if m[3] else np.inf
    for key, value in moved.items():
        assert printed[key] == pytest.approx(value, abs=1e-6), key
    assert {name for name, _ in printed} == {*HISTS}  # MuonGood_phi_1 moved too
    for ds, (old, new) in counts.items():
        assert f"    {ds}: presel/dilepton: {old} → {new}" in w.lines
        assert f"    {ds}: presel: {old} → {new}" in w.lines
    assert not any("Traceback" in line for line in w.lines)


def test_ctrl_c_stops_cleanly(folder, sample):
    w = Watcher(folder, sample)
    try:
        w.until("^watching ")
        os.killpg(w.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: workers get it too
        assert w.finish() == 0
    finally:
        if w.proc.poll() is None:
            os.killpg(w.proc.pid, signal.SIGKILL)
    assert w.lines[-1] == "stopped watching."
    assert not any("Traceback" in line or "error" in line for line in w.lines), w.lines

"""examples/notebooks/zmumu.ipynb runs as written (nbclient, a kernel of this interpreter): the
re-run's unchanged histograms equal the first pass's, and the plot is an inline PNG."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "notebooks" / "zmumu.ipynb"
KERNEL = "highrate-tests"


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec for this interpreter (a fresh CI machine has ipykernel but none installed)."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "highrate tests", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own (inline): it would show stray figures
    return KERNEL


def text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def test_notebook_runs(kernel, tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(nb, kernel_name=kernel, timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    seconds = time.perf_counter() - start
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
    printed = "\n".join(text(c) for c in code)
    assert "unchanged histograms equal: True" in printed
    assert "mll bins: 120 -> 60" in printed and "mll sum of weights equal: True" in printed
    assert "re-run" in printed
    first = next(c for c in code if "first = session.run" in c.source)
    assert any("SessionResult(zmumu" in o.get("data", {}).get("text/plain", "") for o in first.outputs)
    plot = next(c for c in code if ".plot(" in c.source)
    pngs = [o for o in plot.outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 1 and len(pngs[0]["data"]["image/png"]) > 10_000  # one figure, a real one (base64)
    assert seconds < 60, f"the notebook took {seconds:.0f} s"

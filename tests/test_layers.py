"""The house rules of docs/architecture.md hold: imports go one way between layers, no module
imports the package root, modules stay small, and every import the docs and examples show works."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "highrate"
MAX_LINES = 400
REASON = "Longer than 400 lines:"  # what a longer module states at its top, with the reason


def test_import_contracts_hold():
    """import-linter's contracts in pyproject.toml (the layers, and no circles in any package)."""
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert linter is not None, "lint-imports is not installed: pip install -e '.[test]'"
    done = subprocess.run([linter, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_the_contracts_catch_an_upward_import(tmp_path):
    """The contract is not vacuous: the graph has the layers and would see an import upward."""
    graph = grimp.build_graph("highrate", cache_dir=None)
    assert graph.find_modules_directly_imported_by("highrate.engine.stages.pipeline") >= {
        "highrate.engine.stages.cuts", "highrate.spec.analysis"}
    assert not graph.chain_exists(importer="highrate.engine", imported="highrate.execution", as_packages=True)
    assert not graph.chain_exists(importer="highrate.data", imported="highrate.engine", as_packages=True)
    assert graph.chain_exists(importer="highrate.execution", imported="highrate.engine", as_packages=True)


def test_no_module_imports_the_package_root():
    """``highrate/__init__`` imports the layers; a module importing ``highrate`` would be a circle."""
    graph = grimp.build_graph("highrate", cache_dir=None)
    importers = sorted(m for m in graph.find_modules_that_directly_import("highrate") if m != "highrate")
    assert importers == []


def test_modules_stay_small():
    """No module under src/ passes 400 lines without saying why at its top."""
    long = []
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and not any(REASON in line for line in lines[:15]):
            long.append(f"{path.relative_to(ROOT)}: {len(lines)} lines")
    assert long == []


def _documented_imports() -> list[tuple[str, str, tuple[str, ...]]]:
    """(where, module, names) of every highrate import in the README, docs/ and examples/."""
    found = []
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "examples").rglob("*.py")),
             *sorted((ROOT / "examples").rglob("*.md"))]
    statement = re.compile(r"^\s*(?:>>> )?(?:from (highrate[\w.]*) import \(?([\w, ]+)\)?|import (highrate[\w.]*))", re.M)
    for path in files:
        for m in statement.finditer(path.read_text()):
            module = m[1] or m[3]
            names = tuple(n.strip().split(" as ")[0] for n in (m[2] or "").split(",") if n.strip())
            found.append((f"{path.relative_to(ROOT)}", module, names))
    return found


def test_the_docs_and_examples_show_imports():
    modules = {module for _, module, _ in _documented_imports()}
    assert {"highrate", "highrate.kinematics", "highrate.jagged", "highrate.corrections"} <= modules


@pytest.mark.parametrize("where, module, names", _documented_imports(),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_every_documented_import_works(where, module, names):
    imported = importlib.import_module(module)
    for name in names:
        assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}") is not None, \
            f"{where}: 'from {module} import {name}' fails"


def test_public_names_are_listed_in_all():
    """What the top-level package and its public modules export is what their ``__all__`` says."""
    import highrate

    for name in highrate.__all__:
        assert getattr(highrate, name) is not None
    public = [n for n in vars(highrate) if not n.startswith("_") and not isinstance(getattr(highrate, n), type(sys))]
    assert sorted(public) == sorted(n for n in highrate.__all__ if not n.startswith("_"))

"""Optional dependencies: without its extra, a feature says in one line what to install.

Each command runs in a fresh interpreter where the optional package cannot be imported
(``sys.modules[name] = None`` makes ``import name`` fail, as if it were not installed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import hist
import numpy as np
import pytest

from highrate.base.optional import require
from highrate.errors import MissingExtraError
from highrate.outputs.histograms import write_pickle
from highrate.testing import generate_dataset_set

ZMUMU = Path(__file__).resolve().parents[1] / "examples" / "zmumu" / "analysis_nominal.py"
RUN_WITHOUT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
sys.argv = ["highrate", *sys.argv[2:]]
from highrate.cli.main import console_main
console_main()
"""


def highrate_without(modules: list[str], *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("HIGHRATE_CLUSTERS", None)
    return subprocess.run([sys.executable, "-c", RUN_WITHOUT, ",".join(modules), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def assert_one_line(result: subprocess.CompletedProcess, package: str, extra: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"'{package}'" in lines[0] and f"pip install 'highrate[{extra}]'" in lines[0], lines[0]


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run's output folder: one signal, one background and data, histogram 'x' in category 'SR'."""
    out = tmp_path_factory.mktemp("out")
    edges = np.linspace(0, 100, 11)
    shapes = {"sig": np.full(10, 5.0), "bkg": np.linspace(50, 10, 10), "data": np.linspace(50, 10, 10) + 5}
    hists = {}
    for ds, values in shapes.items():
        h = hist.Hist(hist.axis.Variable(edges, name="x", label="x"), storage=hist.storage.Weight())
        h.view()["value"], h.view()["variance"] = values, values
        hists[("x", ds, "SR", "nominal")] = h
    write_pickle(out / "histograms.pkl", hists)
    meta = {"sig": {"is_mc": True, "sample": "Signal"}, "bkg": {"is_mc": True, "sample": "Background"},
            "data": {"is_mc": False, "sample": "Data"}}
    (out / "report.json").write_text(json.dumps({"datasets": {d: {"metadata": m} for d, m in meta.items()}}))
    return out


@pytest.mark.parametrize("missing", ["matplotlib", "mplhep"])
def test_plot_without_the_plot_extra(outdir, tmp_path, missing):
    result = highrate_without([missing], "plot", str(outdir), "--output", str(tmp_path / "plots"), tmp_path=tmp_path)
    assert_one_line(result, missing, "plot")
    assert not (tmp_path / "plots").exists()


@pytest.mark.parametrize("missing", ["pyhf", "iminuit", "matplotlib"])
def test_fit_without_the_fit_extra(outdir, tmp_path, missing):
    result = highrate_without([missing], "fit", str(outdir), "--histogram", "x", "--signal", "Signal",
                              "--output", str(tmp_path / "fit"), tmp_path=tmp_path)
    assert_one_line(result, missing, "fit")
    assert not (tmp_path / "fit").exists()  # said before the fit, not after it


def test_fit_works_where_it_can(outdir, tmp_path):
    """The same interpreter set-up with nothing missing fits: the failures above are the extras."""
    result = highrate_without(["not_a_module"], "fit", str(outdir), "--histogram", "x", "--signal", "Signal",
                              "--output", str(tmp_path / "fit"), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fit" / "postfit_SR.png").is_file()


def test_slurm_cluster_without_the_batch_extra(tmp_path):
    datasets = generate_dataset_set(tmp_path / "data", events=500, files=1, seed=1)
    result = highrate_without(["dask_jobqueue"], "run", str(ZMUMU), "--datasets", str(datasets), "--cluster", "slurm",
                              "--output", str(tmp_path / "out"), "--no-progress", tmp_path=tmp_path)
    assert_one_line(result, "dask-jobqueue", "batch")
    assert "slurm" in result.stderr


def test_kubernetes_profile_without_its_extra(tmp_path):
    result = highrate_without(["dask_kubernetes"], "cluster", "show", "kubernetes", tmp_path=tmp_path)
    assert_one_line(result, "dask-kubernetes", "kubernetes")


def test_remote_reading_without_the_remote_extra(monkeypatch):
    from highrate.data.io.sources import AccessOptions, open_args

    monkeypatch.setitem(sys.modules, "fsspec_xrootd", None)
    with pytest.raises(MissingExtraError, match=r"reading 'root://eos\.example//f\.root' needs .*'fsspec-xrootd'.*"
                                                r"pip install 'highrate\[remote\]'"):
        open_args("root://eos.example//f.root", AccessOptions())
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    with pytest.raises(MissingExtraError, match=r"'aiohttp'.*highrate\[remote\]"):
        open_args("https://host.example/f.root", AccessOptions())
    assert open_args("/data/f.root", AccessOptions())[0] == "/data/f.root"  # local files need nothing


def test_rucio_without_the_remote_extra(monkeypatch, tmp_path):
    from highrate.data.rucio import RucioSettings, _client

    monkeypatch.setitem(sys.modules, "rucio.client", None)
    with pytest.raises(MissingExtraError, match=r"datasets\.yaml: a Rucio dataset needs .*pip install 'highrate\[remote\]'"):
        _client(RucioSettings(), "datasets.yaml")


def test_require_names_the_missing_package():
    assert require("json", "plot") is json
    code = ("import sys\n"
            "sys.modules['matplotlib'] = None\n"
            "from highrate.base.optional import require\n"
            "from highrate.errors import HighrateError, MissingExtraError\n"
            "try:\n"
            "    require('mplhep', 'plot', purpose='plotting')\n"  # mplhep is there; matplotlib is not
            "except MissingExtraError as err:\n"
            "    assert isinstance(err, ImportError) and isinstance(err, HighrateError)\n"
            "    print(err.name)\n"
            "    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "matplotlib", "plotting needs the Python package 'matplotlib', which is not installed: pip install 'highrate[plot]'"]
    with pytest.raises(MissingExtraError, match=r"'rucio-clients'.*highrate\[remote\]"):
        require("rucio.not_a_module_of_rucio", "remote")


# --- the package itself ----------------------------------------------------------------------------


def test_version_option(capsys):
    from highrate import __version__
    from highrate.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"highrate {__version__}\n"


def test_package_metadata_declares_what_is_used():
    import tomllib

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause" and (root / "LICENSE").read_text().startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, the highrate developers" in (root / "LICENSE").read_text()
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip() for d in project["dependencies"]}
    assert "vector" in names and not names & {"numba", "psutil"}  # psutil only for the tests
    assert {"matplotlib", "mplhep"} <= {d.split(">")[0] for d in project["optional-dependencies"]["fit"]}

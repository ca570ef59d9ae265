"""``highrate serve``: commands forked from a warm server (cli/serving.py, cli/warm.py) print,
write and fail as fresh processes do; a changed environment makes the server step aside."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from highrate.cli.warm import socket_path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "zmumu" / "analysis_nominal.py"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real `highrate serve` with a cache folder of its own (and so its own socket)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "highrate", "serve", "--idle-timeout", "300"],
                            stdout=log, stderr=subprocess.STDOUT)
    path = socket_path()
    for _ in range(300):
        if path.exists():
            break
        time.sleep(0.1)
    assert path.exists(), (tmp_path / "serve.log").read_text()
    yield proc, tmp_path / "serve.log"
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def highrate(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "highrate", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def histograms(folder: Path) -> dict:
    with (folder / "histograms.pkl").open("rb") as f:
        return pickle.load(f)


def test_served_commands_equal_fresh_processes(server, sample: Path, tmp_path: Path) -> None:
    _, log = server
    args = ["run", str(EXAMPLE), "--datasets", str(sample), "--no-progress", "--workers", "2"]
    served = highrate(*args, "--output", "served", cwd=tmp_path)
    assert served.returncode == 0, served.stderr
    assert "served" in log.read_text() and "run " in log.read_text()  # the server ran it
    fresh = highrate(*args, "--output", "fresh", cwd=tmp_path, env={"HIGHRATE_SERVE": "off"})
    assert fresh.returncode == 0, fresh.stderr
    assert log.read_text().count("(pid ") == 1  # HIGHRATE_SERVE=off ran here
    a, b = histograms(tmp_path / "served"), histograms(tmp_path / "fresh")
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key].values(flow=True), b[key].values(flow=True)), key
    rows = [[line for line in out.stdout.splitlines() if "Preselected" in line] for out in (served, fresh)]
    assert rows[0] and rows[0][0].split()[:3] == rows[1][0].split()[:3]  # the same summary, on stdout

    broken = highrate("run", str(EXAMPLE), "--datasets", str(tmp_path / "missing.yaml"), "--output", "x",
                      cwd=tmp_path)
    assert broken.returncode == 2 and "missing.yaml" in broken.stderr  # its error, on its own stderr
    assert log.read_text().count("(pid ") == 2


def test_a_client_the_server_cannot_serve_runs_itself_and_the_server_steps_aside(server, sample, tmp_path) -> None:
    proc, log = server
    other = highrate("run", str(EXAMPLE), "--datasets", str(sample), "--no-progress", "--output", "out",
                     cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})  # imports could differ from the server's
    assert other.returncode == 0, other.stderr
    assert "(pid " not in log.read_text()
    assert proc.wait(timeout=30) == 0  # it exits: a new one would load what this client sees
    assert not socket_path().exists()


def test_stop(server, tmp_path) -> None:
    proc, _ = server
    done = highrate("serve", "--stop", cwd=tmp_path)
    assert done.returncode == 0 and "stopped the server" in done.stderr
    assert proc.wait(timeout=30) == 0
    assert "no server was running" in highrate("serve", "--stop", cwd=tmp_path).stderr

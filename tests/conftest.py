"""Shared fixtures: small synthetic NanoAOD samples, generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from highrate.testing import generate_dataset_set

# real XRootD, nginx and Rucio servers on 127.0.0.1
pytest_plugins = ["fixtures_storage", "fixtures_rucio"]

ROOT = Path(__file__).resolve().parents[1]
ZMUMU = ROOT / "examples" / "zmumu" / "analysis_nominal.py"


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory):
    """highrate's cache folder (remembered traces) inside the session's temporary folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module", autouse=True)
def module_chunk_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each module's own cache of columns and stage results, for its module-scoped fixtures: a
    reference result computed there never comes from another module's runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HIGHRATE_CACHE_DIR", str(tmp_path_factory.mktemp("module-chunk-cache")))
        yield


@pytest.fixture(autouse=True)
def private_chunk_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's own cache of columns and stage results: its first run computes (and fills the
    cache) as a user's first run does; a test that runs again sees what its own runs cached."""
    monkeypatch.setenv("HIGHRATE_CACHE_DIR", str(tmp_path_factory.mktemp("chunk-cache")))


@pytest.fixture
def computing(monkeypatch: pytest.MonkeyPatch) -> None:
    """No cache at all (as ``HIGHRATE_CACHE=off``): for tests of how chunks are computed (retries,
    replicas, executors compared), whose second run must compute again, not find the first's."""
    monkeypatch.setenv("HIGHRATE_CACHE", "off")


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """datasets.yaml of an MC and a data sample, 2 files x 12k events each, 1.5k-entry baskets."""
    out = tmp_path_factory.mktemp("nanoaod")
    return generate_dataset_set(out, events=24_000, files=2, seed=7, compression="zstd", basket_events=1500)


@pytest.fixture(scope="session")
def zmumu_path() -> Path:
    return ZMUMU

"""Cluster kind 'gateway' and `highrate run --gateway URL` against a real dask-gateway-server.

The test starts the server (local-process backend, simple authentication with a password) on
127.0.0.1; the gateway starts real scheduler and worker processes in this virtual environment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from compare import assert_same_result

import highrate
from highrate.cli.main import main
from highrate.errors import ConfigError, ExecutorError
from highrate.execution.executors import make_executor

dask_gateway = pytest.importorskip("dask_gateway")
pytest.importorskip("dask_gateway_server")

PASSWORD = "gw-test-password-41"
USER = "analyst"  # the gateway lists a user's own clusters
# dask-gateway's Gateway.__del__ closes an already closed client again, which raises and is ignored;
# each run computes (none takes an earlier run's results from the cache)
pytestmark = [pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
              pytest.mark.usefixtures("computing")]
ZMUMU = Path(__file__).resolve().parents[1] / "examples" / "zmumu" / "analysis_nominal.py"

CONFIG = """
import sys
from dask_gateway_server.options import Float, Integer, Options, String

c.DaskGateway.address = "127.0.0.1:{api_port}"
c.Proxy.address = "127.0.0.1:{proxy_port}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.LocalBackend.clusters_directory = {clusters!r}
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = {password!r}
c.ClusterConfig.scheduler_cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
c.ClusterConfig.worker_cmd = [sys.executable, "-m", "distributed.cli.dask_worker"]
c.ClusterConfig.idle_timeout = 120


def handler(options):
    return {{"worker_cores": options.worker_cores, "worker_memory": "%fG" % options.worker_memory,
            "environment": {{"GATEWAY_IMAGE": options.image}}}}


c.Backend.cluster_options = Options(
    Integer("worker_cores", 2, min=1, max=2), Float("worker_memory", 4, min=0.5, max=4),
    String("image", "default-image"), handler=handler)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory):
    """A running dask-gateway-server; yields its public address."""
    root = tmp_path_factory.mktemp("gateway")
    proxy_port = _free_port()
    config = root / "gateway_config.py"
    config.write_text(CONFIG.format(api_port=_free_port(), proxy_port=proxy_port, clusters=str(root / "clusters"),
                                    password=PASSWORD))
    with open(root / "server.log", "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "dask_gateway_server", "-f", str(config)], cwd=root,
                                  stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{proxy_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dask-gateway-server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def _running(url: str) -> list:
    with dask_gateway.Gateway(url, auth=dask_gateway.BasicAuth(USER, PASSWORD)) as gateway:
        return gateway.list_clusters()


@pytest.fixture
def profiles(tmp_path, monkeypatch, gateway_url):
    path = tmp_path / "clusters.yaml"
    path.write_text(f"""clusters:
  gw:
    kind: gateway
    address: {gateway_url}
    auth: basic
    username: analyst
    secret_env: GW_TEST_SECRET
    cores: 1
    memory: 1GiB
    image: highrate-worker:test
    jobs: 2
    start_timeout: 60
""")
    monkeypatch.setenv("HIGHRATE_CLUSTERS", str(path))
    monkeypatch.setenv("GW_TEST_SECRET", PASSWORD)
    return path


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from highrate.testing import generate_dataset_set

    return generate_dataset_set(tmp_path_factory.mktemp("gwdata"), events=20000, files=2, seed=1)


def test_gateway_profile_runs_like_sequential_and_shuts_down(profiles, sample, gateway_url):
    analysis = highrate.load_analysis(ZMUMU)
    datasets = highrate.load_datasets(sample)
    options = highrate.RunOptions(chunk_size=7000)
    expected = highrate.run(analysis, datasets, options=options).result
    executor = make_executor("cluster", cluster="gw")
    try:
        client = executor.client
        workers = client.scheduler_info(n_workers=-1)["workers"]
        assert len(workers) >= 1
        # the profile's options reached the gateway: image (as the handler passes it), cores, memory
        assert set(client.run(os.getenv, "GATEWAY_IMAGE").values()) == {"highrate-worker:test"}
        assert {w["nthreads"] for w in workers.values()} == {1}
        assert {w["memory_limit"] for w in workers.values()} == {2**30}
        assert len(_running(gateway_url)) == 1
        outcome = highrate.run(analysis, datasets, options=options, executor=executor)
        client.wait_for_workers(2, timeout=60)  # scaled to the profile's 2 workers
    finally:
        executor.close()
    assert_same_result(outcome.result, expected)
    assert outcome.result.failed == []
    assert _running(gateway_url) == []


def test_cli_gateway_runs_and_keeps_no_secret(tmp_path, sample, gateway_url):
    out = tmp_path / "out"
    env = {**os.environ, "DASK_GATEWAY__AUTH__TYPE": "basic", "DASK_GATEWAY__AUTH__KWARGS__USERNAME": USER,
           "DASK_GATEWAY__AUTH__KWARGS__PASSWORD": "{GW_CLI_SECRET}", "GW_CLI_SECRET": PASSWORD}
    env.pop("HIGHRATE_CLUSTERS", None)
    done = subprocess.run(
        [sys.executable, "-m", "highrate", "run", str(ZMUMU), "--datasets", str(sample), "--gateway", gateway_url,
         "--workers", "1", "--chunk-size", "7000", "--output", str(out), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["options"]["cluster"] == gateway_url
    assert report["failed_chunks"] == []
    for path in out.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert PASSWORD not in done.stdout + done.stderr
    assert _running(gateway_url) == []


def test_wrong_password_is_refused_clearly(profiles, monkeypatch, gateway_url):
    monkeypatch.setenv("GW_TEST_SECRET", "not-the-password")
    with pytest.raises(ExecutorError, match=r"refused the credentials \(HTTP 401\).*secret_env") as err:
        make_executor("cluster", cluster="gw")
    assert "not-the-password" not in str(err.value)
    assert _running(gateway_url) == []


def test_missing_secret_and_bad_settings_are_named(profiles, monkeypatch):
    monkeypatch.delenv("GW_TEST_SECRET")
    with pytest.raises(ConfigError, match=r"\$GW_TEST_SECRET, which is not set"):
        make_executor("cluster", cluster="gw")
    monkeypatch.setenv("GW_TEST_SECRET", PASSWORD)
    with profiles.open("a") as f:
        f.write("  bad-auth:\n    extends: gw\n    auth: ldap\n"
                "  too-big:\n    extends: gw\n    memory: 64GiB\n"
                "  unknown-option:\n    extends: gw\n    gateway_options: {conda_env: analysis}\n")
    with pytest.raises(ConfigError, match="'auth' must be one of basic, jupyterhub, kerberos"):
        make_executor("cluster", cluster="bad-auth")
    with pytest.raises(ConfigError, match=r"refuses worker_memory=64.*<= 4"):
        make_executor("cluster", cluster="too-big")
    with pytest.raises(ConfigError, match=r"no cluster option 'conda_env'.*worker_cores, worker_memory, image"):
        make_executor("cluster", cluster="unknown-option")


def test_show_describes_without_the_secret(profiles, capsys):
    assert main(["cluster", "show", "gw"]) == 0
    text = capsys.readouterr().out
    assert "secret from: $GW_TEST_SECRET" in text and "worker_memory: 1GiB" in text and "image: highrate-worker:test" in text
    assert PASSWORD not in text


def test_gateway_flag_checks_its_address(tmp_path, sample, capsys):
    assert main(["run", str(ZMUMU), "--datasets", str(sample), "--gateway", "http://h:1", "--cluster", "local",
                 "--output", str(tmp_path / "o")]) == 2
    assert "give one of --gateway, --cluster and --scheduler" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="no user or password in the address"):
        make_executor("cluster", cluster="https://me:pw@gateway.example.org")


def test_missing_dask_gateway_gives_the_pip_command(profiles, monkeypatch):
    from highrate.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "dask_gateway", None)
    with pytest.raises(MissingExtraError, match=r"kind 'gateway'.*'dask-gateway'.*highrate\[gateway\]"):
        make_executor("cluster", cluster="gw")

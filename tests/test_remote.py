"""Reading over root:// (XRootD) and https:// / davs:// (nginx WebDAV) from real servers on 127.0.0.1.

The servers are the Debian ``xrootd-server`` and ``nginx`` started by tests/fixtures_storage.py;
under CI=true they must start (``.ci/install-storage.sh`` installs them), elsewhere the tests
skip when they cannot.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from compare import assert_same_result

import highrate
from highrate.data.io.sources import AccessOptions
from highrate.data.replicas import FileLocations
from highrate.errors import CredentialError, DatasetError, InputFileError


def _local(sample: Path) -> list[highrate.Dataset]:
    return highrate.load_datasets(sample)


def _publish(datasets: list[highrate.Dataset], root: Path) -> dict[str, Path]:
    """Copy every file under ``root`` (once per folder); local path -> copy."""
    copies = {}
    for d in datasets:
        for f in d.files:
            target = root / d.name / Path(f).name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copy(f, target)
            copies[f] = target
    return copies


def _remote(datasets, url_of, ca_file=None, **access):
    return [replace(d, files=tuple(url_of(f) for f in d.files), access=AccessOptions(ca_file=ca_file, **access))
            for d in datasets]


@pytest.fixture(scope="module")
def local_result(sample, zmumu_path):
    return highrate.run(highrate.load_analysis(zmumu_path), _local(sample),
                        options=highrate.RunOptions(chunk_size=5000)).result


@pytest.mark.parametrize("scheme", ["root", "https", "davs"])
def test_remote_reads_equal_local_files(scheme, sample, zmumu_path, local_result, xrootd_server, https_server):
    datasets = _local(sample)
    if scheme == "root":
        copies = _publish(datasets, xrootd_server.export_dir)
        remote = _remote(datasets, lambda f: xrootd_server.url(copies[f]))
    else:
        copies = _publish(datasets, https_server.root_dir)
        url = https_server.url if scheme == "https" else https_server.davs_url
        remote = _remote(datasets, lambda f: url(copies[f]), ca_file=str(https_server.ca_file))
    run = highrate.run(highrate.load_analysis(zmumu_path), remote, options=highrate.RunOptions(chunk_size=5000))
    assert_same_result(run.result, local_result)
    (endpoint,) = run.result.sources
    port = xrootd_server.port if scheme == "root" else https_server.port
    assert endpoint == f"{scheme}://127.0.0.1:{port}"
    stats = run.result.sources[endpoint]
    chunks = sum(c["chunks"] for c in local_result.counts.values())
    needed = sum(c["bytes_read"] for c in local_result.counts.values())
    assert stats["chunks"] == chunks
    # one batch of coalesced requests per chunk; bytes over the wire include small gaps only
    assert chunks <= stats["requests"] <= 2 * chunks
    assert needed <= stats["bytes"] < 1.5 * needed
    total_size = sum(Path(f).stat().st_size for d in datasets for f in d.files)
    assert stats["bytes"] < 0.7 * total_size  # only the needed branches' baskets travel


def test_failover_when_a_server_dies_mid_run(sample, zmumu_path, local_result, xrootd_factory, https_server, tmp_path):
    """Replicas on XRootD first, HTTPS second; the XRootD server is killed after 3 chunks."""
    datasets = _local(sample)
    primary = xrootd_factory(tmp_path / "site-a")
    on_a = _publish(datasets, primary.export_dir)
    on_b = _publish(datasets, https_server.root_dir)
    moved = []
    for d in datasets:
        locations = {f: FileLocations(f, (primary.url(on_a[f]), https_server.url(on_b[f]))) for f in d.files}
        moved.append(replace(d, locations=locations, access=AccessOptions(ca_file=str(https_server.ca_file))))
    killed = []

    def progress(p):
        if p.stage == "chunks" and p.done >= 3 and not killed:
            primary.stop()
            killed.append(p.done)

    run = highrate.run(highrate.load_analysis(zmumu_path), moved, options=highrate.RunOptions(chunk_size=5000),
                       progress=progress)
    assert killed
    assert_same_result(run.result, local_result)
    served = {}
    for f in run.result.files.values():
        for replica, n in f["served_by"].items():
            served[replica.split("://")[0]] = served.get(replica.split("://")[0], 0) + n
    total = sum(c["chunks"] for c in local_result.counts.values())
    assert served["root"] == 3 and served["https"] == total - 3
    failures = [x for f in run.result.files.values() for x in f["replica_failures"]]
    assert failures and all(x["replica"].startswith(f"root://127.0.0.1:{primary.port}/") for x in failures)
    assert all("cannot connect" in x["error"] or "connect" in x["error"].lower() for x in failures), failures


def test_failover_from_a_hung_server_is_bounded_by_the_timeout(sample, zmumu_path, local_result, xrootd_factory,
                                                               https_server, tmp_path):
    """A paused (SIGSTOP) server accepts connections but never answers: the timeout moves on."""
    datasets = _local(sample)[:1]
    primary = xrootd_factory(tmp_path / "site-a")
    on_a, on_b = _publish(datasets, primary.export_dir), _publish(datasets, https_server.root_dir)
    moved = [replace(d, locations={f: FileLocations(f, (primary.url(on_a[f]), https_server.url(on_b[f])))
                                   for f in d.files},
                     access=AccessOptions(ca_file=str(https_server.ca_file), timeout=2)) for d in datasets]
    primary.pause()
    t0 = time.perf_counter()
    run = highrate.run(highrate.load_analysis(zmumu_path), moved, options=highrate.RunOptions(chunk_size=5000))
    elapsed = time.perf_counter() - t0
    primary.resume()
    expected = highrate.run(highrate.load_analysis(zmumu_path), datasets,
                            options=highrate.RunOptions(chunk_size=5000)).result
    assert_same_result(run.result, expected)
    assert elapsed < 30
    for f in run.result.files.values():
        assert all(r.startswith("https://") for r in f["served_by"])


def test_bearer_token_reaches_dask_workers_started_before_it(sample, zmumu_path, local_result, https_factory,
                                                             tmp_path, monkeypatch):
    """Workers that were started without the token still read a token-protected server."""
    from distributed import Client, LocalCluster

    datasets = _local(sample)
    web = https_factory(tmp_path / "protected", token="analysis-token-123")
    copies = _publish(datasets, web.root_dir)
    remote = _remote(datasets, lambda f: web.url(copies[f]), ca_file=str(web.ca_file))
    monkeypatch.delenv("BEARER_TOKEN", raising=False)
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(tmp_path / "absent"))
    monkeypatch.delenv("BEARER_TOKEN_FILE")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        token_file = tmp_path / "token"
        token_file.write_text("analysis-token-123\n")
        monkeypatch.setenv("BEARER_TOKEN_FILE", str(token_file))  # after the workers started
        from highrate.execution.executors import make_executor

        ex = make_executor("dask", scheduler=cluster.scheduler_address)
        try:
            run = highrate.run(highrate.load_analysis(zmumu_path), remote,
                               options=highrate.RunOptions(chunk_size=5000), executor=ex)
        finally:
            ex.close()
        leaked = client.run(lambda: __import__("os").environ.get("BEARER_TOKEN"))
        assert all(v is None for v in leaked.values())  # shipped as a private file, not the env
    assert_same_result(run.result, local_result)
    assert "analysis-token-123" not in repr(run.result.files) + repr(run.result.sources)


def test_refused_token_gives_a_credential_error(sample, zmumu_path, https_factory, tmp_path, monkeypatch):
    datasets = _local(sample)[:1]
    web = https_factory(tmp_path / "protected", token="right-token")
    copies = _publish(datasets, web.root_dir)
    remote = _remote(datasets, lambda f: web.url(copies[f]), ca_file=str(web.ca_file))
    monkeypatch.setenv("BEARER_TOKEN", "wrong-token")
    with pytest.raises(CredentialError) as info:
        highrate.run(highrate.load_analysis(zmumu_path), remote)
    text = str(info.value)
    assert "refused access" in text and "401" in text and "BEARER_TOKEN_FILE" in text
    assert "wrong-token" not in text


def test_remote_errors_are_clear(sample, zmumu_path, xrootd_server, tmp_path):
    analysis = highrate.load_analysis(zmumu_path)
    (mc, _) = _local(sample)
    missing = xrootd_server.url("no/such/file.root")
    with pytest.raises(InputFileError) as info:
        highrate.run(analysis, [replace(mc, files=(missing,))])
    assert repr(missing) in str(info.value) and "does not exist" in str(info.value)
    from servers.storage import free_port

    dead = f"root://127.0.0.1:{free_port()}//data/file.root"
    t0 = time.perf_counter()
    with pytest.raises(InputFileError) as info:
        highrate.run(analysis, [replace(mc, files=(dead,), access=AccessOptions(timeout=3))])
    assert time.perf_counter() - t0 < 20
    assert repr(dead) in str(info.value)
    path = tmp_path / "d.yaml"
    path.write_text("datasets:\n  x:\n    files: [s3x://bucket/file.root]\n    metadata: {is_mc: true}\n")
    with pytest.raises(DatasetError, match=r"unknown URL scheme 's3x://'; highrate reads .*https://.*root://"):
        highrate.load_datasets(path)


def test_x509_proxy_is_presented_to_https_servers_that_require_it(sample, zmumu_path, local_result, https_factory,
                                                                  tmp_path, monkeypatch):
    """nginx answers 403 unless the client shows a certificate of its CA: the user's proxy file."""
    datasets = _local(sample)
    web = https_factory(tmp_path / "x509-site", client_certs=True)
    copies = _publish(datasets, web.root_dir)
    remote = _remote(datasets, lambda f: web.url(copies[f]), ca_file=str(web.ca_file))
    monkeypatch.delenv("BEARER_TOKEN", raising=False)
    monkeypatch.delenv("BEARER_TOKEN_FILE", raising=False)
    monkeypatch.setattr("os.getuid", lambda: 987654)  # no /tmp/x509up_u<uid> or /tmp/bt_u<uid> defaults
    monkeypatch.delenv("X509_USER_PROXY", raising=False)
    with pytest.raises(CredentialError) as info:
        highrate.run(highrate.load_analysis(zmumu_path), remote)
    assert "403" in str(info.value) and "voms-proxy-init" in str(info.value)
    monkeypatch.setenv("X509_USER_PROXY", str(web.user_proxy))
    run = highrate.run(highrate.load_analysis(zmumu_path), remote, options=highrate.RunOptions(chunk_size=5000))
    assert_same_result(run.result, local_result)

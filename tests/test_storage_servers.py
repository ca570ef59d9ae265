"""The storage servers of servers.storage are real and uproot reads through them.

Each test writes a small NanoAOD-like TTree with uproot and reads it back over ``root://`` or
``https://``. Timings measured on a 2-core machine: each server starts in about 10-20 ms; a
stopped XRootD server fails an open in about 2 ms (with the fixtures' ``XRD_*`` settings, see
servers.storage), a paused one after fsspec-xrootd's ``timeout`` plus up to
``XRD_TIMEOUTRESOLUTION``; a stopped nginx in about 2 ms.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests
import uproot
from servers.storage import (
    XROOTD_CLIENT_ENV,
    NginxServer,
    ServerUnavailable,
    XRootDServer,
    free_port,
)

ENTRIES = 3000
BASKET = 1000


def write_events(path: Path) -> dict[str, np.ndarray]:
    """Write an ``Events`` TTree of a few branches in 3 baskets; return the arrays written."""
    rng = np.random.default_rng(11)
    data = {
        "run": np.full(ENTRIES, 1, dtype=np.int32),
        "event": np.arange(ENTRIES, dtype=np.int64),
        "MET_pt": rng.exponential(30.0, ENTRIES).astype(np.float32),
        "Muon_eta0": rng.normal(0.0, 1.5, ENTRIES),
    }
    with uproot.recreate(path) as out:
        tree = out.mktree("Events", {name: array.dtype for name, array in data.items()})
        for start in range(0, ENTRIES, BASKET):
            tree.extend({name: array[start : start + BASKET] for name, array in data.items()})
    return data


def assert_same_events(source: uproot.ReadOnlyDirectory, data: dict[str, np.ndarray]) -> None:
    tree = source["Events"]
    assert tree.num_entries == ENTRIES
    arrays = tree.arrays(list(data), library="np")
    for name, expected in data.items():
        np.testing.assert_array_equal(arrays[name], expected, err_msg=name)


def trust(server: NginxServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=server.ca_file)


def live_processes_in_group(pgid: int) -> list[psutil.Process]:
    """Processes of a process group that are still running (zombies wait for init to reap)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def timed(action: Callable[[], object]) -> tuple[BaseException | None, float]:
    """Run ``action``; return the exception it raised (or None) and how long it took."""
    began = time.monotonic()
    try:
        action()
    except Exception as error:
        return error, time.monotonic() - began
    return None, time.monotonic() - began


# -- XRootD -----------------------------------------------------------------------------------


def test_xrootd_serves_a_tree_to_uproot(xrootd_server: XRootDServer) -> None:
    path = xrootd_server.export_dir / "xrootd_events.root"
    data = write_events(path)
    url = xrootd_server.url("xrootd_events.root")
    assert url == f"root://127.0.0.1:{xrootd_server.port}/{path}"
    with uproot.open(url) as source:
        assert_same_events(source, data)


def test_xrootd_reports_adler32_checksums(xrootd_server: XRootDServer) -> None:
    from XRootD.client import FileSystem
    from XRootD.client.flags import QueryCode

    path = xrootd_server.export_dir / "checksummed.root"
    write_events(path)
    status, answer = FileSystem(f"root://127.0.0.1:{xrootd_server.port}").query(
        QueryCode.CHECKSUM, str(path)
    )
    assert status.ok, status.message
    algorithm, value = answer.decode().strip("\x00 \n").split()
    assert algorithm == "adler32"
    assert int(value, 16) == zlib.adler32(path.read_bytes())


def test_xrootd_stopped_server_fails_fast_and_restart_recovers(
    xrootd_factory: Callable[..., XRootDServer],
) -> None:
    from XRootD import client

    # a dead server is a refused connection; these bound the retries (see the module docstring)
    for name in ("ConnectionRetry", "StreamErrorWindow"):
        wanted = int(XROOTD_CLIENT_ENV[f"XRD_{name.upper()}"])
        if client.EnvGetInt(name) != wanted:  # the client was imported before the fixtures
            client.EnvPutInt(name, wanted)  # applies to servers not contacted yet, like this one
    server = xrootd_factory()
    data = write_events(server.export_dir / "failover.root")
    url = server.url("failover.root")
    opened = uproot.open(url)
    assert opened["Events"].num_entries == ENTRIES

    server.stop()
    assert not server.running
    error, seconds = timed(lambda: uproot.open(url, skip_instance_cache=True))
    assert isinstance(error, OSError), error
    print(f"open on a stopped XRootD server failed in {seconds * 1e3:.1f} ms: {error}")
    assert seconds < 2.0
    error, seconds = timed(lambda: opened["Events"]["MET_pt"].array(library="np"))
    assert isinstance(error, OSError), error  # a file opened before the stop fails too
    assert seconds < 2.0

    server.restart()  # same port: the URL is valid again, once fsspec's cached handle is skipped
    with uproot.open(url, skip_instance_cache=True) as source:
        assert_same_events(source, data)


def test_xrootd_paused_server_times_out(xrootd_factory: Callable[..., XRootDServer]) -> None:
    from XRootD import client

    server = xrootd_factory()
    write_events(server.export_dir / "stuck.root")
    url = server.url("stuck.root")
    server.pause()
    try:
        error, seconds = timed(lambda: uproot.open(url, timeout=1, skip_instance_cache=True))
    finally:
        server.resume()
    assert isinstance(error, OSError), error
    print(f"open on a paused XRootD server failed in {seconds:.2f} s: {error}")
    assert seconds < 1 + client.EnvGetInt("TimeoutResolution") + 2
    with uproot.open(url, skip_instance_cache=True) as source:
        assert source["Events"].num_entries == ENTRIES


# -- HTTPS / WebDAV (nginx) -------------------------------------------------------------------


def test_https_serves_a_tree_to_uproot(https_server: NginxServer) -> None:
    data = write_events(https_server.root_dir / "https_events.root")
    url = https_server.url("https_events.root")
    assert url == f"https://127.0.0.1:{https_server.port}/https_events.root"
    assert https_server.davs_url("https_events.root") == "davs" + url.removeprefix("https")
    with uproot.open(url, ssl=trust(https_server)) as source:
        assert_same_events(source, data)


def test_https_serves_byte_ranges(
    https_server: NginxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = https_server.root_dir / "ranges.bin"
    path.write_bytes(bytes(range(256)))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(https_server.ca_file))  # requests reads it
    reply = requests.get(https_server.url("ranges.bin"), headers={"Range": "bytes=10-19"})
    assert reply.status_code == 206
    assert reply.content == bytes(range(10, 20))


def test_https_trusts_ssl_cert_file_set_before_aiohttp_is_imported(
    https_server: NginxServer,
) -> None:
    # aiohttp reads SSL_CERT_FILE when it is imported, hence a fresh interpreter
    write_events(https_server.root_dir / "env_trust.root")
    script = "import sys, uproot; print(uproot.open(sys.argv[1])['Events'].num_entries)"
    done = subprocess.run(
        [sys.executable, "-c", script, https_server.url("env_trust.root")],
        env={**os.environ, "SSL_CERT_FILE": str(https_server.ca_file)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(ENTRIES)]


def test_https_token_is_required(https_factory: Callable[..., NginxServer]) -> None:
    import aiohttp

    server = https_factory(token="t0k3n.for-tests")
    data = write_events(server.root_dir / "protected.root")
    url = server.url("protected.root")

    denied = requests.get(url, verify=server.ca_file)
    assert denied.status_code == 401
    assert denied.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = requests.get(url, verify=server.ca_file, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    allowed = requests.get(url, verify=server.ca_file, headers=server.headers)
    assert allowed.status_code == 200
    assert allowed.content == (server.root_dir / "protected.root").read_bytes()

    with pytest.raises(aiohttp.ClientResponseError) as refused:
        uproot.open(url, ssl=trust(server))
    assert refused.value.status == 401
    with uproot.open(url, ssl=trust(server), headers=server.headers) as source:
        assert_same_events(source, data)
    session_headers = {"headers": server.headers}
    with uproot.open(url, ssl=trust(server), client_kwargs=session_headers) as source:
        assert_same_events(source, data)


def test_webdav_propfind_lists_a_directory(https_server: NginxServer) -> None:
    folder = https_server.root_dir / "listing"
    folder.mkdir()
    for name in ("a.root", "b.root"):
        (folder / name).write_bytes(b"x" * 10)
    reply = requests.request(
        "PROPFIND",
        https_server.url("listing/"),
        headers={"Depth": "1"},
        verify=https_server.ca_file,
    )
    assert reply.status_code == 207
    assert "/listing/a.root</D:href>" in reply.text
    assert "/listing/b.root</D:href>" in reply.text
    assert "<D:getcontentlength>10</D:getcontentlength>" in reply.text
    options = requests.options(https_server.url(""), verify=https_server.ca_file)
    assert "PROPFIND" in options.headers.get("Allow", "")


def test_https_stopped_server_fails_fast(https_factory: Callable[..., NginxServer]) -> None:
    server = https_factory()
    write_events(server.root_dir / "gone.root")
    url = server.url("gone.root")
    with uproot.open(url, ssl=trust(server)) as source:
        assert source["Events"].num_entries == ENTRIES
    server.stop()
    error, seconds = timed(lambda: uproot.open(url, ssl=trust(server), skip_instance_cache=True))
    assert isinstance(error, OSError), error  # aiohttp.ClientConnectorError
    print(f"open on a stopped nginx failed in {seconds * 1e3:.1f} ms: {error}")
    assert seconds < 2.0


# -- the module itself ------------------------------------------------------------------------


def test_servers_start_quickly_and_leave_nothing_running(
    xrootd_factory: Callable[..., XRootDServer], https_factory: Callable[..., NginxServer]
) -> None:
    for server in (xrootd_factory(), https_factory()):
        assert server.running and server.startup_seconds is not None
        print(f"{type(server).__name__} started in {server.startup_seconds * 1e3:.0f} ms")
        assert server.startup_seconds < 5
        group = server._process.pid if server._process else -1
        assert len(live_processes_in_group(group)) >= 2  # the server and its watchdog
        server.stop()
        assert not server.running
        assert not live_processes_in_group(group)


def test_missing_binary_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("servers.storage._SBIN", ())
    with pytest.raises(ServerUnavailable, match="xrootd is not installed"):
        XRootDServer(tmp_path / "data", tmp_path / "work").start()
    with pytest.raises(ServerUnavailable, match="nginx is not installed"):
        NginxServer(tmp_path / "data", tmp_path / "work").start()


def test_failed_start_is_reported_with_the_log(tmp_path: Path) -> None:
    class Broken(XRootDServer):
        def _command(self) -> list[str]:
            return ["/bin/sh", "-c", "echo cannot bind the socket >&2; exit 3"]

    with pytest.raises(ServerUnavailable, match=r"(?s)exited with status 3.*cannot bind"):
        Broken(tmp_path / "data", tmp_path / "work").start()


def test_busy_port_is_reported(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServerUnavailable, match="already in use"):
            NginxServer(tmp_path / "data", tmp_path / "work", port=port).start()
    with socket.socket() as probe:  # free_port gives a port that can be bound
        probe.bind(("127.0.0.1", free_port()))


def test_token_alphabet_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="token"):
        NginxServer(tmp_path, tmp_path, token='x"; return 200; #')

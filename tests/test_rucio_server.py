"""The test Rucio server is real: datasets registered in it come back through rucio-clients.

Nothing serves the PFNs: ``list_replicas`` only builds them from the RSE protocols, so the storage
endpoints (127.0.0.1:1094, 127.0.0.1:8443) need not run here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures_rucio import start_rucio_server
from servers.rucio import FileSpec, RucioServer, adler32_of, protocol

SCOPE, DATASET = "user.test", "zmumu_2files"
ROOT_PFN = "root://127.0.0.1:1094//data/zmumu/{}"
DAVS_PFN = "davs://127.0.0.1:8443/data/zmumu/{}"
HTTPS_PFN = "https://127.0.0.1:8443/data/zmumu/{}"


def _files(tmp: Path) -> list[FileSpec]:
    specs = []
    for i, size in enumerate((1000, 2500), start=1):
        local = tmp / f"zmumu_{i}.root"
        local.write_bytes(bytes((i * 7 + k) % 251 for k in range(size)))
        lfn = local.name
        specs.append(
            FileSpec(
                name=lfn,
                bytes=size,
                adler32=adler32_of(local),
                # the web RSE gets a davs PFN for one file and an https PFN for the other: both
                # are listed for both, since the RSE has both protocols
                pfns={
                    "XRD_LOCAL": ROOT_PFN.format(lfn),
                    "WEB_LOCAL": (DAVS_PFN if i == 1 else HTTPS_PFN).format(lfn),
                },
            )
        )
    return specs


@pytest.fixture(scope="module")
def zmumu(rucio_server: RucioServer, tmp_path_factory: pytest.TempPathFactory) -> list[FileSpec]:
    rucio_server.add_rse("XRD_LOCAL", [protocol("root", 1094, "/data")])
    rucio_server.add_rse(
        "WEB_LOCAL", [protocol("davs", 8443, "/data"), protocol("https", 8443, "/data")]
    )
    files = _files(tmp_path_factory.mktemp("zmumu-files"))
    rucio_server.register_dataset(SCOPE, DATASET, files)
    return files


def test_adler32_of(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"Wikipedia")
    assert adler32_of(tmp_path / "a") == "11e60398"
    (tmp_path / "empty").write_bytes(b"")
    assert adler32_of(tmp_path / "empty") == "00000001"
    (tmp_path / "big").write_bytes(bytes(range(256)) * 5000)
    assert adler32_of(tmp_path / "big", block_size=4096) == adler32_of(tmp_path / "big")


def test_list_files(rucio_server: RucioServer, zmumu: list[FileSpec]) -> None:
    client = rucio_server.client()
    assert client.whoami()["account"] == "root"
    did = client.get_did(SCOPE, DATASET)
    assert did["type"] == "DATASET"
    listed = {f["name"]: f for f in client.list_files(SCOPE, DATASET)}
    assert set(listed) == {f.name for f in zmumu}
    for spec in zmumu:
        assert listed[spec.name]["scope"] == SCOPE
        assert listed[spec.name]["bytes"] == spec.bytes
        assert listed[spec.name]["adler32"] == spec.adler32


def test_list_replicas(rucio_server: RucioServer, zmumu: list[FileSpec]) -> None:
    client = rucio_server.client()
    replicas = list(
        client.list_replicas([{"scope": SCOPE, "name": DATASET}], schemes=["root", "davs", "https"])
    )
    by_name = {r["name"]: r for r in replicas}
    assert set(by_name) == {f.name for f in zmumu}
    for spec in zmumu:
        r = by_name[spec.name]
        root, davs, https = (p.format(spec.name) for p in (ROOT_PFN, DAVS_PFN, HTTPS_PFN))
        assert (r["scope"], r["bytes"], r["adler32"]) == (SCOPE, spec.bytes, spec.adler32)
        assert set(r["pfns"]) == {root, davs, https}
        assert r["rses"] == {"XRD_LOCAL": [root], "WEB_LOCAL": [davs, https]}
        assert {pfn: meta["rse"] for pfn, meta in r["pfns"].items()} == {
            root: "XRD_LOCAL",
            davs: "WEB_LOCAL",
            https: "WEB_LOCAL",
        }
        assert r["states"] == {"XRD_LOCAL": "AVAILABLE", "WEB_LOCAL": "AVAILABLE"}

    # a scheme filter keeps only that protocol's PFNs
    only_root = list(client.list_replicas([{"scope": SCOPE, "name": DATASET}], schemes=["root"]))
    assert sorted(p for r in only_root for p in r["pfns"]) == sorted(
        ROOT_PFN.format(f.name) for f in zmumu
    )


def test_unknown_did(rucio_server: RucioServer, zmumu: list[FileSpec]) -> None:
    from rucio.common.exception import DataIdentifierNotFound

    client = rucio_server.client()
    with pytest.raises(DataIdentifierNotFound):
        client.get_did(SCOPE, "no_such_dataset")
    with pytest.raises(DataIdentifierNotFound):
        list(client.list_files(SCOPE, "no_such_dataset"))
    # list_replicas does NOT raise for an unknown DID (or scope): it lists nothing, so a resolver
    # must ask get_did (or list_files) to tell "no such dataset" from "no replicas"
    assert list(client.list_replicas([{"scope": SCOPE, "name": "no_such_dataset"}])) == []
    assert list(client.list_replicas([{"scope": "no.such.scope", "name": "x"}])) == []


def test_client_config_via_rucio_config(rucio_server: RucioServer, zmumu: list[FileSpec]) -> None:
    """A plain ``Client()`` in another process finds the server through RUCIO_CONFIG alone."""
    config = rucio_server.client_config.read_text()
    assert "[database]" not in config and f"rucio_host = {rucio_server.url}" in config
    script = (
        "import json, sys\n"
        "from rucio.client import Client\n"
        "c = Client()\n"
        f"r = c.list_replicas([{{'scope': {SCOPE!r}, 'name': {DATASET!r}}}], schemes=['root'])\n"
        "json.dump({'account': c.whoami()['account'], 'host': c.host,\n"
        "           'pfns': sorted(p for x in r for p in x['pfns'])}, sys.stdout)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUCIO_")}
    env.update(rucio_server.environ)
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got == {
        "account": "root",
        "host": rucio_server.url,
        "pfns": sorted(ROOT_PFN.format(f.name) for f in zmumu),
    }


def test_stop_makes_it_unreachable_and_start_restores(tmp_path: Path) -> None:
    """A private server (the session one stays up): stop refuses connections at once."""
    import requests
    from rucio.common.exception import ServerConnectionException

    server = start_rucio_server(tmp_path / "rucio")
    try:
        assert server.startup_seconds is not None and server.startup_seconds < 30
        server.add_rse("STOP_TEST", [protocol("root", 1094, "/data")])
        pfn = "root://127.0.0.1:1094//data/stop/f.root"
        server.register_dataset(
            "user.stop", "ds", [FileSpec("f.root", 10, "0a0b0c0d", {"STOP_TEST": pfn})]
        )
        client = server.client(timeout=5)
        assert client.get_did("user.stop", "ds")["type"] == "DATASET"
        url = server.url

        server.stop()
        assert not server.running
        t0 = time.monotonic()
        # rucio-clients re-raises requests' ConnectionError after `request_retries` (0 in the
        # client config) or, with its default of 3, gives up with ServerConnectionException
        with pytest.raises((requests.exceptions.ConnectionError, ServerConnectionException)):
            list(client.list_replicas([{"scope": "user.stop", "name": "ds"}]))
        assert time.monotonic() - t0 < 5
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{url}/ping", timeout=5)

        # the catalogue outlives the process: a restart (on a new port) serves it again
        server.start()
        replicas = list(server.client().list_replicas([{"scope": "user.stop", "name": "ds"}]))
        assert [list(r["pfns"]) for r in replicas] == [[pfn]]
    finally:
        server.stop()

"""Pytest fixtures that start real storage servers on 127.0.0.1 (see servers.storage).

Load with ``pytest_plugins = ["fixtures_storage"]``. Fixtures:

``xrootd_server``, ``https_server``
    one XRootD server and one nginx (HTTPS + WebDAV, no token) for the whole session, exporting
    fresh directories (``server.export_dir`` / ``server.root_dir``): put files there and read
    them through ``server.url(name)``. Do not stop these; start your own to break one.
``xrootd_factory``, ``https_factory``
    callables that start a fresh server for one test (``xrootd_factory(export_dir=None)``,
    ``https_factory(root_dir=None, token=None)``; ``None`` means a new empty directory), stopped
    when the test ends: for failover tests that stop, pause or restart them.

When a server cannot run here (not installed, fails to start) the fixtures skip with the reason,
except under ``CI=true``, where they fail: CI installs the servers (``.ci/install-storage.sh``)
and must run these tests.

Importing this module puts :data:`~servers.storage.XROOTD_CLIENT_ENV` into the
environment (values already set win), so that no test can hang for minutes on a dead XRootD
server; the XRootD client reads them when it is first imported, which is after this plugin loads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest
from servers.storage import (
    XROOTD_CLIENT_ENV,
    NginxServer,
    ServerUnavailable,
    XRootDServer,
)

for _name, _value in XROOTD_CLIENT_ENV.items():
    os.environ.setdefault(_name, _value)

__all__ = [
    "https_factory",
    "https_server",
    "storage_required",
    "xrootd_factory",
    "xrootd_server",
]


def storage_required() -> bool:
    """Whether a storage server that cannot start is a failure (on CI) rather than a skip."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _unavailable(error: ServerUnavailable) -> NoReturn:
    if storage_required():
        pytest.fail(f"storage server unavailable under CI=true: {error}", pytrace=False)
    pytest.skip(f"storage server unavailable: {error}")


_S = TypeVar("_S", XRootDServer, NginxServer)


def _start(server: _S) -> _S:
    try:
        return server.start()
    except ServerUnavailable as error:
        _unavailable(error)


@pytest.fixture(scope="session")
def xrootd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XRootDServer]:
    """An XRootD server for the session, exporting an empty directory (``.export_dir``)."""
    server = XRootDServer(
        tmp_path_factory.mktemp("xrootd-export"), tmp_path_factory.mktemp("xrootd-work")
    )
    with _start(server):
        yield server


@pytest.fixture(scope="session")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    """An HTTPS/WebDAV server (nginx) for the session, serving an empty ``.root_dir``."""
    server = NginxServer(tmp_path_factory.mktemp("https-root"), tmp_path_factory.mktemp("nginx"))
    with _start(server):
        yield server


@pytest.fixture
def xrootd_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., XRootDServer]]:
    """Start fresh XRootD servers (``factory(export_dir=None)``), all stopped after the test."""
    started: list[XRootDServer] = []

    def factory(export_dir: Path | None = None) -> XRootDServer:
        export = export_dir or tmp_path_factory.mktemp("xrootd-export")
        server = XRootDServer(export, tmp_path_factory.mktemp("xrootd-work"))
        started.append(server)
        return _start(server)

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def https_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., NginxServer]]:
    """Start fresh nginx servers (``factory(root_dir=None, token=None)``), stopped afterwards."""
    started: list[NginxServer] = []

    def factory(root_dir: Path | None = None, token: str | None = None, client_certs: bool = False) -> NginxServer:
        root = root_dir or tmp_path_factory.mktemp("https-root")
        server = NginxServer(root, tmp_path_factory.mktemp("nginx"), token=token, client_certs=client_certs)
        started.append(server)
        return _start(server)

    yield factory
    for server in started:
        server.stop()

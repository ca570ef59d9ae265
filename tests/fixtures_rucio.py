"""The ``rucio_server`` fixture: a real Rucio server on 127.0.0.1 for the whole test session.

The server lives in its own virtualenv (``bash .ci/install-rucio.sh``, or ``HIGHRATE_RUCIO_VENV``)
and talks to ``rucio-clients`` from the test environment over its REST API. Without either, the
tests that use it skip with the reason; with CI=true they fail instead, so that a broken install
cannot pass as a skip. Load it with ``pytest_plugins = ["fixtures_rucio"]`` in conftest.py, or
``from fixtures_rucio import rucio_server  # noqa: F401`` in a test module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from servers.rucio import RucioServer, RucioUnavailable


def unavailable(reason: str) -> None:
    """Skip with ``reason``; fail instead when CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the Rucio server is not usable: {reason}")
    pytest.skip(f"Rucio server not available: {reason}")


def start_rucio_server(workdir: os.PathLike[str] | str) -> RucioServer:
    """Start a server in ``workdir``, or skip/fail through :func:`unavailable`."""
    try:
        import rucio.client  # noqa: F401
    except ImportError:
        unavailable("rucio-clients is not installed in the test environment")
    try:
        return RucioServer(workdir).start()
    except RucioUnavailable as error:
        unavailable(str(error))
        raise  # unreachable: unavailable() always raises


@pytest.fixture(scope="session")
def rucio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RucioServer]:
    """A started :class:`~servers.rucio.RucioServer`, shared by the session.

    Tests register their own RSEs and datasets in it (names must not clash across tests); its
    client config is ``rucio_server.client_config`` (``RUCIO_CONFIG``), its client
    ``rucio_server.client()``. Stopping it would break later tests: start a private one with
    :func:`start_rucio_server` for that.
    """
    server = start_rucio_server(tmp_path_factory.mktemp("rucio"))
    try:
        yield server
    finally:
        server.stop()

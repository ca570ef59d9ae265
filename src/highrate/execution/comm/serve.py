"""Run a broker until SIGINT or SIGTERM (SIGUSR1 logs its counters): what ``highrate broker`` calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import signal
from collections.abc import Callable
from pathlib import Path

import dask.config

from highrate.errors import ConfigError
from highrate.execution.comm.broker import Broker
from highrate.execution.comm.protocol import DEFAULT_CLUSTER
from highrate.execution.comm.settings import read_token_file
from highrate.execution.comm.tls import BrokerTLS

log = logging.getLogger(__name__)


def broker_tokens(token_file: str | Path | None) -> dict[str, str]:
    """The clusters' tokens: ``token_file``, else Dask's ``highrate.broker.token-file`` or ``.token``."""
    path = token_file or dask.config.get("highrate.broker.token-file", default=None)
    if path:
        try:
            return read_token_file(path)
        except OSError as err:
            raise ConfigError(f"cannot read the token file {str(path)!r}: {err.strerror}") from err
    token = dask.config.get("highrate.broker.token", default=None)
    if token:
        cluster = dask.config.get("highrate.broker.cluster", default=None) or DEFAULT_CLUSTER
        return {cluster: str(token)}
    raise ConfigError("the broker needs the cluster's token: --token-file FILE (one 'TOKEN' or 'CLUSTER TOKEN' "
                      "a line; make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')")


def broker_tls(cert: str | None, key: str | None, ca_file: str | None) -> BrokerTLS | None:
    """The broker's TLS from its files, or None; half a configuration is an error."""
    if not (cert or key or ca_file):
        return None
    if not (cert and ca_file):
        raise ConfigError("TLS needs --tls-cert (with --tls-key unless the key is in it) and --tls-ca-file, the CA "
                          "that signed the cluster's certificates")
    return BrokerTLS.from_files(cert, key, ca_file)


def raise_open_files_limit() -> int:
    """Raise the soft limit of open files to the hard one: each worker holds a few connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def run_broker(
    *, host: str, port: int, tokens: dict[str, str], tls: BrokerTLS | None = None, heartbeat: float = 10.0,
    ready: Callable[[Broker], None] | None = None,
) -> None:
    """Serve on ``host:port`` until SIGINT or SIGTERM; ``ready(broker)`` once it listens."""
    try:
        broker = Broker(tokens, host=host, port=port, tls=tls, heartbeat=heartbeat)
    except ValueError as err:
        raise ConfigError(f"{err} (in the token file)") from err
    limit = raise_open_files_limit()
    asyncio.run(_serve(broker, ready, limit))


async def _serve(broker: Broker, ready: Callable[[Broker], None] | None, limit: int) -> None:
    try:
        await broker.start()
    except OSError as err:
        raise ConfigError(f"the broker cannot listen on {broker.host}:{broker.port}: {err.strerror}") from err
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # `kill -USR1 PID`: the counters now, for an operator (and the tests)
    loop.add_signal_handler(signal.SIGUSR1, lambda: log.info("broker: %s", json.dumps(broker.stats())))
    log.info("broker for cluster(s) %s; up to %d open files", ", ".join(sorted(broker.tokens)), limit)
    if ready is not None:
        ready(broker)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 60)
            log.info("broker: %s", json.dumps(broker.stats()))
    finally:
        await broker.stop()

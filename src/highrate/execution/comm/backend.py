"""``broker://``: a Dask comm backend whose every connection goes through one broker port.

Registered under the entry-point group ``distributed.comm.backends``, so any Dask process with
highrate installed understands ``broker://`` addresses: ``Client("broker://scheduler@HOST:PORT")``,
``dask worker broker://scheduler@HOST:PORT``, ``dask scheduler --host broker://scheduler@HOST:PORT``.
An address is ``broker://[NAME@]HOST:PORT``: HOST:PORT the broker, NAME the listener there.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

from distributed.comm.core import Comm, Connector
from distributed.comm.registry import Backend
from distributed.comm.tcp import TCP, TLS
from distributed.utils import ensure_ip, get_ip

from highrate.execution.comm import protocol as p
from highrate.execution.comm import settings
from highrate.execution.comm.listener import BrokerListener
from highrate.execution.comm.peer import dial, handshake

SCHEME = "broker"


class BrokerConnector(Connector):
    """Dials ``NAME@HOST:PORT``: the broker at HOST:PORT joins this connection to listener NAME."""

    async def connect(self, address: str, deserialize: bool = True, **connection_args: Any) -> Comm:
        target = p.BrokerAddress.parse(address)
        if not target.name:
            raise ValueError(f"{SCHEME}://{address} names no listener: expected {SCHEME}://NAME@HOST:PORT")
        tls = connection_args.get("ssl_context")
        if tls is None and connection_args.get("require_encryption"):
            raise RuntimeError(f"encryption required by Dask configuration, refusing communication to "
                               f"{SCHEME}://{address}")
        if tls is not None and not isinstance(tls, ssl.SSLContext):
            raise TypeError(f"TLS expects an ssl.SSLContext as ssl_context, got {tls!r}")
        credentials = settings.credentials()
        stream = await dial(target, p.ROLE_CONNECT, tls)
        try:
            await handshake(stream, target, credentials, "connect", target=target.name)
        except BaseException:
            stream.close()
            raise
        local = f"{SCHEME}://{target.named(None)}"
        return (TLS if tls is not None else TCP)(stream, local, f"{SCHEME}://{address}", deserialize)


class BrokerBackend(Backend):
    """The ``broker`` scheme for Dask."""

    def get_connector(self) -> BrokerConnector:
        return BrokerConnector()

    def get_listener(self, loc: str, handle_comm: Any, deserialize: bool, **connection_args: Any) -> BrokerListener:
        return BrokerListener(loc, handle_comm, deserialize, **connection_args)

    def get_address_host(self, loc: str) -> str:
        """The local address towards the broker.

        A broker address has no host of its own (the listener may run anywhere); Dask uses the
        host to bind dashboards and to prefer peers on the same machine. The local side of the
        route to the broker binds wherever this process runs, and makes all broker peers alike.
        """
        host = p.BrokerAddress.parse(loc).host
        return _local_ip(host) if host else "127.0.0.1"

    def get_address_host_port(self, loc: str) -> tuple[str, int]:
        # the name rides with the host, so that `dask worker --listen-address` keeps it
        address = p.BrokerAddress.parse(loc)
        return (f"{address.name}@{address.host}" if address.name else address.host), address.port

    def resolve_address(self, loc: str) -> str:
        address = p.BrokerAddress.parse(loc)
        if not address.host:
            return loc
        return str(p.BrokerAddress(ensure_ip(address.host), address.port, address.name))

    def get_local_address_for(self, loc: str) -> str:
        """A listener reached through the same broker: the broker, without a name."""
        return p.BrokerAddress.parse(loc).named(None).hostport


@functools.lru_cache(maxsize=64)
def _local_ip(host: str) -> str:
    return str(get_ip(ensure_ip(host)))

"""A Dask process's side of a connection to the broker: dial, TLS, prove the token.

Dask's comms wrap tornado streams, so the peer side speaks tornado; what it ends with is a stream
that ``distributed.comm.tcp.TCP`` (or ``TLS``) wraps unchanged.
"""

from __future__ import annotations

import ssl
from typing import Any

from distributed.comm.tcp import MAX_BUFFER_SIZE
from tornado.iostream import IOStream, SSLIOStream, StreamClosedError
from tornado.tcpclient import TCPClient

from highrate.execution.comm import protocol as p
from highrate.execution.comm.errors import (
    BrokerProtocolError,
    BrokerRefusedError,
    BrokerUnavailableError,
)
from highrate.execution.comm.streams import tornado_control

_TLS_HINT = ("configure Dask's TLS for this process (distributed.comm.tls.ca-file and this role's "
             "certificate and key) with the cluster's CA")
_client = TCPClient()


async def dial(broker: p.BrokerAddress, role: bytes, tls: ssl.SSLContext | None) -> IOStream:
    """A stream to the broker, past the preamble and, with ``tls``, the TLS handshake.

    A dialling peer (``ROLE_CONNECT``) is the TLS client; a listener is the TLS server, because
    the context Dask hands a listener is a server context.
    """
    where = broker.hostport
    try:
        stream = await _client.connect(broker.host, broker.port, max_buffer_size=MAX_BUFFER_SIZE)
    except (StreamClosedError, OSError) as err:
        raise BrokerUnavailableError(f"cannot reach the broker at {where}: {_cause(err)}") from err
    try:
        stream.set_nodelay(True)
        await stream.write(p.preamble(role, tls=tls is not None))
        status = bytes(await stream.read_bytes(1))
        if status == p.STATUS_WANTS_TLS:
            raise BrokerRefusedError(f"the broker at {where} requires TLS: {_TLS_HINT}")
        if status == p.STATUS_NO_TLS:
            raise BrokerRefusedError(f"this process uses TLS but the broker at {where} does not: start it with "
                                     "--tls-cert, --tls-key and --tls-ca-file")
        if status != p.STATUS_OK:
            raise BrokerRefusedError(f"{where} is not a highrate broker")
        if tls is not None and role == p.ROLE_LISTEN:  # the broker, TLS client here, speaks first
            await stream.write(p.STATUS_OK)  # ... only once this end listens
    except StreamClosedError as err:
        stream.close()
        raise BrokerUnavailableError(f"the broker at {where} closed the connection: {_cause(err)}") from err
    except BaseException:
        stream.close()
        raise
    if tls is None:
        return stream
    server_side = role == p.ROLE_LISTEN
    try:  # the plain stream hands its socket over: on failure the TLS stream closes it
        return await stream.start_tls(server_side, ssl_options=tls,
                                      server_hostname=broker.host if tls.check_hostname and not server_side else None)
    except (StreamClosedError, OSError) as err:
        real = getattr(err, "real_error", None) or err
        if isinstance(real, ssl.SSLError):
            raise BrokerRefusedError(f"TLS with the broker at {where} failed: {real}; {_TLS_HINT}") from err
        raise BrokerUnavailableError(f"the broker at {where} closed the connection: {_cause(err)}") from err


async def handshake(stream: IOStream, broker: p.BrokerAddress, credentials: p.Credentials, op: str,
                    **fields: Any) -> dict[str, Any]:
    """Answer the broker's challenge with ``op``; returns its ``ok`` once it proved the token too."""
    where = broker.hostport
    try:
        try:
            challenge = await tornado_control(stream)
        except StreamClosedError as err:
            if isinstance(stream, SSLIOStream):
                # TLS 1.3 ends the client's handshake before the server checked its certificate,
                # and the broker's refusal comes as a bare close: the broker's log says why
                raise BrokerRefusedError(f"the broker at {where} closed the connection right after TLS: it does "
                                         f"not accept this process's certificate? {_TLS_HINT}") from err
            raise
        if challenge["op"] != "challenge":
            raise BrokerProtocolError(f"{where} sent {challenge['op']!r} instead of a challenge")
        nonce = p.new_nonce()
        request = {"op": op, "cluster": credentials.cluster, "nonce": nonce, **fields}
        request["mac"] = p.sign(credentials.token, str(challenge.get("nonce")), op, credentials.cluster,
                                p.subject(request))
        await stream.write(p.control(request))
        reply = await tornado_control(stream)
    except StreamClosedError as err:
        raise BrokerUnavailableError(f"the broker at {where} closed the connection: {_cause(err)}") from err
    if reply["op"] == "refused":
        reason = str(reply.get("reason", ""))
        if reply.get("fatal"):
            hint = (" - this process and the broker must use the same token (highrate.broker.token-file) "
                    "and cluster (highrate.broker.cluster)") if "token" in reason else ""
            raise BrokerRefusedError(f"the broker at {where} refused {op} {p.subject(request)!r}: {reason}{hint}")
        raise BrokerUnavailableError(f"the broker at {where} refused {op} {p.subject(request)!r}: {reason}")
    if reply["op"] != "ok" or not p.equal(reply.get("proof"), p.prove(credentials.token, nonce, str(challenge["nonce"]))):
        raise BrokerRefusedError(f"{where} did not prove it holds cluster {credentials.cluster!r}'s token: "
                                 "is it this cluster's broker?")
    return reply


def _cause(err: BaseException) -> str:
    real = getattr(err, "real_error", None)
    return str(real or err) or type(err).__name__

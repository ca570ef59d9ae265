"""The listening side of ``broker://``: a Dask server (scheduler, worker, nanny) that binds no port.

Instead of binding, the listener registers a name at the broker over a connection it opens
itself, and keeps that registration: when a peer dials ``broker://NAME@BROKER:PORT`` the broker
asks, over it, for a reversed connection, which the listener opens and hands to Dask as an
incoming comm; when that fails (``mode`` ``auto``) or is not wanted (``relay``), the comm's bytes
travel over the registration itself (``relay.py``). Lost registrations are made again, with
back-off, until the listener stops.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import socket
import ssl
import time
from typing import Any

import dask.config
from dask.utils import parse_timedelta
from distributed.comm.core import BaseListener, CommClosedError
from distributed.comm.tcp import TCP, TLS
from distributed.utils import ensure_ip
from tornado.iostream import IOStream, StreamClosedError

from highrate.errors import ConfigError
from highrate.execution.comm import protocol as p
from highrate.execution.comm import settings
from highrate.execution.comm.channelcomm import ChannelComm
from highrate.execution.comm.errors import (
    BrokerProtocolError,
    BrokerRefusedError,
    BrokerUnavailableError,
)
from highrate.execution.comm.peer import dial, handshake
from highrate.execution.comm.relay import Channel, deliver
from highrate.execution.comm.streams import TornadoFrames

log = logging.getLogger(__name__)
RELAY_MEMORY = 300.0  # seconds a listener relays without trying reversal again, once it failed


class BrokerListener(BaseListener):
    """Registers at the broker as ``name`` and accepts the connections it brings."""

    prefix = "broker://"  # Dask's worker logs where it listens with this

    def __init__(self, loc: str, comm_handler: Any, deserialize: bool = True, *, allow_offload: bool = True,
                 ssl_context: ssl.SSLContext | None = None, require_encryption: bool = False,
                 handshake_overrides: dict[str, Any] | None = None, **_: Any) -> None:
        super().__init__()
        address = p.BrokerAddress.parse(loc)
        if not address.port:  # `dask worker` under a nanny, or no --host: the configured broker
            default = settings.default_broker()
            if default is None:
                raise ConfigError(
                    f"broker://{loc} names no broker: give its HOST:PORT (dask worker --host HOST:PORT, "
                    "Scheduler(host='broker://NAME@HOST:PORT')) or set DASK_HIGHRATE__BROKER__ADDRESS=HOST:PORT")
            address = default.named(address.name)
        if require_encryption and ssl_context is None:
            raise RuntimeError(f"encryption required by Dask configuration, refusing to listen on broker://{loc}")
        self.broker = address
        self.name = address.name or _new_name()
        self.tls = ssl_context
        self.comm_handler, self.deserialize, self.allow_offload = comm_handler, deserialize, allow_offload
        self.handshake_overrides = handshake_overrides
        self.credentials = settings.credentials()
        self.mode, self.reverse_timeout = settings.mode(), settings.reverse_timeout()
        self.connect_timeout = float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"),
                                                     default="seconds"))
        self._instance = secrets.token_hex(8)
        self._stream: IOStream | None = None
        self._heartbeat = 10.0
        self._channels: dict[int, Channel] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False
        self._relay_until = 0.0
        self._contact: str | None = None

    async def start(self) -> None:
        broker = p.BrokerAddress(ensure_ip(self.broker.host), self.broker.port)
        self._contact = f"broker://{broker.named(self.name)}"
        await self._register(deadline=time.monotonic() + self.connect_timeout)
        self._spawn(self._run())

    def stop(self) -> None:
        self._stopped = True
        if self._stream is not None:
            self._stream.close()
        for channel in self._channels.values():
            channel.remote_close()
        for task in list(self._tasks):
            task.cancel()

    @property
    def listen_address(self) -> str:
        return self.contact_address

    @property
    def contact_address(self) -> str:
        if self._contact is None:
            raise ValueError("invalid operation on a broker listener that was not started")
        return self._contact

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _register(self, *, deadline: float | None) -> None:
        """Register, retrying with back-off until ``deadline`` (None: until stopped)."""
        delay = 0.1
        while not self._stopped:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    stream = await dial(self.broker, p.ROLE_LISTEN, self.tls)
                    try:
                        reply = await handshake(stream, self.broker, self.credentials, "register",
                                                name=self.name, instance=self._instance)
                    except BaseException:
                        stream.close()
                        raise
            except BrokerRefusedError as err:
                if deadline is not None:  # at start: fail the Dask server with the broker's reason
                    raise
                # while running, the fix (a token, a certificate) may come: ask again, less often
                log.error("the broker refused %s: %s; asking again in %.0f s", self.name, err, 10 * delay)
                await asyncio.sleep(10 * delay)
                delay = min(2 * delay, 5.0)
                continue
            except (OSError, TimeoutError, BrokerProtocolError) as err:
                if deadline is not None and time.monotonic() > deadline:
                    raise BrokerUnavailableError(
                        f"cannot register {self.name} at the broker {self.broker.hostport}: {err}") from err
                log.debug("registering %s at %s failed (%s); again in %.1f s", self.name, self.broker.hostport,
                          err, delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, 5.0)
                continue
            self._stream = stream
            self._heartbeat = float(reply.get("heartbeat", self._heartbeat))
            log.debug("registered %s at the broker %s", self.name, self.broker.hostport)
            return

    async def _run(self) -> None:
        """Serve the registration; when it is lost, register again."""
        while not self._stopped:
            try:
                await self._serve_registration()
            except (OSError, StreamClosedError, TimeoutError, BrokerProtocolError, ValueError, KeyError) as err:
                if self._stopped:
                    return
                log.warning("lost the broker at %s (%s); registering %s again", self.broker.hostport,
                            err or type(err).__name__, self.name)
            finally:
                if self._stream is not None:
                    self._stream.close()
                    self._stream = None
                for channel in self._channels.values():
                    channel.remote_close()
            await self._register(deadline=None)
            if self._stopped:
                return
            log.warning("registered %s at the broker %s again", self.name, self.broker.hostport)

    async def _serve_registration(self) -> None:
        stream = self._stream
        assert stream is not None
        reader = TornadoFrames(stream)
        while True:
            # the broker pings every heartbeat: three missed pings mean it is gone
            async with asyncio.timeout(3 * self._heartbeat):
                frames = await reader.frames()
            for kind, number, payload in frames:
                if kind == p.CONTROL:
                    message = p.parse_control(bytes(payload))
                    if message["op"] == "ping":
                        await stream.write(p.control({"op": "pong"}))
                    elif message["op"] == "reverse":
                        self._spawn(self._answer(int(message["conn"]), str(message.get("peer", ""))))
                elif (channel := self._channels.get(number)) is not None:
                    deliver(channel, kind, payload)

    async def _send(self, *parts: bytes | memoryview) -> None:
        stream = self._stream
        if stream is None:
            raise CommClosedError(f"{self.name} has no registration at the broker")
        for part in parts[:-1]:  # queued together: no other frame can come between them
            stream.write(part)
        await stream.write(parts[-1])

    async def _answer(self, number: int, peer: str) -> None:
        """The broker asks for connection ``number``: reverse it, or relay it."""
        peer_address = f"broker://{self.broker.named('peer-' + re.sub(r'[^A-Za-z0-9]+', '-', peer).strip('-'))}"
        relay = self.mode == "relay" or (self.mode == "auto" and time.monotonic() < self._relay_until)
        if not relay:
            try:
                async with asyncio.timeout(self.reverse_timeout):
                    stream = await dial(self.broker, p.ROLE_LISTEN, self.tls)
            except (OSError, TimeoutError) as err:
                if self.mode == "reverse":
                    log.warning("%s cannot open a reversed connection to the broker: %s", self.name, err)
                    return
                log.warning("%s cannot open a reversed connection to the broker (%s): relaying over its "
                            "registration for %.0f s", self.name, err or "timed out", RELAY_MEMORY)
                self._relay_until = time.monotonic() + RELAY_MEMORY
                relay = True
        if relay:
            comm = await self._relay(number, peer_address)
        else:
            try:
                await handshake(stream, self.broker, self.credentials, "accept", conn=number,
                                instance=self._instance)
            except (OSError, BrokerProtocolError) as err:  # the dialling peer gave up meanwhile
                log.debug("connection %d was not taken: %s", number, err)
                stream.close()
                return
            comm = (TLS if self.tls is not None else TCP)(stream, self.contact_address, peer_address, self.deserialize)
        comm.allow_offload = self.allow_offload
        try:
            await self.on_connection(comm, self.handshake_overrides)
        except CommClosedError:
            log.info("connection from %s closed before the Dask handshake completed", peer_address)
            return
        await self.comm_handler(comm)

    async def _relay(self, number: int, peer_address: str) -> ChannelComm:
        """Connection ``number`` relayed over the registration, as a Dask comm of its own."""
        channel = Channel(number, self._send)
        self._channels[number] = channel  # before the broker hears of it: its DATA may come next
        await self._send(p.control({"op": "relay", "conn": number}))
        return ChannelComm(channel, self.contact_address, peer_address, self.deserialize,
                           on_close=lambda: self._channels.pop(number, None))


def _new_name() -> str:
    """A name unique in the cluster that still says where the listener runs."""
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname().split(".")[0]).strip("-.")[:40] or "host"
    return f"{host}-{secrets.token_hex(4)}"


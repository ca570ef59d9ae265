"""The connection broker: one open port for a whole Dask cluster.

Behind a facility's firewall a worker can open connections but not accept them. Every scheduler,
worker and nanny therefore *registers* at the broker over a connection it opened itself (a
``broker://`` listener), and every Dask connection *to* a listener goes to the broker instead,
naming the listener. The broker then asks the listener, over its registration, to open one more
connection (reversal) and splices the two; if the listener cannot, the bytes are relayed over the
registration (``relay.py``). This is the scheme of HTCondor's connection broker (CCB).

Each connection starts with a preamble and, for clusters with certificates, TLS. The broker is
the TLS server for peers that dial (Dask hands them a client context) and the TLS *client* for
listeners (Dask hands them a server context), so both sides use exactly the contexts
``distributed.Security`` builds, and each hop is mutually authenticated by the cluster's CA.
Then every peer proves it holds the cluster's token (``protocol.sign``) before anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from highrate.execution.comm import protocol as p
from highrate.execution.comm.errors import BrokerProtocolError
from highrate.execution.comm.link import Link, open_link, splice
from highrate.execution.comm.relay import Channel, deliver
from highrate.execution.comm.streams import read_control, read_frame
from highrate.execution.comm.tls import BrokerTLS

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Registration:
    """A listener's connection to the broker: reversal requests go out, relayed bytes both ways."""

    cluster: str
    name: str
    instance: str
    peer: str
    link: Link
    last_seen: float = field(default_factory=time.monotonic)
    channels: dict[int, Channel] = field(default_factory=dict)

    def write(self, *parts: bytes | memoryview) -> None:
        for part in parts:
            self.link.write(part)

    async def send(self, *parts: bytes | memoryview) -> None:
        self.write(*parts)
        await self.link.drain()


@dataclass(eq=False)
class _Pending:
    """A dialling peer waiting for its listener to answer."""

    registration: Registration
    link: Link
    answer: asyncio.Future[Any]


class Broker:
    """An asyncio server on ``host:port``; ``tokens`` maps each cluster's name to its token."""

    def __init__(
        self, tokens: Mapping[str, str], *, host: str = "127.0.0.1", port: int = 0, tls: BrokerTLS | None = None,
        heartbeat: float = 10.0, handshake_timeout: float = 10.0, answer_timeout: float = 10.0,
    ) -> None:
        if not tokens:
            raise ValueError("the broker needs at least one cluster token")
        self.tokens = {c: p.Credentials(c, t) for c, t in tokens.items()}  # checks names and lengths
        self.host, self.port, self.tls = host, port, tls
        self.heartbeat, self.handshake_timeout, self.answer_timeout = heartbeat, handshake_timeout, answer_timeout
        self.registrations: dict[tuple[str, str], Registration] = {}
        self.counts = dict.fromkeys(("registered", "spliced", "relayed", "refused", "unanswered", "active"), 0)
        self._pending: dict[int, _Pending] = {}
        self._numbers = itertools.count(1)
        self._socket: socket.socket | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Bind and start accepting; ``self.port`` is then the port bound."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._socket = socket.create_server((self.host, self.port), family=family, backlog=4096)
        self._socket.setblocking(False)
        self.port = self._socket.getsockname()[1]
        self._spawn(self._accept_loop())
        self._spawn(self._heartbeats())
        log.info("broker listening on %s:%d (%s)", self.host, self.port, "TLS" if self.tls else "no TLS")

    async def stop(self) -> None:
        """Stop accepting and close every connection."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        for registration in list(self.registrations.values()):
            registration.link.close()
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._socket is not None
        while True:
            try:
                sock, address = await loop.sock_accept(self._socket)
            except OSError as err:  # out of file descriptors, say: back off rather than spin
                log.error("broker cannot accept connections: %s (raise 'ulimit -n'?)", err)
                await asyncio.sleep(0.5)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            self._spawn(self._handle(sock, f"{address[0]}:{address[1]}"))

    async def _handle(self, sock: socket.socket, peer: str) -> None:
        """One incoming connection: preamble, TLS, authentication, then what it asked for."""
        link: Link | None = None
        try:
            async with asyncio.timeout(self.handshake_timeout):
                link, role = await self._open(sock, peer)
                if link is None:
                    return
                request = await self._authenticate(link, role, peer)
            if request is not None:
                await self._serve(request, link, peer)
                return
        except (OSError, EOFError, TimeoutError, BrokerProtocolError, asyncio.IncompleteReadError) as err:
            log.debug("connection from %s ended during the handshake: %r", peer, err)
        except (ValueError, TypeError, KeyError) as err:  # a malformed message: that peer's problem only
            log.warning("broker dropped the connection from %s: bad message (%r)", peer, err)
        if link is not None:
            link.close()
        else:
            sock.close()

    async def _open(self, sock: socket.socket, peer: str) -> tuple[Link | None, bytes]:
        loop = asyncio.get_running_loop()
        data = b""
        while len(data) < 8:
            more = await loop.sock_recv(sock, 8 - len(data))
            if not more:
                raise EOFError("closed before its preamble")
            data += more
        try:
            role, wants_tls = p.parse_preamble(data)
        except BrokerProtocolError:
            await loop.sock_sendall(sock, p.STATUS_BAD)
            raise
        if wants_tls != (self.tls is not None):
            await loop.sock_sendall(sock, p.STATUS_WANTS_TLS if self.tls else p.STATUS_NO_TLS)
            self._refuse_log(peer, "TLS on the peer but not on the broker" if wants_tls else
                             "a plaintext peer, but the broker requires TLS")
            sock.close()
            return None, role
        await loop.sock_sendall(sock, p.STATUS_OK)
        # a listener says when its TLS server is ready
        if self.tls is not None and role == p.ROLE_LISTEN and await loop.sock_recv(sock, 1) != p.STATUS_OK:
            raise BrokerProtocolError("the listener did not start TLS")
        context = None if self.tls is None else self.tls.server if role == p.ROLE_CONNECT else self.tls.client
        try:
            link = await open_link(sock, tls=context, server_side=role == p.ROLE_CONNECT,
                                   timeout=self.handshake_timeout)
        except ssl.SSLError as err:  # a certificate not from the cluster's CA, most likely
            self._refuse_log(peer, f"TLS handshake failed: {err.reason or err}")
            raise
        return link, role

    async def _authenticate(self, link: Link, role: bytes, peer: str) -> dict[str, Any] | None:
        nonce = p.new_nonce()
        link.write(p.control({"op": "challenge", "nonce": nonce, "version": 1}))
        request = await read_control(link)
        op, cluster = request["op"], str(request.get("cluster", ""))
        expected_role = p.ROLE_CONNECT if op == "connect" else p.ROLE_LISTEN
        credentials = self.tokens.get(cluster)
        if role != expected_role:
            return await self._refuse(link, peer, op, f"{op!r} on a connection of the wrong role", fatal=True)
        if credentials is None or not p.equal(request.get("mac"),
                                              p.sign(credentials.token, nonce, op, cluster, p.subject(request))):
            # the same answer for an unknown cluster and a wrong token: names are not probed
            return await self._refuse(link, peer, op, f"wrong token for cluster {cluster!r}", fatal=True)
        request["proof"] = p.prove(credentials.token, str(request.get("nonce", "")), nonce)
        return request

    async def _refuse(self, link: Link, peer: str, op: str, reason: str, *, fatal: bool) -> None:
        # a listener not there (yet) is routine while workers come and go; bad credentials are not
        self._refuse_log(peer, f"{op}: {reason}", level=logging.WARNING if fatal else logging.INFO)
        link.write(p.control({"op": "refused", "reason": reason, "fatal": fatal}))
        with contextlib.suppress(OSError):
            await link.drain()
        link.close()

    def _refuse_log(self, peer: str, reason: str, level: int = logging.WARNING) -> None:
        self.counts["refused"] += 1
        log.log(level, "broker refused the connection from %s: %s", peer, reason)

    async def _serve(self, request: dict[str, Any], link: Link, peer: str) -> None:
        op = request["op"]
        if op == "register":
            await self._register(request, link, peer)
        elif op == "accept":
            self._accept(request, link, peer)
        else:
            await self._connect(request, link, peer)

    def _ok(self, request: dict[str, Any], **extra: Any) -> bytes:
        return p.control({"op": "ok", "proof": request["proof"], **extra})

    async def _register(self, request: dict[str, Any], link: Link, peer: str) -> None:
        cluster, name, instance = request["cluster"], str(request.get("name", "")), str(request.get("instance", ""))
        if not p.valid_name(name):
            return await self._refuse(link, peer, "register", f"bad listener name {name!r}", fatal=True)
        old = self.registrations.get((cluster, name))
        if old is not None and old.instance != instance:
            return await self._refuse(link, peer, "register", f"the name {name!r} is taken in cluster "
                                      f"{cluster!r}", fatal=True)
        if old is not None:  # the same listener again (it lost its connection first): the new one wins
            old.link.close()
        registration = Registration(cluster, name, instance, peer, link)
        self.registrations[(cluster, name)] = registration
        self.counts["registered"] += 1
        link.write(self._ok(request, heartbeat=self.heartbeat))
        log.info("registered %s in cluster %s, from %s", name, cluster, peer)
        try:
            await self._read_registration(registration, link)
        except (OSError, EOFError, asyncio.IncompleteReadError, BrokerProtocolError, ValueError, TypeError,
                KeyError) as err:
            log.debug("registration of %s ended: %r", name, err)
        finally:
            if self.registrations.get((cluster, name)) is registration:
                del self.registrations[(cluster, name)]
                log.info("unregistered %s in cluster %s", name, cluster)
            for channel in registration.channels.values():
                channel.remote_close()
            link.close()

    async def _read_registration(self, registration: Registration, link: Link) -> None:
        while True:
            kind, number, payload = await read_frame(link)
            registration.last_seen = time.monotonic()
            channel = registration.channels.get(number)
            if kind == p.CONTROL:
                self._listener_says(registration, p.parse_control(payload))
            elif channel is None:
                continue  # a connection that just ended: its last frames are dropped
            else:
                deliver(channel, kind, payload)

    def _listener_says(self, registration: Registration, message: dict[str, Any]) -> None:
        op, number = message["op"], int(message.get("conn", 0))
        pending = self._pending.get(number)
        if op == "pong":
            return
        if op != "relay":
            raise BrokerProtocolError(f"unexpected {op!r} on a registration")
        if pending is None or pending.registration is not registration or pending.answer.done():
            registration.link.write(p.frame(p.CLOSE, number))
            return
        # made here, before the next frame is read: the listener's first DATA may follow at once
        channel = Channel(number, send=registration.send, write=registration.write)
        registration.channels[number] = channel
        pending.answer.set_result(channel)

    def _accept(self, request: dict[str, Any], link: Link, peer: str) -> None:
        pending = self._pending.get(int(request.get("conn", 0)))
        if pending is None or pending.answer.done() or pending.registration.cluster != request["cluster"] \
                or request.get("instance") != pending.registration.instance:  # only the listener asked
            self._spawn(self._refuse(link, peer, "accept", "no connection waits for this answer", fatal=False))
            return
        link.write(self._ok(request))
        pending.answer.set_result(link)  # the dialling peer's task splices them

    async def _connect(self, request: dict[str, Any], link: Link, peer: str) -> None:
        target = str(request.get("target", ""))
        registration = self.registrations.get((request["cluster"], target))
        if registration is None:
            return await self._refuse(link, peer, "connect", f"no listener {target!r} is registered",
                                      fatal=False)
        number = next(self._numbers)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[number] = _Pending(registration, link, answer)
        try:
            await registration.send(p.control({"op": "reverse", "conn": number, "peer": peer}))
            async with asyncio.timeout(self.answer_timeout):
                answered = await answer
        except (OSError, TimeoutError):
            self.counts["unanswered"] += 1
            return await self._refuse(link, peer, "connect", f"{target!r} did not answer", fatal=False)
        finally:
            del self._pending[number]
        link.write(self._ok(request))
        self.counts["active"] += 1
        try:
            if isinstance(answered, Channel):
                self.counts["relayed"] += 1
                log.debug("relaying %s -> %s as %d", peer, target, number)
                try:
                    await answered.relay(link)
                finally:
                    registration.channels.pop(number, None)
            else:
                self.counts["spliced"] += 1
                log.debug("splicing %s -> %s as %d", peer, target, number)
                await splice(link, answered)
        finally:
            self.counts["active"] -= 1

    async def _heartbeats(self) -> None:
        """Ping every registration each ``heartbeat`` s; drop those silent for three of them."""
        ping = p.control({"op": "ping"})
        while True:
            await asyncio.sleep(self.heartbeat)
            now = time.monotonic()
            for registration in list(self.registrations.values()):
                if now - registration.last_seen > 3 * self.heartbeat:
                    log.warning("dropping %s (cluster %s): silent for %.0f s", registration.name,
                                registration.cluster, now - registration.last_seen)
                    registration.link.close()
                elif registration.link.buffered() < p.WINDOW:
                    registration.link.write(ping)

    def stats(self) -> dict[str, int]:
        """Counters since start, and what is open now."""
        return {**self.counts, "registrations": len(self.registrations), "tasks": len(self._tasks)}

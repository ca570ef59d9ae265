"""A connection at the broker (:class:`Link`), and splicing two of them.

Until it is spliced, a link reads like a stream (the handshake, a registration's frames, a relayed
connection's bytes). Spliced, the bytes one link receives are written to the other in the event
loop's own callback: no task switch and no copy per chunk, which is what keeps a spliced
connection near the speed of a direct one. Flow control is per direction: when one side's
outgoing buffer is full, only the other side's reading pauses, so a slow peer holds back its own
connection and nothing else.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

from highrate.execution.comm.protocol import MAX_DATA

LIMIT = 2 * MAX_DATA  # bytes a link buffers before it stops reading: more than a frame holds
HIGH_WATER = 4 * LIMIT  # bytes queued towards a slow reader before its sender is paused


class Link(asyncio.Protocol):
    """One connection: ``readexactly``/``read``/``write``/``drain``/``close`` until :func:`splice`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._data = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._peer: Link | None = None
        self._sink: Callable[[bytes | None], None] | None = None  # forwarded to, as it comes (None: the end)
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._peer is not None:
            self._peer.write(data)
            return
        if self._sink is not None:
            self._sink(data)
            return
        self._buffer += data
        self._data.set()
        if len(self._buffer) > LIMIT:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._end()
        if self._peer is not None:
            self._peer.close()  # what was written to it still goes out first
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        self._writable.set()
        if self._peer is not None:
            self._peer.close()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._writable.clear()
        if self._peer is not None:
            self._peer.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writable.set()
        if self._peer is not None and not self._peer.transport.is_closing():
            self._peer.transport.resume_reading()

    def _end(self) -> None:
        if not self._eof and self._sink is not None:
            self._sink(None)
        self._eof = True
        self._data.set()

    def forward(self, sink: Callable[[bytes | None], None]) -> None:
        """From now on hand what arrives to ``sink`` in the event loop's callback, as it comes
        (what was buffered first; None at the end): a relayed connection's bytes need no task."""
        self._sink = sink
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            sink(data)
        if self._eof:
            sink(None)
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # the stream side
    async def readexactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            if self._eof:
                raise asyncio.IncompleteReadError(bytes(self._buffer), n)
            await self._wait()
        return self._take(n)

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes, at least one; b"" at the end."""
        while not self._buffer and not self._eof:
            await self._wait()
        return self._take(min(n, len(self._buffer)))

    def _take(self, n: int) -> bytes:
        with memoryview(self._buffer) as whole, whole[:n] as part:
            data = bytes(part)  # one copy: a slice of the bytearray would be a second
        del self._buffer[:n]  # cheap: a bytearray drops its head without moving the rest
        if len(self._buffer) <= LIMIT and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        return data

    async def _wait(self) -> None:
        self._data.clear()
        await self._data.wait()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        await self._writable.wait()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def buffered(self) -> int:
        """Bytes waiting to be sent."""
        return self.transport.get_write_buffer_size() if self.transport is not None else 0


async def open_link(sock: Any, *, tls: ssl.SSLContext | None = None, server_side: bool = True,
                    timeout: float = 10.0) -> Link:
    """A link over a connected socket, with TLS in the given role if ``tls``."""
    loop = asyncio.get_running_loop()
    extra: dict[str, Any] = {"ssl": tls, "ssl_handshake_timeout": timeout} if tls else {}
    if server_side:
        _, link = await loop.connect_accepted_socket(Link, sock, **extra)
    else:  # an empty server name: the cluster's CA vouches for the peer, not a host name
        _, link = await loop.create_connection(Link, sock=sock, **({**extra, "server_hostname": ""} if tls else {}))
    return link


async def splice(a: Link, b: Link) -> None:
    """Join two links until either closes; then close both."""
    for x, y in ((a, b), (b, a)):
        x.transport.set_write_buffer_limits(high=HIGH_WATER)
        x._peer = y
        if x._buffer:  # what came before the splice (a peer may speak as soon as it heard 'ok')
            y.write(bytes(x._buffer))
            x._buffer.clear()
    for x, y in ((a, b), (b, a)):
        if x._eof or x.transport.is_closing():
            y.close()
        elif not x.transport.is_closing():
            x.transport.resume_reading()
    try:
        await asyncio.wait([a.closed, b.closed], return_when=asyncio.FIRST_COMPLETED)
    finally:
        a.close()
        b.close()
        try:
            await asyncio.wait_for(asyncio.gather(a.closed, b.closed), 10)
        except TimeoutError:  # a peer that never reads what is left: give up on it
            for x in (a, b):
                x.transport.abort()

"""Frames over the two kinds of connection in play: the broker's links (``link.Link``) and
tornado ``IOStream``s (a Dask peer, whose comms wrap tornado streams)."""

from __future__ import annotations

from typing import Any

from distributed.protocol.utils import host_array
from tornado.iostream import IOStream

from highrate.execution.comm.errors import BrokerProtocolError
from highrate.execution.comm.link import Link
from highrate.execution.comm.protocol import CONTROL, HEADER, MAX_DATA, parse_control, parse_header


async def read_frame(reader: Link) -> tuple[int, int, bytes]:
    """(kind, channel, payload) of the next frame of a link."""
    kind, channel, length = parse_header(await reader.readexactly(HEADER.size))
    return kind, channel, (await reader.readexactly(length) if length else b"")


async def read_control(reader: Link) -> dict[str, Any]:
    kind, _, payload = await read_frame(reader)
    if kind != CONTROL:
        raise BrokerProtocolError("expected a control message")
    return parse_control(payload)


async def tornado_frame(stream: IOStream) -> tuple[int, int, bytes]:
    """(kind, channel, payload) of the next frame of a tornado stream."""
    kind, channel, length = parse_header(await stream.read_bytes(HEADER.size))
    return kind, channel, (bytes(await stream.read_bytes(length)) if length else b"")


async def tornado_control(stream: IOStream) -> dict[str, Any]:
    kind, _, payload = await tornado_frame(stream)
    if kind != CONTROL:
        raise BrokerProtocolError("expected a control message")
    return parse_control(payload)


class TornadoFrames:
    """The frames of a tornado stream, read in bulk: each read goes straight into a fresh buffer
    of two frames' size (large reads, no copy out of tornado's own buffer), and every complete
    frame in it is returned at once, the payloads as views of that buffer. Two awaits per frame,
    as :func:`tornado_frame` takes, with tornado's 64 kB reads, are what relayed connections'
    pieces would otherwise cost."""

    def __init__(self, stream: IOStream) -> None:
        self._stream = stream
        self._buffer = memoryview(b"")

    async def frames(self) -> list[tuple[int, int, memoryview]]:
        """The next frames, at least one: (kind, channel, payload)."""
        while True:
            found = self._complete()
            if found:
                return found
            if self._buffer.nbytes < HEADER.size:
                fresh = host_array(2 * (HEADER.size + MAX_DATA))
                kept = self._buffer.nbytes  # a few bytes of a header: carried over
                fresh[:kept] = self._buffer
                n = await self._stream.read_into(fresh[kept:], partial=True)
                self._buffer = fresh[:kept + n]
                continue
            # the rest of one frame: read exactly that into a buffer of its own, after its start
            kind, channel, length = parse_header(self._buffer[:HEADER.size])
            payload = host_array(length)
            have = self._buffer.nbytes - HEADER.size
            payload[:have] = self._buffer[HEADER.size:]
            await self._stream.read_into(payload[have:])
            self._buffer = memoryview(b"")
            return [(kind, channel, payload)]

    def _complete(self) -> list[tuple[int, int, memoryview]]:
        out = []
        view = self._buffer
        while view.nbytes >= HEADER.size:
            kind, channel, length = parse_header(view[:HEADER.size])
            end = HEADER.size + length
            if view.nbytes < end:
                break
            out.append((kind, channel, view[HEADER.size:end]))
            view = view[end:]
        self._buffer = view
        return out

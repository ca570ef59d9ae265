"""Frames over the two kinds of connection in play: the broker's links (``link.Link``) and
tornado ``IOStream``s (a Dask peer, whose comms wrap tornado streams)."""

from __future__ import annotations

from typing import Any

from tornado.iostream import IOStream

from highrate.execution.comm.errors import BrokerProtocolError
from highrate.execution.comm.link import Link
from highrate.execution.comm.protocol import CONTROL, HEADER, parse_control, parse_header


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

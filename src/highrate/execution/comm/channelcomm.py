"""A Dask comm on a relayed connection, at the listener: messages straight to and from its channel.

The bytes are those of Dask's TCP comm, which the dialling peer uses at the far end: a message is
an 8-byte length, then the frames' prelude (their number and sizes, ``pack_frames_prelude``) and
the frames. Reading them off the channel here, instead of through a local TCP pair and a second
TCP comm, spares the listener a copy through the kernel and a trip through the event loop for
every piece.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Callable
from typing import Any

import dask.config
import dask.utils
from distributed.comm.core import Comm, CommClosedError
from distributed.comm.utils import from_frames, to_frames
from distributed.protocol.utils import host_array, pack_frames_prelude, unpack_frames

from highrate.execution.comm.relay import Channel

LENGTH = struct.Struct("Q")


class ChannelComm(Comm):
    """A Dask comm whose bytes are relayed connection ``channel``'s; ``on_close`` runs once it ends."""

    def __init__(self, channel: Channel, local_address: str, peer_address: str, deserialize: bool = True,
                 on_close: Callable[[], None] | None = None) -> None:
        super().__init__(deserialize=deserialize)
        self._channel = channel
        self._local, self._peer = local_address, peer_address
        self._pending = memoryview(b"")  # received, not yet read: a piece may hold two messages' bytes
        self._closed = False
        # a comm dropped without close() still ends its connection, as Dask's TCP comm does
        self._finalizer = weakref.finalize(self, _abandoned, channel, on_close)
        self._finalizer.atexit = False
        self.max_shard_size = dask.utils.parse_bytes(dask.config.get("distributed.comm.shard"))

    @property
    def local_address(self) -> str:
        return self._local

    @property
    def peer_address(self) -> str:
        return self._peer

    @property
    def extra_info(self) -> dict[str, Any]:
        return {}

    def closed(self) -> bool:
        return self._closed or (self._channel.exhausted and not self._pending.nbytes)

    async def read(self, deserializers: Any = None) -> Any:
        if self._closed:
            raise CommClosedError(f"{self!r} is closed")
        try:
            (nosplit,) = LENGTH.unpack(await self._read_exactly(LENGTH.size))
            frames, rest = unpack_frames(await self._read_exactly(nosplit), partial=True)
            for n in rest:  # buffers that outlive the message (numpy, parquet) get their own memory
                frames.append(await self._read_exactly(n))
        except BaseException:
            self.abort()  # part of a message was taken: nothing after it can be read
            raise
        try:
            return await from_frames(frames, deserialize=self.deserialize, deserializers=deserializers,
                                     allow_offload=self.allow_offload)
        except EOFError:
            self.abort()
            raise CommClosedError("aborted a relayed connection on truncated data") from None

    async def _read_exactly(self, n: int) -> memoryview:
        buffer = host_array(n)
        done = 0
        while done < n:
            if not self._pending.nbytes:
                data = await self._channel.receive()
                if data is None:
                    raise CommClosedError(f"{self._peer} closed the relayed connection")
                self._pending = memoryview(data)
            k = min(n - done, self._pending.nbytes)
            buffer[done:done + k] = self._pending[:k]
            self._pending = self._pending[k:]
            done += k
            await self._channel.consumed(k)
        return buffer

    async def write(self, msg: Any, serializers: Any = None, on_error: str = "message") -> int:
        if self.closed():
            raise CommClosedError(f"{self!r} is closed")
        frames = await to_frames(
            msg, allow_offload=self.allow_offload, serializers=serializers, on_error=on_error,
            context={"sender": self.local_info, "recipient": self.remote_info, **self.handshake_options},
            frame_split_size=self.max_shard_size,
        )
        prelude = pack_frames_prelude(frames)
        sizes = [memoryview(f).nbytes for f in frames]
        # everything as one message: the far end reads it into one buffer, as Dask's own framing allows
        head = LENGTH.pack(len(prelude) + sum(sizes)) + prelude
        try:
            for part in (head, *frames):
                if not await self._channel.send(part):
                    raise CommClosedError(f"{self._peer} closed the relayed connection")
        except BaseException:
            self.abort()
            raise
        return len(head) + sum(sizes)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._finalizer.detach()
            await self._channel.close()
            self._channel.remote_close()
            if self._on_close is not None:
                self._on_close()

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            self._finalizer()


def _abandoned(channel: Channel, on_close: Callable[[], None] | None) -> None:
    channel.abandon()
    if on_close is not None:
        on_close()

"""One connection relayed over a listener's registration, with flow control of its own.

When a listener cannot open a new connection to the broker (an egress rule, a limit on
connections), the broker relays instead: the connection's bytes travel as DATA frames over the
registration the listener already holds, tagged with the connection's number. Each direction may
have at most ``WINDOW`` bytes in flight; the receiver returns CREDIT as it writes them out. A
reader that stops reading therefore stalls only its own connection: the registration's reader
never waits on it, and its other connections go on.

Both ends use this class: the broker with the dialling peer's link as the local end, the
listener with one end of a local TCP pair whose other end is a Dask comm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from highrate.execution.comm.errors import BrokerProtocolError
from highrate.execution.comm.link import Link
from highrate.execution.comm.protocol import (
    CLOSE,
    CREDIT,
    DATA,
    MAX_DATA,
    WINDOW,
    credit,
    frame,
    parse_credit,
)

log = logging.getLogger(__name__)

Send = Callable[[bytes], Awaitable[None]]


class Channel:
    """Relays the local connection ``link`` as channel ``number`` through ``send``."""

    def __init__(self, number: int, link: Link, send: Send) -> None:
        self.number = number
        self._link, self._send = link, send
        self._credit = WINDOW  # bytes this end may still send before the far end returns credit
        self._credit_changed = asyncio.Event()
        self._inbox: deque[bytes] = deque()
        self._inbox_bytes = 0
        self._inbox_changed = asyncio.Event()
        self._remote_closed = False
        self._sent_close = False
        self.sent = self.received = 0

    # called by the registration's reader; never blocks
    def feed(self, data: bytes) -> None:
        """DATA from the far end, to be written to the local end."""
        if self._inbox_bytes + len(data) > WINDOW:
            raise BrokerProtocolError(f"relayed connection {self.number} overran its window")
        self._inbox.append(data)
        self._inbox_bytes += len(data)
        self._inbox_changed.set()

    def grant(self, amount: int) -> None:
        """CREDIT from the far end: it wrote out ``amount`` more bytes."""
        self._credit += amount
        self._credit_changed.set()

    def remote_close(self) -> None:
        """CLOSE from the far end, or the registration is gone: finish and close the local end."""
        self._remote_closed = True
        self._inbox_changed.set()
        self._credit_changed.set()

    async def run(self) -> None:
        """Relay until either end closes; then close the local end and tell the far end."""
        tasks = {asyncio.create_task(self._outbound()), asyncio.create_task(self._inbound())}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # a Dask comm closes both ways at once: one direction ending ends the connection
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception) and not isinstance(result, ConnectionError | asyncio.CancelledError):
                    log.debug("relayed connection %d ended: %r", self.number, result)
            self._link.close()
            if not (self._remote_closed or self._sent_close):
                self._sent_close = True
                with contextlib.suppress(Exception):
                    await self._send(frame(CLOSE, self.number))

    async def _outbound(self) -> None:
        while True:
            data = await self._link.read(MAX_DATA)
            if not data:
                break
            while data:
                while self._credit <= 0:
                    if self._remote_closed:
                        return
                    self._credit_changed.clear()
                    await self._credit_changed.wait()
                n = min(len(data), self._credit)
                piece, data = (data, b"") if n == len(data) else (data[:n], data[n:])
                self._credit -= n
                self.sent += n
                await self._send(frame(DATA, self.number, piece))
        self._sent_close = True
        await self._send(frame(CLOSE, self.number))

    async def _inbound(self) -> None:
        owed = 0  # credit written out locally, not yet returned
        while True:
            while not self._inbox:
                if owed:  # the inbox may fill while this is sent: look again before waiting
                    await self._send(credit(self.number, owed))
                    owed = 0
                    continue
                if self._remote_closed:
                    await self._link.drain()
                    return
                self._inbox_changed.clear()
                await self._inbox_changed.wait()
            data = self._inbox.popleft()
            self._inbox_bytes -= len(data)
            self._link.write(data)
            await self._link.drain()
            self.received += len(data)
            owed += len(data)
            if owed >= WINDOW // 4:
                await self._send(credit(self.number, owed))
                owed = 0


def deliver(channel: Channel, kind: int, payload: bytes) -> None:
    """A frame that arrived for one relayed connection: its data, more credit, or its end."""
    if kind == DATA:
        channel.feed(payload)
    elif kind == CREDIT:
        channel.grant(parse_credit(payload))
    else:
        channel.remote_close()

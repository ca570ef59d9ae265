"""One connection relayed over a listener's registration, with flow control of its own.

When a listener cannot open a new connection to the broker (an egress rule, a limit on
connections), the broker relays instead: the connection's bytes travel as DATA frames over the
registration the listener already holds, tagged with the connection's number. Each direction may
have at most ``WINDOW`` bytes in flight; the receiver returns CREDIT as it consumes them. A
reader that stops reading therefore stalls only its own connection: the registration's reader
never waits on it, and its other connections go on.

A :class:`Channel` is one end. At the broker, :meth:`Channel.relay` pumps it to and from the
dialling peer's link; at the listener, a :class:`~highrate.execution.comm.channelcomm.ChannelComm`
reads and writes Dask messages on it directly.
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
    header,
    parse_credit,
)

log = logging.getLogger(__name__)

# writes its parts, in order and with nothing between them, to the registration, and waits
# until they are on their way: a frame's header and its payload go out without a joined copy
Send = Callable[..., Awaitable[None]]
Write = Callable[..., None]  # the same, without waiting (the broker's relay, from a callback)


class Channel:
    """Connection ``number``, relayed through ``send`` (and ``write``, to :meth:`relay` a link)."""

    def __init__(self, number: int, send: Send, write: Write | None = None) -> None:
        self.number = number
        self._send, self._write = send, write
        self._waiting: deque[memoryview] = deque()  # from the relayed link, waiting for credit
        self._link: Link | None = None
        self._link_ended = asyncio.Event()
        self._link_eof = False
        self._credit = WINDOW  # bytes this end may still send before the far end returns credit
        self._credit_changed = asyncio.Event()
        self._inbox: deque[bytes | memoryview] = deque()
        self._inbox_bytes = 0
        self._inbox_changed = asyncio.Event()
        self._owed = 0  # bytes consumed here whose credit is not returned yet
        self.remote_closed = False
        self._sent_close = False
        self.sent = self.received = 0

    # called by the registration's reader; never blocks
    def feed(self, data: bytes | memoryview) -> None:
        """DATA from the far end, to be consumed here."""
        if self._inbox_bytes + len(data) > WINDOW:
            raise BrokerProtocolError(f"relayed connection {self.number} overran its window")
        self._inbox.append(data)
        self._inbox_bytes += len(data)
        self._inbox_changed.set()

    def grant(self, amount: int) -> None:
        """CREDIT from the far end: it consumed ``amount`` more bytes."""
        self._credit += amount
        self._credit_changed.set()
        if self._link is not None:
            self._flush()

    def remote_close(self) -> None:
        """CLOSE from the far end, or the registration is gone: no more data either way."""
        self.remote_closed = True
        self._inbox_changed.set()
        self._credit_changed.set()
        self._link_ended.set()

    # the end's own side
    async def send(self, data: bytes | memoryview) -> bool:
        """Send ``data`` as DATA frames as credit allows; False if the far end closed first."""
        view = memoryview(data).cast("B")
        while view.nbytes:
            while self._credit <= 0:
                if self.remote_closed:
                    return False
                self._credit_changed.clear()
                await self._credit_changed.wait()
            n = min(view.nbytes, self._credit, MAX_DATA)
            piece, view = view[:n], view[n:]
            self._credit -= n
            self.sent += n
            await self._send(header(DATA, self.number, n), piece)
        return True

    async def receive(self) -> bytes | memoryview | None:
        """The next DATA from the far end; None once it closed and everything was taken.

        Credit for what was consumed goes back before this waits, so that the far end is never
        held up by credit this end owes while it has nothing to read.
        """
        while not self._inbox:
            if self._owed:
                await self._return_credit()
                continue  # the inbox may have filled meanwhile
            if self.remote_closed:
                return None
            self._inbox_changed.clear()
            await self._inbox_changed.wait()
        data = self._inbox.popleft()
        self._inbox_bytes -= len(data)
        self.received += len(data)
        return data

    async def consumed(self, amount: int) -> None:
        """``amount`` bytes received were used up: their credit goes back, in batches."""
        self._owed += amount
        if self._owed >= WINDOW // 4:
            await self._return_credit()

    async def _return_credit(self) -> None:
        owed, self._owed = self._owed, 0
        await self._send(credit(self.number, owed))

    @property
    def exhausted(self) -> bool:
        """The far end closed, and everything it sent was taken."""
        return self.remote_closed and not self._inbox

    def abandon(self) -> None:
        """End the connection from this side without waiting: CLOSE goes out in the background."""
        if not (self.remote_closed or self._sent_close):
            self._sent_close = True
            with contextlib.suppress(RuntimeError):  # no running loop: the registration's end tells
                task = asyncio.get_running_loop().create_task(self._send(frame(CLOSE, self.number)))
                _background.add(task)
                task.add_done_callback(_finished)
        self.remote_close()

    async def close(self) -> None:
        """Tell the far end this connection ended (once)."""
        if not (self.remote_closed or self._sent_close):
            self._sent_close = True
            with contextlib.suppress(Exception):
                await self._send(frame(CLOSE, self.number))

    async def relay(self, link: Link) -> None:
        """Pump ``link`` both ways until either end closes; then close both.

        Towards the far end the link's bytes go out from the event loop's callback as they
        arrive (:meth:`Link.forward`), as far as credit allows; without credit the link stops
        reading until more comes. Towards the link a task writes what the far end sends.
        """
        assert self._write is not None, "relaying a link needs a Channel made with write="
        self._link = link
        link.forward(self._push)
        inbound = asyncio.create_task(self._inbound(link))
        ended = asyncio.create_task(self._link_ended.wait())
        try:
            await asyncio.wait({inbound, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # a Dask comm closes both ways at once: one direction ending ends the connection
            for task in (inbound, ended):
                task.cancel()
            results = await asyncio.gather(inbound, ended, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception) and not isinstance(result, ConnectionError | asyncio.CancelledError):
                    log.debug("relayed connection %d ended: %r", self.number, result)
            link.close()
            await self.close()

    def _push(self, data: bytes | None) -> None:
        """The relayed link's bytes as they arrive; None: it ended."""
        if data is None:
            self._link_eof = True
        else:
            self._waiting.append(memoryview(data))
        self._flush()

    def _flush(self) -> None:
        assert self._link is not None and self._write is not None
        while self._waiting and self._credit > 0 and not self.remote_closed:
            data = self._waiting[0]
            n = min(data.nbytes, self._credit, MAX_DATA)
            if n == data.nbytes:
                self._waiting.popleft()
            else:
                self._waiting[0] = data[n:]
            self._credit -= n
            self.sent += n
            self._write(header(DATA, self.number, n), data[:n])
        if self._waiting and not self.remote_closed:
            self._link.pause_reading()  # until the far end returns credit
        else:
            self._link.resume_reading()
            if self._link_eof or self.remote_closed:
                self._link_ended.set()

    async def _inbound(self, link: Link) -> None:
        while (data := await self.receive()) is not None:
            link.write(data)
            await link.drain()
            await self.consumed(len(data))
        await link.drain()


_background: set[asyncio.Task[None]] = set()


def _finished(task: asyncio.Task[None]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("a relayed connection's CLOSE was not sent: %r", task.exception())


def deliver(channel: Channel, kind: int, payload: bytes | memoryview) -> None:
    """A frame that arrived for one relayed connection: its data, more credit, or its end."""
    if kind == DATA:
        channel.feed(payload)
    elif kind == CREDIT:
        channel.grant(parse_credit(payload))
    else:
        channel.remote_close()

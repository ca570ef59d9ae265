"""The broker's wire protocol: addresses, the preamble, frames, and how peers prove the token.

Every connection to the broker opens with an 8-byte preamble (``HRB1``, a role byte, a TLS byte,
two zero bytes), answered by one status byte (a listener using TLS answers ``+`` in turn, once
its TLS server waits: the broker is the TLS client there and speaks first). Then, inside TLS
when the cluster uses it, come frames: a 9-byte header (kind, channel, payload length) and the
payload. Control messages are
JSON objects in ``CONTROL`` frames; ``DATA``, ``CREDIT`` and ``CLOSE`` frames carry relayed
connections over a listener's registration.

The token never travels: the broker sends a random nonce, the peer answers with an HMAC of the
nonce and its request under the token, and the broker proves it knows the token the same way.
This module does no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

from highrate.execution.comm.errors import BrokerProtocolError

MAGIC = b"HRB1"
ROLE_CONNECT = b"C"  # dials a listener through the broker; the TLS client
ROLE_LISTEN = b"L"  # a listener's registration or reversed connection; the TLS server (see broker.py)
TLS_ON, TLS_OFF = b"T", b"P"
STATUS_OK = b"+"
STATUS_WANTS_TLS = b"T"  # the broker has a certificate: plaintext peers are turned away
STATUS_NO_TLS = b"P"  # the broker has none: a TLS peer is turned away
STATUS_BAD = b"?"

CONTROL, DATA, CREDIT, CLOSE = 0, 1, 2, 3
HEADER = struct.Struct("!BII")
MAX_CONTROL = 64 * 1024
MAX_DATA = 1024 * 1024
WINDOW = 4 * 1024 * 1024  # bytes a relayed connection may have in flight in each direction
DEFAULT_CLUSTER = "default"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSION = "highrate-broker-1"


def preamble(role: bytes, *, tls: bool) -> bytes:
    """The 8 bytes a peer sends first."""
    return MAGIC + role + (TLS_ON if tls else TLS_OFF) + b"\0\0"


def parse_preamble(data: bytes) -> tuple[bytes, bool]:
    """(role, wants TLS) of a preamble; raises :class:`BrokerProtocolError` for anything else."""
    if len(data) != 8 or data[:4] != MAGIC or data[4:5] not in (ROLE_CONNECT, ROLE_LISTEN) \
            or data[5:6] not in (TLS_ON, TLS_OFF):
        raise BrokerProtocolError("not a highrate broker peer (bad preamble)")
    return data[4:5], data[5:6] == TLS_ON


def frame(kind: int, channel: int, payload: bytes = b"") -> bytes:
    """One frame: header and payload."""
    return HEADER.pack(kind, channel, len(payload)) + payload


def header(kind: int, channel: int, length: int) -> bytes:
    """A frame's header alone, to be sent just before its ``length`` bytes of payload."""
    return HEADER.pack(kind, channel, length)


def parse_header(data: bytes) -> tuple[int, int, int]:
    """(kind, channel, length) of a frame header, checked against the size limits."""
    kind, channel, length = HEADER.unpack(data)
    limit = MAX_CONTROL if kind == CONTROL else MAX_DATA if kind == DATA else 8
    if kind > CLOSE or length > limit:
        raise BrokerProtocolError(f"bad frame (kind {kind}, {length} bytes)")
    return kind, channel, length


def control(message: dict[str, Any], channel: int = 0) -> bytes:
    """A control message as one frame."""
    return frame(CONTROL, channel, json.dumps(message, separators=(",", ":")).encode())


def parse_control(payload: bytes) -> dict[str, Any]:
    try:
        message = json.loads(payload)
    except ValueError as err:
        raise BrokerProtocolError(f"bad control message: {err}") from err
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise BrokerProtocolError("bad control message: no 'op'")
    return message


def credit(channel: int, amount: int) -> bytes:
    """A CREDIT frame: the receiver of ``channel`` consumed ``amount`` more bytes."""
    return frame(CREDIT, channel, struct.pack("!Q", amount))


def parse_credit(payload: bytes) -> int:
    return struct.unpack("!Q", payload)[0]


@dataclass(frozen=True)
class Credentials:
    """The cluster a peer belongs to and its shared token; ``repr`` never shows the token."""

    cluster: str
    token: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.cluster):
            raise ValueError(f"bad cluster name {self.cluster!r}: letters, digits, '.', '_', '-'")
        if len(self.token) < 16:
            raise ValueError("the broker token must have at least 16 characters "
                             "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')")


def new_nonce() -> str:
    return secrets.token_hex(16)


def sign(token: str, broker_nonce: str, op: str, cluster: str, subject: str) -> str:
    """The peer's answer to the broker's challenge, bound to what it asks for."""
    text = "|".join((_VERSION, broker_nonce, op, cluster, subject))
    return hmac.new(token.encode(), text.encode(), hashlib.sha256).hexdigest()


def prove(token: str, peer_nonce: str, broker_nonce: str) -> str:
    """The broker's proof that it knows the token too."""
    text = "|".join((_VERSION + "-broker", peer_nonce, broker_nonce))
    return hmac.new(token.encode(), text.encode(), hashlib.sha256).hexdigest()


def equal(a: object, b: str) -> bool:
    """Constant-time comparison of a received MAC with the expected one."""
    return isinstance(a, str) and hmac.compare_digest(a.encode(), b.encode())


def subject(message: dict[str, Any]) -> str:
    """What a request is about: the name registered, the listener dialled, the connection accepted."""
    op = message.get("op")
    key = {"register": "name", "connect": "target", "accept": "conn"}.get(str(op))
    if key is None:
        raise BrokerProtocolError(f"unknown request {op!r}")
    return str(message.get(key, ""))


@dataclass(frozen=True)
class BrokerAddress:
    """``[NAME@]HOST:PORT``, the location of a ``broker://`` address.

    HOST:PORT is the broker; NAME the listener (a scheduler, worker or nanny) registered there.
    The name sits before the host so that Dask's ``host:port`` parsing keeps it.
    """

    host: str
    port: int
    name: str | None = None

    @classmethod
    def parse(cls, loc: str) -> BrokerAddress:
        if "://" in loc:
            loc = loc.split("://", 1)[1]
        name, at, hostport = loc.rpartition("@")
        if not at:
            name, hostport = "", loc
        if hostport.startswith("["):
            host, _, rest = hostport[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        else:
            host, _, port = hostport.rpartition(":")
        if not port.isdigit():
            # an empty location (no broker given) parses as port 0: the listener takes the default
            if hostport in ("", ":"):
                return cls("", 0, name or None)
            raise ValueError(f"invalid broker address {loc!r}: expected [NAME@]HOST:PORT")
        if name and not _NAME.match(name):
            raise ValueError(f"invalid listener name {name!r} in {loc!r}: letters, digits, '.', '_', '-'")
        return cls(host, int(port), name or None)

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.name}@{self.hostport}" if self.name else self.hostport

    def named(self, name: str | None) -> BrokerAddress:
        return BrokerAddress(self.host, self.port, name)


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))

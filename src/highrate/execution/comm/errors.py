"""What a ``broker://`` connection can fail with, as Dask's comm layer expects it.

Dask retries a connection that fails with ``CommClosedError`` until its connect timeout and gives
up at once on ``FatalCommClosedError``; both are ``OSError``s. A refused token is fatal: retrying
cannot fix it. A listener that is not registered (yet) is worth retrying.
"""

from __future__ import annotations

from distributed.comm.core import CommClosedError, FatalCommClosedError

from highrate.errors import HighrateError


class BrokerProtocolError(HighrateError, ValueError):
    """A peer of the broker sent something that is not the broker's protocol."""


class BrokerUnavailableError(HighrateError, CommClosedError):
    """The broker, or the listener asked for, cannot be reached now; Dask retries."""


class BrokerRefusedError(HighrateError, FatalCommClosedError):
    """The broker refused this peer (wrong token, unknown cluster, TLS mismatch): not retried."""

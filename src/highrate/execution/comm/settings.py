"""What a ``broker://`` peer reads from Dask's configuration (``highrate.broker.*``).

Each key can be set in a Dask YAML file or as an environment variable, e.g.
``DASK_HIGHRATE__BROKER__TOKEN_FILE=/path/to/token``:

- ``token-file`` (or ``token``): the cluster's shared secret; a file keeps it out of process lists;
- ``cluster``: which of the broker's clusters this peer belongs to (default ``default``);
- ``address``: ``HOST:PORT`` of the broker, for listeners started without one (``dask worker``
  under a nanny);
- ``mode``: how a listener answers the broker: ``auto`` (reverse, relay when that fails),
  ``reverse`` or ``relay``;
- ``reverse-timeout``: how long a listener's reversed connection may take to open (default 3 s).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.config
from dask.utils import parse_timedelta

from highrate.errors import ConfigError
from highrate.execution.comm.protocol import DEFAULT_CLUSTER, BrokerAddress, Credentials

MODES = ("auto", "reverse", "relay")
_cache: dict[str, Any] = {}
_HINT = ("give the cluster's token to every scheduler, worker and client: "
         "DASK_HIGHRATE__BROKER__TOKEN_FILE=/path/to/token (or the Dask config key highrate.broker.token-file)")


def credentials() -> Credentials:
    """The cluster name and token this process presents to the broker."""
    cluster = str(dask.config.get("highrate.broker.cluster", default=None) or DEFAULT_CLUSTER)
    path = dask.config.get("highrate.broker.token-file", default=None)
    token = dask.config.get("highrate.broker.token", default=None)
    if path:
        try:
            token = _tokens_of(str(path))[cluster]
        except OSError as err:
            raise ConfigError(f"cannot read the broker token file {path!r} ({err.strerror}); {_HINT}") from err
        except KeyError as err:
            raise ConfigError(f"the broker token file {path!r} has no token for cluster {cluster!r} "
                              "(set highrate.broker.cluster to the cluster it names)") from err
    if not token:
        raise ConfigError(f"no token for the highrate broker is configured: {_HINT}")
    try:
        return Credentials(cluster, str(token).strip())
    except ValueError as err:
        raise ConfigError(str(err)) from err


def default_broker() -> BrokerAddress | None:
    """``highrate.broker.address``, for listeners given no broker."""
    value = dask.config.get("highrate.broker.address", default=None)
    if not value:
        return None
    try:
        address = BrokerAddress.parse(str(value))
    except ValueError as err:
        raise ConfigError(f"highrate.broker.address: {err}") from err
    if not address.port:
        raise ConfigError(f"highrate.broker.address {value!r} has no port: give HOST:PORT")
    return address


def mode() -> str:
    value = str(dask.config.get("highrate.broker.mode", default="auto"))
    if value not in MODES:
        raise ConfigError(f"highrate.broker.mode must be one of {', '.join(MODES)}, got {value!r}")
    return value


def reverse_timeout() -> float:
    return float(parse_timedelta(dask.config.get("highrate.broker.reverse-timeout", default="3s")))


def _tokens_of(path: str) -> dict[str, str]:
    """The file's tokens, read again only when it changes (peers ask on every connection)."""
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size)
    if _cache.get("key") != key:
        _cache.update(key=key, tokens=read_token_file(path))
    return _cache["tokens"]


def read_token_file(path: str | Path) -> dict[str, str]:
    """The tokens of a token file: one ``TOKEN`` (cluster ``default``) or ``CLUSTER TOKEN`` a line;
    blank lines and ``#`` comments are skipped."""
    tokens: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) == 1:
            parts = [DEFAULT_CLUSTER, parts[0]]
        if len(parts) != 2:
            raise ConfigError(f"{path}:{number}: expected 'TOKEN' or 'CLUSTER TOKEN'")
        if parts[0] in tokens:
            raise ConfigError(f"{path}:{number}: cluster {parts[0]!r} is given twice")
        tokens[parts[0]] = parts[1]
    if not tokens:
        raise ConfigError(f"the broker token file {str(path)!r} holds no token")
    return tokens


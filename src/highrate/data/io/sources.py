"""Where bytes come from: one small registry of sources by URL scheme.

A source turns a replica URL into what ``uproot.open`` needs (the URL it understands and its
open options: timeouts, TLS trust, credentials) and names the storage endpoint it talks to, so
that bytes and requests are reported per endpoint. Local files are read with ``pread`` by the
basket reader; remote ones through uproot's fsspec source, which coalesces and parallelises
the byte ranges of a chunk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from highrate.base.optional import require
from highrate.data.io.http import ClientFactory
from highrate.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class AccessOptions:
    """How remote replicas are opened and read; one per run, shipped to every worker.

    ``timeout`` bounds connecting and each request (seconds); ``credentials`` is what the
    driver found (see :mod:`highrate.data.credentials`) and is installed on each worker before the
    first remote open.
    """

    timeout: float = 30.0
    ca_file: str | None = None  # PEM bundle to trust for HTTPS (else SSL_CERT_FILE / system store)
    credentials: Any = None  # highrate.data.credentials.Credentials, never logged
    per_scheme: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # extra open options

    def options_for(self, scheme: str) -> dict[str, Any]:
        return dict(self.per_scheme.get(scheme, {}))


@dataclass(frozen=True)
class Source:
    """A kind of storage, chosen by the replica URL's scheme."""

    name: str
    schemes: tuple[str, ...]
    open_args: Callable[[str, AccessOptions], tuple[str, dict[str, Any]]]  # (url for uproot, options)


_SOURCES: dict[str, Source] = {}


def register_source(source: Source) -> None:
    """Make ``source`` read every URL whose scheme is one of ``source.schemes``."""
    for scheme in source.schemes:
        _SOURCES[scheme] = source


def scheme_of(url: str) -> str:
    """``root``, ``https``, ...; ``file`` for plain paths."""
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def source_for(url: str) -> Source:
    """The source that reads ``url``; a clear error for schemes nobody reads."""
    scheme = scheme_of(url)
    found = _SOURCES.get(scheme)
    if found is None:
        known = sorted(_SOURCES)
        raise ConfigError(
            f"file {url!r}: unknown URL scheme {scheme + '://'!r}; highrate reads "
            + ", ".join(f"{s}://" for s in known if s != "file")
            + " and local paths." + did_you_mean(scheme, known)
        )
    return found


def local_path(url: str) -> str | None:
    """The path of a local file (``file://`` stripped), ``None`` for remote URLs."""
    if "://" not in url:
        return url
    return urlsplit(url).path if scheme_of(url) == "file" else None


def endpoint(url: str) -> str:
    """The storage endpoint a replica lives on, e.g. ``root://eos.cern.ch:1094``; ``local`` for files."""
    if local_path(url) is not None:
        return "local"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def open_args(url: str, access: AccessOptions) -> tuple[str, dict[str, Any]]:
    """What to pass to ``uproot.open`` to read the replica ``url``."""
    source = source_for(url)
    target, options = source.open_args(url, access)
    options.update(access.options_for(scheme_of(url)))
    return target, options


def _local(url: str, access: AccessOptions) -> tuple[str, dict[str, Any]]:
    return local_path(url) or url, {}


def _xrootd(url: str, access: AccessOptions) -> tuple[str, dict[str, Any]]:
    require("fsspec_xrootd", "remote", purpose=f"reading {url!r}")
    # fsspec-xrootd applies ``timeout`` to every request; without it a dead server hangs a
    # read for the XRootD client's default of 30 minutes.
    seconds = int(max(1, round(access.timeout)))
    _bound_xrootd_retries(seconds)
    # a fresh filesystem per open: fsspec's cached one may hold handles to a server that restarted
    return url, {"timeout": seconds, "skip_instance_cache": True}


# The XRootD client's defaults retry a refused connection 5 times 120 s apart, refuse a host
# for 30 minutes after one stream error, and check timeouts every 15 s: failover would take
# minutes. The library reads XRD_* once, when first imported, so bounded values are put in
# the environment now (values the user set win) and again at run time for an earlier import.
_XRD_SETTINGS = {"ConnectionRetry": 1, "ConnectionWindow": 10, "StreamErrorWindow": 0, "TimeoutResolution": 1}
for _name, _value in _XRD_SETTINGS.items():
    os.environ.setdefault(f"XRD_{_name.upper()}", str(_value))


def _bound_xrootd_retries(seconds: int) -> None:
    try:
        from XRootD import client
    except ImportError:
        return
    for name, value in {**_XRD_SETTINGS, "ConnectionWindow": seconds}.items():
        if os.environ.get(f"XRD_{name.upper()}") == str(_XRD_SETTINGS[name]):
            client.EnvPutInt(name, value)


def server_checksum(url: str, timeout: float) -> str | None:
    """The adler32 that the storage holds for a ``root://`` replica (8 hex digits), or None where
    the server cannot say (no checksum configured, another algorithm, another protocol).

    Grid storage keeps checksums with the file, so asking costs one round trip, not a read.
    """
    if scheme_of(url) not in ("root", "xroot"):
        return None
    try:
        from XRootD import client
        from XRootD.client.flags import QueryCode
    except ImportError:
        return None
    parts = urlsplit(url)
    status, response = client.FileSystem(f"root://{parts.netloc}").query(
        QueryCode.CHECKSUM, "/" + parts.path.lstrip("/"), timeout=int(max(1, timeout))
    )
    if not status.ok or not response:
        return None
    fields = response.decode(errors="replace").strip("\x00 \n").split()
    if len(fields) < 2 or fields[0].lower() != "adler32":
        return None
    return fields[1].lower().rjust(8, "0")


def _http(url: str, access: AccessOptions) -> tuple[str, dict[str, Any]]:
    require("aiohttp", "remote", purpose=f"reading {url!r}")
    if scheme_of(url) == "davs":  # WebDAV reads are plain HTTPS GETs with ranges
        url = "https" + url[4:]
    elif scheme_of(url) == "dav":
        url = "http" + url[3:]
    return url, {"get_client": ClientFactory(ca_file(access), access.timeout), "skip_instance_cache": True}


register_source(Source("local", ("file",), _local))
register_source(Source("xrootd", ("root", "xroot"), _xrootd))
register_source(Source("https", ("https", "http", "davs", "dav"), _http))


def ca_file(access: AccessOptions) -> str | None:
    """The CA bundle HTTPS should trust: the option, then ``SSL_CERT_FILE``, then the system's."""
    return access.ca_file or os.environ.get("SSL_CERT_FILE") or None

"""Opening a ROOT file with uproot, and what a failure to open or read one means, in words."""

from __future__ import annotations

import os
from contextlib import suppress
from typing import Any

from highrate.data import credentials
from highrate.errors import CredentialError, HighrateError, InputFileError


def open_local(url: str, path: str) -> tuple[Any, int]:
    """uproot's file at ``path`` and its size; errors say what is wrong with the file."""
    if not os.path.exists(path):
        raise InputFileError(f"file {url!r} does not exist.")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise InputFileError(f"file {url!r} cannot be read: {err.strerror or err}.") from err
    if magic != b"root":
        found = f"it starts with {magic!r}, not b'root'" if magic else "it is empty"
        raise InputFileError(f"file {url!r}: not a ROOT file ({found}).")
    import uproot  # lazily: a run over remembered files never imports it (start-up time)

    try:
        file = uproot.open(path, object_cache=None, array_cache=None)
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "not a ROOT file" in str(err) or "magic" in str(err).lower():
            reason = "not a ROOT file (wrong magic bytes)"
        else:
            reason = f"cannot be read as ROOT, truncated or corrupt? ({reason})"
        raise InputFileError(f"file {url!r}: {reason}") from err
    size = os.path.getsize(path)
    check_complete(url, file, size)
    return file, size


def check_complete(url: str, file: Any, size: int) -> None:
    """A file shorter than its header says is truncated: caught when opened, not mid-chunk."""
    end = int(file.file.fEND)
    if size < end:
        file.close()
        raise InputFileError(f"file {url!r} is truncated: it has {size:,} bytes, its header says {end:,}.")


def release_handles(source: Any) -> None:
    """Close the server-side handles fsspec-xrootd keeps for a file once uproot lets it go.

    Left to its own finalizer they stay open until the process exits, where closing them on a
    server that has gone away prints a traceback (fsspec-xrootd catches only timeouts there).
    """
    cache = getattr(getattr(source, "_fs", None), "_readonly_filehandle_cache", None)
    if cache is not None:
        with suppress(Exception):
            cache.close_all()
        cache._cache.clear()


def remote_error(url: str, err: BaseException) -> HighrateError:
    """A remote open or read failure as one sentence that says what to do about it."""
    text = " ".join(str(err).split()) or type(err).__name__
    lowered = text.lower()
    status = getattr(err, "status", None) or getattr(err, "code", None)
    if status in (401, 403) or "401" in text.split(",")[0] or "unauthorized" in lowered or "forbidden" in lowered \
            or ("auth" in lowered and "fail" in lowered) or "permission denied" in lowered:
        found = credentials.discover_quietly().describe()
        return CredentialError(
            f"file {url!r}: the server refused access ({text[:200]}). Credentials in use: {found}. "
            f"Set BEARER_TOKEN_FILE to a valid token, or run `voms-proxy-init --voms cms` for an X.509 proxy."
        )
    if isinstance(err, FileNotFoundError) or status == 404 or "no such file" in lowered or "not found" in lowered:
        return InputFileError(f"file {url!r} does not exist on its server ({text[:200]}).")
    if isinstance(err, TimeoutError) or "timeout" in lowered or "timed out" in lowered:
        return InputFileError(f"file {url!r}: the server did not answer in time ({text[:200]}).")
    if "connect" in lowered or "refused" in lowered or "unreachable" in lowered:
        return InputFileError(f"file {url!r}: cannot connect to its server ({text[:200]}).")
    return InputFileError(f"file {url!r}: cannot be read ({type(err).__name__}: {text[:300]}).")

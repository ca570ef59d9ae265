"""Resolve ``rucio://SCOPE:NAME`` to files and every replica of each, with a local cache.

The resolution asks Rucio once (``list_replicas`` over the DID, which may be a dataset, a
container or one file), orders each file's replicas by the user's site preferences and
protocol order, and stores the answer with its time of validity, so reruns within
``cache_ttl`` do not touch Rucio. The user's own Rucio configuration and credentials are
used (``RUCIO_CONFIG`` or ``RUCIO_HOME``, userpass, token or X.509, as ``rucio`` itself does).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from highrate.base.optional import require
from highrate.data.replicas import FileLocations
from highrate.errors import CatalogError, ConfigError, CredentialError, DatasetError, did_you_mean

PREFIX = "rucio://"


@dataclass(frozen=True)
class RucioSettings:
    """How Rucio DIDs are resolved: the ``sources: rucio:`` section of a datasets file.

    Replicas on the ``prefer`` sites come first, site by site in that order; the others follow.
    Within each group the order is the protocol's place in ``schemes``, then Rucio's priority,
    then the site name, so a resolution is reproducible (Rucio itself lists sites in no fixed
    order). ``allow`` keeps only the named sites (RSEs), ``block`` drops some.
    """

    schemes: tuple[str, ...] = ("root", "davs", "https")
    prefer: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    block: tuple[str, ...] = ()
    cache_ttl: float = 6 * 3600.0  # seconds a resolution is reused
    cache_dir: str | None = None
    timeout: float = 30.0  # seconds per request to the Rucio server

    @classmethod
    def from_mapping(cls, raw: Any, *, where: str) -> RucioSettings:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: 'rucio' must be a mapping of settings.")
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                raise ConfigError(
                    f"{where}: unknown rucio setting {key!r}; known: {', '.join(sorted(known))}."
                    + did_you_mean(str(key), known)
                )
            if key in ("schemes", "prefer", "allow", "block"):
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ConfigError(f"{where}: rucio {key!r} must be a list of names.")
                value = tuple(v.upper() if key != "schemes" else v.lower() for v in value)
            elif key in ("cache_ttl", "timeout"):
                if not isinstance(value, int | float) or value < 0:
                    raise ConfigError(f"{where}: rucio {key!r} must be a number of seconds, not {value!r}.")
                value = float(value)
            values[key] = value
        return cls(**values)


def parse_did(url: str, *, where: str) -> tuple[str, str]:
    """``rucio://SCOPE:NAME`` → ``(scope, name)``."""
    did = url[len(PREFIX):]
    scope, sep, name = did.partition(":")
    if not sep or not scope or not name:
        raise DatasetError(f"{where}: {url!r} is not a Rucio DID; write it as rucio://SCOPE:NAME.")
    return scope, name


def resolve(url: str, settings: RucioSettings, *, where: str, refresh: bool = False) -> list[FileLocations]:
    """The files of a Rucio DID with their ordered replicas, from the cache when still valid."""
    scope, name = parse_did(url, where=where)
    cache = _cache_path(scope, name, settings)
    if not refresh:
        cached = _load(cache)
        if cached is not None:
            return cached
    raw = _list_replicas(scope, name, settings, where=where)
    files = [_locations(entry, settings, where=where) for entry in raw]
    if not files:
        raise DatasetError(f"{where}: Rucio DID {scope}:{name} has no files.")
    files.sort(key=lambda f: f.name)
    _store(cache, url, files, settings)
    return files


def _client(settings: RucioSettings, where: str) -> Any:
    Client = require("rucio.client", "remote", purpose=f"{where}: a Rucio dataset").Client
    rex = require("rucio.common.exception", "remote", purpose=f"{where}: a Rucio dataset")
    config = require("rucio.common.config", "remote", purpose=f"{where}: a Rucio dataset")
    config.clean_cached_config()  # rucio keeps the first config it read; RUCIO_CONFIG may have changed since
    try:
        return Client(timeout=settings.timeout)
    except rex.ConfigNotFound as err:
        raise CatalogError(
            f"{where}: no Rucio configuration found; set RUCIO_CONFIG to your rucio.cfg "
            f"(or RUCIO_HOME to the folder holding etc/rucio.cfg)."
        ) from err
    except rex.CannotAuthenticate as err:
        raise CredentialError(f"{where}: Rucio refused to authenticate: {_first_line(err)}. {_auth_hint()}") from err
    except Exception as err:
        raise CatalogError(f"{where}: cannot reach the Rucio server ({_host()}): {_first_line(err)}") from err


def _list_replicas(scope: str, name: str, settings: RucioSettings, *, where: str) -> list[dict[str, Any]]:
    client = _client(settings, where)
    from rucio.common import exception as rex

    try:
        found = list(
            client.list_replicas([{"scope": scope, "name": name}], schemes=list(settings.schemes), ignore_availability=False)
        )
        if not found:  # Rucio answers an unknown DID with no replicas: ask whether it exists
            client.get_did(scope, name)
        return found
    except rex.DataIdentifierNotFound as err:
        raise DatasetError(f"{where}: Rucio DID {scope}:{name} does not exist on {_host()}.") from err
    except rex.ScopeNotFound as err:
        raise DatasetError(f"{where}: Rucio scope {scope!r} does not exist on {_host()}.") from err
    except rex.CannotAuthenticate as err:
        raise CredentialError(f"{where}: Rucio refused to authenticate: {_first_line(err)}. {_auth_hint()}") from err
    except Exception as err:
        raise CatalogError(
            f"{where}: Rucio at {_host()} failed to list the replicas of {scope}:{name}: {_first_line(err)}"
        ) from err


def _locations(entry: Mapping[str, Any], settings: RucioSettings, *, where: str) -> FileLocations:
    did = f"{entry['scope']}:{entry['name']}"
    pfns: Mapping[str, Mapping[str, Any]] = entry.get("pfns") or {}
    candidates = []
    for pfn, info in pfns.items():
        rse = str(info.get("rse", "")).upper()
        scheme = pfn.split("://", 1)[0].lower()
        if (settings.allow and rse not in settings.allow) or rse in settings.block:
            continue
        if scheme not in settings.schemes:
            continue
        site_rank = settings.prefer.index(rse) if rse in settings.prefer else len(settings.prefer)
        rank = (site_rank, settings.schemes.index(scheme), int(info.get("priority", 0)), rse)
        candidates.append((rank, pfn, rse))
    if not candidates:
        known = sorted({str(i.get("rse")) for i in pfns.values()})
        raise DatasetError(
            f"{where}: file {did} has no usable replica (replicas on {known or 'no site'}; "
            f"schemes {list(settings.schemes)}, allow {list(settings.allow)}, block {list(settings.block)})."
        )
    candidates.sort(key=lambda c: c[0])
    adler = entry.get("adler32")
    return FileLocations(
        name=did,
        replicas=tuple(c[1] for c in candidates),
        size=int(entry["bytes"]) if entry.get("bytes") is not None else None,
        adler32=str(adler).lower().rjust(8, "0") if adler else None,
        sites=tuple(c[2] for c in candidates),
    )


def _cache_path(scope: str, name: str, settings: RucioSettings) -> Path:
    base = Path(settings.cache_dir) if settings.cache_dir else _default_cache()
    ident = json.dumps(
        [_host(), os.environ.get("RUCIO_ACCOUNT", ""), scope, name, settings.schemes, settings.prefer,
         settings.allow, settings.block]
    )
    return base / f"{hashlib.sha256(ident.encode()).hexdigest()[:24]}.json"


def _default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "highrate" / "rucio"


def _load(path: Path) -> list[FileLocations] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if doc.get("valid_until", 0) <= time.time():
        return None
    return [FileLocations(**{k: tuple(v) if isinstance(v, list) else v for k, v in f.items()}) for f in doc["files"]]


def _store(path: Path, url: str, files: list[FileLocations], settings: RucioSettings) -> None:
    now = time.time()
    doc = {"did": url, "server": _host(), "resolved_at": now, "valid_until": now + settings.cache_ttl,
           "files": [asdict(f) for f in files]}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs a new resolution next time


def _host() -> str:
    try:
        from rucio.common.config import config_get

        return str(config_get("client", "rucio_host"))
    except Exception:
        return "the configured Rucio server"


def _auth_hint() -> str:
    return ("Check the account and auth_type in your rucio.cfg, and renew your token "
            "(BEARER_TOKEN_FILE) or proxy (`voms-proxy-init --voms cms`).")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__

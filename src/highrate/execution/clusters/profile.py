"""A cluster profile: where workers run and what each batch job asks for, validated and frozen."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from highrate._version import __version__
from highrate.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Adapt:
    """Adaptive scaling between ``minimum`` and ``maximum`` jobs."""

    minimum: int = 0
    maximum: int = 1


@dataclass(frozen=True)
class ClusterProfile:
    """One named entry of a clusters YAML file.

    ``cores``, ``memory`` and ``processes`` are per batch job (or pod); scaling is either a fixed
    number of ``jobs`` or ``adapt``. ``{prefix}`` and ``{python}`` in ``python``,
    ``job_script_prologue`` and ``env`` become this interpreter's ``sys.prefix`` and
    ``sys.executable``, so a shipped profile can activate the driver's virtual environment;
    ``{version}`` (there and in ``image``) becomes highrate's version, the worker image's tag.

    Kubernetes pods also take ``service_account``, ``secrets`` (Secret name → mount path),
    ``node_selector``, ``tolerations``, ``annotations``, ``resources`` (extra requests such as
    ``nvidia.com/gpu``) and ``interlink`` (the InterLink virtual node the workers go to).

    Dask Gateway clusters take ``auth``, ``username``, ``secret_env`` (the environment variable
    holding the password or token) and ``gateway_options`` (extra cluster options of the gateway).
    """

    name: str
    kind: str
    source: str
    description: str = ""
    address: str | None = None
    cores: int = 1
    processes: int = 1
    memory: str = "2GB"
    disk: str | None = None
    walltime: str | None = None
    queue: str | None = None
    account: str | None = None
    job_script_prologue: tuple[str, ...] = ()
    job_extra_directives: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    python: str | None = None
    interface: str | None = None
    scheduler_port: int | None = None
    dashboard_port: int | None = None
    worker_ports: str | None = None
    log_directory: str | None = None
    local_directory: str | None = None
    image: str | None = None
    namespace: str | None = None
    service_account: str | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    resources: Mapping[str, str] = field(default_factory=dict)
    interlink: str | None = None
    auth: str | None = None
    username: str | None = None
    secret_env: str | None = None
    gateway_options: Mapping[str, str] = field(default_factory=dict)
    jobs: int | None = None
    adapt: Adapt | None = None
    start_timeout: float = 300.0

    @property
    def where(self) -> str:
        """'profile NAME (FILE)', for messages."""
        return f"cluster profile {self.name!r} ({self.source})"


# keys of the YAML mapping: all dataclass fields but the ones set by the loader
KEYS = frozenset(f.name for f in fields(ClusterProfile)) - {"name", "source"} | {"extends"}

_STR = ("description", "address", "memory", "disk", "walltime", "queue", "account", "python",
        "interface", "worker_ports", "log_directory", "local_directory", "image", "namespace", "kind",
        "service_account", "interlink", "auth", "username", "secret_env")
_INT = ("cores", "processes", "scheduler_port", "dashboard_port", "jobs")
_LIST = ("job_script_prologue", "job_extra_directives")
_MAPPING = ("env", "secrets", "node_selector", "annotations", "resources", "gateway_options")


def parse_profile(name: str, raw: Mapping[str, Any], source: str, *, allowed: frozenset[str]) -> ClusterProfile:
    """Check one profile's mapping (types, ranges, scaling) and expand placeholders.

    ``allowed`` is the set of keys that the profile's kind understands.
    """
    where = f"cluster profile {name!r} ({source})"
    for key, value in raw.items():
        if key not in KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}; known: {', '.join(sorted(KEYS))}."
                              + did_you_mean(str(key), KEYS))
        if key not in allowed and key != "extends" and value is not None:
            raise ConfigError(f"{where}: key {key!r} does not apply to kind {raw['kind']!r}; "
                              f"it takes: {', '.join(sorted(allowed))}.")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "extends" or value is None:
            continue
        values[key] = _convert(where, key, value)
    if "jobs" in values and "adapt" in values:
        raise ConfigError(f"{where}: give either 'jobs' (fixed) or 'adapt' (adaptive scaling), not both.")
    if "memory" in values:
        _check_bytes(where, "memory", values["memory"])
    if "disk" in values:
        _check_bytes(where, "disk", values["disk"])
    return ClusterProfile(name=name, source=source, **values)


def _convert(where: str, key: str, value: Any) -> Any:
    if key in _STR:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{where}: {key!r} must be a string, got {value!r}.")
        text = str(value)
        if key == "image":
            return text.replace("{version}", __version__)
        return _expand(text) if key in ("python", "log_directory", "local_directory") else text
    if key in _INT:
        least = 1 if key in ("cores", "processes") else 0  # port 0: any free port
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"{where}: {key!r} must be a whole number >= {least}, got {value!r}.")
        return value
    if key == "start_timeout":
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{where}: 'start_timeout' must be a positive number of seconds, got {value!r}.")
        return float(value)
    if key in _LIST:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: {key!r} must be a list of strings, got {value!r}.")
        return tuple(_expand(v) for v in value)
    if key in _MAPPING:
        if not isinstance(value, Mapping) or any(isinstance(v, Mapping | list) for v in value.values()):
            raise ConfigError(f"{where}: {key!r} must be a mapping of names to plain values, got {value!r}.")
        return {str(k): _expand(str(v)) if key == "env" else str(v) for k, v in value.items()}
    if key == "tolerations":
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise ConfigError(f"{where}: 'tolerations' must be a list of Kubernetes tolerations "
                              f"({{key, operator, value, effect}}), got {value!r}.")
        return tuple(dict(v) for v in value)
    if key == "adapt":
        return _adapt(where, value)
    raise AssertionError(key)  # pragma: no cover - every key of KEYS is handled above


def _adapt(where: str, value: Any) -> Adapt:
    if not isinstance(value, Mapping) or set(value) - {"minimum", "maximum"}:
        raise ConfigError(f"{where}: 'adapt' must be a mapping with 'minimum' and 'maximum' (jobs), got {value!r}.")
    lo, hi = value.get("minimum", 0), value.get("maximum", 1)
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi))
    if not ok or lo < 0 or hi < max(lo, 1):
        raise ConfigError(f"{where}: 'adapt' needs whole numbers 0 <= minimum <= maximum, maximum >= 1; got {dict(value)!r}.")
    return Adapt(lo, hi)


def _check_bytes(where: str, key: str, text: str) -> None:
    from dask.utils import parse_bytes

    try:
        parse_bytes(text)
    except ValueError as err:
        raise ConfigError(f"{where}: {key!r} must be an amount like '2GB' or '1500MiB', got {text!r}.") from err


def _expand(text: str) -> str:
    text = text.replace("{prefix}", sys.prefix).replace("{python}", sys.executable).replace("{version}", __version__)
    return os.path.expanduser(text)

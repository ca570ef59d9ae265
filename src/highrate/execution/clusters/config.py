"""Where profiles come from: the shipped ``profiles.yaml``, then the user's file on top.

The user's file is ``$HIGHRATE_CLUSTERS`` if set, else ``~/.config/highrate/clusters.yaml``
(``$XDG_CONFIG_HOME`` is honoured). A user profile replaces a shipped one of the same name;
``extends: NAME`` starts from another profile (or, with its own name, from the shipped one).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from highrate.errors import ConfigError, did_you_mean
from highrate.execution.clusters.kinds import kinds
from highrate.execution.clusters.profile import ClusterProfile, parse_profile

Layers = dict[str, list[tuple[Mapping[str, Any], str]]]


def shipped_file() -> Path:
    """The profiles that come with highrate."""
    return Path(str(resources.files("highrate.execution.clusters") / "profiles.yaml"))


def user_file() -> Path | None:
    """The user's clusters file, or None when there is none."""
    chosen = os.environ.get("HIGHRATE_CLUSTERS")
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ConfigError(f"HIGHRATE_CLUSTERS={chosen!r}: no such file.")
        return path
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    path = config / "highrate" / "clusters.yaml"
    return path if path.is_file() else None


def profile_files() -> list[Path]:
    """The files read, lowest precedence first."""
    user = user_file()
    return [shipped_file()] + ([user] if user else [])


def load_profiles() -> dict[str, ClusterProfile]:
    """Every profile, validated; the first bad one raises."""
    layers = _layers()
    return {name: _build(name, layers) for name in sorted(layers)}


def get_profile(name: str) -> ClusterProfile:
    """The profile called ``name``; an unknown name lists the known ones."""
    layers = _layers()
    if name not in layers:
        files = " and ".join(str(p) for p in profile_files())
        raise ConfigError(
            f"unknown cluster profile {name!r}; known: {', '.join(sorted(layers))}."
            + did_you_mean(name, layers)
            + f" Profiles are read from {files}; add your own to ~/.config/highrate/clusters.yaml"
            " or to the file named by $HIGHRATE_CLUSTERS."
        )
    return _build(name, layers)


def _layers() -> Layers:
    layers: Layers = {}
    for path in profile_files():
        for name, raw in _read(path).items():
            layers.setdefault(name, []).append((raw, str(path)))
    return layers


def _read(path: Path) -> dict[str, Mapping[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read the clusters file {str(path)!r}: {err}") from err
    if not isinstance(data, Mapping) or set(data) - {"clusters"}:
        raise ConfigError(f"clusters file {str(path)!r}: expected a single top-level key 'clusters' "
                          "holding a mapping of profile names to settings.")
    profiles = data.get("clusters") or {}
    if not isinstance(profiles, Mapping):
        raise ConfigError(f"clusters file {str(path)!r}: 'clusters' must map profile names to settings.")
    for name, raw in profiles.items():
        if not isinstance(raw, Mapping):
            raise ConfigError(f"clusters file {str(path)!r}: profile {name!r} must be a mapping of settings.")
    return {str(k): v for k, v in profiles.items()}


def _build(name: str, layers: Layers) -> ClusterProfile:
    raw, source = _merged(name, len(layers[name]) - 1, layers, ())
    where = f"cluster profile {name!r} ({source})"
    kind = raw.get("kind")
    if not isinstance(kind, str):
        raise ConfigError(f"{where}: 'kind' is missing; one of: {', '.join(kinds.names())}.")
    try:
        allowed = kinds.get(kind).keys
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err
    return parse_profile(name, raw, source, allowed=allowed)


def _merged(name: str, layer: int, layers: Layers, chain: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    """The profile's own settings over those of what it ``extends`` (recursively)."""
    raw, source = layers[name][layer]
    base_name = raw.get("extends")
    if base_name is None:
        return dict(raw), source
    link = f"{name}@{layer}"
    where = f"cluster profile {name!r} ({source})"
    if link in chain:
        raise ConfigError(f"{where}: 'extends' loops: {' → '.join((*chain, link))}.")
    if base_name == name:
        if layer == 0:
            raise ConfigError(f"{where}: extends itself, but no earlier file defines {name!r}.")
        base, _ = _merged(name, layer - 1, layers, (*chain, link))
    elif base_name in layers:
        base, _ = _merged(str(base_name), len(layers[base_name]) - 1, layers, (*chain, link))
    else:
        raise ConfigError(f"{where}: extends unknown profile {base_name!r}; known: {', '.join(sorted(layers))}."
                          + did_you_mean(str(base_name), layers))
    if {"jobs", "adapt"} & set(raw):  # the scaling is replaced as a whole
        base = {k: v for k, v in base.items() if k not in ("jobs", "adapt")}
    return {**base, **{k: v for k, v in raw.items() if k != "extends"}}, source

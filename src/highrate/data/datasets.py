"""Datasets: the YAML file that says which files an analysis runs on, kept apart from the analysis.

Files are local paths or globs, URLs (``root://``, ``https://``, ``davs://``), a mapping
``{replicas: [URL, URL, ...]}`` for one file with several copies, or ``rucio://SCOPE:NAME``,
which stands for every file of a Rucio DID with all their replicas. An optional top-level
``sources:`` section sets the read timeout, the CA bundle for HTTPS and how Rucio replicas are
chosen (:class:`highrate.data.rucio.RucioSettings`).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from highrate.data.io.sources import AccessOptions, source_for
from highrate.data.replicas import FileLocations
from highrate.data.rucio import PREFIX as RUCIO_PREFIX
from highrate.data.rucio import RucioSettings, resolve
from highrate.errors import ConfigError, DatasetError, did_you_mean

DATASET_KEYS = ("sample", "files", "tree", "metadata")
SOURCES_KEYS = ("timeout", "ca_file", "rucio")
REQUIRED_METADATA = ("is_mc",)
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Dataset:
    """One dataset: a named list of files of one sample, with its metadata (``is_mc``, year, ...)."""

    name: str
    sample: str
    files: tuple[str, ...]
    tree: str = "Events"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    locations: Mapping[str, FileLocations] = field(default_factory=dict)  # files with replicas
    access: AccessOptions = field(default_factory=AccessOptions)
    patterns: tuple[str, ...] = ()  # the local globs its files were expanded from (absolute)

    @property
    def is_mc(self) -> bool:
        return bool(self.metadata["is_mc"])

    def where(self, name: str) -> FileLocations:
        """The replicas of file ``name`` (just itself unless the datasets file gave more)."""
        return self.locations.get(name) or FileLocations.single(name)


def load_datasets(path: str | os.PathLike[str], *, refresh: bool = False) -> list[Dataset]:
    """Read and validate a datasets YAML file; relative paths are relative to the file's folder.

    ``rucio://`` entries are resolved (or taken from the cache; ``refresh`` asks Rucio again).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise DatasetError(f"cannot read datasets file {str(path)!r}: {err.strerror or err}") from err
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise DatasetError(f"datasets file {str(path)!r} is not valid YAML: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("datasets"), dict):
        hint = ""
        if isinstance(doc, dict) and "datasets" in doc:
            found = f"'datasets' is a {type(doc['datasets']).__name__}"
        elif isinstance(doc, dict):
            found = f"keys {[str(k) for k in doc]}"
            typo = next((str(k) for k in doc if did_you_mean(str(k), ["datasets"])), None)
            hint = f" Did you mean 'datasets' instead of {typo!r}?" if typo else ""
        else:
            found = "an empty file" if doc is None else f"a {type(doc).__name__}"
        raise DatasetError(
            f"datasets file {str(path)!r} must have a top-level mapping 'datasets:' (name -> entry); "
            f"found {found}.{hint}"
        )
    if not doc["datasets"]:
        raise DatasetError(f"datasets file {str(path)!r}: 'datasets:' is empty; it defines no datasets.")
    extra = [k for k in doc if k not in ("datasets", "sources")]
    if extra:
        raise DatasetError(
            f"datasets file {str(path)!r}: unknown top-level key {extra[0]!r}; only 'datasets' and "
            f"'sources' are allowed." + did_you_mean(str(extra[0]), ["datasets", "sources"])
        )
    access, rucio = parse_sources(doc.get("sources"), base=path.parent.absolute(), where=f"datasets file {str(path)!r}")
    return [
        parse_dataset(name, entry, base=path.parent.absolute(), source=str(path), access=access, rucio=rucio,
                      refresh=refresh)
        for name, entry in doc["datasets"].items()
    ]


def parse_sources(raw: Any, *, base: Path, where: str) -> tuple[AccessOptions, RucioSettings]:
    """The ``sources:`` section: read timeout, CA bundle and Rucio settings."""
    if raw is None:
        return AccessOptions(), RucioSettings()
    where = f"{where}, 'sources'"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping with keys {', '.join(SOURCES_KEYS)}.")
    _known_keys(raw, SOURCES_KEYS, where)
    timeout = raw.get("timeout", AccessOptions.timeout)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{where}: 'timeout' must be a positive number of seconds, not {timeout!r}.")
    ca = raw.get("ca_file")
    if ca is not None:
        ca = str(ca) if os.path.isabs(str(ca)) else str(base / str(ca))
        if not os.path.exists(ca):
            raise ConfigError(f"{where}: 'ca_file' {ca!r} does not exist.")
    return AccessOptions(timeout=float(timeout), ca_file=ca), RucioSettings.from_mapping(raw.get("rucio"), where=where)


def parse_dataset(
    name: str, entry: Any, *, base: Path, source: str, access: AccessOptions | None = None,
    rucio: RucioSettings | None = None, refresh: bool = False,
) -> Dataset:
    """Validate one ``datasets:`` entry, expand its file patterns and resolve its Rucio DIDs."""
    where = f"datasets file {source!r}, dataset {name!r}"
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: the entry must be a mapping with keys {', '.join(DATASET_KEYS)}.")
    _known_keys(entry, DATASET_KEYS, where)
    files = entry.get("files")
    if isinstance(files, str):
        files = [files]
    if not files or not isinstance(files, list) or not all(isinstance(f, str | dict) for f in files):
        raise DatasetError(
            f"{where}: 'files' must be a non-empty list of paths, globs, URLs, rucio://SCOPE:NAME "
            f"or {{replicas: [URL, ...]}}."
        )
    metadata = entry.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise DatasetError(f"{where}: 'metadata' must be a mapping (e.g. {{is_mc: true, year: '2018'}}).")
    for key in REQUIRED_METADATA:
        if key not in metadata:
            raise DatasetError(
                f"{where}: metadata lacks {key!r}; say 'is_mc: true' for simulation, 'is_mc: false' for data."
                + did_you_mean(key, metadata)
            )
    if not isinstance(metadata["is_mc"], bool):
        raise DatasetError(f"{where}: metadata 'is_mc' must be true or false, not {metadata['is_mc']!r}.")
    tree = entry.get("tree", "Events")
    if not isinstance(tree, str) or not tree:
        raise DatasetError(f"{where}: 'tree' must be a tree name such as 'Events'.")
    located = expand_files(files, base=base, where=where, rucio=rucio, refresh=refresh)
    return Dataset(
        name=str(name),
        sample=str(entry.get("sample", name)),
        files=tuple(f.name for f in located),
        tree=tree,
        metadata=dict(metadata),
        locations={f.name: f for f in located if f.replicas != (f.name,)},
        access=access or AccessOptions(),
        patterns=tuple(_local_path(f, base) for f in files if isinstance(f, str) and "://" not in f
                       and _GLOB_CHARS & set(f)),
    )


def expand_files(
    patterns: list[str | dict[str, Any]], *, base: Path, where: str, rucio: RucioSettings | None = None,
    refresh: bool = False,
) -> list[FileLocations]:
    """Expand local globs (sorted, relative to ``base``), replica lists and Rucio DIDs."""
    out: list[FileLocations] = []
    for pattern in patterns:
        if isinstance(pattern, dict):
            out.append(_replica_entry(pattern, base=base, where=where))
            continue
        if pattern.startswith(RUCIO_PREFIX):
            out.extend(resolve(pattern, rucio or RucioSettings(), where=where, refresh=refresh))
            continue
        if "://" in pattern:
            _check_scheme(pattern, where)  # an unknown scheme is named here, before anything runs
            if "*" in pattern and not pattern.startswith("file://"):  # '?' and '[' are URL syntax
                raise DatasetError(
                    f"{where}: {pattern!r}: wildcards are expanded for local paths only; list the remote "
                    f"files, or name their Rucio dataset as rucio://SCOPE:NAME."
                )
            out.append(FileLocations.single(pattern))
            continue
        full = _local_path(pattern, base)
        if _GLOB_CHARS & set(pattern):
            matches = sorted(glob.glob(full, recursive=True))
            if not matches:
                raise DatasetError(f"{where}: file pattern {pattern!r} matches no files (looked in {str(base)!r}).")
            out.extend(FileLocations.single(m) for m in matches)
        else:  # a missing file is reported when it is opened, so --skip-bad-files can skip it
            out.append(FileLocations.single(full))
    seen: set[str] = set()
    for f in out:
        for url in (*f.replicas, *([f.name] if f.name not in f.replicas else [])):
            key = os.path.normpath(url) if "://" not in url else url
            if key in seen:
                raise DatasetError(f"{where}: file {url!r} is listed twice (its events would be counted twice).")
            seen.add(key)
    return out


def _local_path(pattern: str, base: Path) -> str:
    return pattern if os.path.isabs(pattern) else str(base / pattern)


def _known_keys(mapping: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in known:
            raise DatasetError(
                f"{where}: unknown key {key!r}; valid keys: {', '.join(known)}." + did_you_mean(str(key), known)
            )


def _check_scheme(url: str, where: str) -> None:
    try:
        source_for(url)
    except ConfigError as err:
        raise DatasetError(f"{where}: {err}") from err
    parts = urlsplit(url)
    if parts.scheme != "file" and (not parts.hostname or parts.path.strip("/") == ""):
        missing = "host" if not parts.hostname else "file path"
        raise DatasetError(
            f"{where}: {url!r} is not a file URL: it has no {missing} (write {parts.scheme}://HOST[:PORT]/PATH)."
        )


def _replica_entry(entry: dict[str, Any], *, base: Path, where: str) -> FileLocations:
    replicas = entry.get("replicas")
    if set(entry) != {"replicas"} or not isinstance(replicas, list) or not replicas or not all(
        isinstance(r, str) for r in replicas
    ):
        raise DatasetError(f"{where}: a file given as a mapping must be {{replicas: [URL, URL, ...]}}, not {entry!r}.")
    urls = []
    for r in replicas:
        if "://" in r:
            _check_scheme(r, where)
            urls.append(r)
        else:
            urls.append(r if os.path.isabs(r) else str(base / r))
    return FileLocations(urls[0], tuple(urls))


def select(datasets: list[Dataset], names: list[str] | None) -> list[Dataset]:
    """Keep the datasets whose names are given (all if ``names`` is empty)."""
    if not names:
        return datasets
    known = {d.name: d for d in datasets}
    for n in names:
        if n not in known:
            raise DatasetError(f"unknown dataset {n!r}; known: {', '.join(known)}." + did_you_mean(n, known))
    return [known[n] for n in names]

"""Datasets: the YAML file that says which files an analysis runs on, kept apart from the analysis."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from highrate.errors import DatasetError, did_you_mean

DATASET_KEYS = ("sample", "files", "tree", "metadata")
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

    @property
    def is_mc(self) -> bool:
        return bool(self.metadata["is_mc"])


def load_datasets(path: str | os.PathLike[str]) -> list[Dataset]:
    """Read and validate a datasets YAML file; relative paths are relative to the file's folder."""
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
    extra = [k for k in doc if k != "datasets"]
    if extra:
        raise DatasetError(
            f"datasets file {str(path)!r}: unknown top-level key {extra[0]!r}; only 'datasets' is allowed."
        )
    return [
        parse_dataset(name, entry, base=path.parent.absolute(), source=str(path))
        for name, entry in doc["datasets"].items()
    ]


def parse_dataset(name: str, entry: Any, *, base: Path, source: str) -> Dataset:
    """Validate one ``datasets:`` entry and expand its file patterns."""
    where = f"datasets file {source!r}, dataset {name!r}"
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: the entry must be a mapping with keys {', '.join(DATASET_KEYS)}.")
    for key in entry:
        if key not in DATASET_KEYS:
            raise DatasetError(
                f"{where}: unknown key {key!r}; valid keys: {', '.join(DATASET_KEYS)}."
                + did_you_mean(key, DATASET_KEYS)
            )
    files = entry.get("files")
    if isinstance(files, str):
        files = [files]
    if not files or not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise DatasetError(f"{where}: 'files' must be a non-empty list of paths, globs or URLs.")
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
    return Dataset(
        name=str(name),
        sample=str(entry.get("sample", name)),
        files=tuple(expand_files(files, base=base, where=where)),
        tree=tree,
        metadata=dict(metadata),
    )


def expand_files(patterns: list[str], *, base: Path, where: str) -> list[str]:
    """Expand local globs (sorted, relative to ``base``); URLs and plain paths pass through."""
    out: list[str] = []
    for pattern in patterns:
        if "://" in pattern:
            out.append(pattern)
            continue
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        if _GLOB_CHARS & set(pattern):
            matches = sorted(glob.glob(full, recursive=True))
            if not matches:
                raise DatasetError(f"{where}: file pattern {pattern!r} matches no files (looked in {str(base)!r}).")
            out.extend(matches)
        else:
            out.append(full)  # a missing file is reported when it is opened, so --skip-bad-files can skip it
    seen: set[str] = set()
    for f in out:
        if os.path.normpath(f) in seen:
            raise DatasetError(f"{where}: file {f!r} is listed twice (its events would be counted twice).")
        seen.add(os.path.normpath(f))
    return out


def select(datasets: list[Dataset], names: list[str] | None) -> list[Dataset]:
    """Keep the datasets whose names are given (all if ``names`` is empty)."""
    if not names:
        return datasets
    known = {d.name: d for d in datasets}
    for n in names:
        if n not in known:
            raise DatasetError(f"unknown dataset {n!r}; known: {', '.join(known)}." + did_you_mean(n, known))
    return [known[n] for n in names]

"""File metadata remembered between runs: what describing a local file found, and where the
baskets (a TTree's) or pages (an RNTuple's) of each of its numeric branches are.

Opening a ROOT file means parsing its TTree with uproot: ~15 ms for the synthetic files,
0.3 s and more for real NanoAOD with 1,500+ branches, paid by the driver to describe the file
and again by every worker that reads it. The answer only changes with the file, so for local
files it is kept under the cache folder (``tree-meta/``), keyed by the file's path, size,
modification time and inode, and checked on use against the first bytes of the file's header.
With it, a worker reads numeric branches with ``pread`` alone and parses the TTree only for
what the fast path cannot read. ``HIGHRATE_CACHE=off`` turns off the folder; what this process
described it still remembers, so a run over more files than stay open (``files._MAX_OPEN``)
does not parse each file again to read it after describing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from highrate._version import __version__
from highrate.base.cachedir import cache_root, caching_enabled, store_json
from highrate.data.io.baskets import BranchLayout
from highrate.data.io.rntuple import FieldLayout, layout_doc, layout_from_doc

FORMAT = 3  # 2: RNTuple files (info["kind"], their branches' page layouts); 3: info["gen_sumw_from"]
_HEADER_BYTES = 64  # the TFile header: fBEGIN, fEND, fSeekFree, ..., fSeekInfo, the start of fUUID


@dataclass(frozen=True)
class Remembered:
    """A local file's metadata as stored: ``describe``'s answer (as plain data) and the layouts."""

    info: dict[str, Any]
    layouts: dict[str, BranchLayout | FieldLayout | None]
    header: str = ""  # the file's first bytes when it was described (hex)


_memory: dict[str, Remembered] = {}  # entries this process has loaded or stored, by key
_lock = threading.Lock()


def lookup(path: str, tree: str) -> Remembered | None:
    """What was stored for this file and tree, if the file has not changed since."""
    key = _key(path, tree)
    if key is None:
        return None
    with _lock:
        found = _memory.get(key)
    if found is not None and not _same_header(found, path):  # rewritten within the stat's resolution
        with _lock:
            _memory.pop(key, None)
        found = None
    if found is None:
        if not caching_enabled():
            return None
        found = _load(_file(key), path)
        if found is None:
            return None
        with _lock:
            _memory[key] = found
    return found


def remember(path: str, tree: str, info: dict[str, Any], layouts: dict[str, BranchLayout | FieldLayout | None]) -> None:
    """Store ``describe``'s answer and the branches' layouts, in this process and (unless
    ``HIGHRATE_CACHE=off``) in the cache folder; a failure to write costs nothing but the next
    run's parsing."""
    key = _key(path, tree)
    if key is None:
        return
    try:
        header = _header(path)
    except OSError:
        return
    entry = Remembered(info, layouts, header)
    with _lock:
        _memory[key] = entry
    if not caching_enabled():
        return
    doc = {"format": FORMAT, "header": header, "info": info,
           "layouts": {name: _encode(layout) for name, layout in layouts.items()}}
    store_json(_file(key), doc)


def _key(path: str, tree: str) -> str | None:
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return None

    raw = json.dumps([FORMAT, __version__, real, tree, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _file(key: str) -> Path:
    return cache_root() / "tree-meta" / f"{key}.json"


def _header(path: str) -> str:
    with open(path, "rb") as f:
        return f.read(_HEADER_BYTES).hex()


def _same_header(found: Remembered, path: str) -> bool:
    try:
        return _header(path) == found.header
    except OSError:
        return False


def _load(target: Path, path: str) -> Remembered | None:
    try:
        doc = json.loads(target.read_text())
        if doc["format"] != FORMAT or doc["header"] != _header(path):
            return None
        layouts = {name: _decode(value) for name, value in doc["layouts"].items()}
        return Remembered(doc["info"], layouts, doc["header"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, damaged or of another format: the file is parsed again


def _encode(layout: BranchLayout | FieldLayout | None) -> dict[str, Any] | None:
    if layout is None:
        return None
    if isinstance(layout, FieldLayout):
        return {"rntuple": layout_doc(layout)}
    return {"seeks": layout.seeks.tolist(), "nbytes": layout.nbytes.tolist(), "entries": layout.entries.tolist(),
            "dtype": layout.dtype.str, "jagged": layout.jagged, "counter": layout.counter}


def _decode(value: dict[str, Any] | None) -> BranchLayout | FieldLayout | None:
    if value is None:
        return None
    if "rntuple" in value:
        return layout_from_doc(value["rntuple"])
    return BranchLayout(
        np.asarray(value["seeks"], dtype=np.int64), np.asarray(value["nbytes"], dtype=np.int64),
        np.asarray(value["entries"], dtype=np.int64), np.dtype(value["dtype"]), bool(value["jagged"]),
        value["counter"],
    )

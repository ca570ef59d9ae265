"""A bounded folder of content-addressed entries: a key → (a small JSON header, numpy arrays).

Each entry is one file, written to a temporary name and renamed into place, so a reader sees a
whole entry or none, and two runs writing the same key at once both leave a good one. Arrays sit
64-byte aligned after the header and are memory-mapped on read, each checked against its crc32:
an entry that fails the check (a bad disk, a truncated copy) is reported, deleted and treated as
absent, never used. A hit touches the file, so eviction (oldest first) is least recently used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import tempfile
import threading
import time
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

MAGIC = b"HRSTORE1"
ALIGN = 64
SUFFIX = ".entry"
DEFAULT_MAX_BYTES = 10 * 1024**3
_PREFIX = struct.Struct("<8sQ")  # magic, header length


class CorruptEntry(UserWarning):
    """A cache entry failed its checksum: it was deleted and its content is recomputed."""


class Corrupt(ValueError):
    """Raised by :meth:`Entry.arrays` for an entry that failed its checksum (deleted, warned about)."""


@dataclass(frozen=True)
class Entry:
    """An entry's header, read and checked; its arrays are mapped and verified when asked for."""

    header: dict[str, Any]
    nbytes: int  # the file's size
    path: Path
    _specs: list[dict[str, Any]]
    _start: int

    def arrays(self) -> list[np.ndarray]:
        """The arrays, memory-mapped, each checked against its crc32; :class:`Corrupt` otherwise."""
        try:
            return _map(self.path, self._specs, self._start)
        except (OSError, ValueError) as err:
            _report(self.path, err)
            raise Corrupt(str(err)) from err


def max_bytes_from_env(default: int = DEFAULT_MAX_BYTES) -> int:
    """``HIGHRATE_CACHE_SIZE`` in bytes (suffixes K, M, G, T of 1024), else ``default``."""
    text = os.environ.get("HIGHRATE_CACHE_SIZE", "").strip()
    return parse_size(text) if text else default


def parse_size(text: str) -> int:
    """``"10G"`` → 10 GiB; a plain number is bytes."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        return int(float(number) * scale)
    except ValueError:
        raise ValueError(f"a cache size must be a number of bytes or like 500M, 10G; got {text!r}") from None


class Store:
    """Entries of several ``kind`` s under ``root/kind/ab/key.entry``, at most ``max_bytes`` in all."""

    _sizes: ClassVar[dict[Path, int]] = {}  # this process's running estimate of each store's size
    _lock = threading.Lock()

    def __init__(self, root: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def _path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{SUFFIX}"

    def get(self, kind: str, key: str) -> Entry | None:
        """The entry, verified; None when absent or corrupt (a corrupt one is deleted, with a warning)."""
        path = self._path(kind, key)
        try:
            entry = _read(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            _report(path, err)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently used is evicted first
        return entry

    def put(self, kind: str, key: str, header: dict[str, Any], arrays: Sequence[np.ndarray]) -> int:
        """Store an entry atomically; the bytes written (0 when the folder cannot take it: a
        read-only or full disk only costs a later run the work)."""
        path = self._path(kind, key)
        arrays = [np.ascontiguousarray(a) for a in arrays]
        specs, offset = [], 0
        for a in arrays:
            offset = -(-offset // ALIGN) * ALIGN
            specs.append({"dtype": a.dtype.str if a.dtype.fields is None else a.dtype.descr, "shape": list(a.shape), "offset": offset, "nbytes": a.nbytes,
                          "crc": zlib.crc32(memoryview(a).cast("B")) if a.nbytes else 0})
            offset += a.nbytes
        text = json.dumps({"meta": header, "arrays": specs}, separators=(",", ":")).encode()
        start = -(-(_PREFIX.size + len(text)) // ALIGN) * ALIGN
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("wb", dir=path.parent, suffix=".tmp", delete=False) as f:
                tmp = Path(f.name)
                f.write(_PREFIX.pack(MAGIC, len(text)) + text)
                for a, spec in zip(arrays, specs, strict=True):
                    f.seek(start + spec["offset"])
                    f.write(memoryview(a).cast("B"))
                f.truncate(start + offset)
            os.replace(tmp, path)
        except OSError:
            _unlink(tmp)
            return 0
        written = start + offset
        self._grow(written)
        return written

    def _grow(self, nbytes: int) -> None:
        """Keep the store under its limit: prune to 80% when this process's estimate passes it."""
        with self._lock:
            if self.root not in self._sizes:
                self._sizes[self.root] = sum(size for _, size, _ in self.entries())
            self._sizes[self.root] += nbytes
            over = self._sizes[self.root] > self.max_bytes
        if over:
            self.prune(int(self.max_bytes * 0.8))

    def entries(self) -> Iterator[tuple[Path, int, float]]:
        """(path, bytes, last use) of every entry."""
        if not self.root.is_dir():
            return
        for kind in self.root.iterdir():
            if not kind.is_dir():
                continue
            for path in kind.glob(f"*/*{SUFFIX}"):
                try:
                    st = path.stat()
                except OSError:  # evicted meanwhile
                    continue
                yield path, st.st_size, st.st_mtime

    def prune(self, max_bytes: int) -> tuple[int, int]:
        """Delete the least recently used entries until at most ``max_bytes`` remain: (entries, bytes) freed."""
        found = sorted(self.entries(), key=lambda e: e[2])
        total = sum(size for _, size, _ in found)
        freed = count = 0
        for path, size, _ in found:
            if total - freed <= max_bytes:
                break
            _unlink(path)
            freed += size
            count += 1
        _remove_stale_temporaries(self.root)
        with self._lock:
            self._sizes[self.root] = total - freed
        return count, freed

    def clear(self) -> None:
        """Delete every entry."""
        for kind in (self.root.iterdir() if self.root.is_dir() else ()):
            if kind.is_dir():
                shutil.rmtree(kind, ignore_errors=True)
        with self._lock:
            self._sizes.pop(self.root, None)

    def info(self) -> dict[str, Any]:
        """Bytes, entries and the oldest last use, in all and per kind."""
        kinds: dict[str, dict[str, Any]] = {}
        for path, size, used in self.entries():
            k = kinds.setdefault(path.parent.parent.name, {"entries": 0, "bytes": 0, "oldest": used})
            k["entries"] += 1
            k["bytes"] += size
            k["oldest"] = min(k["oldest"], used)
        return {
            "root": str(self.root), "max_bytes": self.max_bytes,
            "entries": sum(k["entries"] for k in kinds.values()), "bytes": sum(k["bytes"] for k in kinds.values()),
            "oldest": min((k["oldest"] for k in kinds.values()), default=None), "kinds": kinds,
        }


def _read(path: Path) -> Entry:
    size = path.stat().st_size
    with path.open("rb") as f:
        magic, length = _PREFIX.unpack(f.read(_PREFIX.size))
        if magic != MAGIC:
            raise ValueError("not a highrate cache entry")
        header = json.loads(f.read(length))
    start = -(-(_PREFIX.size + length) // ALIGN) * ALIGN
    specs = header["arrays"]
    end = max((start + s["offset"] + s["nbytes"] for s in specs), default=start)
    if end > size:
        raise ValueError(f"truncated: {size} bytes, its arrays need {end}")
    return Entry(header["meta"], size, path, specs, start)


def _map(path: Path, specs: list[dict[str, Any]], start: int) -> list[np.ndarray]:
    mapped = np.memmap(path, mode="r") if any(s["nbytes"] for s in specs) else np.zeros(0, np.uint8)
    arrays = []
    for s in specs:
        raw = mapped[start + s["offset"]: start + s["offset"] + s["nbytes"]]
        if s["nbytes"] and zlib.crc32(raw) != s["crc"]:
            raise ValueError("checksum mismatch")
        dtype = _dtype(s["dtype"])
        arrays.append(np.ndarray(s["shape"], dtype=dtype, buffer=raw) if s["nbytes"] else np.zeros(s["shape"], dtype))
    return arrays


def _dtype(spec: Any) -> np.dtype:
    """A dtype from its ``str`` or, for a record dtype, its ``descr`` (lists after JSON)."""
    return np.dtype(spec) if isinstance(spec, str) else np.dtype([tuple(field) for field in spec])


def _report(path: Path, err: Exception) -> None:
    warnings.warn(f"highrate cache: entry {path} is unreadable ({err}); it is deleted and recomputed.",
                  CorruptEntry, stacklevel=3)
    _unlink(path)


def _unlink(path: Path | None) -> None:
    if path is None:
        return
    with contextlib.suppress(OSError):
        path.unlink()


def _remove_stale_temporaries(root: Path, older_than_s: float = 3600.0) -> None:
    """Temporaries a killed writer left behind (a live writer's are younger than an hour)."""
    if not root.is_dir():
        return
    now = time.time()
    for tmp in root.glob("*/*/*.tmp"):
        try:
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
        except OSError:
            pass

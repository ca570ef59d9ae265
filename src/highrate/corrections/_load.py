"""Loading correctionlib files, once per process and file: :func:`load_correction`."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from highrate.base.inputs import note_read
from highrate.corrections._evaluate import evaluate
from highrate.errors import CorrectionError, did_you_mean


@dataclass(frozen=True)
class CorrectionInput:
    name: str
    type: str  # "real", "int" or "string"
    description: str = ""


class Correction:
    """One correction of a correctionlib file; ``evaluate`` (or calling it) applies it.

    Pickles as ``(path, name)``: a worker that unpickles it loads the file once per process.
    """

    __slots__ = ("_impl", "description", "inputs", "name", "output", "path")

    def __init__(self, path: Path, name: str, impl: Any) -> None:
        self.path = path
        self.name = name
        self._impl = impl
        self.inputs = tuple(CorrectionInput(v.name, v.type, v.description or "") for v in impl.inputs)
        self.output = CorrectionInput(impl.output.name, impl.output.type, impl.output.description or "")
        self.description = getattr(impl, "description", None) or ""

    def evaluate(self, *inputs: Any) -> Any:
        return evaluate(self, *inputs)

    __call__ = evaluate

    def signature(self) -> str:
        return "(" + ", ".join(f"{i.name}: {i.type}" for i in self.inputs) + ")"

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return load_correction, (str(self.path), self.name)

    def __repr__(self) -> str:
        return f"Correction({self.name!r}{self.signature()} from {str(self.path)!r})"


# ---------------------------------------------------------------------------------------------
# Loading, with a per-process cache
# ---------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    stamp: tuple[int, int]
    cset: Any
    corrections: dict[str, Correction]


_CACHE: dict[str, _Entry] = {}
_LOCK = threading.RLock()


def clear_cache() -> None:
    """Forget every loaded correction file (the next load reads the files again)."""
    with _LOCK:
        _CACHE.clear()


def _correctionlib() -> Any:
    try:  # imported when a correction is first loaded: it costs ~0.1 s of start-up otherwise
        import correctionlib
    except ImportError as err:  # pragma: no cover - a dependency of highrate
        raise CorrectionError(
            "corrections need correctionlib, a dependency of highrate that is missing from this environment: "
            "pip install correctionlib (or reinstall highrate)"
        ) from err
    return correctionlib


def _entry(path: str | os.PathLike[str]) -> _Entry:
    key = os.path.abspath(os.fspath(path))
    note_read(key)
    try:
        st = os.stat(key)
    except FileNotFoundError:
        raise CorrectionError(f"correction file {os.fspath(path)!r} does not exist (looked at {key}).") from None
    except OSError as err:
        raise CorrectionError(f"correction file {os.fspath(path)!r} cannot be read: {err}") from err
    stamp = (st.st_mtime_ns, st.st_size)
    entry = _CACHE.get(key)
    if entry is not None and entry.stamp == stamp:
        return entry
    with _LOCK:
        entry = _CACHE.get(key)
        if entry is not None and entry.stamp == stamp:
            return entry
        correctionlib = _correctionlib()
        try:
            cset = correctionlib.CorrectionSet.from_file(key)
        except Exception as err:
            raise CorrectionError(
                f"{os.fspath(path)!r} is not a correctionlib file: {type(err).__name__}: {err}. "
                "Correction files are correctionlib JSON (schema_version 2, optionally .json.gz)."
            ) from err
        entry = _CACHE[key] = _Entry(stamp, cset, {})
        return entry


def load_correction_set(path: str | os.PathLike[str]) -> Any:
    """The ``correctionlib.CorrectionSet`` of a file, loaded once per process."""
    return _entry(path).cset


def _names(cset: Any) -> list[str]:
    names = list(cset)
    compound = getattr(cset, "compound", None)
    return names + [n for n in (compound or ()) if n not in names]


def load_correction(path: str | os.PathLike[str], name: str) -> Correction:
    """Correction ``name`` of the correctionlib file ``path`` (the same object for the same file)."""
    entry = _entry(path)
    found = entry.corrections.get(name)
    if found is not None:
        return found
    with _LOCK:
        cset = entry.cset
        compound = getattr(cset, "compound", None)
        if name in set(cset):  # (correctionlib's `in` raises IndexError for a missing name)
            impl = cset[name]
        elif compound is not None and name in set(compound):
            impl = compound[name]
        else:
            available = _names(cset)
            raise CorrectionError(
                f"correction {name!r} is not in {os.fspath(path)!r}; the file has: "
                + (", ".join(repr(n) for n in available) or "no corrections") + "."
                + did_you_mean(name, available)
            )
        return entry.corrections.setdefault(name, Correction(Path(os.path.abspath(os.fspath(path))), name, impl))

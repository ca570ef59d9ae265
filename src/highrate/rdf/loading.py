"""RDataFrame analysis files: recognised by their top-level ``def build``, imported by path."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from highrate.errors import ConfigError

_loaded: dict[tuple[str, str], Callable[..., Any]] = {}  # (path, digest) -> build, per process


def is_rdf_analysis(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` defines ``def build`` at top level and assigns no ``analysis``.

    Read as source, not executed: a file that cannot be read or parsed is left to the columnar
    loader, which reports it.
    """
    try:
        tree = _parse(path)
    except (OSError, SyntaxError, ValueError):
        return False
    builds = any(isinstance(n, ast.FunctionDef) and n.name == "build" for n in tree.body)
    return builds and not any(_assigns_analysis(n) for n in tree.body)


def uses_vary(path: str | os.PathLike[str]) -> bool:
    """Whether the file calls ``.Vary(...)``: only then are results asked for their variations
    (``VariationsFor`` compiles a varied copy of every action, seconds per analysis)."""
    return any(isinstance(n, ast.Attribute) and n.attr == "Vary" for n in ast.walk(_parse(path)))


def _parse(path: str | os.PathLike[str]) -> ast.Module:
    source = Path(path).read_text()
    for attempt in range(3):
        try:
            return ast.parse(source, filename=str(path))
        except SystemError as err:
            # CPython 3.11 keeps the AST converter's depth counter per interpreter, not per thread
            # (gh-106905): a parse on another thread at the same moment (3.11 parses source to
            # place a traceback's carets) fails this one spuriously. Parsing again succeeds.
            if "recursion depth mismatch" not in str(err) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _assigns_analysis(node: ast.stmt) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return any(isinstance(t, ast.Name) and t.id == "analysis" for t in targets)


def source_digest(path: str | os.PathLike[str]) -> str:
    """A short hash of the file's text: the analysis hash in ``report.json``."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError as err:
        raise ConfigError(f"cannot read analysis file {str(path)!r}: {err.strerror or err}") from err


def load_build(path: str | os.PathLike[str]) -> Callable[..., Any]:
    """The file's ``build`` function; the module is executed once per process and file version."""
    path = Path(path).resolve()
    key = (str(path), source_digest(path))
    if key in _loaded:
        return _loaded[key]
    spec = importlib.util.spec_from_file_location(f"highrate_rdf_analysis_{key[1]}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # the analysis may import helper modules beside it
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise ConfigError(f"analysis file {str(path)!r}, line {err.lineno}: syntax error: {err.msg}.") from err
    except Exception as err:
        raise ConfigError(f"analysis file {str(path)!r}{_line(err, str(path))}: {type(err).__name__}: {err}. "
                          "Run with --debug for the traceback.") from err
    finally:
        sys.path.pop(0)
    build = getattr(module, "build", None)
    if not callable(build):
        raise ConfigError(f"analysis file {str(path)!r} must define 'def build(df, dataset)'.")
    _loaded[key] = build
    return build


def _line(err: BaseException, filename: str) -> str:
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == filename]
    return f", line {frames[-1].lineno}" if frames else ""

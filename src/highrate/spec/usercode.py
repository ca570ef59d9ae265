"""Blaming the user's code: the innermost frame of a traceback that is the analysis' own (not
highrate's, not the standard library's or an installed package's), and a function's definition,
each as ``file:line`` with that line's text, for a :class:`~highrate.errors.UserCodeError`; and
the file of code that ran on a worker, which lost its file name on the way there.
"""

from __future__ import annotations

import functools
import inspect
import linecache
import os
import re
import sysconfig
import traceback
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from highrate.errors import UserCodeError

_PACKAGE = Path(__file__).parents[1]  # highrate's own folder, as imported and resolved (it may be linked)
_HIGHRATE = tuple({os.path.join(str(p), "") for p in (_PACKAGE, _PACKAGE.resolve())})
DETAIL_CHARS = 300  # of the exception's message in the error; --debug shows all of it
BUG_HINT = ("This is an error in the analysis code, not in the input: it is not retried, and --skip-bad-files "
            "does not skip it. Run with --debug for the full traceback.")
TRACE_HINT = ("Stage functions must be columnar (no Python loops or branching on data values); list branches "
              "the tracer cannot see in Analysis(columns=[...]). Run with --debug for the full traceback.")


@functools.cache
def installed() -> tuple[str, ...]:
    """Where Python's standard library and installed packages live."""
    paths = sysconfig.get_paths()
    return tuple({os.path.join(paths[k], "") for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths})


def is_users(filename: str) -> bool:
    """Whether code in ``filename`` is the user's: not highrate's, the standard library's or a package's."""
    if filename.startswith("<frozen") or "site-packages" in filename or "dist-packages" in filename:
        return False
    return not filename.startswith((*_HIGHRATE, *installed()))


def user_frame(tb: Any) -> traceback.FrameSummary | None:
    """The innermost frame of traceback ``tb`` in the user's code, or None."""
    frames = [f for f in traceback.extract_tb(tb) if is_users(f.filename)]
    return frames[-1] if frames else None


def _code(function: Any) -> types.CodeType | None:
    try:
        function = inspect.unwrap(function)
    except ValueError:
        return None
    while isinstance(function, functools.partial):
        function = function.func
    return getattr(function, "__code__", None)


def definition(function: Any) -> tuple[str | None, str, str | None]:
    """(``file:line`` where ``function`` is defined, that line's text, its name), or (None, "", None)."""
    code = _code(function)
    if code is None:
        return None, "", None
    line = linecache.getline(code.co_filename, code.co_firstlineno).strip()
    return f"{code.co_filename}:{code.co_firstlineno}", line, code.co_name


def raised(stage: str, err: BaseException, *, tracing: bool = False) -> UserCodeError:
    """The :class:`UserCodeError` for ``err``, raised by the user's function run as ``stage``."""
    frame = user_frame(err.__traceback__)
    message = str(err).strip()
    first = message.splitlines()[0] if message else ""
    if len(first) > DETAIL_CHARS or len(message) > len(first):
        first = first[:DETAIL_CHARS].rstrip() + " ..."
    name = type(err).__name__
    return UserCodeError(
        stage, f"raised {name}", detail=f"{name}: {first}" if first else name, exc_type=name,
        hint=TRACE_HINT if tracing else BUG_HINT, tracing=tracing,
        location=f"{frame.filename}:{frame.lineno}" if frame else None,
        source_line=(frame.line or "").strip() if frame else "", function=frame.name if frame else None,
        traceback="".join(traceback.format_exception(type(err), err, err.__traceback__)),
    )


def returned(stage: str, function: Any, problem: str, hint: str, *, tracing: bool = False) -> UserCodeError:
    """The :class:`UserCodeError` for a user's function that returned what its stage cannot use.

    ``problem`` says what it returned ("returned float64 values"), ``hint`` what it must return."""
    location, line, name = definition(function)
    return UserCodeError(stage, problem, hint=hint, location=location, source_line=line, function=name,
                         tracing=tracing)


# Code shipped to workers by value (the analysis file and its helper modules) has lost its file
# name there: cloudpickle names it <dynamic-code>. The driver finds it again among the user's files
# by the code's name and line.
DYNAMIC = "<dynamic-code>"
_FRAME = re.compile(r'^(\s*)File "<dynamic-code>", line (\d+), in (.+)$')


def user_files(functions: Iterable[Any]) -> list[str]:
    """The user's source files of ``functions``, and of the functions and modules they name."""
    found: list[str | None] = []
    for function in functions:
        code = _code(function)
        if code is None:
            continue
        found.append(code.co_filename)
        for value in getattr(inspect.unwrap(function), "__globals__", {}).values():
            if isinstance(value, types.ModuleType):
                found.append(getattr(value, "__file__", None))
            elif isinstance(value, types.FunctionType):
                found.append(value.__code__.co_filename)
    return [f for f in dict.fromkeys(found) if f and is_users(f) and os.path.isfile(f)]


def find_file(name: str, line: int, files: Iterable[str]) -> str | None:
    """The one file among ``files`` whose code named ``name`` spans ``line``, or None."""
    matches = []
    for file in files:
        try:
            top = compile(Path(file).read_text(), file, "exec")
        except (OSError, SyntaxError, ValueError):
            continue
        stack = [top]
        while stack:
            code = stack.pop()
            stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
            if code.co_name == name and (line == code.co_firstlineno or any(x == line for *_, x in code.co_lines())):
                matches.append(file)
                break
    return matches[0] if len(matches) == 1 else None


def relocated(err: UserCodeError, files: list[str]) -> UserCodeError:
    """``err`` with each ``<dynamic-code>`` frame (its location, its traceback) put back in its file."""
    if err.location and err.location.startswith(DYNAMIC + ":") and err.function:
        line = int(err.location.rpartition(":")[2])
        file = find_file(err.function, line, files)
        if file is not None:
            err.location, err.source_line = f"{file}:{line}", linecache.getline(file, line).strip()
    out = []
    for text in err.traceback.splitlines(keepends=True):
        m = _FRAME.match(text.rstrip("\n"))
        file = find_file(m[3], int(m[2]), files) if m else None
        if m is None or file is None:
            out.append(text)
            continue
        out.append(f'{m[1]}File "{file}", line {m[2]}, in {m[3]}\n')
        source = linecache.getline(file, int(m[2])).strip()
        if source:
            out.append(f"{m[1]}  {source}\n")
    err.traceback = "".join(out)
    return err

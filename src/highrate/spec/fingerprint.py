"""A function's identity that is the same in every process: its compiled code, bound defaults
and closure values, without memory addresses or set order. The definition hash is made of these;
a stage's cache key (:func:`definition_key`) also follows the helpers and globals it reads.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import pickle
import sys
import types
from collections.abc import Callable
from typing import Any

import numpy as np


def source_text(fn: Callable[..., Any]) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return code_key(fn)



def code_key(fn: Any, depth: int = 0) -> str:
    """A function's compiled code, bound defaults and closure values, the same in every process."""
    if depth > 4:  # functions capturing functions capturing ...: enough to tell them apart
        return "..."
    if isinstance(fn, functools.partial):
        return f"partial({code_key(fn.func, depth + 1)}, {stable_repr(fn.args, depth)}, {stable_repr(fn.keywords, depth)})"
    code = getattr(fn, "__code__", None)
    if code is None:
        return f"{type(fn).__module__}.{type(fn).__qualname__}"
    cells = []
    for cell in fn.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:  # not assigned yet
            cells.append(None)
    return f"{stable_repr(code, depth)}:{stable_repr(fn.__defaults__, depth)}:{stable_repr(tuple(cells), depth)}"



def stable_repr(value: Any, depth: int = 0) -> str:
    """``repr`` without what differs between processes: memory addresses, set order."""
    if isinstance(value, types.CodeType):
        return f"code({value.co_name}, {value.co_code!r}, {stable_repr(value.co_consts, depth)}, {value.co_names!r})"
    if isinstance(value, tuple | list):
        return "(" + ", ".join(stable_repr(v, depth) for v in value) + ")"
    if isinstance(value, frozenset | set):
        return "{" + ", ".join(sorted(stable_repr(v, depth) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{stable_repr(k, depth)}: {stable_repr(v, depth)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return repr(value)
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            return f"ndarray({value.dtype}, {value.shape})"
        return f"ndarray({value.dtype.str}, {value.shape}, {_sha(np.ascontiguousarray(value).tobytes())})"
    if callable(value) and not isinstance(value, type):
        return code_key(value, depth + 1)
    name = f"{type(value).__module__}.{type(value).__qualname__}"
    try:  # an object's state, where it pickles: a changed table of numbers changes the key
        return f"{name}:{_sha(pickle.dumps(value, protocol=4))}"
    except Exception:
        return name


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def definition_key(fn: Any) -> str:
    """A stage function's cache identity: :func:`code_key`, the globals its code reads (values, and
    the definitions of the user's own helper functions, classes and module attributes, followed
    through), and the version of each library it calls into. Two processes give the same key."""
    parts: list[str] = []
    _follow(fn, parts, set())
    return _sha("\n".join(parts).encode())


def _follow(fn: Any, parts: list[str], seen: set[int]) -> None:
    if id(fn) in seen:
        return
    seen.add(id(fn))
    wrapped = getattr(fn, "__wrapped__", None)
    if wrapped is not None:  # a timing wrapper (a registered stage's version): what it runs
        _follow(wrapped, parts, seen)
        return
    if isinstance(fn, functools.partial):
        parts.append(code_key(fn))
        _follow(fn.func, parts, seen)
        return
    library = _library(fn)
    if library is not None:
        parts.append(f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}@{library}")
        return
    code = getattr(fn, "__code__", None)
    if code is None:
        if isinstance(fn, type):
            for value in vars(fn).values():
                if inspect.isfunction(value):
                    _follow(value, parts, seen)
        else:  # a callable object of the user's: its state and its class's methods
            parts.append(stable_repr(fn))
            _follow(type(fn), parts, seen)
        return
    parts.append(code_key(fn))
    scope = getattr(fn, "__globals__", {})
    names = _names(code)
    for cell in fn.__closure__ or ():  # helpers captured by a closure are followed like globals
        try:
            captured = cell.cell_contents
        except ValueError:
            continue
        if callable(captured):
            _follow(captured, parts, seen)
    for name in sorted(names):
        if name not in scope:
            continue  # a builtin, or an attribute name
        value = scope[name]
        if isinstance(value, types.ModuleType):
            if _library(value) is not None:
                parts.append(f"{name}={value.__name__}@{_library(value)}")
                continue
            for attr in sorted(names):  # helpers.select(...): the attributes the code names
                if hasattr(value, attr):
                    _value(f"{name}.{attr}", getattr(value, attr), parts, seen)
        else:
            _value(name, value, parts, seen)


def _value(name: str, value: Any, parts: list[str], seen: set[int]) -> None:
    if callable(value) and not isinstance(value, np.ufunc):
        parts.append(f"{name}:")
        _follow(value, parts, seen)
    else:
        parts.append(f"{name}={stable_repr(value)}")


def _names(code: types.CodeType) -> set[str]:
    """Global and attribute names read by ``code`` and the code nested in it (lambdas, comprehensions)."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _library(obj: Any) -> str | None:
    """The installed library ``obj`` comes from, with its version ("numpy 2.1.0"), or None for the
    user's own code. The standard library counts as one library, of the running Python."""
    module = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    if not isinstance(module, str):
        module = type(obj).__module__
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top == "builtins":
        return f"python {sys.version_info[0]}.{sys.version_info[1]}"
    package = sys.modules.get(top)
    version = getattr(package, "__version__", None)
    return f"{top} {version}" if isinstance(version, str) else None

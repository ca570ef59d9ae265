"""A function's identity that is the same in every process: its compiled code, bound defaults
and closure values, without memory addresses or set order. The definition hash is made of these.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any


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
    if callable(value):
        return code_key(value, depth + 1)
    return f"{type(value).__module__}.{type(value).__qualname__}"

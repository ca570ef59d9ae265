"""Read the needed branches of one entry range as flat numpy arrays."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import awkward as ak
import numpy as np

from highrate.data.io.baskets import (
    BranchLayout,
    FetchStats,
    basket_ranges,
    basket_span,
    branch_layout,
    decode_branch,
    fetch_remote,
    read_baskets,
    read_branch,
)
from highrate.data.io.deferred import Deferred
from highrate.data.io.files import OpenTree
from highrate.data.io.ntuple_reader import ntuple_bytes, read_ntuple
from highrate.data.io.opening import remote_error
from highrate.errors import InputFileError, MissingBranchError, did_you_mean


def read_columns(
    handle: OpenTree, branches: Sequence[str], start: int, stop: int, *, where: str
) -> tuple[dict[str, np.ndarray], int]:
    """Flat arrays (jagged branches as their flat content) and the compressed bytes read.

    Numeric flat and counter-jagged branches take the fast basket path; others go through
    uproot's ``TTree.arrays``. ``where`` names the file and entry range in errors.
    """
    arrays, nbytes, _, _ = read_columns_costed(handle, branches, start, stop, where=where)
    return arrays, nbytes


def absent(handle: OpenTree, branches: Sequence[str]) -> list[str]:
    """Those of ``branches`` the file does not have."""
    if handle.kind == "rntuple":
        return [b for b in branches if b not in handle.layouts]
    return [b for b in branches if b not in handle.layouts and b not in handle.ttree]


def read_columns_costed(
    handle: OpenTree, branches: Sequence[str], start: int, stop: int, *, where: str, defer: Sequence[str] = ()
) -> tuple[dict[str, np.ndarray], int, FetchStats, Deferred]:
    """:func:`read_columns`, plus what a remote file's fetch cost (bytes with gaps, requests),
    and the branches of ``defer`` left to decode later (:class:`Deferred`): a remote file's
    baskets are fetched now with the others, a local file's are read when decoded.

    A branch of ``defer`` that the fast path cannot read is read like the others. An RNTuple
    is read by :func:`~highrate.data.io.ntuple_reader.read_ntuple`, with the same answer.
    """
    if handle.kind == "rntuple":
        return read_ntuple(handle, branches, start, stop, where=where, defer=defer)
    missing = absent(handle, branches)
    if missing:
        raise MissingBranchError(
            f"{where}: branch {missing[0]!r} is not in the file"
            + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "." + did_you_mean(missing[0], handle.ttree.keys())
        )
    layouts = {b: _layout(handle, b) for b in branches}
    out: dict[str, np.ndarray] = {}
    slow = [b for b, layout in layouts.items() if layout is None]
    if slow:
        out.update(_read_with_uproot(handle.ttree, slow, start, stop, where))
    # counters first: jagged contents are sized by them
    ordered = sorted((b for b in branches if layouts[b] is not None), key=lambda b: layouts[b].jagged)
    counters = {layouts[b].counter for b in ordered if layouts[b].jagged}
    later = {b for b in defer if b in layouts and layouts[b] is not None and b not in counters}
    fast = [c for c in counters if c not in ordered and _layout(handle, c) is not None] + ordered
    raws, fetched = _prefetch(handle, fast, start, stop, where)
    deferred = Deferred(start, stop, where)
    for name in fast:
        if name in out:
            continue
        layout = _layout(handle, name)
        counts = None
        if layout.jagged:
            counter = layout.counter
            counts = out.get(counter)
            if counts is None:
                counts = out[counter] = _read_one(handle, counter, _layout(handle, counter), start, stop, None, where, raws)
        if name in later:
            raw = raws[name] if raws is not None else None
            deferred.add(name, partial(_late, layout, counts, raw, start, stop), handle.fd if raw is None else None)
            continue
        out[name] = _read_one(handle, name, layout, start, stop, counts, where, raws)
    nbytes = basket_ranges([_layout(handle, b) for b in fast], start, stop)
    if slow:
        nbytes += _uproot_bytes(handle.ttree, slow, start, stop)
    return {b: out[b] for b in branches if b not in deferred}, nbytes, fetched, deferred


def _late(layout: BranchLayout, counts: np.ndarray | None, raws: Any, start: int, stop: int, fd: int | None) -> np.ndarray:
    """A late branch's values, in the file's byte order; a local file's baskets are read now."""
    if raws is None:
        raws = read_baskets(layout, fd, start, stop)
    return decode_branch(layout, raws, start, stop, counts)


def _prefetch(
    handle: OpenTree, names: list[str], start: int, stop: int, where: str
) -> tuple[dict[str, Any] | None, FetchStats]:
    """For a remote file: every basket of the chunk in one batch of requests."""
    if handle.fd is not None or stop <= start:
        return None, FetchStats()
    spans = [(_layout(handle, n), *basket_span(_layout(handle, n), start, stop)) for n in names]
    try:
        fetched, stats = fetch_remote(handle.ttree.file.source, spans)
    except Exception as err:
        raise remote_error(handle.url, err) from err
    return dict(zip(names, fetched, strict=True)), stats


def _layout(handle: OpenTree, name: str) -> BranchLayout | None:
    if name not in handle.layouts:
        handle.layouts[name] = branch_layout(handle.ttree[name])
    return handle.layouts[name]


def _checked(name: str, where: str, step: Any, *args: Any) -> Any:
    """``step(*args)``; a failure becomes an InputFileError naming the branch and the chunk."""
    try:
        return step(*args)
    except Exception as err:
        raise InputFileError(f"{where}: reading branch {name!r} failed: {type(err).__name__}: {err}") from err


def _read_one(handle, name, layout, start, stop, counts, where, raws) -> np.ndarray:
    if layout is None:
        return _read_with_uproot(handle.ttree, [name], start, stop, where)[name]
    return _checked(name, where, read_branch, layout, handle.fd, start, stop, counts, None if raws is None else raws[name])


def _read_with_uproot(ttree, branches: list[str], start: int, stop: int, where: str) -> dict[str, np.ndarray]:
    import uproot

    try:
        wanted = set(branches)  # exact names: filter_name strings would be taken as globs
        raw = ttree.arrays(filter_name=wanted.__contains__, entry_start=start, entry_stop=stop, how=dict)
    except uproot.KeyInFileError as err:
        raise MissingBranchError(f"{where}: {err}") from err
    except Exception as err:
        raise InputFileError(f"{where}: reading failed: {type(err).__name__}: {err}") from err
    out: dict[str, np.ndarray] = {}
    for name, array in raw.items():
        layout = array.layout if isinstance(array, ak.Array) else ak.to_layout(array)
        if isinstance(layout, ak.contents.ListOffsetArray):
            offsets = np.asarray(layout.offsets)
            out[name] = np.asarray(layout.content.data)[offsets[0] : offsets[-1]]
        elif isinstance(layout, ak.contents.NumpyArray):
            out[name] = np.asarray(layout.data)
        else:  # e.g. fixed-size arrays (double[3]): a regular numpy array
            out[name] = ak.to_numpy(array)
    return out


def stored_bytes(handle: OpenTree, branches: Sequence[str]) -> int:
    """Compressed bytes of these branches over the whole file: what reading them all costs."""
    if handle.kind == "rntuple":
        return ntuple_bytes(handle.layouts, branches)
    present = [b for b in branches if b in handle.ttree]
    return _uproot_bytes(handle.ttree, present, 0, int(handle.ttree.num_entries))


def _uproot_bytes(ttree, branches: Sequence[str], start: int, stop: int) -> int:
    total = 0
    for name in branches:
        branch = ttree[name]
        n = branch.num_baskets
        edges = np.asarray(branch.member("fBasketEntry"))[: n + 1]
        sizes = np.asarray(branch.member("fBasketBytes"))[:n]
        first = max(int(np.searchsorted(edges, start, side="right")) - 1, 0)
        last = int(np.searchsorted(edges, stop, side="left"))
        total += int(sizes[first:last].sum())
    return total

"""Read the needed branches of one entry range as flat numpy arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import awkward as ak
import numpy as np
import uproot

from highrate.errors import InputFileError, MissingBranchError, did_you_mean


def read_columns(
    ttree: Any, branches: Sequence[str], start: int, stop: int, *, where: str
) -> tuple[dict[str, np.ndarray], int]:
    """Flat arrays (jagged branches as their flat content) and the compressed bytes read.

    All branches are requested at once so uproot coalesces the byte ranges; nothing else is
    decompressed. ``where`` names the file and entry range in errors.
    """
    missing = [b for b in branches if b not in ttree]
    if missing:
        raise MissingBranchError(
            f"{where}: branch {missing[0]!r} is not in the file"
            + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "." + did_you_mean(missing[0], ttree.keys())
        )
    try:
        raw = ttree.arrays(filter_name=list(branches), entry_start=start, entry_stop=stop, how=dict)
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
        else:
            out[name] = np.asarray(layout.data)
    return out, compressed_bytes(ttree, branches, start, stop)


def compressed_bytes(ttree: Any, branches: Sequence[str], start: int, stop: int) -> int:
    """Compressed size of the baskets that hold ``[start, stop)`` of these branches."""
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

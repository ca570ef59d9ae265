"""What each dataset of a run is to the fit: data, part of a sample, or an alternate sample.

- Data: the datasets with ``is_mc: false``.
- A sample: an MC dataset enters the sample named by its metadata ``process``, else by its
  ``sample`` (the datasets file's grouping), else its own name; the datasets of one sample are
  summed.
- An alternate sample: an MC dataset whose metadata has ``systematic: NAME`` is no sample of its
  own but a variation of its process (``process``, else ``sample``): its nominal histogram is the
  varied template. Two names ``<x>up`` and ``<x>down`` of one process (any case, optionally
  ``_`` or ``-`` before ``up``/``down``: ``scaleup``/``scaledown``, ``scale_Up``/``scale_Down``)
  are the two sides of one nuisance parameter ``<x>``; any other name is a one-sided variation
  ``NAME`` (``Up`` only), which the model symmetrizes. Several datasets with the same process
  and name are summed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from highrate.errors import ConfigError

_SIDE = re.compile(r"^(?P<base>.+?)[_-]?(?P<side>up|down)$", re.IGNORECASE)


@dataclass(frozen=True)
class Role:
    """``kind`` is ``"data"``, ``"sample"`` or ``"alternate"``; ``sample`` the sample it enters or
    varies; ``variation`` (alternates only) the template it stands for, ``"{nuisance}Up|Down"``."""

    kind: str
    sample: str = ""
    variation: str = ""


def _process(name: str, meta: dict[str, Any]) -> str:
    return str(meta.get("process") or meta.get("sample") or name)


def roles(metadata: dict[str, dict[str, Any]]) -> dict[str, Role]:
    """The :class:`Role` of every dataset of ``metadata`` (dataset -> its metadata)."""
    out: dict[str, Role] = {}
    names: dict[str, set[str]] = {}  # process -> the systematic names of its alternates
    for ds, meta in metadata.items():
        if not meta.get("is_mc"):
            out[ds] = Role("data")
        elif meta.get("systematic"):
            names.setdefault(_process(ds, meta), set()).add(str(meta["systematic"]))
        else:
            out[ds] = Role("sample", _process(ds, meta))
    variations = {process: alternate_variations(sorted(found)) for process, found in names.items()}
    for ds, meta in metadata.items():
        if meta.get("is_mc") and meta.get("systematic"):
            process = _process(ds, meta)
            out[ds] = Role("alternate", process, variations[process][str(meta["systematic"])])
    return out


def alternate_variations(names: list[str]) -> dict[str, str]:
    """``{systematic name: template name}`` for the alternate samples of one process.

    >>> alternate_variations(["scaleup", "scaledown", "PS_var", "pileup"])
    {'PS_var': 'PS_varUp', 'pileup': 'pileupUp', 'scaledown': 'scaleDown', 'scaleup': 'scaleUp'}
    """
    sides: dict[str, dict[str, str]] = {}  # base -> side (up/down) -> name
    for name in names:
        m = _SIDE.match(name)
        if m:
            sides.setdefault(m["base"], {})[m["side"].lower()] = name
    out = {}
    for name in names:
        m = _SIDE.match(name)
        paired = m is not None and set(sides[m["base"]]) == {"up", "down"}
        out[name] = f"{m['base']}{m['side'].capitalize()}" if paired and m else f"{name}Up"
    if len(set(out.values())) != len(out):
        raise ConfigError(f"alternate samples {names}: two names give the same variation ({out}).")
    return dict(sorted(out.items()))

"""The analysis definition: skim, objects, preselection, categories, weights, histograms.

The vocabulary is PocketCoffea's. Cuts, objects, quantities and weights are plain functions of
the events (an awkward record array with NanoAOD collections: ``events.Muon.pt``,
``events.HLT.IsoMu24``, ``events.PV.npvsGood``). A function takes ``(events)``,
``(events, params)`` or ``(events, params, meta)`` where ``meta`` is the dataset's metadata
(``is_mc``, ``year``, ``dataset``, ``sample``, ...).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import os
import re
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle

from highrate.errors import ConfigError, did_you_mean

QUANTITY_PATTERN = re.compile(r"^(?P<base>[A-Za-z_]\w*)(?:\.(?P<field>[A-Za-z_]\w*))?(?:\[(?P<index>\d+)\])?$")


def _positional(function: Callable[..., Any]) -> int:
    """How many positional arguments ``function`` takes (4 for ``*args``)."""
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 4
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])


def _arity(function: Callable[..., Any], what: str) -> int:
    if not callable(function):
        raise ConfigError(f"{what}: expected a function of the events, got {type(function).__name__}.")
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 1
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 3
    if not 1 <= len(positional) <= 3:
        raise ConfigError(f"{what}: the function must take (events), (events, params) or (events, params, meta).")
    return len(positional)


def call_with(function: Callable[..., Any], nargs: int, events: Any, params: Any, meta: Any) -> Any:
    """Call a stage function with as many of (events, params, meta) as it takes."""
    if nargs == 1:
        return function(events)
    return function(events, params) if nargs == 2 else function(events, params, meta)


@dataclass(frozen=True)
class _Step:
    """A named function of the events with fixed parameters."""

    name: str
    function: Callable[..., Any]
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"{type(self).__name__} needs a non-empty name, got {self.name!r}.")
        object.__setattr__(self, "_nargs", _arity(self.function, f"{type(self).__name__} {self.name!r}"))

    def __call__(self, events: Any, meta: Mapping[str, Any]) -> Any:
        return call_with(self.function, self._nargs, events, self.params, meta)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Cut(_Step):
    """A named selection: ``function`` returns a boolean mask per event."""


@dataclass(frozen=True)
class Weight(_Step):
    """A per-event weight factor (or a number, e.g. a normalisation); ``mc_only`` weights are 1
    for data. With ``varied=True`` the function returns ``(nominal, up, down)`` and histograms
    are also filled as ``{name}Up`` / ``{name}Down`` with that factor replaced."""

    mc_only: bool = True
    varied: bool = False


@dataclass(frozen=True)
class ShapeVariation:
    """A systematic shift of objects (jet energy scale, resolution, ...), up and down.

    ``function(events, direction)``, ``function(events, direction, meta)`` or
    ``function(events, direction, meta, shared)`` with direction ``"up"`` or ``"down"`` returns
    a mapping of event fields to replace, e.g. ``{"Jet": shifted_jets, "MET": shifted_met}``.
    Objects, preselection, quantities, categories and weights are then recomputed on the
    shifted events (objects only when they depend on a replaced field) and histograms filled as
    ``{name}Up`` / ``{name}Down``. ``shared`` is one dict per chunk for both directions: work
    they have in common (an uncertainty, smearing numbers) is computed once and kept there.
    """

    name: str
    function: Callable[..., Any]
    mc_only: bool = True

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_]\w*", self.name or ""):
            raise ConfigError(f"shape variation name {self.name!r} must be a simple identifier.")
        n = _positional(self.function)
        if not callable(self.function) or not 2 <= n <= 4:
            raise ConfigError(
                f"shape variation {self.name!r}: the function takes (events, direction[, meta[, shared]])."
            )
        object.__setattr__(self, "_nargs", n)

    def __call__(
        self, events: Any, direction: str, meta: Mapping[str, Any], shared: dict[str, Any] | None = None
    ) -> Mapping[str, Any]:
        args = (events, direction, meta, {} if shared is None else shared)[: self._nargs]  # type: ignore[attr-defined]
        return self.function(*args)


@dataclass(frozen=True)
class Axis:
    """A histogram axis filled from a named quantity.

    ``quantity`` is one of: a quantity defined in ``Analysis.quantities`` (``"mll"``), an event
    field (``"genWeight"``, ``"MET.pt"``), every object of a collection (``"JetGood.pt"``), the
    n-th object (``"MuonGood.pt[0]"``; events without it do not fill), or a multiplicity
    (``"nJetGood"``).
    """

    quantity: str
    bins: int | None = None
    start: float | None = None
    stop: float | None = None
    edges: tuple[float, ...] | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if not QUANTITY_PATTERN.match(self.quantity):
            raise ConfigError(
                f"axis quantity {self.quantity!r} is not of the form 'name', 'Coll.field' or 'Coll.field[i]'."
            )
        if self.edges is None and (self.bins is None or self.start is None or self.stop is None):
            raise ConfigError(f"axis {self.quantity!r}: give bins, start, stop (regular) or edges (variable).")
        if self.edges is None and (self.bins <= 0 or not self.stop > self.start):  # type: ignore[operator]
            raise ConfigError(f"axis {self.quantity!r}: need bins > 0 and stop > start.")


@dataclass(frozen=True)
class Histogram:
    """A histogram with weighted storage; ``axes`` are filled from named quantities."""

    name: str
    axes: tuple[Axis, ...]

    def __init__(self, name: str, axes: Sequence[Axis] | Axis) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "axes", (axes,) if isinstance(axes, Axis) else tuple(axes))
        if not re.fullmatch(r"[A-Za-z_][\w\-]*", name):
            raise ConfigError(f"histogram name {name!r} must be a simple identifier (it becomes a ROOT path).")
        if not self.axes:
            raise ConfigError(f"histogram {name!r} has no axes.")


@dataclass(frozen=True)
class Columns:
    """Per-event columns saved for the events of some categories, one Parquet file per chunk.

    ``fields`` maps an output column to a quantity (same names as histogram axes; a missing
    n-th object gives NaN, a whole collection a list). Each file also has ``weight`` (the
    nominal event weight) and one boolean ``category_{name}`` column per category.
    """

    fields: Mapping[str, str]
    categories: tuple[str, ...] | None = None  # None: every category

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", dict(self.fields))
        if self.categories is not None:
            object.__setattr__(self, "categories", tuple(self.categories))
        for name, quantity in self.fields.items():
            if not QUANTITY_PATTERN.match(quantity):
                raise ConfigError(f"column {name!r}: quantity {quantity!r} is not 'name', 'Coll.field' or 'Coll.field[i]'.")


@dataclass(frozen=True)
class Analysis:
    """A complete analysis definition, executed in this order per chunk:

    skim → objects → preselection → quantities → categories → weights → histograms.
    """

    skim: tuple[Cut, ...] = ()
    objects: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    preselection: tuple[Cut, ...] = ()
    categories: Mapping[str, tuple[Cut, ...]] = field(default_factory=lambda: {"baseline": ()})
    weights: tuple[Weight, ...] = ()
    quantities: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    histograms: tuple[Histogram, ...] = ()
    variations: tuple[ShapeVariation, ...] = ()
    subsamples: Mapping[str, Mapping[str, tuple[Cut, ...]]] = field(default_factory=dict)  # sample → parts
    save_columns: Columns | None = None
    columns: tuple[str, ...] = ()  # extra branches to read, for code the tracer cannot see through
    name: str = "analysis"
    source: str | None = None  # the analysis file's text, for the definition hash

    def __post_init__(self) -> None:
        for attr in ("skim", "preselection", "weights", "histograms", "variations", "columns"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        cats = {k: tuple(v) if isinstance(v, list | tuple) else (v,) for k, v in dict(self.categories).items()}
        object.__setattr__(self, "categories", cats)
        object.__setattr__(self, "objects", dict(self.objects))
        object.__setattr__(self, "quantities", dict(self.quantities))
        object.__setattr__(self, "subsamples", {
            sample: {part: tuple(cuts) for part, cuts in parts.items()} for sample, parts in dict(self.subsamples).items()
        })
        self._validate()

    def _validate(self) -> None:
        def unique(kind: str, names: list[str]) -> None:
            seen: set[str] = set()
            for n in names:
                if n in seen:
                    raise ConfigError(f"analysis {self.name!r}: {kind} {n!r} is defined twice.")
                seen.add(n)

        for kind, items, cls in (("skim cut", self.skim, Cut), ("preselection cut", self.preselection, Cut),
                                 ("weight", self.weights, Weight), ("histogram", self.histograms, Histogram),
                                 ("shape variation", self.variations, ShapeVariation)):
            for item in items:
                if not isinstance(item, cls):
                    raise ConfigError(f"analysis {self.name!r}: {kind} {item!r} must be a {cls.__name__}.")
            unique(kind, [i.name for i in items])
        for sample, parts in self.subsamples.items():
            if not parts:
                raise ConfigError(f"analysis {self.name!r}: subsamples of {sample!r} is empty.")
            for part, cuts in parts.items():
                if not all(isinstance(c, Cut) for c in cuts):
                    raise ConfigError(f"analysis {self.name!r}: subsample {sample!r}/{part!r} must be a list of Cut.")
        for cat, cuts in self.categories.items():
            for c in cuts:
                if not isinstance(c, Cut):
                    raise ConfigError(f"analysis {self.name!r}: category {cat!r} must be a list of Cut, got {c!r}.")
        for kind, mapping in (("object", self.objects), ("quantity", self.quantities)):
            for key, fn in mapping.items():
                _arity(fn, f"{kind} {key!r}")
        clash = {w.name for w in self.weights if w.varied} & {v.name for v in self.variations}
        if clash:
            raise ConfigError(f"analysis {self.name!r}: {sorted(clash)[0]!r} is both a weight and a shape variation.")
        if self.save_columns is not None:
            for cat in self.save_columns.categories or ():
                if cat not in self.categories:
                    raise ConfigError(f"analysis {self.name!r}: save_columns names unknown category {cat!r}."
                                      + did_you_mean(cat, self.categories))
        if not self.categories:
            raise ConfigError(f"analysis {self.name!r}: define at least one category (e.g. {{'baseline': []}}).")

    def hash(self) -> str:
        """A stable hash of the definition: its structure (names, parameters, histograms and each
        function's code) and, for an analysis loaded from a file, the file and its helper modules.
        An analysis derived from a loaded one (``dataclasses.replace``) hashes differently, so it
        never reuses the loaded one's remembered trace or checkpoints."""
        h = hashlib.sha256()
        if self.source is not None:
            h.update(self.source.encode())
        # with the file's text hashed, the functions' compiled code is enough (and much cheaper)
        fn_text = _code_key if self.source is not None else _source_text
        for cut in (*self.skim, *self.preselection):
            h.update(f"cut:{cut.name}:{_stable(cut.params)}:{fn_text(cut.function)}".encode())
        for w in self.weights:
            h.update(f"weight:{w.name}:{_stable(w.params)}:{w.mc_only}:{w.varied}:{fn_text(w.function)}".encode())
        for v in self.variations:
            h.update(f"variation:{v.name}:{v.mc_only}:{fn_text(v.function)}".encode())
        for kind, mapping in (("object", self.objects), ("quantity", self.quantities)):
            for key, fn in mapping.items():
                h.update(f"{kind}:{key}:{fn_text(fn)}".encode())
        for cat, cuts in (*self.categories.items(), *((f"{s}/{p}", c) for s, ps in self.subsamples.items()
                                                       for p, c in ps.items())):
            for c in cuts:
                h.update(f"category:{cat}:{c.name}:{_stable(c.params)}:{fn_text(c.function)}".encode())
        h.update(repr((self.histograms, self.columns, self.save_columns)).encode())
        return h.hexdigest()[:16]


def _source_text(fn: Callable[..., Any]) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return _code_key(fn)


def _code_key(fn: Any, depth: int = 0) -> str:
    """A function's compiled code, bound defaults and closure values, the same in every process."""
    if depth > 4:  # functions capturing functions capturing ...: enough to tell them apart
        return "..."
    if isinstance(fn, functools.partial):
        return f"partial({_code_key(fn.func, depth + 1)}, {_stable(fn.args, depth)}, {_stable(fn.keywords, depth)})"
    code = getattr(fn, "__code__", None)
    if code is None:
        return f"{type(fn).__module__}.{type(fn).__qualname__}"
    cells = []
    for cell in fn.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:  # not assigned yet
            cells.append(None)
    return f"{_stable(code, depth)}:{_stable(fn.__defaults__, depth)}:{_stable(tuple(cells), depth)}"


def _stable(value: Any, depth: int = 0) -> str:
    """``repr`` without what differs between processes: memory addresses, set order."""
    if isinstance(value, types.CodeType):
        return f"code({value.co_name}, {value.co_code!r}, {_stable(value.co_consts, depth)}, {value.co_names!r})"
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_stable(v, depth) for v in value) + ")"
    if isinstance(value, frozenset | set):
        return "{" + ", ".join(sorted(_stable(v, depth) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_stable(k, depth)}: {_stable(v, depth)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return repr(value)
    if callable(value):
        return _code_key(value, depth + 1)
    return f"{type(value).__module__}.{type(value).__qualname__}"


def load_analysis(path: str | os.PathLike[str]) -> Analysis:
    """Import an analysis file and return its module-level ``analysis`` object.

    The module is executed under a private name (not in ``sys.modules``), so its functions travel
    to workers by value and the same file can be loaded twice without clashing.
    """
    path = Path(path)
    try:
        source = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read analysis file {str(path)!r}: {err.strerror or err}") from err
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"highrate_analysis_{digest}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    folder = path.parent.resolve()
    sys.path.insert(0, str(folder))  # let the analysis import its helper modules
    # re-import them, so that an edit is seen and a same-named module of another folder does not
    # shadow them; modules of the folder the analysis does not import are put back as they were
    # (the program that loads it may be one of them)
    set_aside = {}
    for name in [m.__name__ for m in _local_modules(folder)] + [f.stem for f in folder.glob("*.py")]:
        if name.split(".")[0] != "highrate" and name in sys.modules:
            set_aside[name] = sys.modules.pop(name)
    try:
        spec.loader.exec_module(module)
    except ConfigError as err:
        raise ConfigError(f"analysis file {str(path)!r}: {err}") from err
    except SyntaxError as err:
        raise ConfigError(f"analysis file {str(path)!r}, line {err.lineno}: syntax error: {err.msg}.") from err
    except Exception as err:  # an import or name error while executing the file
        line = _user_line(err, str(path))
        raise ConfigError(
            f"analysis file {str(path)!r}{line}: {type(err).__name__}: {err}. Run with --debug for the traceback."
        ) from err
    finally:
        sys.path.pop(0)
        helpers = _local_modules(folder)
        for name, previous in set_aside.items():
            sys.modules.setdefault(name, previous)
    for helper in helpers:  # workers need not have the analysis folder: ship its modules by value
        cloudpickle.register_pickle_by_value(helper)
    # the helpers' sources are part of the definition: editing one must not reuse checkpoints
    source += "".join(f"\n# module {m.__name__}\n{Path(m.__file__).read_text()}" for m in helpers)
    found = getattr(module, "analysis", None)
    if not isinstance(found, Analysis):
        names = [k for k, v in vars(module).items() if isinstance(v, Analysis)]
        hint = f" (found Analysis objects named {names}; rename one to 'analysis')" if names else ""
        raise ConfigError(f"analysis file {str(path)!r} must define 'analysis = Analysis(...)'{hint}.")
    from dataclasses import replace

    return replace(found, source=source, name=found.name if found.name != "analysis" else path.stem)


def _local_modules(folder: Path) -> list[Any]:
    """Imported modules whose files lie below ``folder``: the analysis' own helper modules."""
    found = []
    for name, module in sorted(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or name.split(".")[0] in ("highrate", "__main__") or "site-packages" in file:
            continue
        if file.startswith(_installed()) and not str(folder).startswith(_installed()):
            continue  # the standard library and installed packages (resolving their paths costs ~20 ms)
        if Path(file).resolve().is_relative_to(folder):
            found.append(module)
    return found


@functools.cache
def _installed() -> tuple[str, ...]:
    """Where Python's standard library and installed packages live."""
    import sysconfig

    paths = sysconfig.get_paths()
    return tuple({os.path.join(paths[k], "") for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths})


def _user_line(err: BaseException, filename: str) -> str:
    """', line N' of the innermost frame in the analysis file, or ''."""
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == filename]
    return f", line {frames[-1].lineno}" if frames else ""


def resolve_quantity_name(quantity: str, *, fields: Sequence[str], quantities: Sequence[str], where: str) -> None:
    """Check that ``quantity``'s base name exists; raise with close matches if not."""
    m = QUANTITY_PATTERN.match(quantity)
    assert m is not None
    base = m["base"]
    known = [*quantities, *fields, *(f"n{f}" for f in fields)]
    if base not in known:
        from highrate.errors import UnknownQuantityError

        raise UnknownQuantityError(f"{where}: unknown quantity {base!r}." + did_you_mean(base, known))

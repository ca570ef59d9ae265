"""The analysis definition: skim, objects, preselection, categories, weights, histograms.

The vocabulary is PocketCoffea's. Cuts, objects, quantities and weights are plain functions of
the events (an awkward record array with NanoAOD collections: ``events.Muon.pt``,
``events.HLT.IsoMu24``, ``events.PV.npvsGood``). A function takes ``(events)``,
``(events, params)`` or ``(events, params, meta)`` where ``meta`` is the dataset's metadata
(``is_mc``, ``year``, ``dataset``, ``sample``, ...).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from highrate.devices.loading import load_stages
from highrate.devices.registry import Stage, StageTimes, is_stage_name, lookup
from highrate.errors import ConfigError, did_you_mean
from highrate.spec.fingerprint import code_key, definition_key, source_text, stable_repr
from highrate.spec.histograms import Columns, Histogram
from highrate.spec.steps import Cut, ShapeVariation, Weight, arity, fill_arity


@dataclass(frozen=True)
class Analysis:
    """A complete analysis definition, executed in this order per chunk:

    skim → objects → preselection → quantities → categories → weights → histograms.

    Each stage sees what the stages before it defined as event fields: preselection cuts the
    objects (``ev.MuonGood``), category, subsample and weight functions also the quantities
    (``ev.mll``); histograms name either.
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
    # extra branches to read, for code the tracer cannot see through; a mapping gives each a value
    # for the files that lack it ({"Jet_puId": 0}: every jet of such a file has puId 0)
    columns: tuple[str, ...] | Mapping[str, Any] = ()
    name: str = "analysis"
    source: str | None = None  # the analysis file's text, for the definition hash
    # stages with CPU and GPU versions that cuts, objects, ... name ("zmumu::muon_selection"): a
    # stages YAML file, a list of them, or a mapping of name to Stage; the registry is asked after
    stages: str | os.PathLike[str] | tuple[str | os.PathLike[str], ...] | Mapping[str, Stage] = ()

    def __post_init__(self) -> None:
        for attr in ("skim", "preselection", "weights", "histograms", "variations"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        columns = dict(self.columns) if isinstance(self.columns, Mapping) else tuple(self.columns)
        object.__setattr__(self, "columns", columns)
        cats = {k: tuple(v) if isinstance(v, list | tuple) else (v,) for k, v in dict(self.categories).items()}
        object.__setattr__(self, "categories", cats)
        object.__setattr__(self, "objects", dict(self.objects))
        object.__setattr__(self, "quantities", dict(self.quantities))
        object.__setattr__(self, "subsamples", {
            sample: {part: tuple(cuts) for part, cuts in parts.items()} for sample, parts in dict(self.subsamples).items()
        })
        self._resolve_stages()
        self._validate()

    def _resolve_stages(self) -> None:
        """Load the stages files, and put each registered stage in the place of its name."""
        table = self.stages
        if not isinstance(table, Mapping):
            table = {}
            for path in (self.stages,) if isinstance(self.stages, str | os.PathLike) else self.stages:
                table.update(load_stages(path, register_them=False))
        object.__setattr__(self, "stages", dict(table))

        def resolve(function: Any, where: str) -> Any:
            return lookup(function, f"analysis {self.name!r}: {where}", table) if is_stage_name(function) else function

        for name, value in self._with_functions(resolve).items():
            object.__setattr__(self, name, value)

    def _with_functions(self, swap: Callable[[Any, str], Any]) -> dict[str, Any]:
        """The fields that hold user functions, each function passed through ``swap(function,
        where)``; a cut that several categories share stays one cut."""
        done: dict[int, Any] = {}

        def step(item: Any, where: str) -> Any:
            if not isinstance(item, Cut | Weight | ShapeVariation):
                return item  # _validate says what is wrong with it
            if id(item) not in done:
                new = swap(item.function, f"{where} {item.name!r}")
                done[id(item)] = item if new is item.function else replace(item, function=new)
            return done[id(item)]

        def filled_by(h: Any) -> Any:
            if not isinstance(h, Histogram) or h.fill is None:
                return h
            new = swap(h.fill, f"histogram {h.name!r}, fill")
            return h if new is h.fill else replace(h, fill=new)

        return {
            "skim": tuple(step(c, "skim cut") for c in self.skim),
            "preselection": tuple(step(c, "preselection cut") for c in self.preselection),
            "categories": {k: tuple(step(c, f"category {k!r}, cut") for c in cs) for k, cs in self.categories.items()},
            "subsamples": {s: {p: tuple(step(c, f"subsample {s!r}/{p!r}, cut") for c in cs) for p, cs in parts.items()}
                           for s, parts in self.subsamples.items()},
            "weights": tuple(step(w, "weight") for w in self.weights),
            "variations": tuple(step(v, "shape variation") for v in self.variations),
            "objects": {k: swap(f, f"object {k!r}") for k, f in self.objects.items()},
            "quantities": {k: swap(f, f"quantity {k!r}") for k, f in self.quantities.items()},
            "histograms": tuple(filled_by(h) for h in self.histograms),
        }

    def on_device(self, device: str, times: StageTimes | None = None) -> Analysis:
        """This analysis with each registered stage replaced by its version for ``device`` (``cpu``
        or ``gpu``; a stage without that version keeps its CPU one), each call's cost added to
        ``times``; the analysis itself when it names no registered stage."""
        found: list[Stage] = []

        def note(function: Any, _: str) -> Any:
            if isinstance(function, Stage):
                found.append(function)
            return function

        self._with_functions(note)
        if not found:
            return self
        return replace(self, **self._with_functions(lambda f, _: f.bind(device, times) if isinstance(f, Stage) else f))

    @property
    def column_defaults(self) -> dict[str, Any]:
        """The values ``columns`` gives for branches that some files lack."""
        return {k: v for k, v in self.columns.items() if v is not None} if isinstance(self.columns, dict) else {}

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
                arity(fn, f"{kind} {key!r}")
        for h in self.histograms:
            if h.fill is not None:
                fill_arity(h.fill, f"histogram {h.name!r}, fill")
        clash = {w.name for w in self.weights if w.varied} & {v.name for v in self.variations}
        if clash:
            raise ConfigError(f"analysis {self.name!r}: {sorted(clash)[0]!r} is both a weight and a shape variation.")
        for h in self.histograms:
            for cat in h.categories or ():
                if cat not in self.categories:
                    raise ConfigError(f"analysis {self.name!r}: histogram {h.name!r} names unknown category {cat!r}."
                                      + did_you_mean(cat, self.categories))
        if self.save_columns is not None:
            for cat in self.save_columns.categories or ():
                if cat not in self.categories:
                    raise ConfigError(f"analysis {self.name!r}: save_columns names unknown category {cat!r}."
                                      + did_you_mean(cat, self.categories))
        if not self.categories:
            raise ConfigError(f"analysis {self.name!r}: define at least one category (e.g. {{'baseline': []}}).")

    def functions(self) -> list[Callable[..., Any]]:
        """Every user function of the definition: cuts, objects, quantities, weights, variations."""
        cuts = (*self.skim, *self.preselection, *(c for cs in self.categories.values() for c in cs),
                *(c for parts in self.subsamples.values() for cs in parts.values() for c in cs))
        found = [*(c.function for c in cuts), *self.objects.values(), *self.quantities.values(),
                 *(w.function for w in self.weights), *(v.function for v in self.variations),
                 *(h.fill for h in self.histograms if h.fill is not None)]
        return [v for f in found for v in (f.implementations.values() if isinstance(f, Stage) else (f,))]

    def hash(self) -> str:
        """A stable hash of the definition: its structure (names, parameters, histograms and each
        function's code) and, for an analysis loaded from a file, the file and its helper modules.
        An analysis derived from a loaded one (``dataclasses.replace``) hashes differently, so it
        never reuses the loaded one's remembered trace or checkpoints."""
        h = hashlib.sha256()
        if self.source is not None:
            h.update(self.source.encode())
        # with the file's text hashed, the functions' compiled code is enough (and much cheaper)
        text = code_key if self.source is not None else source_text

        def fn_text(fn: Any) -> str:  # a registered stage: its name and every version's code
            return fn.key(text) if isinstance(fn, Stage) else text(fn)

        for cut in (*self.skim, *self.preselection):
            h.update(f"cut:{cut.name}:{stable_repr(cut.params)}:{fn_text(cut.function)}".encode())
        for w in self.weights:
            h.update(f"weight:{w.name}:{stable_repr(w.params)}:{w.mc_only}:{w.varied}:{fn_text(w.function)}".encode())
        for v in self.variations:
            h.update(f"variation:{v.name}:{v.mc_only}:{fn_text(v.function)}".encode())
        for kind, mapping in (("object", self.objects), ("quantity", self.quantities)):
            for key, fn in mapping.items():
                h.update(f"{kind}:{key}:{fn_text(fn)}".encode())
        for cat, cuts in (*self.categories.items(), *((f"{s}/{p}", c) for s, ps in self.subsamples.items()
                                                       for p, c in ps.items())):
            for c in cuts:
                h.update(f"category:{cat}:{c.name}:{stable_repr(c.params)}:{fn_text(c.function)}".encode())
        for hist in self.histograms:
            if hist.fill is not None:
                h.update(f"fill:{hist.name}:{fn_text(hist.fill)}".encode())
        h.update(repr((self.histograms, self.columns, self.save_columns)).encode())
        return h.hexdigest()[:16]

    def reads_key(self) -> str:
        """What decides the branches the analysis reads and what its steps touch (the tracing's
        answer): each step's name, parameters and definition (:func:`definition_key`: its code,
        the helpers and globals it reads), and the quantities histograms and saved columns take,
        not their binning: a re-binned histogram or an edit elsewhere in the file keeps it."""

        def fn_key(fn: Any) -> str:
            return fn.key(definition_key) if isinstance(fn, Stage) else definition_key(fn)

        cuts = [(where, c.name, stable_repr(c.params), fn_key(c.function)) for where, cs in (
            ("skim", self.skim), ("presel", self.preselection), *self.categories.items(),
            *((f"{s}/{p}", c) for s, ps in self.subsamples.items() for p, c in ps.items())) for c in cs]
        parts = (
            cuts,
            [(w.name, stable_repr(w.params), w.mc_only, w.varied, fn_key(w.function)) for w in self.weights],
            [(v.name, v.mc_only, fn_key(v.function)) for v in self.variations],
            [(k, fn_key(f)) for k, f in self.objects.items()], [(k, fn_key(f)) for k, f in self.quantities.items()],
            sorted({a.quantity for h in self.histograms for a in h.axes}),
            repr((self.columns, self.save_columns)),
        )
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]

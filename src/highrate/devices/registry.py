"""Stages with one implementation per device, by name: ``@stage("zmumu::muon_selection")`` and
``@stage("zmumu::muon_selection", device="gpu")`` register the CPU and GPU versions of one stage.

An analysis names a registered stage where it would give a function (``objects={"MuonGood":
"zmumu::muon_selection"}``, ``Cut("two_muons", "zmumu::two_muons")``). The stage is a
:class:`Stage`: called as it is, it runs its CPU version (tracing, the sequential path);
:meth:`Stage.bind` gives the version for the run's device, timed. Third-party packages register
stages through the entry-point group ``highrate.stages`` (an entry point names a :class:`Stage`).
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from highrate.base.registry import Registry
from highrate.devices.select import DEVICES
from highrate.devices.transfer import to_host
from highrate.errors import ConfigError, did_you_mean

F = TypeVar("F", bound=Callable[..., Any])
NAME = re.compile(r"[A-Za-z_][\w.-]*(::[A-Za-z_][\w.-]*)+")  # namespace::stage


def is_stage_name(value: Any) -> bool:
    """A string of the form ``namespace::stage``."""
    return isinstance(value, str) and NAME.fullmatch(value) is not None


class StageTimes:
    """What the registered stages of one chunk cost: per stage and device, ``calls``, ``seconds``
    (the whole call: work and host↔device copies) and ``to_host_s`` (copying the result back).
    Only numbers, nested by name then device, so results merge by adding."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, dict[str, float]]] = {}

    def add(self, name: str, device: str, seconds: float, to_host_s: float) -> None:
        entry = self.stages.setdefault(name, {}).setdefault(device, {"calls": 0, "seconds": 0.0, "to_host_s": 0.0})
        entry["calls"] += 1
        entry["seconds"] += seconds
        entry["to_host_s"] += to_host_s


def _shape(function: Callable[..., Any]) -> tuple[tuple[str, Any, bool], ...] | None:
    """The parameters' names, kinds and whether each has a default; None when not inspectable."""
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    return tuple((p.name, p.kind, p.default is not p.empty) for p in params)


@dataclass(frozen=True, eq=False)  # compared by identity: its versions are functions
class Stage:
    """One stage's implementations by device (``cpu`` always, ``gpu`` optionally), with one
    signature: the GPU version takes exactly what the CPU version takes."""

    name: str
    implementations: Mapping[str, Callable[..., Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not is_stage_name(self.name):
            raise ConfigError(f"stage name {self.name!r} must read 'namespace::stage' (e.g. 'zmumu::muon_selection').")
        for device, function in self.implementations.items():
            if device not in DEVICES:
                raise ConfigError(f"stage {self.name!r}: unknown device {device!r}; known: {', '.join(DEVICES)}.")
            if not callable(function):
                raise ConfigError(f"stage {self.name!r}: its {device} version is a {type(function).__name__}, "
                                  "not a function.")
        cpu, gpu = self.implementations.get("cpu"), self.implementations.get("gpu")
        if cpu is not None and gpu is not None and _shape(cpu) != _shape(gpu):
            raise ConfigError(
                f"stage {self.name!r}: the gpu version {_label(gpu)}{inspect.signature(gpu)} must take what the cpu "
                f"version {_label(cpu)}{inspect.signature(cpu)} takes."
            )
        object.__setattr__(self, "implementations", dict(self.implementations))
        if cpu is not None:  # inspect.signature(stage) is the CPU version's: arity checks see it
            object.__setattr__(self, "__signature__", inspect.signature(cpu))

    def with_version(self, device: str, function: Callable[..., Any]) -> Stage:
        """This stage with ``function`` as its ``device`` version."""
        return Stage(self.name, {**self.implementations, device: function})

    def checked(self) -> Stage:
        """This stage, or a ConfigError when it has no CPU version (every stage must run anywhere)."""
        if "cpu" not in self.implementations:
            raise ConfigError(f"stage {self.name!r} has a gpu version but no cpu version; "
                              f"register one with @stage({self.name!r}) or 'cpu:' in the stages file.")
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The CPU version (tracing runs it: the GPU version must read the same event fields)."""
        return self.checked().implementations["cpu"](*args, **kwargs)

    def device_for(self, device: str) -> str:
        """The device this stage runs on when the run's device is ``device``: a stage without a
        GPU version runs on the CPU."""
        return device if device in self.implementations else "cpu"

    def bind(self, device: str, times: StageTimes | None = None) -> Callable[..., Any]:
        """The version for ``device``, as a function that returns host arrays and adds its cost
        (call and copy back) to ``times``."""
        ran_on = self.device_for(device)
        function = self.checked().implementations[ran_on]
        name = self.name

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            out = function(*args, **kwargs)
            t1 = t2 = time.perf_counter()
            if ran_on != "cpu":  # the stages after it, and the fills, take host arrays
                out = to_host(out)
                t2 = time.perf_counter()
            if times is not None:
                times.add(name, ran_on, t2 - t0, t2 - t1)
            return out

        timed.stage_name = name  # type: ignore[attr-defined]  # errors name the stage, not the wrapper
        return timed

    def key(self, text: Callable[[Callable[..., Any]], str]) -> str:
        """What the definition hash takes of this stage: its name and each version's ``text``."""
        return f"stage:{self.name}:" + ":".join(f"{d}={text(f)}" for d, f in sorted(self.implementations.items()))


def _label(function: Callable[..., Any]) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


stages: Registry[Stage] = Registry("stage", "highrate.stages")
_declared: dict[str, Stage] = {}  # registered in this process, by name: the decorator adds versions
stages.register("highrate::fill", "highrate.devices.fills:FILL")  # built in, imported when named


def register(found: Stage) -> Stage:
    """Make ``found`` known by its name (replacing a stage of that name)."""
    _declared[found.name] = found
    stages.register(found.name, found)
    return found


def stage(name: str, device: str = "cpu") -> Callable[[F], F]:
    """Register the decorated function as the ``device`` version of the stage ``name``; the
    function is returned as it is, so it stays callable directly."""

    def decorate(function: F) -> F:
        known = _declared.get(name) or _registered(name) or Stage(name)
        register(known.with_version(device, function))
        return function

    return decorate


def _registered(name: str) -> Stage | None:
    """The stage ``name`` that is built in or has an entry point, if any: a version declared
    with ``@stage`` is added to it rather than replacing it."""
    try:
        found = stages.get(name)
    except ConfigError:
        return None
    return found if isinstance(found, Stage) else None


def lookup(name: str, where: str, local: Mapping[str, Stage] | None = None) -> Stage:
    """The stage ``name`` from ``local`` (an analysis' stages file) or the registry; a ConfigError
    naming ``where`` (the entry that names it) when it is unknown or has no CPU version."""
    if local and name in local:
        return local[name].checked()
    try:
        found = stages.get(name)
    except ConfigError:
        known = sorted({*(local or {}), *stages.names()})
        raise ConfigError(f"{where} names the stage {name!r}, which is not registered; known: "
                          f"{', '.join(known) or 'none'}." + did_you_mean(name, known)) from None
    if not isinstance(found, Stage):
        raise ConfigError(f"{where}: the entry point of stage {name!r} is a {type(found).__name__}, not a Stage.")
    return found.checked()

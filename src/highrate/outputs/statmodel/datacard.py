"""CMS Combine datacards (one per category) and their ``shapes.root``, and a parser to check them.

``shapes.root`` holds ``{channel}/{process}``, ``{channel}/{process}_{syst}Up|Down`` and
``{channel}/data_obs``; the templates are those of the pyhf workspace (negative bins clipped to 0)
over all bins, with their sum of squared weights for ``autoMCStats``. A one-sided variation's
``Down`` is its ``Up`` symmetrized, the template the workspace has, so that Combine fits the same
model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from highrate.errors import ConfigError
from highrate.outputs.latex import to_tlatex
from highrate.outputs.statmodel.inputs import NOMINAL, Channel, FitInputs

SHAPES = "shapes.root"
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
DATA = "data_obs"


def process_indices(inputs: FitInputs) -> dict[str, int]:
    """Combine process numbers, the same in every card: the signal 0, backgrounds 1, 2, ..."""
    backgrounds = sorted({s for ch in inputs.channels for s in ch.samples} - {inputs.signal})
    return {inputs.signal: 0, **{b: i + 1 for i, b in enumerate(backgrounds)}}


def _hist(edges: np.ndarray, values: np.ndarray, variances: np.ndarray, label: str) -> Any:
    import hist

    h = hist.Hist(hist.axis.Variable(edges, name="x", label=to_tlatex(label)), storage=hist.storage.Weight())
    view = h.view(flow=False)
    view["value"], view["variance"] = values, variances
    return h


def write_shapes(path: Path, inputs: FitInputs) -> None:
    """Write every channel's templates and data to ``path`` with uproot."""
    import uproot

    with uproot.recreate(path) as f:
        for ch in inputs.channels:
            for sample, templates in sorted(ch.samples.items()):
                f[f"{ch.name}/{sample}"] = _hist(ch.edges, templates[NOMINAL].values, templates[NOMINAL].variances,
                                                 ch.label)
                for syst in ch.systematics(sample):
                    for d in ("Up", "Down"):
                        t = ch.variation(sample, syst, d)
                        f[f"{ch.name}/{sample}_{syst}{d}"] = _hist(ch.edges, t.values, t.variances, ch.label)
            f[f"{ch.name}/{DATA}"] = _hist(ch.edges, ch.data, ch.data, ch.label)


def datacard_text(channel: Channel, indices: dict[str, int], *, lumi_uncertainty: float = 0.025,
                  shapes_file: str = SHAPES, comment: str = "") -> str:
    """The text of the datacard of one channel."""
    procs = sorted(channel.samples, key=lambda s: indices[s])
    systs = sorted({s for p in procs for s in channel.systematics(p)})
    rows: list[list[str]] = [["bin", *[channel.name] * len(procs)], ["process", *procs],
                             ["process", *[str(indices[p]) for p in procs]],
                             ["rate", *[f"{channel.samples[p][NOMINAL].values.sum():.6g}" for p in procs]]]
    nuis: list[list[str]] = []
    if lumi_uncertainty > 0:
        nuis.append(["lumi", "lnN", *[f"{1 + lumi_uncertainty:.6g}"] * len(procs)])
    for s in systs:
        nuis.append([s, "shape", *["1" if s in channel.systematics(p) else "-" for p in procs]])
    width = max(len(r[0]) for r in rows + nuis) + 1
    col = max([len(c) for r in rows + nuis for c in r[1:]] + [8]) + 2
    lines = [f"# {comment}" if comment else "# highrate fit: CMS Combine datacard",
             "imax 1  number of channels", f"jmax {len(procs) - 1}  number of backgrounds",
             "kmax *  number of nuisance parameters", "-" * 40,
             f"shapes * * {shapes_file} $CHANNEL/$PROCESS $CHANNEL/$PROCESS_$SYSTEMATIC", "-" * 40,
             f"bin          {channel.name}", f"observation  {channel.data.sum():.6g}", "-" * 40]
    lines += ["".join([r[0].ljust(width)] + [c.ljust(col) for c in r[1:]]).rstrip() for r in rows]
    lines.append("-" * 40)
    for r in nuis:
        lines.append("".join([r[0].ljust(width - 1) + " " + r[1].ljust(6)] + [c.ljust(col) for c in r[2:]]).rstrip())
    lines += ["-" * 40, "* autoMCStats 0"]
    return "\n".join(lines) + "\n"


def check_names(inputs: FitInputs) -> None:
    """Channel, process and systematic names must be single words without '/' (datacard columns, ROOT paths)."""
    for ch in inputs.channels:
        names = [("category", ch.name)] + [("sample", s) for s in ch.samples]
        names += [("variation", v) for s in ch.samples for v in ch.systematics(s)]
        for kind, name in names:
            if not _NAME.fullmatch(name):
                raise ConfigError(f"{kind} name {name!r} cannot go into a Combine datacard: use letters, digits, "
                                  "'_', '-' and '.' only.")


def write_datacards(outdir: Path, inputs: FitInputs, *, lumi_uncertainty: float = 0.025) -> list[Path]:
    """``datacard_{category}.txt`` for every channel and ``shapes.root``; returns the card paths."""
    check_names(inputs)
    write_shapes(outdir / SHAPES, inputs)
    indices = process_indices(inputs)
    paths = []
    for ch in inputs.channels:
        path = outdir / f"datacard_{ch.name}.txt"
        comment = f"highrate fit: histogram {ch.histogram}, category {ch.name}, signal {inputs.signal}"
        path.write_text(datacard_text(ch, indices, lumi_uncertainty=lumi_uncertainty, comment=comment))
        paths.append(path)
    return paths


def read_datacard(path: str | Path) -> dict[str, Any]:
    """Parse a (single-channel or multi-channel) shape datacard; ValueError when it is inconsistent.

    Returns ``{"imax", "jmax", "kmax", "shapes": [[process, channel, file, nominal, syst]],
    "observation": {bin: value}, "processes": [{"bin", "name", "index", "rate"}],
    "systematics": [{"name", "type", "values": {(bin, process): str}}], "auto_mc_stats": [line]}``.
    """
    lines = [ln.split("#")[0].strip() for ln in Path(path).read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("---")]
    out: dict[str, Any] = {"shapes": [], "observation": {}, "processes": [], "systematics": [], "auto_mc_stats": []}
    obs_bins: list[str] | None = None
    block: dict[str, list[str]] = {}
    for ln in lines:
        words = ln.split()
        key = words[0]
        if key in ("imax", "jmax", "kmax"):
            out[key] = words[1]
        elif key == "shapes":
            out["shapes"].append(words[1:])
        elif key == "bin" and obs_bins is None and "process" not in block:
            obs_bins = words[1:]
        elif key == "observation":
            if obs_bins is None or len(words) - 1 != len(obs_bins):
                raise ValueError(f"{path}: 'observation' does not match the 'bin' line.")
            out["observation"] = dict(zip(obs_bins, map(float, words[1:]), strict=True))
        elif key in ("bin", "rate") or (key == "process" and "process2" not in block):
            block["process2" if key == "process" and "process" in block else key] = words[1:]
        elif len(words) >= 2 and words[1] in ("lnN", "shape", "shapeN", "lnU", "gmN"):
            out["systematics"].append({"name": key, "type": words[1], "values": words[2:]})
        elif len(words) > 1 and words[1] == "autoMCStats":
            out["auto_mc_stats"].append(ln)
        else:
            raise ValueError(f"{path}: cannot parse line {ln!r}.")
    names, numbers = block.get("process", []), block.get("process2", [])
    if not numbers or not all(_is_int(x) for x in numbers):  # the index line may come first
        names, numbers = numbers, names
    n = len(block.get("bin", []))
    if not n or not (len(names) == len(numbers) == len(block.get("rate", [])) == n):
        raise ValueError(f"{path}: the bin/process/process/rate lines have different numbers of columns.")
    out["processes"] = [{"bin": b, "name": p, "index": int(i), "rate": float(r)}
                        for b, p, i, r in zip(block["bin"], names, numbers, block["rate"], strict=True)]
    for s in out["systematics"]:
        if len(s["values"]) != n:
            raise ValueError(f"{path}: systematic {s['name']!r} has {len(s['values'])} columns, expected {n}.")
        s["values"] = {(p["bin"], p["name"]): v for p, v in zip(out["processes"], s["values"], strict=True)}
    if set(out["observation"]) != set(block["bin"]):
        raise ValueError(f"{path}: the observation bins differ from the process bins.")
    return out


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True

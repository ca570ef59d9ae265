#!/usr/bin/env python
"""The AGC ttbar analysis as the AGC's coffea reference processor, on the selection of
examples/agc/analysis.py, for benchmarking highrate against it.

Runs with the python of a separate virtualenv that has coffea (its pins may clash with
highrate's): ``.venv-coffea/bin/python benchmarks/agc_coffea.py DATASETS.yaml``, or a fileset
JSON (``{dataset: {"files": [...], "metadata": {...}}}``), or ROOT files with ``--dataset``.
``--executor iterative`` (default) or ``futures --workers N``. Prints a summary and, with
``--output FILE``, writes JSON: events, timings, peak RSS and every histogram's sums of weights
and of squared weights per bin (flow bins included), keyed ``histogram/dataset/category/variation``
as highrate names them.

The processor follows the structure of the AGC's coffea implementation (``TtbarAnalysis``): one
``hist.Hist`` with axes ``observable`` (25 bins, 50-550 GeV), ``region`` (``4j1b``, ``4j2b``),
``process`` (here the dataset, since highrate keeps the alternative ttbar samples as datasets of
their own) and ``variation``, Weight storage; a loop over the jet-pT variations, each doing the
event selection; the trijet built from ``ak.combinations`` of coffea's Lorentz vectors. It does
what examples/agc/analysis.py does, so that both fill the same histograms:

* leptons: tight electrons (pT > 30, |eta| < 2.1, cutBased == 4, sip3d < 4), tight muons
  (pT > 30, |eta| < 2.1, tightId, sip3d < 4, pfRelIso04_all < 0.15); exactly one of either;
* jets: pT > 30, |eta| < 2.4; >= 4 of them; >= 1 with btagCSVV2 >= 0.5; region 4j1b exactly
  one such jet, 4j2b two or more (the AGC's reference uses ``> 0.5`` for the 4j2b region and
  the trijet's b tag: the same events, since btagCSVV2 is never exactly 0.5 here);
* HT: the float64 sum of the jets' pT; m_bjj: the mass of the largest-pT trijet with a b-tagged
  jet, the jets' (pt, eta, phi, mass) taken as float64 (the AGC sums float32 vectors: the same
  bins but for values within float32 rounding of a bin edge);
* weights: genWeight x xsec x lumi / sum of Runs/genEventSumw over the dataset's files (the AGC
  normalises by the number of events; the synthetic samples have non-unit genWeights); 1 on data;
* variations, simulation only: ``pt_scale`` (jets' pT and mass x 1.03 / 0.97, float32),
  ``pt_res`` (x (1 + 0.05 z), z the standard normal number highrate draws for the jet from
  (run, luminosityBlock, event, index of the jet): ``highrate.randomness.normal_from_keys``,
  loaded from this repository's ``src`` by path, as it has numpy only; the AGC draws
  ``np.random.normal``, which no second program can reproduce), Down = nominal as in the AGC;
  ``btag_var_0..3`` (weight 1 +- 0.075 pT_i / 50 GeV of the i-th selected jet);
  ``scale_var`` (x 1.025 / 0.975 for ``process: wjets``, the nominal for the others); the
  histograms of every variation are filled for every simulated dataset, pseudo-data only nominal.

Schema: the synthetic files have no ``Electron_charge`` / ``Muon_charge`` (the AGC's files
do), which coffea's ``Electron`` and ``Muon`` mixins require; they are read as
``PtEtaPhiMCollection`` instead (charge is not used). Nothing else differs from NanoAODSchema.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import glob  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import awkward as ak  # noqa: E402
import hist  # noqa: E402
import numpy as np  # noqa: E402
import uproot  # noqa: E402
from coffea import processor  # noqa: E402
from coffea.nanoevents import NanoAODSchema  # noqa: E402
from coffea.nanoevents.methods import vector  # noqa: E402

_IMPORT_S = time.perf_counter() - _T0

REPO = Path(__file__).resolve().parent.parent
B_TAG_THRESHOLD = 0.5
PT_SCALE = 0.03
PT_RESOLUTION = 0.05
BTAG_VARIATION = 0.075
WJETS_SCALE = 0.025
REGIONS = {"4j1b": "HT", "4j2b": "m_bjj"}  # region -> the observable highrate names its histogram


def _load_randomness():
    """highrate.randomness (numpy only) from this repository, without importing highrate."""
    spec = importlib.util.spec_from_file_location("highrate_randomness", REPO / "src" / "highrate" / "randomness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


normal_from_keys = _load_randomness().normal_from_keys


class AGCSchema(NanoAODSchema):
    """NanoAODSchema with Electron and Muon as PtEtaPhiMCollection: coffea's Electron and Muon
    mixins require a ``charge`` field, which the synthetic files do not carry."""

    mixins = {**NanoAODSchema.mixins, "Electron": "PtEtaPhiMCollection", "Muon": "PtEtaPhiMCollection"}  # noqa: RUF012


def jet_pt_resolution(events) -> ak.Array:
    """1 + 0.05 z per jet, z keyed by (run, luminosityBlock, event, jet index): highrate's numbers."""
    counts = ak.to_numpy(ak.num(events.Jet.pt, axis=1))
    index = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    keys = (np.repeat(ak.to_numpy(events[k]), counts) for k in ("run", "luminosityBlock", "event"))
    return ak.unflatten(1 + PT_RESOLUTION * normal_from_keys(*keys, index), counts)


def scaled(jets: ak.Array, factor) -> ak.Array:
    """Jets with pT and mass times ``factor``, float32 as NanoAOD stores them."""
    jets = ak.with_field(jets, ak.values_astype(jets.pt * factor, np.float32), "pt")
    return ak.with_field(jets, ak.values_astype(jets.mass * factor, np.float32), "mass")


def btag_weight_variation(i_jet: int, jet_pt: ak.Array) -> np.ndarray:
    """``(n, 2)``: weight 1 +- 7.5 % x pT of the i-th jet / 50 GeV (up, down), float64."""
    shift = BTAG_VARIATION * ak.to_numpy(jet_pt[:, i_jet]).astype(np.float64) / 50.0
    return np.stack([1.0 + shift, 1.0 - shift], axis=1)


def trijet_mass(jets: ak.Array) -> np.ndarray:
    """The mass of the largest-pT trijet with at least one b-tagged jet (float64 vectors)."""
    f64 = {k: ak.values_astype(jets[k], np.float64) for k in ("pt", "eta", "phi", "mass")}
    jets = ak.zip({**f64, "btagCSVV2": jets.btagCSVV2}, with_name="PtEtaPhiMLorentzVector",
                  behavior=vector.behavior)
    trijet = ak.combinations(jets, 3, fields=["j1", "j2", "j3"])  # trijet candidates
    trijet["p4"] = trijet.j1 + trijet.j2 + trijet.j3  # four-momentum of the three-jet system
    trijet["max_btag"] = np.maximum(trijet.j1.btagCSVV2, np.maximum(trijet.j2.btagCSVV2, trijet.j3.btagCSVV2))
    trijet = trijet[trijet.max_btag >= B_TAG_THRESHOLD]  # at least one b tag among the three
    mass = trijet["p4"][ak.argmax(trijet.p4.pt, axis=1, keepdims=True)].mass  # the largest-pT one
    return ak.to_numpy(ak.flatten(mass))


class TtbarAnalysis(processor.ProcessorABC):
    def __init__(self):
        self.hist = (
            hist.Hist.new.Reg(25, 50, 550, name="observable", label="observable [GeV]")
            .StrCat(list(REGIONS), name="region", label="Region")
            .StrCat([], name="process", label="Process", growth=True)
            .StrCat([], name="variation", label="Systematic variation", growth=True)
            .Weight()
        )

    def process(self, events):
        histogram = self.hist.copy()
        meta = events.metadata
        dataset = meta["dataset"]
        is_mc = bool(meta.get("is_mc"))
        if is_mc:  # normalisation to xsec x lumi
            weight = ak.to_numpy(events.genWeight).astype(np.float64) * (meta["xsec"] * meta["lumi"] / meta["sum_genweight"])
        else:
            weight = np.ones(len(events))

        # leptons do not depend on the jet variations
        electrons = events.Electron
        electrons = electrons[(electrons.pt > 30) & (np.abs(electrons.eta) < 2.1) & (electrons.cutBased == 4)
                              & (electrons.sip3d < 4)]
        muons = events.Muon
        muons = muons[(muons.pt > 30) & (np.abs(muons.eta) < 2.1) & muons.tightId & (muons.sip3d < 4)
                      & (muons.pfRelIso04_all < 0.15)]
        single_lepton = (ak.num(electrons) + ak.num(muons)) == 1
        filled = set()  # (dataset, variation) pairs this chunk filled: the histograms that exist

        # jet energy scale and resolution: jets with varied pT (and mass) for simulation
        jet_variations = {"nominal": events.Jet}
        if is_mc:
            jet_variations["pt_scaleUp"] = scaled(events.Jet, 1 + PT_SCALE)
            jet_variations["pt_scaleDown"] = scaled(events.Jet, 1 - PT_SCALE)
            jet_variations["pt_resUp"] = scaled(events.Jet, jet_pt_resolution(events))

        for pt_var, all_jets in jet_variations.items():
            # event selection
            jets = all_jets[(all_jets.pt > 30) & (np.abs(all_jets.eta) < 2.4)]
            n_btag = ak.sum(jets.btagCSVV2 >= B_TAG_THRESHOLD, axis=1)
            event_filters = single_lepton & (ak.num(jets) >= 4) & (n_btag >= 1)
            selected_jets = jets[event_filters]
            selected_btag = ak.to_numpy(n_btag[event_filters])
            selected_weight = weight[ak.to_numpy(event_filters)]

            for region, observable_name in REGIONS.items():
                region_filter = selected_btag == 1 if region == "4j1b" else selected_btag >= 2
                jets_region = selected_jets[region_filter]
                w = selected_weight[region_filter]
                if observable_name == "HT":  # scalar sum of the jets' pT
                    observable = ak.to_numpy(ak.sum(ak.values_astype(jets_region.pt, np.float64), axis=1))
                else:  # hadronic top candidate: the bjj system with the largest pT
                    observable = trijet_mass(jets_region)

                names = [pt_var]
                if pt_var == "nominal" and is_mc:
                    names.append("pt_resDown")  # one-sided, as in the AGC: Down is the nominal
                for name in names:
                    filled.add((dataset, name))
                    histogram.fill(observable=observable, region=region, process=dataset, variation=name, weight=w)
                if pt_var != "nominal" or not is_mc:
                    continue
                # weight variations, on the nominal jets
                for i in range(4):
                    variation = btag_weight_variation(i, jets_region.pt)
                    for i_dir, direction in enumerate(("Up", "Down")):
                        filled.add((dataset, f"btag_var_{i}{direction}"))
                        histogram.fill(observable=observable, region=region, process=dataset,
                                       variation=f"btag_var_{i}{direction}", weight=w * variation[:, i_dir])
                wjets = meta.get("process") == "wjets"
                for direction, factor in (("Up", 1 + WJETS_SCALE), ("Down", 1 - WJETS_SCALE)):
                    filled.add((dataset, f"scale_var{direction}"))
                    histogram.fill(observable=observable, region=region, process=dataset,
                                   variation=f"scale_var{direction}", weight=w * factor if wjets else w)

        return {"nevents": {dataset: len(events)}, "hist": histogram, "filled": filled}

    def postprocess(self, accumulator):
        return accumulator


# --------------------------------------------------------------------------------------
# inputs: highrate's datasets.yaml, a fileset JSON, or files
# --------------------------------------------------------------------------------------

def fileset_from_yaml(path: Path) -> dict:
    """The datasets of a highrate datasets file (local paths and globs, relative to its folder)."""
    import yaml

    raw = yaml.safe_load(path.read_text())["datasets"]
    out = {}
    for name, spec in raw.items():
        files = []
        for pattern in spec["files"]:
            full = pattern if os.path.isabs(pattern) else str(path.parent / pattern)
            files += sorted(glob.glob(full, recursive=True)) if glob.has_magic(full) else [full]
        out[name] = {"files": files, "treename": spec.get("tree", "Events"), "metadata": dict(spec.get("metadata", {}))}
    return out


def add_sum_genweight(fileset: dict) -> None:
    """``sum_genweight``: the sum of Runs/genEventSumw over a simulated dataset's files."""
    for spec in fileset.values():
        meta = spec.setdefault("metadata", {})
        if meta.get("is_mc") and "sum_genweight" not in meta:
            total = 0.0
            for f in spec["files"]:
                with uproot.open(f) as file:
                    total += float(np.sum(file["Runs"]["genEventSumw"].array(library="np")))
            meta["sum_genweight"] = total


def histogram_sums(h: hist.Hist, filled: set) -> dict[str, dict]:
    """``HT/dataset/4j1b/variation`` -> sums of weights and of squared weights per bin (with flow),
    for the (dataset, variation) pairs that were filled."""
    out = {}
    for region, observable_name in REGIONS.items():
        for process, variation in sorted(filled):
            view = h[{"region": region, "process": process, "variation": variation}]
            out[f"{observable_name}/{process}/{region}/{variation}"] = {
                "values": view.values(flow=True).tolist(), "variances": view.variances(flow=True).tolist()}
    return out


def peak_rss_mb() -> dict[str, float]:
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/status") as fh:  # VmHWM: not inherited over exec, unlike ru_maxrss
        hwm = next((int(ln.split()[1]) / 1024 for ln in fh if ln.startswith("VmHWM:")), hwm)
    return {"self_rss_mb": hwm, "children_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", help="a highrate datasets.yaml, a coffea fileset .json, or ROOT files")
    p.add_argument("--dataset", default="ttbar", help="dataset name for ROOT files given directly")
    p.add_argument("--metadata", default='{"is_mc": true, "process": "ttbar", "xsec": 729.84, "lumi": 3378.0}',
                   help="JSON metadata for ROOT files given directly")
    p.add_argument("--executor", choices=["iterative", "futures"], default="iterative")
    p.add_argument("--workers", type=int, default=1, help="FuturesExecutor's processes (default 1)")
    p.add_argument("--chunk-size", type=int, default=250_000)
    p.add_argument("--output", type=Path, default=None, help="write the result as JSON here")
    p.add_argument("--profile", type=Path, default=None, help="run under cProfile, dump the stats here")
    args = p.parse_args()
    warnings.filterwarnings("ignore", module="coffea")

    t0 = time.perf_counter()
    first = Path(args.inputs[0])
    if first.suffix in (".yaml", ".yml"):
        fileset = fileset_from_yaml(first)
    elif first.suffix == ".json":
        fileset = json.loads(first.read_text())
    else:
        fileset = {args.dataset: {"files": args.inputs, "treename": "Events", "metadata": json.loads(args.metadata)}}
    add_sum_genweight(fileset)
    if args.executor == "iterative":
        executor = processor.IterativeExecutor(status=False)
    else:
        executor = processor.FuturesExecutor(workers=args.workers, status=False)
    runner = processor.Runner(executor=executor, schema=AGCSchema, chunksize=args.chunk_size)

    def run():
        return runner(fileset, TtbarAnalysis(), treename="Events")

    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        out = prof.runcall(run)
        prof.dump_stats(args.profile)
        stats = pstats.Stats(prof)
        print("=== cProfile of the coffea Runner, by cumulative time ===")
        stats.sort_stats("cumulative").print_stats(40)
        print("=== by own time ===")
        stats.sort_stats("tottime").print_stats(30)
    else:
        out = run()
    processing_s = time.perf_counter() - t0
    histograms = histogram_sums(out["hist"], out["filled"])
    events = int(sum(out["nevents"].values()))
    result = {
        "events": events,
        "events_per_dataset": {k: int(v) for k, v in out["nevents"].items()},
        "processing_s": processing_s,
        "import_s": _IMPORT_S,
        "executor": args.executor,
        "workers": args.workers if args.executor == "futures" else 1,
        **peak_rss_mb(),
        "sumw": {k: float(sum(v["values"])) for k, v in histograms.items() if k.endswith("/nominal")},
        "histograms": histograms,
    }
    if args.output:
        args.output.write_text(json.dumps(result))
    print(f"coffea AGC: {events:,} events in {processing_s:.2f} s (+ {_IMPORT_S:.2f} s imports) = "
          f"{events / processing_s:,.0f} events/s; peak RSS {result['self_rss_mb']:.0f} MB; "
          f"{len(histograms)} histograms", file=sys.stderr)


if __name__ == "__main__":
    main()

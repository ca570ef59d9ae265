#!/usr/bin/env python
"""The Z->mumu selection of examples/zmumu/analysis_nominal.py written as a coffea processor.

Runs with the python of a separate virtualenv that has coffea (its pins may clash with
highrate's), e.g. ``.venv-coffea/bin/python benchmarks/coffea_zmumu.py FILE.root ...``.
Used by bench_zmumu.py; prints one ``BENCH_RESULT {json}`` line (events, processing time,
sum of weights of the mll histogram) so the caller can check that both did the same work.

Semantics, identical to the highrate analysis:

* skim: PV_npvsGood > 0, Flag_goodVertices, any Muon pt > 18, HLT_IsoMu24;
* MuonGood: tightId & pfRelIso04_all < 0.15 & pt > 15 & |eta| < 2.4 (array order kept);
  JetGood: pt > 30 & |eta| < 2.4 & jetId >= 2;
* preselection: exactly two MuonGood, first pt > 25, opposite charge, 60 < mll < 120, with
  mll from (pt, eta, phi, mass) in float64 (the formula of highrate.kinematics);
* weight genWeight; six Weight-storage histograms; JetGood_pt_1 only for events with a jet.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import warnings  # noqa: E402

import awkward as ak  # noqa: E402
import hist  # noqa: E402
import numpy as np  # noqa: E402
from coffea import processor  # noqa: E402
from coffea.nanoevents import NanoAODSchema  # noqa: E402

_IMPORT_S = time.perf_counter() - _T0


def pair_mass(a, b):
    """highrate.kinematics' documented float64 formula, so both do the same work."""
    pt1, eta1, phi1, m1 = (ak.values_astype(a[k], np.float64) for k in ("pt", "eta", "phi", "mass"))
    pt2, eta2, phi2, m2 = (ak.values_astype(b[k], np.float64) for k in ("pt", "eta", "phi", "mass"))
    s1, s2 = np.sinh(eta1), np.sinh(eta2)
    e1 = np.sqrt(pt1**2 * (1 + s1**2) + m1**2)
    e2 = np.sqrt(pt2**2 * (1 + s2**2) + m2**2)
    dot = pt1 * pt2 * (np.cos(phi1 - phi2) + s1 * s2)
    return np.sqrt(np.maximum(m1**2 + m2**2 + 2 * (e1 * e2 - dot), 0.0))


def make_hists() -> dict:
    def h(name, n, lo, hi):
        return hist.Hist(hist.axis.Regular(n, lo, hi, name=name), storage=hist.storage.Weight())

    return {
        "mll": h("mll", 120, 60, 120),
        "MuonGood_pt_1": h("pt", 100, 0, 200),
        "MuonGood_eta_1": h("eta", 50, -2.5, 2.5),
        "MuonGood_phi_1": h("phi", 64, -3.2, 3.2),
        "nJetGood": h("n", 10, 0, 10),
        "JetGood_pt_1": h("pt", 100, 0, 500),
    }


class SyntheticNanoAODSchema(NanoAODSchema):
    """NanoAODSchema without the ``Vertex`` mixin for ``PV``: coffea validates that ``PV`` has
    x/y/z, which the synthetic files do not carry (only ``PV_npvsGood``). Everything else is
    the stock schema; ``PV`` becomes a plain record like ``Flag`` and ``HLT``."""

    mixins = {k: v for k, v in NanoAODSchema.mixins.items() if k != "PV"}  # noqa: RUF012


class ZmumuProcessor(processor.ProcessorABC):
    def process(self, events):
        dataset = events.metadata["dataset"]
        n = len(events)
        skim = (
            (events.PV.npvsGood > 0)
            & events.Flag.goodVertices
            & ak.any(events.Muon.pt > 18, axis=1)
            & events.HLT.IsoMu24
        )
        events = events[skim]
        mu = events.Muon
        mu = mu[mu.tightId & (mu.pfRelIso04_all < 0.15) & (mu.pt > 15) & (abs(mu.eta) < 2.4)]
        jet = events.Jet
        jet = jet[(jet.pt > 30) & (abs(jet.eta) < 2.4) & (jet.jetId >= 2)]

        two = ak.num(mu) == 2
        events, mu, jet = events[two], mu[two], jet[two]
        mu1, mu2 = mu[:, 0], mu[:, 1]
        mll = pair_mass(mu1, mu2)
        sel = (mu1.pt > 25) & (mu1.charge * mu2.charge < 0) & (mll > 60) & (mll < 120)
        mu1, mll, jet = mu1[sel], mll[sel], jet[sel]
        weight = ak.to_numpy(events.genWeight[sel]).astype(np.float64)

        out = make_hists()
        out["mll"].fill(mll=ak.to_numpy(mll), weight=weight)
        out["MuonGood_pt_1"].fill(pt=ak.to_numpy(mu1.pt), weight=weight)
        out["MuonGood_eta_1"].fill(eta=ak.to_numpy(mu1.eta), weight=weight)
        out["MuonGood_phi_1"].fill(phi=ak.to_numpy(mu1.phi), weight=weight)
        out["nJetGood"].fill(n=ak.to_numpy(ak.num(jet)), weight=weight)
        has_jet = ak.to_numpy(ak.num(jet) > 0)
        out["JetGood_pt_1"].fill(pt=ak.to_numpy(ak.firsts(jet.pt))[has_jet], weight=weight[has_jet])
        return {dataset: {"hists": out, "events": n, "selected": len(weight)}}

    def postprocess(self, accumulator):
        return accumulator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--dataset", default="DYJetsToLL_M-50")
    p.add_argument("--tree", default="Events")
    p.add_argument("--chunk-size", type=int, default=250_000)
    args = p.parse_args()

    warnings.filterwarnings("ignore", module="coffea")
    t0 = time.perf_counter()
    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False),
        schema=SyntheticNanoAODSchema,
        chunksize=args.chunk_size,
    )
    out = runner({args.dataset: args.files}, ZmumuProcessor(), treename=args.tree)
    elapsed = time.perf_counter() - t0
    res = out[args.dataset]
    hists = res["hists"]
    import resource

    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/status") as fh:  # VmHWM: not inherited over exec, unlike ru_maxrss
        hwm = next((int(ln.split()[1]) / 1024 for ln in fh if ln.startswith("VmHWM:")), hwm)
    print("BENCH_RESULT " + json.dumps({
        "self_rss_mb": hwm,
        "children_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "events": int(res["events"]),
        "selected": int(res["selected"]),
        "processing_s": elapsed,
        "import_s": _IMPORT_S,
        "mll_sumw": float(hists["mll"].sum().value),
        "sumw": {k: float(h.sum().value) for k, h in hists.items()},
    }), flush=True)


if __name__ == "__main__":
    main()

"""The IRIS-HEP Analysis Grand Challenge (AGC) ttbar analysis: the ttbar cross-section in the
single-lepton channel, as the AGC defines it on CMS 2015 Open Data NanoAOD.

It reads only branches the AGC's NanoAOD files have (``Jet_btagCSVV2``, ``Electron_cutBased``,
``Electron_sip3d``, ``Muon_tightId``, ``Muon_sip3d``, ``Muon_pfRelIso04_all``, ``genWeight``...),
so it runs unchanged on the real files and on the synthetic ones of ``highrate.testing.agc``.

Selection (the lepton part first, as the skim): exactly one tight electron (pT > 30 GeV, |eta| < 2.1, cutBased == 4, sip3d < 4) or
muon (pT > 30 GeV, |eta| < 2.1, tightId, sip3d < 4, pfRelIso04_all < 0.15); >= 4 jets with
pT > 30 GeV, |eta| < 2.4; >= 1 of them b-tagged (btagCSVV2 >= 0.5).
Categories: ``4j1b`` (exactly one b tag), histogram ``HT`` (the scalar sum of the jets' pT), and
``4j2b`` (>= 2 b tags), histogram ``m_bjj`` (the mass of the largest-pT trijet among those with a
b tag); 25 bins from 50 to 550 GeV each.
Weights: genWeight x xsec x lumi / sum of genWeight.
Systematics (histograms ``{name}Up`` / ``{name}Down``), simulation only:

* ``pt_scale``: every jet's pT (and mass) x 1.03 (Up) / x 0.97 (Down);
* ``pt_res``: every jet's pT (and mass) x (1 + 0.05 z), z a standard normal number keyed by the
  event and the jet (``highrate.randomness.normal_from_keys``: the same on every rerun). One-sided
  as in the AGC: ``pt_resDown`` is the nominal; a fit symmetrises it (Down = 2 nominal - Up);
* ``btag_var_0`` ... ``btag_var_3``: weight 1 +- 0.075 x pT_i / 50 GeV, pT_i the pT of the i-th
  selected jet (in the files' order, by nominal pT), the AGC's stand-in for b-tag scale factors;
* ``scale_var``: weight x 1.025 / x 0.975 for W+jets (datasets with ``process: wjets``); the
  other datasets' ``scale_varUp``/``Down`` equal their nominal;
* ttbar scale, matrix-element and parton-shower variations: the datasets ``ttbar_scaleup``...
  (metadata ``process: ttbar``, ``systematic: scaleup``...); the luminosity (3 %) is a
  normalisation uncertainty of the fit, not a histogram.
"""

import functools
import itertools

import awkward as ak
import numpy as np

from highrate import Analysis, Axis, Cut, Histogram, ShapeVariation, Weight
from highrate.jagged import is_typetracer, nth_value, unflatten
from highrate.randomness import normal_from_keys

B_TAG_THRESHOLD = 0.5
PT_SCALE = 0.03  # relative jet pT scale shift
PT_RESOLUTION = 0.05  # relative width of the jet pT smearing
BTAG_VARIATION = 0.075  # per 50 GeV of the i-th jet's pT
WJETS_SCALE = 0.025
BINNING = (25, 50.0, 550.0)
FIELDS = ("pt", "eta", "phi", "mass", "btagCSVV2")


def electrons(events):
    e = events.Electron
    return e[(e.pt > 30) & (abs(e.eta) < 2.1) & (e.cutBased == 4) & (e.sip3d < 4)]


def muons(events):
    mu = events.Muon
    return mu[(mu.pt > 30) & (abs(mu.eta) < 2.1) & mu.tightId & (mu.sip3d < 4) & (mu.pfRelIso04_all < 0.15)]


def jets(events):
    jet = events.Jet
    return jet[(jet.pt > 30) & (abs(jet.eta) < 2.4)]


def n_btag(events):
    """The number of b-tagged selected jets (an object: counted once per pass, read by the
    preselection, both categories and m_bjj)."""
    return ak.sum(events.JetGood.btagCSVV2 >= B_TAG_THRESHOLD, axis=1)


def ht(events):
    """The scalar sum of the selected jets' pT."""
    return ak.sum(ak.values_astype(events.JetGood.pt, np.float64), axis=1)


def m_bjj(events):
    """The mass of the trijet with the largest pT among the trijets with at least one b-tagged
    jet, in the events of category 4j2b (NaN in the others: only 4j2b fills it).

    Columnar, without awkward's combinatorics: the events are grouped by their number of jets n
    (a loop over the few values of n, not over events), and each group's trijets are the index
    table of ``itertools.combinations(range(n), 3)`` (in awkward's ``argcombinations`` order)
    added to the events' first jet. Every trijet's pT comes from its jets' px and py; the
    four-momentum sum, for the mass, only for the chosen one."""
    jets = events.JetGood
    if is_typetracer(jets.pt):  # tracing: the same reads, one number per event
        touched = jets.pt + jets.eta + jets.phi + jets.mass + (jets.btagCSVV2 >= B_TAG_THRESHOLD) + events.nBtag
        return ak.fill_none(ak.max(ak.values_astype(touched, np.float64), axis=1), np.nan)
    counts = ak.to_numpy(ak.num(jets, axis=1))
    starts = np.cumsum(counts) - counts
    pt, eta, phi, mass = (ak.to_numpy(ak.flatten(jets[f], axis=1)).astype(np.float64) for f in FIELDS[:4])
    tagged = ak.to_numpy(ak.flatten(jets.btagCSVV2, axis=1)) >= B_TAG_THRESHOLD
    px, py = pt * np.cos(phi), pt * np.sin(phi)
    wanted = (ak.to_numpy(events.nBtag) >= 2) & (counts >= 3)  # the others' trijets are never filled
    out = np.full(len(counts), np.nan)
    for n in np.unique(counts[wanted]):
        group = np.flatnonzero(wanted & (counts == n))
        index = starts[group][:, None, None] + _trijets(int(n))[None]  # (events, trijets, 3)
        with_b = tagged[index].any(axis=2)
        trijet_pt = np.hypot(px[index].sum(axis=2), py[index].sum(axis=2))
        best = np.argmax(np.where(with_b, trijet_pt, -1.0), axis=1)  # the first of the largest pT
        row = np.arange(len(group))
        chosen = index[row, best]  # (events, 3): only the chosen trijet's mass is needed
        j_pt, j_eta, j_mass = pt[chosen], eta[chosen], mass[chosen]
        x, y = px[chosen].sum(axis=1), py[chosen].sum(axis=1)
        z, e = (j_pt * np.sinh(j_eta)).sum(axis=1), np.sqrt((j_pt * np.cosh(j_eta)) ** 2 + j_mass**2).sum(axis=1)
        m = np.sqrt(np.maximum(e**2 - x**2 - y**2 - z**2, 0.0))
        out[group] = np.where(with_b[row, best], m, np.nan)
    return out


@functools.cache
def _trijets(n):
    """The (i, j, k), i < j < k, of n jets, in lexicographic order."""
    return np.array(list(itertools.combinations(range(n), 3)), dtype=np.int64).reshape(-1, 3)


def normalisation(events, params, meta):
    return meta["xsec"] * meta["lumi"] / meta["sum_genweight"]


def btag_variation(i):
    def weight(events):
        shift = BTAG_VARIATION * nth_value(events.JetGood.pt, i, fill=0.0) / 50.0
        return 1.0, 1.0 + shift, 1.0 - shift
    weight.__name__ = f"btag_var_{i}"
    return weight


def wjets_scale(events, params, meta):
    if meta.get("process") == "wjets":
        return 1.0, 1.0 + WJETS_SCALE, 1.0 - WJETS_SCALE
    return 1.0, 1.0, 1.0


def _scaled(jet, factor):
    """Jets with pT and mass times ``factor`` (float32, as NanoAOD stores them)."""
    jet = ak.with_field(jet, ak.values_astype(jet.pt * factor, np.float32), "pt")
    return ak.with_field(jet, ak.values_astype(jet.mass * factor, np.float32), "mass")


def pt_scale(events, direction):
    return {"Jet": _scaled(events.Jet, 1 + PT_SCALE if direction == "up" else 1 - PT_SCALE)}


def jet_normals(events):
    """A standard normal number per jet, keyed by (run, luminosityBlock, event, jet index)."""
    jet = events.Jet
    if ak.backend(jet) == "typetracer":  # tracing: only which branches are read matters
        keys = ak.values_astype(events.event, np.float32) + events.luminosityBlock + events.run
        return ak.values_astype(jet.pt, np.float32) * 0 + keys[:, None] * 0
    n = ak.to_numpy(ak.num(jet, axis=1))
    index = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    keys = (np.repeat(ak.to_numpy(events[k]), n) for k in ("run", "luminosityBlock", "event"))
    return unflatten(normal_from_keys(*keys, index), n)


def pt_res(events, direction, meta, shared):
    if direction == "down":  # one-sided, as in the AGC: the Down histograms are the nominal
        return {}
    return {"Jet": _scaled(events.Jet, 1 + PT_RESOLUTION * jet_normals(events))}


analysis = Analysis(
    name="agc_ttbar",
    # exactly one tight lepton, first: ~1 event in 4 passes, and the jets are read for those alone
    skim=[Cut("one_tight_lepton", lambda ev: ak.num(electrons(ev)) + ak.num(muons(ev)) == 1)],
    objects={"ElectronGood": electrons, "MuonGood": muons, "JetGood": jets, "nBtag": n_btag},
    preselection=[
        Cut("one_lepton", lambda ev: ak.num(ev.ElectronGood) + ak.num(ev.MuonGood) == 1),
        Cut("four_jets", lambda ev: ak.num(ev.JetGood) >= 4),
        Cut("one_btag", lambda ev: ev.nBtag >= 1),
    ],
    quantities={"HT": ht, "m_bjj": m_bjj},
    categories={"4j1b": [Cut("1b", lambda ev: ev.nBtag == 1)],
                "4j2b": [Cut("2b", lambda ev: ev.nBtag >= 2)]},
    weights=[
        Weight("genWeight", lambda ev: ev.genWeight),
        Weight("normalisation", normalisation),
        *(Weight(f"btag_var_{i}", btag_variation(i), varied=True) for i in range(4)),
        Weight("scale_var", wjets_scale, varied=True),
    ],
    variations=[ShapeVariation("pt_scale", pt_scale), ShapeVariation("pt_res", pt_res)],
    histograms=[
        Histogram("HT", Axis("HT", *BINNING, label=r"$H_T$ [GeV]"), categories=["4j1b"]),
        Histogram("m_bjj", Axis("m_bjj", *BINNING, label=r"$m_{bjj}$ [GeV]"), categories=["4j2b"]),
    ],
)

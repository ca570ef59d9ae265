"""Catalogue and cheap generation of the optional extra NanoAOD-like branches.

``extra_branches=N`` appends the first ``N`` entries of a fixed, ordered catalogue of
NanoAOD v9-like branches (jagged collections with their ``n<Name>`` counters, event-level
floats and ints, ``Flag_*``/``HLT_*``/``L1_*`` bits) so that tests and benchmarks can
emulate CMSSW files with 1000-2700 branches. The catalogue is a pure function of ``N``
(a prefix of the catalogue for ``N + 1``); counters count as branches.

Values are plausible but cheap: each batch draws a few random pools once and every
branch is an affine map or threshold of a shifted window of one pool.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: Window offsets into the random pools are taken modulo this many entries.
_PAD = 4096

# (collection, mean multiplicity, ((field, kind), ...)); kinds are mapped by _values().
_COLLECTIONS: tuple[tuple[str, float, tuple[tuple[str, str], ...]], ...] = (
    ("Tau", 1.4, (
        ("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "mass"), ("charge", "charge"),
        ("decayMode", "small"), ("dxy", "ip"), ("dz", "ip"), ("jetIdx", "idx"),
        ("idDeepTau2017v2p1VSe", "wp"), ("idDeepTau2017v2p1VSjet", "wp"),
        ("idDeepTau2017v2p1VSmu", "wp"), ("rawDeepTau2017v2p1VSjet", "score"),
        ("idDecayModeOldDMs", "flag"), ("leadTkPtOverTauPt", "score"), ("chargedIso", "iso"),
        ("neutralIso", "iso"), ("photonsOutsideSignalCone", "iso"),
    )),
    ("Photon", 1.1, (
        ("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "mass"), ("cutBased", "small"),
        ("mvaID", "score"), ("pfRelIso03_all", "iso"), ("r9", "score"), ("sieie", "iso"),
        ("hoe", "iso"), ("electronVeto", "flag"), ("pixelSeed", "flag"),
        ("isScEtaEB", "flag"), ("isScEtaEE", "flag"), ("jetIdx", "idx"),
        ("electronIdx", "idx"), ("mvaID_WP80", "flag"), ("mvaID_WP90", "flag"),
    )),
    ("FatJet", 0.6, (
        ("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "mass"), ("msoftdrop", "mass"),
        ("btagDeepB", "score"), ("btagHbb", "score"), ("deepTagMD_ZvsQCD", "score"),
        ("deepTagMD_WvsQCD", "score"), ("deepTag_TvsQCD", "score"), ("tau1", "score"),
        ("tau2", "score"), ("tau3", "score"), ("tau4", "score"), ("n2b1", "score"),
        ("n3b1", "score"), ("jetId", "small"), ("subJetIdx1", "idx"), ("subJetIdx2", "idx"),
        ("particleNet_QCD", "score"), ("particleNet_TvsQCD", "score"),
        ("particleNet_WvsQCD", "score"), ("particleNetMD_Xbb", "score"),
        ("nConstituents", "small"),
    )),
    ("SubJet", 1.0, (
        ("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "mass"), ("btagDeepB", "score"),
        ("btagCSVV2", "score"), ("n2b1", "score"), ("n3b1", "score"), ("rawFactor", "score"),
        ("tau1", "score"), ("tau2", "score"), ("tau3", "score"), ("tau4", "score"),
    )),
    ("SV", 1.5, (
        ("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "mass"), ("chi2", "iso"),
        ("dlen", "iso"), ("dlenSig", "pt"), ("dxy", "iso"), ("dxySig", "pt"), ("ndof", "pt"),
        ("pAngle", "score"), ("x", "ip"), ("y", "ip"), ("z", "ip"), ("ntracks", "small"),
        ("charge", "charge"),
    )),
    ("IsoTrack", 0.8, (
        ("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("dxy", "ip"), ("dz", "ip"),
        ("pdgId", "small"), ("fromPV", "small"), ("isPFcand", "flag"),
        ("isFromLostTrack", "flag"), ("isHighPurityTrack", "flag"), ("pfRelIso03_all", "iso"),
        ("pfRelIso03_chg", "iso"), ("miniPFRelIso_all", "iso"), ("miniPFRelIso_chg", "iso"),
    )),
    ("LowPtElectron", 0.7, (
        ("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "mass"), ("charge", "charge"),
        ("ID", "score"), ("convVeto", "flag"), ("dxy", "ip"), ("dz", "ip"),
        ("embeddedID", "score"), ("energyErr", "iso"), ("miniPFRelIso_all", "iso"),
        ("ptbiased", "score"), ("unbiased", "score"), ("lostHits", "small"),
        ("convWP", "small"),
    )),
    ("boostedTau", 0.3, (
        ("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("mass", "mass"), ("charge", "charge"),
        ("decayMode", "small"), ("idAntiEle2018", "wp"), ("idAntiMu", "wp"),
        ("idMVAnewDM2017v2", "wp"), ("rawAntiEle2018", "score"), ("rawIso", "iso"),
        ("chargedIso", "iso"), ("neutralIso", "iso"), ("jetIdx", "idx"),
    )),
    ("CorrT1METJet", 3.0, (
        ("rawPt", "pt"), ("eta", "eta"), ("phi", "phi"), ("area", "score"),
        ("muonSubtrFactor", "score"),
    )),
    ("SoftActivityJet", 4.0, (("pt", "pt"), ("eta", "eta"), ("phi", "phi"))),
    ("TrigObj", 4.0, (
        ("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("l1pt", "pt"), ("l1pt_2", "pt"),
        ("l2pt", "pt"), ("id", "small"), ("l1iso", "small"), ("l1charge", "small"),
        ("filterBits", "small"),
    )),
    ("FsrPhoton", 0.2, (
        ("pt", "pt"), ("eta", "eta"), ("phi", "phi"), ("relIso03", "iso"),
        ("dROverEt2", "iso"), ("muonIdx", "idx"),
    )),
    ("OtherPV", 3.0, (("z", "ip"),)),
)

_SCALARS: tuple[tuple[str, str], ...] = tuple(
    [(f"fixedGridRhoFastjet{s}", "rho") for s in (
        "All", "Central", "CentralCalo", "CentralChargedPileUp", "CentralNeutral")]
    + [(f"{m}_{v}", "phi" if v == "phi" else "pt") for m in (
        "PuppiMET", "RawMET", "ChsMET", "CaloMET", "TkMET", "RawPuppiMET")
        for v in ("pt", "phi", "sumEt")]
    + [("MET_sumEt", "pt"), ("MET_significance", "iso"), ("MET_covXX", "pt"),
       ("MET_covXY", "ip"), ("MET_covYY", "pt"), ("MET_MetUnclustEnUpDeltaX", "ip"),
       ("MET_MetUnclustEnUpDeltaY", "ip")]
    + [(f"DeepMETRes{t}Tune_{v}", "phi" if v == "phi" else "pt")
       for t in ("olution", "ponse") for v in ("pt", "phi")]
    + [("PV_ndof", "pt"), ("PV_x", "ip"), ("PV_y", "ip"), ("PV_z", "ip"), ("PV_chi2", "score"),
       ("PV_score", "pt"), ("PV_npvs", "small")]
    + [(f"L1PreFiringWeight_{s}", "weight") for s in ("Nom", "Up", "Dn")]
    + [(f"SoftActivityJetHT{s}", "pt") for s in ("", "10", "2", "5")]
    + [(f"SoftActivityJetNjets{s}", "small") for s in ("10", "2", "5")]
)

_EXTRA_FLAGS: tuple[str, ...] = tuple(f"Flag_{s}" for s in (
    "CSCTightHaloFilter", "CSCTightHalo2015Filter", "globalTightHalo2016Filter",
    "CSCTightHaloTrkMuUnvetoFilter", "EcalDeadCellBoundaryEnergyFilter",
    "hcalLaserEventFilter", "ecalBadCalibFilter", "chargedHadronTrackResolutionFilter",
    "muonBadTrackFilter", "BadChargedCandidateFilter", "BadPFMuonDzFilter",
    "hfNoisyHitsFilter", "trkPOGFilters", "trkPOG_manystripclus53X",
    "trkPOG_toomanystripclus53X", "trkPOG_logErrorTooManyClusters", "HcalStripHaloFilter",
    "ecalLaserCorrFilter", "BadChargedCandidateSummer16Filter", "BadPFMuonSummer16Filter",
))

_T_MU = (3, 5, 8, 12, 15, 17, 19, 20, 24, 27, 30, 37, 45, 50, 55, 100)
_T_EG = (12, 15, 20, 23, 25, 27, 28, 30, 32, 33, 35, 38, 40, 50, 60, 75, 90, 115, 135, 200)
_T_JET = (15, 25, 40, 60, 80, 110, 140, 200, 260, 320, 400, 450, 500, 550)
_T_HT = (180, 250, 330, 370, 430, 510, 590, 680, 780, 890, 1050)
_T_MET = (90, 100, 110, 120, 130, 140, 200, 250, 300)

_SINGLE_TEMPLATES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("HLT_Mu{}", _T_MU), ("HLT_IsoMu{}", _T_MU), ("HLT_IsoMu{}_eta2p1", _T_MU),
    ("HLT_Mu{}_TrkIsoVVL", _T_MU), ("HLT_TkMu{}", _T_MU), ("HLT_Mu{}_eta2p1", _T_MU),
    ("HLT_Ele{}_WPTight_Gsf", _T_EG), ("HLT_Ele{}_WPLoose_Gsf", _T_EG),
    ("HLT_Ele{}_eta2p1_WPTight_Gsf", _T_EG), ("HLT_Ele{}_CaloIdVT_GsfTrkIdT", _T_EG),
    ("HLT_Photon{}", _T_EG), ("HLT_Photon{}_R9Id90_HE10_IsoM", _T_EG),
    ("HLT_PFJet{}", _T_JET), ("HLT_PFJetFwd{}", _T_JET), ("HLT_AK8PFJet{}", _T_JET),
    ("HLT_AK8PFJetFwd{}", _T_JET), ("HLT_DiPFJetAve{}", _T_JET),
    ("HLT_DiPFJetAve{}_HFJEC", _T_JET), ("HLT_CaloJet{}", _T_JET), ("HLT_PFHT{}", _T_HT),
    ("HLT_AK8PFHT{}_TrimMass50", _T_HT), ("HLT_PFHT{}_DisplacedJet", _T_HT),
    ("HLT_PFMET{0}_PFMHT{0}_IDTight", _T_MET), ("HLT_PFMETNoMu{0}_PFMHTNoMu{0}_IDTight", _T_MET),
    ("HLT_PFMETTypeOne{0}_PFMHT{0}_IDTight", _T_MET), ("HLT_PFMET{}", _T_MET),
    ("HLT_CaloMET{}_HBHECleaned", _T_MET), ("HLT_MET{}_IsoTrk50", _T_MET),
    ("L1_SingleMu{}", _T_MU), ("L1_SingleMu{}er1p5", _T_MU), ("L1_SingleMuOpen_er{}", _T_MU),
    ("L1_SingleEG{}", _T_EG), ("L1_SingleIsoEG{}", _T_EG), ("L1_SingleIsoEG{}er2p1", _T_EG),
    ("L1_SingleJet{}", _T_JET), ("L1_SingleJet{}er2p5", _T_JET), ("L1_SingleJet{}_FWD3p0", _T_JET),
    ("L1_HTT{}er", _T_HT), ("L1_ETT{}_BptxAND", _T_HT), ("L1_ETM{}", _T_MET),
    ("L1_ETMHF{}", _T_MET), ("L1_ETMHF{}_HTT60er", _T_MET), ("L1_SingleTau{}er2p1", _T_JET),
)

_PAIR_TEMPLATES: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("HLT_Mu{}_TrkIsoVVL_Mu{}_TrkIsoVVL_DZ", _T_MU, (3, 5, 8, 9, 12)),
    ("HLT_Mu{}_TrkIsoVVL_Mu{}_TrkIsoVVL_DZ_Mass3p8", _T_MU, (3, 5, 8, 9, 12)),
    ("HLT_DoubleMu{}_Mass{}", (3, 4, 5, 8), (3, 6, 8, 10, 20)),
    ("HLT_Mu{}_Ele{}_CaloIdL_TrackIdL_IsoVL", _T_MU, (8, 12, 23)),
    ("HLT_Ele{}_Ele{}_CaloIdL_TrackIdL_IsoVL_DZ", _T_EG, (8, 12, 17)),
    ("HLT_Ele{}_CaloIdL_TrackIdL_IsoVL_PFJet{}", _T_EG, _T_JET),
    ("HLT_Mu{}_PFJet{}", _T_MU, _T_JET),
    ("HLT_PFHT{}_PFMET{}", _T_HT, _T_MET),
    ("HLT_Photon{}_PFMET{}", _T_EG, _T_MET),
    ("HLT_Photon{}_PFJet{}", _T_EG, _T_JET),
    ("HLT_Ele{}_PFHT{}", _T_EG, _T_HT),
    ("HLT_PFHT{}_SixPFJet{}", _T_HT, (32, 36)),
    ("HLT_DoubleEle{}_CaloIdL_MW_Mass{}", _T_EG, (8, 10, 50)),
    ("HLT_DiJet{}_MJJ{}", _T_JET, (300, 500, 620, 800, 1000)),
    ("HLT_AK8PFJet{}_TrimMass{}", _T_JET, (30, 50)),
    ("L1_DoubleMu{}_{}", _T_MU, (0, 3, 5, 7, 8)),
    ("L1_DoubleEG_{}_{}", _T_EG, (8, 10, 12)),
    ("L1_Mu{}_EG{}", _T_MU, (10, 17, 20, 23)),
    ("L1_Mu{}_Jet{}er2p5", _T_MU, (40, 60, 90, 120)),
    ("L1_DoubleJet{}er2p5_Mass_Min{}", _T_JET, (150, 200, 300, 620)),
    ("L1_HTT{}er_QuadJet_{}er2p5", _T_HT, (55, 60, 70)),
    ("L1_DoubleIsoTau{}er2p1_Mass_Max{}", _T_JET, (80, 90)),
)

#: Branch names of the generator's fixed core schema; extras never reuse them.
CORE_NAMES: frozenset[str] = frozenset({
    "run", "luminosityBlock", "event", "genWeight", "PV_npvsGood", "Flag_goodVertices",
    "Flag_globalSuperTightHalo2016Filter", "Flag_HBHENoiseFilter", "Flag_HBHENoiseIsoFilter",
    "Flag_EcalDeadCellTriggerPrimitiveFilter", "Flag_BadPFMuonFilter", "Flag_eeBadScFilter",
    "Flag_METFilters", "HLT_IsoMu24", "HLT_Ele32_WPTight_Gsf", "nMuon", "nElectron", "nJet",
    "MET_pt", "MET_phi", "Pileup_nTrueInt",
})


@dataclass(frozen=True)
class ExtraBranch:
    """One extra branch: a counter, a collection field, an event scalar or a flag."""

    name: str
    kind: str  # "counter", "field", "scalar" or "flag"
    dtype: str  # "float32", "int32" or "bool"
    collection: str | None = None  # for counters and fields
    field: str | None = None  # for fields
    values: str = ""  # value recipe, see _values()
    mean: float = 0.0  # counters: mean multiplicity
    slot: int = 0  # position in the catalogue: picks pool windows and flag rates


def _dtype(recipe: str) -> str:
    if recipe in ("charge", "small", "idx", "wp"):
        return "int32"
    if recipe == "flag":
        return "bool"
    return "float32"


def _flag_names() -> Iterable[str]:
    for template, thresholds in _SINGLE_TEMPLATES:
        for t in thresholds:
            yield template.format(t)
    for template, first, second in _PAIR_TEMPLATES:
        for a, b in itertools.product(first, second):
            yield template.format(a, b)
    for i in itertools.count():  # beyond the named catalogue: still plausible L1 names
        yield f"L1_UnprefirableSeed{i}"


def _blocks() -> Iterable[list[tuple[str, ...]]]:
    """Yield catalogue blocks (lists of raw entries), interleaving the kinds of branch."""
    collections = [
        [("counter", f"n{name}", name, str(mean))]
        + [("field", f"{name}_{fld}", name, fld, recipe) for fld, recipe in fields]
        for name, mean, fields in _COLLECTIONS
    ]
    scalars = [("scalar", name, recipe) for name, recipe in _SCALARS]
    scalar_blocks = [scalars[i : i + 6] for i in range(0, len(scalars), 6)]
    flags = [("flag", name) for name in _EXTRA_FLAGS]
    flag_blocks = [flags[i : i + 5] for i in range(0, len(flags), 5)]
    trigger_names = (n for n in _flag_names() if n not in CORE_NAMES)
    for i in itertools.count():
        if i < len(collections):
            yield collections[i]
        if i < len(scalar_blocks):
            yield scalar_blocks[i]
        if i < len(flag_blocks):
            yield flag_blocks[i]
        yield [("flag", name) for name in itertools.islice(trigger_names, 40)]


def extra_branch_specs(n: int) -> list[ExtraBranch]:
    """Return the first ``n`` entries of the extra-branch catalogue, in branch order."""
    if n < 0:
        raise ValueError(f"extra_branches must be >= 0, got {n}")
    out: list[ExtraBranch] = []
    seen: set[str] = set()
    for block in _blocks():
        for entry in block:
            if len(out) == n:
                return out
            kind, name = entry[0], entry[1]
            if name in seen:
                continue
            seen.add(name)
            slot = len(out)
            if kind == "counter":
                out.append(ExtraBranch(name, kind, "int32", collection=entry[2],
                                       mean=float(entry[3]), slot=slot))
            elif kind == "field":
                out.append(ExtraBranch(name, kind, _dtype(entry[4]), collection=entry[2],
                                       field=entry[3], values=entry[4], slot=slot))
            elif kind == "scalar":
                out.append(ExtraBranch(name, kind, _dtype(entry[2]), values=entry[2],
                                       slot=slot))
            else:
                out.append(ExtraBranch(name, kind, "bool", values="flag", slot=slot))
    return out  # pragma: no cover - the catalogue is infinite


class _Pools:
    """Per-batch random pools; every extra branch reads a shifted window of one of them."""

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        size += _PAD
        self.uniform = rng.random(size, dtype=np.float32)
        self.expo = rng.standard_exponential(size, dtype=np.float32)
        self.ints = rng.integers(0, 16, size, dtype=np.int32)
        self.bytes = rng.integers(0, 256, size, dtype=np.uint8)

    def window(self, pool: np.ndarray, slot: int, length: int) -> np.ndarray:
        start = (slot * 7919) % _PAD
        return pool[start : start + length]


def _values(pools: _Pools, spec: ExtraBranch, length: int) -> np.ndarray:
    """Cheap plausible values for one branch (float32, int32 or bool)."""
    r, s = spec.values, spec.slot
    u = pools.window(pools.uniform, s, length)
    e = pools.window(pools.expo, s, length)
    if r == "pt":
        return e * np.float32(15.0) + np.float32(5.0)
    if r == "eta":
        return (u - np.float32(0.5)) * np.float32(5.0)
    if r == "phi":
        return (u - np.float32(0.5)) * np.float32(2.0 * np.pi)
    if r == "mass":
        return e * np.float32(8.0) + np.float32(0.5)
    if r == "rho":
        return e * np.float32(6.0) + np.float32(12.0)
    if r == "weight":
        return np.float32(1.0) - u * np.float32(0.02)
    if r == "score":
        return u
    if r == "iso":
        return e * np.float32(0.1)
    if r == "ip":
        return (u - np.float32(0.5)) * np.float32(0.05)
    i = pools.window(pools.ints, s, length)
    if r == "charge":
        return (i & 1) * np.int32(2) - np.int32(1)
    if r == "small":
        return i
    if r == "idx":
        return (i & 7) - np.int32(1)
    if r == "wp":
        return i & 127
    if spec.kind == "flag":
        # trigger/filter rates vary with the slot: Flag_* pass ~99.9%, triggers 0.4%..23%
        b = pools.window(pools.bytes, s, length)
        if spec.name.startswith("Flag_"):
            return b != 0
        return b < (1, 3, 8, 20, 60)[s % 5]
    return u < np.float32(0.5)  # "flag" recipe inside a collection


def generate_extras(
    rng: np.random.Generator, specs: list[ExtraBranch], n: int
) -> tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]]:
    """Generate ``n`` events of the extra branches.

    Returns ``(scalars, collections)``: flat arrays by branch name, and
    ``{collection: (counts, {field: content})}``. A collection whose counter is present
    without any field (a catalogue cut right after the counter) is returned as a plain
    int32 scalar ``n<Name>``.
    """
    counters = [s for s in specs if s.kind == "counter"]
    counts = {
        s.collection: rng.poisson(s.mean, n).astype(np.int32) for s in counters
    }
    biggest = max([n, *(int(c.sum()) for c in counts.values())])
    pools = _Pools(rng, biggest)
    scalars: dict[str, np.ndarray] = {}
    collections: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    with_fields = {s.collection for s in specs if s.kind == "field"}
    for spec in specs:
        if spec.kind == "counter":
            if spec.collection in with_fields:
                collections[spec.collection] = (counts[spec.collection], {})
            else:
                scalars[spec.name] = counts[spec.collection]
        elif spec.kind == "field":
            c, fields = collections[spec.collection]
            fields[spec.field] = _values(pools, spec, int(c.sum()))
        else:
            scalars[spec.name] = _values(pools, spec, n)
    return scalars, collections

"""Vectorised event physics for the synthetic NanoAOD generator.

Everything here works on flat numpy arrays for a batch of ``n`` events and draws all its
randomness from the one ``numpy.random.Generator`` it is given, in a fixed order, so the
output is a pure function of the generator state and ``n``.
"""

from __future__ import annotations

import numpy as np

MUON_MASS = 0.10566
ELECTRON_MASS = 0.000511
Z_MASS = 91.1876
Z_WIDTH = 2.4952
TWO_PI = 2.0 * np.pi

#: (Z -> mumu, Drell-Yan continuum) event fractions; the rest has no prompt dimuon. Data and
#: simulation are drawn from the same model, so that the normalised simulation predicts the data.
MIXTURE = (0.55, 0.20)
#: |eta| and pt acceptance of the stored muon collection (NanoAOD keeps pt > 3 GeV).
MUON_ETA_MAX = 2.5
MUON_PT_MIN = 3.0
#: genWeight magnitude and the fraction of negative weights (NLO-like sample).
GEN_WEIGHT = 23.5
NEGATIVE_WEIGHT_FRACTION = 0.015
#: Pileup_nTrueInt ~ Gamma(shape, scale): simulation, and the slightly later, narrower data
#: profile (mean 33.6) that the pileup weights of ``corrections.py`` reweight the simulation to.
MC_PILEUP = (10.0, 3.2)
DATA_PILEUP = (11.0, 3.05)
#: The muon scale factors' bins (|eta|, pt [GeV]): in data, a muon there passes the tight ID and
#: the isolation with the simulation's efficiency times the scale factor of ``muon_sf_table``.
MUON_ETA_EDGES: tuple[float, ...] = (0.0, 0.9, 1.2, 2.1, 2.4)
MUON_PT_EDGES: tuple[float, ...] = (15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 120.0, 200.0)
MUON_ISO_CUT = 0.15  # the pfRelIso04_all cut the isolation scale factor is for

Collection = tuple[np.ndarray, dict[str, np.ndarray]]


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _truncated_breit_wigner(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """Cauchy (Breit-Wigner) masses restricted to [lo, hi] by inverse CDF."""
    half = Z_WIDTH / 2.0
    a, b = np.arctan((lo - Z_MASS) / half), np.arctan((hi - Z_MASS) / half)
    return Z_MASS + half * np.tan(a + rng.random(n) * (b - a))


def _power_law(rng: np.random.Generator, n: int, lo: float, hi: float, k: float) -> np.ndarray:
    """Samples of p(x) ~ x**-k on [lo, hi] (k != 1) by inverse CDF."""
    e = 1.0 - k
    return (lo**e + rng.random(n) * (hi**e - lo**e)) ** (1.0 / e)


def muon_sf_table(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Data/simulation efficiency ratio of the muon ``"id"`` (tight ID) or ``"iso"``
    (isolation) selection per (|eta| bin, pt bin), and its absolute uncertainty: the truth
    the generator's data follows and ``muon_sf.json`` encodes. Every value is below 1."""
    eta = np.arange(len(MUON_ETA_EDGES) - 1)[:, None]
    pt = np.arange(len(MUON_PT_EDGES) - 1)[None, :]
    if kind == "id":
        sf = 0.992 - 0.008 * eta - 0.012 * np.exp(-pt / 1.5)
        unc = 0.004 + 0.002 * eta + 0.006 * np.exp(-pt / 2.0)
    else:
        sf = 0.998 - 0.004 * eta - 0.025 * np.exp(-pt / 2.0)
        unc = 0.003 + 0.001 * eta + 0.008 * np.exp(-pt / 2.0)
    return np.round(sf, 5), np.round(unc, 5)


def _muon_sf(kind: str, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Each muon's scale factor; 1 outside |eta| < 2.4, pt >= 15 (none measured), the last
    bin above 200 GeV (as the ``clamp`` flow)."""
    sf, _ = muon_sf_table(kind)
    abs_eta = np.abs(eta)
    i = np.clip(np.searchsorted(MUON_ETA_EDGES, abs_eta, side="right") - 1, 0, sf.shape[0] - 1)
    j = np.clip(np.searchsorted(MUON_PT_EDGES, pt, side="right") - 1, 0, sf.shape[1] - 1)
    inside = (abs_eta < MUON_ETA_EDGES[-1]) & (pt >= MUON_PT_EDGES[0])
    return np.where(inside, sf[i, j], 1.0)


def _data_efficiencies(rng: np.random.Generator, pt: np.ndarray, eta: np.ndarray,
                       tight: np.ndarray, iso: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Data's tight ID and isolation: the simulation's, each kept with the probability of its
    scale factor (below 1), so data's efficiency is the simulation's times the scale factor.
    A muon that loses its isolation moves above the cut by the cut's value."""
    pt, eta = _f32(pt), _f32(eta)  # the values written, which the scale factors are looked up with
    u = rng.random((2, len(pt)))
    tight = tight & (u[0] < _muon_sf("id", pt, eta))
    lost = (iso < MUON_ISO_CUT) & (u[1] >= _muon_sf("iso", pt, eta))
    return tight, np.where(lost, iso + MUON_ISO_CUT, iso)


def two_body_decay(
    rng: np.random.Generator, m: np.ndarray, pt: np.ndarray, y: np.ndarray, phi: np.ndarray,
    daughter_mass: float,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Isotropic two-body decay in the parent rest frame, boosted to the lab.

    Returns ``(pt, eta, phi)`` of the two daughters (float64).
    """
    n = len(m)
    mt = np.sqrt(m * m + pt * pt)
    energy = mt * np.cosh(y)
    bx, by, bz = pt * np.cos(phi) / energy, pt * np.sin(phi) / energy, mt * np.sinh(y) / energy
    gamma = energy / m
    pstar = np.sqrt(np.maximum(m * m / 4.0 - daughter_mass**2, 0.0))
    estar = np.sqrt(pstar * pstar + daughter_mass**2)
    cos_t = rng.uniform(-1.0, 1.0, n)
    sin_t = np.sqrt(1.0 - cos_t * cos_t)
    azim = rng.uniform(0.0, TWO_PI, n)
    qx, qy, qz = pstar * sin_t * np.cos(azim), pstar * sin_t * np.sin(azim), pstar * cos_t
    out = []
    for sign in (1.0, -1.0):
        kx, ky, kz = sign * qx, sign * qy, sign * qz
        f = gamma * (gamma / (gamma + 1.0) * (bx * kx + by * ky + bz * kz) + estar)
        lx, ly, lz = kx + f * bx, ky + f * by, kz + f * bz
        lpt = np.maximum(np.hypot(lx, ly), 1e-9)
        out.append((lpt, np.arcsinh(lz / lpt), np.arctan2(ly, lx)))
    return out[0], out[1]


def _sorted_collection(
    event_index: np.ndarray, n: int, fields: dict[str, np.ndarray]
) -> Collection:
    """Group flat objects by event and sort each event's objects by pt, descending.

    The sort key packs the event index above the bit pattern of the (positive) float32
    pt, whose integer order is its numeric order: one stable int64 argsort does it.
    """
    pt_bits = fields["pt"].view(np.int32).astype(np.int64)
    key = (event_index.astype(np.int64) << 31) | (0x7FFFFFFF - pt_bits)
    order = np.argsort(key, kind="stable")
    counts = np.bincount(event_index, minlength=n).astype(np.int32)
    return counts, {k: v[order] for k, v in fields.items()}


def muons(rng: np.random.Generator, n: int, is_mc: bool) -> Collection:
    """Prompt dimuons from Z/DY plus soft non-prompt muons; sorted by pt."""
    f_z, f_dy = MIXTURE
    u = rng.random(n)
    is_z, is_dy = u < f_z, (u >= f_z) & (u < f_z + f_dy)
    prompt = np.flatnonzero(is_z | is_dy)
    n_z = int(is_z.sum())
    mass = np.empty(len(prompt))
    z_in_prompt = is_z[prompt]
    mass[z_in_prompt] = _truncated_breit_wigner(rng, n_z, 50.0, 200.0)
    mass[~z_in_prompt] = _power_law(rng, len(prompt) - n_z, 15.0, 300.0, 3.0)
    boson_pt = rng.gamma(1.3, 8.0, len(prompt))
    boson_y = rng.normal(0.0, 1.8, len(prompt))
    boson_phi = rng.uniform(-np.pi, np.pi, len(prompt))
    (pt1, eta1, phi1), (pt2, eta2, phi2) = two_body_decay(
        rng, mass, boson_pt, boson_y, boson_phi, MUON_MASS
    )
    q1 = rng.integers(0, 2, len(prompt)) * 2 - 1
    p_evt = np.concatenate([prompt, prompt])
    p_pt = np.concatenate([pt1, pt2])
    p_pt = p_pt * (1.0 + rng.normal(0.0, 0.02, len(p_pt)))  # ~2% momentum resolution
    p_eta = np.concatenate([eta1, eta2])
    p_phi = np.concatenate([phi1, phi2])
    p_q = np.concatenate([q1, -q1])
    n_p = len(p_pt)
    p_tight = rng.random(n_p) < 0.95
    p_iso = rng.exponential(0.03, n_p)
    p_dxy = rng.normal(0.0, 0.002, n_p)
    p_dz = rng.normal(0.0, 0.006, n_p)

    # non-prompt muons: 0-2 in events without a prompt dimuon, plus occasional extras
    n_np = np.where(is_z | is_dy, 0, rng.choice(3, n, p=[0.45, 0.40, 0.15]))
    n_np = n_np + (rng.random(n) < 0.05)
    s_evt = np.repeat(np.arange(n), n_np)
    n_s = len(s_evt)
    s_pt = MUON_PT_MIN + rng.exponential(4.0, n_s)
    s_eta = rng.uniform(-MUON_ETA_MAX, MUON_ETA_MAX, n_s)
    s_phi = rng.uniform(-np.pi, np.pi, n_s)
    s_q = rng.integers(0, 2, n_s) * 2 - 1
    s_tight = rng.random(n_s) < 0.60
    s_iso = 0.05 + rng.exponential(0.35, n_s)
    s_dxy = rng.laplace(0.0, 0.03, n_s)
    s_dz = rng.laplace(0.0, 0.08, n_s)

    evt = np.concatenate([p_evt, s_evt])
    pt = np.concatenate([p_pt, s_pt])
    eta = np.concatenate([p_eta, s_eta])
    tight = np.concatenate([p_tight, s_tight])
    iso = np.concatenate([p_iso, s_iso])
    if not is_mc:  # only data draws these numbers: the simulation's stream is unchanged
        tight, iso = _data_efficiencies(rng, pt, eta, tight, iso)
    keep = (pt > MUON_PT_MIN) & (np.abs(eta) < MUON_ETA_MAX)
    fields = {
        "pt": _f32(pt),
        "eta": _f32(eta),
        "phi": _f32(np.concatenate([p_phi, s_phi])),
        "mass": np.full(len(pt), MUON_MASS, dtype=np.float32),
        "charge": np.concatenate([p_q, s_q]).astype(np.int32),
        "tightId": tight,
        "pfRelIso04_all": _f32(iso),
        "dxy": _f32(np.concatenate([p_dxy, s_dxy])),
        "dz": _f32(np.concatenate([p_dz, s_dz])),
    }
    return _sorted_collection(evt[keep], n, {k: v[keep] for k, v in fields.items()})


def electrons(rng: np.random.Generator, n: int) -> Collection:
    """0-2 mostly soft electrons per event; sorted by pt."""
    counts = rng.choice(3, n, p=[0.55, 0.35, 0.10])
    evt = np.repeat(np.arange(n), counts)
    k = len(evt)
    fields = {
        "pt": _f32(5.0 + rng.exponential(8.0, k)),
        "eta": _f32(rng.uniform(-2.5, 2.5, k)),
        "phi": _f32(rng.uniform(-np.pi, np.pi, k)),
        "mass": _f32(np.abs(rng.normal(ELECTRON_MASS, 0.002, k))),
        "charge": (rng.integers(0, 2, k) * 2 - 1).astype(np.int32),
        "cutBased": rng.choice(5, k, p=[0.35, 0.15, 0.15, 0.15, 0.20]).astype(np.int32),
        "pfRelIso03_all": _f32(rng.exponential(0.15, k)),
        "dxy": _f32(rng.normal(0.0, 0.01, k)),
        "dz": _f32(rng.normal(0.0, 0.02, k)),
    }
    return _sorted_collection(evt, n, fields)


def jets(rng: np.random.Generator, n: int, is_mc: bool) -> Collection:
    """Poisson(2.7) AK4 jets above 15 GeV with a Pareto-like pt tail; sorted by pt."""
    counts = rng.poisson(2.7, n)
    evt = np.repeat(np.arange(n), counts)
    k = len(evt)
    pt = np.minimum(15.0 * (1.0 - rng.random(k)) ** (-1.0 / 2.8), 6500.0)
    eta = rng.normal(0.0, 2.0, k)
    outside = np.abs(eta) >= 4.7
    eta[outside] = rng.uniform(-4.7, 4.7, int(outside.sum()))
    u = rng.random(k)
    flavour = np.where(u < 0.08, 5, np.where(u < 0.20, 4, 0)).astype(np.int32)
    p_tagged = np.where(flavour == 5, 0.80, np.where(flavour == 4, 0.15, 0.02))
    tagged = rng.random(k) < p_tagged
    btag = np.empty(k)
    n_tagged = int(tagged.sum())
    btag[tagged] = rng.beta(6.0, 1.0, n_tagged)
    btag[~tagged] = rng.beta(0.5, 12.0, k - n_tagged)
    fields = {
        "pt": _f32(pt),
        "eta": _f32(eta),
        "phi": _f32(rng.uniform(-np.pi, np.pi, k)),
        "mass": _f32(pt * rng.uniform(0.08, 0.22, k)),
        "btagDeepFlavB": _f32(btag),
        "jetId": rng.choice(np.array([6, 2, 0], dtype=np.int32), k, p=[0.90, 0.07, 0.03]),
    }
    if is_mc:
        fields["hadronFlavour"] = flavour
    return _sorted_collection(evt, n, fields)


def event_level(
    rng: np.random.Generator, n: int, is_mc: bool, mu: Collection, ele: Collection
) -> dict[str, np.ndarray]:
    """Weights, pileup, MET, flags and trigger bits (in NanoAOD branch order)."""
    out: dict[str, np.ndarray] = {}
    if is_mc:
        sign = np.where(rng.random(n) < NEGATIVE_WEIGHT_FRACTION, -1.0, 1.0)
        out["genWeight"] = _f32(sign * GEN_WEIGHT)
    true_int = rng.gamma(*(MC_PILEUP if is_mc else DATA_PILEUP), n)
    npv = rng.poisson(0.9 * true_int).astype(np.int32)
    npv[rng.random(n) < 0.005] = 0
    out["PV_npvsGood"] = npv
    flags = {
        "Flag_goodVertices": (rng.random(n) >= 0.001) & (npv > 0),
        "Flag_globalSuperTightHalo2016Filter": rng.random(n) >= 0.001,
        "Flag_HBHENoiseFilter": rng.random(n) >= 0.001,
        "Flag_HBHENoiseIsoFilter": rng.random(n) >= 0.001,
        "Flag_EcalDeadCellTriggerPrimitiveFilter": rng.random(n) >= 0.0005,
        "Flag_BadPFMuonFilter": rng.random(n) >= 0.0005,
        "Flag_eeBadScFilter": rng.random(n) >= 0.0002,
    }
    met_filters = np.logical_and.reduce(list(flags.values()))
    out.update(flags)
    out["Flag_METFilters"] = met_filters

    mu_counts, mu_f = mu
    first = np.concatenate([[0], np.cumsum(mu_counts)[:-1]])
    has_mu = mu_counts > 0
    lead = first[has_mu]
    mu_ok = np.zeros(n, dtype=bool)
    mu_ok[has_mu] = (
        (mu_f["pt"][lead] > 24.0)
        & (mu_f["pfRelIso04_all"][lead] < 0.15)
        & (np.abs(mu_f["eta"][lead]) < 2.4)
    )
    out["HLT_IsoMu24"] = rng.random(n) < np.where(mu_ok, 0.90, 0.01)
    el_counts, el_f = ele
    first = np.concatenate([[0], np.cumsum(el_counts)[:-1]])
    has_el = el_counts > 0
    lead = first[has_el]
    el_ok = np.zeros(n, dtype=bool)
    el_ok[has_el] = (el_f["pt"][lead] > 32.0) & (el_f["cutBased"][lead] >= 4)
    out["HLT_Ele32_WPTight_Gsf"] = rng.random(n) < np.where(el_ok, 0.85, 0.005)

    out["MET_pt"] = _f32(rng.rayleigh(20.0, n))
    out["MET_phi"] = _f32(rng.uniform(-np.pi, np.pi, n))
    if is_mc:
        out["Pileup_nTrueInt"] = _f32(true_int)
    return out

"""Vectorised event physics of the synthetic AGC ttbar samples (see ``agc.py``).

A process is drawn as partons: top quarks decayed to ``b W`` and W bosons to quarks or
leptons (two-body decays, isotropic in the rest frame, boosted to the lab), plus extra
radiated jets. Partons become reconstructed objects with a jet response and resolution, a
``btagCSVV2`` drawn by flavour and lepton identification variables drawn for prompt leptons
and for non-prompt ones from heavy-flavour decays. Every function draws from the one
``numpy.random.Generator`` it is given, in a fixed order, so the result is a pure function of
the generator state and ``n``. Objects are flat arrays with the index of their event; a
collection is returned as ``(counts, fields)`` sorted by decreasing pT within each event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOP_MASS, TOP_WIDTH = 172.5, 1.35
W_MASS, W_WIDTH = 80.38, 2.09
B_MASS = 4.8
ELECTRON_MASS, MUON_MASS = 0.000511, 0.10566
TWO_PI = 2.0 * np.pi

# object kinds
_B, _C, _LIGHT, _ELECTRON, _MUON, _INVISIBLE = range(6)
#: W decay modes (e nu, mu nu, tau nu, quarks): all of them, or the leptonic ones only.
INCLUSIVE = (1 / 9, 1 / 9, 1 / 9, 6 / 9)
LEPTONIC = (1 / 3, 1 / 3, 1 / 3, 0.0)

Collection = tuple[np.ndarray, dict[str, np.ndarray]]
_F32, _I32 = np.float32, np.int32


@dataclass(frozen=True)
class Model:
    """How the events of one process are drawn.

    ``process``: ``ttbar``, ``single_top_s_chan``, ``single_top_t_chan``, ``single_top_tW`` or
    ``wjets``. ``top_pt``: mean top-quark (or W, for W+jets) pT in GeV; ``extra_jets``: mean
    number of radiated jets (the ratio of successive multiplicities for W+jets);
    ``extra_jet_slope``: their pT spectrum ~ pT**-slope from 20 GeV; ``response`` and
    ``resolution``: the jets' pT scale and relative Gaussian resolution; ``b_tag``: a b jet's
    ``btagCSVV2`` ~ Beta(b_tag, 1); ``gen_weight`` and ``negative_fraction``: the magnitude of
    ``genWeight`` and the fraction of negative weights.
    """

    process: str
    top_pt: float = 95.0
    extra_jets: float = 1.0
    extra_jet_slope: float = 2.6
    response: float = 1.0
    resolution: float = 0.10
    b_tag: float = 1.5
    gen_weight: float = 1.0
    negative_fraction: float = 0.0


def _vector(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray | float) -> np.ndarray:
    """``(4, n)`` four-vectors ``(E, px, py, pz)``."""
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.stack([np.sqrt(px * px + py * py + pz * pz + mass * mass), px, py, pz])


def _pt_eta_phi(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.maximum(np.hypot(v[1], v[2]), 1e-9)
    return pt, np.arcsinh(v[3] / pt), np.arctan2(v[2], v[1])


def _breit_wigner(rng: np.random.Generator, n: int, mass: float, width: float, span: float) -> np.ndarray:
    """Cauchy masses within ``mass ± span``, by inverse CDF."""
    half = width / 2.0
    a = np.arctan(-span / half)
    return mass + half * np.tan(a + rng.random(n) * (-2.0 * a))


def _power_law(rng: np.random.Generator, n: int, lo: float, hi: float, k: float) -> np.ndarray:
    e = 1.0 - k
    return (lo**e + rng.random(n) * (hi**e - lo**e)) ** (1.0 / e)


def _decay(rng: np.random.Generator, parent: np.ndarray, mass: np.ndarray,
           m1: np.ndarray | float, m2: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Two-body decay of ``parent`` (mass ``mass``), isotropic in its rest frame."""
    n = parent.shape[1]
    p = np.sqrt(np.maximum((mass**2 - (m1 + m2) ** 2) * (mass**2 - (m1 - m2) ** 2), 0.0)) / (2 * mass)
    cos = rng.uniform(-1.0, 1.0, n)
    sin = np.sqrt(1.0 - cos * cos)
    phi = rng.uniform(0.0, TWO_PI, n)
    direction = np.stack([sin * np.cos(phi), sin * np.sin(phi), cos])
    beta = parent[1:] / parent[0]
    gamma = parent[0] / mass
    beta2 = np.maximum(np.sum(beta * beta, axis=0), 1e-12)
    out = []
    for m, sign in ((m1, 1.0), (m2, -1.0)):
        e_star = np.sqrt(p * p + m * m)
        p_star = sign * p * direction
        bp = np.sum(beta * p_star, axis=0)
        p_lab = p_star + ((gamma - 1.0) * bp / beta2 + gamma * e_star) * beta
        out.append(np.concatenate([(gamma * (e_star + bp))[None], p_lab]))
    return out[0], out[1]


def _boson(rng: np.random.Generator, n: int, pt_mean: float, eta_sigma: float,
           mass: np.ndarray, phi: np.ndarray | None = None) -> np.ndarray:
    pt = rng.gamma(2.0, pt_mean / 2.0, n)
    eta = rng.normal(0.0, eta_sigma, n)
    phi = rng.uniform(0.0, TWO_PI, n) if phi is None else phi
    return _vector(pt, eta, phi, mass)


def _w_decay(rng: np.random.Generator, w: np.ndarray, w_mass: np.ndarray,
             modes: tuple[float, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two visible-or-not daughters of W bosons as ``(vector, kind)`` slots.

    Quarks: the second is a c quark half of the time. Leptons: e or mu and a neutrino; a tau
    gives a jet (65 %) or an e or mu (35 %) carrying a random fraction of its momentum.
    """
    n = w.shape[1]
    mode = rng.choice(4, n, p=modes)
    d1, d2 = _decay(rng, w, w_mass, 0.0, 0.0)
    tau_kind = np.where(rng.random(n) < 0.65, _LIGHT, np.where(rng.random(n) < 0.5, _ELECTRON, _MUON))
    tau_fraction = rng.uniform(0.25, 0.85, n)
    c_quark = rng.random(n) < 0.5
    kind1 = np.select([mode == 0, mode == 1, mode == 2], [_ELECTRON, _MUON, tau_kind], _LIGHT)
    kind2 = np.where(mode == 3, np.where(c_quark, _C, _LIGHT), _INVISIBLE)
    d1 = np.where(mode == 2, d1 * tau_fraction, d1)
    return [(d1, kind1), (d2, kind2)]


def _top(rng: np.random.Generator, top: np.ndarray, top_mass: np.ndarray,
         modes: tuple[float, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    n = top.shape[1]
    w_mass = _breit_wigner(rng, n, W_MASS, W_WIDTH, 15.0)
    b, w = _decay(rng, top, top_mass, B_MASS, w_mass)
    return [(b, np.full(n, _B)), *_w_decay(rng, w, w_mass, modes)]


def _partons(rng: np.random.Generator, n: int, model: Model) -> list[tuple[np.ndarray, np.ndarray]]:
    """The hard process's final-state partons and leptons, a fixed number of slots per event."""
    def top_mass() -> np.ndarray:
        return _breit_wigner(rng, n, TOP_MASS, TOP_WIDTH, 20.0)

    if model.process == "ttbar":
        m1, m2 = top_mass(), top_mass()
        t1 = _boson(rng, n, model.top_pt, 1.3, m1)
        pt1, _, phi1 = _pt_eta_phi(t1)
        pt2 = pt1 * np.exp(rng.normal(0.0, 0.3, n))
        t2 = _vector(pt2, rng.normal(0.0, 1.3, n), phi1 + np.pi + rng.normal(0.0, 0.4, n), m2)
        return [*_top(rng, t1, m1, INCLUSIVE), *_top(rng, t2, m2, INCLUSIVE)]
    if model.process == "single_top_s_chan":
        m = top_mass()
        t = _boson(rng, n, model.top_pt, 1.5, m)
        b = _boson(rng, n, 45.0, 1.6, B_MASS)
        return [*_top(rng, t, m, LEPTONIC), (b, np.full(n, _B))]
    if model.process == "single_top_t_chan":
        m = top_mass()
        t = _boson(rng, n, model.top_pt, 1.5, m)
        forward = _vector(rng.gamma(2.0, 22.0, n), rng.choice([-1.0, 1.0], n) * np.abs(rng.normal(2.4, 0.9, n)),
                          rng.uniform(0.0, TWO_PI, n), 0.0)
        spectator_b = _boson(rng, n, 20.0, 2.0, B_MASS)
        return [*_top(rng, t, m, INCLUSIVE), (forward, np.full(n, _LIGHT)), (spectator_b, np.full(n, _B))]
    if model.process == "single_top_tW":
        m = top_mass()
        t = _boson(rng, n, model.top_pt, 1.4, m)
        _, _, phi = _pt_eta_phi(t)
        w_mass = _breit_wigner(rng, n, W_MASS, W_WIDTH, 15.0)
        w = _boson(rng, n, model.top_pt * 0.9, 1.4, w_mass, phi + np.pi + rng.normal(0.0, 0.5, n))
        return [*_top(rng, t, m, INCLUSIVE), *_w_decay(rng, w, w_mass, INCLUSIVE)]
    if model.process == "wjets":
        w_mass = _breit_wigner(rng, n, W_MASS, W_WIDTH, 15.0)
        w = _boson(rng, n, model.top_pt, 2.0, w_mass)
        return _w_decay(rng, w, w_mass, LEPTONIC)
    raise ValueError(f"unknown AGC process {model.process!r}")


def _b_tag(rng: np.random.Generator, kind: np.ndarray, b_shape: float) -> np.ndarray:
    """btagCSVV2 by flavour: b ~ Beta(b_shape, 1) (65 % above 0.5 for 1.5), c ~ Beta(1.3, 1.6)
    (37 %), light ~ Beta(1, 3.3) (10 %)."""
    n = len(kind)
    b = rng.beta(b_shape, 1.0, n)
    c = rng.beta(1.3, 1.6, n)
    light = rng.beta(1.0, 3.3, n)
    return np.select([kind == _B, kind == _C], [b, c], light)


def _sorted(event: np.ndarray, fields: dict[str, np.ndarray], keep: np.ndarray, n: int) -> Collection:
    """Keep ``keep``, order by event then decreasing pT, and count per event."""
    event = event[keep]
    fields = {k: v[keep] for k, v in fields.items()}
    order = np.lexsort((-fields["pt"], event))
    return (np.bincount(event, minlength=n).astype(np.int32), {k: v[order] for k, v in fields.items()})


def _jets(rng: np.random.Generator, n: int, model: Model, event: np.ndarray, vec: np.ndarray,
          kind: np.ndarray) -> Collection:
    # radiated jets: Poisson (top processes) or geometric (W+jets, Berends scaling) multiplicity
    if model.process == "wjets":
        extra = rng.geometric(1.0 - model.extra_jets, n) - 1
        heavy = (0.05, 0.10)
    else:
        extra = rng.poisson(model.extra_jets, n)
        heavy = (0.02, 0.04)
    e_event = np.repeat(np.arange(n), extra)
    m = len(e_event)
    e_vec = _vector(_power_law(rng, m, 20.0, 1500.0, model.extra_jet_slope), rng.normal(0.0, 2.0, m),
                    rng.uniform(0.0, TWO_PI, m), 0.0)
    e_kind = rng.choice([_B, _C, _LIGHT], m, p=[heavy[0], heavy[1], 1.0 - sum(heavy)])
    event = np.concatenate([event, e_event])
    vec = np.concatenate([vec, e_vec], axis=1)
    kind = np.concatenate([kind, e_kind])
    k = len(event)
    pt, eta, phi = _pt_eta_phi(vec)
    pt = pt * np.maximum(rng.normal(model.response, model.resolution, k), 0.05)
    eta = eta + rng.normal(0.0, 0.02, k)
    phi = np.mod(phi + rng.normal(0.0, 0.02, k) + np.pi, TWO_PI) - np.pi
    fields = {"pt": pt.astype(_F32), "eta": eta.astype(_F32), "phi": phi.astype(_F32),
              "mass": (pt * rng.uniform(0.06, 0.2, k)).astype(_F32),
              "btagCSVV2": _b_tag(rng, kind, model.b_tag).astype(_F32)}
    return _sorted(event, fields, (pt > 15.0) & (np.abs(eta) < 4.7), n)


def _leptons(rng: np.random.Generator, n: int, event: np.ndarray, vec: np.ndarray, flavour: int) -> Collection:
    """Prompt leptons (``event``, ``vec``) plus non-prompt ones, with their ID variables."""
    counts = rng.poisson(0.3, n)
    np_event = np.repeat(np.arange(n), counts)
    m = len(np_event)
    lo = 5.0 if flavour == _ELECTRON else 3.0
    np_vec = _vector(_power_law(rng, m, lo, 300.0, 2.8), rng.normal(0.0, 1.3, m), rng.uniform(0.0, TWO_PI, m), 0.0)
    k = len(event)
    event_all = np.concatenate([event, np_event])
    prompt = np.arange(k + m) < k
    pt, eta, phi = _pt_eta_phi(np.concatenate([vec, np_vec], axis=1))
    pt = pt * rng.normal(1.0, 0.02, k + m)
    sip3d = np.where(prompt, np.abs(rng.normal(0.0, 1.4, k + m)), rng.exponential(5.0, k + m))
    fields = {"pt": pt.astype(_F32), "eta": eta.astype(_F32), "phi": phi.astype(_F32)}
    if flavour == _ELECTRON:
        fields["mass"] = np.full(k + m, ELECTRON_MASS, _F32)
        fields["cutBased"] = np.where(
            prompt, rng.choice(5, k + m, p=[0.0, 0.03, 0.05, 0.10, 0.82]),
            rng.choice(5, k + m, p=[0.4, 0.25, 0.15, 0.1, 0.1])).astype(_I32)
        fields["sip3d"] = sip3d.astype(_F32)
        keep = (pt > 5.0) & (np.abs(eta) < 2.5)
    else:
        fields["mass"] = np.full(k + m, MUON_MASS, _F32)
        fields["tightId"] = rng.random(k + m) < np.where(prompt, 0.97, 0.6)
        fields["sip3d"] = sip3d.astype(_F32)
        fields["pfRelIso04_all"] = np.where(prompt, rng.exponential(0.03, k + m),
                                            rng.exponential(0.5, k + m)).astype(_F32)
        keep = (pt > 3.0) & (np.abs(eta) < 2.4)
    return _sorted(event_all, fields, keep, n)


def events(rng: np.random.Generator, n: int, model: Model, is_mc: bool) -> tuple[dict[str, np.ndarray], dict[str, Collection]]:
    """``n`` events of ``model``: the scalars (``genWeight`` for MC) and the collections."""
    slots = _partons(rng, n, model)
    k = len(slots)
    vec = np.concatenate([v for v, _ in slots], axis=1)  # slot-major: slot j of event i at j*n + i
    kind = np.concatenate([t for _, t in slots])
    event = np.tile(np.arange(n), k)
    jet = (kind == _B) | (kind == _C) | (kind == _LIGHT)
    ele, mu = kind == _ELECTRON, kind == _MUON
    collections = {
        "Jet": _jets(rng, n, model, event[jet], vec[:, jet], kind[jet]),
        "Electron": _leptons(rng, n, event[ele], vec[:, ele], _ELECTRON),
        "Muon": _leptons(rng, n, event[mu], vec[:, mu], _MUON),
    }
    scalars: dict[str, np.ndarray] = {}
    if is_mc:
        sign = np.where(rng.random(n) < model.negative_fraction, -1.0, 1.0)
        scalars["genWeight"] = (sign * model.gen_weight * np.exp(rng.normal(0.0, 0.05, n))).astype(_F32)
    return scalars, collections


def take(collection: Collection, index: np.ndarray) -> Collection:
    """The collection of the events ``index`` (a permutation or a selection), in that order."""
    counts, fields = collection
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    new_counts = counts[index]
    new_offsets = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(new_counts, out=new_offsets[1:])
    items = np.repeat(offsets[index] - new_offsets[:-1], new_counts) + np.arange(new_offsets[-1])
    return new_counts, {k: v[items] for k, v in fields.items()}

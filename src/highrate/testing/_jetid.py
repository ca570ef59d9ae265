"""NanoAOD v15 jet content for the synthetic generator: energy fractions and multiplicities in
place of ``Jet_jetId``.

v15 dropped ``Jet_jetId``; analyses recompute the jet ID from ``neHEF, neEmEF, chHEF, chEmEF,
muEF, chMultiplicity, neMultiplicity`` (the Run-3 recipe of :mod:`highrate.jetid`). The
generator draws the v12 ``jetId`` first, from the event stream as always, and then these
fields from a stream of their own, so that every other branch of a v15 file equals the v12
file of the same seed, and the recipe on the fractions gives the class the bits had:

- 6 (tight and tight lepton veto): passes both;
- 2 (tight, not tight lepton veto): a muon- or electron-like jet (``muEF`` or ``chEmEF`` of
  0.81-0.95) within |η| ≤ 2.7. Beyond 2.7 the recipe's lepton veto is the tight ID itself, so
  no jet can be tight without passing it: there such a jet passes both, as 6;
- 0 (neither): fails the tight cuts of its |η| region, by one of that region's reasons.

Values keep at least 0.002 from every cut, so the float32 values written decide as drawn.
"""

from __future__ import annotations

import numpy as np

NANOAOD_VERSIONS = (12, 15)
_F32, _U8 = np.dtype(np.float32), np.dtype(np.uint8)
#: The v15 jet fields that replace ``jetId``, with NanoAOD's types (multiplicities are bytes).
RUN3_JET_ID_FIELDS: dict[str, np.dtype] = {
    "neHEF": _F32, "neEmEF": _F32, "chHEF": _F32, "chEmEF": _F32, "muEF": _F32,
    "chMultiplicity": _U8, "neMultiplicity": _U8,
}

Collection = tuple[np.ndarray, dict[str, np.ndarray]]


def check_version(version: int) -> int:
    """``version`` if the generator writes that NanoAOD content, else a ValueError."""
    if isinstance(version, bool) or version not in NANOAOD_VERSIONS:
        raise ValueError(f"nanoaod_version must be one of {', '.join(map(str, NANOAOD_VERSIONS))}, got {version!r}")
    return int(version)


def replace_jet_id(fields: dict, new: dict) -> dict:
    """``fields`` with ``jetId`` replaced by ``new``, in its place (the schema and the arrays
    keep one order)."""
    out: dict = {}
    for name, value in fields.items():
        if name == "jetId":
            out.update(new)
        else:
            out[name] = value
    return out


def run3_jets(rng: np.random.Generator, jets: Collection) -> Collection:
    """The v12 jets ``(counts, fields)`` as v15 stores them: ``jetId`` replaced by the fractions
    and multiplicities that the Run-3 recipe classifies alike (drawn from ``rng`` alone)."""
    counts, fields = jets
    new = jet_id_fractions(rng, fields["eta"], fields["jetId"])
    return counts, replace_jet_id(fields, new)


def jet_id_fractions(rng: np.random.Generator, eta: np.ndarray, jet_id: np.ndarray) -> dict[str, np.ndarray]:
    """Per jet, fractions and multiplicities for which the recipe gives the class of ``jet_id``
    (6, 2 or 0) at the jet's (float32) ``eta``.

    Every jet draws the same numbers in the same order, whatever its class and region, so the
    draws are a function of the number of jets only."""
    k = len(eta)
    aeta = np.abs(np.asarray(eta, dtype=np.float32).astype(np.float64))  # what the recipe compares
    tracked = aeta <= 2.7  # charged particles reach these jets; beyond, the jets are neutral
    central, edge = aeta <= 2.6, (aeta > 2.6) & tracked
    transition, forward = (aeta > 2.7) & (aeta <= 3.0), aeta > 3.0
    u = rng.random((4, k))
    share = rng.dirichlet((6.0, 2.0, 1.5, 2.5, 0.05), k).T  # chHEF, neHEF, chEmEF, neEmEF, muEF
    n_ch = 1 + rng.poisson(8.0, k)
    n_ne = 2 + rng.poisson(4.0, k)
    mode = rng.integers(0, 5, k)  # which of its region's cuts a failing jet fails
    muon_like = rng.random(k) < 0.5

    # passing both, in every region: charged jets with a floor of charged hadrons and no
    # fraction near a cut; neutral jets beyond |eta| 2.7 with some photons (< 0.4)
    ch_hef = 0.02 + 0.98 * share[0]
    ne_hef = np.minimum(0.98 * share[1], 0.85)
    ch_em = np.minimum(0.98 * share[2], 0.7)
    ne_em = np.minimum(0.98 * share[3], 0.85)
    mu = np.minimum(0.98 * share[4], 0.7)
    photons = 0.02 + 0.36 * u[0]
    neutral = ~tracked
    ch_hef[neutral], ch_em[neutral], mu[neutral], n_ch[neutral] = 0.0, 0.0, 0.0, 0
    ne_em[neutral], ne_hef[neutral] = photons[neutral], 1.0 - photons[neutral]

    # 2: a lepton carries 0.81-0.95 of the energy, the rest is a little of everything
    lep = (jet_id == 2) & tracked
    lead = 0.81 + 0.14 * u[1]
    rest = 1.0 - lead
    c = rest * (0.3 + 0.4 * u[2])  # >= 0.015: above the central region's chHEF > 0.01
    h = (rest - c) * u[3]
    ch_hef[lep], ne_hef[lep], ne_em[lep] = c[lep], h[lep], (rest - c - h)[lep]
    mu[lep] = np.where(muon_like, lead, 0.0)[lep]
    ch_em[lep] = np.where(muon_like, 0.0, lead)[lep]

    failing = jet_id == 0
    _fail_central(failing & central, mode, u, ch_hef, ne_hef, ch_em, ne_em, mu, n_ch, n_ne)
    _fail_edge(failing & edge, mode, u, ch_hef, ne_hef, ch_em, ne_em, mu)
    hadron = failing & transition  # the transition region's only cut: neHEF < 0.99
    ne_hef[hadron] = 0.992 + 0.008 * u[1][hadron]
    ne_em[hadron] = 1.0 - ne_hef[hadron]
    few = failing & forward & (mode % 2 == 0)  # forward: fewer than 2 neutral particles ...
    n_ne[few] = (u[2][few] < 0.5).astype(n_ne.dtype)
    em = failing & forward & (mode % 2 == 1)  # ... or photons above 0.4
    ne_em[em] = 0.45 + 0.5 * u[1][em]
    ne_hef[em] = 1.0 - ne_em[em]
    return {
        "neHEF": ne_hef.astype(np.float32), "neEmEF": ne_em.astype(np.float32),
        "chHEF": ch_hef.astype(np.float32), "chEmEF": ch_em.astype(np.float32),
        "muEF": mu.astype(np.float32),
        "chMultiplicity": np.minimum(n_ch, 255).astype(np.uint8),
        "neMultiplicity": np.minimum(n_ne, 255).astype(np.uint8),
    }


def _fail_central(sel: np.ndarray, mode: np.ndarray, u: np.ndarray, ch_hef: np.ndarray, ne_hef: np.ndarray,
                  ch_em: np.ndarray, ne_em: np.ndarray, mu: np.ndarray, n_ch: np.ndarray, n_ne: np.ndarray) -> None:
    """|eta| <= 2.6, in place: each jet of ``sel`` fails one of the tight cuts, chosen by ``mode``."""
    hadron = sel & (mode == 0)  # neHEF >= 0.99: a neutral hadron, no charged particle
    ne_hef[hadron] = 0.992 + 0.008 * u[1][hadron]
    ne_em[hadron] = 1.0 - ne_hef[hadron]
    ch_hef[hadron], ch_em[hadron], mu[hadron], n_ch[hadron] = 0.0, 0.0, 0.0, 0
    photon = sel & (mode == 1)  # neEmEF >= 0.9
    ne_em[photon] = 0.902 + 0.09 * u[1][photon]
    ch_hef[photon] = 0.5 * (1.0 - ne_em[photon])
    ne_hef[photon] = 1.0 - ne_em[photon] - ch_hef[photon]
    ch_em[photon], mu[photon] = 0.0, 0.0
    uncharged = sel & (mode == 2)  # no charged particle, neutral fractions within the cuts
    ne_em[uncharged] = 0.1 + 0.7 * u[1][uncharged]
    ne_hef[uncharged] = 1.0 - ne_em[uncharged]
    ch_hef[uncharged], ch_em[uncharged], mu[uncharged], n_ch[uncharged] = 0.0, 0.0, 0.0, 0
    single = sel & (mode == 3)  # one charged hadron alone: multiplicity 1
    ch_hef[single], ne_hef[single], ch_em[single], ne_em[single], mu[single] = 1.0, 0.0, 0.0, 0.0, 0.0
    n_ch[single], n_ne[single] = 1, 0
    soft = sel & (mode == 4)  # chHEF <= 0.01 with charged particles (electrons)
    ch_hef[soft] = 0.008 * u[1][soft]
    ch_em[soft] = 0.05 * u[2][soft]
    ne_hef[soft] = (1.0 - ch_hef[soft] - ch_em[soft]) * (0.3 + 0.4 * u[3][soft])
    ne_em[soft] = 1.0 - ch_hef[soft] - ch_em[soft] - ne_hef[soft]
    mu[soft] = 0.0


def _fail_edge(sel: np.ndarray, mode: np.ndarray, u: np.ndarray, ch_hef: np.ndarray, ne_hef: np.ndarray,
               ch_em: np.ndarray, ne_em: np.ndarray, mu: np.ndarray) -> None:
    """2.6 < |eta| <= 2.7, in place: neHEF >= 0.9 or neEmEF >= 0.99, the rest charged hadrons."""
    hadron = sel & (mode % 2 == 0)
    ne_hef[hadron] = 0.902 + 0.09 * u[1][hadron]
    ne_em[hadron] = 0.0
    photon = sel & (mode % 2 == 1)
    ne_em[photon] = 0.992 + 0.008 * u[1][photon]
    ne_hef[photon] = 0.0
    both = hadron | photon
    ch_hef[both] = 1.0 - ne_hef[both] - ne_em[both]
    ch_em[both], mu[both] = 0.0, 0.0

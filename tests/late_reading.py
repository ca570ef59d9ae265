"""Late (deferred) branches equal a full read: the same check for TTree and RNTuple files."""

from __future__ import annotations

import numpy as np

from highrate.data.io.reader import read_columns, read_columns_costed

NAMES = ["nMuon", "Muon_pt", "Muon_eta", "nJet", "Jet_pt", "genWeight", "HLT_IsoMu24"]
LATE = ["Muon_eta", "Jet_pt", "genWeight", "nJet"]  # a counter asked to be late stays early


def assert_late_reading_matches(handle, ranges: list[tuple[int, int]]) -> None:
    """For each entry range: the early branches equal a full read, and the late ones, decoded for
    random rows (flat) or their objects (jagged), equal the full read's values, each decoded once."""
    rng = np.random.default_rng(1)
    for start, stop in ranges:
        full, nbytes = read_columns(handle, NAMES, start, stop, where="test")
        early, nbytes_late, _, deferred = read_columns_costed(handle, NAMES, start, stop, where="test", defer=LATE)
        assert nbytes_late == nbytes
        assert set(early) == set(NAMES) - {"Muon_eta", "Jet_pt", "genWeight"}
        for name in early:
            np.testing.assert_array_equal(early[name], full[name])
        rows = np.flatnonzero(rng.random(stop - start) < 0.4)
        np.testing.assert_array_equal(deferred.take("genWeight", rows), full["genWeight"][rows])
        for counter, name in (("nMuon", "Muon_eta"), ("nJet", "Jet_pt")):
            counts = full[counter]
            starts = np.cumsum(counts) - counts
            keep = np.concatenate([np.arange(s, s + n) for s, n in zip(starts[rows], counts[rows], strict=True)]
                                  + [[]]).astype(np.int64)
            values = deferred.take(name, keep)
            assert values.dtype.isnative and values.dtype == full[name].dtype
            np.testing.assert_array_equal(values, full[name][keep])
        assert not any(name in deferred for name in LATE)  # each decoded once
        assert not deferred._close.alive  # the file's duplicate descriptor is closed after the last

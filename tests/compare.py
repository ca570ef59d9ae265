"""Exact comparison of two run results, shared by the tests."""

from __future__ import annotations

import numpy as np

import highrate


def assert_same_result(a: highrate.Result, b: highrate.Result) -> None:
    """Bit-identical histograms (values and variances), cutflows, counts and category yields."""
    assert a.histograms.keys() == b.histograms.keys()
    for k, h in a.histograms.items():
        np.testing.assert_array_equal(h.values(), b.histograms[k].values(), err_msg=str(k))
        np.testing.assert_array_equal(h.variances(), b.histograms[k].variances(), err_msg=str(k))
    assert a.cutflow == b.cutflow
    assert_same_counts(a, b)
    assert a.categories == b.categories


def assert_same_counts(a: highrate.Result, b: highrate.Result) -> None:
    """Equal counts; the bytes read too, unless either run took columns from the cache (then it
    read fewer bytes from the files, and says so)."""
    if any(r.cache.get("columns", {}).get("hits") for r in (a, b)):
        a_counts, b_counts = ({ds: {k: v for k, v in c.items() if k != "bytes_read"} for ds, c in r.counts.items()}
                              for r in (a, b))
        assert a_counts == b_counts, (a_counts, b_counts)
    else:
        assert a.counts == b.counts, (a.counts, b.counts)


def assert_matches_reference(result: highrate.Result, truth: dict[str, dict]) -> None:
    """Cutflows, counts, yields and the baseline histograms equal ``reference_zmumu``'s numbers."""
    assert result.failed == []
    for ds, exp in truth.items():
        assert result.cutflow[ds] == exp["cutflow"], ds
        assert result.counts[ds]["total"] == exp["n"]
        assert result.counts[ds]["skimmed"] == exp["cutflow"]["skim"]
        assert result.counts[ds]["preselected"] == exp["cutflow"]["presel"]
        assert result.categories[ds]["baseline"][0] == exp["cutflow"]["presel"]
        assert result.categories[ds]["baseline"][1] == exp["sumw"]
        for name, (sumw, sumw2) in exp["hists"].items():
            h = result.histograms[(name, ds, "baseline", "nominal")]
            np.testing.assert_array_equal(h.values(), sumw, err_msg=f"{name} {ds}")
            np.testing.assert_array_equal(h.variances(), sumw2, err_msg=f"{name} {ds}")

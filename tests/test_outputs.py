"""histograms.pkl keyed like Result.histograms, old pickles still read, ROOT axis titles in TLatex."""

from __future__ import annotations

import pickle
from pathlib import Path

import hist
import numpy as np
import pytest
import uproot

from highrate.errors import ConfigError
from highrate.outputs.histograms import read_pickle, root_titles, write_pickle, write_root
from highrate.outputs.latex import to_tlatex


def _hists() -> dict[tuple[str, str, str, str], hist.Hist]:
    rng = np.random.default_rng(2)
    out = {}
    for key, label in ((("mll", "DY", "baseline", "nominal"), r"$m_{\mu\mu}$ [GeV]"),
                       (("mll", "DY", "baseline", "JESUp"), r"$m_{\mu\mu}$ [GeV]"),
                       (("pt", "Data", "2j", "nominal"), r"Leading muon $p_{T}$ [GeV]"),
                       (("njets", "DY", "baseline", "nominal"), "Number of jets")):
        h = hist.Hist(hist.axis.Regular(5, 0, 100, name="x", label=label), storage=hist.storage.Weight())
        h.fill(rng.uniform(-10, 110, 200), weight=rng.uniform(0.5, 1.5, 200))
        out[key] = h
    h2 = hist.Hist(hist.axis.Regular(3, -2.5, 2.5, name="eta", label=r"$\eta$"),
                   hist.axis.Regular(4, -np.pi, np.pi, name="phi", label=r"$\phi$"), storage=hist.storage.Weight())
    h2.fill(rng.normal(0, 1, 100), rng.uniform(-3, 3, 100))
    out[("eta_phi", "DY", "baseline", "nominal")] = h2
    return out


def test_pickle_round_trip_keeps_the_api_keys(tmp_path: Path) -> None:
    hists = _hists()
    write_pickle(tmp_path / "histograms.pkl", hists)
    raw = pickle.loads((tmp_path / "histograms.pkl").read_bytes())
    assert list(raw) == sorted(hists)  # the tuples of Result.histograms, in order
    back = read_pickle(tmp_path / "histograms.pkl")
    assert back.keys() == hists.keys()
    for key, h in hists.items():
        np.testing.assert_array_equal(back[key].values(flow=True), h.values(flow=True))
        np.testing.assert_array_equal(back[key].variances(flow=True), h.variances(flow=True))
        assert back[key].axes[0].label == h.axes[0].label  # the pickle keeps the mathtext


def test_string_keyed_pickles_are_converted_on_reading(tmp_path: Path) -> None:
    hists = _hists()
    with (tmp_path / "old.pkl").open("wb") as f:
        pickle.dump({"/".join(k): h for k, h in hists.items()}, f)
    back = read_pickle(tmp_path / "old.pkl")
    assert sorted(back) == sorted(hists)
    np.testing.assert_array_equal(back[("pt", "Data", "2j", "nominal")].values(), hists[("pt", "Data", "2j", "nominal")].values())
    with (tmp_path / "bad.pkl").open("wb") as f:
        pickle.dump({"mll/DY/nominal": hists[("mll", "DY", "baseline", "nominal")]}, f)
    with pytest.raises(ConfigError, match=r"bad\.pkl.*'mll/DY/nominal' is not 'histogram/dataset/category/variation'"):
        read_pickle(tmp_path / "bad.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ConfigError, match="holds a list"):
        read_pickle(tmp_path / "list.pkl")


def test_root_file_has_paths_and_tlatex_titles(tmp_path: Path) -> None:
    hists = _hists()
    write_root(tmp_path / "histograms.root", hists)
    with uproot.open(tmp_path / "histograms.root") as f:
        for key, h in hists.items():
            written = f["/".join(key)]
            np.testing.assert_array_equal(written.values(), h.values())
            np.testing.assert_array_equal(written.variances(), h.variances())
        assert f["mll/DY/baseline/nominal"].member("fXaxis").member("fTitle") == "#it{m}_{#mu#mu} [GeV]"
        assert f["pt/Data/2j/nominal"].member("fXaxis").member("fTitle") == "Leading muon #it{p}_{T} [GeV]"
        assert f["njets/DY/baseline/nominal"].member("fXaxis").member("fTitle") == "Number of jets"
        h2 = f["eta_phi/DY/baseline/nominal"]
        assert (h2.member("fXaxis").member("fTitle"), h2.member("fYaxis").member("fTitle")) == ("#eta", "#phi")
    assert hists[("mll", "DY", "baseline", "nominal")].axes[0].label == r"$m_{\mu\mu}$ [GeV]"  # not changed
    plain = hists[("njets", "DY", "baseline", "nominal")]
    assert root_titles(plain) is plain  # nothing to convert: no copy


@pytest.mark.parametrize(("mathtext", "tlatex"), [
    (r"$p_{T}$", "#it{p}_{T}"),
    (r"$p_T$ [GeV]", "#it{p}_{T} [GeV]"),
    (r"$m_{\mu\mu}$ [GeV]", "#it{m}_{#mu#mu} [GeV]"),
    (r"$\eta$", "#eta"),
    (r"Leading muon $\phi$", "Leading muon #phi"),
    (r"$\Delta R(\mu, j)$", "#Delta#it{R}(#mu,#it{j})"),
    (r"$\Delta\phi_{\ell\ell}$", "#Delta#phi_{#ell#ell}"),
    (r"$p_{T}^{\mathrm{miss}}$", "#it{p}_{T}^{miss}"),
    (r"$N_{\text{jets}}$", "#it{N}_{jets}"),
    (r"$\sqrt{s}$ = 13 TeV", "#sqrt{#it{s}} = 13 TeV"),
    (r"$\frac{1}{N}\frac{dN}{dx}$", "#frac{1}{#it{N}}#frac{#it{dN}}{#it{dx}}"),
    (r"$10^{3}$ events", "10^{3} events"),
    (r"$|\eta| < 2.4$", "|#eta|<2.4"),
    (r"$p_{T,\mu x}$", "#it{p}_{T,#mu{x}}"),  # braced: #mux would be another command
    (r"$Z\to\mu\mu$", "#it{Z}#rightarrow#mu#mu"),
    (r"$\bar{t}$", "#bar{#it{t}}"),
    (r"$\mathbf{p}$", "#bf{p}"),
    ("Number of jets", "Number of jets"),
    (r"costs \$5", "costs $5"),
    ("a lone $ sign", "a lone $ sign"),
    ("", ""),
])
def test_mathtext_to_tlatex(mathtext: str, tlatex: str) -> None:
    assert to_tlatex(mathtext) == tlatex


def _members_equal(ours, theirs) -> bool:
    if hasattr(theirs, "all_members"):
        return all(_members_equal(ours.all_members[m], theirs.all_members[m]) for m in theirs.all_members)
    if hasattr(theirs, "__len__") and not isinstance(theirs, str):
        return np.array_equal(np.asarray(ours), np.asarray(theirs))
    return ours == theirs


def test_root_histograms_are_those_uproot_writes(tmp_path: Path) -> None:
    """The one-axis histograms highrate converts itself have every member uproot's own conversion
    gives them; the others (2D, no flow bins, categories) go through uproot."""
    rng = np.random.default_rng(4)
    hists = _hists()
    axes = {
        "variable": hist.axis.Variable([0, 10, 25, 60, 100], name="x", label=r"$p_T$"),
        "noflow": hist.axis.Regular(5, 0, 100, name="x", underflow=False, overflow=False),
        "integer": hist.axis.Integer(0, 6, name="n"),
    }
    for name, axis in axes.items():
        for storage in (hist.storage.Weight(), hist.storage.Double()):
            h = hist.Hist(axis, storage=storage, label="entries")
            x = rng.integers(-1, 8, 300) if name == "integer" else rng.uniform(-10, 110, 300)
            h.fill(x, weight=rng.uniform(0.5, 1.5, 300))
            hists[(name, type(storage).__name__, "baseline", "nominal")] = h
    cat = hist.Hist(hist.axis.StrCategory(["a", "b"], name="c"), storage=hist.storage.Weight())
    cat.fill(["a", "b", "a"], weight=[1.0, 2.0, 3.0])
    hists[("cat", "DY", "baseline", "nominal")] = cat
    write_root(tmp_path / "ours.root", hists)
    with uproot.recreate(tmp_path / "theirs.root") as f:
        for key, h in hists.items():
            f["/".join(key)] = root_titles(h)
    with uproot.open(tmp_path / "ours.root") as ours, uproot.open(tmp_path / "theirs.root") as theirs:
        written = {k: c for k, c in theirs.classnames(cycle=False).items() if c.startswith("TH")}
        assert len(written) == len(hists)
        for key, classname in written.items():
            assert ours.classnames(cycle=False)[key] == classname, key
            assert _members_equal(ours[key], theirs[key]), key

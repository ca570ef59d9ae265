"""highrate.outputs.plotting: data/MC plots, their numbers, cutflow tables, errors, the `plot` command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import hist
import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("mplhep")

from highrate.cli.main import main
from highrate.errors import ConfigError
from highrate.outputs.histograms import write_pickle
from highrate.outputs.plotting import (
    load_outputs,
    map_contents,
    plot_outputs,
    scale_mc,
    stack_contents,
)
from highrate.outputs.plotting.maps import draw_map
from highrate.outputs.plotting.stack import draw_stack
from highrate.outputs.plotting.style import save_figure

EDGES = np.linspace(60, 120, 11)
META = {
    "DY_a": {"is_mc": True, "sample": "DY", "dataset": "DY_a", "year": "2018", "xsec": 6077.2, "lumi": 59800.0},
    "DY_b": {"is_mc": True, "sample": "DY", "dataset": "DY_b", "year": "2018", "xsec": 6077.2, "lumi": 59800.0},
    "TT": {"is_mc": True, "sample": "TTbar", "dataset": "TT", "year": "2018", "xsec": 88.3, "lumi": 59800.0},
    "Data_A": {"is_mc": False, "sample": "DATA_SingleMuon", "dataset": "Data_A", "year": "2018"},
}
MC_VARIATIONS = ("nominal", "JESUp", "JESDown", "pileupUp", "pileupDown")
CATEGORIES = ("cat_a", "cat_b")
STEPS = ("initial", "skim/trigger", "skim", "presel/two_muons", "presel")


def _arrays(seed: int) -> dict[tuple[str, str, str, str], tuple[np.ndarray, np.ndarray]]:
    """(values, variances) per (histogram, dataset, category, variation), known in advance."""
    rng = np.random.default_rng(seed)
    scale = {"DY_a": 100.0, "DY_b": 60.0, "TT": 10.0}
    out = {}
    for name in ("mll", "pt"):
        for cat in CATEGORIES:
            for ds, s in scale.items():
                nom = s * rng.uniform(0.5, 1.5, EDGES.size - 1)
                for var in MC_VARIATIONS:
                    values = nom if var == "nominal" else nom * rng.uniform(0.9, 1.1, nom.size)
                    out[(name, ds, cat, var)] = (values, values * rng.uniform(0.5, 2.0, nom.size))
            data = rng.poisson(180, EDGES.size - 1).astype(float)
            out[(name, "Data_A", cat, "nominal")] = (data, data.copy())
    return out


def _hist(values: np.ndarray, variances: np.ndarray) -> hist.Hist:
    h = hist.Hist(hist.axis.Regular(EDGES.size - 1, EDGES[0], EDGES[-1], name="mll", label=r"$m_{\mu\mu}$ [GeV]"),
                  storage=hist.storage.Weight())
    h.view()["value"] = values
    h.view()["variance"] = variances
    return h


XEDGES, YEDGES = np.linspace(-2.5, 2.5, 6), np.linspace(-np.pi, np.pi, 5)


def _maps() -> dict[tuple[str, str], np.ndarray]:
    """2D contents per (dataset, variation): MC datasets, a variation and data."""
    rng = np.random.default_rng(4)
    shape = (XEDGES.size - 1, YEDGES.size - 1)
    return {(ds, var): rng.uniform(0, 50, shape) for ds, var in
            (("DY_a", "nominal"), ("DY_b", "nominal"), ("TT", "nominal"), ("DY_a", "JESUp"), ("Data_A", "nominal"))}


def _hist2d(values: np.ndarray) -> hist.Hist:
    h = hist.Hist(hist.axis.Variable(XEDGES, name="eta", label=r"$\eta$"),
                  hist.axis.Variable(YEDGES, name="phi", label=r"$\phi$"), storage=hist.storage.Weight())
    h.view()["value"], h.view()["variance"] = values, values
    return h


def _cutflow() -> dict:
    out = {}
    for i, ds in enumerate(META):
        n = [10_000 + 1000 * i, 8000 + 500 * i, 8000 + 500 * i, 3000 + 100 * i, 3000 + 100 * i]
        out[ds] = {"steps": dict(zip(STEPS, n, strict=True)),
                   "categories": {"cat_a": {"events": 2000 + i, "sumw": 1500.5 + i, "sumw2": 1400.25 + i},
                                  "cat_b": {"events": 1000 - i, "sumw": 700.0 - i, "sumw2": 650.0 - i}}}
    return out


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    histograms = {key: _hist(*va) for key, va in _arrays(1).items()}
    for (ds, var), values in _maps().items():
        histograms[("eta_phi", ds, "cat_a", var)] = _hist2d(values)
    write_pickle(out / "histograms.pkl", histograms)
    report = {"datasets": {ds: {"metadata": m} for ds, m in META.items()}, "cutflow": _cutflow()}
    (out / "report.json").write_text(json.dumps(report))
    return out


@pytest.fixture(scope="module")
def plotted(outdir: Path):
    return plot_outputs(outdir)


def test_a_plot_per_histogram_and_category(outdir: Path, plotted) -> None:
    for cat in CATEGORIES:
        for name in ("mll", "pt"):
            png = outdir / "plots" / cat / f"{name}.png"
            pdf = png.with_suffix(".pdf")
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert pdf.read_bytes()[:4] == b"%PDF"
            assert png in plotted.files and pdf in plotted.files
    for kind in ("mc", "data"):  # a 2D histogram: a map of the MC sum and one of the data
        png = outdir / "plots" / "cat_a" / f"eta_phi_{kind}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png in plotted.files
    assert not (outdir / "plots" / "cat_a" / "eta_phi.png").exists()
    assert plotted.skipped == []  # eta_phi is filled in cat_a only: nothing to draw, nothing to say
    assert not list((outdir / "plots" / "cat_b").glob("eta_phi*"))


def test_stack_contents_match_numpy(outdir: Path) -> None:
    arrays = _arrays(1)
    run = load_outputs(outdir)
    for cat in CATEGORIES:
        c = stack_contents(run.entries("mll", cat), run.metadata)
        val = {k[1:]: v for k, (v, _) in arrays.items() if k[0] == "mll" and k[2] == cat}
        var = {k[1:]: w for k, (_, w) in arrays.items() if k[0] == "mll" and k[2] == cat}
        samples = {"DY": ("DY_a", "DY_b"), "TTbar": ("TT",)}
        nom = {s: np.add.reduce([val[(d, cat, "nominal")] for d in dss]) for s, dss in samples.items()}
        assert list(c.mc) == ["TTbar", "DY"]  # increasing yield: the smallest at the bottom
        for s in samples:
            np.testing.assert_allclose(c.mc[s], nom[s])
            np.testing.assert_allclose(c.mc_variances[s], np.add.reduce([var[(d, cat, "nominal")] for d in samples[s]]))
        np.testing.assert_allclose(c.mc_total, nom["DY"] + nom["TTbar"])
        stat = np.sqrt(sum(var[(d, cat, "nominal")] for d in ("DY_a", "DY_b", "TT")))
        np.testing.assert_allclose(c.mc_stat, stat)
        up2 = down2 = 0.0
        for syst in ("JES", "pileup"):
            up = down = 0.0
            for s, dss in samples.items():
                d_up = np.add.reduce([val[(d, cat, syst + "Up")] for d in dss]) - nom[s]
                d_dn = np.add.reduce([val[(d, cat, syst + "Down")] for d in dss]) - nom[s]
                up = up + np.clip(np.maximum(d_up, d_dn), 0, None)
                down = down + np.clip(np.minimum(d_up, d_dn), None, 0)
            up2, down2 = up2 + up**2, down2 + down**2
        assert c.systematics == ("JES", "pileup")
        np.testing.assert_allclose(c.syst_up, np.sqrt(up2))
        np.testing.assert_allclose(c.syst_down, np.sqrt(down2))
        np.testing.assert_allclose(c.band_up, np.sqrt(stat**2 + up2))
        np.testing.assert_allclose(c.band_down, np.sqrt(stat**2 + down2))
        np.testing.assert_allclose(c.data, val[("Data_A", cat, "nominal")])
        np.testing.assert_allclose(c.data_errors, np.sqrt(val[("Data_A", cat, "nominal")]))
        np.testing.assert_allclose(c.edges, EDGES)


def test_missing_data_or_mc_still_plots(outdir: Path, tmp_path: Path) -> None:
    run = load_outputs(outdir)
    entries = run.entries("pt", "cat_b")
    mc_only = stack_contents({k: h for k, h in entries.items() if k[0] != "Data_A"}, run.metadata)
    data_only = stack_contents({k: h for k, h in entries.items() if k[0] == "Data_A"}, run.metadata)
    assert mc_only.data is None and set(mc_only.mc) == {"DY", "TTbar"}
    assert data_only.mc == {} and data_only.mc_total is None and data_only.data is not None
    for i, c in enumerate((mc_only, data_only)):
        for log in (False, True):
            (path,) = save_figure(draw_stack(c, log=log), tmp_path / f"p{i}{log}", formats=["png"])
            assert path.read_bytes()[:4] == b"\x89PNG"


def test_cutflow_tables(outdir: Path, plotted) -> None:
    cutflow = _cutflow()
    with (outdir / "plots" / "cutflow.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == [*STEPS, *CATEGORIES]
    md = (outdir / "plots" / "cutflow.md").read_text()
    for ds, cf in cutflow.items():
        steps = cf["steps"]
        for i, step in enumerate(STEPS):
            row = rows[i]
            assert int(row[ds]) == steps[step]
            prev = steps[STEPS[i - 1]] if i else steps[step]
            assert float(row[f"{ds} rel"]) == pytest.approx(steps[step] / prev)
            assert float(row[f"{ds} cum"]) == pytest.approx(steps[step] / steps["initial"])
        for j, cat in enumerate(CATEGORIES):
            row, n = rows[len(STEPS) + j], cf["categories"][cat]["events"]
            assert int(row[ds]) == n
            assert float(row[f"{ds} rel"]) == pytest.approx(n / steps["presel"])
            assert float(row[f"{ds} cum"]) == pytest.approx(n / steps["initial"])
            y = cf["categories"][cat]
            assert f"| {ds} | {cat} | {n} | {y['sumw']:.6g} | {np.sqrt(y['sumw2']):.6g} |" in md
    s = cutflow["TT"]["steps"]
    assert f"| {100 * s['skim/trigger'] / s['initial']:.2f}% |" in md
    with (outdir / "plots" / "yields.csv").open() as f:
        yields = list(csv.DictReader(f))
    assert len(yields) == len(META) * len(CATEGORIES)
    first = yields[0]
    assert float(first["sumw"]) == cutflow[first["dataset"]]["categories"][first["category"]]["sumw"]


def test_errors(outdir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        plot_outputs(tmp_path / "nope")
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"lacks histograms\.pkl"):
        plot_outputs(tmp_path)
    with pytest.raises(ConfigError, match=r"unknown histogram 'mlll'.*Did you mean 'mll'"):
        plot_outputs(outdir, histograms=["mlll"], output=tmp_path / "p")
    with pytest.raises(ConfigError, match=r"unknown category 'cat_c'.*Did you mean"):
        plot_outputs(outdir, categories=["cat_c"], output=tmp_path / "p")
    assert main(["plot", str(outdir), "--histogram", "mlll", "--output", str(tmp_path / "p")]) == 2


def test_cli(outdir: Path, tmp_path: Path) -> None:
    assert main(["plot", str(outdir)]) == 0
    out = tmp_path / "sel"
    assert main(["plot", str(outdir), "--output", str(out), "--histogram", "pt", "--category", "cat_b",
                 "--format", "png", "--lumi", "41.5", "--label", "Work in progress", "--log"]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["cat_b/pt.png"]


def test_2d_maps_draw_the_summed_histograms(outdir: Path, tmp_path: Path) -> None:
    run = load_outputs(outdir)
    maps = map_contents(run.entries("eta_phi", "cat_a"), run.metadata)
    values = _maps()
    expected = {"mc": values[("DY_a", "nominal")] + values[("DY_b", "nominal")] + values[("TT", "nominal")],
                "data": values[("Data_A", "nominal")]}
    assert set(maps) == {"mc", "data"}
    for kind, contents in maps.items():
        np.testing.assert_allclose(contents.values, expected[kind])
        np.testing.assert_array_equal(contents.xedges, XEDGES)
        assert (contents.xlabel, contents.ylabel) == (r"$\eta$", r"$\phi$")
        fig = draw_map(contents, data=kind == "data", title=kind)
        (mesh,) = fig.axes[0].collections  # what is drawn: one colour per bin, y along the rows
        np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(YEDGES.size - 1, XEDGES.size - 1),
                                   expected[kind].T)
        np.testing.assert_allclose(mesh.get_coordinates()[0, :, 0], XEDGES)
        np.testing.assert_allclose(mesh.get_coordinates()[:, 0, 1], YEDGES)
        (path,) = save_figure(fig, tmp_path / kind, formats=["png"])
        assert path.read_bytes()[:4] == b"\x89PNG"


def test_lumi_scales_mc_by_the_ratio(outdir: Path) -> None:
    run = load_outputs(outdir)
    entries = run.entries("mll", "cat_a")
    ratio = 41.5 / 59.8  # the MC datasets' metadata: lumi 59800 pb^-1
    scaled = scale_mc(entries, run.metadata, 41.5)
    assert scaled.keys() == entries.keys()
    for (ds, var), h in entries.items():
        factor = 1.0 if ds == "Data_A" else ratio
        np.testing.assert_allclose(scaled[(ds, var)].values(), factor * h.values(), rtol=1e-12)
        np.testing.assert_allclose(scaled[(ds, var)].variances(), factor**2 * h.variances(), rtol=1e-12)
    before, after = stack_contents(entries, run.metadata), stack_contents(scaled, run.metadata)
    for sample in before.mc:
        np.testing.assert_allclose(after.mc[sample], ratio * before.mc[sample], rtol=1e-12)
    np.testing.assert_allclose(after.mc_stat, ratio * before.mc_stat, rtol=1e-12)
    np.testing.assert_allclose(after.syst_up, ratio * before.syst_up, rtol=1e-12)
    np.testing.assert_array_equal(after.data, before.data)
    fb = {**run.metadata, "TT": {**run.metadata["TT"], "lumi": None, "lumi_fb": 29.9}}  # lumi_fb wins
    np.testing.assert_allclose(scale_mc(entries, fb, 59.8)[("TT", "nominal")].values(),
                               2 * entries[("TT", "nominal")].values(), rtol=1e-12)
    without = {**run.metadata, "TT": {"is_mc": True, "sample": "TTbar"}}
    with pytest.raises(ConfigError, match=r"MC dataset 'TT'.*no 'lumi'.*without --lumi"):
        scale_mc(entries, without, 41.5)


def test_cli_lumi_without_metadata_lumi_is_one_line(outdir: Path, tmp_path: Path, capsys) -> None:
    report = json.loads((outdir / "report.json").read_text())
    del report["datasets"]["TT"]["metadata"]["lumi"]
    other = tmp_path / "run"
    other.mkdir()
    (other / "report.json").write_text(json.dumps(report))
    (other / "histograms.pkl").write_bytes((outdir / "histograms.pkl").read_bytes())
    assert main(["plot", str(other), "--lumi", "41.5", "--format", "png"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "MC dataset 'TT'" in err[0]
    assert main(["plot", str(other), "--lumi", "0"]) == 2


def test_alternative_samples_are_a_band_not_a_stack() -> None:
    """Datasets with ``process`` and ``systematic`` (the AGC's ttbar_ME_var, ttbar_scaleup/down)
    are not stacked: each adds its difference to the process's nominal to the systematic band, a
    scaleup/scaledown pair as one systematic, a single one symmetrised."""
    ones = np.ones(EDGES.size - 1)
    nominal, me, up, down = (np.resize(np.array(v, float), ones.size)
                             for v in ([10, 20, 30], [12, 19, 30], [11, 22, 27], [9, 21, 31]))
    entries = {("ttbar", "nominal"): _hist(nominal, ones), ("wjets", "nominal"): _hist(ones, ones),
               ("ttbar_ME_var", "nominal"): _hist(me, ones), ("ttbar_scaleup", "nominal"): _hist(up, ones),
               ("ttbar_scaledown", "nominal"): _hist(down, ones)}
    meta = {"ttbar": {"is_mc": True, "process": "ttbar"}, "wjets": {"is_mc": True, "process": "wjets"},
            "ttbar_ME_var": {"is_mc": True, "process": "ttbar", "systematic": "ME_var"},
            "ttbar_scaleup": {"is_mc": True, "process": "ttbar", "systematic": "scaleup"},
            "ttbar_scaledown": {"is_mc": True, "process": "ttbar", "systematic": "scaledown"}}
    got = stack_contents(entries, meta)
    assert set(got.mc) == {"ttbar", "wjets"}
    np.testing.assert_array_equal(got.mc_total, nominal + 1)
    assert set(got.systematics) == {"ttbar_ME_var", "ttbar_scale"}
    me_shift = np.abs(me - nominal)  # symmetrised
    scale_up = np.maximum(np.maximum(up - nominal, down - nominal), 0)
    scale_down = np.minimum(np.minimum(up - nominal, down - nominal), 0)
    np.testing.assert_allclose(got.syst_up, np.hypot(me_shift, scale_up))
    np.testing.assert_allclose(got.syst_down, np.hypot(me_shift, scale_down))

"""Data and simulation of the generated sample agree: the demo's Z→μμ example on its own sample.

The generator draws data from the model of its simulation (same event mixture, the pileup
profile the pileup weights reweight to, muon efficiencies times the scale factors), and the
datasets file's ``lumi`` is the luminosity of the lumi sections the golden JSON keeps. So, with
the example's corrections, data/MC of the m_μμ integral is 1 within its statistical error, and
the fitted signal strength covers 1. Everything is checked against an independent count:
uproot, numpy and correctionlib over the same files (``reference_zmumu``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot
import yaml
from reference_zmumu import analyse, read

from highrate.cli.demo import demo_inputs
from highrate.cli.main import main

EVENTS, FILES = 200_000, 2  # per sample: about 38k data events selected, 0.7% statistical error
DATA, MC = "SingleMuon_2018", "DYJetsToLL_M-50"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The demo's sample (its seed, smaller) and the example's outputs on it, as ``highrate demo`` makes them."""
    base = tmp_path_factory.mktemp("normalisation")
    analysis, datasets = demo_inputs(events=EVENTS, files=FILES, cache_dir=str(base / "cache"))
    assert main(["run", str(analysis), "--datasets", str(datasets), "--output", str(base / "out"),
                 "--no-progress", "--no-checkpoints"]) == 0
    spec = yaml.safe_load(datasets.read_text())["datasets"]
    files = {name: sorted((datasets.parent / name).glob("*.root")) for name in spec}
    return {"spec": spec, "files": files, "folder": datasets.parent}, base / "out"


def _golden(folder: Path) -> set[tuple[int, int]]:
    document = json.loads((folder / "corrections" / "golden.json").read_text())
    return {(int(run), lumi) for run, ranges in document.items() for a, b in ranges for lumi in range(a, b + 1)}


def _only(d: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    """The branches of ``read`` for the events of ``keep`` (jagged ones by their counts)."""
    counts = {"Muon_": d["nMuon"], "Jet_": d["nJet"]}
    out = {}
    for name, values in d.items():
        prefix = next((p for p in counts if name.startswith(p)), None)
        out[name] = values[np.repeat(keep, counts[prefix])] if prefix else values[keep]
    return out


def _data_count(paths: list[Path], golden: set[tuple[int, int]]) -> tuple[int, int]:
    """(events in the golden lumi sections, of those selected by the example), by numpy."""
    kept = selected = 0
    for path in paths:
        d = read(str(path), is_mc=False)
        keep = np.array([(int(r), int(ls)) in golden for r, ls in zip(d["run"], d["luminosityBlock"], strict=True)])
        kept += int(keep.sum())
        selected += analyse(_only(d, keep), is_mc=False)["cutflow"]["presel"]
    return kept, selected


def _mc_weights(paths: list[Path], meta: dict, folder: Path) -> np.ndarray:
    """Each selected simulated event's weight: genWeight x xsec x lumi / sum of genEventSumw x
    pileup x muon ID and isolation scale factors, with correctionlib called directly."""
    import correctionlib

    corrections = folder / "corrections"
    pileup = correctionlib.CorrectionSet.from_file(str(corrections / "pileup.json"))["pileup"]
    sf = correctionlib.CorrectionSet.from_file(str(corrections / "muon_sf.json"))
    sumw = sum(float(uproot.open(p)["Runs"]["genEventSumw"].array(library="np").sum()) for p in paths)
    weights = []
    for path in paths:
        ev = analyse(read(str(path), is_mc=True), is_mc=True)["events"]
        w = ev["w"] * meta["xsec"] * meta["lumi"] / sumw * pileup.evaluate(ev["ntrue"].astype(float), "nominal")
        for name in ("muon_id_sf", "muon_iso_sf"):
            for i in ("1", "2"):
                w = w * sf[name].evaluate(np.abs(ev[f"mu{i}_eta"]).astype(float), ev[f"mu{i}_pt"].astype(float),
                                          "nominal")
        weights.append(w)
    return np.concatenate(weights)


def test_lumi_is_that_of_the_lumi_sections_the_golden_json_keeps(demo):
    sample, _ = demo
    kept, _ = _data_count(sample["files"][DATA], _golden(sample["folder"]))
    total = sum(uproot.open(p)["Events"].num_entries for p in sample["files"][DATA])
    assert 0 < kept < total  # the golden JSON drops lumi sections: lumi is not total / xsec
    for name in (MC, DATA):
        meta = sample["spec"][name]["metadata"]
        assert meta["lumi"] == pytest.approx(kept / 6077.22, rel=1e-5)


def test_data_over_simulation_is_one_within_its_statistical_error(demo):
    sample, out = demo
    _, n_data = _data_count(sample["files"][DATA], _golden(sample["folder"]))
    w = _mc_weights(sample["files"][MC], sample["spec"][MC]["metadata"], sample["folder"])
    with uproot.open(out / "histograms.root") as f:
        h_data = f[f"mll/{DATA}/baseline/nominal"].values()
        h_mc = f[f"mll/{MC}/baseline/nominal"].values()
    assert h_data.sum() == n_data  # highrate's totals are numpy's
    np.testing.assert_allclose(h_mc.sum(), w.sum(), rtol=1e-9)
    ratio = n_data / w.sum()
    error = ratio * np.sqrt(1 / n_data + np.sum(w**2) / w.sum() ** 2)
    print(f"data/MC of the m_mumu integral: {n_data} / {w.sum():.1f} = {ratio:.4f} +- {error:.4f}")
    assert error < 0.01
    assert abs(ratio - 1) < 3 * error
    # flat in m_mumu too: the Z peak's 20 bins around 91 GeV agree as the whole does
    peak = slice(50, 70)
    peak_ratio = h_data[peak].sum() / h_mc[peak].sum()
    assert abs(peak_ratio - 1) < 3 * peak_ratio * np.sqrt(1 / h_data[peak].sum() + error**2)


def test_fitted_signal_strength_covers_one(demo):
    from highrate.outputs.statmodel import build_workspace, fit, load_inputs

    _, out = demo
    result = fit(build_workspace(load_inputs(out, "mll", "DYJetsToLL", categories=["baseline"])), interval=False)
    mu, sigma = result.values[result.poi_index], result.uncertainties[result.poi_index]
    print(f"mu = {mu:.4f} +- {sigma:.4f}")
    assert 0 < sigma < 0.1
    assert abs(mu - 1) < sigma  # the 68% interval covers 1


def test_example_datasets_file_is_that_of_the_command_it_names(tmp_path):
    """examples/zmumu/datasets.yaml carries the lumi of the files its first lines say how to make,
    and examples/zmumu/corrections their correction files and golden JSON."""
    import re
    import shutil

    example = Path(__file__).resolve().parents[1] / "examples" / "zmumu"
    text = (example / "datasets.yaml").read_text()
    command = re.search(r"^#\s+(highrate generate examples/zmumu/data .*)$", text, re.MULTILINE).group(1).split()
    shutil.copytree(example, tmp_path / "examples" / "zmumu", ignore=shutil.ignore_patterns("data"))
    command[2] = str(tmp_path / command[2])
    assert main(command[1:]) == 0
    made = tmp_path / "examples" / "zmumu" / "data"
    generated = yaml.safe_load((made / "datasets.yaml").read_text())["datasets"]
    for name, entry in yaml.safe_load(text)["datasets"].items():
        assert entry["metadata"]["lumi"] == generated[name]["metadata"]["lumi"]
        assert entry["metadata"]["lumi"] == pytest.approx(_data_count(sorted((made / DATA).glob("*.root")),
                                                                      _golden(made))[0] / 6077.22, rel=1e-5)
    for path in (made / "corrections").iterdir():
        assert path.read_text() == (example / "corrections" / path.name).read_text(), path.name

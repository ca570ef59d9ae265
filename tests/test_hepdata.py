"""highrate fit's HEPData submission: valid for HEPData's own full-submission validator, and its
tables hold the fit's numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_fit import AGC_ARGS, agc_like_outdir, agc_like_templates

from highrate.cli.main import main

pytest.importorskip("hepdata_lib")
validator_module = pytest.importorskip("hepdata_validator.full_submission_validator")


@pytest.fixture(scope="module")
def submission(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``highrate fit ... --hepdata DIR`` on the AGC-like output folder: (DIR, the fit folder)."""
    base = tmp_path_factory.mktemp("hepdata")
    outdir = agc_like_outdir(base / "out", 1.4, jes=0.5)
    assert main(["fit", str(outdir), *AGC_ARGS, "--hepdata", str(base / "submission")]) == 0
    return base / "submission", outdir / "fit"


def _validate(**where: str) -> None:
    validator = validator_module.FullSubmissionValidator()
    valid = validator.validate(**where)
    messages = {f: [m.message for m in ms] for f, ms in validator.get_messages().items()}
    assert valid, messages


def _tables(folder: Path) -> dict[str, dict]:
    docs = list(yaml.safe_load_all((folder / "submission.yaml").read_text()))
    return {d["name"]: yaml.safe_load((folder / d["data_file"]).read_text()) for d in docs if "data_file" in d}


def _column(table: dict, name: str) -> dict:
    return next(v for v in table["dependent_variables"] if v["header"]["name"] == name)


def test_submission_is_valid(submission):
    folder, _ = submission
    _validate(directory=str(folder))
    archive = folder.with_name("submission.tar.gz")
    assert archive.is_file()
    _validate(archive=str(archive))
    assert not (folder.parent / "fit" / "hepdata").exists()  # --hepdata DIR instead of OUTPUT/hepdata


def test_tables_hold_the_fit(submission):
    folder, fitdir = submission
    tables = _tables(folder)
    assert set(tables) == {"Yields SR x", "Yields CR y", "Signal strength", "Nuisance parameters", "Impacts",
                           "Correlations"}
    results = json.loads((fitdir / "fit_results.json").read_text())
    spec = json.loads((fitdir / "workspace.json").read_text())
    observed = {o["name"]: np.asarray(o["data"]) for o in spec["observations"]}
    for region, (name, edges, templates) in agc_like_templates().items():
        table = tables[f"Yields {region} {name}"]
        bins = table["independent_variables"][0]
        assert bins["header"]["name"] == f"{name} [GeV]"
        assert np.allclose([(b["low"], b["high"]) for b in bins["values"]], np.c_[edges[:-1], edges[1:]])
        assert [v["value"] for v in _column(table, "Data")["values"]] == pytest.approx(observed[region])
        nominal = templates["Signal"]["nominal"] + templates["Background"]["nominal"]
        prefit = _column(table, "Pre-fit total")["values"]
        assert [v["value"] for v in prefit] == pytest.approx(nominal, rel=1e-4)  # 5 digits kept
        # the luminosity alone moves every bin by 2.5%: the total uncertainty is at least that
        assert all(v["errors"][0]["symerror"] >= 0.024 * n for v, n in zip(prefit, nominal, strict=True))
        postfit = np.array([v["value"] for v in _column(table, "Post-fit total")["values"]])
        assert postfit.sum() == pytest.approx(observed[region].sum(), rel=0.02)
        assert _column(table, "Data")["qualifiers"] == [{"name": "Region", "value": region},
                                                        {"name": "Observable", "value": name}]
    mu = tables["Signal strength"]
    hesse = _column(mu, "Best-fit value (Hesse)")["values"][0]
    assert hesse["value"] == pytest.approx(results["mu"], rel=1e-4)
    assert hesse["errors"][0]["symerror"] == pytest.approx(results["mu_uncertainty"], rel=1e-4)
    minos = _column(mu, "Best-fit value (MINOS)")["values"][0]["errors"][0]["asymerror"]
    assert minos["minus"] == pytest.approx(results["mu_interval"]["lower"] - results["mu"], rel=1e-3)
    nps = tables["Nuisance parameters"]
    names = [v["value"] for v in nps["independent_variables"][0]["values"]]
    assert {"JES", "JER", "PS_var", "scale", "lumi"} <= set(names)
    for name, row in zip(names, _column(nps, "Post-fit value")["values"], strict=True):
        assert row["value"] == pytest.approx(results["parameters"][name]["value"], rel=1e-4, abs=1e-6)
    ranked = [v["value"] for v in tables["Impacts"]["independent_variables"][0]["values"]]
    assert ranked == [r["name"] for r in results["ranking"]]


def test_a_broken_submission_is_invalid(submission, tmp_path):
    """The validator the tests rely on does reject a submission that lacks what it needs."""
    from highrate.outputs.statmodel.hepdata import validate

    folder, _ = submission
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "signal_strength.yaml").unlink()  # referenced by submission.yaml
    assert validate(broken)
    table = yaml.safe_load((folder / "impacts.yaml").read_text())
    del table["dependent_variables"][0]["values"]
    shutil.copy(folder / "signal_strength.yaml", broken / "signal_strength.yaml")
    (broken / "impacts.yaml").write_text(yaml.safe_dump(table))
    problems = validate(broken)
    assert problems and any("impacts.yaml" in p for p in problems), problems
    assert validate(folder) == []

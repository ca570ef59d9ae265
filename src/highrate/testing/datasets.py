"""A ready-made datasets file: the synthetic MC and data samples, their corrections and golden JSON."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import uproot

from highrate.lumimask import LumiMask
from highrate.testing._jetid import check_version
from highrate.testing.corrections import write_corrections
from highrate.testing.nanoaod import DATA_SAMPLE, MC_SAMPLE, compression_of, generate_sample

DY_XSEC_PB = 6077.22  # Drell-Yan M > 50 GeV cross-section used for the synthetic MC

_DATASETS_YAML = """\
# highrate datasets file. lumi (pb^-1) is the luminosity of the data's lumi sections that
# corrections/golden.json keeps (events there / xsec), so that the simulation normalised to
# xsec x lumi predicts the data the analysis keeps; corrections is the folder of correction
# files and golden JSON made for these files.
datasets:
  {mc}:
    sample: DYJetsToLL
    files: [{mc}/*.root]
    tree: Events
    metadata: {{is_mc: true, year: "2018", xsec: {xsec}, lumi: {lumi:.6g}, corrections: "{corrections}"{version}}}
  {data}:
    sample: DATA_SingleMuon
    files: [{data}/*.root]
    tree: Events
    metadata: {{is_mc: false, year: "2018", era: "A", lumi: {lumi:.6g}, corrections: "{corrections}"{version}}}
"""


def recorded_luminosity(data_files: Iterable[str | os.PathLike[str]], golden: str | os.PathLike[str],
                        xsec: float = DY_XSEC_PB) -> float:
    """The luminosity (pb^-1) of the lumi sections of ``data_files`` that the golden JSON keeps.

    The generator's data is drawn from the model of its simulation, so a lumi section that
    holds ``k`` events has the luminosity ``k / xsec``; this is that sum over the kept ones.
    """
    mask = LumiMask(golden)
    kept = 0
    for path in data_files:
        with uproot.open(path) as f:
            ids = f["Events"].arrays(["run", "luminosityBlock"], library="np")
        kept += int(mask.mask(ids["run"], ids["luminosityBlock"]).sum())
    return kept / xsec


def generate_dataset_set(
    outdir: str | os.PathLike[str], *, events: int, files: int, seed: int,
    compression: str = "zstd", extra_branches: int = 0, level: int | None = None,
    basket_events: int | None = None, nanoaod_version: int = 12,
) -> Path:
    """Write the MC sample ``DYJetsToLL_M-50`` and the data sample ``SingleMuon_2018``
    (each ``events`` events in ``files`` files) and ``outdir/datasets.yaml`` describing
    them with globs relative to the yaml file; return the yaml path. Also writes the
    correction files and a golden JSON for the data into ``outdir/corrections`` (see
    :func:`highrate.testing.corrections.write_corrections`). Both datasets' ``lumi`` is the
    luminosity the golden JSON keeps (:func:`recorded_luminosity`). ``nanoaod_version`` 15
    writes v15's jets (no ``Jet_jetId``; see :func:`generate_file`) and says so in both
    datasets' metadata (``nanoaod_version: 15``).
    """
    outdir = Path(outdir)
    options = dict(events=events, files=files, seed=seed, compression=compression,
                   level=level, basket_events=basket_events, extra_branches=extra_branches,
                   nanoaod_version=nanoaod_version)
    compression_of(compression, level)  # fail before writing anything
    check_version(nanoaod_version)
    generate_sample(outdir, name=MC_SAMPLE, is_mc=True, **options)
    data_files = generate_sample(outdir, name=DATA_SAMPLE, is_mc=False, **options)
    written = write_corrections(outdir / "corrections", data_files=data_files)
    lumi = recorded_luminosity(data_files, written["golden"])
    yaml_path = outdir / "datasets.yaml"
    text = _DATASETS_YAML.format(mc=MC_SAMPLE, data=DATA_SAMPLE, xsec=DY_XSEC_PB, lumi=lumi,
                                 corrections=(outdir / "corrections").resolve(),
                                 version="" if nanoaod_version == 12 else f", nanoaod_version: {nanoaod_version}")
    yaml_path.write_text(text, encoding="utf-8")
    return yaml_path

"""A ready-made datasets file: the synthetic MC and data samples, their corrections and golden JSON."""

from __future__ import annotations

import os
from pathlib import Path

from highrate.testing.corrections import write_corrections
from highrate.testing.nanoaod import DATA_SAMPLE, MC_SAMPLE, compression_of, generate_sample

DY_XSEC_PB = 6077.22  # Drell-Yan M > 50 GeV cross-section used for the synthetic MC

_DATASETS_YAML = """\
# highrate datasets file. lumi (pb^-1) is that of the synthetic data: events / xsec, so that the
# normalised simulation predicts as many events as the data holds; corrections is the folder
# of correction files and golden JSON made for these files.
datasets:
  {mc}:
    sample: DYJetsToLL
    files: [{mc}/*.root]
    tree: Events
    metadata: {{is_mc: true, year: "2018", xsec: {xsec}, lumi: {lumi:.6g}, corrections: "{corrections}"}}
  {data}:
    sample: DATA_SingleMuon
    files: [{data}/*.root]
    tree: Events
    metadata: {{is_mc: false, year: "2018", era: "A", lumi: {lumi:.6g}, corrections: "{corrections}"}}
"""


def generate_dataset_set(
    outdir: str | os.PathLike[str], *, events: int, files: int, seed: int,
    compression: str = "zstd", extra_branches: int = 0, level: int | None = None,
    basket_events: int | None = None,
) -> Path:
    """Write the MC sample ``DYJetsToLL_M-50`` and the data sample ``SingleMuon_2018``
    (each ``events`` events in ``files`` files) and ``outdir/datasets.yaml`` describing
    them with globs relative to the yaml file; return the yaml path. Also writes the
    correction files and a golden JSON for the data into ``outdir/corrections`` (see
    :func:`highrate.testing.corrections.write_corrections`).
    """
    outdir = Path(outdir)
    options = dict(events=events, files=files, seed=seed, compression=compression,
                   level=level, basket_events=basket_events, extra_branches=extra_branches)
    compression_of(compression, level)  # fail before writing anything
    generate_sample(outdir, name=MC_SAMPLE, is_mc=True, **options)
    data_files = generate_sample(outdir, name=DATA_SAMPLE, is_mc=False, **options)
    write_corrections(outdir / "corrections", data_files=data_files)
    yaml_path = outdir / "datasets.yaml"
    text = _DATASETS_YAML.format(mc=MC_SAMPLE, data=DATA_SAMPLE, xsec=DY_XSEC_PB, lumi=events / DY_XSEC_PB,
                                 corrections=(outdir / "corrections").resolve())
    yaml_path.write_text(text, encoding="utf-8")
    return yaml_path

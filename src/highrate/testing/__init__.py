"""Test and demo helpers: a deterministic synthetic CMS NanoAOD generator.

>>> from highrate.testing import generate_file
>>> generate_file("dy.root", events=10_000, seed=1)  # doctest: +SKIP
"""

from highrate.testing.agc import AGC_LUMI, AGC_SAMPLES, generate_agc_file, generate_agc_set
from highrate.testing.datasets import generate_dataset_set
from highrate.testing.nanoaod import (
    COMPRESSION_LEVELS,
    DATA_SAMPLE,
    MC_SAMPLE,
    branch_names,
    generate_file,
    generate_sample,
)

__all__ = [
    "AGC_LUMI",
    "AGC_SAMPLES",
    "COMPRESSION_LEVELS",
    "DATA_SAMPLE",
    "MC_SAMPLE",
    "branch_names",
    "generate_agc_file",
    "generate_agc_set",
    "generate_dataset_set",
    "generate_file",
    "generate_sample",
]

"""Test and demo helpers: a deterministic synthetic CMS NanoAOD generator.

>>> from highrate.testing import generate_file
>>> generate_file("dy.root", events=10_000, seed=1)  # doctest: +SKIP
"""

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
    "COMPRESSION_LEVELS",
    "DATA_SAMPLE",
    "MC_SAMPLE",
    "branch_names",
    "generate_dataset_set",
    "generate_file",
    "generate_sample",
]

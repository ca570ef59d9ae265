"""highrate.execution.allocator: freed chunk memory is reused instead of faulted in again, with opt-outs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, resource
import numpy as np
from highrate.execution.allocator import keep_freed_memory
tuned = keep_freed_memory()
assert keep_freed_memory() is tuned  # once per process
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def chunk():  # a chunk's worth of arrays of several sizes, written, then freed
    arrays = [np.ones(n) for n in (300_000, 1_200_000, 2_500_000, 700_000, 3_000_000)]
    del arrays
chunk()
before = faults()
for _ in range(5):
    chunk()
print(json.dumps({"tuned": tuned, "faults": faults() - before}))
"""


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_freed_memory_is_reused():
    found, system = _probe(), _probe(HIGHRATE_MALLOC="system")
    assert found["tuned"] is True and system["tuned"] is False
    # 5 chunks of 61 MB are ~75k pages: glibc's own adaptive thresholds keep some, not all
    assert found["faults"] < 1_000 < 2 * found["faults"] + 2_000 < system["faults"], (found, system)


@pytest.mark.parametrize("env", [{"HIGHRATE_MALLOC": "system"}, {"MALLOC_ARENA_MAX": "2"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}])
def test_user_settings_win(env):
    assert _probe(**env)["tuned"] is False

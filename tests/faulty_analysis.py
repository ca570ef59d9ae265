"""examples/zmumu with a fault-injection cut, driven by environment variables (tests only).

HIGHRATE_FAULT_FAIL_ONCE=PATH  the first chunk to create PATH fails as a read does (a transient error;
                               an exception of the analysis' own would stop the run, never be retried)
HIGHRATE_FAULT_KILL_ONCE=PATH  the first chunk to create PATH kills its process (a dying worker)
HIGHRATE_FAULT_CRASH_AT=K with HIGHRATE_FAULT_COUNTER=PATH  the K-th chunk kills the process
The variables do not change the analysis hash, so a run with faults and one without share
checkpoints, as a crashed run and its resumption do. They are read when the analysis is
loaded and travel with it to the workers (whose environment may be older than the test's).
"""

import dataclasses
import os
from pathlib import Path

import awkward as ak

from highrate import Cut, load_analysis
from highrate.errors import InputFileError

_base = load_analysis(Path(__file__).resolve().parents[1] / "examples" / "zmumu" / "analysis_nominal.py")


def _first(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


_CONFIG = {k: v for k, v in os.environ.items() if k.startswith("HIGHRATE_FAULT_")}


def _inject() -> None:
    env = _CONFIG
    if env.get("HIGHRATE_FAULT_FAIL_ONCE") and _first(env["HIGHRATE_FAULT_FAIL_ONCE"]):
        raise InputFileError("injected transient failure")
    if env.get("HIGHRATE_FAULT_KILL_ONCE") and _first(env["HIGHRATE_FAULT_KILL_ONCE"]):
        os._exit(17)
    if env.get("HIGHRATE_FAULT_CRASH_AT"):
        with open(env["HIGHRATE_FAULT_COUNTER"], "ab") as f:
            f.write(b"x")
        if os.path.getsize(env["HIGHRATE_FAULT_COUNTER"]) == int(env["HIGHRATE_FAULT_CRASH_AT"]):
            os._exit(9)


def fault(events):
    if ak.backend(events) != "typetracer":
        _inject()
    return events.PV.npvsGood > -1


analysis = dataclasses.replace(_base, name="zmumu_faulty", skim=(Cut("fault", fault), *_base.skim), source=None)

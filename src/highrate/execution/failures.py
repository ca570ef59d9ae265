"""Failed chunks and files as the report lists them, and as the error a run raises when they are not
skipped; which failures are worth a retry.
"""

from __future__ import annotations

import linecache
import time
from collections.abc import Mapping
from typing import Any

from highrate.errors import (
    ConfigError,
    HighrateError,
    InputFileError,
    MissingBranchError,
    UserCodeError,
    WorkerLostError,
)
from highrate.spec.analysis import Analysis
from highrate.spec.usercode import relocated, user_files

SKIP_HINT = "Pass --skip-bad-files to skip it; it is then listed in report.json's failed_chunks."



def retryable(failure: dict[str, Any]) -> bool:
    """Errors in the analysis itself fail the same way every time: no retry."""
    return not user_code(failure) and not failure["error"].startswith(
        ("UnknownQuantityError", "ConfigError", "ChunkError"))


def user_code(failure: dict[str, Any]) -> bool:
    """Whether the analysis' own code failed: the run stops, even when bad files are skipped."""
    return "user_code" in failure



def file_failure(dataset: str, url: str, error: str, *, entries: int | None = None) -> dict[str, Any]:
    return {
        "dataset": dataset, "file": url, "entry_start": 0 if entries is not None else None,
        "entry_stop": entries, "error": error, "traceback": "", "worker": "driver", "time": time.time(),
    }



def sentence(message: str) -> str:
    return message if message.endswith((".", "?", "!")) else message + "."



def strip_type(message: str) -> str:
    head, sep, rest = message.partition(": ")
    return rest if sep and head.endswith("Error") else message



def as_error(failure: dict[str, Any], analysis: Analysis | None = None) -> HighrateError:
    """The error a run raises for a failure it does not skip; ``analysis``: the driver's, whose
    files name the code a worker ran (shipped by value, it lost its file name there)."""
    if user_code(failure):
        err = UserCodeError(**failure["user_code"], traceback=failure.get("traceback", ""))
        if analysis is not None:
            err = relocated(err, user_files(analysis.functions()))
        if err.location and not err.source_line:  # the worker lacked the file
            file, _, line = err.location.rpartition(":")
            err.source_line = linecache.getline(file, int(line)).strip() if line.isdigit() else ""
        return err
    text = strip_type(failure["error"])
    if repr(failure["file"]) not in text:  # messages of the reader already say where
        text += (f" (dataset {failure['dataset']!r}, file {failure['file']!r}, "
                 f"entries [{failure['entry_start']}, {failure['entry_stop']}))")
    text = f"{sentence(text)} {SKIP_HINT}"
    if failure["error"].startswith("MissingBranchError"):
        return MissingBranchError(text)
    if failure["error"].startswith(("UnknownQuantityError", "ConfigError", "ChunkError")):
        return ConfigError(text)
    if failure["error"].startswith("WorkerLostError"):
        return WorkerLostError(text)
    return InputFileError(text)



SHOWN = 5  # failures a RunFailedError lists; report.json has them all


def lost_fraction(failed: list[dict[str, Any]], dataset: str, files: int, entries: Mapping[str, int]) -> float:
    """The share of a dataset's input that failed: each of its ``files`` counts as one, a file that
    failed as a whole fully, a failed chunk as its share of its file's ``entries``."""
    lost = 0.0
    for f in failed:
        if f["dataset"] != dataset:
            continue
        total = entries.get(f["file"])
        whole = f["entry_start"] is None or not total
        lost += 1.0 if whole else (f["entry_stop"] - f["entry_start"]) / total
    return min(lost / files, 1.0) if files else 0.0


def too_much_lost(
    failed: list[dict[str, Any]], files: Mapping[str, int], processed: Mapping[str, int],
    entries: Mapping[str, int], max_fraction: float | None,
) -> str | None:
    """Why a run that skipped bad input must still fail, or None.

    ``files``: input files per dataset; ``processed``: chunks that succeeded per dataset;
    ``entries``: entries per described file. A dataset fails the run when it lost more than
    ``max_fraction`` of its input, or, with ``max_fraction`` None, when nothing of it succeeded."""
    reasons, failing = [], set()
    for dataset, n in files.items():
        if not any(f["dataset"] == dataset for f in failed):
            continue
        share = lost_fraction(failed, dataset, n, entries)
        if max_fraction is None and not processed.get(dataset):
            reasons.append(f"dataset {dataset!r} processed no event: every file or chunk of it failed")
        elif max_fraction is not None and share > max_fraction:
            reasons.append(f"dataset {dataset!r} lost {share:.0%} of its input ({n} file(s)), more than "
                           f"--max-failed-fraction {max_fraction:g} allows")
        else:
            continue
        failing.add(dataset)
    if not reasons:
        return None
    failed = [f for f in failed if f["dataset"] in failing]
    lines = ["; ".join(reasons) + ". Failures:"]
    for f in failed[:SHOWN]:
        where = "whole file" if f["entry_start"] is None else f"entries [{f['entry_start']}, {f['entry_stop']})"
        error = (f["error"].splitlines() or [""])[0]
        lines.append(f"  - {f['dataset']}: {f['file']} {where}: {error[:200]}")
    if len(failed) > SHOWN:
        lines.append(f"  and {len(failed) - SHOWN} more")
    lines.append("report.json lists them all under failed_chunks. Fix or drop the bad files, or accept the loss "
                 "with --max-failed-fraction F (0 to 1: the share of a dataset's input that may fail).")
    return "\n".join(lines)

"""Failed chunks and files as the report lists them, and as the error a run raises when they are not
skipped; which failures are worth a retry.
"""

from __future__ import annotations

import time
from typing import Any

from highrate.errors import (
    ConfigError,
    HighrateError,
    InputFileError,
    MissingBranchError,
    WorkerLostError,
)

SKIP_HINT = "Pass --skip-bad-files to skip it; it is then listed in report.json's failed_chunks."



def retryable(failure: dict[str, Any]) -> bool:
    """Errors in the analysis itself fail the same way every time: no retry."""
    return not failure["error"].startswith(("UnknownQuantityError", "ConfigError", "ChunkError"))



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



def as_error(failure: dict[str, Any]) -> HighrateError:
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

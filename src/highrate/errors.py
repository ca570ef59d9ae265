"""One exception hierarchy: every error derives from :class:`HighrateError` and the matching built-in.

Messages say what was wrong, where (dataset, file, entry range, stage) and how to fix it.
The library raises; only the command line prints and picks the exit code.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HighrateError(Exception):
    """Base class of all errors raised by highrate."""


class ConfigError(HighrateError, ValueError):
    """A datasets file, analysis definition or option is invalid."""


class DatasetError(ConfigError):
    """A dataset entry is invalid or matches no files."""


class UnknownQuantityError(ConfigError, KeyError):
    """The analysis uses a field, collection or quantity that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CorrectionError(ConfigError):
    """A correction file is missing or invalid, or a correction cannot be evaluated on its inputs."""


class InputFileError(HighrateError, OSError):
    """A file is missing, unreadable, not ROOT, truncated, or lacks the tree."""


class MissingBranchError(InputFileError, KeyError):
    """A branch the analysis needs is not in the file."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CredentialError(HighrateError, PermissionError):
    """A grid credential (token, proxy) is missing, unreadable, expired or refused."""


class CatalogError(HighrateError, RuntimeError):
    """The file catalogue (Rucio) could not be reached or refused to answer."""


class ChunkError(HighrateError, RuntimeError):
    """Processing a chunk failed; carries the chunk and the original error."""


class ExecutorError(HighrateError, RuntimeError):
    """An executor could not be started or lost contact with its workers."""


class WorkerLostError(ExecutorError):
    """The worker process running an item died (killed for memory, a crash in compiled code)."""


def did_you_mean(name: str, choices: Iterable[str], *, n: int = 3) -> str:
    """A ' Did you mean ...?' suffix with the closest valid names, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"

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


class UserCodeError(HighrateError, RuntimeError):
    """A function of the analysis (a cut, object, quantity, weight or shape variation) raised, or
    returned what its stage cannot use. A bug in the analysis, not in the input: never retried,
    never skipped by ``skip_bad_files``.

    ``stage`` names the function ("preselection cut 'two_muons'"), ``problem`` what happened
    ("raised IndexError"), ``detail`` the exception's message, ``location`` and ``source_line``
    the user's ``file:line`` and its text, ``function`` the name of the code there, ``traceback``
    the full traceback as text (it comes back from a worker process or a Dask worker with the
    error). ``dataset``, ``file`` and ``entries`` say where; ``tracing``: raised while the
    analysis ran on typetracers, before any data.
    """

    def __init__(
        self, stage: str, problem: str, *, detail: str = "", hint: str = "", location: str | None = None,
        source_line: str = "", function: str | None = None, exc_type: str | None = None, traceback: str = "",
        dataset: str | None = None, file: str | None = None, entries: tuple[int | None, int | None] | None = None,
        tracing: bool = False,
    ) -> None:
        super().__init__(stage, problem)
        self.stage, self.problem, self.detail, self.hint = stage, problem, detail, hint
        self.location, self.source_line, self.function = location, source_line, function
        self.exc_type, self.traceback = exc_type, traceback
        self.dataset, self.file, self.entries, self.tracing = dataset, file, entries, tracing

    def __reduce__(self) -> tuple:  # the keyword fields survive pickling (worker → driver)
        return type(self), (self.stage, self.problem), self.__dict__

    def at(self, *, dataset: str | None = None, file: str | None = None,
           entries: tuple[int | None, int | None] | None = None, tracing: bool | None = None) -> UserCodeError:
        """The same error, told where it happened (the worker knows the chunk, the tracer the dataset)."""
        self.dataset = dataset if dataset is not None else self.dataset
        self.file = file if file is not None else self.file
        self.entries = entries if entries is not None else self.entries
        self.tracing = tracing if tracing is not None else self.tracing
        return self

    def fields(self) -> dict[str, object]:
        """What describes the error, as plain values (a failed chunk's record keeps them)."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __str__(self) -> str:
        where = []
        if self.dataset is not None:
            where.append(f"dataset {self.dataset!r}")
        if self.file is not None:
            where.append(f"file {self.file!r}")
        if self.entries is not None and self.entries[0] is not None:
            where.append(f"entries [{self.entries[0]}, {self.entries[1]})")
        context = ", ".join(where)
        if self.tracing:
            context = f"while tracing the analysis{' on ' + context if context else ''}, before reading any data"
        lines = [f"{self.stage} {self.problem}" + (f" ({context})" if context else "") + ":"]
        if self.location:
            lines.append(f"  {self.location}" + (f": {self.source_line}" if self.source_line else ""))
        if self.detail:
            lines.append(f"  {self.detail}")
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class RunFailedError(HighrateError, RuntimeError):
    """Too much of a run failed, although ``skip_bad_files`` let it go on: a dataset processed no
    event, or lost more than ``max_failed_fraction`` of its input. ``outcome`` is the run's
    :class:`~highrate.RunOutcome`, so that its report can still be written."""

    def __init__(self, message: str, outcome: object = None) -> None:
        super().__init__(message)
        self.outcome = outcome


def did_you_mean(name: str, choices: Iterable[str], *, n: int = 3) -> str:
    """A ' Did you mean ...?' suffix with the closest valid names, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


class MissingExtraError(HighrateError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

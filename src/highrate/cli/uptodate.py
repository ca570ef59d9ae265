"""``highrate run`` again with nothing changed: the outputs are up to date, as ``make`` would say.

After a run whose every chunk result went through the cache, a stamp records what the outputs
were made from: the command line, the analysis file and every module loaded from outside the
Python installation (the analysis' helpers, an editable highrate), the installed distributions,
the datasets file and its globs' matches, the input files, the files the stages read
(corrections, golden JSONs) and the outputs themselves. The same command finds its stamp, checks
each of those with a ``stat`` (and by content for the code, the datasets file and what the
stages read, so that a save without an edit changes nothing) and, when nothing
moved, prints the recorded summary without importing numpy, awkward or uproot: an unchanged
re-run costs the interpreter's start, not the ~0.5 s of imports before the result cache.

Standard library only: it runs before the rest of highrate is imported.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
import sysconfig
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from highrate.base.cachedir import cache_root, caching_enabled, store_json
from highrate.base.inputs import digest

FORMAT = 2
VERBS = ("run", "demo")  # the verbs whose outputs are a pure function of what the stamp lists
_FORCING = ("--no-cache", "--watch", "--resume", "--help", "-h")  # and those that must always run
_ENV_PREFIXES = ("HIGHRATE_", "DASK_")
_ENV_NAMES = ("PYTHONPATH", "XDG_CACHE_HOME")


def stamp_path(argv: Sequence[str], cwd: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """Where the stamp of the command line ``argv`` (run in ``cwd`` with ``env``) is kept."""
    env = os.environ if env is None else env
    seen = {k: v for k, v in env.items() if k.startswith(_ENV_PREFIXES) or k in _ENV_NAMES}
    key = json.dumps([FORMAT, list(argv), cwd or os.getcwd(), sorted(seen.items())])
    return cache_root() / "uptodate" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def applies(argv: Sequence[str]) -> bool:
    """Whether a stamp may answer (or be written for) this command line."""
    verb = next((a for a in argv if not a.startswith("-")), None)
    return (verb in VERBS and caching_enabled()
            and not any(a in _FORCING for a in argv))


def check(argv: Sequence[str]) -> str | None:
    """The summary to print when the outputs of ``argv`` are up to date, else None."""
    if not applies(argv):
        return None
    try:
        stamp = json.loads(stamp_path(argv).read_text())
    except (OSError, ValueError):
        return None
    try:
        fresh = (stamp["format"] == FORMAT and stamp["environment"] == environment()
                 and all(file_stat(p) == s for p, s in stamp["files"].items())
                 and all(file_stat(p) == s or digest(p) == d for p, (s, d) in stamp["sources"].items())
                 and all(digest(p) == d for p, d in stamp["reads"].items())
                 and all(sorted(glob.glob(p, recursive=True)) == m for p, m in stamp["globs"].items()))
    except (KeyError, TypeError):
        return None
    if not fresh:
        return None
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp["written"]))
    return (f"up to date: nothing this run depends on changed since {when} "
            f"({len(stamp['files']) + len(stamp['sources'])} files, "
            f"{len(stamp['reads'])} read by stages, the installed libraries); that run's summary:\n"
            + stamp["summary"])


def record(stamp: Path, *, summary: str, sources: Iterable[str], files: Iterable[str],
           reads: Mapping[str, str | None], globs: Iterable[str], outputs: str | os.PathLike[str]) -> None:
    """Write the stamp (:func:`stamp_path`) of a finished run: its ``sources`` (the analysis and
    datasets files; the modules loaded now are added), the input ``files`` it read, ``reads``
    (path → digest) its stages read, the local ``globs`` its datasets expanded, and every file in
    ``outputs``. Sources count as unchanged while their content is (a save without an edit);
    input and output files while their size, modification time and inode are."""
    out = Path(outputs)
    stats = {os.path.abspath(p): file_stat(p) for p in {*files, *(str(p) for p in out.iterdir() if p.is_file())}}
    code = {os.path.abspath(p): [file_stat(p), digest(p)] for p in {*sources, *module_files()}}
    if None in stats.values() or any(None in v for v in code.values()):
        return  # something went missing as the run ended: no promise to make
    store_json(stamp, {
        "format": FORMAT, "written": time.time(), "environment": environment(), "files": stats,
        "sources": code, "reads": dict(reads), "globs": {p: sorted(glob.glob(p, recursive=True)) for p in globs},
        "summary": summary,
    })


def forget() -> int:
    """Delete every stamp (``highrate cache clear``): the next run of each command runs; returns
    how many there were."""
    folder = cache_root() / "uptodate"
    count = 0
    for path in folder.glob("*.json"):
        path.unlink(missing_ok=True)
        count += 1
    return count


def environment() -> str:
    """The interpreter and the installed distributions (their ``*.dist-info`` names carry the
    versions): a ``pip install`` changes it."""
    h = hashlib.sha256(f"{sys.version}|{sys.prefix}".encode())
    for folder in _installed_folders():
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith((".dist-info", ".egg-info", ".pth")))
        except OSError:
            continue
        h.update("|".join([folder, *names]).encode())
    return h.hexdigest()[:32]


def _installed_folders() -> list[str]:
    paths = sysconfig.get_paths()
    return sorted({paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths})


def module_files() -> list[str]:
    """The source of every module loaded from outside the Python installation (whose versions
    :func:`environment` covers): the analysis' helpers, an editable install's code."""
    installed = tuple(os.path.join(f, "") for f in _installed_folders())
    found = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and not os.path.abspath(path).startswith(installed) and os.path.isfile(path):
            found.append(path)
    return found


def file_stat(path: str) -> list[int] | None:
    """(size, mtime ns, inode) of a file, None when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]

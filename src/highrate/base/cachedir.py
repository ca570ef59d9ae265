"""Where highrate keeps what it remembers between runs, and the switch that turns that off."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path


def cache_root(cache_dir: str | None = None) -> Path:
    """highrate's cache folder: ``cache_dir``, else ``$XDG_CACHE_HOME/highrate`` or ``~/.cache/highrate``."""
    if cache_dir:
        return Path(cache_dir)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "highrate"


def caching_enabled() -> bool:
    """False when ``HIGHRATE_CACHE`` is ``off`` (or 0, no, false): traces and file metadata
    are then worked out again in every run."""
    return os.environ.get("HIGHRATE_CACHE", "").lower() not in ("off", "0", "no", "false")


def store_json(path: Path, doc: object) -> None:
    """Write ``doc`` to ``path`` atomically (concurrent runs and workers never read half an
    entry). A read-only or full cache folder is ignored: it only costs the next run the work."""
    # a name of this process and thread (not tempfile: its import costs the up-to-date check 7 ms)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()

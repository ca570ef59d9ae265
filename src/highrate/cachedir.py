"""Where highrate keeps what it remembers between runs, and the switch that turns that off."""

from __future__ import annotations

import os
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

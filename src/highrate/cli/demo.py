"""The one-command demos: the default synthetic sample, generated once into a cache folder, and
the reference analysis run on it (Z→μμ, or the AGC ttbar analysis with ``highrate demo agc``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from highrate.base.cachedir import cache_root

DEMO_SEED = 2018
FORMAT = 4  # bump when the generator changes, so stale caches are regenerated


AGC_SEED = 2015
AGC_FORMAT = 1  # bump when the AGC generator changes
#: The demos by name: (events per sample, files per sample) by default.
DEMOS = {"zmumu": (1_000_000, 4), "agc": (200_000, 2)}


def example_dir(name: str = "zmumu") -> Path:
    """An example (``zmumu``, ``agc``): shipped in the wheel, or the repository's ``examples/NAME``."""
    packaged = Path(__file__).parents[1] / "_examples" / name
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "examples" / name


def demo_inputs(*, events: int, files: int, cache_dir: str | None = None) -> tuple[Path, Path]:
    """(analysis file, datasets file) for the demo, generating the sample on first use."""
    from highrate.testing import generate_dataset_set

    folder = cache_root(cache_dir) / f"demo-v{FORMAT}-{events}x{files}-seed{DEMO_SEED}"
    datasets = _once(folder, f"the demo sample ({events:,} events per sample)", lambda: generate_dataset_set(
        folder, events=events, files=files, seed=DEMO_SEED, compression="zstd"))
    return example_dir() / "analysis.py", datasets


def agc_inputs(*, events: int, files: int, cache_dir: str | None = None) -> tuple[Path, Path]:
    """(analysis file, datasets file) for the AGC demo, generating its samples on first use:
    ``events`` per sample (rounded down to a multiple of ``files``) in ``files`` files."""
    from highrate.testing import generate_agc_set

    per_file = max(1, events // max(files, 1))
    events = per_file * files
    folder = cache_root(cache_dir) / f"demo-agc-v{AGC_FORMAT}-{events}x{files}-seed{AGC_SEED}"
    datasets = _once(folder, f"the AGC samples ({events:,} events per sample)", lambda: generate_agc_set(
        folder, events=per_file, files=files, seed=AGC_SEED, compression="zstd"))
    return example_dir("agc") / "analysis.py", datasets


def _once(folder: Path, what: str, write: Callable[[], object]) -> Path:
    """``folder/datasets.yaml``, which ``write`` makes the first time (said on the console)."""
    done = folder / ".complete"
    if not done.exists():
        from highrate.cli.console import console

        console.print(f"generating {what} into {folder} (once)")
        write()
        done.write_text("ok\n")
    return folder / "datasets.yaml"

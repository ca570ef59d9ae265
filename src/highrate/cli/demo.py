"""The one-command demo: the default synthetic sample, generated once into a cache folder."""

from __future__ import annotations

from pathlib import Path

from highrate.base.cachedir import cache_root

DEMO_SEED = 2018
FORMAT = 4  # bump when the generator changes, so stale caches are regenerated


def example_dir() -> Path:
    """The Z→μμ example: shipped in the wheel, or the repository's ``examples/zmumu``."""
    packaged = Path(__file__).parents[1] / "_examples" / "zmumu"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "examples" / "zmumu"


def demo_inputs(*, events: int, files: int, cache_dir: str | None = None) -> tuple[Path, Path]:
    """(analysis file, datasets file) for the demo, generating the sample on first use."""
    from highrate.testing import generate_dataset_set

    folder = cache_root(cache_dir) / f"demo-v{FORMAT}-{events}x{files}-seed{DEMO_SEED}"
    datasets = folder / "datasets.yaml"
    done = folder / ".complete"
    if not done.exists():
        from highrate.cli.console import console

        console.print(f"generating the demo sample ({events:,} events per sample) into {folder} (once)")
        generate_dataset_set(folder, events=events, files=files, seed=DEMO_SEED, compression="zstd")
        done.write_text("ok\n")
    return example_dir() / "analysis.py", datasets

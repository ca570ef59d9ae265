"""``highrate cache info | clear | prune``: the cache of columns, stage results and chunk results."""

from __future__ import annotations

import argparse
import datetime
import json
from typing import Any

from highrate.cli.flags import add_debug


def add_cache_parser(sub: argparse._SubParsersAction) -> None:
    cache = sub.add_parser("cache", help="show, clear or prune the cache of columns and stage results",
                           description="The cache that makes a re-run cheap (docs/caching.md): decoded columns, "
                                       "stage results and chunk results, in ~/.cache/highrate/chunks or "
                                       "$HIGHRATE_CACHE_DIR.")
    verbs = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    info = verbs.add_parser("info", help="size, entries, hit rates and the oldest entry")
    info.add_argument("--json", action="store_true", help="as JSON")
    verbs.add_parser("clear", help="delete every entry")
    prune = verbs.add_parser("prune", help="delete the least recently used entries down to a size")
    prune.add_argument("--max-size", required=True, metavar="SIZE", help="e.g. 500M, 10G (bytes without a suffix)")
    for p in (info, prune, verbs.choices["clear"]):
        add_debug(p)
        p.add_argument("--cache-dir", default=None, metavar="DIR",
                       help="the cache folder (default: $HIGHRATE_CACHE_DIR, else ~/.cache/highrate/chunks)")
    cache.set_defaults(handler=_cache)


def _cache(args: argparse.Namespace) -> int:
    from highrate.base.store import Store, max_bytes_from_env, parse_size
    from highrate.cli.console import results
    from highrate.cli.uptodate import forget
    from highrate.errors import ConfigError
    from highrate.execution.caching import local_folder, read_stats

    folder = args.cache_dir or local_folder()
    store = Store(folder, max_bytes_from_env())
    if args.cache_command == "clear":
        before = store.info()
        store.clear()
        stamps = forget()  # outputs said up to date would be so without the cache too: no harm, but clear means clear
        results.print(f"cleared {before['entries']:,} entries ({before['bytes'] / 1e6:,.1f} MB) from {folder}"
                      f" and {stamps} up-to-date stamp(s)", highlight=False)
        return 0
    if args.cache_command == "prune":
        try:
            limit = parse_size(args.max_size)
        except ValueError as err:
            raise ConfigError(f"--max-size: {err}") from None
        count, freed = store.prune(limit)
        results.print(f"pruned {count:,} entries ({freed / 1e6:,.1f} MB); {store.info()['bytes'] / 1e6:,.1f} MB "
                      f"remain in {folder}", highlight=False)
        return 0
    info = {**store.info(), "stats": read_stats(args.cache_dir)}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    _print_info(info, results)
    return 0


def _print_info(info: dict[str, Any], out: Any) -> None:
    oldest = info["oldest"]
    when = datetime.datetime.fromtimestamp(oldest).isoformat(timespec="seconds") if oldest else "-"
    out.print(f"{info['root']}: {info['entries']:,} entries, {info['bytes'] / 1e6:,.1f} MB of "
              f"{info['max_bytes'] / 1e9:,.1f} GB; oldest used {when}", highlight=False)
    for kind, k in sorted(info["kinds"].items()):
        out.print(f"  {kind}: {k['entries']:,} entries, {k['bytes'] / 1e6:,.1f} MB", highlight=False)
    stats = info["stats"]
    if stats.get("runs"):
        out.print(f"hit rates over {stats['runs']} run(s):", highlight=False)
        for stage, s in stats["stages"].items():
            looked = s.get("hits", 0) + s.get("misses", 0)
            if looked:
                out.print(f"  {stage}: {s['hits'] / looked:.0%} of {looked:,} lookups", highlight=False)

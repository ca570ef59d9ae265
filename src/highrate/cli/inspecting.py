"""The verbs that look before a run: ``datasets`` (files, replicas, sizes) and ``cluster`` (profiles)."""

from __future__ import annotations

import argparse
import sys

from highrate.cli.flags import add_debug


def add_datasets_parser(sub: argparse._SubParsersAction) -> None:
    """The ``datasets`` verb."""
    ds = sub.add_parser(
        "datasets", help="list the files of a datasets file: replicas, sites, sizes (resolves rucio:// DIDs)",
        description="List every file of the datasets with its replicas (best first), sites and sizes. Rucio DIDs "
        "are resolved (or read from the cache). With --check each file is opened through the same failover as a "
        "run; with ANALYSIS.py too, the bytes of the branches it needs are shown.",
    )
    ds.add_argument("analysis", nargs="?", default=None, help="Python file defining 'analysis = Analysis(...)'")
    ds.add_argument("--datasets", required=True, help="datasets YAML file")
    ds.add_argument("--dataset", action="append", default=None, metavar="NAME", help="only this dataset (repeatable)")
    ds.add_argument("--check", action="store_true", help="open every file (first working replica)")
    ds.add_argument("--refresh", action="store_true", help="ask Rucio again instead of using the cache")
    ds.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_debug(ds)
    ds.set_defaults(handler=_cmd_datasets)



def _cmd_datasets(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from rich.console import Console
    from rich.markup import escape

    from highrate.data.datasets import load_datasets, select
    from highrate.execution.listing import list_files

    console = Console()  # the listing is the command's output: stdout, unlike progress and errors

    analysis = None
    if args.analysis:
        from highrate.spec.loading import load_analysis

        analysis = load_analysis(args.analysis)
    datasets = select(load_datasets(args.datasets, refresh=args.refresh), args.dataset)
    rows = list_files(datasets, check=args.check or analysis is not None, analysis=analysis)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
        return 1 if any(r.error for r in rows) else 0
    current = None
    for r in rows:
        if r.dataset != current:
            current = r.dataset
            files = [x for x in rows if x.dataset == current]
            known = [x.size for x in files if x.size]
            total = f", {sum(known) / 1e6:,.1f} MB" if len(known) == len(files) else ""
            console.print(f"[bold]{escape(current)}[/bold]: {len(files)} file(s){total}", highlight=False)
        size = f"{r.size / 1e6:,.2f} MB" if r.size else "size unknown"
        extra = f", {r.entries:,} entries" if r.entries is not None else ""
        if r.needed_bytes is not None and r.size:
            extra += f", analysis reads {r.needed_bytes / 1e6:,.2f} MB ({100 * r.needed_bytes / r.size:.1f}%)"
        console.print(f"  {escape(r.name)} ({size}{extra})", highlight=False, soft_wrap=True)
        failed = {f["replica"]: f["error"] for f in r.failures}
        for i, replica in enumerate(r.replicas):
            site = f" [{r.sites[i]}]" if i < len(r.sites) else ""
            mark = " <- served" if replica == r.served_by else ""
            if replica in failed:
                mark = f" FAILED: {failed[replica]}"
            console.print(f"    {i + 1}. {escape(replica)}{escape(site)}{escape(mark)}", highlight=False, soft_wrap=True)
        if r.error:
            console.print(f"    [red]error:[/red] {escape(r.error)}", highlight=False, soft_wrap=True)
    return 1 if any(r.error for r in rows) else 0



def add_cluster_parser(sub: argparse._SubParsersAction) -> None:
    """The ``cluster`` verb: ``list``, ``show`` and ``check``."""
    cluster = sub.add_parser("cluster", help="list cluster profiles, show what one would submit")
    verbs = cluster.add_subparsers(dest="verb", required=True, metavar="VERB")
    show = verbs.add_parser("show", help="print the batch job script (or pod spec) of a profile; submits nothing")
    show.add_argument("name", help="profile name (see `highrate cluster list`)")
    add_debug(show)
    show.set_defaults(handler=_cmd_cluster_show)
    check = verbs.add_parser(
        "check", help="check what a profile would submit with the real tools' parsers and schemas; submits nothing",
        description="Parse the job script or manifests of a profile as the batch system or Kubernetes would: "
        "HTCondor submit descriptions with the HTCondor Python bindings, Dask Operator manifests against the "
        "operator's CRD schemas and the Kubernetes OpenAPI schema, other job scripts with `bash -n`. "
        "Needs the `check` extra. Exits 1 if any check fails.",
    )
    check.add_argument("name", nargs="*", help="profile names (default: every profile)")
    add_debug(check)
    check.set_defaults(handler=_cmd_cluster_check)
    lst = verbs.add_parser("list", help="list the cluster profiles: name, kind, file")
    add_debug(lst)
    lst.set_defaults(handler=_cmd_cluster_list)



def _cmd_cluster_show(args: argparse.Namespace) -> int:
    from highrate.execution.clusters import describe, get_profile

    profile = get_profile(args.name)
    text = describe(profile)
    note = f"# {profile.where}, kind {profile.kind}: submits nothing"
    if profile.kind in ("slurm", "htcondor", "pbs", "lsf"):
        note += "; SCHEDULER_HOST:PORT and WORKER_NAME are filled in at run time"
    print(note, file=sys.stderr)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0



def _cmd_cluster_check(args: argparse.Namespace) -> int:
    from highrate.execution.clusters import check, get_profile, load_profiles

    profiles = [get_profile(n) for n in args.name] if args.name else list(load_profiles().values())
    failed = 0
    for profile in profiles:  # plain lines: one per check, easy to grep
        print(f"{profile.name} ({profile.kind}, {profile.source})")
        for finding in check(profile):
            failed += not finding.ok
            print(f"  {'ok  ' if finding.ok else 'FAIL'}  {finding.what} [{finding.tool}]: {finding.detail}")
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0



def _cmd_cluster_list(args: argparse.Namespace) -> int:
    from highrate.execution.clusters import load_profiles

    profiles = load_profiles()
    width = max(len(n) for n in profiles)
    for name, profile in profiles.items():  # plain lines: easy to grep, never wrapped
        print(f"{name:<{width}}  {profile.kind:<10}  {profile.source}  {profile.description}".rstrip())
    return 0

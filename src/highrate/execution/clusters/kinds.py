"""Kinds of cluster (local, scheduler, slurm, htcondor, pbs, lsf, kubernetes, gateway), chosen by name.

Third parties add kinds through the entry-point group ``highrate.cluster_kinds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from highrate.base.registry import Registry
from highrate.execution.clusters.profile import ClusterProfile

# keys every kind that starts workers understands
WORKER_KEYS = frozenset({
    "kind", "description", "cores", "processes", "memory", "env", "jobs", "adapt", "start_timeout",
})


@dataclass(frozen=True)
class Finding:
    """One check of a generated artefact: what was checked, by which tool, and the outcome."""

    what: str
    tool: str
    ok: bool
    detail: str = ""


class ClusterKind(Protocol):
    """How one kind of cluster is described and started."""

    keys: frozenset[str]

    def describe(self, profile: ClusterProfile) -> str:
        """What would be submitted (job script, pod spec), without submitting anything."""
        ...

    def check(self, profile: ClusterProfile) -> list[Finding]:
        """Check what ``describe`` gives with the real tools' parsers and schemas; submits nothing."""
        ...

    def start(self, profile: ClusterProfile) -> Any:
        """Start the cluster, scaled as the profile says; the caller closes it.

        Returns a Dask cluster object, or a scheduler address for an existing cluster.
        """
        ...


kinds: Registry[ClusterKind] = Registry("cluster kind", "highrate.cluster_kinds")
kinds.register("local", "highrate.execution.clusters.local:LOCAL")
kinds.register("scheduler", "highrate.execution.clusters.local:SCHEDULER")
kinds.register("slurm", "highrate.execution.clusters.jobqueue:SLURM")
kinds.register("htcondor", "highrate.execution.clusters.htcondor:HTCONDOR")
kinds.register("pbs", "highrate.execution.clusters.jobqueue:PBS")
kinds.register("lsf", "highrate.execution.clusters.jobqueue:LSF")
kinds.register("kubernetes", "highrate.execution.clusters.kubernetes:KUBERNETES")
kinds.register("gateway", "highrate.execution.clusters.gateway:GATEWAY")


def scale(cluster: Any, profile: ClusterProfile, *, by_jobs: bool) -> None:
    """Scale to the profile's fixed ``jobs`` (default 1) or make ``cluster`` adaptive.

    ``by_jobs``: the cluster counts batch jobs (dask-jobqueue) rather than workers.
    """
    if profile.adapt is not None:
        lo, hi = profile.adapt.minimum, profile.adapt.maximum
        if by_jobs:
            cluster.adapt(minimum_jobs=lo, maximum_jobs=hi)
        else:
            cluster.adapt(minimum=lo, maximum=hi)
        return
    n = 1 if profile.jobs is None else profile.jobs
    if by_jobs:
        cluster.scale(jobs=n)
    else:
        cluster.scale(n)


def scaled(cluster: Any, profile: ClusterProfile, *, by_jobs: bool) -> Any:
    """``cluster`` scaled as the profile says; closed again if scaling fails."""
    try:
        scale(cluster, profile, by_jobs=by_jobs)
    except BaseException:
        cluster.close()
        raise
    return cluster

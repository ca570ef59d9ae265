"""Cluster profiles: named YAML settings that say where Dask workers run (local, an existing
scheduler, Slurm, HTCondor, PBS, LSF or Kubernetes) and what each batch job asks for."""

from __future__ import annotations

from typing import Any

from highrate.execution.clusters.config import get_profile, load_profiles, profile_files
from highrate.execution.clusters.kinds import Finding, kinds
from highrate.execution.clusters.profile import Adapt, ClusterProfile


def describe(profile: ClusterProfile) -> str:
    """What the profile would submit (job script, pod spec), without submitting anything."""
    return kinds.get(profile.kind).describe(profile)


def check(profile: ClusterProfile) -> list[Finding]:
    """Check what the profile would submit with the real tools' parsers and schemas; submits nothing."""
    kind = kinds.get(profile.kind)
    checker = getattr(kind, "check", None)
    if checker is None:  # local, scheduler, or a third-party kind without checks
        return [Finding(f"kind {profile.kind!r}", "-", True, "generates no job script or manifest to check")]
    return list(checker(profile))


def start(profile: ClusterProfile) -> Any:
    """Start the profile's cluster (scaled) and return it, or a scheduler address."""
    return kinds.get(profile.kind).start(profile)


__all__ = ["Adapt", "ClusterProfile", "Finding", "check", "describe", "get_profile", "kinds", "load_profiles", "profile_files", "start"]

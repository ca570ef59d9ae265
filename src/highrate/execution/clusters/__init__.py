"""Cluster profiles: named YAML settings that say where Dask workers run (local, an existing
scheduler, Slurm, HTCondor, PBS, LSF or Kubernetes) and what each batch job asks for."""

from __future__ import annotations

from typing import Any

from highrate.execution.clusters.config import get_profile, load_profiles, profile_files
from highrate.execution.clusters.kinds import kinds
from highrate.execution.clusters.profile import Adapt, ClusterProfile


def describe(profile: ClusterProfile) -> str:
    """What the profile would submit (job script, pod spec), without submitting anything."""
    return kinds.get(profile.kind).describe(profile)


def start(profile: ClusterProfile) -> Any:
    """Start the profile's cluster (scaled) and return it, or a scheduler address."""
    return kinds.get(profile.kind).start(profile)


__all__ = ["Adapt", "ClusterProfile", "describe", "get_profile", "kinds", "load_profiles", "profile_files", "start"]

"""Kubernetes through the dask-kubernetes operator: a DaskCluster resource built from the profile."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from highrate.base.optional import require
from highrate.errors import ConfigError
from highrate.execution.clusters.kinds import WORKER_KEYS, scaled
from highrate.execution.clusters.profile import ClusterProfile

DEFAULT_IMAGE = "ghcr.io/dask/dask:latest"


@dataclass(frozen=True)
class KubernetesKind:
    """Worker pods of ``cores`` CPUs and ``memory`` each, running ``image`` (which must hold highrate)."""

    keys: frozenset[str] = WORKER_KEYS | {"image", "namespace"}

    def spec(self, profile: ClusterProfile) -> dict[str, Any]:
        """The DaskCluster resource (scheduler and worker pods) that the operator would create."""
        operator = require("dask_kubernetes.operator", "kubernetes", purpose=f"{profile.where} (kind 'kubernetes')")
        resources = {"cpu": str(profile.cores), "memory": _quantity(profile)}
        spec = operator.make_cluster_spec(
            name=_pod_name(profile),
            image=profile.image or DEFAULT_IMAGE,
            n_workers=profile.adapt.minimum if profile.adapt else (1 if profile.jobs is None else profile.jobs),
            resources={"requests": resources, "limits": dict(resources)},
            env=dict(profile.env),
            worker_command=f"dask-worker --nworkers {profile.processes} --nthreads {max(1, profile.cores // profile.processes)}",
        )
        if profile.namespace:
            spec["metadata"]["namespace"] = profile.namespace
        return json.loads(json.dumps(spec))  # plain data: no shared objects, so no YAML anchors

    def describe(self, profile: ClusterProfile) -> str:
        return yaml.safe_dump(self.spec(profile), sort_keys=False)

    def start(self, profile: ClusterProfile) -> Any:
        operator = require("dask_kubernetes.operator", "kubernetes", purpose=f"{profile.where} (kind 'kubernetes')")
        cluster = operator.KubeCluster(custom_cluster_spec=self.spec(profile), namespace=profile.namespace)
        return scaled(cluster, profile, by_jobs=False)


def _pod_name(profile: ClusterProfile) -> str:
    name = "".join(c if c.isalnum() else "-" for c in f"highrate-{profile.name}".lower()).strip("-")
    return name[:50]


def _quantity(profile: ClusterProfile) -> str:
    """'2GB' → '1907Mi': Kubernetes quantities, in mebibytes."""
    from dask.utils import parse_bytes

    try:
        return f"{parse_bytes(profile.memory) // 2**20}Mi"
    except ValueError as err:  # pragma: no cover - checked when the profile is loaded
        raise ConfigError(f"{profile.where}: bad memory {profile.memory!r}.") from err


KUBERNETES = KubernetesKind()

"""Kubernetes through the Dask Operator (dask-kubernetes): a DaskCluster resource built from the
profile, and a DaskAutoscaler for adaptive scaling, which is what ``KubeCluster.adapt`` creates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from highrate.base.optional import require
from highrate.errors import ConfigError
from highrate.execution.clusters.interlink import customise
from highrate.execution.clusters.kinds import WORKER_KEYS, Finding, scaled
from highrate.execution.clusters.profile import ClusterProfile

DEFAULT_IMAGE = "ghcr.io/dask/dask:latest"
# distributed's commands are `dask scheduler` and `dask worker` (the `dask-worker` scripts are gone)
SCHEDULER_ARGS = ["dask", "scheduler", "--host", "0.0.0.0"]
POD_KEYS = frozenset({"image", "namespace", "service_account", "secrets", "node_selector", "tolerations",
                      "annotations", "resources", "interlink"})


@dataclass(frozen=True)
class KubernetesKind:
    """Worker pods of ``cores`` CPUs and ``memory`` each, running ``image`` (which must hold highrate)."""

    keys: frozenset[str] = WORKER_KEYS | POD_KEYS

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
            worker_command=f"dask worker --nworkers {profile.processes} --nthreads {max(1, profile.cores // profile.processes)}",
        )
        if profile.namespace:
            spec["metadata"]["namespace"] = profile.namespace
        spec = json.loads(json.dumps(spec))  # plain data: scheduler and workers share no objects
        spec["spec"]["scheduler"]["spec"]["containers"][0]["args"] = list(SCHEDULER_ARGS)
        return customise(spec, profile)

    def manifests(self, profile: ClusterProfile) -> list[dict[str, Any]]:
        """The resources created: the DaskCluster, and with ``adapt`` the operator's DaskAutoscaler."""
        cluster = self.spec(profile)
        if profile.adapt is None:
            return [cluster]
        name = cluster["metadata"]["name"]
        autoscaler = {
            "apiVersion": "kubernetes.dask.org/v1",
            "kind": "DaskAutoscaler",
            "metadata": {"name": name, "labels": {"dask.org/cluster-name": name, "dask.org/component": "autoscaler"}},
            "spec": {"cluster": name, "minimum": profile.adapt.minimum, "maximum": profile.adapt.maximum},
        }
        if profile.namespace:
            autoscaler["metadata"]["namespace"] = profile.namespace
        return [cluster, autoscaler]

    def describe(self, profile: ClusterProfile) -> str:
        return yaml.safe_dump_all(self.manifests(profile), sort_keys=False)

    def check(self, profile: ClusterProfile) -> list[Finding]:
        from highrate.execution.clusters.manifests import check_manifests

        return check_manifests(profile, self.manifests(profile))

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

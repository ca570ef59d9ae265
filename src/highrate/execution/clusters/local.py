"""Clusters without a batch system: a LocalCluster here, or an existing scheduler's address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from highrate.errors import ConfigError
from highrate.execution.clusters.kinds import WORKER_KEYS, scaled
from highrate.execution.clusters.profile import ClusterProfile


@dataclass(frozen=True)
class LocalKind:
    """A LocalCluster: ``jobs`` worker processes of ``cores`` threads and ``memory`` each."""

    keys: frozenset[str] = WORKER_KEYS | {"dashboard_port", "scheduler_port", "local_directory"}

    def options(self, profile: ClusterProfile) -> dict[str, Any]:
        return {
            "n_workers": 0,
            "threads_per_worker": profile.cores,
            "memory_limit": profile.memory,
            "processes": True,
            "host": "127.0.0.1",
            "scheduler_port": profile.scheduler_port or 0,
            "dashboard_address": f"127.0.0.1:{profile.dashboard_port or 0}",
            "local_directory": profile.local_directory,
            "env": dict(profile.env),
        }

    def describe(self, profile: ClusterProfile) -> str:
        scaling = {"adapt": vars(profile.adapt)} if profile.adapt else {"jobs": profile.jobs or 1}
        return yaml.safe_dump({"LocalCluster": self.options(profile), **scaling}, sort_keys=False)

    def start(self, profile: ClusterProfile) -> Any:
        import distributed

        cluster = distributed.LocalCluster(**self.options(profile))
        return scaled(cluster, profile, by_jobs=False)


@dataclass(frozen=True)
class SchedulerKind:
    """An existing Dask scheduler: nothing is started, highrate connects to ``address``."""

    keys: frozenset[str] = frozenset({"kind", "description", "address", "start_timeout"})

    def describe(self, profile: ClusterProfile) -> str:
        return f"connects to the running Dask scheduler at {self._address(profile)}; submits nothing.\n"

    def start(self, profile: ClusterProfile) -> str:
        return self._address(profile)

    @staticmethod
    def _address(profile: ClusterProfile) -> str:
        if not profile.address:
            raise ConfigError(f"{profile.where}: kind 'scheduler' needs 'address', e.g. tcp://host:8786.")
        return profile.address


LOCAL = LocalKind()
SCHEDULER = SchedulerKind()

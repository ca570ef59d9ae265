"""Batch systems through dask-jobqueue: Slurm, PBS and LSF here, HTCondor in ``htcondor.py``."""

from __future__ import annotations

import importlib
import shlex
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from highrate.base.optional import require
from highrate.errors import ConfigError
from highrate.execution.clusters.kinds import WORKER_KEYS, Finding, scaled
from highrate.execution.clusters.profile import ClusterProfile

BATCH_KEYS = WORKER_KEYS | {
    "walltime", "job_script_prologue", "job_extra_directives", "python", "interface",
    "scheduler_port", "dashboard_port", "worker_ports", "log_directory", "local_directory",
}
# shown in `highrate cluster show`: the real address is known once the scheduler runs
PLACEHOLDER_HOST = "SCHEDULER_HOST"


@dataclass(frozen=True)
class JobqueueKind:
    """One batch system: its dask-jobqueue cluster and job classes and the keys it takes."""

    system: str
    cluster_class: str
    job_class: str
    keys: frozenset[str]
    account_keyword: str | None = "account"

    def describe(self, profile: ClusterProfile) -> str:
        """The job script each batch job runs, from the jobqueue Job class: no scheduler, no submission."""
        require("dask_jobqueue", "batch", purpose=f"{profile.where} (kind {self.system!r})")
        module, _, name = self.job_class.partition(":")
        job = getattr(importlib.import_module(module), name)
        port = profile.scheduler_port or "PORT"
        return str(job(scheduler=f"tcp://{PLACEHOLDER_HOST}:{port}", name="WORKER_NAME",
                       **self.options(profile)).job_script())

    def check(self, profile: ClusterProfile) -> list[Finding]:
        """The job script read by ``bash -n``: the shell's own parser, which runs nothing."""
        script = self.describe(profile)
        done = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
        return [Finding(f"{self.system} job script", "bash -n", done.returncode == 0,
                        done.stderr.strip() or "the shell parses it")]

    def start(self, profile: ClusterProfile) -> Any:
        """Start the scheduler here and submit the profile's jobs (or make it adaptive)."""
        jobqueue = require("dask_jobqueue", "batch", purpose=f"{profile.where} (kind {self.system!r})")
        cluster = getattr(jobqueue, self.cluster_class)(
            **self.options(profile), scheduler_options=scheduler_options(profile),
        )
        return scaled(cluster, profile, by_jobs=True)

    def options(self, profile: ClusterProfile) -> dict[str, Any]:
        """Keyword arguments shared by the jobqueue cluster and job classes."""
        prologue = [f"export {k}={shlex.quote(v)}" for k, v in profile.env.items()]
        options: dict[str, Any] = {
            "cores": profile.cores,
            "processes": profile.processes,
            "memory": profile.memory,
            "python": profile.python or sys.executable,
            "job_name": f"highrate-{profile.name}",
            "job_script_prologue": prologue + list(profile.job_script_prologue),
            "job_extra_directives": list(profile.job_extra_directives),
            "interface": profile.interface,
            "log_directory": profile.log_directory,
            "local_directory": profile.local_directory,
        }
        if profile.worker_ports:
            options["worker_extra_args"] = ["--worker-port", profile.worker_ports]
        if "walltime" in self.keys:
            options["walltime"] = profile.walltime
        if "queue" in self.keys:
            options["queue"] = profile.queue
        if self.account_keyword and "account" in self.keys:
            options[self.account_keyword] = profile.account
        return options


@dataclass(frozen=True)
class LSFKind(JobqueueKind):
    """LSF's ``-W`` takes ``[hours:]minutes``: an ``HH:MM:SS`` walltime is rounded up to minutes."""

    def options(self, profile: ClusterProfile) -> dict[str, Any]:
        options = super().options(profile)
        if profile.walltime and profile.walltime.count(":") == 2:
            minutes = -(-seconds(profile) // 60)
            options["walltime"] = f"{minutes // 60:02d}:{minutes % 60:02d}"
        return options


def scheduler_options(profile: ClusterProfile) -> dict[str, Any]:
    """Where the scheduler and its dashboard listen (on the profile's interface)."""
    options: dict[str, Any] = {}
    if profile.scheduler_port is not None:
        options["port"] = profile.scheduler_port
    if profile.dashboard_port is not None:
        options["dashboard_address"] = f":{profile.dashboard_port}"
    return options


def seconds(profile: ClusterProfile) -> int:
    """The walltime 'HH:MM:SS', 'MM:SS' or 'SS' in seconds."""
    total = 0
    for part in str(profile.walltime).split(":"):
        if not part.isdigit():
            raise ConfigError(f"{profile.where}: walltime must be HH:MM:SS, got {profile.walltime!r}.")
        total = total * 60 + int(part)
    return total


SLURM = JobqueueKind("slurm", "SLURMCluster", "dask_jobqueue.slurm:SLURMJob",
                     BATCH_KEYS | {"queue", "account"})
PBS = JobqueueKind("pbs", "PBSCluster", "dask_jobqueue.pbs:PBSJob", BATCH_KEYS | {"queue", "account"})
LSF = LSFKind("lsf", "LSFCluster", "dask_jobqueue.lsf:LSFJob", BATCH_KEYS | {"queue", "account"},
              account_keyword="project")

"""Worker and scheduler pods of a DaskCluster: credentials, service account, placement, InterLink.

InterLink runs pods on a remote site (a Slurm or HTCondor batch system, another cloud) through a
virtual kubelet: a node, usually named after the site, tainted so that only pods that tolerate
``virtual-node.interlink/no-schedule`` go there. A profile's ``interlink: NODE`` selects that node
by hostname and adds the toleration; its ``annotations`` (for example the Slurm plugin's
``slurm-job.vk.io/flags``) and the pod's resource requests are what the InterLink plugin reads to
make the remote job. Only the workers move: the scheduler stays in the cluster, where the driver
and the remote workers reach it.
"""

from __future__ import annotations

from typing import Any

from highrate.execution.clusters.profile import ClusterProfile

INTERLINK_TAINT = "virtual-node.interlink/no-schedule"
HOSTNAME_LABEL = "kubernetes.io/hostname"
SECRETS_ROOT = "highrate-secret"


def customise(spec: dict[str, Any], profile: ClusterProfile) -> dict[str, Any]:
    """The DaskCluster ``spec`` with the profile's pod settings added (in place; also returned)."""
    scheduler = spec["spec"]["scheduler"]["spec"]
    worker_group = spec["spec"]["worker"]
    worker = worker_group["spec"]
    for pod in (scheduler, worker):
        if profile.service_account:
            pod["serviceAccountName"] = profile.service_account
    (container,) = worker["containers"]
    if profile.resources:
        for bound in ("requests", "limits"):  # extended resources (GPUs) need both, equal
            container["resources"][bound].update(profile.resources)
    if profile.secrets:
        worker["volumes"] = [{"name": _volume(name), "secret": {"secretName": name}} for name in profile.secrets]
        container["volumeMounts"] = [{"name": _volume(name), "mountPath": path, "readOnly": True}
                                     for name, path in profile.secrets.items()]
    selector = dict(profile.node_selector)
    tolerations = [dict(t) for t in profile.tolerations]
    if profile.interlink:
        selector[HOSTNAME_LABEL] = profile.interlink
        if not any(t.get("key") == INTERLINK_TAINT for t in tolerations):
            tolerations.append({"key": INTERLINK_TAINT, "operator": "Exists", "effect": "NoSchedule"})
    if selector:
        worker["nodeSelector"] = selector
    if tolerations:
        worker["tolerations"] = tolerations
    if profile.annotations:
        worker_group.setdefault("metadata", {})["annotations"] = dict(profile.annotations)
    return spec


def _volume(secret: str) -> str:
    """A volume name (a DNS label) for a Secret."""
    name = "".join(c if c.isalnum() else "-" for c in f"{SECRETS_ROOT}-{secret}".lower()).strip("-")
    return name[:63].rstrip("-")

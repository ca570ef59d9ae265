"""Check Dask Operator manifests against the real schemas, with no Kubernetes API server.

Three steps, each with the tools' own code and data:

1. each custom resource (DaskCluster, DaskAutoscaler, and the DaskWorkerGroup the operator makes
   from the DaskCluster) against the CRD schema shipped in ``dask-kubernetes``;
2. the Deployments and the Service that the operator's controller builds from them — made by the
   controller's own ``build_*_spec`` functions — against the Kubernetes OpenAPI schema
   (``kubernetes-validate``, strict: unknown fields are errors);
3. the resource quantities, against Kubernetes' quantity grammar, which the schemas leave as
   "string or number".
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import yaml

from highrate.base.optional import require
from highrate.execution.clusters.kinds import Finding
from highrate.execution.clusters.profile import ClusterProfile

# resource.Quantity: <number><suffix>, suffix binary (Ki..Ei), decimal (m, k, M..E) or an exponent
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[mkMGTPE])?$")


def crd_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of a Dask Operator CRD (``DaskCluster``, ...), from dask-kubernetes."""
    require("dask_kubernetes", "kubernetes", purpose="checking Kubernetes manifests")
    folder = resources.files("dask_kubernetes") / "operator" / "deployment" / "helm" / "dask-kubernetes-operator" / "crds"
    crd = yaml.safe_load((folder / f"{kind.lower()}.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage", True)]
    return version["schema"]["openAPIV3Schema"]


def check_manifests(profile: ClusterProfile, manifests: list[dict[str, Any]]) -> list[Finding]:
    """Every check of the module docstring, one finding each."""
    jsonschema = require("jsonschema", "check", purpose=f"checking {profile.where}")
    validate = require("kubernetes_validate", "check", purpose=f"checking {profile.where}")
    controller = require("dask_kubernetes.operator.controller.controller", "kubernetes",
                         purpose=f"checking {profile.where}")
    findings = []
    custom = list(manifests)
    cluster = next(m for m in manifests if m["kind"] == "DaskCluster")
    name = cluster["metadata"]["name"]
    namespace = profile.namespace or "default"
    worker = cluster["spec"]["worker"]
    meta = worker.get("metadata", {})
    group = controller.build_default_worker_group_spec(name, worker, dict(meta.get("annotations", {})),
                                                       dict(meta.get("labels", {})))
    custom.append(group)
    for manifest in custom:
        validator = jsonschema.Draft7Validator(crd_schema(manifest["kind"]))
        errors = [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(manifest)]
        findings.append(Finding(f"{manifest['kind']} {manifest['metadata']['name']}",
                                "Dask Operator CRD schema (jsonschema)", not errors, "; ".join(errors[:5]) or "valid"))
    scheduler = cluster["spec"]["scheduler"]
    built = [
        controller.build_scheduler_deployment_spec(name, scheduler["spec"], {}, {}),
        controller.build_scheduler_service_spec(name, scheduler["service"], {}, {}),
        controller.build_worker_deployment_spec(group["metadata"]["name"], namespace, name, "0",
                                                group["spec"]["worker"]["spec"],
                                                group["spec"]["worker"].get("metadata", {}).get("annotations", {}),
                                                group["spec"]["worker"].get("metadata", {}).get("labels", {})),
    ]
    version = validate.latest_version()
    for manifest in built:
        try:
            validate.validate(manifest, version, strict=True)
            ok, why = True, "valid"
        except validate.ValidationError as err:
            ok, why = False, f"{'.'.join(map(str, err.path)) or '(top)'}: {err.message}"
        findings.append(Finding(f"{manifest['kind']} {manifest['metadata']['name']} (as the operator builds it)",
                                f"kubernetes-validate {version}, strict", ok, why))
    findings.append(_quantities(built))
    return findings


def _quantities(built: list[dict[str, Any]]) -> Finding:
    bad = []
    for manifest in built:
        pod = manifest["spec"].get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            for bound, amounts in (container.get("resources") or {}).items():
                bad += [f"{container['name']} {bound} {k}: {v!r}" for k, v in amounts.items()
                        if not _QUANTITY.match(str(v))]
    return Finding("resource quantities", "Kubernetes quantity grammar", not bad,
                   "; ".join(bad) or "all valid (e.g. 2, 500m, 4Gi)")

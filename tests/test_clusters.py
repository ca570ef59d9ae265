"""Cluster profiles: loading, validation, user overrides, job scripts and specs, worker checks.

Job scripts are read from dask-jobqueue's Job classes (`highrate cluster show`), which submit
nothing: HTCondor, PBS and LSF are not installed here. No Kubernetes API server runs here either,
so for Kubernetes the generated DaskCluster spec is tested, not a live cluster; the real parsers
and schemas read them in tests/test_facility_artefacts.py.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from compare import assert_same_result

import highrate
from highrate.cli.main import main
from highrate.errors import ConfigError, ExecutorError, HighrateError, MissingExtraError
from highrate.execution import clusters
from highrate.execution.clusters.environment import check_workers
from highrate.execution.executors import make_executor


@pytest.fixture
def user_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a user clusters file (YAML text) and point $HIGHRATE_CLUSTERS at it."""

    def write(text: str) -> Path:
        path = tmp_path / "clusters.yaml"
        path.write_text(textwrap.dedent(text))
        monkeypatch.setenv("HIGHRATE_CLUSTERS", str(path))
        return path

    monkeypatch.delenv("HIGHRATE_CLUSTERS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    return write


def _show(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["cluster", "show", name]) == 0
    return capsys.readouterr().out


# --- loading and validation -------------------------------------------------------------------

def test_shipped_profiles_load_with_their_kinds(user_file):
    profiles = clusters.load_profiles()
    kinds = {p.kind for p in profiles.values()}
    assert {"local", "slurm", "htcondor", "pbs", "lsf", "kubernetes"} <= kinds
    assert profiles["slurm-local"].interface == "lo"
    assert profiles["slurm-local"].job_script_prologue == (f"source {sys.prefix}/bin/activate",)
    assert all(p.source == str(clusters.config.shipped_file()) for p in profiles.values())


def test_unknown_profile_lists_the_known_ones_and_suggests(user_file):
    with pytest.raises(ConfigError, match=r"unknown cluster profile 'slurm-lcal'; known: .*slurm-local.*Did you mean 'slurm-local'"):
        clusters.get_profile("slurm-lcal")


def test_unknown_key_names_key_profile_and_file(user_file):
    path = user_file("""
        clusters:
          mine: {kind: slurm, cors: 4}
    """)
    with pytest.raises(ConfigError, match=rf"cluster profile 'mine' \({path}\): unknown key 'cors'.*Did you mean 'cores'"):
        clusters.get_profile("mine")


def test_key_that_does_not_apply_to_the_kind(user_file):
    user_file("""
        clusters:
          condor: {kind: htcondor, queue: short}
    """)
    with pytest.raises(ConfigError, match=r"key 'queue' does not apply to kind 'htcondor'"):
        clusters.get_profile("condor")


@pytest.mark.parametrize(("settings", "message"), [
    ("{kind: slurm, jobs: 2, adapt: {minimum: 0, maximum: 4}}", "either 'jobs'"),
    ("{kind: slurm, adapt: {minimum: 5, maximum: 2}}", "0 <= minimum <= maximum"),
    ("{kind: slurm, cores: 0}", "'cores' must be a whole number >= 1"),
    ("{kind: slurm, memory: lots}", "'memory' must be an amount"),
    ("{kind: slurm, job_script_prologue: {a: 1}}", "must be a list of strings"),
    ("{kind: slrum}", "unknown cluster kind 'slrum'.*Did you mean 'slurm'"),
    ("{cores: 2}", "'kind' is missing"),
    ("{kind: slurm, extends: nothere}", "extends unknown profile 'nothere'"),
])
def test_invalid_settings_are_named(user_file, settings, message):
    user_file(f"clusters:\n  bad: {settings}\n")
    with pytest.raises(ConfigError, match=message):
        clusters.get_profile("bad")


def test_bad_file_layout(user_file):
    user_file("profiles: {}\n")
    with pytest.raises(ConfigError, match="single top-level key 'clusters'"):
        clusters.load_profiles()


def test_missing_user_file_named_by_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HIGHRATE_CLUSTERS", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"HIGHRATE_CLUSTERS=.*no such file"):
        clusters.load_profiles()


def test_user_profile_overrides_and_extends_shipped_ones(user_file):
    path = user_file("""
        clusters:
          slurm: {extends: slurm, account: cms, queue: short}
          pbs: {kind: pbs, cores: 16, memory: 32GB}
          big-slurm: {extends: slurm, cores: 32, jobs: 3}
    """)
    slurm = clusters.get_profile("slurm")
    assert (slurm.source, slurm.account, slurm.queue) == (str(path), "cms", "short")
    assert slurm.walltime == "02:00:00" and slurm.adapt is not None  # kept from the shipped profile
    pbs = clusters.get_profile("pbs")
    assert (pbs.cores, pbs.walltime) == (16, None)  # replaced, not merged
    big = clusters.get_profile("big-slurm")
    assert (big.cores, big.jobs, big.adapt, big.account) == (32, 3, None, "cms")
    assert {"slurm", "pbs", "big-slurm", "lsf"} <= set(clusters.load_profiles())


def test_user_file_in_the_config_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("HIGHRATE_CLUSTERS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "highrate").mkdir()
    (tmp_path / "highrate" / "clusters.yaml").write_text("clusters:\n  site: {kind: lsf, queue: long}\n")
    assert clusters.get_profile("site").queue == "long"


def test_cluster_list_shows_kind_and_file(user_file, capsys):
    path = user_file("clusters:\n  site: {kind: pbs, description: our PBS}\n")
    assert main(["cluster", "list"]) == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert lines["site"][1:4] == ["pbs", str(path), "our"]
    assert lines["slurm-local"][1] == "slurm"


def test_missing_dask_jobqueue_gives_the_pip_command(user_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # makes `import dask_jobqueue` fail
    with pytest.raises(MissingExtraError, match=r"pip install 'highrate\[batch\]'") as err:
        clusters.describe(clusters.get_profile("slurm"))
    assert isinstance(err.value, ImportError) and isinstance(err.value, HighrateError)


def test_missing_dask_kubernetes_gives_the_pip_command(user_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_kubernetes.operator", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'highrate\[kubernetes\]'"):
        clusters.describe(clusters.get_profile("kubernetes"))


# --- what would be submitted --------------------------------------------------------------------

SITE = """
    clusters:
      s: {kind: slurm, cores: 4, memory: 8GB, walltime: "01:30:00", queue: short, account: cms,
          job_script_prologue: ["source /opt/venv/bin/activate"], env: {X509_USER_PROXY: /tmp/x509}, jobs: 3}
      c: {kind: htcondor, cores: 2, memory: 3GB, disk: 5GB, walltime: "00:20:00",
          job_script_prologue: ["source /opt/venv/bin/activate"], job_extra_directives: ['+JobFlavour = "espresso"']}
      p: {kind: pbs, cores: 8, memory: 16GB, walltime: "04:00:00", queue: long, account: cms,
          job_script_prologue: ["module load python"]}
      l: {kind: lsf, cores: 2, memory: 4GB, walltime: "01:30:30", queue: 1nh, account: cms,
          job_script_prologue: ["source /opt/venv/bin/activate"]}
"""


def test_show_slurm_job_script(user_file, capsys):
    user_file(SITE)
    script = _show("s", capsys)
    for line in ["#SBATCH -J highrate-s", "#SBATCH -p short", "#SBATCH -A cms", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem=8G", "#SBATCH -t 01:30:00", "export X509_USER_PROXY=/tmp/x509",
                 "source /opt/venv/bin/activate"]:
        assert line in script.splitlines()
    assert "--nthreads 4" in script and "SCHEDULER_HOST" in script
    assert script.index("export X509") < script.index("source /opt") < script.index("dask_worker")


def test_show_htcondor_submit_file(user_file, capsys):
    user_file(SITE)
    script = _show("c", capsys)
    assert "RequestMemory = floor(MY.DaskWorkerMemory / 1048576)" in script
    assert "MY.DaskWorkerMemory = 3000000000" in script and "MY.DaskWorkerCores = 2" in script
    assert "MY.DaskWorkerDisk = 5000000000" in script
    assert "+MaxRuntime = 1200" in script and '+JobFlavour = "espresso"' in script
    assert "source /opt/venv/bin/activate;" in script


def test_show_pbs_job_script(user_file, capsys):
    user_file(SITE)
    script = _show("p", capsys).splitlines()
    for line in ["#PBS -q long", "#PBS -A cms", "#PBS -l select=1:ncpus=8:mem=15GB",
                 "#PBS -l walltime=04:00:00", "module load python"]:
        assert line in script


def test_show_lsf_job_script(user_file, capsys):
    user_file(SITE)
    script = _show("l", capsys).splitlines()
    # LSF's -W takes hours:minutes, so 01:30:30 is rounded up to 01:31
    for line in ["#BSUB -q 1nh", '#BSUB -P "cms"', "#BSUB -n 2", "#BSUB -M 4000000", "#BSUB -W 01:31",
                 "source /opt/venv/bin/activate"]:
        assert line in script


def test_show_kubernetes_spec(user_file, capsys):
    # No Kubernetes API server runs here: the spec the operator would get is tested, not a cluster.
    user_file("""
        clusters:
          k8s: {kind: kubernetes, image: "registry.example/highrate:0.1.0", cores: 2, memory: 4GiB,
                env: {HIGHRATE_CACHE: /scratch}, namespace: analysis, jobs: 3}
    """)
    spec = yaml.safe_load(_show("k8s", capsys))
    assert spec["kind"] == "DaskCluster" and spec["metadata"]["namespace"] == "analysis"
    worker = spec["spec"]["worker"]
    assert worker["replicas"] == 3
    (container,) = worker["spec"]["containers"]
    assert container["image"] == "registry.example/highrate:0.1.0"
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4096Mi"}
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "4096Mi"}
    assert {"name": "HIGHRATE_CACHE", "value": "/scratch"} in container["env"]
    assert container["args"][:6] == ["dask", "worker", "--nworkers", "1", "--nthreads", "2"]


def test_show_local_and_scheduler(user_file, capsys):
    user_file("clusters:\n  here: {kind: local, jobs: 3, cores: 2}\n  there: {kind: scheduler, address: 'tcp://10.0.0.1:8786'}\n")
    assert yaml.safe_load(_show("here", capsys))["LocalCluster"]["threads_per_worker"] == 2
    assert "tcp://10.0.0.1:8786" in _show("there", capsys)


def test_show_unknown_profile_exits_with_error(user_file, capsys):
    assert main(["cluster", "show", "slurmm"]) == 2
    assert "Did you mean 'slurm'" in capsys.readouterr().err


# --- the executor on a real LocalCluster -------------------------------------------------------

LOCAL = "clusters:\n  two: {kind: local, jobs: 2, cores: 1, memory: 1GB, start_timeout: 60}\n"


def test_cluster_executor_gives_the_sequential_histograms(user_file, sample, zmumu_path):
    user_file(LOCAL)
    analysis = highrate.load_analysis(zmumu_path)
    datasets = highrate.load_datasets(sample)
    expected = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=7000)).result
    executor = make_executor("sequential", cluster="two")
    try:
        assert executor.name == "cluster:two"
        assert executor.dashboard_link.startswith("http://127.0.0.1:")
        outcome = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=7000), executor=executor)
    finally:
        executor.close()
    assert outcome.executor == "cluster:two"
    assert_same_result(outcome.result, expected)


def test_adaptive_cluster_from_zero_workers_starts_and_runs(user_file):
    # minimum 0: no worker exists until there is work, so the executor's start-up must create some
    user_file("clusters:\n  elastic: {kind: local, adapt: {minimum: 0, maximum: 2}, start_timeout: 60}\n")
    executor = make_executor("sequential", cluster="elastic")
    try:
        assert sorted(executor.map_unordered(abs, [-1, -2, 3])) == [1, 2, 3]
    finally:
        executor.close()


def test_worker_version_mismatch_is_named(user_file, monkeypatch):
    user_file(LOCAL)
    # the workers are fresh processes and import the real highrate; only the driver's expectation changes
    monkeypatch.setattr(highrate._version, "__version__", "9.9.9-driver")
    with pytest.raises(ExecutorError, match=r"worker '\d' at tcp://127\.0\.0\.1:\d+ .*runs highrate 0\.1\.0, "
                                            r"the driver 9\.9\.9-driver\..*job_script_prologue"):
        make_executor("sequential", cluster="two")


def test_worker_that_cannot_import_highrate_is_named():
    class Client:  # answers as distributed.Client.run(..., on_error="return") does for a failed import
        def run(self, function, on_error):
            return {"tcp://10.1.2.3:4000": ModuleNotFoundError("No module named 'highrate'")}

        def scheduler_info(self, n_workers):
            return {"workers": {"tcp://10.1.2.3:4000": {"name": "SLURMCluster-3", "host": "node17"}}}

    with pytest.raises(ExecutorError, match=r"worker 'SLURMCluster-3' at tcp://10\.1\.2\.3:4000 on host node17 "
                                            r"cannot import highrate \(No module named 'highrate'\)\. fix it"):
        check_workers(Client(), expected="0.1.0", hint="fix it")


def test_cluster_executor_needs_a_profile_and_no_scheduler(user_file):
    with pytest.raises(ConfigError, match="--cluster NAME"):
        make_executor("cluster")
    with pytest.raises(ConfigError, match="either --cluster or --scheduler"):
        make_executor("dask", cluster="local", scheduler="tcp://127.0.0.1:1")

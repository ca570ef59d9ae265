"""broker:// through a real firewall: workers in a network namespace that drops new inbound
connections, as at a facility whose worker nodes accept no connections.

Two namespaces, linked only to each other by a veth pair (documentation addresses, no route to
the host): ``outside`` holds the broker, the scheduler and the driver; ``inside`` holds two Dask
workers (with nannies) behind nftables (input policy drop; loopback and established accepted).
With ``tcp://`` the workers register and run tasks, but nothing can be fetched from them: the
run times out. With ``broker://`` (TLS and a token on every hop) a full highrate run succeeds with
histograms identical to a sequential run, as do a task needing another worker's data and
``client.run``. Killing the broker mid-run fails the run with a clear error; once the broker is
back the scheduler registers again, new workers join, and resuming from the checkpoints gives the
same histograms: no chunk lost or counted twice.

Needs root, ``ip`` (iproute2) and ``nft`` (nftables): ``bash .ci/install-netns.sh``. It skips
without them, and fails instead under ``CI=true`` as root.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from compare import assert_same_result
from test_broker import TOKEN, write_tls_files

import highrate
from highrate.testing import generate_dataset_set

OUT_IP, IN_IP = "198.51.100.1", "198.51.100.2"
BROKER_PORT, TCP_SCHEDULER_PORT = 8700, 8786
BROKER = f"{OUT_IP}:{BROKER_PORT}"
SCHEDULER = f"broker://scheduler@{BROKER}"


def _why_not() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root to create network namespaces and nftables rules (CI runs it as root)"
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        return f"needs {' and '.join(missing)}: bash .ci/install-netns.sh (Debian: iproute2, nftables)"
    return None


_REASON = _why_not()
if _REASON and os.environ.get("CI") == "true" and os.geteuid() == 0:
    pytest.fail(f"CI=true as root, but {_REASON}", pytrace=False)
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Net:
    """Two linked namespaces, the inside one firewalled; processes started in them, killed at the end."""

    def __init__(self, folder: Path) -> None:
        tag = f"{os.getpid() % 100000}"
        self.outside, self.inside = f"hrb-out-{tag}", f"hrb-in-{tag}"
        self.folder = folder
        self.procs: list[tuple[subprocess.Popen, Path]] = []
        self.env = {
            **os.environ,
            "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s",
            "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": "30s",
            "DASK_DISTRIBUTED__WORKER__MEMORY__TARGET": "false",  # small hosts: no spilling decisions
            "PYTHONUNBUFFERED": "1",
        }

    def create(self) -> None:
        for ns in (self.outside, self.inside):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)  # left by a killed run
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        a, b = f"hrbo{os.getpid() % 100000}", f"hrbi{os.getpid() % 100000}"
        _ip("link", "add", a, "netns", self.outside, "type", "veth", "peer", "name", b, "netns", self.inside)
        for ns, dev, ip in ((self.outside, a, OUT_IP), (self.inside, b, IN_IP)):
            _ip("-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        rules = (
            "table inet hrfw {\n"
            "  chain input { type filter hook input priority 0; policy drop;\n"
            "    iif lo accept\n    ct state established,related accept\n  }\n}\n"
        )
        subprocess.run(["ip", "netns", "exec", self.inside, "nft", "-f", "-"], input=rules.encode(), check=True,
                       capture_output=True, timeout=10)

    def start(self, ns: str, name: str, args: list[str], **env: str) -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *args], env={**self.env, **env}, stdout=log.open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((proc, log))
        return proc

    def python(self, ns: str, name: str, code: str, *args: str, timeout: float, **env: str) -> subprocess.CompletedProcess:
        """Run ``code`` to its end in ``ns``; its output is kept in NAME.log."""
        proc = self.start(ns, name, [sys.executable, "-c", code, *args], **env)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(proc)
            raise AssertionError(f"{name} ran past {timeout} s:\n{self.log(name)}") from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, self.log(name))

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def destroy(self) -> None:
        for proc, _ in self.procs:
            stop(proc)
        for ns in (self.outside, self.inside):  # what is left in a namespace goes before it does
            for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                                      timeout=10).stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """End a process started in its own session, and everything it started."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    net = Net(tmp_path_factory.mktemp("netns"))
    try:
        net.create()
    except subprocess.CalledProcessError as err:
        net.destroy()
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"cannot create network namespaces here: {err.stderr.decode(errors='replace').strip()}")
    try:
        yield net
    finally:
        net.destroy()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset_set(tmp_path_factory.mktemp("nanoaod"), events=20_000, files=2, seed=1,
                                basket_events=1000)


@pytest.fixture(scope="module")
def sequential(sample: Path, zmumu_path: Path):
    """The sequential run's result at a chunk size (the counts record the chunks)."""
    results: dict[int, highrate.Result] = {}

    def result(chunk_size: int) -> highrate.Result:
        if chunk_size not in results:
            options = highrate.RunOptions(chunk_size=chunk_size)
            results[chunk_size] = highrate.run(highrate.load_analysis(zmumu_path), highrate.load_datasets(sample),
                                               options=options).result
        return results[chunk_size]

    return result


DRIVER = """
import json, os, pickle, sys
import distributed, highrate
args = json.loads(sys.argv[1])
try:
    if args.get("probe"):
        with distributed.Client(args["scheduler"], timeout="20s") as client:
            client.wait_for_workers(2, timeout=60)
            a, b = sorted(client.scheduler_info()["workers"])
            x = client.submit(lambda: 40, workers=[a], pure=False)
            y = client.submit(lambda v: v + 1, x, workers=[b], pure=False)  # b fetches x from a
            z = client.submit(lambda v: v + 1, y, workers=[a], pure=False)  # and a fetches y from b
            print("transfer", z.result(timeout=30), flush=True)
            print("run", len(set(client.run(os.getpid).values())), flush=True)
    options = highrate.RunOptions(scheduler=args["scheduler"], chunk_size=args["chunk_size"],
                                  checkpoint_dir=args.get("checkpoints"), resume=args.get("resume", False))
    outcome = highrate.run(highrate.load_analysis(args["analysis"]), highrate.load_datasets(args["datasets"]),
                           options=options)
    with open(args["output"], "wb") as f:
        pickle.dump({"result": outcome.result, "counts": outcome.chunk_counts, "chunks": outcome.chunks}, f)
    print("done", flush=True)
except Exception as err:
    print(f"ERROR {type(err).__module__}.{type(err).__name__}: {err}", flush=True)
    sys.exit(3)
"""


PROBE = """
import os, sys, time, distributed
with distributed.Client(sys.argv[1], timeout="20s") as client:
    client.wait_for_workers(2, timeout=60)
    workers = sorted(client.scheduler_info()["workers"])
    print("workers", len(workers), flush=True)
    start = time.monotonic()
    try:
        x = client.submit(lambda: 41, workers=[workers[0]], pure=False)
        y = client.submit(lambda a: (a + 1, os.getpid()), x, workers=[workers[1]], pure=False)
        print("transfer", y.result(timeout=float(sys.argv[2]))[0], flush=True)
    except Exception as err:
        print("transfer failed", type(err).__name__, round(time.monotonic() - start, 1), flush=True)
    start = time.monotonic()
    try:
        print("run", len(set(client.run(os.getpid).values())), flush=True)
    except Exception as err:
        print("run failed", type(err).__name__, round(time.monotonic() - start, 1), flush=True)
"""


def _dask(kind: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"distributed.cli.dask_{kind}", *args, "--no-dashboard"]


def test_plain_tcp_times_out_behind_the_firewall(net: Net, sample, zmumu_path, tmp_path):
    """The facility's problem: workers register and run tasks, but nothing can be fetched from them."""
    procs = [net.start(net.outside, "tcp-scheduler", _dask("scheduler", "--host", OUT_IP, "--port",
                                                          str(TCP_SCHEDULER_PORT)))]
    address = f"tcp://{OUT_IP}:{TCP_SCHEDULER_PORT}"
    for i in range(2):
        procs.append(net.start(net.inside, f"tcp-worker-{i}", _dask("worker", address, "--nthreads", "1",
                                                                   "--host", IN_IP)))
    try:
        done = net.python(net.outside, "tcp-probe", PROBE, address, "8", timeout=120)
        out = done.stdout
        assert "workers 2" in out, out  # they registered: their connections out pass the firewall
        assert "transfer failed TimeoutError" in out, out  # the result never comes back
        assert "run failed OSError" in out, out  # client.run: "Timed out trying to connect"
        args = {"scheduler": address, "chunk_size": 4000, **_inputs(sample, zmumu_path, tmp_path / "out.pkl")}
        start = time.monotonic()
        run = net.python(net.outside, "tcp-run", DRIVER, json.dumps(args), timeout=120)
        # the run fails when it first asks the workers something (their highrate version)
        assert run.returncode == 3 and "Timed out trying to connect to tcp://198.51.100.2" in run.stdout, run.stdout
        assert time.monotonic() - start < 60
    finally:
        for proc in procs:
            stop(proc)


class BrokerCluster:
    """`highrate broker` and `dask scheduler` outside, two `dask worker`s (with nannies) inside; TLS and
    a token on every hop. Worker 1 relays everything over its registration (mode relay)."""

    def __init__(self, net: Net) -> None:
        self.net = net
        folder = net.folder
        tls = write_tls_files(folder / "tls")
        (folder / "token").write_text(TOKEN + "\n")
        net.env.update({
            "DASK_HIGHRATE__BROKER__TOKEN_FILE": str(folder / "token"),
            "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(tls / "ca.pem"),
            **{f"DASK_DISTRIBUTED__COMM__TLS__{role}__{part}": str(tls / f"dask.{suffix}")
               for role in ("SCHEDULER", "WORKER", "CLIENT") for part, suffix in (("CERT", "pem"), ("KEY", "key"))},
        })
        self.tls = tls
        self.broker = self.start_broker()
        net.start(net.outside, "scheduler", _dask("scheduler", "--host", SCHEDULER, "--protocol", "broker"))
        self.workers = [self.start_worker(i) for i in range(2)]

    def start_broker(self, name: str = "broker") -> subprocess.Popen:
        return self.net.start(self.net.outside, name, [
            sys.executable, "-m", "highrate", "broker", "--host", OUT_IP, "--port", str(BROKER_PORT),
            "--token-file", str(self.net.folder / "token"), "--tls-cert", str(self.tls / "broker.pem"),
            "--tls-key", str(self.tls / "broker.key"), "--tls-ca-file", str(self.tls / "ca.pem"), "--heartbeat", "2"])

    def start_worker(self, i: int, generation: int = 0) -> subprocess.Popen:
        return self.net.start(self.net.inside, f"worker-{i}-{generation}", _dask("worker", SCHEDULER, "--nthreads", "1"),
                              DASK_HIGHRATE__BROKER__ADDRESS=BROKER,
                              DASK_HIGHRATE__BROKER__MODE="relay" if i == 1 else "auto")

    def broker_stats(self, name: str = "broker") -> dict:
        """The broker's counters: it logs them on SIGUSR1."""
        before = self.net.log(name).count("INFO highrate.execution.comm.serve: broker: ")
        os.kill(self.broker.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = [line for line in self.net.log(name).splitlines() if "comm.serve: broker: " in line]
            if len(lines) > before:
                return json.loads(lines[-1].split("broker: ", 1)[1])
            time.sleep(0.05)
        raise AssertionError(f"the broker logged no counters:\n{self.net.log(name)}")

    def drive(self, name: str, timeout: float, **args) -> subprocess.CompletedProcess:
        return self.net.python(self.net.outside, name, DRIVER, json.dumps({"scheduler": SCHEDULER, **args}),
                               timeout=timeout)


@pytest.fixture(scope="module")
def cluster(net: Net) -> BrokerCluster:
    return BrokerCluster(net)


def _inputs(sample: Path, zmumu_path: Path, output: Path, **extra) -> dict:
    return {"analysis": str(zmumu_path), "datasets": str(sample), "output": str(output), **extra}


def test_a_highrate_run_through_the_broker_matches_a_local_run(cluster: BrokerCluster, sample, zmumu_path,
                                                                sequential, tmp_path):
    done = cluster.drive("run", 240, probe=True, chunk_size=4000, **_inputs(sample, zmumu_path, tmp_path / "out.pkl"))
    assert done.returncode == 0, done.stdout
    assert "transfer 42" in done.stdout and "run 2" in done.stdout, done.stdout
    with (tmp_path / "out.pkl").open("rb") as f:
        outcome = pickle.load(f)
    assert outcome["counts"]["computed"] == outcome["chunks"] > 4
    assert_same_result(outcome["result"], sequential(4000))
    stats = cluster.broker_stats()
    assert stats["spliced"] > 0 and stats["relayed"] > 0, stats  # worker 0 reverses, worker 1 relays
    assert stats["registrations"] == 5  # the scheduler, two workers and their nannies
    logs = "".join(cluster.net.log(n) for n in ("broker", "scheduler", "worker-0-0", "worker-1-0", "run"))
    assert "registered scheduler in cluster default" in logs
    assert TOKEN not in logs


def test_a_wrong_token_is_refused_through_the_firewall(cluster: BrokerCluster, tmp_path):
    (tmp_path / "wrong").write_text("not-the-token-" + "x" * 20)
    code = "import distributed, sys\ndistributed.Client(sys.argv[1], timeout='10s')"
    done = cluster.net.python(cluster.net.outside, "intruder", code, SCHEDULER, timeout=60,
                              DASK_HIGHRATE__BROKER__TOKEN_FILE=str(tmp_path / "wrong"))
    assert done.returncode != 0
    assert "BrokerRefusedError" in done.stdout and "wrong token for cluster 'default'" in done.stdout, done.stdout
    assert "wrong token for cluster 'default'" in cluster.net.log("broker")
    assert "not-the-token" not in cluster.net.log("broker")


def test_killing_the_broker_mid_run_loses_and_doubles_nothing(cluster: BrokerCluster, sample, zmumu_path,
                                                               sequential, tmp_path):
    """The run fails at once with the lost connection named; the scheduler registers again by itself
    when the broker is back; workers that the batch system starts again join; the resumed run takes
    each finished chunk from its checkpoint and computes the others once."""
    net = cluster.net
    checkpoints = tmp_path / "checkpoints"
    args = {"scheduler": SCHEDULER, "chunk_size": 500, "checkpoints": str(checkpoints),
            **_inputs(sample, zmumu_path, tmp_path / "first.pkl")}
    run = net.start(net.outside, "killed-run", [sys.executable, "-c", DRIVER, json.dumps(args)])
    deadline = time.monotonic() + 120
    while len(list(checkpoints.glob("*.pkl"))) < 3:
        assert run.poll() is None, net.log("killed-run")
        assert time.monotonic() < deadline, "no chunk finished"
        time.sleep(0.02)
    stop(cluster.broker, signal.SIGKILL)
    killed = time.monotonic()
    run.wait(timeout=60)
    failed_after = time.monotonic() - killed
    out = net.log("killed-run")
    assert run.returncode == 3, out
    assert re.search(r"ERROR .*(ExecutorError|CommClosedError|scheduler-connection-lost)", out), out
    assert failed_after < 30  # bounded by the connect timeout, not a hang
    assert not (tmp_path / "first.pkl").exists()

    for worker in cluster.workers:  # the batch system ends the jobs whose workers lost the scheduler...
        stop(worker)
    cluster.broker = cluster.start_broker("broker-2")
    deadline = time.monotonic() + 30
    while "registered scheduler in cluster default" not in net.log("broker-2"):
        assert time.monotonic() < deadline, f"the scheduler did not register again:\n{net.log('broker-2')}"
        time.sleep(0.1)
    cluster.workers = [cluster.start_worker(i, generation=1) for i in range(2)]  # ... and starts new ones

    done_before = len(list(checkpoints.glob("*.pkl")))
    args.update(resume=True, probe=True, output=str(tmp_path / "resumed.pkl"))
    done = cluster.drive("resumed-run", 240, **{k: v for k, v in args.items() if k != "scheduler"})
    assert done.returncode == 0, done.stdout
    assert "transfer 42" in done.stdout and "run 2" in done.stdout, done.stdout
    with (tmp_path / "resumed.pkl").open("rb") as f:
        outcome = pickle.load(f)
    assert 3 <= outcome["counts"]["resumed"] == done_before < outcome["chunks"]
    assert outcome["counts"]["computed"] == outcome["chunks"] - done_before
    assert_same_result(outcome["result"], sequential(500))

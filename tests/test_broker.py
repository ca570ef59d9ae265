"""The broker and the broker:// comm backend on loopback: protocol, token and TLS checks, splicing
and relaying real Dask comms, a slow peer beside fast ones, re-registration after a broker
restart, and a full highrate run on real scheduler and worker processes (the firewalled version
is tests/test_broker_netns.py)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import pickle
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import dask
import pytest
from compare import assert_same_result
from distributed.comm import connect, listen
from distributed.security import Security

import highrate
from highrate.cli.main import main
from highrate.errors import ConfigError, HighrateError
from highrate.execution.comm import protocol as p
from highrate.execution.comm.backend import BrokerConnector
from highrate.execution.comm.broker import Broker
from highrate.execution.comm.errors import (
    BrokerProtocolError,
    BrokerRefusedError,
    BrokerUnavailableError,
)
from highrate.execution.comm.settings import credentials, read_token_file
from highrate.execution.comm.tls import BrokerTLS

# how chunks are computed: each run computes, none takes an earlier run's results from the cache
pytestmark = pytest.mark.usefixtures("computing")

TOKEN = "test-token-" + "k" * 32
WRONG = "wrong-token-" + "w" * 32


def write_tls_files(folder: Path, names: tuple[str, ...] = ("broker", "dask", "stranger")) -> Path:
    """A CA and a certificate with key per name, signed by it ('stranger' by a CA of its own)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key, issuer: str, issuer_key, ca: bool):
        name = lambda n: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, n)])  # noqa: E731
        return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(issuer_key, hashes.SHA256()))

    def write(name: str, cert, key) -> None:
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    folder.mkdir(parents=True, exist_ok=True)
    ca_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    write("ca", certificate("highrate test CA", ca_key, "highrate test CA", ca_key, True), ca_key)
    write("other-ca", certificate("another CA", other_key, "another CA", other_key, True), other_key)
    for n in names:
        key = ec.generate_private_key(ec.SECP256R1())
        issuer, issuer_key = ("another CA", other_key) if n == "stranger" else ("highrate test CA", ca_key)
        write(n, certificate(n, key, issuer, issuer_key, False), key)
    return folder


def security(tls: Path, name: str = "dask", ca: str = "ca") -> Security:
    cert, key = str(tls / f"{name}.pem"), str(tls / f"{name}.key")
    return Security(tls_ca_file=str(tls / f"{ca}.pem"), require_encryption=True,
                    **{f"tls_{role}_{part}": value for role in ("scheduler", "worker", "client")
                       for part, value in (("cert", cert), ("key", key))})


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("cryptography")
    return write_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(autouse=True)
def token():
    with dask.config.set({"highrate.broker.token": TOKEN, "distributed.comm.timeouts.connect": "5s"}):
        yield


@asynccontextmanager
async def running(**kwargs):
    broker = Broker({"default": TOKEN}, **kwargs)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


async def echo(comm) -> None:
    try:
        while True:
            await comm.write(await comm.read())
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# protocol


@pytest.mark.parametrize(("loc", "host", "port", "name"), [
    ("scheduler@10.0.0.1:8786", "10.0.0.1", 8786, "scheduler"),
    ("10.0.0.1:8786", "10.0.0.1", 8786, None),
    ("w-1.a_b@[::1]:99", "::1", 99, "w-1.a_b"),
    ("", "", 0, None),
])
def test_addresses_round_trip(loc, host, port, name):
    address = p.BrokerAddress.parse(loc)
    assert (address.host, address.port, address.name) == (host, port, name)
    if loc:
        assert str(address) == loc


@pytest.mark.parametrize("loc", ["10.0.0.1", "bad name@10.0.0.1:1", "x@10.0.0.1:port"])
def test_bad_addresses_are_refused(loc):
    with pytest.raises(ValueError, match="invalid"):
        p.BrokerAddress.parse(loc)


def test_frames_round_trip_and_are_bounded():
    data = p.control({"op": "ping"}, 7)
    kind, channel, length = p.parse_header(data[:p.HEADER.size])
    assert (kind, channel, length) == (p.CONTROL, 7, len(data) - p.HEADER.size)
    assert p.parse_control(data[p.HEADER.size:]) == {"op": "ping"}
    assert p.parse_credit(p.credit(3, 12345)[p.HEADER.size:]) == 12345
    with pytest.raises(BrokerProtocolError):
        p.parse_header(p.HEADER.pack(p.DATA, 1, p.MAX_DATA + 1))
    with pytest.raises(BrokerProtocolError):
        p.parse_preamble(b"GET / HT")
    assert p.parse_preamble(p.preamble(p.ROLE_LISTEN, tls=True)) == (p.ROLE_LISTEN, True)


def test_the_token_proof_binds_nonce_request_and_token():
    mac = p.sign(TOKEN, "n1", "connect", "default", "scheduler")
    assert mac != p.sign(TOKEN, "n2", "connect", "default", "scheduler")
    assert mac != p.sign(TOKEN, "n1", "connect", "default", "worker")
    assert mac != p.sign(WRONG, "n1", "connect", "default", "scheduler")
    assert p.equal(mac, p.sign(TOKEN, "n1", "connect", "default", "scheduler"))
    assert not p.equal(None, mac)
    assert TOKEN not in mac and TOKEN not in repr(p.Credentials("default", TOKEN))


def test_token_files_and_configuration(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# the facility's clusters\n{TOKEN}\ncms-2 {WRONG}\n")
    assert read_token_file(path) == {"default": TOKEN, "cms-2": WRONG}
    with dask.config.set({"highrate.broker.token-file": str(path), "highrate.broker.cluster": "cms-2"}):
        assert credentials() == p.Credentials("cms-2", WRONG)
    with dask.config.set({"highrate.broker.token": None}), pytest.raises(ConfigError, match="TOKEN_FILE"):
        credentials()
    path.write_text("a b c\n")
    with pytest.raises(ConfigError, match="expected 'TOKEN' or 'CLUSTER TOKEN'"):
        read_token_file(path)
    with dask.config.set({"highrate.broker.token": "short"}), pytest.raises(ConfigError, match="16 characters"):
        credentials()


# ---------------------------------------------------------------------------------------------
# Dask comms through an in-process broker


@pytest.mark.parametrize("mode", ["reverse", "relay"])
def test_dask_comms_are_spliced_or_relayed(mode):
    payload = os.urandom(5_000_000)

    async def go():
        async with running() as broker:
            with dask.config.set({"highrate.broker.mode": mode}):
                listener = await listen(f"broker://echo@127.0.0.1:{broker.port}", echo)
            try:
                assert listener.contact_address == f"broker://echo@127.0.0.1:{broker.port}"
                comm = await connect(listener.contact_address)
                await comm.write({"x": payload, "n": 1})
                back = await comm.read()
                await comm.close()
            finally:
                listener.stop()
            return back, broker.stats()

    back, stats = asyncio.run(go())
    assert back == {"x": payload, "n": 1}
    assert (stats["spliced"], stats["relayed"]) == ((1, 0) if mode == "reverse" else (0, 1))
    assert stats["refused"] == 0


def test_a_wrong_token_is_refused_at_once_and_logged_without_the_secret(caplog):
    caplog.set_level(logging.DEBUG)
    served = []

    async def handler(comm):
        served.append(comm)
        await echo(comm)

    async def go():
        async with running() as broker:
            listener = await listen(f"broker://svc@127.0.0.1:{broker.port}", handler)
            try:
                with dask.config.set({"highrate.broker.token": WRONG}):
                    start = time.monotonic()
                    with pytest.raises(BrokerRefusedError, match=r"wrong token for cluster 'default'.*same token"):
                        await connect(listener.contact_address)
                    refused_in = time.monotonic() - start
                    with pytest.raises(BrokerRefusedError, match="refused register 'intruder'"):
                        await listen(f"broker://intruder@127.0.0.1:{broker.port}", handler)
                with dask.config.set({"highrate.broker.cluster": "other"}), pytest.raises(BrokerRefusedError):
                    await connect(listener.contact_address)  # an unknown cluster gets the same answer
            finally:
                listener.stop()
            return refused_in, broker.stats()

    refused_in, stats = asyncio.run(go())
    assert refused_in < 2.5  # fatal: Dask does not retry it until its 5 s connect timeout
    assert stats["refused"] == 3 and stats["spliced"] == stats["relayed"] == 0
    assert served == []  # nothing reached the listener
    assert "wrong token for cluster 'default'" in caplog.text
    assert TOKEN not in caplog.text and WRONG not in caplog.text


def test_tls_on_every_hop_with_dasks_security(tls):
    sec = security(tls)

    async def go():
        async with running(tls=BrokerTLS.from_files(tls / "broker.pem", tls / "broker.key", tls / "ca.pem")) as broker:
            listener = await listen(f"broker://echo@127.0.0.1:{broker.port}", echo, **sec.get_listen_args("worker"))
            try:
                comm = await connect(listener.contact_address, **sec.get_connection_args("client"))
                await comm.write(b"over TLS")
                answer, cipher = await comm.read(), comm.extra_info["cipher"]
                await comm.close()
                with pytest.raises(BrokerRefusedError, match="requires TLS"):
                    await connect(listener.contact_address)
                with pytest.raises(RuntimeError, match="encryption required"):
                    await connect(listener.contact_address, require_encryption=True)
                with pytest.raises(BrokerRefusedError, match="right after TLS: it does not accept"):
                    await connect(listener.contact_address, **security(tls, "stranger").get_connection_args("client"))
                with pytest.raises(BrokerRefusedError, match=r"TLS with the broker .* failed"):  # we do not trust it
                    await connect(listener.contact_address,
                                  **security(tls, "stranger", "other-ca").get_connection_args("client"))
            finally:
                listener.stop()
            return answer, cipher, broker.stats()

    answer, cipher, stats = asyncio.run(go())
    assert answer == b"over TLS" and cipher[1].startswith("TLSv1.")
    assert stats["spliced"] == 1 and stats["refused"] == 2  # no TLS, a foreign certificate (the CA: the client)


def test_a_broker_without_tls_turns_tls_peers_away(tls):
    async def go():
        async with running() as broker:
            with pytest.raises(BrokerRefusedError, match="does not"):
                await listen(f"broker://x@127.0.0.1:{broker.port}", echo, **security(tls).get_listen_args("worker"))

    asyncio.run(go())


@pytest.mark.parametrize("mode", ["reverse", "relay"])
def test_a_stalled_peer_does_not_hold_up_the_others(mode):
    """A connection whose reader stopped reading, and one stuck in its handshake, beside a fast one."""

    async def handler(comm):
        first = await comm.read()
        if first == "slow":
            await asyncio.sleep(3600)  # never reads again
        await comm.write(first)
        await echo(comm)

    async def go():
        async with running() as broker:
            with dask.config.set({"highrate.broker.mode": mode}):
                listener = await listen(f"broker://svc@127.0.0.1:{broker.port}", handler)
            silent = socket.create_connection(("127.0.0.1", broker.port))
            silent.sendall(b"HRB")  # a third of a preamble, then nothing
            try:
                slow = await connect(listener.contact_address)
                await slow.write("slow")
                blob = os.urandom(4_000_000)
                for _ in range(10):  # 40 MB towards a reader that reads nothing: buffers fill, then stall
                    await slow.write(blob)
                await asyncio.sleep(0.5)
                start = time.monotonic()
                async with asyncio.timeout(20):  # a broker held up by the slow peer would hang here
                    fast = await connect(listener.contact_address)
                    for i in range(20):
                        await fast.write(i)
                        assert await fast.read() == i
                        await fast.write(b"x" * 100_000)
                        assert len(await fast.read()) == 100_000
                elapsed = time.monotonic() - start
                await fast.close()
                slow.abort()
            finally:
                silent.close()
                listener.stop()
            return elapsed

    assert asyncio.run(go()) < 5.0  # ~0.1 s when idle


def test_listeners_register_again_when_the_broker_comes_back():
    async def go():
        first = Broker({"default": TOKEN}, heartbeat=0.5)
        await first.start()
        port = first.port
        listener = await listen(f"broker://svc@127.0.0.1:{port}", echo)
        try:
            await first.stop()
            with pytest.raises(OSError):
                await connect(listener.contact_address, timeout=1)
            async with running(port=port, heartbeat=0.5) as second:
                deadline = time.monotonic() + 10
                while ("default", "svc") not in second.registrations:
                    assert time.monotonic() < deadline, "the listener did not register again"
                    await asyncio.sleep(0.05)
                comm = await connect(listener.contact_address)
                await comm.write("again")
                answer = await comm.read()
                await comm.close()
        finally:
            listener.stop()
        return answer

    assert asyncio.run(go()) == "again"


async def _raw_register(port: int, name: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A registration written from the protocol's description, which then never answers a ping."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(p.preamble(p.ROLE_LISTEN, tls=False))
    assert await reader.readexactly(1) == p.STATUS_OK
    header = p.parse_header(await reader.readexactly(p.HEADER.size))
    challenge = p.parse_control(await reader.readexactly(header[2]))
    request = {"op": "register", "cluster": "default", "name": name, "instance": "i", "nonce": "n"}
    request["mac"] = p.sign(TOKEN, challenge["nonce"], "register", "default", name)
    writer.write(p.control(request))
    header = p.parse_header(await reader.readexactly(p.HEADER.size))
    reply = p.parse_control(await reader.readexactly(header[2]))
    assert reply["op"] == "ok" and p.equal(reply["proof"], p.prove(TOKEN, "n", challenge["nonce"]))
    return reader, writer


def test_a_silent_registration_is_dropped_after_three_heartbeats(caplog):
    async def go():
        async with running(heartbeat=0.2) as broker:
            _, writer = await _raw_register(broker.port, "mute")
            assert ("default", "mute") in broker.registrations
            start = time.monotonic()
            while ("default", "mute") in broker.registrations:
                assert time.monotonic() - start < 5
                await asyncio.sleep(0.05)
            writer.close()
            return time.monotonic() - start

    dropped_after = asyncio.run(go())
    assert 0.4 < dropped_after < 3.0
    assert "dropping mute (cluster default): silent" in caplog.text


def test_a_listener_name_cannot_be_taken_twice():
    async def go():
        async with running() as broker:
            listener = await listen(f"broker://scheduler@127.0.0.1:{broker.port}", echo)
            try:
                with pytest.raises(BrokerRefusedError, match="taken"):
                    await listen(f"broker://scheduler@127.0.0.1:{broker.port}", echo)
                with pytest.raises(BrokerUnavailableError, match="no listener 'nobody' is registered"):
                    await BrokerConnector().connect(f"nobody@127.0.0.1:{broker.port}")
                with pytest.raises(OSError, match="Timed out"):  # Dask retries that: it may register soon
                    await connect(f"broker://nobody@127.0.0.1:{broker.port}", timeout=1)
            finally:
                listener.stop()

    asyncio.run(go())


def test_errors_are_highrate_errors_and_oserrors():
    assert issubclass(BrokerRefusedError, HighrateError) and issubclass(BrokerRefusedError, OSError)
    assert issubclass(BrokerUnavailableError, OSError) and issubclass(BrokerProtocolError, ValueError)


# ---------------------------------------------------------------------------------------------
# real processes: `highrate broker`, `dask scheduler`, `dask worker` (with nannies), on loopback


def start(args: list[str], log: Path, env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stderr=log.open("wb"), start_new_session=True, **kwargs)


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"no output within {timeout} s")
    return proc.stdout.readline().decode()


@pytest.fixture(scope="module")
def loopback_cluster(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("loopback")
    (folder / "token").write_text(TOKEN + "\n")
    env = {**os.environ, "DASK_HIGHRATE__BROKER__TOKEN_FILE": str(folder / "token"),
           "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"}
    procs: list[subprocess.Popen] = []
    try:
        broker = start([sys.executable, "-m", "highrate", "broker", "--host", "127.0.0.1", "--port", "0",
                        "--token-file", str(folder / "token")], folder / "broker.log", env, stdout=subprocess.PIPE)
        procs.append(broker)
        line = read_line(broker, 30)
        assert line.startswith("broker listening on broker://127.0.0.1:"), line
        hostport = line.split("broker://")[1].split()[0]
        address = f"broker://scheduler@{hostport}"
        procs.append(start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", address,
                            "--no-dashboard"], folder / "scheduler.log", env))
        for i in range(2):  # the nanny's worker learns the broker from the environment
            procs.append(start([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                "--no-dashboard"], folder / f"worker-{i}.log",
                               {**env, "DASK_HIGHRATE__BROKER__ADDRESS": hostport}))
        yield address, folder
    finally:
        stop_all(procs)


def test_a_highrate_run_through_the_broker_on_loopback(loopback_cluster, sample, zmumu_path):
    import distributed

    address, folder = loopback_cluster
    analysis = highrate.load_analysis(zmumu_path)
    datasets = highrate.load_datasets(sample)
    sequential = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=7000)).result
    with distributed.Client(address, timeout="20s") as client:
        client.wait_for_workers(2, timeout=60)
        workers = sorted(client.scheduler_info()["workers"])
        assert all(w.startswith("broker://") for w in workers)
        x = client.submit(lambda: 41, workers=[workers[0]], pure=False)
        y = client.submit(lambda a: (a + 1, os.getpid()), x, workers=[workers[1]], pure=False)
        assert y.result(timeout=30)[0] == 42  # the second worker fetched x from the first
        pids = client.run(os.getpid)
        assert sorted(pids) == workers and len(set(pids.values())) == 2
    outcome = highrate.run(analysis, datasets, options=highrate.RunOptions(scheduler=address, chunk_size=7000))
    assert outcome.executor == "dask"
    assert_same_result(outcome.result, sequential)
    assert pickle.loads(pickle.dumps(outcome.result)).counts == sequential.counts
    assert TOKEN not in "".join(f.read_text(errors="replace") for f in folder.glob("*.log"))


def test_the_broker_command_refuses_half_a_tls_setup(tmp_path, capsys):
    (tmp_path / "token").write_text(TOKEN)
    assert main(["broker", "--token-file", str(tmp_path / "token"), "--tls-cert", "cert.pem"]) == 2
    assert "--tls-ca-file" in capsys.readouterr().err


def test_a_listener_that_cannot_open_a_reversed_connection_relays_and_remembers(caplog):
    async def go():
        async with running() as broker:
            with dask.config.set({"highrate.broker.reverse-timeout": "0s"}):  # every reversal times out
                listener = await listen(f"broker://svc@127.0.0.1:{broker.port}", echo)
            try:
                for i in range(3):
                    comm = await connect(listener.contact_address)
                    await comm.write(i)
                    assert await comm.read() == i
                    await comm.close()
            finally:
                listener.stop()
            return broker.stats()

    stats = asyncio.run(go())
    assert (stats["relayed"], stats["spliced"], stats["unanswered"]) == (3, 0, 0)
    assert caplog.text.count("cannot open a reversed connection") == 1  # then it relays at once


def test_a_cluster_can_span_two_brokers():
    """Workers register at the broker of their site; an address names its broker, so the scheduler
    and the other workers reach each listener through the broker it registered at."""
    from distributed import Client, Scheduler, Worker

    async def go():
        async with running() as a, running() as b:
            async with Scheduler(host=f"broker://scheduler@127.0.0.1:{a.port}", dashboard_address="127.0.0.1:0") as s, \
                    Worker(s.address, host=f"127.0.0.1:{a.port}", nthreads=1) as w1, \
                    Worker(s.address, host=f"127.0.0.1:{b.port}", nthreads=1) as w2, \
                    Client(s.address, asynchronous=True) as client:
                x = client.submit(lambda: 20, workers=[w1.address], pure=False)
                y = client.submit(lambda v: 2 * v + 2, x, workers=[w2.address], pure=False)
                answer = await y
                ran = await client.run(os.getpid)
            return answer, sorted(ran), (w1.address, w2.address), (a.port, b.port), a.stats(), b.stats()

    answer, ran, (w1, w2), (port_a, port_b), a, b = asyncio.run(go())
    assert answer == 42 and ran == sorted([w1, w2])
    assert w1.endswith(f"@127.0.0.1:{port_a}") and w2.endswith(f"@127.0.0.1:{port_b}")
    assert a["registered"] == 2 and b["registered"] == 1  # the scheduler and w1 at a; w2 at b
    assert b["spliced"] > 0  # w2 was reached through b


def test_a_highrate_run_over_dasks_own_tls_without_the_broker(tls, sample, zmumu_path):
    """The same TLS settings serve plain tls:// clusters: highrate's Dask client picks them up."""
    import distributed

    sec = security(tls)
    config = {"distributed.comm.tls.ca-file": str(tls / "ca.pem"), "distributed.comm.require-encryption": True,
              **{f"distributed.comm.tls.{role}.{part}": str(tls / f"dask.{suffix}")
                 for role in ("scheduler", "worker", "client") for part, suffix in (("cert", "pem"), ("key", "key"))}}
    analysis, datasets = highrate.load_analysis(zmumu_path), highrate.load_datasets(sample)
    sequential = highrate.run(analysis, datasets, options=highrate.RunOptions(chunk_size=12000)).result
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tls://",
                                  host="127.0.0.1", security=sec, dashboard_address="127.0.0.1:0") as cluster, \
            dask.config.set(config):
        address = cluster.scheduler_address
        outcome = highrate.run(analysis, datasets, options=highrate.RunOptions(scheduler=address, chunk_size=12000))
    assert address.startswith("tls://")
    assert_same_result(outcome.result, sequential)

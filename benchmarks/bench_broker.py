#!/usr/bin/env python
"""By-hand: the connection broker (`highrate broker`) on loopback, as docs/scaling.md reports it.

1. Fan-in: ``--workers`` lightweight workers (real ``broker://`` listeners, the code a Dask worker
   registers with, spread over ``--procs`` processes) register at once: time until all are
   registered, the broker's memory per registration, and its CPU while it pings them every
   ``--heartbeat`` seconds for ``--idle`` seconds. Then every listener is dialled once (a round trip
   through a spliced connection), all at once: connections per second the broker sets up.
2. Throughput: one Dask comm carrying ``--sizes`` MB messages (and an ack back), direct ``tcp://``
   against ``broker://`` spliced and relayed; small-message round trips per second likewise.
   With ``--tls``: the same over ``tls://`` and a TLS broker.
3. With ``--dask N``: a real scheduler and N ``dask worker``s (with nannies), through the broker and
   over ``tcp://``: no-op tasks per second both ways, the broker's CPU per task, and the
   connections it holds per worker.

The broker is its own process (``python -m highrate broker``), so its CPU and memory are its own.

Run: python benchmarks/bench_broker.py [--workers 200] [--procs 4] [--sizes 1 100] [--tls] [--dask 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOKEN = "bench-" + "t" * 40


def start_broker(folder: Path, name: str, *, heartbeat: float, tls: Path | None) -> tuple[subprocess.Popen, int]:
    (folder / "token").write_text(TOKEN)
    args = [sys.executable, "-m", "highrate", "broker", "--host", "127.0.0.1", "--port", "0",
            "--token-file", str(folder / "token"), "--heartbeat", str(heartbeat)]
    if tls:
        args += ["--tls-cert", str(tls / "broker.pem"), "--tls-key", str(tls / "broker.key"),
                 "--tls-ca-file", str(tls / "ca.pem")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=(folder / f"{name}.log").open("wb"))
    line = proc.stdout.readline().decode()
    return proc, int(line.split("broker://")[1].split()[0].rsplit(":", 1)[1])


def env(folder: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "DASK_HIGHRATE__BROKER__TOKEN": TOKEN, **extra}


# --- 1. fan-in ------------------------------------------------------------------------------

FAN_IN = """
import asyncio, json, sys, time
from distributed.comm import connect, listen
port, n = int(sys.argv[1]), int(sys.argv[2])
async def answer(comm):
    try:
        while True:
            await comm.write(await comm.read())
    except OSError:
        pass
async def main():
    wait = lambda: asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # the loop answers pings
    print("ready", flush=True)
    await wait()  # every process has imported: all start together
    start = time.time()
    listeners = await asyncio.gather(*(listen(f"broker://127.0.0.1:{port}", answer) for _ in range(n)))
    print(json.dumps({"start": start, "registered": time.time()}), flush=True)
    await wait()  # then dial each listener once
    async def once(address):
        comm = await connect(address, timeout=60)
        await comm.write(b"x"); await comm.read()
        return comm  # kept open: the broker's memory per spliced connection
    start = time.time()
    comms = await asyncio.gather(*(once(l.contact_address) for l in listeners))
    print(json.dumps({"start": start, "dialled": time.time()}), flush=True)
    await wait()
    for comm in comms:
        comm.abort()
    for l in listeners:
        l.stop()
asyncio.run(main())
"""


def fan_in(folder: Path, workers: int, procs: int, heartbeat: float, idle: float) -> dict:
    import psutil

    broker, port = start_broker(folder, f"broker-fan-in-{workers}", heartbeat=heartbeat, tls=None)
    try:
        b = psutil.Process(broker.pid)
        time.sleep(1)
        rss0 = b.memory_info().rss
        share = [workers // procs + (i < workers % procs) for i in range(procs)]
        clients = [subprocess.Popen([sys.executable, "-c", FAN_IN, str(port), str(n)], env=env(folder),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE) for n in share]
        for c in clients:
            assert c.stdout.readline() == b"ready\n"
        for c in clients:
            c.stdin.write(b"\n")
            c.stdin.flush()
        marks = [json.loads(c.stdout.readline()) for c in clients]
        registration = max(m["registered"] for m in marks) - min(m["start"] for m in marks)
        time.sleep(1)
        rss1, fds = b.memory_info().rss, b.num_fds()
        cpu0, t0 = sum(b.cpu_times()[:2]), time.perf_counter()
        time.sleep(idle)
        cpu = sum(b.cpu_times()[:2]) - cpu0
        wall = time.perf_counter() - t0
        for c in clients:
            c.stdin.write(b"\n")
            c.stdin.flush()
        dials = [json.loads(c.stdout.readline()) for c in clients]
        dialling = max(m["dialled"] for m in dials) - min(m["start"] for m in dials)
        time.sleep(1)
        rss2, fds2 = b.memory_info().rss, b.num_fds()
        for c in clients:
            c.stdin.write(b"\n")
            c.stdin.flush()
            c.wait(timeout=60)
    finally:
        broker.terminate()
        broker.wait(timeout=10)
    pings = workers * wall / heartbeat
    return {"workers": workers, "registration_s": registration, "broker_fds": fds,
            "rss_per_registration_kB": (rss1 - rss0) / workers / 1e3, "broker_rss_MB": rss1 / 1e6,
            "heartbeat_s": heartbeat, "idle_cpu_percent": 100 * cpu / wall, "cpu_per_ping_us": 1e6 * cpu / pings,
            "dial_all_s": dialling, "dials_per_s": workers / dialling,
            "rss_per_spliced_kB": (rss2 - rss1) / workers / 1e3, "fds_per_spliced": (fds2 - fds) / workers}


# --- 2. throughput ------------------------------------------------------------------------------

SINK = """
import asyncio, sys, dask
from distributed.comm import listen
from distributed.security import Security
port, tls = int(sys.argv[1]), sys.argv[2]
sec = Security(tls_ca_file=f"{tls}/ca.pem", tls_worker_cert=f"{tls}/dask.pem", tls_worker_key=f"{tls}/dask.key") \\
    if tls != "-" else Security()
async def ack(comm):
    try:
        while True:
            msg = await comm.read()
            await comm.write(len(msg) if isinstance(msg, bytes) else msg)
    except OSError:
        pass
async def main():
    args = sec.get_listen_args("worker")
    direct = await listen(("tls" if tls != "-" else "tcp") + "://127.0.0.1:0", ack, **args)
    spliced = await listen(f"broker://sink@127.0.0.1:{port}", ack, **args)
    with dask.config.set({"highrate.broker.mode": "relay"}):
        relayed = await listen(f"broker://sink-relay@127.0.0.1:{port}", ack, **args)
    print(direct.contact_address, spliced.contact_address, relayed.contact_address, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
asyncio.run(main())
"""


async def _transfers(addresses: dict[str, str], sizes: list[int], repeat: int, args: dict) -> dict:
    """Every path measured in turns (a round of each, then the next round), so that the machine's
    moments of other load fall on all of them alike: the ratios to direct are what matter."""
    from distributed.comm import connect

    comms = {name: await connect(address, **args) for name, address in addresses.items()}
    out: dict[str, dict[str, float]] = {name: {} for name in comms}
    for size in sizes:
        payload = os.urandom(size)
        best = dict.fromkeys(comms, float("inf"))
        for comm in comms.values():
            await comm.write(payload)
            await comm.read()  # warm up
        tries = max(1, min(20, int(100e6 / size)))  # small messages: more tries
        for _ in range(repeat):
            for name, comm in comms.items():
                for _ in range(tries):
                    t0 = time.perf_counter()
                    await comm.write(payload)
                    assert await comm.read() == size
                    best[name] = min(best[name], time.perf_counter() - t0)
        for name in comms:
            out[name][f"{size / 1e6:g} MB, MB/s"] = size / best[name] / 1e6
    spent = dict.fromkeys(comms, 0.0)
    for _ in range(10):
        for name, comm in comms.items():
            t0 = time.perf_counter()
            for i in range(200):
                await comm.write({"i": i, "pad": "x" * 1000})
                await comm.read()
            spent[name] += time.perf_counter() - t0
    for name, comm in comms.items():
        out[name]["1 kB round trips/s"] = 2000 / spent[name]
        await comm.close()
    return out


def throughput(folder: Path, sizes_mb: list[float], repeat: int, tls: Path | None) -> dict:
    from distributed.security import Security

    broker, port = start_broker(folder, f"broker-throughput-{'tls' if tls else 'plain'}", heartbeat=10, tls=tls)
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port), str(tls or "-")], env=env(folder),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        direct, spliced, relayed = sink.stdout.readline().decode().split()
        sec = Security(tls_ca_file=str(tls / "ca.pem"), tls_client_cert=str(tls / "dask.pem"),
                       tls_client_key=str(tls / "dask.key")) if tls else Security()
        args = sec.get_connection_args("client")
        sizes = [int(s * 1e6) for s in sizes_mb]
        os.environ["DASK_HIGHRATE__BROKER__TOKEN"] = TOKEN
        import dask

        dask.config.refresh()
        paths = {"direct " + ("tls://" if tls else "tcp://"): direct, "broker, spliced": spliced,
                 "broker, relayed": relayed}
        return asyncio.run(_transfers(paths, sizes, repeat, args))
    finally:
        sink.stdin.write(b"\n")
        sink.stdin.flush()
        sink.wait(timeout=30)
        broker.terminate()
        broker.wait(timeout=10)


# --- 3. a real Dask cluster ---------------------------------------------------------------------


def _cluster(folder: Path, scheme: str, workers: int) -> tuple[str, list[subprocess.Popen], subprocess.Popen | None]:
    """A scheduler and ``workers`` dask workers (with nannies): through a broker, or plain tcp://."""
    broker = None
    if scheme == "broker":
        broker, port = start_broker(folder, "broker-dask", heartbeat=10, tls=None)
        address, host = f"broker://scheduler@127.0.0.1:{port}", ["--host", f"broker://scheduler@127.0.0.1:{port}"]
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        address, host = f"tcp://127.0.0.1:{port}", ["--host", "127.0.0.1", "--port", str(port)]
    e = env(folder, DASK_HIGHRATE__BROKER__ADDRESS=f"127.0.0.1:{port}")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", *host, "--no-dashboard"],
                              env=e, stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                "--no-dashboard", *(["--host", "127.0.0.1"] if scheme == "tcp" else [])],
                               env=e, stderr=subprocess.DEVNULL) for _ in range(workers)]
    return address, procs, broker


def dask_cluster(folder: Path, workers: int, tasks: int) -> dict:
    """Connections per worker at the broker, and no-op tasks per second through it and over tcp://."""
    import distributed
    import psutil

    os.environ["DASK_HIGHRATE__BROKER__TOKEN"] = TOKEN
    import dask

    dask.config.refresh()
    out: dict = {"workers": workers, "tasks": tasks}
    for scheme in ("tcp", "broker"):
        address, procs, broker = _cluster(folder, scheme, workers)
        try:
            with distributed.Client(address, timeout="60s") as client:
                client.wait_for_workers(workers, timeout=120)
                client.gather(client.map(abs, range(200), pure=False))  # warm up
                b = psutil.Process(broker.pid) if broker else None
                cpu0 = sum(b.cpu_times()[:2]) if b else 0.0
                t0 = time.perf_counter()
                client.gather(client.map(abs, range(tasks), pure=False))
                wall = time.perf_counter() - t0
                out[f"{scheme}_tasks_per_s"] = tasks / wall
                if b is not None:
                    out["broker_cpu_us_per_task"] = 1e6 * (sum(b.cpu_times()[:2]) - cpu0) / tasks
                    time.sleep(12)  # a few heartbeats: the connections Dask keeps
                    out["broker_fds_idle"] = b.num_fds()
                    client.run(os.getpid)
                    out["broker_fds_after_run"] = b.num_fds()
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)
            if broker is not None:
                broker.terminate()
                broker.wait(timeout=10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[200], help="fan-in sizes (default: 200)")
    ap.add_argument("--procs", type=int, default=4, help="processes holding the lightweight workers")
    ap.add_argument("--heartbeat", type=float, default=1.0, help="broker ping interval in the fan-in (s)")
    ap.add_argument("--idle", type=float, default=20.0, help="seconds the broker's idle CPU is measured")
    ap.add_argument("--sizes", type=float, nargs="+", default=[1, 100], help="message sizes in MB")
    ap.add_argument("--repeat", type=int, default=5, help="rounds of transfers per size (each path in turn); the fastest is kept")
    ap.add_argument("--tls", action="store_true", help="also the throughput over TLS")
    ap.add_argument("--dask", type=int, default=0, metavar="N", help="also N real dask workers: connections, tasks/s")
    ap.add_argument("--tasks", type=int, default=5000, help="no-op tasks through the real cluster")
    ap.add_argument("--json", default=None, help="write the raw numbers here")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-broker-"))
    results: dict = {"fan_in": [], "throughput": {}}
    for n in args.workers:
        row = fan_in(folder, n, args.procs, args.heartbeat, args.idle)
        results["fan_in"].append(row)
        print(f"fan-in {n} workers: registered in {row['registration_s']:.2f} s; broker {row['broker_rss_MB']:.0f} MB, "
              f"{row['rss_per_registration_kB']:.1f} kB and {row['broker_fds'] / n:.2f} fds per registration; "
              f"idle CPU {row['idle_cpu_percent']:.2f}% at a {row['heartbeat_s']:g} s heartbeat "
              f"({row['cpu_per_ping_us']:.0f} us/ping); dialled all in {row['dial_all_s']:.2f} s "
              f"({row['dials_per_s']:.0f} connections/s), each spliced connection held {row['rss_per_spliced_kB']:.1f} kB "
              f"and {row['fds_per_spliced']:.2f} fds", flush=True)
    for tls in ([False, True] if args.tls else [False]):
        tls_folder = None
        if tls:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from test_broker import write_tls_files

            tls_folder = write_tls_files(folder / "tls")
        rows = throughput(folder, args.sizes, args.repeat, tls_folder)
        results["throughput"]["tls" if tls else "plain"] = rows
        base = next(iter(rows.values()))
        for name, row in rows.items():
            print(f"{name:<18} " + "  ".join(f"{k}: {v:,.0f} ({100 * v / base[k]:.0f}%)" for k, v in row.items()),
                  flush=True)
    if args.dask:
        row = dask_cluster(folder, args.dask, args.tasks)
        results["dask"] = row
        print(f"dask, {row['workers']} workers with nannies: broker holds {row['broker_fds_idle'] / row['workers']:.1f} "
              f"connections per worker idle ({row['broker_fds_after_run'] / row['workers']:.1f} after client.run); "
              f"no-op tasks {row['broker_tasks_per_s']:,.0f}/s through the broker, {row['tcp_tasks_per_s']:,.0f}/s "
              f"over tcp:// ({100 * row['broker_tasks_per_s'] / row['tcp_tasks_per_s']:.0f}%); broker CPU "
              f"{row['broker_cpu_us_per_task']:.0f} us per task", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""A real Rucio server on 127.0.0.1, for tests and benchmarks of ``rucio://SCOPE:NAME`` datasets.

The server is the pip ``rucio`` package, installed into its own virtualenv by
``bash .ci/install-rucio.sh`` (it pins urllib3 1.x, which must not leak into the analysis
environment). It keeps its catalogue in SQLite inside ``workdir`` and is served by gunicorn with
the single Flask WSGI app ``rucio.web.rest.flaskapi.v1.main:application``, which carries both the
authentication endpoints (``/auth/...``) and the REST API (``/dids``, ``/replicas``, ...).

Everything after the schema bootstrap goes through the real REST API with ``rucio-clients`` from
the analysis environment, imported lazily so that ``highrate`` imports fine without it::

    with RucioServer(tmp_path) as server:
        server.add_rse("XRD_LOCAL", [protocol("root", 1094, "/data")])
        server.register_dataset("user.test", "zmumu", [
            FileSpec("zmumu_1.root", bytes=1234, adler32="0a1b2c3d",
                     pfns={"XRD_LOCAL": "root://127.0.0.1:1094//data/zmumu_1.root"}),
        ])
        client = server.client()          # a rucio.client.Client for this server
        os.environ.update(server.environ)  # RUCIO_CONFIG=<client config>, for other code

Two config files are written: the server's (it has a ``[database]`` section, which is what makes
rucio treat a process as server-side) and a client-only one, :attr:`RucioServer.client_config`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from servers.lifecycle import StartStop

if TYPE_CHECKING:
    from rucio.client import Client

__all__ = [
    "PFN_IMPL",
    "WSGI_APP",
    "FileSpec",
    "RucioServer",
    "RucioUnavailable",
    "adler32_of",
    "default_venv",
    "protocol",
]

#: The rucio >= 1.30 WSGI app: auth and REST API in one Flask application.
WSGI_APP = "rucio.web.rest.flaskapi.v1.main:application"

#: The protocol implementation :func:`protocol` uses for every scheme. ``list_replicas`` only builds
#: PFNs on the server (no storage is contacted), and this class builds them with RSEProtocol's own
#: ``lfns2pfns``, so a registered PFN comes back unchanged: ``scheme://host:port`` + prefix + path.
#: ``rucio.rse.protocols.xrootd.Default`` (and ``gfal.Default`` for root) instead join the prefix
#: and a non-deterministic replica's path (which always starts with "/") with a double slash:
#: prefix "/data" gives ``root://host:port/data//f.root``, a *relative* path that XRootD refuses.
PFN_IMPL = "rucio.rse.protocols.webdav.Default"

_INSTALL_HINT = "run `bash .ci/install-rucio.sh`"


class RucioUnavailable(RuntimeError):
    """The Rucio server cannot be started here; the message says why and what to do."""


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset: its LFN, size, adler32 and one explicit PFN per RSE name."""

    name: str
    bytes: int
    adler32: str
    pfns: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.adler32) != 8 or any(c not in "0123456789abcdefABCDEF" for c in self.adler32):
            raise ValueError(f"adler32 must be 8 hex digits, got {self.adler32!r}")
        if self.bytes < 0:
            raise ValueError(f"bytes must be >= 0, got {self.bytes}")


def adler32_of(path: str | os.PathLike[str], *, block_size: int = 1 << 20) -> str:
    """The adler32 checksum of a file, as Rucio stores it: 8 lowercase hex digits."""
    value = 1
    with open(path, "rb") as f:
        while block := f.read(block_size):
            value = zlib.adler32(block, value)
    return f"{value & 0xFFFFFFFF:08x}"


def protocol(
    scheme: str,
    port: int,
    prefix: str,
    *,
    hostname: str = "127.0.0.1",
    impl: str | None = None,
    priority: int = 1,
) -> dict[str, Any]:
    """A protocol description for :meth:`RucioServer.add_rse`: read/write/delete on lan and wan.

    For ``root`` a prefix with one leading slash gets a second one (``/data`` -> ``//data``), so
    that PFNs have XRootD's absolute-path form ``root://127.0.0.1:1094//data/f.root``. PFNs are
    registered with either form and listed with the double slash.
    """
    if scheme == "root" and prefix.startswith("/") and not prefix.startswith("//"):
        prefix = "/" + prefix
    ops = {"read": priority, "write": priority, "delete": priority}
    return {
        "scheme": scheme,
        "hostname": hostname,
        "port": port,
        "prefix": prefix,
        "impl": impl or PFN_IMPL,
        "domains": {
            "lan": dict(ops),
            "wan": {**ops, "third_party_copy_read": priority, "third_party_copy_write": priority},
        },
    }


def default_venv() -> Path:
    """Where the server virtualenv is: ``$HIGHRATE_RUCIO_VENV``, else ``<repo>/.venv-rucio``.

    The repository is found from this file (a source checkout), falling back to the current
    directory when highrate is installed elsewhere.
    """
    if env := os.environ.get("HIGHRATE_RUCIO_VENV"):
        return Path(env)
    candidates = [Path(__file__).resolve().parents[2] / ".venv-rucio", Path.cwd() / ".venv-rucio"]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM gunicorn's master when the process that started it dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


# Run in the server virtualenv: alembic.ini must point at the installed migrate_repo, which is
# only known there; then the three bootstrap steps of rucio/tools/bootstrap.py.
_BOOTSTRAP = """
import pathlib, sys
from importlib.util import find_spec
alembic_ini, db_url = pathlib.Path(sys.argv[1]), sys.argv[2]
repo = pathlib.Path(find_spec("rucio").submodule_search_locations[0]) / "db/sqla/migrate_repo"
alembic_ini.write_text(sys.argv[3].format(url=db_url, script_location=repo))
from rucio.db.sqla.util import build_database, create_base_vo, create_root_account
build_database()
create_base_vo()
create_root_account()
"""

_ALEMBIC_INI = """\
[alembic]
sqlalchemy.url = {url}
script_location = {script_location}

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARN
handlers = console
qualname =

[logger_sqlalchemy]
level = WARN
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = WARN
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""


class RucioServer(StartStop):
    """A Rucio server (gunicorn + SQLite) on 127.0.0.1 at a free port, as a context manager.

    ``workdir`` holds everything: ``server/rucio.cfg``, ``server/root-password``, ``rucio.db``,
    ``client/rucio.cfg``, the client's token file and ``server.log``. The catalogue survives
    :meth:`stop`; a later :meth:`start` serves the same catalogue (on a new port). Use a fresh
    ``workdir`` for a fresh catalogue: it starts as a copy of an empty, bootstrapped catalogue
    (schema, base VO, account root with a random userpass password) that the first start builds
    and keeps in the server virtualenv (``highrate-catalogue-rucio-VERSION/``).

    ``start()`` raises :class:`RucioUnavailable` when the server virtualenv is missing or the
    server does not come up within ``startup_timeout`` seconds (the message has the log's tail).

    gunicorn runs in its own process group, which :meth:`stop` kills. It is also stopped at
    interpreter exit and, on Linux, when the *thread* that started it ends (even by SIGKILL):
    start it from the main thread, or from a thread that outlives its use.
    """

    username = "root"
    account = "root"

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        venv: str | os.PathLike[str] | None = None,
        workers: int = 2,
        startup_timeout: float = 60.0,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.venv = Path(venv) if venv is not None else default_venv()
        self.workers = workers
        self.startup_timeout = startup_timeout
        self.password = ""  # root's userpass password, set by start()
        self.port: int | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._password_file = self.workdir / "server" / "root-password"

    # --- paths -------------------------------------------------------------------------------

    @property
    def server_config(self) -> Path:
        """The server-side rucio.cfg (it has ``[database]``); never give it to a client."""
        return self.workdir / "server" / "rucio.cfg"

    @property
    def client_config(self) -> Path:
        """The client-side rucio.cfg for this server (valid after :meth:`start`)."""
        return self.workdir / "client" / "rucio.cfg"

    @property
    def db_path(self) -> Path:
        return self.workdir / "rucio.db"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: both the REST API and the auth endpoints."""
        if self.port is None:
            raise RuntimeError("the Rucio server has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def environ(self) -> dict[str, str]:
        """Environment for a client process: ``{"RUCIO_CONFIG": <client config>}``."""
        return {"RUCIO_CONFIG": str(self.client_config)}

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Bootstrap the catalogue if needed, start gunicorn and wait until ``/ping`` answers."""
        if self.running:
            return self
        python, gunicorn = self.venv / "bin" / "python", self.venv / "bin" / "gunicorn"
        if not python.exists() or not gunicorn.exists():
            raise RucioUnavailable(
                f"no Rucio server virtualenv at {self.venv} (python/gunicorn missing): "
                f"{_INSTALL_HINT}, or point HIGHRATE_RUCIO_VENV at one"
            )
        t0 = time.monotonic()
        (self.workdir / "server").mkdir(parents=True, exist_ok=True)
        (self.workdir / "client").mkdir(parents=True, exist_ok=True)
        if not self.db_path.exists() or not self._password_file.exists():
            self._create_catalogue(python)
        self.password = self._password_file.read_text().strip()
        self.server_config.write_text(self._server_config_text(self.db_path))
        last_error = ""
        for _ in range(3):  # a free port can be taken between choosing it and gunicorn's bind
            self.port = _free_port()
            self._write_client_config()
            try:
                self._spawn(gunicorn)
                break
            except RucioUnavailable as error:
                last_error = str(error)
                if "Connection in use" not in last_error:  # gunicorn's words for EADDRINUSE
                    raise
        else:
            raise RucioUnavailable(last_error)
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Kill gunicorn and its workers, so that the port refuses connections at once."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        # gunicorn's workers share the process group; make sure none is left serving
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def __repr__(self) -> str:
        where = self.url if self.port is not None else "not started"
        return f"RucioServer({where}, workdir={str(self.workdir)!r})"

    # --- clients and catalogue helpers -------------------------------------------------------

    def client(self, *, timeout: float = 30.0, **kwargs: Any) -> Client:
        """A ``rucio.client.Client`` for this server, as root with userpass.

        Everything is passed explicitly, so it works whatever ``RUCIO_CONFIG`` says (rucio caches
        the first config file it reads for the life of the process). ``timeout`` is the requests
        timeout of every call (rucio's own default is 600 s); connection refused fails at once.
        """
        try:
            from rucio.client import Client
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise RucioUnavailable(
                "rucio-clients is not installed in this environment: pip install 'highrate[remote]'"
            ) from error
        args: dict[str, Any] = {
            "rucio_host": self.url,
            "auth_host": self.url,
            "account": self.account,
            "auth_type": "userpass",
            "creds": {"username": self.username, "password": self.password},
            "timeout": timeout,
        }
        args.update(kwargs)
        return Client(**args)

    def add_rse(
        self,
        name: str,
        protocols: Sequence[Mapping[str, Any]],
        *,
        attributes: Mapping[str, Any] | None = None,
        exist_ok: bool = False,
        client: Client | None = None,
    ) -> None:
        """Create a non-deterministic RSE ``name`` (upper case) with ``protocols``.

        Each protocol is a dict as made by :func:`protocol`: scheme, hostname, port, prefix, impl
        and domains; a missing impl, hostname or domains is filled in as :func:`protocol` does.
        The RSE is readable, writable and deletable; ``attributes`` are added as RSE attributes.
        With ``exist_ok``, an RSE of that name that exists already is left as it is (its protocols
        are not compared); otherwise that raises ``rucio.common.exception.Duplicate``.
        """
        from rucio.common.exception import RSENotFound

        if name != name.upper():
            raise ValueError(f"RSE names must be upper case, got {name!r}")
        c = client or self.client()
        if exist_ok:
            try:
                c.get_rse(name)
                return
            except RSENotFound:
                pass
        c.add_rse(
            name,
            deterministic=False,
            availability_read=True,
            availability_write=True,
            availability_delete=True,
        )
        for key, value in (attributes or {}).items():
            c.add_rse_attribute(name, key, value)
        for spec in protocols:
            filled = protocol(spec["scheme"], spec.get("port", 0), spec.get("prefix", ""))
            c.add_protocol(name, {**filled, **spec, "prefix": filled["prefix"]})

    def register_dataset(
        self,
        scope: str,
        name: str,
        files: Iterable[FileSpec],
        *,
        client: Client | None = None,
    ) -> None:
        """Register dataset ``scope:name`` holding ``files``, with a replica at each explicit PFN.

        The scope is created (owned by root) if needed; every RSE named in a file's ``pfns`` must
        exist already (see :meth:`add_rse`).
        """
        from rucio.common.exception import Duplicate

        c = client or self.client()
        files = list(files)
        with contextlib.suppress(Duplicate):
            c.add_scope(self.account, scope)
        by_rse: dict[str, list[dict[str, Any]]] = {}
        for f in files:
            for rse, pfn in f.pfns.items():
                by_rse.setdefault(rse, []).append(
                    {
                        "scope": scope,
                        "name": f.name,
                        "bytes": f.bytes,
                        "adler32": f.adler32.lower(),
                        "pfn": pfn,
                    }
                )
        for rse, replicas in by_rse.items():
            c.add_replicas(rse=rse, files=replicas)
        c.add_dataset(scope, name)
        dids = [{"scope": scope, "name": f.name} for f in files]
        if dids:
            c.attach_dids(scope, name, dids)

    # --- internals ---------------------------------------------------------------------------

    @staticmethod
    def _server_config_text(
        db_path: Path, *, alembic_ini: Path | None = None, password: str | None = None
    ) -> str:
        """The server's rucio.cfg; ``alembic_ini`` and ``password`` only matter for bootstrap."""
        bootstrap = [
            "[bootstrap]",
            f"userpass_identity = {RucioServer.username}",
            f"userpass_pwd = {password}",
            "userpass_email = root@localhost",
            # empty: create_root_account adds no x509/gss/ssh identities
            "x509_identity =",
            "gss_identity =",
            "ssh_identity =",
            "",
            "[alembic]",
            f"cfg = {alembic_ini}",
            "",
        ]
        return "\n".join(
            [
                "[common]",
                "loglevel = WARNING",
                # no multi_vo line at all: create_root_account reads it with bool(str), so
                # even "multi_vo = False" would make the account super_root
                f"logdir = {db_path.parent}",
                "",
                "[database]",
                f"default = sqlite:///{db_path}",
                "echo = 0",
                "pool_reset_on_return = rollback",
                "",
                *(bootstrap if password else []),
                "[policy]",
                "permission = generic",
                "schema = generic",
                "lfn2pfn_algorithm_default = hash",
                "",
                # rucio caches through memcached when one answers on 127.0.0.1:11211; a closed
                # port keeps this server's cache off and separate from anything else here
                "[cache]",
                "url = 127.0.0.1:1",
                "",
                "[monitor]",
                "enable_metrics = False",
                "",
            ]
        )

    def _write_client_config(self) -> None:
        self.client_config.write_text(
            "\n".join(
                [
                    "[client]",
                    f"rucio_host = {self.url}",
                    f"auth_host = {self.url}",
                    "auth_type = userpass",
                    f"username = {self.username}",
                    f"password = {self.password}",
                    f"account = {self.account}",
                    "request_retries = 0",
                    f"auth_token_file_path = {self.workdir / 'client' / 'auth_token'}",
                    "",
                ]
            )
        )

    def _server_env(self, config: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUCIO_", "PYTHON"))}
        env.pop("VIRTUAL_ENV", None)  # rucio looks for $VIRTUAL_ENV/etc/rucio.cfg
        env["RUCIO_CONFIG"] = str(config or self.server_config)
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _template_dir(self) -> Path:
        """Where a bootstrapped, still empty catalogue is kept for this venv's rucio version."""
        dist = sorted(self.venv.glob("lib/python*/site-packages/rucio-*.dist-info"))
        version = dist[-1].name.removesuffix(".dist-info") if dist else "rucio"
        return self.venv / f"highrate-catalogue-{version}"

    def _create_catalogue(self, python: Path) -> None:
        """Copy the venv's empty catalogue into ``workdir`` (building it once, ~2 s, if needed).

        Building the schema takes most of a fresh start; the copy takes milliseconds. Where the
        venv is read-only the catalogue is built in ``workdir`` every time.
        """
        template = self._template_dir()
        source = template
        if not (template / "rucio.db").is_file() or not (template / "root-password").is_file():
            source = self.workdir / "bootstrap"
            shutil.rmtree(source, ignore_errors=True)
            self._bootstrap(python, source)
            staging = template.with_name(f"{template.name}.{os.getpid()}.tmp")
            try:  # publish it atomically; a concurrent builder may win, which is fine
                shutil.copytree(source, staging, dirs_exist_ok=True)
                os.replace(staging, template)
            except OSError:
                pass
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        tmp_db = self.db_path.with_suffix(".db.tmp")
        shutil.copyfile(source / "rucio.db", tmp_db)
        os.replace(tmp_db, self.db_path)
        shutil.copyfile(source / "root-password", self._password_file)

    def _bootstrap(self, python: Path, into: Path) -> None:
        """Build the schema, the base VO and root (userpass, random password) in ``into``."""
        into.mkdir(parents=True)
        db, config, alembic_ini = into / "rucio.db", into / "rucio.cfg", into / "alembic.ini"
        password = secrets.token_hex(12)
        config.write_text(self._server_config_text(db, alembic_ini=alembic_ini, password=password))
        result = subprocess.run(
            [str(python), "-c", _BOOTSTRAP, str(alembic_ini), f"sqlite:///{db}", _ALEMBIC_INI],
            env=self._server_env(config),
            cwd=into,
            capture_output=True,
            text=True,
            timeout=self.startup_timeout,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
            raise RucioUnavailable(f"building the Rucio schema failed:\n{tail}")
        (into / "root-password").write_text(password + "\n")

    def _spawn(self, gunicorn: Path) -> None:
        cmd = [
            str(gunicorn),
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers),
            "--timeout", "120",
            "--graceful-timeout", "2",
            "--error-logfile", str(self.log_path),
            "--log-level", "warning",
            "--chdir", str(self.workdir),
            WSGI_APP,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                env=self._server_env(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: stop() kills the workers too
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        atexit.register(self.stop)  # a test run that forgets stop() leaves no server behind
        deadline = time.monotonic() + self.startup_timeout
        ping = f"{self.url}/ping"
        while True:
            if self._proc.poll() is not None:
                self._proc = None
                raise RucioUnavailable(
                    f"the Rucio server exited while starting; {self.log_path}:\n"
                    f"{_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(ping, timeout=2) as response:
                    if response.status == 200 and "version" in json.loads(response.read()):
                        return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RucioUnavailable(
                    f"the Rucio server did not answer {ping} within {self.startup_timeout:.0f} s; "
                    f"{self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.1)


def main(argv: Sequence[str] | None = None) -> int:
    """Start a server in a directory and keep it up until interrupted (for manual checks)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    args = parser.parse_args(argv)
    with RucioServer(args.workdir) as server:
        print(f"Rucio at {server.url} (started in {server.startup_seconds:.1f} s)")
        print(f"export RUCIO_CONFIG={server.client_config}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Real storage servers on 127.0.0.1 for tests and benchmarks: XRootD and nginx (HTTPS/WebDAV).

>>> with XRootDServer(data_dir, work_dir) as xrd:  # doctest: +SKIP
...     uproot.open(xrd.url("events.root"))["Events"]
>>> with NginxServer(data_dir, work_dir, token="s3cret") as web:  # doctest: +SKIP
...     trust = ssl.create_default_context(cafile=web.ca_file)
...     uproot.open(web.url("events.root"), ssl=trust, headers=web.headers)["Events"]

Both servers listen on the loopback interface only, write their configuration, logs and state
into ``workdir``, and run as child processes in their own process group: ``stop()`` kills the
group with SIGKILL (a crash, as a failover test wants it), ``__exit__`` calls it, an ``atexit``
hook stops whatever is still running when the interpreter exits, and a watchdog shell in each
group kills it as soon as this process dies without ``atexit`` (SIGKILL). A missing binary or a
server that does not come up raises :class:`ServerUnavailable`, whose message says why (with the
tail of the server's log), so that fixtures can skip on a machine without the servers. On Debian,
``.ci/install-storage.sh`` installs them (``xrootd-server xrootd-client nginx
libnginx-mod-http-dav-ext``).

Reading over ``root://`` with uproot
    ``uproot.open("root://127.0.0.1:PORT//abs/path.root")`` goes through fsspec-xrootd (the
    ``xrootd`` and ``fsspec-xrootd`` pip packages). Use ``127.0.0.1``: fsspec-xrootd rejects
    ``root://[::1]``. The server computes ``adler32`` checksums on request.

Reading over ``https://``/``davs://`` (self-signed certificate)
    uproot's default https handler is fsspec's ``HTTPFileSystem`` over aiohttp (``davs://`` URLs
    must be spelled ``https://`` for it). aiohttp builds its verifying SSL context *once, when
    ``aiohttp.connector`` is imported*, from OpenSSL's default paths, which honour
    ``SSL_CERT_FILE``. So ``SSL_CERT_FILE=<server.ca_file>`` works only if it is in the
    environment before the process imports aiohttp (a fresh process, a dask worker's
    environment); ``monkeypatch.setenv`` in a test comes too late once anything imported aiohttp.
    It replaces the system bundle for that process. In-process, per call: ``uproot.open(url,
    ssl=ssl.create_default_context(cafile=server.ca_file))``: uproot hands options it does not
    know to fsspec, which passes them to every aiohttp request (an ``SSLContext`` does not
    pickle, so build it where the file is opened; fsspec's ``get_client`` option, a picklable
    factory of ``aiohttp.ClientSession``, is the alternative). ``requests`` ignores
    ``SSL_CERT_FILE``: it reads ``REQUESTS_CA_BUNDLE`` at each request, or takes ``verify=``.

Bearer tokens over https
    With ``NginxServer(..., token=T)`` every request without ``Authorization: Bearer T`` gets
    401. uproot passes the header on with ``uproot.open(url, headers={"Authorization": "Bearer
    T"})`` (fsspec sends ``headers`` with every request, the HEAD that sizes the file included);
    ``client_kwargs={"headers": {...}}`` (the aiohttp session's headers) works too. Without it,
    uproot raises aiohttp's ``ClientResponseError`` (status 401). uproot's own
    ``handler=uproot.source.http.HTTPSource`` cannot send headers (user:password in the URL only).

Detecting a stopped or stuck server (failover)
    The XRootD client retries a refused connection ``XRD_CONNECTIONRETRY`` times (default 5), one
    per ``XRD_CONNECTIONWINDOW`` (default 120 s), so by default a stopped server hangs an open for
    minutes; after any connection error it also refuses the same host:port for
    ``XRD_STREAMERRORWINDOW`` (default 1800 s), so a restarted server stays unreachable to that
    process for half an hour. Request timeouts (``XRD_REQUESTTIMEOUT``, default 1800 s, or
    fsspec-xrootd's ``timeout`` option: ``uproot.open(url, timeout=5)``) are checked every
    ``XRD_TIMEOUTRESOLUTION`` (default 15 s). The library reads ``XRD_*`` variables when
    ``XRootD.client`` is imported; afterwards ``XRootD.client.EnvPutInt`` changes
    ``ConnectionRetry``/``ConnectionWindow``/``StreamErrorWindow`` for hosts not contacted yet,
    but not ``TimeoutResolution``. :data:`XROOTD_CLIENT_ENV` holds bounded settings; with them
    (set before the import) a stopped server fails an open in about 2 ms, a restarted one is
    readable at once, and a paused one fails after the ``timeout`` plus up to 1 s. fsspec also
    caches the filesystem and open file handles per URL: after a failure, reopen with
    ``skip_instance_cache=True`` (or ``XRootDFileSystem.clear_instance_cache()``). Over https a
    stopped nginx fails at once (connection refused); a stuck one is bounded by aiohttp's
    timeout, ``uproot.open(url, timeout=aiohttp.ClientTimeout(total=5))`` (default 300 s).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import ipaddress
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Self

from servers.lifecycle import StartStop

__all__ = ["XROOTD_CLIENT_ENV", "NginxServer", "ServerUnavailable", "XRootDServer", "free_port"]

HOST = "127.0.0.1"

#: XRootD client settings that turn a dead server into an error in milliseconds and a stuck one
#: into an error after the request timeout (to the second), instead of minutes. Put them into
#: the environment before ``XRootD.client`` is imported (the test fixtures do).
XROOTD_CLIENT_ENV: dict[str, str] = {
    "XRD_CONNECTIONRETRY": "1",
    "XRD_CONNECTIONWINDOW": "5",
    "XRD_STREAMERRORWINDOW": "0",
    "XRD_REQUESTTIMEOUT": "30",
    "XRD_TIMEOUTRESOLUTION": "1",
}

#: Where Debian's nginx keeps the WebDAV extension module (package libnginx-mod-http-dav-ext).
_DAV_EXT_MODULE = Path("/usr/lib/nginx/modules/ngx_http_dav_ext_module.so")
#: Directories searched for server binaries besides PATH (sbin is not on a user's PATH).
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
#: Tokens are pasted into the nginx configuration, so they are restricted to this alphabet.
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]+")


class ServerUnavailable(RuntimeError):
    """A storage server cannot run here: a binary or module is missing, or it did not start."""


class _Crashed(ServerUnavailable):
    """The server process was killed by a signal while starting."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _which(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))
    if found is None:
        raise ServerUnavailable(f"{name} is not installed (see .ci/install-storage.sh)")
    return found


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _open_to_others(path: Path) -> None:
    """Make ``path`` readable and its ancestors traversable by any user (for xrootd's own user).

    Only the missing ``o+x`` (ancestors) and ``o+r``/``o+rx`` (the tree itself) bits are added,
    so ``/tmp/pytest-of-root/pytest-N`` (mode 0700) becomes 0701 and nothing else changes.
    """
    for parent in reversed(path.parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    for entry in [path, *path.rglob("*")]:
        mode = entry.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        want = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
        if mode & want != want:
            entry.chmod(stat.S_IMODE(mode) | want)


_RUNNING: set[_Server] = set()

#: Kills its process group (the server's) when its stdin, a pipe that only this process (and its
#: forks) holds open, closes: when this process dies, even without ``atexit`` (SIGKILL).
_WATCHDOG = "read -r _; kill -KILL 0"


def _watch(pgid: int) -> subprocess.Popen[bytes] | None:
    """Start a watchdog in process group ``pgid`` (so that :meth:`_Server.stop` ends it too)."""
    try:
        return subprocess.Popen(
            ["/bin/sh", "-c", _WATCHDOG, "highrate-storage-watchdog"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            process_group=pgid,
        )
    except (OSError, subprocess.SubprocessError):  # the server died already; start() reports it
        return None


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()


class _Server(StartStop):
    """A server process in its own process group, with a port on 127.0.0.1 and a log file."""

    name = "server"
    #: Seconds :meth:`start` waits for the port to accept connections.
    start_timeout = 15.0

    def __init__(self, workdir: Path, port: int | None) -> None:
        self.workdir = Path(workdir).resolve()
        self.port = port if port is not None else free_port()
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    # -- to override ----------------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    @property
    def log_file(self) -> Path:
        """The server's own log (what :class:`ServerUnavailable` quotes the tail of)."""
        raise NotImplementedError

    def _ready(self) -> bool:
        return _accepts(self.port)

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Start the server and wait until it accepts connections; a no-op when running.

        A server killed by a signal while starting is started again, up to twice: Debian's
        xrootd 5.5 has died with SIGSEGV during start-up, with an empty log, about once in a
        few hundred starts on a loaded machine.
        """
        for attempt in range(3):
            try:
                return self._start_once()
            except _Crashed:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> Self:
        if self.running:
            return self
        if _accepts(self.port):
            raise ServerUnavailable(f"{self.name}: port {self.port} on {HOST} is already in use")
        command = self._command()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        began = time.monotonic()
        with open(self.workdir / f"{self.name}.console.log", "ab") as console:
            self._process = subprocess.Popen(
                command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        _RUNNING.add(self)
        self._watchdog = _watch(self._process.pid)
        deadline = began + self.start_timeout
        while not self._ready():
            code = self._process.poll()
            if code is not None or time.monotonic() > deadline:
                self.stop()
                why = f"exited with status {code}" if code is not None else "timed out"
                raise (_Crashed if code is not None and code < 0 else ServerUnavailable)(
                    f"{self.name} on {HOST}:{self.port} did not start ({why}): "
                    f"{' '.join(command)}\n--- {self.log_file}\n{_tail(self.log_file)}"
                    f"\n--- console\n{_tail(self.workdir / f'{self.name}.console.log')}"
                )
            time.sleep(0.01)
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Kill the server (SIGKILL to its process group) and wait for it; a no-op when stopped."""
        process, self._process = self._process, None
        _RUNNING.discard(self)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.communicate()  # closes its stdin; it was killed with the group anyway
        deadline = time.monotonic() + 5  # children (nginx workers) die with the group leader
        while _accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.01)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): requests hang instead of failing, as on a stuck server."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGCONT)

    def restart(self) -> Self:
        """Stop and start again on the same port (URLs handed out stay valid)."""
        self.stop()
        return self.start()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {HOST}:{self.port} {state}>"


class XRootDServer(_Server):
    """A standalone ``xrootd`` exporting ``export_dir`` on 127.0.0.1.

    xrootd refuses to run as root, so as root it runs as ``user`` (default ``xrootd``, else
    ``nobody``); ``export_dir`` is then made readable and its parents traversable by other users,
    and ``workdir`` gets a subdirectory that user owns. Files written into ``export_dir`` later
    must be world-readable too (the default umask 022 does that). Connections are allowed from
    ``localhost`` only; ``adler32`` checksums are enabled.
    """

    name = "xrootd"

    def __init__(
        self,
        export_dir: Path,
        workdir: Path,
        *,
        port: int | None = None,
        user: str | None = None,
    ) -> None:
        super().__init__(workdir, port)
        self.export_dir = Path(export_dir).resolve()
        if any(ch.isspace() for ch in str(self.export_dir)):
            raise ValueError(f"xrootd cannot export a path with white space: {self.export_dir}")
        self.user = user
        self._state = self.workdir / "xrootd"

    @property
    def log_file(self) -> Path:
        return self._state / "xrootd.log"

    def url(self, path: Path | str = "") -> str:
        """``root://127.0.0.1:PORT//abs/path`` of ``path`` (absolute or under ``export_dir``)."""
        full = self.export_dir / path
        return f"root://{HOST}:{self.port}/{full.as_posix()}"

    def _command(self) -> list[str]:
        binary = _which("xrootd")
        self.export_dir.mkdir(parents=True, exist_ok=True)
        self._state.mkdir(parents=True, exist_ok=True)
        config = self._state / "xrootd.cfg"
        config.write_text(
            f"all.export {self.export_dir}\n"
            f"all.adminpath {self._state / 'admin'}\n"
            f"all.pidpath {self._state}\n"
            "xrd.allow host localhost\n"
            "xrootd.chksum adler32\n"
        )
        command = [binary, "-c", str(config), "-l", str(self.log_file), "-p", str(self.port)]
        if os.geteuid() == 0:
            user = self.user or _default_user()
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                raise ServerUnavailable(f"xrootd: there is no user {user!r} to run as") from None
            _open_to_others(self.export_dir)
            _open_to_others(self._state)
            for item in [self._state, *self._state.rglob("*")]:
                os.chown(item, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
            command += ["-R", user]
        return command

    def _ready(self) -> bool:
        # xrootd binds its port before its plug-ins are configured: wait for the final log line
        if not _accepts(self.port):
            return False
        try:
            with open(self.log_file, "rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return False
        return re.search(r"^------ xrootd \S+ initialization completed", text, re.M) is not None


def _default_user() -> str:
    for user in ("xrootd", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return user
    raise ServerUnavailable("running as root, and there is no xrootd or nobody user to run as")


class NginxServer(_Server):
    """nginx serving ``root_dir`` over HTTPS with WebDAV (PROPFIND, PUT, ...) on 127.0.0.1.

    The certificate is issued for ``127.0.0.1`` and ``localhost`` by a CA generated in
    ``workdir``; clients trust it through :attr:`ca_file`. Byte ranges (206) are served, as uproot
    needs. With ``token``, every request without ``Authorization: Bearer <token>`` gets 401.
    """

    name = "nginx"

    def __init__(
        self,
        root_dir: Path,
        workdir: Path,
        *,
        token: str | None = None,
        client_certs: bool = False,
        port: int | None = None,
    ) -> None:
        super().__init__(workdir, port)
        self.client_certs = client_certs
        self.root_dir = Path(root_dir).resolve()
        if '"' in str(self.root_dir) or "\\" in str(self.root_dir):
            raise ValueError(f"nginx cannot serve a path with quotes: {self.root_dir}")
        if token is not None and not _TOKEN.fullmatch(token):
            raise ValueError("token must be non-empty and use only [A-Za-z0-9._~+/=-]")
        self.token = token
        self._state = self.workdir / "nginx"
        #: PEM of the CA that signed the server certificate: pass it to clients.
        self.ca_file = self._state / "ca.pem"
        #: A client certificate and its key in one PEM file, as a grid proxy is kept; with
        #: ``client_certs=True`` the server answers 403 to clients that do not present it.
        self.user_proxy = self._state / "x509up_test"

    @property
    def log_file(self) -> Path:
        return self._state / "error.log"

    @property
    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header the server wants (empty without a token)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def url(self, relpath: Path | str = "") -> str:
        """``https://127.0.0.1:PORT/relpath``; ``relpath`` may be absolute (under ``root_dir``)."""
        return f"https://{HOST}:{self.port}/{self._relative(relpath)}"

    def davs_url(self, relpath: Path | str = "") -> str:
        """``davs://127.0.0.1:PORT/relpath``: the WebDAV spelling of :meth:`url`."""
        return f"davs://{HOST}:{self.port}/{self._relative(relpath)}"

    def _relative(self, relpath: Path | str) -> str:
        path = Path(relpath)
        if path.is_absolute():
            path = path.relative_to(self.root_dir)
        text = urllib.parse.quote(path.as_posix())
        return "" if text == "." else text

    def _command(self) -> list[str]:
        binary = _which("nginx")
        load = ""
        if _DAV_EXT_MODULE.exists():
            load = f"load_module {_DAV_EXT_MODULE};\n"
        else:
            built = subprocess.run([binary, "-V"], capture_output=True, text=True).stderr
            if "dav-ext" not in built:
                raise ServerUnavailable(
                    f"nginx has no WebDAV extension module ({_DAV_EXT_MODULE} is missing; "
                    "Debian package libnginx-mod-http-dav-ext)"
                )
        self.root_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("tmp", "logs"):
            (self._state / sub).mkdir(parents=True, exist_ok=True)
        if not self.ca_file.exists():
            _write_certificates(self._state)
        config = self._state / "nginx.conf"
        config.write_text(load + self._config())
        return [binary, "-p", str(self._state), "-c", str(config), "-g", "daemon off;"]

    def _config(self) -> str:
        state, tmp = self._state, self._state / "tmp"
        auth = ""
        if self.token:
            auth = (
                f'        if ($http_authorization != "Bearer {self.token}") {{ return 401; }}\n'
                "        add_header WWW-Authenticate $highrate_www_authenticate always;\n"
            )
        if self.client_certs:
            auth += "        if ($ssl_client_verify != SUCCESS) { return 403; }\n"
        verify = (f"        ssl_client_certificate {self.ca_file};\n        ssl_verify_client optional;\n"
                  if self.client_certs else "")
        return f"""\
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {state / "nginx.pid"};
error_log {self.log_file} notice;
events {{ worker_connections 512; }}
http {{
    access_log {state / "access.log"};
    client_body_temp_path {tmp / "body"};
    proxy_temp_path {tmp / "proxy"};
    fastcgi_temp_path {tmp / "fastcgi"};
    uwsgi_temp_path {tmp / "uwsgi"};
    scgi_temp_path {tmp / "scgi"};
    default_type application/octet-stream;
    sendfile on;
    client_max_body_size 0;
    map $status $highrate_www_authenticate {{ 401 'Bearer realm="highrate"'; default ""; }}
    server {{
        listen {HOST}:{self.port} ssl;
        server_name localhost {HOST};
        ssl_certificate {state / "server.pem"};
        ssl_certificate_key {state / "server.key"};
{verify}        root "{self.root_dir}";
{auth}        location / {{
            dav_methods PUT DELETE MKCOL COPY MOVE;
            dav_ext_methods PROPFIND OPTIONS;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
            autoindex on;
        }}
    }}
}}
"""


def _write_certificates(directory: Path) -> None:
    """Write ``ca.pem`` and a ``server.pem``/``server.key`` it signed for 127.0.0.1/localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "highrate test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())

    def builder(
        subject: x509.Name, public_key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
        )

    usage = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    ca = (
        builder(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, **usage), True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, **usage), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_path = directory / "server.key"
    key_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    (directory / "server.pem").write_bytes(server.public_bytes(pem) + ca.public_bytes(pem))
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    user_key = ec.generate_private_key(ec.SECP256R1())
    user = (
        builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "highrate test user")]),
                user_key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, **usage), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    proxy = directory / "x509up_test"
    proxy.write_bytes(user.public_bytes(pem) + user_key.private_bytes(
        pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    proxy.chmod(0o600)

"""Grid credentials: X.509 proxies and bearer tokens, found the usual ways and shipped to workers.

Discovery follows the WLCG conventions: a token from ``BEARER_TOKEN``, ``BEARER_TOKEN_FILE``,
``$XDG_RUNTIME_DIR/bt_u$UID`` or ``/tmp/bt_u$UID``; a proxy from ``X509_USER_PROXY`` or
``/tmp/x509up_u$UID``. The secrets travel inside :class:`Credentials`, whose ``repr`` shows
only where they came from and when they expire, so they never reach logs or reports. On a
worker, :func:`activate` writes them to private files (mode 0600) and points
``BEARER_TOKEN_FILE`` / ``X509_USER_PROXY`` at them, which the XRootD client and the HTTPS
source read.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from highrate.errors import CredentialError

TOKEN_FIX = "get a fresh token (e.g. `htgettoken -a <vault> -i <issuer>` or `oidc-token <account> > $BEARER_TOKEN_FILE`)"
PROXY_FIX = "renew it with `voms-proxy-init --voms cms --valid 192:00`"


@dataclass(frozen=True)
class Credentials:
    """A bearer token and/or an X.509 proxy; ``repr`` never shows them."""

    token: str | None = field(default=None, repr=False)
    token_origin: str | None = None
    token_expires: float | None = None  # unix time, when the token says
    proxy: bytes | None = field(default=None, repr=False)
    proxy_origin: str | None = None
    proxy_expires: float | None = None

    @property
    def fingerprint(self) -> str:
        """A short hash that tells two credential sets apart without revealing them."""
        blob = (self.token or "").encode() + b"\0" + (self.proxy or b"")
        return hashlib.sha256(blob).hexdigest()[:12]

    def describe(self) -> str:
        """Where the credentials came from and when they expire; safe to print."""
        parts = []
        if self.token is not None:
            parts.append(f"bearer token from {self.token_origin}{_until(self.token_expires)}")
        if self.proxy is not None:
            parts.append(f"X.509 proxy from {self.proxy_origin}{_until(self.proxy_expires)}")
        return "; ".join(parts) or "no grid credentials"

    def check(self, now: float | None = None) -> None:
        """Raise :class:`CredentialError` for an expired token or proxy, saying how to renew it."""
        now = time.time() if now is None else now
        if self.token is not None and self.token_expires is not None and self.token_expires <= now:
            raise CredentialError(
                f"the bearer token from {self.token_origin} expired at {_stamp(self.token_expires)}; {TOKEN_FIX}."
            )
        if self.proxy is not None and self.proxy_expires is not None and self.proxy_expires <= now:
            raise CredentialError(
                f"the X.509 proxy from {self.proxy_origin} expired at {_stamp(self.proxy_expires)}; {PROXY_FIX}."
            )


def discover(environ: dict[str, str] | None = None) -> Credentials:
    """The credentials of this user, found as the grid tools find them; empty if none."""
    env = os.environ if environ is None else environ
    uid = os.getuid()
    token = origin = None
    if env.get("BEARER_TOKEN", "").strip():
        token, origin = env["BEARER_TOKEN"].strip(), "BEARER_TOKEN"
    else:
        candidates = [("BEARER_TOKEN_FILE", env.get("BEARER_TOKEN_FILE"))]
        if env.get("XDG_RUNTIME_DIR"):
            candidates.append(("XDG_RUNTIME_DIR", f"{env['XDG_RUNTIME_DIR']}/bt_u{uid}"))
        candidates.append(("default", f"/tmp/bt_u{uid}"))
        for how, path in candidates:
            if not path:
                continue
            if how == "BEARER_TOKEN_FILE" and not os.path.exists(path):
                raise CredentialError(f"BEARER_TOKEN_FILE={path!r} does not exist; {TOKEN_FIX}.")
            if os.path.exists(path):
                token = Path(path).read_text().strip()
                origin = f"BEARER_TOKEN_FILE={path}" if how == "BEARER_TOKEN_FILE" else path
                break
    proxy = proxy_origin = None
    proxy_path = env.get("X509_USER_PROXY")
    if proxy_path and not os.path.exists(proxy_path):
        raise CredentialError(f"X509_USER_PROXY={proxy_path!r} does not exist; {PROXY_FIX}.")
    proxy_path = proxy_path or f"/tmp/x509up_u{uid}"
    if os.path.exists(proxy_path):
        proxy = Path(proxy_path).read_bytes()
        proxy_origin = f"X509_USER_PROXY={proxy_path}" if env.get("X509_USER_PROXY") else proxy_path
    return Credentials(
        token=token or None,
        token_origin=origin if token else None,
        token_expires=token_expiry(token) if token else None,
        proxy=proxy,
        proxy_origin=proxy_origin,
        proxy_expires=proxy_expiry(proxy) if proxy else None,
    )


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (not verified: the server does that), ``None`` if it has none."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        return float(payload["exp"])
    except Exception:
        return None


def proxy_expiry(pem: bytes) -> float | None:
    """When the first certificate of a proxy file stops being valid, if it can be read."""
    try:
        from cryptography import x509

        cert = x509.load_pem_x509_certificates(pem)[0]
        return cert.not_valid_after_utc.timestamp()
    except Exception:
        return None


_active: dict[str, str] = {}
_lock = threading.Lock()


def activate(credentials: Credentials | None) -> None:
    """Make ``credentials`` the ones this process uses (idempotent, cheap after the first call).

    Where the environment already points at the same secrets (the driver, or forked workers)
    nothing is written.
    """
    if credentials is None or (credentials.token is None and credentials.proxy is None):
        return
    with _lock:
        if _active.get("fingerprint") == credentials.fingerprint:
            return
        if discover_quietly().fingerprint != credentials.fingerprint:
            folder = Path(tempfile.mkdtemp(prefix="highrate-cred-"))
            os.chmod(folder, 0o700)
            atexit.register(_remove, folder)
            if credentials.token is not None:
                os.environ.pop("BEARER_TOKEN", None)
                os.environ["BEARER_TOKEN_FILE"] = _private(folder / "token", credentials.token.encode())
            if credentials.proxy is not None:
                os.environ["X509_USER_PROXY"] = _private(folder / "proxy.pem", credentials.proxy)
        _active["fingerprint"] = credentials.fingerprint


def current_token() -> str | None:
    """The bearer token this process should send, read where :func:`activate` left it."""
    return discover_quietly().token


def current_proxy_file() -> str | None:
    """The proxy file this process should present as a TLS client certificate."""
    path = os.environ.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}"
    return path if os.path.exists(path) else None


def discover_quietly() -> Credentials:
    try:
        return discover()
    except CredentialError:
        return Credentials()


def _private(path: Path, data: bytes) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return str(path)


def _remove(folder: Path) -> None:
    for child in folder.glob("*"):
        child.unlink(missing_ok=True)
    folder.rmdir()


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _until(t: float | None) -> str:
    return f", valid until {_stamp(t)}" if t is not None else ""

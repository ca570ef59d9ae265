"""Grid credentials: discovery order, expiry, redaction, and installation on a worker."""

from __future__ import annotations

import base64
import datetime
import json
import os
import stat
import time
from pathlib import Path

import pytest

from highrate.data import credentials
from highrate.data.credentials import Credentials, discover, token_expiry
from highrate.errors import CredentialError


def _jwt(exp: float) -> str:
    def part(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'sub': 'analyst', 'exp': int(exp)})}.c2ln"


def _proxy(tmp_path, *, hours: float) -> str:
    """A self-signed certificate and key in one PEM file, like a grid proxy."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "analyst proxy")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=hours)).sign(key, hashes.SHA256()))
    path = tmp_path / f"x509up_{hours}"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(path)


def test_discovery_order(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 987654)  # nothing at /tmp/bt_u987654 or /tmp/x509up_u987654
    assert discover({}) == Credentials()
    token_file = tmp_path / "tok"
    token_file.write_text("from-file\n")
    assert discover({"BEARER_TOKEN_FILE": str(token_file)}).token == "from-file"
    both = discover({"BEARER_TOKEN": "from-env", "BEARER_TOKEN_FILE": str(token_file)})
    assert (both.token, both.token_origin) == ("from-env", "BEARER_TOKEN")
    (tmp_path / "bt_u987654").write_text("runtime")
    assert discover({"XDG_RUNTIME_DIR": str(tmp_path)}).token == "runtime"
    with pytest.raises(CredentialError, match=r"BEARER_TOKEN_FILE=.*does not exist"):
        discover({"BEARER_TOKEN_FILE": str(tmp_path / "nope")})
    with pytest.raises(CredentialError, match="voms-proxy-init"):
        discover({"X509_USER_PROXY": str(tmp_path / "nope")})


def test_expiry_is_read_and_checked(tmp_path):
    exp = time.time() + 3600
    assert token_expiry(_jwt(exp)) == int(exp)
    assert token_expiry("opaque-token") is None
    fresh = discover({"BEARER_TOKEN": _jwt(exp), "X509_USER_PROXY": _proxy(tmp_path, hours=2)})
    fresh.check()
    assert abs(fresh.proxy_expires - (time.time() + 7200)) < 60
    expired = discover({"BEARER_TOKEN": _jwt(time.time() - 10)})
    with pytest.raises(CredentialError, match=r"bearer token from BEARER_TOKEN expired at .* `htgettoken"):
        expired.check()
    old_proxy = discover({"X509_USER_PROXY": _proxy(tmp_path, hours=-0.5)})
    with pytest.raises(CredentialError, match=r"X.509 proxy from X509_USER_PROXY=.* expired .* `voms-proxy-init"):
        old_proxy.check()


def test_secrets_never_show_in_repr_or_description(tmp_path):
    secret = _jwt(time.time() + 60)
    found = discover({"BEARER_TOKEN": secret, "X509_USER_PROXY": _proxy(tmp_path, hours=1)})
    for text in (repr(found), str(found), found.describe()):
        assert secret not in text and "PRIVATE KEY" not in text and "CERTIFICATE" not in text
    assert "bearer token from BEARER_TOKEN, valid until" in found.describe()


def test_activate_writes_private_files_for_the_xrootd_and_https_clients(tmp_path, monkeypatch):
    monkeypatch.delenv("BEARER_TOKEN", raising=False)
    monkeypatch.delenv("BEARER_TOKEN_FILE", raising=False)
    monkeypatch.delenv("X509_USER_PROXY", raising=False)
    monkeypatch.setattr(os, "getuid", lambda: 987654)
    monkeypatch.setattr(credentials, "_active", {})
    shipped = discover({"BEARER_TOKEN": "worker-token", "X509_USER_PROXY": _proxy(tmp_path, hours=1)})
    credentials.activate(shipped)
    token_path, proxy_path = os.environ["BEARER_TOKEN_FILE"], os.environ["X509_USER_PROXY"]
    assert Path(token_path).read_text() == "worker-token"
    assert Path(proxy_path).read_bytes() == shipped.proxy
    for path in (token_path, proxy_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert credentials.current_token() == "worker-token"
    assert credentials.current_proxy_file() == proxy_path
    credentials.activate(shipped)  # idempotent
    assert os.environ["BEARER_TOKEN_FILE"] == token_path

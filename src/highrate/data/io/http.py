"""HTTPS/WebDAV sessions for fsspec: trusted CAs, a client proxy certificate, a bearer token.

fsspec's HTTP filesystem builds its aiohttp session through ``get_client``; this factory adds
the grid's TLS and credentials. Its ``repr`` carries no secret (fsspec keys its filesystem
cache on it): the token is read from the process's active credentials when a session starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from highrate.data import credentials


@dataclass(frozen=True)
class ClientFactory:
    """Builds one aiohttp session per fsspec filesystem instance."""

    ca_file: str | None
    timeout: float

    async def __call__(self, **kwargs: Any) -> Any:
        import ssl

        import aiohttp

        capath = os.environ.get("X509_CERT_DIR")
        context = ssl.create_default_context(
            cafile=self.ca_file, capath=capath if capath and os.path.isdir(capath) else None
        )
        proxy = credentials.current_proxy_file()
        if proxy is not None:
            context.load_cert_chain(proxy)  # a proxy file holds the certificate chain and its key
        headers = dict(kwargs.pop("headers", None) or {})
        token = credentials.current_token()
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=self.timeout)
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=32), headers=headers, timeout=timeout, **kwargs
        )

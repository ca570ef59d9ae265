"""The broker's TLS contexts, from its certificate, key and the cluster's CA."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from highrate.errors import ConfigError


@dataclass(frozen=True)
class BrokerTLS:
    """The broker's two TLS contexts, from its certificate, key and the cluster's CA.

    ``server`` answers peers that dial listeners; ``client`` talks to listeners, which are TLS
    servers on the connections they open (see ``broker.py``). Both require the peer's
    certificate to be signed by the CA; as in Dask, host names are not checked.
    """

    server: ssl.SSLContext
    client: ssl.SSLContext

    @classmethod
    def from_files(cls, cert: str | Path, key: str | Path | None, ca_file: str | Path) -> BrokerTLS:
        contexts = []
        for purpose in (ssl.Purpose.CLIENT_AUTH, ssl.Purpose.SERVER_AUTH):
            try:
                context = ssl.create_default_context(purpose, cafile=str(ca_file))
                context.minimum_version = ssl.TLSVersion.TLSv1_2
                context.load_cert_chain(str(cert), None if key is None else str(key))
            except (OSError, ssl.SSLError) as err:
                raise ConfigError(f"cannot load the broker's TLS files (--tls-cert {cert}, --tls-key {key}, "
                                  f"--tls-ca-file {ca_file}): {err}") from err
            context.check_hostname = False
            context.verify_mode = ssl.CERT_REQUIRED
            contexts.append(context)
        return cls(server=contexts[0], client=contexts[1])

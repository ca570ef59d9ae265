"""Dask Gateway (dask-gateway): the gateway starts the scheduler and workers, highrate asks it for a
cluster with the profile's options, scales it, runs, and shuts it down.

The password (``auth: basic``) or API token (``auth: jupyterhub``) is read from the environment
variable the profile names in ``secret_env``; it is never stored in a profile, a report or a message.
Without ``auth``, dask-gateway's own configuration (``gateway.auth`` in Dask's configuration, as
facility JupyterLab images set it) chooses.
"""

from __future__ import annotations

import getpass
import logging
import os
from dataclasses import dataclass
from typing import Any

import yaml

from highrate.base.optional import require
from highrate.errors import ConfigError, ExecutorError
from highrate.execution.clusters.kinds import scaled
from highrate.execution.clusters.profile import ClusterProfile

log = logging.getLogger(__name__)

AUTHS = ("basic", "jupyterhub", "kerberos")
DEFAULT_SECRET_ENV = {"basic": "HIGHRATE_GATEWAY_PASSWORD", "jupyterhub": "JUPYTERHUB_API_TOKEN"}
# profile key → the cluster option most gateways expose for it (daskhub, the dask-gateway docs)
OPTION_NAMES = {"cores": "worker_cores", "memory": "worker_memory", "image": "image"}
ADHOC_SOURCE = "--gateway"  # the source of the profile behind `--gateway URL`


def is_gateway_address(text: str | None) -> bool:
    """Whether ``text`` (a ``--cluster`` value) is a gateway's http(s) address, not a profile name."""
    return text is not None and text.startswith(("http://", "https://"))


def adhoc_profile(address: str, *, workers: int | None = None) -> ClusterProfile:
    """The profile behind ``--gateway URL``: that gateway, dask-gateway's configured authentication,
    the gateway's own defaults for cores, memory and image, and ``workers`` workers (default 1)."""
    if not is_gateway_address(address):
        raise ConfigError(f"--gateway needs the gateway's http:// or https:// address, got {address!r}.")
    if "@" in address.split("://", 1)[1].split("/", 1)[0]:
        raise ConfigError("--gateway: put no user or password in the address; set auth and secret_env in a "
                          "cluster profile of kind 'gateway', or dask-gateway's gateway.auth configuration.")
    return ClusterProfile(name="gateway", kind="gateway", source=ADHOC_SOURCE, address=address, jobs=workers)


@dataclass(frozen=True)
class GatewayKind:
    """A cluster from a Dask Gateway at ``address``: ``jobs`` workers (or ``adapt``) of ``cores`` and
    ``memory`` each, running ``image``, where the gateway offers those options."""

    keys: frozenset[str] = frozenset({
        "kind", "description", "address", "auth", "username", "secret_env", "cores", "memory", "image",
        "gateway_options", "jobs", "adapt", "start_timeout",
    })

    def requested(self, profile: ClusterProfile) -> dict[str, Any]:
        """The cluster options asked for, by the gateway's usual names (sent where the gateway has them)."""
        if profile.source == ADHOC_SOURCE:  # --gateway URL: the gateway's defaults
            return {}
        wanted: dict[str, Any] = {OPTION_NAMES["cores"]: profile.cores, OPTION_NAMES["memory"]: profile.memory}
        if profile.image:
            wanted[OPTION_NAMES["image"]] = profile.image
        return {**wanted, **profile.gateway_options}

    def describe(self, profile: ClusterProfile) -> str:
        auth = _auth_type(profile)
        text: dict[str, Any] = {
            "gateway": _address(profile),
            "auth": auth or "dask-gateway configuration (gateway.auth)",
        }
        if auth == "basic":
            text["username"] = profile.username or getpass.getuser()
        if auth in DEFAULT_SECRET_ENV:
            text["secret from"] = f"${_secret_env(profile, auth)}"
        text["cluster_options"] = self.requested(profile) or "the gateway's defaults"
        text.update({"adapt": vars(profile.adapt)} if profile.adapt else {"workers": profile.jobs or 1})
        return yaml.safe_dump(text, sort_keys=False)

    def start(self, profile: ClusterProfile) -> Any:
        dask_gateway = require("dask_gateway", "gateway", purpose=f"{profile.where} (kind 'gateway')")
        address = _address(profile)
        gateway = dask_gateway.Gateway(address, auth=_auth(profile, dask_gateway))
        try:
            options = _fill(profile, gateway.cluster_options(), self.requested(profile))
            cluster = gateway.new_cluster(cluster_options=options, shutdown_on_close=True)
        except Exception as err:
            raise _translate(profile, err) from None
        finally:
            gateway.close()
        log.info("%s: gateway cluster %s started", profile.where, cluster.name)
        return scaled(cluster, profile, by_jobs=False)


def _address(profile: ClusterProfile) -> str:
    if not is_gateway_address(profile.address):
        raise ConfigError(f"{profile.where}: kind 'gateway' needs 'address', the gateway's http(s) URL "
                          f"(e.g. https://gateway.example.org), got {profile.address!r}.")
    return str(profile.address)


def _auth_type(profile: ClusterProfile) -> str | None:
    if profile.auth is not None and profile.auth not in AUTHS:
        raise ConfigError(f"{profile.where}: 'auth' must be one of {', '.join(AUTHS)} (or left out for "
                          f"dask-gateway's configuration), got {profile.auth!r}.")
    if profile.auth is None and (profile.secret_env or profile.username):
        raise ConfigError(f"{profile.where}: 'secret_env' and 'username' need 'auth' (basic or jupyterhub).")
    return profile.auth


def _secret_env(profile: ClusterProfile, auth: str) -> str:
    return profile.secret_env or DEFAULT_SECRET_ENV[auth]


def _auth(profile: ClusterProfile, dask_gateway: Any) -> Any:
    """The GatewayAuth; the secret comes from the environment and goes nowhere else."""
    auth = _auth_type(profile)
    if auth is None:
        try:
            return dask_gateway.auth.get_auth()
        except (TypeError, ValueError, ImportError) as err:
            raise ConfigError(f"{profile.where}: dask-gateway's configured authentication (gateway.auth) "
                              f"does not work: {err}. Set 'auth' and 'secret_env' in a profile of kind 'gateway'.") from err
    if auth == "kerberos":
        return dask_gateway.KerberosAuth()
    variable = _secret_env(profile, auth)
    secret = os.environ.get(variable)
    if not secret:
        what = "password" if auth == "basic" else "API token"
        raise ConfigError(f"{profile.where}: the gateway {what} is read from ${variable}, which is not set: "
                          f"export {variable}=... (or name another variable in 'secret_env').")
    if auth == "basic":
        return dask_gateway.BasicAuth(profile.username or getpass.getuser(), secret)
    return dask_gateway.JupyterHubAuth(api_token=secret)


def _fill(profile: ClusterProfile, options: Any, wanted: dict[str, Any]) -> Any:
    """Set the wanted options the gateway offers; those from ``gateway_options`` must all be offered."""
    offered = list(options)
    for key, value in wanted.items():
        if key not in offered:
            if key in profile.gateway_options:
                raise ConfigError(f"{profile.where}: the gateway offers no cluster option {key!r} "
                                  f"(gateway_options); it offers: {', '.join(offered) or 'none'}.")
            log.info("%s: the gateway offers no option %r; its default applies", profile.where, key)
            continue
        value = _convert(profile, key, value, options[key])
        try:
            options[key] = value
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{profile.where}: the gateway refuses {key}={value!r}: {err}. "
                              "Change the profile's value.") from err
    return options


def _convert(profile: ClusterProfile, key: str, value: Any, current: Any) -> Any:
    """``value`` in the type of the gateway's option: memory in GiB for numbers, YAML for strings."""
    if key == OPTION_NAMES["memory"] and isinstance(current, int | float) and isinstance(value, str):
        from dask.utils import parse_bytes

        gib = parse_bytes(value) / 2**30
        return round(gib) if isinstance(current, int) else round(gib, 3)
    if isinstance(value, str) and not isinstance(current, str):
        parsed = yaml.safe_load(value)
        return float(parsed) if isinstance(current, float) and isinstance(parsed, int) else parsed
    return value


def _translate(profile: ClusterProfile, err: Exception) -> Exception:
    """An error the user can act on; never the request (its headers hold the credentials)."""
    if isinstance(err, ConfigError | ExecutorError):
        return err
    where, address = profile.where, profile.address
    status = getattr(err, "status", None)
    if status in (401, 403):
        return ExecutorError(
            f"{where}: the gateway at {address} refused the credentials (HTTP {status}). Check the password "
            "or token in the environment variable the profile names (secret_env), the username and 'auth'.")
    if isinstance(err, OSError) or type(err).__name__.startswith("ClientConnector"):
        return ExecutorError(f"{where}: cannot reach the gateway at {address}: {type(err).__name__}. "
                             "Check the address and that the gateway runs.")
    if type(err).__name__ == "GatewayClusterError":
        return ExecutorError(f"{where}: the gateway could not start the cluster ({err}); its logs say why.")
    if isinstance(err, ValueError):  # the gateway answered 404/422: a bad option or address
        return ConfigError(f"{where}: the gateway at {address} refused the request: {err}.")
    status_text = f" (HTTP {status})" if status else ""
    return ExecutorError(f"{where}: the gateway at {address} failed{status_text}: {type(err).__name__}.")


GATEWAY = GatewayKind()

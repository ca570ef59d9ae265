"""An executor on a cluster profile: start the cluster, check the workers, then run as Dask does."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from highrate import _version
from highrate.errors import ConfigError, ExecutorError, HighrateError
from highrate.execution import clusters
from highrate.execution.clusters.environment import check_workers, highrate_version
from highrate.execution.clusters.gateway import adhoc_profile, is_gateway_address
from highrate.execution.executors.dask import DaskExecutor

log = logging.getLogger(__name__)

FIX_ENVIRONMENT = (
    "Workers must import the same highrate as the driver: install it in the workers' environment, "
    "or set the profile's job_script_prologue to activate the driver's virtual environment "
    "(e.g. ['source {prefix}/bin/activate']) and its python to '{python}'."
)


class ClusterExecutor:
    """Chunks become Dask tasks on the workers of a cluster profile (see ``highrate cluster list``).

    ``workers`` (if given) replaces the profile's scaling by that many fixed jobs. ``cluster`` is a
    profile name, or a Dask Gateway's http(s) address (a cluster from that gateway, its defaults).
    """

    name = "cluster"

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None, cluster: str | None = None) -> None:
        if not cluster:
            raise ConfigError("the cluster executor needs a profile: --cluster NAME (see `highrate cluster list`).")
        if scheduler:
            raise ConfigError("give either --cluster or --scheduler, not both (a 'scheduler' profile holds an address).")
        # an http(s) address: the cluster of that Dask Gateway (`--gateway URL`)
        profile = adhoc_profile(cluster) if is_gateway_address(cluster) else clusters.get_profile(cluster)
        if workers is not None:
            profile = dataclasses.replace(profile, jobs=workers, adapt=None)
        self.profile = profile
        self.name = f"cluster:{profile.name}"
        self._dask = _connect(profile, clusters.start)
        log.info("%s: Dask dashboard %s", profile.where, self._dask.dashboard_link)

    @property
    def client(self) -> Any:
        return self._dask.client

    @property
    def dashboard_link(self) -> str:
        return self._dask.dashboard_link

    takes = frozenset({"on_lost", "resources"})  # as the Dask executor

    def map_unordered(self, function: Callable[[Any], Any], items: Iterable[Any], **options: Any) -> Iterator[Any]:
        return self._dask.map_unordered(function, items, **options)

    def map_keep(
        self, function: Callable[[Any], Any], items: Iterable[Any], summarize: Callable[[Any], Any], **options: Any
    ) -> Any:
        return self._dask.map_keep(function, items, summarize, **options)

    def combine(self, function: Callable[..., Any], refs: list[Any]) -> Any:
        return self._dask.combine(function, refs)

    def fetch(self, ref: Any) -> Any:
        return self._dask.fetch(ref)

    def close(self) -> None:
        self._dask.close()


def _connect(profile: Any, start: Callable[[Any], Any]) -> DaskExecutor:
    """Start the cluster, connect a client, wait for a first worker and check the workers.

    Workers that join later (adaptive scaling) are not checked.
    """
    import distributed


    try:
        cluster = start(profile)
    except HighrateError:
        raise
    except Exception as err:
        raise ExecutorError(f"{profile.where}: cannot start the cluster: {type(err).__name__}: {err}") from err
    owned = None if isinstance(cluster, str) else cluster
    client = None
    try:
        client = distributed.Client(cluster, timeout="30s")
        # a probe task, not wait_for_workers: a pending task is what makes an adaptive cluster
        # (minimum 0) submit its first job
        probe = client.submit(highrate_version, pure=False)
        try:
            probe.result(timeout=profile.start_timeout)
        except TimeoutError as err:
            raise ExecutorError(
                f"{profile.where}: no worker connected within {profile.start_timeout:g} s. Check the "
                "batch queue (squeue, condor_q, qstat, bjobs) and the job logs"
                + (f" in {profile.log_directory}" if profile.log_directory else "")
                + "; raise start_timeout if jobs wait long in the queue."
            ) from err
        except Exception:
            pass  # a worker without highrate: check_workers names it
        finally:
            probe.release()
        check_workers(client, expected=_version.__version__, hint=FIX_ENVIRONMENT)
    except BaseException as err:
        if client is not None:
            client.close()
        if owned is not None:
            owned.close()
        if isinstance(err, OSError):
            raise ExecutorError(f"{profile.where}: cannot connect to the Dask scheduler: {err}") from err
        raise
    return DaskExecutor.from_client(client, cluster=owned)

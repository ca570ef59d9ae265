"""Open ROOT files once per process and describe them (entries, UUID, clusters, branches).

The events are a TTree or an RNTuple (:mod:`highrate.data.io.rntuple`): both give the same
description, and the readers the same arrays.

uproot is imported only where a TTree is parsed: with a file's metadata remembered
(:mod:`highrate.data.io.metacache`) a run reads without it, and its import is ~10% of a short command.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import numpy as np

from highrate.data import credentials
from highrate.data.io import metacache, rntuple, ttree_meta
from highrate.data.io.baskets import branch_layout
from highrate.data.io.opening import check_complete, open_local, release_handles, remote_error
from highrate.data.io.sources import AccessOptions, local_path, open_args
from highrate.errors import (
    ConfigError,
    InputFileError,
    did_you_mean,
)

_MAX_OPEN = 8
_open: OrderedDict[tuple[str, str], Any] = OrderedDict()
_lock = threading.Lock()
_exit_hook = False


@dataclass(frozen=True)
class BranchInfo:
    """What the pipeline needs of a numeric branch: its dtype and, if jagged, its counter."""

    dtype: str
    counter: str | None = None


class OpenTree:
    """A TTree or RNTuple kept open in this process, with what the fast reader caches about it.

    ``ttree`` is uproot's TTree (or RNTuple: ``kind``); given ``parse`` instead, it is parsed
    when first needed. With the file's metadata remembered (:mod:`highrate.data.io.metacache`),
    reading numeric branches never needs it. An RNTuple's ``layouts`` hold every branch.
    """

    def __init__(
        self, url: str, ttree: Any, fd: int | None, *, size: int = 0, users: int = 0, uuid: str | None = None,
        layouts: dict[str, Any] | None = None, parse: Callable[[], Any] | None = None, kind: str = "ttree",
    ) -> None:
        self.url = url
        self.kind = kind  # "ttree" or "rntuple"
        self.description: rntuple.Description | None = None  # an RNTuple's, when parsed here
        self.fd = fd  # a plain file descriptor for local files (pread is the cheapest read)
        self.size = size  # bytes of the file, found once when it is opened (remotely a request each time)
        self.users = users  # readers holding it: an evicted handle closes when the last one lets go
        self.layouts: dict[str, Any] = {} if layouts is None else layouts
        self.evicted = False
        self.stamp = _stamp(url)  # a local file's (mtime, size, inode): changed, it is opened anew
        self._ttree = ttree
        self._parse = parse
        self._uuid = uuid

    @property
    def ttree(self) -> Any:
        if self._ttree is None:
            assert self._parse is not None
            self._ttree = self._parse()
        return self._ttree

    @property
    def uuid(self) -> str:
        """The file's UUID (remembered, or read from the file)."""
        return self._uuid if self._uuid is not None else str(self.ttree.file.uuid)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self._ttree is not None:
            source = self._ttree.file.source
            self._ttree.file.close()
            release_handles(source)


def _close_all_at_exit() -> None:
    with _lock:
        handles = list(_open.values())
        _open.clear()
    for handle in handles:
        with suppress(Exception):
            handle.close()


@contextmanager
def opened(url: str, tree: str, access: AccessOptions | None = None) -> Iterator[OpenTree]:
    """Hold an open tree for the duration of a read; safe with several threads per worker."""
    handle = open_tree(url, tree, access)
    try:
        yield handle
    finally:
        with _lock:
            handle.users -= 1
            if handle.evicted and handle.users == 0:
                handle.close()


@dataclass(frozen=True)
class FileInfo:
    """Metadata of one file, gathered once per run."""

    url: str  # the logical file (what the dataset lists)
    tree: str
    entries: int
    uuid: str
    size: int
    clusters: tuple[int, ...]  # entry boundaries where every branch starts a new basket
    branches: dict[str, BranchInfo]
    other_branches: tuple[str, ...] = ()  # branches of types the pipeline does not expose
    gen_sumw: float | None = None  # sum of generator weights before any selection (Runs tree)
    gen_sumw_from: str | None = None  # "Runs", or "genWeight" (summed over the file's events: no Runs tree)
    replicas: tuple[str, ...] = ()  # where it can be read, the one that answered first
    replica_failures: tuple[dict[str, Any], ...] = ()  # replicas that failed while describing it
    kind: str = "ttree"  # how the events are stored: "ttree" or "rntuple"


def open_tree(url: str, tree: str, access: AccessOptions | None = None) -> OpenTree:
    """The TTree, opened once per process and kept in a small LRU cache.

    Real NanoAOD has thousands of branches and costs 1-3 s to open; reopening per chunk is the
    largest avoidable cost of chunked processing.
    """
    key = (url, tree)
    with _lock:
        if key in _open and _open[key].stamp != _stamp(url):  # replaced or rewritten since it was opened
            _evict(_open.pop(key))
        if key in _open:
            _open.move_to_end(key)
            _open[key].users += 1
            return _open[key]
    path = local_path(url)
    remembered = metacache.lookup(path, tree) if path is not None else None
    fd = None
    if remembered is not None:
        with suppress(OSError):  # gone since: the usual open says what is wrong
            fd = os.open(path, os.O_RDONLY)
    if remembered is not None and fd is not None:  # the file is as described before: no parsing until needed
        handle = OpenTree(url, None, fd, users=1, size=remembered.info["size"],
                          uuid=remembered.info["uuid"], layouts=dict(remembered.layouts),
                          parse=lambda: _parse_tree(url, tree, access)[0], kind=remembered.info.get("kind", "ttree"))
    else:
        ttree, size = _parse_tree(url, tree, access)
        found = _ntuple_description(url, tree, ttree) if rntuple.is_rntuple(ttree) else None
        # an RNTuple's reader needs every branch's pages: found once, here
        handle = OpenTree(url, ttree, os.open(path, os.O_RDONLY) if path is not None else None, users=1, size=size,
                          layouts=None if found is None else found.layouts, kind="ttree" if found is None else "rntuple")
        handle.description = found
    with _lock:
        if key in _open:  # another thread opened it meanwhile
            _evict(_open.pop(key))
        _open[key] = handle
        while len(_open) > _MAX_OPEN:
            _evict(_open.popitem(last=False)[1])
    return handle


def _parse_tree(url: str, tree: str, access: AccessOptions | None) -> tuple[Any, int]:
    """uproot's TTree of the file, and the file's size; errors name the file and the tree."""
    import uproot

    file, size = _open_file(url, access or AccessOptions())
    try:
        ttree = file[tree]
    except KeyError as err:
        trees = [k.split(";")[0] for k, c in file.classnames().items() if c in ("TTree", "TNtuple", "ROOT::RNTuple")]
        file.close()
        raise InputFileError(
            f"file {url!r} has no tree {tree!r}; trees in it: {trees or 'none'}." + did_you_mean(tree, trees)
        ) from err
    except Exception as err:
        file.close()
        raise InputFileError(f"file {url!r}: cannot read tree {tree!r}: {err}") from err
    if not isinstance(ttree, uproot.TTree) and not rntuple.is_rntuple(ttree):
        file.close()
        raise InputFileError(f"file {url!r}: {tree!r} is a {type(ttree).__name__}, not a TTree nor an RNTuple.")
    return ttree, size


def _ntuple_description(url: str, tree: str, ntuple: Any) -> rntuple.Description:
    try:
        return rntuple.describe(ntuple)
    except Exception as err:
        ntuple.file.close()
        raise InputFileError(f"file {url!r}: cannot read the metadata of RNTuple {tree!r}: {err}") from err


def _stamp(url: str) -> tuple[int, int, int] | None:
    path = local_path(url)
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _evict(handle: OpenTree) -> None:
    handle.evicted = True
    if handle.users == 0:
        handle.close()


def forget(url: str) -> None:
    """Drop a file from the cache (after a read error, so a retry reopens it)."""
    with _lock:
        for key in [k for k in _open if k[0] == url]:
            _evict(_open.pop(key))


def _open_file(url: str, access: AccessOptions) -> tuple[Any, int]:
    path = local_path(url)
    if path is None:
        return _open_remote(url, access)
    return open_local(url, path)


def _open_remote(url: str, access: AccessOptions) -> tuple[Any, int]:
    credentials.activate(access.credentials)
    global _exit_hook
    if not _exit_hook:  # registered after fsspec-xrootd's own hook, so it runs before it
        atexit.register(_close_all_at_exit)
        _exit_hook = True
    target, options = open_args(url, access)
    try:
        import uproot

        file = uproot.open(target, object_cache=None, array_cache=None, **options)
        size = int(file.file.source.num_bytes)
        check_complete(url, file, size)
    except InputFileError:
        raise
    except ImportError as err:
        raise ConfigError(
            f"file {url!r}: reading {url.split('://')[0]}:// needs {err.name or err}: pip install 'highrate[remote]'."
        ) from err
    except Exception as err:
        raise remote_error(url, err) from err
    return file, size


def remembered(url: str, tree: str) -> bool:
    """Whether :func:`describe` would answer for this file from what an earlier run remembered."""
    path = local_path(url)
    return path is not None and metacache.lookup(path, tree) is not None


def describe(url: str, tree: str, access: AccessOptions | None = None) -> FileInfo:
    """Gather the metadata of one file: entries, UUID, size, cluster boundaries and branch types.

    For a local file, remembered from an earlier run when the file has not changed."""
    path = local_path(url)
    remembered = metacache.lookup(path, tree) if path is not None else None
    if remembered is not None:
        return _info_from(remembered.info, url)
    by_hand = info_by_hand(path, url, tree) if path is not None else None
    if by_hand is not None:  # remembered like uproot's answer, so reading it needs no parse either
        metacache.remember(path, tree, _info_doc(by_hand[0]), by_hand[1])
        return by_hand[0]
    with opened(url, tree, access) as handle:
        layouts: dict[str, Any] | None = {} if path is not None else None
        if handle.kind == "rntuple":
            info = _describe_ntuple(url, tree, handle)
            if layouts is not None:
                layouts.update(handle.layouts)
        else:
            info = _describe(url, tree, handle.ttree, handle.size, layouts)
        if path is not None and layouts is not None:
            handle.layouts.update(layouts)
            metacache.remember(path, tree, _info_doc(info), layouts)
        return info


def info_by_hand(path: str, url: str, tree: str) -> tuple[FileInfo, dict[str, Any]] | None:
    """The file's description and layouts from :mod:`ttree_meta`, or ``None`` (uproot's turn)."""
    found = ttree_meta.describe_local(path, tree)
    return None if found is None else (FileInfo(
        url=url, tree=tree, entries=found.entries, uuid=found.uuid, size=found.size, clusters=found.clusters,
        branches={k: BranchInfo(*v) for k, v in found.branches.items()}, other_branches=found.other_branches,
        gen_sumw=found.gen_sumw, gen_sumw_from=found.gen_sumw_from), found.layouts)


def _info_doc(info: FileInfo) -> dict[str, Any]:
    """What is remembered of a description: everything but where it was read from."""
    return {"tree": info.tree, "entries": info.entries, "uuid": info.uuid, "size": info.size,
            "clusters": list(info.clusters), "branches": {k: [b.dtype, b.counter] for k, b in info.branches.items()},
            "other_branches": list(info.other_branches), "gen_sumw": info.gen_sumw, "kind": info.kind,
            "gen_sumw_from": info.gen_sumw_from}


def _info_from(doc: dict[str, Any], url: str) -> FileInfo:
    return FileInfo(url=url, tree=doc["tree"], entries=doc["entries"], uuid=doc["uuid"], size=doc["size"],
                    clusters=tuple(doc["clusters"]),
                    branches={k: BranchInfo(dtype, counter) for k, (dtype, counter) in doc["branches"].items()},
                    other_branches=tuple(doc["other_branches"]), gen_sumw=doc["gen_sumw"], kind=doc["kind"],
                    gen_sumw_from=doc["gen_sumw_from"])


def _describe_ntuple(url: str, tree: str, handle: OpenTree) -> FileInfo:
    """An RNTuple's description, as a TTree's (its layouts are the handle's already)."""
    ntuple = handle.ttree
    found = handle.description or _ntuple_description(url, tree, ntuple)
    branches = {k: BranchInfo(d, c) for k, (d, c) in found.branches.items()}
    try:
        gen_sumw, source = _gen_sumw(ntuple.file.root_directory, branches,
                                     lambda: ntuple.arrays(["genWeight"], library="np")["genWeight"])
    except Exception as err:
        forget(url)
        raise InputFileError(f"file {url!r}: cannot read its Runs: {err}") from err
    return FileInfo(url=url, tree=tree, entries=found.entries, uuid=str(ntuple.file.uuid), size=handle.size,
                    clusters=found.clusters, branches=branches, other_branches=found.other, gen_sumw=gen_sumw,
                    kind="rntuple", gen_sumw_from=source)


def _describe(url: str, tree: str, ttree: Any, size: int, layouts: dict[str, Any] | None = None) -> FileInfo:
    """The file's description; ``layouts``, if given, receives every branch's basket layout
    (None where the fast reader does not apply), to be remembered."""
    try:
        branches: dict[str, BranchInfo] = {}
        other: list[str] = []
        for branch in ttree.itervalues(recursive=True):
            info = branch_info(branch)
            if info is None:
                other.append(branch.name)
            else:
                branches[branch.name] = info
            if layouts is not None:
                layouts[branch.name] = None if info is None else branch_layout(branch)
        clusters = tuple(int(x) for x in ttree.common_entry_offsets())
        gen_sumw, source = _gen_sumw(ttree.file.root_directory, branches,
                                     lambda: ttree["genWeight"].array(library="np"))
        return FileInfo(
            url=url,
            tree=tree,
            entries=int(ttree.num_entries),
            uuid=str(ttree.file.uuid),
            size=size,
            clusters=clusters,
            branches=branches,
            other_branches=tuple(other),
            gen_sumw=gen_sumw,
            gen_sumw_from=source,
        )
    except InputFileError:
        raise
    except Exception as err:
        forget(url)
        raise InputFileError(f"file {url!r}: cannot read the metadata of tree {tree!r}: {err}") from err


def _gen_sumw(directory: Any, branches: dict[str, BranchInfo], gen_weight: Callable[[], np.ndarray],
              ) -> tuple[float | None, str | None]:
    """(Sum of generator weights before any selection, where it came from): ``Runs/genEventSumw``;
    without a Runs tree (skims written outside CMSSW) the sum of ``genWeight`` over the file's
    events, read here, before any skim; (None, None) for data."""
    try:
        runs = directory["Runs"]
    except Exception:
        runs = None
    if runs is not None and "genEventSumw" in runs:
        return float(np.sum(runs["genEventSumw"].array(library="np"), dtype=np.float64)), "Runs"
    if "genWeight" in branches and not branches["genWeight"].counter:
        return float(np.sum(gen_weight(), dtype=np.float64)), "genWeight"
    return None, None


def branch_info(branch: Any) -> BranchInfo | None:
    """Numeric flat or counter-jagged branches; ``None`` for anything else (strings, objects)."""
    import uproot

    interp = branch.interpretation
    if isinstance(interp, uproot.interpretation.numerical.AsDtype) and interp.from_dtype.shape == ():
        return BranchInfo(dtype=np.dtype(interp.to_dtype).str.lstrip("<>|="))
    if isinstance(interp, uproot.interpretation.jagged.AsJagged) and isinstance(
        interp.content, uproot.interpretation.numerical.AsDtype
    ):
        counter = branch.count_branch
        if counter is not None and interp.content.from_dtype.shape == ():
            return BranchInfo(dtype=np.dtype(interp.content.to_dtype).str.lstrip("<>|="), counter=counter.name)
    return None

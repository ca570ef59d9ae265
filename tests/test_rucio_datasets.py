"""rucio:// datasets against a real Rucio server whose RSEs point at real XRootD and nginx servers.

The Rucio server (its own virtualenv, SQLite, gunicorn), the XRootD server and nginx all run on
127.0.0.1 (tests/fixtures_rucio.py, tests/fixtures_storage.py); under CI=true they must start.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
import yaml
from compare import assert_same_result
from servers.rucio import FileSpec, adler32_of, protocol

import highrate
from highrate.cli.main import main
from highrate.errors import CatalogError, DatasetError


@pytest.fixture(scope="module")
def catalogue(rucio_server, xrootd_server, https_server, sample, tmp_path_factory):
    """Both datasets of ``sample`` registered as ``user.hr:<dataset>``, with one replica on an
    XRootD site and one on a WebDAV site; returns the datasets file, the local datasets and RSEs."""
    rucio_server.add_rse("XRD_SITE", [protocol("root", xrootd_server.port, "/")], exist_ok=True)
    rucio_server.add_rse("WEB_SITE", [protocol("davs", https_server.port, "/"),
                                      protocol("https", https_server.port, "/")], exist_ok=True)
    local = highrate.load_datasets(sample)
    entries = {}
    for d in local:
        specs = []
        for f in d.files:
            for root in (xrootd_server.export_dir, https_server.root_dir):
                (root / "rucio" / d.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(f, root / "rucio" / d.name / Path(f).name)
            rel = Path("rucio") / d.name / Path(f).name
            specs.append(FileSpec(name=f"{d.name}_{Path(f).name}", bytes=Path(f).stat().st_size,
                                  adler32=adler32_of(f),
                                  pfns={"XRD_SITE": xrootd_server.url(rel), "WEB_SITE": https_server.davs_url(rel)}))
        rucio_server.register_dataset("user.hr", d.name, specs)
        entries[d.name] = {"sample": d.sample, "files": [f"rucio://user.hr:{d.name}"], "metadata": dict(d.metadata)}
    folder = tmp_path_factory.mktemp("rucio-datasets")
    (folder / "ca.pem").write_bytes(Path(https_server.ca_file).read_bytes())
    return {"entries": entries, "local": local, "folder": folder}


def _write(catalogue, tmp_path, **rucio) -> Path:
    doc = {"sources": {"ca_file": str(catalogue["folder"] / "ca.pem"), "timeout": 5,
                       "rucio": {"cache_dir": str(tmp_path / "cache"), **rucio}},
           "datasets": catalogue["entries"]}
    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def rucio_env(rucio_server, monkeypatch):
    monkeypatch.setenv("RUCIO_CONFIG", str(rucio_server.client_config))


def test_rucio_dataset_resolves_to_every_replica_in_order(catalogue, rucio_env, tmp_path, xrootd_server, https_server):
    mc = catalogue["local"][0]
    (ds, _) = highrate.load_datasets(_write(catalogue, tmp_path))
    assert len(ds.files) == len(mc.files)
    for name, f in zip(ds.files, mc.files, strict=True):
        where = ds.where(name)
        rel = Path("rucio") / mc.name / Path(f).name
        assert name == f"user.hr:{mc.name}_{Path(f).name}"
        assert where.size == Path(f).stat().st_size and where.adler32 == adler32_of(f)
        # default scheme order root, davs, https: the XRootD site first
        assert where.replicas == (xrootd_server.url(rel), https_server.davs_url(rel), https_server.url(rel))
        assert where.sites == ("XRD_SITE", "WEB_SITE", "WEB_SITE")
    (ds, _) = highrate.load_datasets(_write(catalogue, tmp_path, prefer=["WEB_SITE"], schemes=["https", "root"],
                                            cache_dir=str(tmp_path / "c2")))
    assert [r.split("://")[0] for r in ds.where(ds.files[0]).replicas] == ["https", "root"]
    (ds, _) = highrate.load_datasets(_write(catalogue, tmp_path, block=["XRD_SITE"], cache_dir=str(tmp_path / "c3")))
    assert all(s == "WEB_SITE" for f in ds.files for s in ds.where(f).sites)


def test_run_over_rucio_equals_local_files(catalogue, rucio_env, tmp_path, zmumu_path):
    analysis = highrate.load_analysis(zmumu_path)
    local = highrate.run(analysis, catalogue["local"], options=highrate.RunOptions(chunk_size=5000)).result
    run = highrate.run(analysis, highrate.load_datasets(_write(catalogue, tmp_path)),
                       options=highrate.RunOptions(chunk_size=5000))
    remote = run.result
    # the same events under other file names: compare everything but the per-file bookkeeping
    assert_same_result(remote, local)
    assert all(set(f["served_by"]) and all(r.startswith("root://") for r in f["served_by"])
               for f in remote.files.values())


def test_rucio_failover_when_the_preferred_site_dies(catalogue, rucio_env, tmp_path, zmumu_path, xrootd_factory,
                                                     rucio_server, https_server):
    """A third site holds the first replica of every file; it is killed after 2 chunks."""
    site = xrootd_factory(tmp_path / "site-c")
    rucio_server.add_rse("XRD_DOOMED", [protocol("root", site.port, "/")], exist_ok=True)
    mc = catalogue["local"][0]
    specs = []
    for f in mc.files:
        shutil.copy(f, site.export_dir / Path(f).name)
        rel = Path("rucio") / mc.name / Path(f).name
        specs.append(FileSpec(name=f"doomed_{Path(f).name}", bytes=Path(f).stat().st_size, adler32=adler32_of(f),
                              pfns={"XRD_DOOMED": site.url(Path(f).name), "WEB_SITE": https_server.davs_url(rel)}))
    name = f"doomed_{uuid.uuid4().hex[:8]}"
    rucio_server.register_dataset("user.hr", name, specs)
    path = _write(catalogue, tmp_path, prefer=["XRD_DOOMED"])
    doc = yaml.safe_load(path.read_text())
    doc["datasets"] = {mc.name: {**catalogue["entries"][mc.name], "files": [f"rucio://user.hr:{name}"]}}
    path.write_text(yaml.safe_dump(doc))
    killed = []

    def progress(p):
        if p.stage == "chunks" and p.done >= 2 and not killed:
            site.stop()
            killed.append(p.done)

    analysis = highrate.load_analysis(zmumu_path)
    run = highrate.run(analysis, highrate.load_datasets(path), options=highrate.RunOptions(chunk_size=5000),
                       progress=progress)
    local = highrate.run(analysis, [mc], options=highrate.RunOptions(chunk_size=5000)).result
    assert_same_result(run.result, local)
    served = [r for f in run.result.files.values() for r, n in f["served_by"].items() for _ in range(n)]
    assert sum(r.startswith(f"root://127.0.0.1:{site.port}/") for r in served) == 2
    assert sum(r.startswith("davs://") for r in served) == len(served) - 2
    failures = [x["replica"] for f in run.result.files.values() for x in f["replica_failures"]]
    assert failures and all(r.startswith(f"root://127.0.0.1:{site.port}/") for r in failures)


def test_a_replica_of_the_wrong_size_is_skipped(catalogue, rucio_env, tmp_path, zmumu_path, rucio_server,
                                               xrootd_server, https_server):
    mc = catalogue["local"][0]
    f = mc.files[0]
    bad = xrootd_server.export_dir / "short" / Path(f).name
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(Path(f).read_bytes() + b"\0" * 100)  # a valid ROOT file, but not the catalogued bytes
    rel = Path("rucio") / mc.name / Path(f).name
    name = f"sized_{uuid.uuid4().hex[:8]}"
    rucio_server.register_dataset("user.hr", name, [FileSpec(
        name=f"{name}.root", bytes=Path(f).stat().st_size, adler32=adler32_of(f),
        pfns={"XRD_SITE": xrootd_server.url(bad), "WEB_SITE": https_server.davs_url(rel)})])
    path = _write(catalogue, tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["datasets"] = {mc.name: {**catalogue["entries"][mc.name], "files": [f"rucio://user.hr:{name}"]}}
    path.write_text(yaml.safe_dump(doc))
    analysis = highrate.load_analysis(zmumu_path)
    run = highrate.run(analysis, highrate.load_datasets(path), options=highrate.RunOptions(chunk_size=5000))
    from dataclasses import replace

    expected = highrate.run(analysis, [replace(mc, files=(f,))], options=highrate.RunOptions(chunk_size=5000)).result
    assert_same_result(run.result, expected)
    (entry,) = run.result.files.values()
    assert all(r.startswith("davs://") for r in entry["served_by"])
    (failure,) = entry["replica_failures"]
    assert failure["replica"] == xrootd_server.url(bad) and "the catalogue says" in failure["error"]


def test_resolution_is_cached_and_errors_are_clear(catalogue, rucio_env, tmp_path, rucio_server, monkeypatch):
    path = _write(catalogue, tmp_path)
    first = highrate.load_datasets(path)
    # the server becomes unreachable: the cached resolution still serves
    dead = tmp_path / "dead.cfg"
    text = Path(rucio_server.client_config).read_text().replace(str(rucio_server.port), "1")
    dead.write_text(text)
    monkeypatch.setenv("RUCIO_CONFIG", str(dead))
    assert [d.files for d in highrate.load_datasets(path)] == [d.files for d in first]
    with pytest.raises(CatalogError, match=r"(?i)rucio.*(reach|connect|failed)"):
        highrate.load_datasets(path, refresh=True)
    monkeypatch.setenv("RUCIO_CONFIG", str(rucio_server.client_config))
    doc = yaml.safe_load(path.read_text())
    doc["datasets"]["DYJetsToLL_M-50"]["files"] = ["rucio://user.hr:no_such_dataset"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(DatasetError, match=r"dataset 'DYJetsToLL_M-50': Rucio DID user.hr:no_such_dataset does not exist"):
        highrate.load_datasets(path)
    doc["datasets"]["DYJetsToLL_M-50"]["files"] = ["rucio://no_scope_given"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(DatasetError, match=r"rucio://SCOPE:NAME"):
        highrate.load_datasets(path)
    monkeypatch.delenv("RUCIO_CONFIG")
    monkeypatch.setenv("RUCIO_HOME", str(tmp_path / "nowhere"))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    doc["datasets"]["DYJetsToLL_M-50"]["files"] = ["rucio://user.hr:DYJetsToLL_M-50"]
    doc["sources"]["rucio"]["cache_dir"] = str(tmp_path / "empty-cache")
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(CatalogError, match="no Rucio configuration found; set RUCIO_CONFIG"):
        highrate.load_datasets(path)


def test_cli_lists_replicas_and_reports_which_served(catalogue, rucio_env, tmp_path, zmumu_path, capsys,
                                                     xrootd_server):
    path = _write(catalogue, tmp_path)
    assert main(["datasets", str(zmumu_path), "--datasets", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    mc = catalogue["local"][0]
    mine = [r for r in rows if r["dataset"] == mc.name]
    assert len(mine) == len(mc.files)
    for row, f in zip(mine, mc.files, strict=True):
        assert row["size"] == Path(f).stat().st_size and row["entries"] == 12_000
        assert row["served_by"] == row["replicas"][0] and row["replicas"][0].startswith("root://")
        assert 0 < row["needed_bytes"] < row["size"]
    assert main(["datasets", "--datasets", str(path), "--check"]) == 0
    text = capsys.readouterr().out
    first = mine[0]
    assert f"{mc.name}: {len(mc.files)} file(s)" in text and first["name"] in text
    assert f"1. {first['replicas'][0]} [XRD_SITE] <- served" in text
    assert f"2. {first['replicas'][1]} [WEB_SITE]" in text
    out = tmp_path / "out"
    assert main(["run", str(zmumu_path), "--datasets", str(path), "--output", str(out), "--no-progress",
                 "--chunk-size", "5000"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["files"]) == {r["name"] for r in rows}
    assert list(report["sources"]) == [f"root://127.0.0.1:{xrootd_server.port}"]
    assert report["sources"][f"root://127.0.0.1:{xrootd_server.port}"]["events"] == report["events"]["total"]


def test_a_replica_with_the_wrong_checksum_is_skipped(catalogue, rucio_env, tmp_path, zmumu_path, rucio_server,
                                                     xrootd_server, https_server):
    """Same size, same UUID, a few bytes changed: only the XRootD server's adler32 tells."""
    mc = catalogue["local"][0]
    f = mc.files[0]
    data = bytearray(Path(f).read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = xrootd_server.export_dir / "flipped" / Path(f).name
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(bytes(data))
    rel = Path("rucio") / mc.name / Path(f).name
    name = f"flipped_{uuid.uuid4().hex[:8]}"
    rucio_server.register_dataset("user.hr", name, [FileSpec(
        name=f"{name}.root", bytes=len(data), adler32=adler32_of(f),
        pfns={"XRD_SITE": xrootd_server.url(bad), "WEB_SITE": https_server.davs_url(rel)})])
    path = _write(catalogue, tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["datasets"] = {mc.name: {**catalogue["entries"][mc.name], "files": [f"rucio://user.hr:{name}"]}}
    path.write_text(yaml.safe_dump(doc))
    run = highrate.run(highrate.load_analysis(zmumu_path), highrate.load_datasets(path))
    (entry,) = run.result.files.values()
    assert all(r.startswith("davs://") for r in entry["served_by"])
    (failure,) = entry["replica_failures"]
    assert failure["replica"] == xrootd_server.url(bad)
    assert f"adler32 {adler32_of(bad)} on its server, the catalogue says {adler32_of(f)}" in failure["error"]

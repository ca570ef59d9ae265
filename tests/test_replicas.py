"""Replica lists and read-time failover over local copies (no server needed).

The same machinery serves root:// and https:// replicas (tests/test_remote.py); here each
replica is a local path so the failure modes can be made exactly: missing, truncated, another
file under the same name, and a copy that disappears in the middle of a run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from compare import assert_same_result

import highrate
from highrate.data.replicas import FileLocations, ReplicasExhausted, first_working, ordered
from highrate.errors import DatasetError, InputFileError

# how chunks are computed: each run computes, none takes an earlier run's results from the cache
pytestmark = pytest.mark.usefixtures("computing")


def _mc(sample: Path) -> highrate.Dataset:
    return next(d for d in highrate.load_datasets(sample) if d.is_mc)


def _with_replicas(dataset: highrate.Dataset, copies: dict[str, list[str]]) -> highrate.Dataset:
    from dataclasses import replace

    locations = {name: FileLocations(name, (*copies.get(name, []), name)) for name in dataset.files}
    return replace(dataset, locations=locations)


def _truncate(src: str, dst: Path) -> str:
    data = Path(src).read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return str(dst)


def test_broken_first_replicas_give_the_same_result_and_are_reported(sample, zmumu_path, tmp_path):
    analysis = highrate.load_analysis(zmumu_path)
    mc = _mc(sample)
    reference = highrate.run(analysis, [mc], options=highrate.RunOptions(chunk_size=5000)).result
    first, second = mc.files
    other = tmp_path / "other.root"  # a complete ROOT file, but a different one (UUID differs)
    shutil.copy(second, other)
    copies = {
        first: [str(tmp_path / "missing.root"), _truncate(first, tmp_path / "half.root")],
        second: [str(tmp_path / "missing2.root")],
    }
    run = highrate.run(analysis, [_with_replicas(mc, copies)], options=highrate.RunOptions(chunk_size=5000))
    assert_same_result(run.result, reference)
    files = run.result.files
    assert set(files[first]["served_by"]) == {first}
    assert sum(files[first]["served_by"].values()) == reference.counts[mc.name]["chunks"] // 2
    failed = {f["replica"]: f["error"] for f in files[first]["replica_failures"]}
    assert set(failed) == {str(tmp_path / "missing.root"), str(tmp_path / "half.root")}
    assert "does not exist" in failed[str(tmp_path / "missing.root")]
    assert "truncated" in failed[str(tmp_path / "half.root")]
    assert [f["replica"] for f in files[second]["replica_failures"]] == [str(tmp_path / "missing2.root")]
    del other


def test_a_replica_that_is_another_file_is_refused(sample, zmumu_path, tmp_path):
    """Chunks carry the UUID of the file as described: a same-named copy of another file is skipped."""
    analysis = highrate.load_analysis(zmumu_path)
    mc = _mc(sample)
    first, second = mc.files
    impostor = tmp_path / "impostor.root"
    shutil.copy(second, impostor)  # valid ROOT, right tree and branches, wrong events
    reference = highrate.run(analysis, [mc], options=highrate.RunOptions(chunk_size=5000)).result
    # describe the file from its true copy, then let chunks meet the impostor first
    from dataclasses import replace

    from highrate.execution import runner

    real_items = runner.work_items

    def impostor_first(dataset, files, options):
        return [replace(i, replicas=(str(impostor), *i.sources)) if i.url == first else i
                for i in real_items(dataset, files, options)]

    runner.work_items = impostor_first
    try:
        run = highrate.run(analysis, [mc], options=highrate.RunOptions(chunk_size=5000))
    finally:
        runner.work_items = real_items
    assert_same_result(run.result, reference)
    (failure, *_) = run.result.files[first]["replica_failures"]
    assert failure["replica"] == str(impostor)
    assert "another file (UUID" in failure["error"]


def test_every_replica_failing_names_each(sample, zmumu_path, tmp_path):
    analysis = highrate.load_analysis(zmumu_path)
    mc = _mc(sample)
    bad = FileLocations("lost.root", (str(tmp_path / "a.root"), str(tmp_path / "b.root")))
    from dataclasses import replace

    dataset = replace(mc, files=("lost.root",), locations={"lost.root": bad})
    with pytest.raises(InputFileError) as info:
        highrate.run(analysis, [dataset])
    text = str(info.value)
    assert "all 2 replicas failed" in text and "a.root" in text and "b.root" in text
    run = highrate.run(analysis, [dataset], options=highrate.RunOptions(skip_bad_files=True, max_failed_fraction=1.0))
    assert run.result.failed[0]["file"] == "lost.root"
    assert "all 2 replicas failed" in run.result.failed[0]["error"]


def test_replica_disappearing_mid_run_fails_over(sample, zmumu_path, tmp_path):
    """The first copy serves the first chunks, then vanishes: later chunks move to the second."""
    analysis = highrate.load_analysis(zmumu_path)
    mc = _mc(sample)
    reference = highrate.run(analysis, [mc], options=highrate.RunOptions(chunk_size=3000)).result
    copies = {}
    for i, f in enumerate(mc.files):
        copy = tmp_path / f"copy{i}.root"
        shutil.copy(f, copy)
        copies[f] = [str(copy)]
    seen = []

    def progress(p):
        if p.stage == "chunks" and p.done == 2 and not seen:
            seen.append(p.done)
            from highrate.data.io.files import forget

            for copy in copies.values():  # the storage loses the copies; open handles go too
                Path(copy[0]).unlink()
                forget(copy[0])

    run = highrate.run(analysis, [_with_replicas(mc, copies)], options=highrate.RunOptions(chunk_size=3000),
                       progress=progress)
    assert_same_result(run.result, reference)
    served = {}
    for f in mc.files:
        for replica, n in run.result.files[f]["served_by"].items():
            served[replica] = served.get(replica, 0) + n
    assert sum(served.values()) == reference.counts[mc.name]["chunks"]
    assert served[copies[mc.files[0]][0]] == 2  # the first two chunks, before the loss
    assert served[mc.files[0]] + served[mc.files[1]] == reference.counts[mc.name]["chunks"] - 2
    assert any(f["replica"] == copies[mc.files[1]][0] for f in run.result.files[mc.files[1]]["replica_failures"])


def test_recently_failed_replicas_are_tried_last():
    ordered_now = ordered(["x1", "x2", "x3"])
    assert ordered_now == ["x1", "x2", "x3"]

    def attempt(replica):
        if replica == "x1":
            raise OSError("down")
        return replica

    value, served, failures = first_working(["x1", "x2"], attempt, what="test")
    assert (value, served) == ("x2", "x2")
    assert failures[0]["replica"] == "x1"
    assert ordered(["x1", "x2", "x3"]) == ["x2", "x3", "x1"]
    value, served, failures = first_working(["x1", "x2"], attempt, what="test")
    assert served == "x2" and failures == []  # the suspect was not tried first again
    with pytest.raises(ReplicasExhausted):
        first_working(["x1"] * 1 + ["x1"], attempt, what="test")


def test_datasets_file_replica_entries(tmp_path, sample):
    mc = _mc(sample)
    doc = {"datasets": {"dy": {"files": [{"replicas": [str(tmp_path / "gone.root"), mc.files[0]]}, mc.files[1]],
                               "metadata": {"is_mc": True}}}}
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(doc))
    (dy,) = highrate.load_datasets(path)
    assert dy.files == (str(tmp_path / "gone.root"), mc.files[1])
    assert dy.where(dy.files[0]).replicas == (str(tmp_path / "gone.root"), mc.files[0])
    assert dy.where(dy.files[1]).replicas == (mc.files[1],)
    doc["datasets"]["dy"]["files"] = [{"replica": [mc.files[0]]}]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(DatasetError, match=r"\{replicas: \[URL, URL, ...\]\}"):
        highrate.load_datasets(path)
    doc["datasets"]["dy"]["files"] = [{"replicas": [mc.files[0], mc.files[0]]}]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(DatasetError, match="listed twice"):
        highrate.load_datasets(path)


def test_chunks_that_lose_every_replica_are_reported_with_each(sample, zmumu_path, tmp_path):
    analysis = highrate.load_analysis(zmumu_path)
    mc = _mc(sample)
    from dataclasses import replace

    first = mc.files[0]
    copy, missing = tmp_path / "only.root", tmp_path / "never.root"
    shutil.copy(first, copy)
    dataset = replace(mc, files=(first,), locations={first: FileLocations(first, (str(copy), str(missing)))})

    def progress(p):
        if p.stage == "chunks" and p.done == 1 and copy.exists():
            copy.unlink()
            from highrate.data.io.files import forget

            forget(str(copy))

    run = highrate.run(analysis, [dataset], progress=progress,
                       options=highrate.RunOptions(chunk_size=3000, retries=0, skip_bad_files=True))
    assert run.result.counts[mc.name]["chunks"] == 1
    lost = run.result.failed
    assert len(lost) == run.chunks - 1 and all("all 2 replicas failed" in f["error"] for f in lost)
    tried = {f["replica"] for f in run.result.files[first]["replica_failures"]}
    assert tried == {str(copy), str(missing)}
    assert run.result.files[first]["served_by"] == {str(copy): 1}

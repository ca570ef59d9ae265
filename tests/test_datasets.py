"""The datasets file: globs relative to its folder and sorted, URLs untouched, selection by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from highrate.data.datasets import Dataset, load_datasets, select
from highrate.errors import DatasetError


def write(folder: Path, text: str) -> Path:
    path = folder / "datasets.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``tmp_path/cfg/datasets.yaml``'s neighbours: files in ``cfg/data`` created out of order."""
    data = tmp_path / "cfg" / "data"
    data.mkdir(parents=True)
    for name in ("f_2.root", "f_10.root", "f_1.root", "g_1.root", "notes.txt"):
        (data / name).write_text("")
    (tmp_path / "elsewhere").mkdir()
    return tmp_path


def test_globs_are_relative_to_the_yaml_folder_and_sorted(tree, monkeypatch):
    monkeypatch.chdir(tree / "elsewhere")  # the working directory plays no part
    path = write(tree / "cfg", "datasets:\n  dy:\n    files: [data/f_*.root]\n    metadata: {is_mc: true}\n")
    (ds,) = load_datasets(path)
    data = tree / "cfg" / "data"
    assert ds.files == tuple(str(data / n) for n in ("f_1.root", "f_10.root", "f_2.root"))
    assert list(ds.files) == sorted(ds.files)


def test_relative_yaml_path_gives_absolute_files(tree, monkeypatch):
    monkeypatch.chdir(tree)
    path = write(tree / "cfg", "datasets:\n  dy:\n    files: [data/g_*.root, data/f_1.root]\n    metadata: {is_mc: true}\n")
    (ds,) = load_datasets(path.relative_to(tree))
    assert ds.files == (str(tree / "cfg" / "data" / "g_1.root"), str(tree / "cfg" / "data" / "f_1.root"))
    monkeypatch.chdir(tree / "elsewhere")  # workers may run elsewhere: the paths still hold
    assert all(Path(f).is_file() for f in ds.files)


def test_each_pattern_is_expanded_in_order(tree):
    path = write(tree / "cfg", "datasets:\n  dy:\n    files: ['data/g_*.root', 'data/f_?.root']\n    metadata: {is_mc: true}\n")
    (ds,) = load_datasets(path)
    assert [Path(f).name for f in ds.files] == ["g_1.root", "f_1.root", "f_2.root"]


def test_absolute_paths_and_missing_plain_paths_pass_through(tree):
    absolute = tree / "cfg" / "data" / "g_1.root"
    path = write(tree / "cfg", f"datasets:\n  dy:\n    files: ['{absolute}', later.root]\n    metadata: {{is_mc: true}}\n")
    (ds,) = load_datasets(path)
    # a missing plain path is reported when opened, so that --skip-bad-files can skip it
    assert ds.files == (str(absolute), str(tree / "cfg" / "later.root"))


def test_urls_pass_through_untouched(tmp_path):
    urls = ["root://eoscms.cern.ch//store/mc/DY/f.root", "https://example.org/data/f.root?sig=a[1]",
            "root://xrootd-cms.infn.it//store/data/x.root"]
    path = write(tmp_path, "datasets:\n  dy:\n    files:\n" + "".join(f"      - '{u}'\n" for u in urls)
                 + "    metadata: {is_mc: true}\n")
    (ds,) = load_datasets(path)
    assert ds.files == tuple(urls)


def test_a_single_string_is_a_list_of_one(tree):
    path = write(tree / "cfg", "datasets:\n  dy:\n    files: data/f_1.root\n    metadata: {is_mc: false}\n")
    (ds,) = load_datasets(path)
    assert ds.files == (str(tree / "cfg" / "data" / "f_1.root"),)
    assert ds.is_mc is False


def test_defaults_and_metadata(tmp_path):
    path = write(tmp_path, "datasets:\n  dy:\n    files: [a.root]\n    metadata: {is_mc: true, year: '2018'}\n"
                 "  data:\n    sample: DATA\n    files: [b.root]\n    tree: Friends\n    metadata: {is_mc: false}\n")
    dy, data = load_datasets(path)
    assert (dy.name, dy.sample, dy.tree, dict(dy.metadata)) == ("dy", "dy", "Events", {"is_mc": True, "year": "2018"})
    assert (data.name, data.sample, data.tree, data.is_mc) == ("data", "DATA", "Friends", False)


def test_a_file_listed_twice_is_an_error(tree):
    path = write(tree / "cfg", "datasets:\n  dy:\n    files: [data/f_*.root, data/f_2.root]\n    metadata: {is_mc: true}\n")
    with pytest.raises(DatasetError, match=r"dataset 'dy'.*f_2\.root.*twice"):
        load_datasets(path)


def test_missing_datasets_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"nope\.yaml"):
        load_datasets(tmp_path / "nope.yaml")


def test_invalid_yaml_is_named(tmp_path):
    path = write(tmp_path, "datasets:\n  dy: [\n")
    with pytest.raises(DatasetError, match="not valid YAML") as info:
        load_datasets(path)
    assert str(path) in str(info.value)


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path, "datasets:\n  dy:\n    files: [a.root]\n    metadata: {is_mc: true}\nlumi: 59.8\n")
    with pytest.raises(DatasetError, match="unknown top-level key 'lumi'"):
        load_datasets(path)


def test_is_mc_must_be_a_boolean(tmp_path):
    path = write(tmp_path, "datasets:\n  dy:\n    files: [a.root]\n    metadata: {is_mc: 'yes'}\n")
    with pytest.raises(DatasetError, match="dataset 'dy': metadata 'is_mc' must be true or false"):
        load_datasets(path)


DATASETS = [Dataset(n, n, (f"{n}.root",), metadata={"is_mc": True}) for n in ("dy", "ttbar", "data")]


def test_select_keeps_the_given_order():
    assert [d.name for d in select(DATASETS, ["data", "dy"])] == ["data", "dy"]
    assert select(DATASETS, None) == DATASETS
    assert select(DATASETS, []) == DATASETS


def test_select_errors_on_unknown_names():
    with pytest.raises(DatasetError, match=r"unknown dataset 'dyy'; known: dy, ttbar, data\. Did you mean 'dy'\?") as info:
        select(DATASETS, ["ttbar", "dyy"])
    assert isinstance(info.value, ValueError)


def test_remote_wildcards_are_refused_with_the_alternative(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text("datasets:\n  x:\n    files: ['root://eos.cern.ch//store/*.root']\n    metadata: {is_mc: true}\n")
    with pytest.raises(DatasetError, match=r"wildcards are expanded for local paths only.*rucio://SCOPE:NAME"):
        load_datasets(path)


@pytest.mark.parametrize(("url", "missing"), [("root:///store/f.root", "host"), ("https://", "host"),
                                              ("davs://site.example:2880/", "file path")])
def test_malformed_urls_are_named(tmp_path, url, missing):
    path = tmp_path / "d.yaml"
    path.write_text(f"datasets:\n  x:\n    files: ['{url}']\n    metadata: {{is_mc: true}}\n")
    with pytest.raises(DatasetError, match=rf"dataset 'x': '{url}' is not a file URL: it has no {missing}"):
        load_datasets(path)

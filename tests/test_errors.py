"""Bad input gives one clear message naming the file, dataset or key at fault.

Every case runs twice: through the Python API (``highrate.run`` raises a ``HighrateError`` that
is also the matching built-in) and through the command line (``highrate.cli.main.main`` returns
non-zero and prints the message, without a traceback).
"""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml

import highrate
from highrate.cli.main import main
from highrate.errors import (
    ChunkError,
    ConfigError,
    DatasetError,
    HighrateError,
    InputFileError,
    MissingBranchError,
    RunFailedError,
    UnknownQuantityError,
    UserCodeError,
)
from highrate.outputs.histograms import read_pickle
from highrate.outputs.write import write_outputs
from highrate.testing import generate_file, generate_sample

ZMUMU = Path(__file__).resolve().parents[1] / "examples" / "zmumu" / "analysis_nominal.py"
CHUNK = 1000  # entries per chunk in every run here
BASKET = 500  # entries per basket in every generated file
CORRUPT_BASKET = 3  # the basket of Muon_pt that is damaged: entries [1500, 2000)


def rewrite(src: Path, dst: Path, *, drop: str | None = None, start: int = 0, stop: int | None = None) -> Path:
    """Copy the ``Events`` tree of ``src`` (entries ``[start, stop)``, without branch ``drop``) to ``dst``."""
    with uproot.open(src) as f:
        arrays = f["Events"].arrays(entry_start=start, entry_stop=stop, how=dict)
    flat: dict[str, object] = {}
    jagged: dict[str, dict[str, ak.Array]] = {}
    for name, array in arrays.items():
        if name == drop:
            continue
        if array.ndim > 1:
            collection, _, field = name.partition("_")
            jagged.setdefault(collection, {})[field] = array
        elif not (name.startswith("n") and name[1:] in ("Muon", "Electron", "Jet")):
            flat[name] = ak.to_numpy(array)
    out = {**flat, **{c: ak.zip(fields) for c, fields in jagged.items()}}
    types = {k: v.dtype if isinstance(v, np.ndarray) else v.type.content for k, v in out.items()}
    with uproot.recreate(dst) as f:
        f.mktree("Events", types).extend(out)
    return dst


def corrupt_basket(path: Path, branch: str, basket: int) -> tuple[int, int]:
    """Zero bytes inside one basket's compressed payload; return the basket's entry range."""
    with uproot.open(path) as f:
        b = f["Events"][branch]
        seek = int(b.member("fBasketSeek")[basket])
        size = int(b.member("fBasketBytes")[basket])
        entries = b.member("fBasketEntry")
        first, last = int(entries[basket]), int(entries[basket + 1])
    raw = bytearray(path.read_bytes())
    keylen = struct.unpack(">h", raw[seek + 16 : seek + 18])[0]  # TKey: Nbytes, version, objlen, datime, keylen
    start = seek + keylen + 9 + 16  # past the key and the 9-byte compression header
    assert start + 256 < seek + size
    raw[start : start + 256] = bytes(256)
    path.write_bytes(bytes(raw))
    return first, last


@dataclass(frozen=True)
class Inputs:
    good: list[Path]  # three good files, 2000 entries each
    text: Path  # a text file named .root
    truncated: Path  # the first half of a good file
    no_hlt: Path  # a good file rewritten without HLT_IsoMu24
    corrupt: Path  # 4000 entries; one basket of Muon_pt damaged
    corrupt_basket: tuple[int, int]  # entry range of the damaged basket
    good_parts: list[Path]  # the entries of ``corrupt`` outside the failing chunk, undamaged
    ptt: Path  # zmumu with events.Muon.ptt in a skim cut
    god: Path  # zmumu with a histogram axis "MuonGod.pt[0]"


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    folder = tmp_path_factory.mktemp("bad_inputs")
    good = generate_sample(folder, name="good", events=6000, files=3, seed=11, is_mc=True, basket_events=BASKET)
    text = folder / "text.root"
    text.write_text("this is not a ROOT file\n")
    data = good[0].read_bytes()
    truncated = folder / "truncated.root"
    truncated.write_bytes(data[: len(data) // 2])
    no_hlt = rewrite(good[0], folder / "no_hlt.root", drop="HLT_IsoMu24")

    clean = generate_file(folder / "clean.root", events=4000, seed=12, basket_events=BASKET)
    corrupt = folder / "corrupt.root"
    shutil.copy(clean, corrupt)
    basket = corrupt_basket(corrupt, "Muon_pt", CORRUPT_BASKET)
    lo, hi = failing_chunk(basket)
    good_parts = [rewrite(clean, folder / "clean_a.root", stop=lo), rewrite(clean, folder / "clean_b.root", start=hi)]

    source = ZMUMU.read_text()
    ptt = folder / "zmumu_ptt.py"
    ptt.write_text(_replace_once(source, "ak.any(ev.Muon.pt >", "ak.any(ev.Muon.ptt >"))
    god = folder / "zmumu_god.py"
    god.write_text(_replace_once(source, 'Axis("MuonGood.pt[0]"', 'Axis("MuonGod.pt[0]"'))
    return Inputs(good, text, truncated, no_hlt, corrupt, basket, good_parts, ptt, god)


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def failing_chunk(basket: tuple[int, int]) -> tuple[int, int]:
    """The chunk that holds the damaged basket: chunks are [k*CHUNK, (k+1)*CHUNK) here."""
    lo = basket[0] // CHUNK * CHUNK
    assert basket[1] <= lo + CHUNK
    return lo, lo + CHUNK


def write_datasets(folder: Path, files: list[Path | str], *, tree: str = "Events") -> Path:
    path = folder / "datasets.yaml"
    entry = {"files": [str(f) for f in files], "tree": tree, "metadata": {"is_mc": True}}
    path.write_text(yaml.safe_dump({"datasets": {"dy": entry}}))
    return path


@pytest.fixture(params=["api", "cli"])
def attempt(request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """``attempt(datasets_yaml, analysis, expect)``: run and return the one error message."""

    def go(datasets: Path, analysis: Path = ZMUMU, expect: tuple[type[BaseException], ...] = ()) -> str:
        if request.param == "api":
            with pytest.raises(HighrateError) as info:
                highrate.run(
                    highrate.load_analysis(analysis), highrate.load_datasets(datasets),
                    options=highrate.RunOptions(chunk_size=CHUNK),
                )
            for cls in expect:
                assert isinstance(info.value, cls), (type(info.value).__mro__, cls)
            message = str(info.value)
        else:
            code = main(["run", str(analysis), "--datasets", str(datasets), "--output", str(tmp_path / "out"),
                         "--chunk-size", str(CHUNK), "--no-progress"])
            captured = capsys.readouterr()
            assert code != 0
            assert "Traceback" not in captured.out + captured.err
            assert captured.err.count("error:") == 1, captured.err
            message = captured.err.split("error:", 1)[1].strip()
        assert "\n" not in message, message  # one message, on one line
        return message

    return go


def test_error_classes_are_also_builtins():
    assert issubclass(InputFileError, OSError)
    assert issubclass(MissingBranchError, KeyError) and issubclass(MissingBranchError, InputFileError)
    assert issubclass(DatasetError, ValueError) and issubclass(DatasetError, ConfigError)
    assert issubclass(UnknownQuantityError, KeyError) and issubclass(UnknownQuantityError, ValueError)
    assert issubclass(ChunkError, RuntimeError)
    assert issubclass(UserCodeError, RuntimeError) and issubclass(RunFailedError, RuntimeError)
    assert not issubclass(UserCodeError, (InputFileError, ConfigError))  # a bug in the code is no bad input
    for cls in (InputFileError, MissingBranchError, DatasetError, UnknownQuantityError, ChunkError, UserCodeError,
                RunFailedError):
        assert issubclass(cls, HighrateError)
    assert str(MissingBranchError("no 'x' here")) == "no 'x' here"  # not quoted like a KeyError


def test_missing_file_is_named(attempt, inputs, tmp_path):
    missing = tmp_path / "nowhere" / "missing.root"
    message = attempt(write_datasets(tmp_path, [*inputs.good[:1], missing]), expect=(InputFileError, OSError))
    assert message.count(str(missing)) == 1
    assert "does not exist" in message
    assert "'dy'" in message
    assert "--skip-bad-files" in message


def test_text_file_is_not_root(attempt, inputs, tmp_path):
    message = attempt(write_datasets(tmp_path, [inputs.text]), expect=(InputFileError, OSError))
    assert message.count(str(inputs.text)) == 1
    assert "not a ROOT file" in message


def test_truncated_file_is_reported_when_opened(attempt, inputs, tmp_path):
    message = attempt(write_datasets(tmp_path, [inputs.truncated]), expect=(InputFileError, OSError))
    assert message.count(str(inputs.truncated)) == 1
    assert "truncated" in message
    assert "entries" not in message  # found when the file is opened, not in the middle of a chunk


def test_missing_tree_lists_the_trees_and_suggests_events(attempt, inputs, tmp_path):
    message = attempt(write_datasets(tmp_path, inputs.good[:1], tree="Eventz"), expect=(InputFileError, OSError))
    assert message.count(str(inputs.good[0])) == 1
    assert "'Eventz'" in message
    assert "'Runs'" in message and "'LuminosityBlocks'" in message
    assert "Did you mean 'Events'?" in message


@pytest.mark.parametrize("position", ["first", "last"])
def test_missing_branch_names_branch_and_file(attempt, inputs, tmp_path, position):
    files = [inputs.no_hlt, *inputs.good] if position == "first" else [*inputs.good, inputs.no_hlt]
    message = attempt(write_datasets(tmp_path, files), expect=(MissingBranchError, KeyError, OSError))
    assert "'HLT_IsoMu24'" in message
    assert message.count(str(inputs.no_hlt)) == 1
    assert "--skip-bad-files" in message


def test_branch_missing_in_every_file_names_field_and_file(attempt, inputs, tmp_path):
    # with no file that has it, highrate cannot tell a typo from a missing branch
    message = attempt(write_datasets(tmp_path, [inputs.no_hlt]), expect=(KeyError,))
    assert "IsoMu24" in message
    assert "skim cut 'HLT_IsoMu24'" in message
    assert str(inputs.no_hlt) in message


def test_unknown_field_in_a_cut_names_the_cut_and_suggests(attempt, inputs, tmp_path):
    message = attempt(write_datasets(tmp_path, inputs.good[:1]), inputs.ptt,
                      expect=(UnknownQuantityError, ConfigError, KeyError, ValueError))
    assert "skim cut 'muon_pt18'" in message
    assert "'ptt'" in message
    assert "Did you mean 'pt'" in message


def test_unknown_field_read_by_item_names_the_cut_and_suggests(attempt, inputs, tmp_path):
    analysis = tmp_path / "zmumu_item.py"
    analysis.write_text(_replace_once(ZMUMU.read_text(), "ak.any(ev.Muon.pt >", 'ak.any(ev.Muon["ptt"] >'))
    message = attempt(write_datasets(tmp_path, inputs.good[:1]), analysis, expect=(UnknownQuantityError,))
    assert "skim cut 'muon_pt18'" in message and "'ptt'" in message
    assert "Did you mean 'pt'" in message


def test_unknown_histogram_quantity_names_the_histogram_and_suggests(attempt, inputs, tmp_path):
    message = attempt(write_datasets(tmp_path, inputs.good[:1]), inputs.god,
                      expect=(UnknownQuantityError, ConfigError, KeyError, ValueError))
    assert "histogram 'MuonGood_pt_1'" in message
    assert "'MuonGod'" in message
    assert "Did you mean 'MuonGood'" in message


DATASET_TYPOS = {
    "files_typo": ("datasets:\n  dy:\n    filez: [a.root]\n    metadata: {is_mc: true}\n",
                   ["dataset 'dy'", "'filez'", "Did you mean 'files'?"]),
    "no_is_mc": ("datasets:\n  dy:\n    files: [a.root]\n    metadata: {year: '2018'}\n",
                 ["dataset 'dy'", "'is_mc'"]),
    "no_metadata": ("datasets:\n  dy:\n    files: [a.root]\n", ["dataset 'dy'", "'is_mc'"]),
    "glob_matches_nothing": ("datasets:\n  dy:\n    files: [nothing/*.root]\n    metadata: {is_mc: true}\n",
                             ["dataset 'dy'", "'nothing/*.root'", "matches no files"]),
    "glob_with_brackets": ("datasets:\n  dy:\n    files: ['data/[ab]*.root']\n    metadata: {is_mc: true}\n",
                           ["dataset 'dy'", "'data/[ab]*.root'", "matches no files"]),
    "top_level_list": ("- dy\n- data\n", ["'datasets:'", "list"]),
    "datasets_is_a_list": ("datasets:\n  - dy\n", ["'datasets'", "list"]),
    "entry_is_a_list": ("datasets:\n  dy: [a.root]\n", ["dataset 'dy'", "mapping"]),
    "datasets_key_typo": ("dataset:\n  dy:\n    files: [a.root]\n    metadata: {is_mc: true}\n",
                          ["'dataset'", "Did you mean 'datasets'"]),
    "no_datasets": ("datasets: {}\n", ["no datasets"]),
}


@pytest.mark.parametrize("case", list(DATASET_TYPOS))
def test_datasets_file_mistake_is_named(attempt, tmp_path, case):
    text, expected = DATASET_TYPOS[case]
    path = tmp_path / "datasets.yaml"
    path.write_text(text)
    (tmp_path / "a.root").write_text("never opened")
    message = attempt(path, expect=(DatasetError, ValueError))
    assert message.count(str(path)) == 1
    for part in expected:
        assert part in message, (part, message)
    if "Did you mean" in message:  # the suggestion is a valid name, never the mistake itself
        assert not any(f"Did you mean {bad}" in message for bad in ("'filez'", "'dataset'?"))


def test_corrupt_basket_breaks_only_its_entry_range(inputs):
    lo, hi = inputs.corrupt_basket
    tree = uproot.open(inputs.corrupt)["Events"]
    with pytest.raises(Exception, match=r"(?i)corrupt|decompress|compression"):
        tree["Muon_pt"].array(entry_start=lo, entry_stop=hi)
    assert len(tree["Muon_pt"].array(entry_start=0, entry_stop=lo)) == lo
    assert len(tree["Muon_pt"].array(entry_start=hi, entry_stop=tree.num_entries)) == tree.num_entries - hi


def _run_skipping(mode: str, datasets: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict, dict]:
    """Run zmumu with --skip-bad-files; return report.json and the histograms."""
    if mode == "api":
        analysis = highrate.load_analysis(ZMUMU)
        options = highrate.RunOptions(chunk_size=CHUNK, skip_bad_files=True)
        outcome = highrate.run(analysis, highrate.load_datasets(datasets), options=options)
        write_outputs(out, outcome, analysis, options)
    else:
        code = main(["run", str(ZMUMU), "--datasets", str(datasets), "--output", str(out),
                     "--chunk-size", str(CHUNK), "--skip-bad-files", "--no-progress"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "Traceback" not in captured.err
        assert "2 chunk(s) failed" in captured.err
    return json.loads((out / "report.json").read_text()), read_pickle(out / "histograms.pkl")


@pytest.mark.parametrize("mode", ["api", "cli"])
def test_skip_bad_files_skips_exactly_the_bad_chunks(inputs, tmp_path, capsys, mode):
    files = [*inputs.good, inputs.text, inputs.corrupt]
    report, hists = _run_skipping(mode, write_datasets(tmp_path, files), tmp_path / "out", capsys)

    lo, hi = failing_chunk(inputs.corrupt_basket)
    failed = {f["file"]: f for f in report["failed_chunks"]}
    assert set(failed) == {str(inputs.text), str(inputs.corrupt)}
    text = failed[str(inputs.text)]
    assert (text["entry_start"], text["entry_stop"]) == (None, None)  # the whole file
    assert "not a ROOT file" in text["error"]
    bad = failed[str(inputs.corrupt)]
    assert (bad["dataset"], bad["entry_start"], bad["entry_stop"]) == ("dy", lo, hi)
    assert report["chunks"]["failed"] == 2

    entries = sum(uproot.open(f)["Events"].num_entries for f in [*inputs.good, inputs.corrupt])
    assert entries == 3 * 2000 + 4000
    assert report["events"]["total"] == entries - (hi - lo)

    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    good_parts = [*inputs.good, *inputs.good_parts]
    assert sum(uproot.open(f)["Events"].num_entries for f in good_parts) == entries - (hi - lo)
    analysis = highrate.load_analysis(ZMUMU)
    reference = highrate.run(analysis, highrate.load_datasets(write_datasets(reference_dir, good_parts)),
                             options=highrate.RunOptions(chunk_size=CHUNK)).result
    assert reference.failed == []
    assert reference.counts["dy"]["total"] == report["events"]["total"]
    assert reference.counts["dy"]["preselected"] == report["events"]["preselected"]
    expected = dict(reference.histograms)  # histograms.pkl is keyed like Result.histograms
    assert set(hists) == set(expected)
    for key, h in expected.items():
        np.testing.assert_array_equal(hists[key].values(), h.values(), err_msg=str(key))
        np.testing.assert_array_equal(hists[key].variances(), h.variances(), err_msg=str(key))
    mll = hists[("mll", "dy", "baseline", "nominal")]
    assert mll.values().sum() > 0
    assert mll.values().sum() == expected[("mll", "dy", "baseline", "nominal")].values().sum()
    assert mll.variances().sum() == expected[("mll", "dy", "baseline", "nominal")].variances().sum()


def test_corrupt_chunk_without_skip_names_file_and_range(attempt, inputs, tmp_path):
    message = attempt(write_datasets(tmp_path, [*inputs.good, inputs.corrupt]), expect=(InputFileError, OSError))
    lo, hi = failing_chunk(inputs.corrupt_basket)
    assert message.count(str(inputs.corrupt)) == 1
    assert f"[{lo}, {hi})" in message
    assert "--skip-bad-files" in message


def test_missing_dataset_metadata_is_named(sample, tmp_path):
    """A weight reading meta["target_lumi"] on a dataset without it: the key, the stage and the fix."""
    import highrate
    from highrate import Analysis, Axis, Histogram, Weight
    from highrate.errors import ConfigError

    analysis = Analysis(name="needs_lumi", weights=[Weight("norm", lambda ev, params, meta: meta["target_lumi"] * ev.genWeight)],
                        histograms=[Histogram("met", Axis("MET.pt", 10, 0, 100))])
    mc = next(d for d in highrate.load_datasets(sample) if d.is_mc)
    with pytest.raises(ConfigError, match=r"weight 'norm': the dataset's metadata has no 'target_lumi' .*add 'target_lumi: \.\.\.'"):
        highrate.run(analysis, [mc])

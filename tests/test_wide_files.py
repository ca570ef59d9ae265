"""CMSSW-like files (over 1000 branches, Runs and LuminosityBlocks trees, LZMA or ZLIB) run unchanged.

Real NanoAOD has 1,000-2,700 branches of which an analysis reads a handful: the run must read
only those branches' baskets, open each file once per process, and still give exactly the
histograms and cutflow of the independent numpy computation in reference_zmumu.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import uproot
from compare import assert_matches_reference
from reference_zmumu import analyse, combine, read

import highrate
from highrate.data.io import files as files_module
from highrate.testing import generate_file

EXTRA = 1200  # extra branches: about 1250 in all, like a slim CMSSW NanoAOD
EVENTS = 3000
BASKET = 1000
CHUNK = 1000
MC, DATA = "DYJetsToLL_wide", "SingleMuon_wide"

MC_BRANCHES = {
    "PV_npvsGood", "Flag_goodVertices", "HLT_IsoMu24", "genWeight", "nMuon", "Muon_pt", "Muon_eta",
    "Muon_phi", "Muon_mass", "Muon_charge", "Muon_tightId", "Muon_pfRelIso04_all", "nJet", "Jet_pt",
    "Jet_eta", "Jet_jetId",
}
DATA_BRANCHES = MC_BRANCHES - {"genWeight"}

DATASETS_YAML = f"""\
datasets:
  {MC}:
    sample: DYJetsToLL
    files: [mc/*.root]
    tree: Events
    metadata: {{is_mc: true, year: "2018", xsec: 6077.22}}
  {DATA}:
    sample: DATA_SingleMuon
    files: [data/*.root]
    tree: Events
    metadata: {{is_mc: false, year: "2018", era: "A"}}
"""


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> dict:
    """Three wide files (MC LZMA, data LZMA, data ZLIB), one run over them, and the truth."""
    out = tmp_path_factory.mktemp("wide")
    common = dict(events=EVENTS, basket_events=BASKET, extra_branches=EXTRA)
    # LZMA level 1 rather than CMS's 9: the same format, a fraction of the writing time
    mc = generate_file(out / "mc" / "DY_lzma.root", seed=21, is_mc=True, compression="lzma", level=1,
                       **common)
    data = [
        generate_file(out / "data" / "SingleMuon_lzma.root", seed=22, is_mc=False, compression="lzma",
                      level=1, **common),
        generate_file(out / "data" / "SingleMuon_zlib.root", seed=23, is_mc=False, compression="zlib",
                      run=315300, **common),
    ]
    yaml_path = out / "datasets.yaml"
    yaml_path.write_text(DATASETS_YAML, encoding="utf-8")
    datasets = highrate.load_datasets(yaml_path)
    truth = {
        d.name: combine([analyse(read(f, is_mc=d.is_mc), is_mc=d.is_mc) for f in d.files])
        for d in datasets
    }
    analysis = highrate.load_analysis(Path(__file__).resolve().parents[1] / "examples/zmumu/analysis_nominal.py")

    # count the files highrate opens during the run (sequential executor: all in this process)
    urls = [str(p) for p in (mc, *data)]
    for url in urls:
        files_module.forget(url)
    opened: list[str] = []
    real_open = uproot.open

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(uproot, "open", counting_open)  # highrate imports uproot where it opens a file
        outcome = highrate.run(
            analysis, datasets, options=highrate.RunOptions(executor="sequential", chunk_size=CHUNK)
        )
    yield {"datasets": datasets, "truth": truth, "outcome": outcome, "opened": opened,
           "files": {MC: [mc], DATA: data}, "urls": urls}
    for url in urls:
        files_module.forget(url)


def basket_tags(path: Path, branch) -> set[bytes]:
    """Compression algorithm tags (b"XZ", b"ZL", ...) of the first block of each basket."""
    tags = set()
    with open(path, "rb") as f:
        for seek in np.asarray(branch.member("fBasketSeek"))[: branch.num_baskets]:
            f.seek(int(seek))
            head = f.read(18)
            objlen, keylen = int.from_bytes(head[6:10], "big"), int.from_bytes(head[14:16], "big")
            total = int.from_bytes(head[0:4], "big")
            if total - keylen != objlen:  # a compressed basket
                f.seek(int(seek) + keylen)
                tags.add(f.read(2))
    return tags


def test_files_look_like_cmssw(wide):
    expected = {MC: {b"XZ"}, DATA: {b"XZ", b"ZL"}}
    for name, paths in wide["files"].items():
        tags: set[bytes] = set()
        for path in paths:
            with uproot.open(path) as f:
                classes = {k.split(";")[0]: v for k, v in f.classnames().items()}
                assert classes == {"Events": "TTree", "Runs": "TTree", "LuminosityBlocks": "TTree"}
                tree = f["Events"]
                assert len(tree.keys()) > 1000
                assert tree.num_entries == EVENTS
                assert f["Runs"].num_entries >= 1 and f["LuminosityBlocks"].num_entries >= 1
                for branch in ("Muon_pt", "event", "Tau_pt"):
                    tags |= basket_tags(path, tree[branch])
        assert tags == expected[name], name
    # the run saw every branch as a usable column, not only those the analysis reads
    for infos in wide["outcome"].files.values():
        for info in infos:
            assert len(info.branches) > 1000 and info.other_branches == ()


def test_histograms_and_cutflow_equal_numpy(wide):
    outcome, truth = wide["outcome"], wide["truth"]
    assert outcome.chunks == 3 * (EVENTS // CHUNK)
    for exp in truth.values():
        assert exp["cutflow"]["presel"] > 50  # a selection that selects something
    assert_matches_reference(outcome.result, truth)


def test_only_the_needed_branches_are_read(wide):
    outcome = wide["outcome"]
    for name, needed in [(MC, MC_BRANCHES), (DATA, DATA_BRANCHES)]:
        branches = outcome.plans[name].branches
        assert len(branches) == len(needed) and set(branches) == needed, name
        expected = file_bytes = 0
        for path in wide["files"][name]:
            file_bytes += path.stat().st_size
            with uproot.open(path) as f:
                tree = f["Events"]
                for b in needed:
                    expected += int(np.sum(tree[b].member("fBasketBytes")[: tree[b].num_baskets]))
        bytes_read = outcome.result.counts[name]["bytes_read"]
        assert bytes_read == expected, name
        assert bytes_read < 0.05 * file_bytes, (name, bytes_read / file_bytes)


def test_each_file_opened_once(wide):
    """No file is opened by uproot more than once (3 chunks per file here). These are read
    without it: highrate's TTree reader describes them, the basket reader reads them."""
    assert all(n == 1 for n in Counter(wide["opened"]).values())
    assert wide["opened"] == []

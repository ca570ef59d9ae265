"""Saved columns: one Parquet file per chunk with values, weights and categories, checked against numpy."""

from __future__ import annotations

import dataclasses

import awkward as ak
import numpy as np
import pytest
from reference_zmumu import analyse, read

import highrate
from highrate import Columns, Cut


@pytest.fixture(scope="module")
def written(sample, zmumu_path, tmp_path_factory):
    mc = next(d for d in highrate.load_datasets(sample) if d.is_mc)
    base = highrate.load_analysis(zmumu_path)
    analysis = dataclasses.replace(
        base,
        categories={"baseline": (), "with_jet": (Cut("jet", lambda ev: ak.num(ev.JetGood) >= 1),)},
        save_columns=Columns({"mll": "mll", "mu1_pt": "MuonGood.pt[0]", "njet": "nJetGood", "jet1_pt": "JetGood.pt[0]",
                              "jets_pt": "JetGood.pt"}),
        source=None,
    )
    folder = tmp_path_factory.mktemp("columns")
    out = highrate.run(analysis, [mc], options=highrate.RunOptions(chunk_size=5000, columns_dir=str(folder)))
    parts = [analyse(read(f, is_mc=True), is_mc=True)["events"] for f in mc.files]
    ref = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return mc, out, folder, ref


def test_one_file_per_chunk_and_every_selected_event(written):
    mc, out, folder, ref = written
    files = sorted((folder / mc.name).glob("*.parquet"))
    assert len(files) == out.chunks
    table = ak.concatenate([ak.from_parquet(f) for f in files])
    assert len(table) == len(ref["mll"]) == out.result.cutflow[mc.name]["presel"]
    # chunks are written in any order: compare as sorted multisets
    np.testing.assert_array_equal(np.sort(ak.to_numpy(table.mll)), np.sort(ref["mll"]))
    np.testing.assert_array_equal(np.sort(ak.to_numpy(table.weight)), np.sort(ref["w"]))
    assert int(ak.sum(table.category_with_jet)) == int(ref["has_jet"].sum())
    assert bool(ak.all(table.category_baseline))
    np.testing.assert_array_equal(np.sort(ak.to_numpy(table.njet)), np.sort(ref["njet"]))


def test_missing_nth_object_is_nan_and_collections_are_lists(written):
    mc, _, folder, ref = written
    table = ak.concatenate([ak.from_parquet(f) for f in sorted((folder / mc.name).glob("*.parquet"))])
    jet1 = ak.to_numpy(table.jet1_pt)
    assert np.isnan(jet1).sum() == int((~ref["has_jet"]).sum())
    np.testing.assert_array_equal(np.sort(jet1[~np.isnan(jet1)]), np.sort(ref["jet_pt_1"][ref["has_jet"]]))
    assert ak.to_list(ak.num(table.jets_pt)) == ak.to_list(table.njet)
    np.testing.assert_array_equal(ak.to_numpy(ak.firsts(table.jets_pt[table.njet > 0])), jet1[~np.isnan(jet1)])

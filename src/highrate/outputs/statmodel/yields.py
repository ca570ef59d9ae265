"""Pre- and post-fit yields of every region from ``cabinetry.model_utils.prediction``: per sample,
their total and its uncertainty (all parameters, with their correlations after the fit), and the data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from highrate.base.optional import require
from highrate.outputs.statmodel.inputs import Channel


@dataclass
class StageYields:
    """One stage (``prefit``/``postfit``) of one region, over the bins of the model."""

    samples: list[str]
    by_sample: np.ndarray  # (samples, bins)
    total: np.ndarray
    uncertainty: np.ndarray  # of the total, per bin


@dataclass
class RegionYields:
    """A region: its channel, the mask of its bins in the model, the data, both stages."""

    channel: Channel
    keep: np.ndarray
    data: np.ndarray
    stages: dict[str, StageYields]


def region_yields(model: Any, data: Any, fit_results: Any, channels: list[Channel]) -> list[RegionYields]:
    """:class:`RegionYields` of ``channels``, pre-fit and post-fit (``fit_results``: cabinetry's)."""
    cabinetry = require("cabinetry", "fit", purpose="the pre- and post-fit yields")
    main = np.asarray(data, dtype=float)[: sum(model.config.channel_nbins.values())]
    predictions = {"prefit": cabinetry.model_utils.prediction(model),
                   "postfit": cabinetry.model_utils.prediction(model, fit_results=fit_results)}
    samples = list(model.config.samples)
    out = []
    for ch in channels:
        i = model.config.channels.index(ch.name)
        stages = {}
        for stage, p in predictions.items():
            by_sample = np.asarray(p.model_yields[i], dtype=float)
            stages[stage] = StageYields(samples, by_sample, by_sample.sum(axis=0),
                                        np.asarray(p.total_stdev_model_bins[i][-1], dtype=float))
        out.append(RegionYields(ch, ch.kept(), main[model.config.channel_slices[ch.name]], stages))
    return out

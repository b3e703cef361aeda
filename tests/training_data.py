"""A small, learnable training set committed to a lake (for the classifier and launcher tests).

Segments of a few tracks whose class runs (thick / thin / water, runs of 5-60 segments) decide
the features the way the real ones behave (water low, flat and bright; thin ice a little higher;
thick ice high and rough) plus noise, so a classifier trained on them learns something within
an epoch or two.  Built and committed through the real training-set builder.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from seaice_tasks.is2.features import FEATURE_NAMES
from seaice_tasks.is2.training_set import TrainingSetConfig, build_training_set, commit_training_set
from seaice_tasks.storage import Lake, PartitionKey

GRANULE = "20191104195311_05940510"
SCENE = "20191104T192524_T06CZY"
DAY = dt.date(2019, 11, 4)

#: Per class (thick, thin, water): mean height (m), height sd (m), photon rate.
_HEIGHT = np.array([0.45, 0.12, 0.0])
_SD = np.array([0.12, 0.04, 0.02])
_RATE = np.array([4.0, 5.0, 9.0])


def learnable_frames(n_bins: int = 3000, tracks: int = 3, seed: int = 0) -> list[pd.DataFrame]:
    """``segments_labelled``-like frames, one per track (beam), labels in runs."""
    rng = np.random.default_rng(seed)
    frames = []
    for t, beam in enumerate(("gt1r", "gt2r", "gt3r")[:tracks]):
        labels = np.empty(n_bins, np.int64)
        i = 0
        while i < n_bins:
            cls = rng.choice(3, p=[0.6, 0.25, 0.15])
            run = int(rng.integers(5, 60))
            labels[i:i + run] = cls
            i += run
        bins = np.arange(2_000_000, 2_000_000 + n_bins)
        frame = pd.DataFrame({
            "granule": GRANULE, "beam": beam, "scene": SCENE, "bin_index": bins, "x_atc_m": bins * 2.0,
            "lat_deg": -75.0, "lon_deg": -170.0, "dt_s": 600.0 + t,
            "pixel_row": np.zeros(n_bins, np.int32), "pixel_col": np.zeros(n_bins, np.int32),
            "label_s2": labels.astype(np.uint8), "label_unet": np.full(n_bins, 255, np.uint8),
            "label": labels.astype(np.uint8), "label_source": "s2",
            "correction_row": np.full(n_bins, -1, np.int32), "n_photons": np.full(n_bins, 5, np.int32),
        })
        for name in FEATURE_NAMES:
            frame[name] = rng.normal(size=n_bins)
        frame["h_cor_mean_m"] = _HEIGHT[labels] + rng.normal(0, 0.05, n_bins)
        frame["rel_height_m"] = frame["h_cor_mean_m"] + rng.normal(0, 0.02, n_bins)
        frame["height_sd_m"] = _SD[labels] * rng.lognormal(0, 0.3, n_bins)
        frame["pcnt_mean"] = rng.poisson(_RATE[labels]).astype(np.float64)
        frame["pcnth_mean"] = frame["pcnt_mean"] / 2.0
        frame["geometry"] = [b"\x01\x01\x00\x00\x00" + bytes(16)] * n_bins
        frames.append(frame)
    return frames


def commit_learnable_training_set(lake: Lake, n_bins: int = 3000, seed: int = 0, name: str = "seaice",
                                  split: str = "blocks") -> PartitionKey:
    """Build and commit the training set; its key."""
    config = TrainingSetConfig(name=name, split=split, block_m=400.0)
    ts = build_training_set(learnable_frames(n_bins, seed=seed), config)
    return commit_training_set(lake, ts, config).key

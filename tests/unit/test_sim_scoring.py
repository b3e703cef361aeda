"""Scoring lake partitions against the simulator's truth (used by the demo summary)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from seaice_tasks.is2.resample import ResampleConfig
from seaice_tasks.products import LABELS_FILE, S2_LABELS, SEGMENTS_2M
from seaice_tasks.s2.scene_labels import S2LabelConfig
from seaice_tasks.sim.atl03 import SYSTEM_JITTER_M, truth_paths
from seaice_tasks.sim.s2 import TRUTH_CLASSES_NAME
from seaice_tasks.sim.scoring import expected_h_cor_m, score_labels, score_segments
from seaice_tasks.spark_jobs import resample as resample_job
from seaice_tasks.spark_jobs import s2_labels
from seaice_tasks.spark_jobs.runner import run_job
from seaice_tasks.storage import Lake

#: RMSE of the 2 m corrected heights may exceed the pure photon-noise floor by this factor
#: (background photons flagged as signal, sub-bin freeboard steps at floe edges).
RMSE_OVER_NOISE_MAX = 2.5
BIAS_MAX_M = 0.005
PHOTON_RATIO_TOL = 0.03


def test_score_segments_exact_and_shifted() -> None:
    truth = pd.DataFrame({"beam": ["gt1r"] * 3 + ["gt2r"], "x_atc_m": [10, 12, 14, 10],
                          "dac_m": [0.1, 0.1, 0.1, 0.0], "residual_m": [0.0, 0.01, 0.02, 0.0],
                          "freeboard_m": [0.3, 0.0, 0.5, 9.0], "n_signal_photons": [4, 4, 9, 1]})
    seg = pd.DataFrame({"x_atc_m": [10.0, 12.0, 16.0], "n_photons": [4, 4, 2],
                        "h_cor_mean_m": [0.4, 0.11, 0.0]})
    score = score_segments(seg, truth, "gt1r", jitter_m=0.1)
    assert (score.n_bins, score.n_unmatched, score.photons, score.truth_photons) == (2, 1, 8, 8)
    assert score.rmse_m == pytest.approx(0.0, abs=1e-12) and score.noise_m == pytest.approx(0.05)
    shifted = seg.assign(h_cor_mean_m=seg["h_cor_mean_m"] + 0.02)
    assert score_segments(shifted, truth, "gt1r", 0.1).bias_m == pytest.approx(0.02)
    assert list(expected_h_cor_m(truth)) == pytest.approx([0.4, 0.11, 0.62, 9.0])


def test_pipeline_outputs_score_well_against_truth(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lake = Lake(tmp_path / "lake")
    granule = Path(small_sim_day.atl03[0])
    run_job(resample_job.JOB, [str(granule)], lake, ResampleConfig(max_photons_per_chunk=200_000))
    truth = pd.read_parquet(truth_paths(small_sim_day.truth, granule.name).bins)
    keys = lake.partitions(SEGMENTS_2M.name)
    assert len(keys) == 3
    for key in keys:
        score = score_segments(lake.read_table(key).to_pandas(), truth, str(key.beam), SYSTEM_JITTER_M)
        assert score.n_unmatched == 0 and score.n_bins == lake.require(key).rows
        assert score.rmse_m < RMSE_OVER_NOISE_MAX * score.noise_m, score
        assert abs(score.bias_m) < BIAS_MAX_M, score
        assert abs(score.photons / score.truth_photons - 1) < PHOTON_RATIO_TOL, score

    scene = Path(small_sim_day.scenes[0])
    run_job(s2_labels.JOB, [str(scene)], lake, S2LabelConfig())
    key = lake.partitions(S2_LABELS.name)[0]
    with rasterio.MemoryFile(io.BytesIO(lake.open_file(key, LABELS_FILE))) as mem, mem.open() as ds:
        labels = ds.read(1)
    truth_path = small_sim_day.truth / str(key.scene) / TRUTH_CLASSES_NAME
    result = score_labels(labels, truth_path)
    assert result["pixel_accuracy"] > 0.85 and 0.5 < result["coverage"] <= 1.0
    with rasterio.open(truth_path) as ds:
        assert score_labels(labels, ds.read(1)) == result  # path or array
    assert score_labels(np.asarray(labels), truth_path)["n_evaluated"] > 0

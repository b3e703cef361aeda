"""Per-segment features: the authors' sliding windows, relative heights, differences, window centres."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seaice_tasks.errors import ConfigError
from seaice_tasks.is2.features import (
    FEATURE_NAMES,
    FEATURE_SETS,
    NOTEBOOK_FEATURES,
    PAPER_FEATURES,
    PARITY_FEATURES,
    resolve_features,
    segment_features,
    window_bounds,
    window_centres,
    window_index,
)
from seaice_tasks.schemas import FEATURE_FIELDS


def _reference_window_index(x: np.ndarray, radius: float) -> np.ndarray:
    """The authors' loop of METHOD §5.1, row by row (test oracle only)."""
    ids = np.full(x.size, -1)
    i, w = 0, 0
    while i < x.size:
        b = x[i]
        rows = [j for j in range(x.size) if b - radius < x[j] < b + radius]
        for j in rows:
            ids[j] = w
        i = rows[-1] + 1
        w += 1
    return ids


def _track(x: list[float], h: list[float], *, bins: list[int] | None = None) -> pd.DataFrame:
    n = len(x)
    return pd.DataFrame({
        "bin_index": bins if bins is not None else [int(v // 2) for v in x],
        "x_atc_m": x,
        "h_cor_mean_m": h,
        "h_cor_median_m": [v - 0.01 for v in h],
        "h_std_m": np.linspace(0.05, 0.1, n),
        "pcnth_mean": np.arange(n, dtype=float),
        "pcnt_mean": np.arange(n, dtype=float) * 2,
        "bcnt_mean": np.full(n, 3.0),
        "brate_mean": np.arange(n, dtype=float) ** 2,
        "n_photons": np.full(n, 12),
    })


# -- window_index ------------------------------------------------------------------------------------------------
def test_window_index_hand_computed_with_gap() -> None:
    # R = 5 km.  w0 anchored at 0: rows 0-2; w1 at 6000: 1000 < x < 11000 = rows 1-4 (overwrites 1, 2);
    # gap; w2 at 30000: rows 5-6; w3 at 40000: 35000 < x < 45000 = row 7 only.
    x = np.array([0, 2000, 4000, 6000, 8000, 30000, 32000, 40000], dtype=float)
    assert window_index(x, 5000.0).tolist() == [0, 1, 1, 1, 1, 2, 2, 3]
    starts, stops = window_bounds(x, 5000.0)
    assert starts.tolist() == [0, 1, 5, 7]
    assert stops.tolist() == [3, 5, 7, 8]


def test_window_index_strict_inequalities() -> None:
    # x = b + R is outside the window anchored at b, and b - R is outside the next.
    assert window_index(np.array([0.0, 5000.0]), 5000.0).tolist() == [0, 1]
    assert window_index(np.array([0.0, 4999.0, 9998.0]), 5000.0).tolist() == [0, 1, 1]


def test_window_index_matches_row_loop_oracle() -> None:
    rng = np.random.default_rng(3)
    x = np.sort(np.concatenate([rng.uniform(0, 30_000, 400), rng.uniform(60_000, 75_000, 200)]))
    assert window_index(x, 5000.0).tolist() == _reference_window_index(x, 5000.0).tolist()


def test_window_index_rejects_unsorted() -> None:
    with pytest.raises(ValueError, match="sorted"):
        window_index(np.array([0.0, 4.0, 2.0]), 5.0)


# -- segment_features --------------------------------------------------------------------------------------------
_X = [0.0, 2.0, 4.0, 6.0, 8.0, 20.0, 22.0]  # R = 5: windows rows 0-2, 1-4, 5-6; last writers [0,1,1,1,1,2,2]
_H = [0.0, 1.0, 0.5, 0.8, 0.9, 0.3, 0.4]


def test_segment_features_columns_and_index() -> None:
    seg = _track(_X, _H)
    seg.index = pd.Index([10, 11, 12, 13, 14, 15, 16])
    out = segment_features(seg, None, radius_m=5.0)
    assert list(out.columns) == list(FEATURE_NAMES) == [f.name for f in FEATURE_FIELDS]
    assert out.index.tolist() == seg.index.tolist()
    np.testing.assert_allclose(out["h_diff_m"], 0.01)
    np.testing.assert_array_equal(out["height_sd_m"], seg["h_std_m"])
    np.testing.assert_array_equal(out["brate_mean"], seg["brate_mean"])


def test_rel_height_label_free_uses_whole_window() -> None:
    out = segment_features(_track(_X, _H), None, radius_m=5.0, percentile=0.0)
    # references: w0 min(rows 0-2) = 0.0, w1 min(rows 1-4) = 0.5, w2 min(rows 5-6) = 0.3
    np.testing.assert_allclose(out["rel_height_m"], [0.0, 0.5, 0.0, 0.3, 0.4, 0.0, 0.1], atol=1e-12)
    assert out["rel_height_labels_m"].isna().all()  # no labels given


def test_rel_height_percentile_is_nanpercentile_of_window() -> None:
    out = segment_features(_track(_X, _H), None, radius_m=5.0, percentile=50.0)
    expected_ref = [np.nanpercentile(_H[0:3], 50)] + [np.nanpercentile(_H[1:5], 50)] * 4 \
        + [np.nanpercentile(_H[5:7], 50)] * 2
    np.testing.assert_allclose(out["rel_height_m"], np.array(_H) - np.array(expected_ref))


def test_rel_height_interpolates_windows_without_heights() -> None:
    h = [0.0, 1.0, 0.5, 0.8, 0.9, np.nan, np.nan]  # window 2 has no finite height
    out = segment_features(_track(_X, h), None, radius_m=5.0, percentile=0.0)
    assert out["rel_height_m"].iloc[:5].notna().all()
    assert out["rel_height_m"].iloc[5:].isna().all()  # h itself NaN
    # the reference (h - rel) is finite everywhere h is, and filled from neighbours otherwise
    ref = np.array(h) - out["rel_height_m"].to_numpy()
    np.testing.assert_allclose(ref[:5], [0.0, 0.5, 0.5, 0.5, 0.5])


def test_rel_height_labels_from_water_and_interpolated() -> None:
    labels = np.array([2, 0, 0, 0, 0, 0, 2], dtype=np.uint8)
    out = segment_features(_track(_X, _H), labels, radius_m=5.0)
    # w0 water min 0.0 (row 0); w1 has no water -> NaN; w2 water min 0.4 (row 6);
    # per-row [0, nan, nan, nan, nan, 0.4, 0.4] interpolated over rows -> 0.08 steps
    ref = np.array([0.0, 0.08, 0.16, 0.24, 0.32, 0.4, 0.4])
    np.testing.assert_allclose(out["rel_height_labels_m"], np.array(_H) - ref, atol=1e-12)
    # the label-free feature does not depend on labels
    free = segment_features(_track(_X, _H), None, radius_m=5.0)
    np.testing.assert_array_equal(out["rel_height_m"], free["rel_height_m"])


def test_rel_height_labels_all_nan_without_water() -> None:
    out = segment_features(_track(_X, _H), np.array([0, 1, 0, 255, 0, 1, 0], dtype=np.uint8), radius_m=5.0)
    assert out["rel_height_labels_m"].isna().all()
    assert out["rel_height_m"].notna().all()


def test_labels_length_checked() -> None:
    with pytest.raises(ValueError, match="labels"):
        segment_features(_track(_X, _H), np.zeros(3, dtype=np.uint8), radius_m=5.0)


def test_differences_nan_across_gaps() -> None:
    seg = _track([0.0, 2.0, 4.0, 10.0, 12.0], [0.1] * 5, bins=[0, 1, 2, 5, 6])
    seg["pcnt_mean"] = [1.0, 2.0, 4.0, 8.0, 16.0]
    seg["brate_mean"] = [10.0, 30.0, 20.0, 0.0, 5.0]
    out = segment_features(seg, None)
    np.testing.assert_array_equal(out["d_pcnt"], [np.nan, 1.0, 2.0, np.nan, 8.0])
    np.testing.assert_array_equal(out["d_brate"], [np.nan, 20.0, -10.0, np.nan, 5.0])


def test_segment_features_rejects_unsorted_rows() -> None:
    with pytest.raises(ValueError, match="sorted"):
        segment_features(_track([0.0, 4.0, 2.0], [0.0, 0.0, 0.0]), None)


# -- window_centres ----------------------------------------------------------------------------------------------
def test_window_centres_include_last_centre() -> None:
    centres = window_centres(np.arange(10), np.ones(10, bool), half=2)
    assert np.flatnonzero(centres).tolist() == [2, 3, 4, 5, 6, 7]  # 7 = last valid centre (authors miss it)


def test_window_centres_gaps_and_unusable_rows() -> None:
    bins = np.array([0, 1, 2, 3, 4, 6, 7, 8, 9, 10])
    assert np.flatnonzero(window_centres(bins, np.ones(10, bool))).tolist() == [2, 7]
    usable = np.ones(10, bool)
    usable[9] = False
    assert np.flatnonzero(window_centres(bins, usable)).tolist() == [2]
    repeated = np.array([0, 1, 2, 2, 3, 4, 5, 6])  # a repeated bin is not contiguous
    assert np.flatnonzero(window_centres(repeated, np.ones(8, bool))).tolist() == [5]


def test_window_centres_short_and_half_zero() -> None:
    assert not window_centres(np.arange(4), np.ones(4, bool), half=2).any()
    usable = np.array([True, False, True])
    assert window_centres(np.array([0, 5, 9]), usable, half=0).tolist() == [True, False, True]
    with pytest.raises(ValueError):
        window_centres(np.arange(3), np.ones(4, bool))


# -- feature sets ------------------------------------------------------------------------------------------------
def test_feature_sets() -> None:
    assert len(NOTEBOOK_FEATURES) == 8 and len(PAPER_FEATURES) == 6
    assert PARITY_FEATURES[2] == "rel_height_labels_m" and NOTEBOOK_FEATURES[2] == "rel_height_m"
    assert PARITY_FEATURES[:2] == NOTEBOOK_FEATURES[:2] and PARITY_FEATURES[3:] == NOTEBOOK_FEATURES[3:]
    for names in FEATURE_SETS.values():
        assert set(names) <= set(FEATURE_NAMES)
    assert resolve_features("parity") == PARITY_FEATURES
    assert resolve_features(("d_brate", "h_cor_mean_m")) == ("d_brate", "h_cor_mean_m")


@pytest.mark.parametrize(("spec", "match"), [
    ("paper6", "paper6"),
    (["h_cor_mean_m", "rel_height_min_elev"], "rel_height_min_elev"),
    (["h_cor_mean_m", "h_cor_mean_m"], "more than once"),
    ([], "empty"),
])
def test_resolve_features_errors(spec: str | list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        resolve_features(spec)


def test_robust_features_do_not_move_with_haze_or_a_height_offset() -> None:
    from seaice_tasks.is2.features import ROBUST_FEATURES

    rng = np.random.default_rng(5)
    n = 3000
    x = np.arange(n) * 2.0
    h = rng.uniform(0.2, 0.8, n)
    h[1000:1020] = 0.0  # a lead
    seg = _track(list(x), list(h))
    seg["n_photons"] = np.where(h == 0.0, 40, 14)
    seg["brate_mean"] = np.where(h == 0.0, 2e6, 6e6)
    names = [*ROBUST_FEATURES, "brate_rel"]
    base = segment_features(seg, None)[names]
    hazy = seg.assign(n_photons=seg["n_photons"] // 2, brate_mean=seg["brate_mean"] * 0.7,
                      h_cor_mean_m=seg["h_cor_mean_m"] + 0.4, h_cor_median_m=seg["h_cor_median_m"] + 0.4)
    moved = segment_features(hazy, None)[names]
    pd.testing.assert_frame_equal(base, moved, atol=1e-9)
    assert base["water_vote"].to_numpy()[1005:1015].min() == 1.0 and base["water_vote"].to_numpy()[:900].max() == 0.0
    assert base["brate_rel"].to_numpy()[1010] == pytest.approx(1 / 3)

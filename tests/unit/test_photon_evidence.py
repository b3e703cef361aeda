"""The photons' own evidence of open water and thin ice: what it finds, and what it ignores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seaice_tasks.errors import ConfigError
from seaice_tasks.is2.photon_evidence import PhotonEvidenceConfig, evidence_halo_rows, photon_evidence

THICK, THIN, WATER = 0, 1, 2


def _track(seed: int = 3, transmission: float = 1.0) -> tuple[pd.DataFrame, np.ndarray]:
    """20 km of 2 m bins: floes of 0.25-1.0 m freeboard (15 photons a bin in clear air), a specular lead,
    a dark lead, a thin-ice floe; ``transmission`` scales every photon rate (haze)."""
    rng = np.random.default_rng(seed)
    x = np.arange(10_000) * 2.0
    truth = np.full(x.size, THICK)
    truth[(x >= 4000) & (x < 4060)] = WATER  # specular, 60 m
    truth[(x >= 9000) & (x < 9100)] = WATER  # dark, 100 m
    truth[(x >= 14000) & (x < 14600)] = THIN  # thin ice, 600 m
    floes = np.repeat(rng.uniform(0.25, 1.0, 50), 200)  # 400 m floes
    freeboard = np.select([truth == WATER, truth == THIN], [0.0, 0.08], floes + rng.normal(0.0, 0.06, x.size))
    rate = np.select([(truth == WATER) & (x < 6000), truth == WATER, truth == THIN], [30.0, 1.2, 7.0], 15.0)
    n = np.maximum(rng.poisson(rate * transmission), 1)
    h = freeboard + rng.normal(0.0, 0.11, x.size) / np.sqrt(n)
    return pd.DataFrame({"x_atc_m": x, "n_photons": n, "h_cor_mean_m": h}), truth


def _scores(got: np.ndarray, truth: np.ndarray) -> dict[int, tuple[float, float]]:
    return {c: (float(np.mean(got[truth == c] == c)), float(np.mean(truth[got == c] == c)))
            for c in (THICK, THIN, WATER)}


def test_it_finds_specular_and_dark_leads_and_thin_ice() -> None:
    frame, truth = _track()
    ev = photon_evidence(frame)
    scores = _scores(ev["evidence_class"].to_numpy(), truth)
    assert min(scores[WATER]) > 0.9 and min(scores[THICK]) > 0.95, scores
    # thin ice is the weak class: a stretch of floes without a lead has no water level to be low against
    assert scores[THIN][0] > 0.9 and scores[THIN][1] > 0.6, scores
    assert np.median(ev["rate_rel"].to_numpy()[truth == THICK]) == pytest.approx(1.0, abs=0.05)


def test_haze_and_a_height_offset_do_not_move_it() -> None:
    frame, truth = _track(transmission=0.5)  # every rate halved: the relative rates stay where they were
    scores = _scores(photon_evidence(frame)["evidence_class"].to_numpy(), truth)
    assert min(scores[WATER]) > 0.8 and min(scores[THICK]) > 0.95, scores
    base = photon_evidence(frame)["evidence_class"].to_numpy()
    shifted = frame.assign(h_cor_mean_m=frame["h_cor_mean_m"] + 0.37)  # a tide or dynamic topography offset
    assert np.array_equal(photon_evidence(shifted)["evidence_class"].to_numpy(), base)


def test_a_bin_without_a_height_is_never_water_like() -> None:
    frame, _ = _track()
    frame.loc[4010:4012, "h_cor_mean_m"] = np.nan
    ev = photon_evidence(frame)
    assert not ev["water_like"].to_numpy()[4010:4013].any()
    assert np.isfinite(ev["height_above_low_m"].to_numpy()[:4000]).all()


def test_an_empty_track_and_the_halo() -> None:
    ev = photon_evidence(pd.DataFrame({"n_photons": [], "h_cor_mean_m": []}))
    assert len(ev) == 0 and ev["evidence_class"].dtype == np.uint8
    assert evidence_halo_rows(PhotonEvidenceConfig()) == 1250 + 5


@pytest.mark.parametrize("fields", [{"dark_rate": 1.2}, {"specular_rate": 0.9}, {"low_percentile": 80.0},
                                    {"water_vote": 0.0}, {"rate_window_m": 2.0}, {"smooth_bins": -1}])
def test_bad_settings_are_named(fields: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        PhotonEvidenceConfig.from_dict(fields)

"""Sea-surface estimators, freeboard and thickness on tracks whose answer is known (METHOD.md §9-§10)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from seaice_tasks.errors import ConfigError
from seaice_tasks.surface.freeboard import FreeboardConfig, freeboard_frame, track_flags
from seaice_tasks.surface.sea_surface import (
    FLAG_EXTRAPOLATED,
    FLAG_INTERPOLATED,
    FLAG_NO_WATER,
    FLAG_OWN_LEADS,
    SeaSurfaceConfig,
    lead_heights,
    lead_runs,
    nasa_lead_surface,
    running_nanmin,
    sea_surface,
)
from seaice_tasks.surface.thickness import ThicknessConfig, ice_thickness

SD = 0.05
N_PH = 9


def _track(n: int, leads: list[tuple[int, int]], surface: float | np.ndarray = 0.1, ice: float = 0.45,
           noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """``n`` consecutive 2 m bins; rows ``[a, b)`` of each lead are open water at ``surface``."""
    rng = np.random.default_rng(seed)
    x = np.arange(n, dtype=np.float64) * 2.0
    surf = np.broadcast_to(np.asarray(surface, dtype=np.float64), (n,))
    cls = np.zeros(n, dtype=np.uint8)
    for a, b in leads:
        cls[a:b] = 2
    h = np.where(cls == 2, surf, surf + ice) + noise * rng.standard_normal(n)
    return pd.DataFrame({
        "bin_index": np.arange(n, dtype=np.int64), "x_atc_m": x, "lat_deg": -75.0, "lon_deg": -170.0,
        "time_utc": pd.Timestamp("2019-11-04T20:00:00"), "n_photons": np.full(n, N_PH, dtype=np.int32),
        "class": cls, "h_cor_mean_m": h, "height_sd_m": np.full(n, SD),
        # the photon evidence agrees with the classes: water-like neighbours at the water level on the leads
        "water_vote": np.where(cls == 2, 1.0, 0.0), "height_above_low_m": np.where(cls == 2, 0.0, ice),
    })


def _surface(frame: pd.DataFrame, config: SeaSurfaceConfig | None = None) -> pd.DataFrame:
    return sea_surface(frame["x_atc_m"], frame["h_cor_mean_m"], frame["class"], config or SeaSurfaceConfig(),
                       height_sd_m=frame["height_sd_m"], n_photons=frame["n_photons"], bin_index=frame["bin_index"])


def test_lead_equation_is_the_papers_eq_2_and_3() -> None:
    """Two leads by hand: per-lead weights exp(-((h - h_min)/sigma)^2), inverse-variance combination."""
    h = np.array([0.00, 0.02, 0.10, 0.12])
    s = np.array([0.02, 0.02, 0.04, 0.04])
    starts, stops = np.array([0, 2]), np.array([2, 4])
    got, sigma, spread, n = nasa_lead_surface(h, s, starts, stops)
    w1 = np.array([1.0, math.exp(-1.0)])
    w2 = np.array([1.0, math.exp(-0.25)])
    a1, a2 = w1 / w1.sum(), w2 / w2.sum()
    h1, h2 = float(a1 @ h[:2]), float(a2 @ h[2:])
    v1, v2 = float(a1**2 @ s[:2] ** 2), float(a2**2 @ s[2:] ** 2)
    b1, b2 = (1 / v1) / (1 / v1 + 1 / v2), (1 / v2) / (1 / v1 + 1 / v2)
    assert got == pytest.approx(b1 * h1 + b2 * h2, abs=1e-12)
    assert sigma == pytest.approx(math.sqrt(b1**2 * v1 + b2**2 * v2), abs=1e-12)
    assert spread == pytest.approx(abs(h1 - h2) / math.sqrt(2.0), abs=1e-12) and n == 2
    # the authors' precedence bug exp(-(dh/sigma))**2 weighs the higher segments differently
    notebook, *_ = nasa_lead_surface(h, s, starts, stops, weight_form="notebook")
    assert abs(notebook - got) > 1e-4


def test_lead_runs_end_at_gaps_and_class_changes() -> None:
    is_lead = np.array([1, 1, 0, 1, 1, 1], dtype=bool)
    consecutive = np.array([1, 1, 1, 0, 1], dtype=bool)  # a data gap between rows 3 and 4
    starts, stops = lead_runs(is_lead, consecutive)
    assert starts.tolist() == [0, 3, 4] and stops.tolist() == [2, 4, 6]


def test_flat_sea_surface_is_recovered_by_every_estimator() -> None:
    """Noise-free ice over a flat sea with a lead every 5 km: all four estimators give the sea level."""
    n = 15_000  # 30 km
    leads = [(k, k + 20) for k in range(1000, n, 2500)]
    frame = _track(n, leads, surface=0.1)
    s = _surface(frame, SeaSurfaceConfig(lead_edge_trim_m=0.0))
    for name in ("minimum", "average", "nearest_minimum", "nasa", "nasa_smooth"):
        assert np.allclose(s[f"surface_{name}_m"], 0.1), name
    assert set(np.unique(s["surface_flag"])) <= {FLAG_OWN_LEADS, FLAG_INTERPOLATED, FLAG_EXTRAPOLATED}
    assert (s["window_leads"] >= 0).all()
    fb = freeboard_frame(frame, FreeboardConfig(surface=SeaSurfaceConfig(lead_edge_trim_m=0.0)))
    ice = fb["class"] == 0
    assert np.allclose(fb.loc[ice, "freeboard_m"], 0.45) and np.allclose(fb.loc[~ice, "freeboard_m"], 0.0)


def test_sloping_surface_is_interpolated_between_windows_with_leads() -> None:
    """Leads only at the ends of a sloping sea: the middle is interpolated along track, flagged."""
    n = 20_000  # 40 km
    x = np.arange(n) * 2.0
    slope = 0.05 + 2e-6 * x  # 8 cm over 40 km
    frame = _track(n, [(100, 140), (n - 140, n - 100)], surface=slope)
    s = _surface(frame, SeaSurfaceConfig(lead_edge_trim_m=0.0))
    mid = slice(n // 2 - 10, n // 2 + 10)
    assert (s["surface_flag"].to_numpy()[mid] == FLAG_INTERPOLATED).all()
    # linear between the lead windows' values: within the slope change across one window
    assert np.abs(s["surface_nasa_m"].to_numpy()[mid] - slope[mid]).max() < 0.015
    assert s["lead_distance_m"].to_numpy()[n // 2] == pytest.approx(x[n - 140] - x[n // 2], abs=1e-9)


def test_no_water_gives_no_surface_unless_the_thin_ice_fallback_is_asked_for() -> None:
    frame = _track(6000, [])
    frame.loc[3000:3010, "class"] = 1  # thin ice, no water
    s = _surface(frame)
    assert s["surface_m"].isna().all() and (s["surface_flag"] == FLAG_NO_WATER).all()
    fb = freeboard_frame(frame)
    assert fb["freeboard_m"].isna().all() and fb["far_from_lead"].all()
    assert "no_water" in track_flags(fb, FreeboardConfig())
    fallback = _surface(frame, SeaSurfaceConfig(lead_fallback="thin"))
    assert np.isfinite(fallback["surface_nasa_m"]).all()


def test_lead_edges_are_trimmed() -> None:
    """A lead whose edge bins are lifted by the footprint straddling the ice: trimming removes them."""
    frame = _track(5000, [(2000, 2030)], surface=0.0)
    frame.loc[[2000, 2029], "h_cor_mean_m"] = 0.2  # mixed ice/water bins at the ends
    frame.loc[[2000, 2029], "height_sd_m"] = 0.3
    untrimmed = _surface(frame, SeaSurfaceConfig(lead_edge_trim_m=0.0))["surface_average_m"].iloc[0]
    trimmed = _surface(frame, SeaSurfaceConfig(lead_edge_trim_m=2.0))["surface_average_m"].iloc[0]
    assert untrimmed == pytest.approx(0.4 / 30) and trimmed == pytest.approx(0.0)


def test_heights_above_the_cut_and_nan_heights_take_no_part() -> None:
    frame = _track(5000, [(2000, 2040)], surface=0.0)
    frame.loc[2010, "h_cor_mean_m"] = 50.0  # a cloud return classified as water
    frame.loc[100:120, "h_cor_mean_m"] = np.nan
    fb = freeboard_frame(frame)
    assert np.allclose(fb["surface_m"], 0.0)
    assert fb.loc[100:120, "freeboard_m"].isna().all() and np.isnan(fb.loc[2010, "freeboard_m"])
    assert np.isfinite(fb.loc[200:1000, "freeboard_m"]).all()


def test_uncertainties_propagate() -> None:
    frame = _track(8000, [(1000, 1050), (5000, 5050)], surface=0.0, noise=0.02, seed=3)
    fb = freeboard_frame(frame)
    seg = SD / math.sqrt(N_PH)
    sigma_surface = fb["surface_sigma_m"].to_numpy()
    assert (sigma_surface > 0).all()
    assert np.allclose(fb["freeboard_sigma_m"], np.hypot(seg, sigma_surface))
    ice = fb["class"] == 0
    assert (fb.loc[ice, "thickness_sigma_m"] > 0).all() and fb.loc[~ice, "thickness_m"].isna().all()


def test_running_minimum_restarts_at_gaps() -> None:
    x = np.array([0.0, 2.0, 4.0, 20_000.0, 20_002.0])
    v = np.array([0.3, 0.1, 0.2, 0.5, 0.4])
    assert running_nanmin(v, 5, x, 10_000.0).tolist() == [0.1, 0.1, 0.1, 0.4, 0.4]
    assert running_nanmin(v, 5, x, 1e9).tolist() == [0.1] * 5


def test_hydrostatic_thickness() -> None:
    hf = np.array([0.3, 0.6])
    cfg = ThicknessConfig(snow="constant", snow_depth_m=0.2)
    h, s, snow = ice_thickness(hf, np.full(2, 0.05), cfg)
    expected = (1024.0 * hf - (1024.0 - 300.0) * 0.2) / (1024.0 - 915.0)
    assert np.allclose(h, expected) and np.allclose(snow, 0.2) and (s > 0).all()
    # zero ice freeboard (snow = freeboard): h_i = rho_s / (rho_w - rho_i) * h_f
    h0, _, snow0 = ice_thickness(hf, np.full(2, 0.05), ThicknessConfig())
    assert np.allclose(h0, 300.0 / 109.0 * hf) and np.allclose(snow0, hf)


@pytest.mark.parametrize("bad", [{"reference": "lowest"}, {"lead_fallback": "ice"}, {"radius_m": 0.0},
                                 {"weight_form": "x"}, {"lead_edge_trim_m": -1.0}])
def test_bad_surface_configs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SeaSurfaceConfig.from_dict(bad)


def test_bad_thickness_config_is_refused() -> None:
    with pytest.raises(ConfigError):
        ThicknessConfig(rho_ice=1100.0)


def test_short_and_empty_tracks_are_flagged_not_errors() -> None:
    short = freeboard_frame(_track(300, [(100, 110)]))
    assert "short_track" in track_flags(short, FreeboardConfig())
    assert np.isfinite(short["freeboard_m"]).all()
    empty = freeboard_frame(_track(0, []))
    assert empty.empty and {"no_water", "short_track", "no_heights"} <= set(track_flags(empty, FreeboardConfig()))


def test_the_paper_recipe_differs_from_the_default_only_where_documented() -> None:
    """seaice_tasks.recipes: the paper's recipe is the default with the papers' labels, features, leads and surface."""
    from seaice_tasks.recipes import RECIPES, recipe, recipe_json

    default, paper = RECIPES["default"], recipe("paper")
    assert set(default) == set(paper) == {"colocate", "training_set", "classify", "freeboard"}
    differs = {stage: {k for k, v in paper[stage].to_dict().items() if default[stage].to_dict()[k] != v}
               for stage in paper}
    assert differs == {"colocate": {"label_policy"}, "training_set": {"features"}, "classify": {"water_vote_min"},
                       "freeboard": {"leads", "surface"}}
    for stage, text in recipe_json("paper").items():
        assert type(paper[stage]).from_json(text) == paper[stage]
    with pytest.raises(ConfigError, match="unknown recipe 'atl10'; known: default, paper"):
        recipe("atl10")


def test_mean_lead_heights_are_unbiased_where_eq2_reads_low() -> None:
    """Leads of ten 2 m segments with 3 cm noise on a flat sea at 0: Eq. 2 pulls each lead towards its lowest
    segment (the noise is as large as the weights' sigma), the inverse-variance mean does not."""
    rng = np.random.default_rng(11)
    n_leads, size, noise = 2000, 10, 0.03
    h = rng.normal(0.0, noise, n_leads * size)
    sigma = np.full(h.size, noise)
    starts = np.arange(n_leads) * size
    eq2, _ = lead_heights(h, sigma, starts, starts + size, "paper")
    mean, var = lead_heights(h, sigma, starts, starts + size, "mean")
    assert eq2.mean() < -0.01  # biased low by more than a centimetre
    assert abs(mean.mean()) < 3 * noise / math.sqrt(h.size)
    np.testing.assert_allclose(var, noise**2 / size)


def test_confirmed_leads_need_the_photons_and_fall_back_to_them() -> None:
    """``leads="confirmed"``: water the classifier finds but the photons do not confirm (here 12 cm of thin ice
    called water) is no lead; a track without the classifier's water takes the photons' leads."""
    frame = _track(6000, [(1000, 1040), (3000, 3040)], surface=0.0, ice=0.4)
    frame.loc[3000:3039, "h_cor_mean_m"] = 0.12
    frame.loc[3000:3039, ["water_vote", "height_above_low_m"]] = [0.0, 0.12]
    confirmed = freeboard_frame(frame)
    assert np.allclose(confirmed["surface_m"], 0.0)
    assert freeboard_frame(frame, FreeboardConfig(leads="classes"))["surface_m"].max() > 0.05
    blind = frame.assign(**{"class": np.zeros(len(frame), np.uint8)})
    photons: list[bool] = []
    fb = freeboard_frame(blind, photons=photons)
    assert photons == [True] and np.allclose(fb["surface_m"], 0.0)
    assert "no_water" not in track_flags(fb, FreeboardConfig())
    assert freeboard_frame(blind, FreeboardConfig(leads="classes"))["surface_m"].isna().all()

"""The simulator's truth world and day geometry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import ConfigError
from seaice_tasks.sim.geometry import (
    BEAM_SPACING_M,
    PAIR_SPACING_M,
    SimConfig,
    plan_day,
    to_lonlat,
)
from seaice_tasks.sim.world import TruthWorld, WorldConfig

SHOT_SPACING_M = 0.69


@pytest.fixture(scope="module")
def world() -> TruthWorld:
    return TruthWorld(WorldConfig())


def _profile(world: TruthWorld, length_m: float = 100_000.0) -> tuple[np.ndarray, np.ndarray]:
    s = np.arange(0.0, length_m, SHOT_SPACING_M)
    x = -300_000.0 + 0.6 * s
    y = -1_300_000.0 + 0.8 * s
    return world.classes_at(x, y), s


def test_class_fractions_match_config(world: TruthWorld) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-500e3, -400e3, 400_000)
    y = rng.uniform(-1.4e6, -1.3e6, 400_000)
    frac = np.bincount(world.classes_at(x, y), minlength=3) / x.size
    cfg = world.config
    assert frac[SeaIceClass.OPEN_WATER] == pytest.approx(cfg.water_fraction, abs=0.015)
    assert frac[SeaIceClass.THIN_ICE] == pytest.approx(cfg.thin_fraction, abs=0.02)
    assert frac[SeaIceClass.THICK_ICE] == pytest.approx(cfg.thick_fraction, abs=0.025)


def test_leads_have_a_heavy_tailed_width_distribution(world: TruthWorld) -> None:
    classes, _ = _profile(world)
    change = np.flatnonzero(np.diff(classes.astype(np.int16)) != 0) + 1
    starts = np.r_[0, change]
    runs_m = np.diff(np.r_[starts, classes.size]) * SHOT_SPACING_M
    water = runs_m[classes[starts] == SeaIceClass.OPEN_WATER]
    floes = runs_m[classes[starts] == SeaIceClass.THICK_ICE]
    assert water.size > 50 and floes.size > 100
    # many narrow leads, a few wide ones: median tens of metres or less, max far above it
    assert np.median(water) < 30.0 and water.max() > 5 * np.median(water)
    assert np.percentile(floes, 95) > 5 * np.percentile(floes, 5)


def test_freeboards_per_class(world: TruthWorld) -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(-500e3, -400e3, 200_000)
    y = rng.uniform(-1.4e6, -1.3e6, 200_000)
    classes, fb, rough = world.sample(x, y)
    cfg = world.config
    thick, thin, water = (classes == c for c in (0, 1, 2))
    assert fb[thick].min() >= cfg.thick_freeboard_m[0] and fb[thick].max() <= cfg.thick_freeboard_m[1]
    assert fb[thin].min() >= cfg.thin_freeboard_m[0] and fb[thin].max() <= cfg.thin_freeboard_m[1]
    assert np.all(fb[water] == 0.0)
    assert 0.3 < np.median(fb[thick]) < 0.7
    assert rough[water].max() < rough[thick].min()


def test_drift_shifts_the_field(world: TruthWorld) -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-500e3, -400e3, 50_000)
    y = rng.uniform(-1.4e6, -1.3e6, 50_000)
    shift = (350.0, -420.0)
    np.testing.assert_array_equal(world.classes_at(x + shift[0], y + shift[1], shift_m=shift),
                                  world.classes_at(x, y))
    assert np.mean(world.classes_at(x, y, shift_m=shift) != world.classes_at(x, y)) > 0.02


def test_sea_surface_is_not_flat(world: TruthWorld) -> None:
    s = np.linspace(0, 100_000, 2001)
    x, y = -450e3 + s, -1.35e6 + 0.3 * s
    resid = world.residual_m(x, y)
    ssh = world.sea_surface_m(x, y, 43_200.0)
    assert 0.1 < resid.max() - resid.min() < 2.0
    # a single sea level per 100 km is wrong by more than a decimetre somewhere
    assert np.max(np.abs(ssh - ssh.mean())) > 0.1
    assert np.all(np.abs(np.diff(resid)) < 0.01)  # smooth at 50 m steps
    tide_a = world.tide_ocean_m(x, y, 0.0)
    tide_b = world.tide_ocean_m(x, y, 6 * 3600.0)
    assert np.max(np.abs(tide_a - tide_b)) > 0.05


def test_world_is_deterministic_and_seeded() -> None:
    x = np.linspace(-450e3, -440e3, 20_000)
    y = np.full_like(x, -1.35e6)
    a = TruthWorld(WorldConfig(seed=7)).sample(x, y)
    b = TruthWorld(WorldConfig(seed=7)).sample(x, y)
    c = TruthWorld(WorldConfig(seed=8)).sample(x, y)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert np.any(a[0] != c[0])


def test_world_config_validation_and_json() -> None:
    cfg = WorldConfig(water_fraction=0.1, thin_fraction=0.1, floe_scales_m=(1000.0, 200.0))
    assert WorldConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError):
        WorldConfig(water_fraction=0.7, thin_fraction=0.4)
    with pytest.raises(ConfigError):
        WorldConfig(lead_width_alpha=1.0)
    day = SimConfig(world=cfg, granules=2)
    assert SimConfig.from_json(day.to_json()) == day


def test_plan_day_geometry() -> None:
    cfg = SimConfig(granules=3, km=50.0)
    plan = plan_day(cfg)
    assert plan == plan_day(cfg) and plan != plan_day(dataclasses.replace(cfg, seed=1))
    assert len(plan.tracks) == 3 and len(plan.scenes) == 3
    for track in plan.tracks:
        assert track.start_utc.date() == cfg.day
        lon, lat = to_lonlat(*track.beam_xy("gt2r", np.array([0.0, track.length_m])))
        assert np.all((lat > -78.5) & (lat < -69.5)) and np.all((lon > -180.5) & (lon < -139.5))
        x1, y1 = track.beam_xy("gt1l", 0.0)
        x2, y2 = track.beam_xy("gt1r", 0.0)
        x3, y3 = track.beam_xy("gt2l", 0.0)
        assert np.hypot(x2 - x1, y2 - y1) == pytest.approx(BEAM_SPACING_M)
        assert np.hypot(x3 - x1, y3 - y1) == pytest.approx(PAIR_SPACING_M)
    for scene in plan.scenes:
        assert np.hypot(*scene.drift_m) <= cfg.drift_max_m
        track = next(t for t in plan.tracks if t.granule == scene.track_granule)
        t_is2 = track.start_utc.timestamp() + track.duration_s / 2
        assert abs(scene.sensing_utc.timestamp() - t_is2) < 60 * 60 + track.duration_s
        assert scene.utm_epsg // 100 == 327

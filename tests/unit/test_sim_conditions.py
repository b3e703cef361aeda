"""Observing conditions of a simulated day: haze and thin cloud, night passes, spacecraft orientation.

Also: the clear, daylight, forward defaults write the same bytes as before these knobs existed,
and the registry of named days keeps its unseen days apart from every day already used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest

from seaice_tasks.constants import BEAMS, strong_beams
from seaice_tasks.errors import ConfigError
from seaice_tasks.io.atl03 import read_atl03_info
from seaice_tasks.sim.atl03 import (
    BACKGROUND_ALBEDO,
    BACKGROUND_NIGHT_RATE_HZ,
    PHOTON_KIND_AFTERPULSE,
    PHOTON_KIND_SURFACE,
    WEAK_BEAM_FACTOR,
    background_rate_hz,
    truth_paths,
    write_atl03_granule,
)
from seaice_tasks.sim.atl07 import write_atl07_atl10
from seaice_tasks.sim.atmosphere import CLOUD_BACKSCATTER_ALBEDO, AtmosphereConfig, transmission_profile
from seaice_tasks.sim.day import MANIFEST_FILE, simulate_day
from seaice_tasks.sim.days import DAYS, TRAINING, TUNING, UNSEEN, day, unseen_days
from seaice_tasks.sim.geometry import SimConfig, plan_day
from seaice_tasks.sim.world import TruthWorld

TRACK_KM = 5.0
HAZE_T = 0.5
#: Signal photons per shot under haze / clear (the same shots of the same world): Poisson noise of
#: ~18 k photons per strong beam is < 1 %.
SIGNAL_RATIO_TOL = 0.05
#: Afterpulses: 2 % of the signal, a few hundred per beam.
AFTERPULSE_RATIO_TOL = 0.2
#: Background rate ratio vs the model's expectation (a few thousand counts per beam).
BACKGROUND_RATIO_TOL = 0.04
#: ATL07 strong-beam segments under T = 0.5: ~150 photons need twice the track.
SEGMENT_LENGTH_RATIO = (1.7, 2.4)
#: Night: bckgrd_rate mean vs the night rate x albedo (~1500 counts per beam: 3 sigma ~ 8 %).
NIGHT_RATE_TOL = 0.12
STRONG_WEAK_RATIO = (3.3, 4.7)
#: sha256 of the small day's catalog files (tests/conftest.py small_sim_day), recorded before the
#: atmosphere, night and orientation knobs were added: at their defaults they change no byte.
#: Regenerate only for an intended change of the simulated files, and say why in the commit.
SMALL_DAY_CATALOG_SHA256 = {
    "icesat2/ATL03_20191104204017_00880510_006_01.h5":
        "b47e36fe3009c05e4a6a9b239bd5e585e6d3a22ea92585fe81de5e3637800767",
    "icesat2/ATL07-02_20191104204017_00880501_006_01.h5":
        "4c04c7a1523c45844cbd3db5a8e76ebe6cdb5b3f46895fce72a4cec7fb73c663",
    "icesat2/ATL10-02_20191104204017_00880501_006_01.h5":
        "4cd47a4a7ee7b380093ef53bd04209f6f8f1c6f681b8f462e0b5d9c1fe51ea56",
    "sentinel2/S2B_MSIL1C_20191104T202625_N0208_R000_T06CDG_20191104T202625/T06CDG_20191104T202625_B02.tif":
        "fbff9366fa0ccb53d83370dfb303371bb92a9c74cfafcb22757b39f2e7f43f9e",
    "sentinel2/S2B_MSIL1C_20191104T202625_N0208_R000_T06CDG_20191104T202625/T06CDG_20191104T202625_B03.tif":
        "e52ee54eb0d84cbd74d10de8da22d85ab1dc15dfe384ec5b2b02052b706d4a4c",
    "sentinel2/S2B_MSIL1C_20191104T202625_N0208_R000_T06CDG_20191104T202625/T06CDG_20191104T202625_B04.tif":
        "7b336e8995b180a119c7bb830bd1ac00e5c090f3bc65977983309baadb9f7255",
    "sentinel2/S2B_MSIL1C_20191104T202625_N0208_R000_T06CDG_20191104T202625/T06CDG_20191104T202625_B08.tif":
        "e64d626a6295a9e6b0450e6a03bdf87ff5f8d5380970b6a197d94b59cfcfaa94",
}


def _granule(root: Path, cfg: SimConfig) -> dict[str, Any]:
    """ATL03 + ATL07 of the first track of ``cfg``, with its truth tables."""
    track = plan_day(cfg).tracks[0]
    path = write_atl03_granule(TruthWorld(cfg.world), track, cfg, root, root / "truth")
    p07, p10 = write_atl07_atl10(path, root)
    paths = truth_paths(root / "truth", path.name)
    return {"atl03": path, "atl07": p07, "atl10": p10, "photons": pd.read_parquet(paths.photons),
            "bins": pd.read_parquet(paths.bins), "meta": json.loads(paths.meta.read_text()), "track": track}


@pytest.fixture(scope="module")
def clear_and_hazy(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same 5 km granule under a clear sky and under a uniform haze of T = 0.5."""
    root = tmp_path_factory.mktemp("haze")
    cfg = SimConfig(granules=1, km=TRACK_KM)
    hazy = dataclasses.replace(cfg, atmosphere=AtmosphereConfig(transmission=HAZE_T))
    return _granule(root / "clear", cfg), _granule(root / "hazy", hazy)


def _signal_per_beam(g: dict[str, Any], kind: int) -> dict[str, int]:
    ph = g["photons"]
    return {b: int(((ph.beam == b) & (ph.kind == kind)).sum()) for b in BEAMS}


def _mean_bckgrd_rate(path: Path, beam: str) -> float:
    with h5py.File(path, "r") as f:
        return float(np.mean(f[f"{beam}/bckgrd_atlas/bckgrd_rate"][:]))


def _strength_attrs(path: Path) -> dict[str, str]:
    with h5py.File(path, "r") as f:
        return {b: f[b].attrs["atlas_beam_type"].decode() for b in BEAMS if b in f}


# ---------------------------------------------------------------------------------------------
# Haze and thin cloud
# ---------------------------------------------------------------------------------------------


def test_transmission_scales_every_signal_rate(clear_and_hazy: tuple[dict[str, Any], dict[str, Any]]) -> None:
    clear, hazy = clear_and_hazy
    for kind, tol in ((PHOTON_KIND_SURFACE, SIGNAL_RATIO_TOL), (PHOTON_KIND_AFTERPULSE, AFTERPULSE_RATIO_TOL)):
        a, b = _signal_per_beam(clear, kind), _signal_per_beam(hazy, kind)
        for beam in BEAMS:
            assert b[beam] / a[beam] == pytest.approx(HAZE_T, rel=tol), (kind, beam)
    assert (hazy["bins"]["transmission"] == HAZE_T).all()
    assert (clear["bins"]["transmission"] == 1.0).all()
    assert hazy["meta"]["atmosphere"]["mean_transmission"] == pytest.approx(HAZE_T)
    assert hazy["meta"]["atmosphere"]["config"]["transmission"] == HAZE_T


def test_haze_leaves_geometry_and_truth_surface_unchanged(
        clear_and_hazy: tuple[dict[str, Any], dict[str, Any]]) -> None:
    clear, hazy = clear_and_hazy
    changed = {"n_signal_photons", "transmission"}
    keep = [c for c in clear["bins"].columns if c not in changed]
    pd.testing.assert_frame_equal(clear["bins"][keep], hazy["bins"][keep])
    with h5py.File(clear["atl03"], "r") as fa, h5py.File(hazy["atl03"], "r") as fb:
        for beam in BEAMS:
            for name in ("segment_id", "segment_dist_x", "reference_photon_lat", "reference_photon_lon",
                         "solar_elevation", "delta_time"):
                assert np.array_equal(fa[f"{beam}/geolocation/{name}"][:], fb[f"{beam}/geolocation/{name}"][:])
            for name in ("dem_h", "tide_ocean", "dac", "geoid"):
                assert np.array_equal(fa[f"{beam}/geophys_corr/{name}"][:], fb[f"{beam}/geophys_corr/{name}"][:])
            # the surface photons still sit on the same surface
            sig_a = clear["photons"][(clear["photons"].beam == beam) & (clear["photons"].kind == PHOTON_KIND_SURFACE)]
            sig_b = hazy["photons"][(hazy["photons"].beam == beam) & (hazy["photons"].kind == PHOTON_KIND_SURFACE)]
            assert float(sig_b.surface_height_m.mean()) == pytest.approx(float(sig_a.surface_height_m.mean()),
                                                                        abs=0.05)


def test_solar_background_is_attenuated_less_than_the_signal(
        clear_and_hazy: tuple[dict[str, Any], dict[str, Any]]) -> None:
    clear, hazy = clear_and_hazy
    root = np.sqrt(HAZE_T)
    albedo = np.asarray(BACKGROUND_ALBEDO)
    for beam in ("gt2l", "gt2r"):
        klass = clear["bins"].loc[clear["bins"].beam == beam, "class"].to_numpy()
        a = albedo[klass]
        # solar part over each bin's surface; the night rate (1 % of it) is not attenuated
        expected = float(np.mean(a * root + CLOUD_BACKSCATTER_ALBEDO * (1 - root)) / np.mean(a))
        ratio = _mean_bckgrd_rate(hazy["atl03"], beam) / _mean_bckgrd_rate(clear["atl03"], beam)
        assert ratio == pytest.approx(expected, rel=BACKGROUND_RATIO_TOL), beam
        assert ratio > HAZE_T + 0.15


def test_atl07_segments_follow_the_weaker_returns(clear_and_hazy: tuple[dict[str, Any], dict[str, Any]]) -> None:
    clear, hazy = clear_and_hazy
    for beam in strong_beams(1):
        with h5py.File(clear["atl07"], "r") as fa, h5py.File(hazy["atl07"], "r") as fb:
            la = fa[f"{beam}/sea_ice_segments/heights/height_segment_length_seg"][:]
            lb = fb[f"{beam}/sea_ice_segments/heights/height_segment_length_seg"][:]
            ra = fa[f"{beam}/sea_ice_segments/stats/photon_rate"][:]
            rb = fb[f"{beam}/sea_ice_segments/stats/photon_rate"][:]
            na = fa[f"{beam}/sea_ice_segments/stats/n_photons_used"][:]
            nb = fb[f"{beam}/sea_ice_segments/stats/n_photons_used"][:]
        lo, hi = SEGMENT_LENGTH_RATIO
        assert lo < float(np.median(lb) / np.median(la)) < hi, beam
        assert float(np.median(rb) / np.median(ra)) == pytest.approx(HAZE_T, rel=0.1)
        assert len(lb) < 0.6 * len(la)
        assert np.median(nb) == pytest.approx(np.median(na), rel=0.05)  # still ~150 photons a segment
        with h5py.File(hazy["atl10"], "r") as f10:
            assert f10[f"{beam}/freeboard_segment/beam_fb_height"].shape[0] > 0


def test_patches_where_configured(tmp_path: Path) -> None:
    atm = AtmosphereConfig(transmission=0.9, patch_fraction=0.4, patch_transmission=(0.3, 0.5),
                           patch_length_m=800.0)
    cfg = SimConfig(granules=1, km=TRACK_KM, atmosphere=atm)
    clear = _granule(tmp_path / "clear", dataclasses.replace(cfg, atmosphere=AtmosphereConfig()))
    g = _granule(tmp_path / "patchy", cfg)
    patches = g["meta"]["atmosphere"]["patches"]
    assert len(patches) >= 2
    bins = g["bins"]
    s = bins.x_atc_m.to_numpy() + 1.0 - g["track"].x_atc0_m
    inside = np.zeros(len(bins), dtype=bool)
    for p in patches:
        assert 0.3 <= p["patch_transmission"] <= 0.5
        here = (s >= p["s_start_m"]) & (s < p["s_end_m"])
        assert np.allclose(bins.transmission[here], 0.9 * p["patch_transmission"])
        inside |= here
    assert (bins.transmission[~inside] == 0.9).all()
    assert 0.1 < inside.mean() < 0.9
    # signal photons per bin follow the local transmission (strong beams pooled)
    strong = bins.beam.isin(strong_beams(1)).to_numpy()
    n_clear = clear["bins"].n_signal_photons.to_numpy()
    for where in (inside & strong, ~inside & strong):
        got = bins.n_signal_photons.to_numpy()[where].sum() / n_clear[where].sum()
        expected = np.sum(bins.transmission.to_numpy()[where] * n_clear[where]) / n_clear[where].sum()
        assert got == pytest.approx(float(expected), rel=0.05)
    # same seed, same patches; the atmosphere has its own generator: the photon draws of a sky
    # whose patches transmit everything are the clear sky's, byte for byte
    unit = dataclasses.replace(cfg, atmosphere=AtmosphereConfig(patch_fraction=0.4, patch_transmission=(1.0, 1.0)))
    same = _granule(tmp_path / "unit", unit)
    assert same["atl03"].read_bytes() == clear["atl03"].read_bytes()


def test_patch_statistics_follow_the_config() -> None:
    atm = AtmosphereConfig(patch_fraction=0.3, patch_transmission=(0.2, 0.6), patch_length_m=5000.0)
    length = 20_000_000.0  # 4000 patches: the sampling error of the shares is ~1 %
    p = transmission_profile(atm, 5, 17, length)
    lengths = p.patches[:, 1] - p.patches[:, 0]
    assert lengths.sum() / length == pytest.approx(0.3, abs=0.02)
    assert float(np.mean(lengths[:-1])) == pytest.approx(5000.0, rel=0.06)
    assert p.patches[:, 2].min() >= 0.2 and p.patches[:, 2].max() <= 0.6
    assert np.all(p.patches[1:, 0] > p.patches[:-1, 1])  # disjoint, sorted, with clear sky between
    assert np.array_equal(p.patches, transmission_profile(atm, 5, 17, length).patches)
    assert not np.array_equal(p.patches[:10], transmission_profile(atm, 6, 17, length).patches[:10])


def test_atmosphere_config_validation_and_json() -> None:
    for bad in ({"transmission": 0.0}, {"transmission": 1.2}, {"patch_fraction": 1.0},
                {"patch_transmission": (0.6, 0.2)}, {"patch_length_m": 0.0}):
        with pytest.raises(ConfigError):
            AtmosphereConfig(**bad)
    cfg = day("unseen_hazy")
    assert SimConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ConfigError, match="overpass_local_hours"):
        SimConfig(overpass_local_hours=(11.0, 9.0))
    with pytest.raises(ConfigError, match="sc_orient"):
        SimConfig(sc_orient=2)


# ---------------------------------------------------------------------------------------------
# Night
# ---------------------------------------------------------------------------------------------


def test_night_day_has_night_background_and_no_scenes(tmp_path: Path) -> None:
    cfg = dataclasses.replace(day("unseen_night"), granules=1, km=TRACK_KM)
    plan = plan_day(cfg)
    assert plan.scenes == () and len(plan.unlit_scenes) == 1
    result = simulate_day(cfg, tmp_path, workers=1)
    assert result.scenes == () and len(result.atl03) == len(result.atl07) == len(result.atl10) == 1
    assert not any((tmp_path / "catalog" / "sentinel2").iterdir())
    manifest = json.loads((tmp_path / "truth" / MANIFEST_FILE).read_text())
    assert manifest["plan"]["scenes"] == [] and len(manifest["plan"]["unlit_scenes"]) == 1
    assert result.atl03[0].name.split("_")[2][4:6] == "03"  # June 2019: ICESat-2 cycle 3
    bins = pd.read_parquet(truth_paths(tmp_path / "truth", result.atl03[0].name).bins)
    albedo = np.asarray(BACKGROUND_ALBEDO)
    with h5py.File(result.atl03[0], "r") as f:
        for beam in BEAMS:
            assert float(f[f"{beam}/geolocation/solar_elevation"][:].max()) < -30.0
            strong = f[beam].attrs["atlas_beam_type"] == b"strong"
            mean_albedo = float(albedo[bins.loc[bins.beam == beam, "class"].to_numpy()].mean())
            expected = BACKGROUND_NIGHT_RATE_HZ * (1.0 if strong else WEAK_BEAM_FACTOR) * mean_albedo
            rate = float(np.mean(f[f"{beam}/bckgrd_atlas/bckgrd_rate"][:]))
            assert rate == pytest.approx(expected, rel=NIGHT_RATE_TOL if strong else 2 * NIGHT_RATE_TOL), beam
            assert float(background_rate_hz(-40.0, bool(strong))) == pytest.approx(
                BACKGROUND_NIGHT_RATE_HZ * (1.0 if strong else WEAK_BEAM_FACTOR))
    with h5py.File(result.atl07[0], "r") as f:
        assert f["gt1r/sea_ice_segments/heights/height_segment_length_seg"].shape[0] > 0


def test_the_demo_path_runs_a_day_without_scenes(tmp_path: Path) -> None:
    """Discovery, the 2 m job, the S2-label job and colocation on a night day: tracks, no pair."""
    from seaice_tasks.demo import prepare_labelled_day
    from seaice_tasks.storage import Lake

    cfg = dataclasses.replace(day("unseen_night"), granules=1, km=3.0)
    lake = Lake(tmp_path / "lake")
    truth = prepare_labelled_day(cfg, tmp_path / "sim", lake)
    assert (truth / MANIFEST_FILE).exists()
    segments = lake.partitions("segments_2m")
    assert sorted(str(k.beam) for k in segments) == sorted(strong_beams(1))
    assert lake.partitions("s2_labels") == []
    pairs = lake.partitions("s2_pairs")
    assert len(pairs) == 1 and len(lake.read_table(pairs[0]).to_pandas()) == 0


def test_overpass_hours_move_the_tracks_and_daylight_keeps_its_scenes() -> None:
    base = SimConfig(granules=3)
    night = dataclasses.replace(base, overpass_local_hours=(23.0, 25.0))
    a, b = plan_day(base), plan_day(night)
    assert a.unlit_scenes == () and len(a.scenes) == 3
    night_by_rgt = {t.rgt: t for t in b.tracks}
    for ta in a.tracks:
        tb = night_by_rgt[ta.rgt]
        assert (ta.x0_m, ta.y0_m, ta.ux) == (tb.x0_m, tb.y0_m, tb.ux)  # same draws, another time
        hours = ((tb.start_utc - ta.start_utc).total_seconds() / 3600.0) % 24.0
        assert 11.0 < hours < 15.5
    # November in the Ross Sea: the sun stays up at local midnight south of ~72 S, so darkness needs winter
    for name, named in DAYS.items():
        plan = plan_day(named.config)
        assert (plan.scenes == ()) == (name in ("unseen_night", "tune_night", "unseen_night_dense")), name


# ---------------------------------------------------------------------------------------------
# Orientation
# ---------------------------------------------------------------------------------------------


def test_backward_orientation_puts_the_strong_beams_on_the_left(tmp_path: Path) -> None:
    cfg = SimConfig(granules=1, km=3.0, scenes_per_granule=0, sc_orient=0, seed=7, world=day("unseen_backward").world)
    result = simulate_day(cfg, tmp_path, workers=1)
    left = {"gt1l", "gt2l", "gt3l"}
    assert set(strong_beams(0)) == left
    for path in (result.atl03[0], result.atl07[0], result.atl10[0]):
        assert {b for b, s in _strength_attrs(path).items() if s == "strong"} == left, path.name
        with h5py.File(path, "r") as f:
            assert int(f["orbit_info/sc_orient"][0]) == 0
            assert f["gt1l"].attrs["sc_orientation"] == b"Backward"
    info = read_atl03_info(result.atl03[0])
    assert {b.beam for b in info.beams if b.strength == "strong"} == left
    bins = pd.read_parquet(truth_paths(result.truth, result.atl03[0].name).bins)
    meta = json.loads(truth_paths(result.truth, result.atl03[0].name).meta.read_text())
    assert meta["sc_orient"] == 0
    n = bins.groupby("beam").n_signal_photons.sum()
    with h5py.File(result.atl07[0], "r") as f:
        seg: dict[str, float] = {
            b: float(np.median(f[f"{b}/sea_ice_segments/heights/height_segment_length_seg"][:])) for b in BEAMS}
    for pair in ("gt1", "gt2", "gt3"):
        lo, hi = STRONG_WEAK_RATIO
        assert lo < n[f"{pair}l"] / n[f"{pair}r"] < hi, pair
        assert lo < seg[f"{pair}r"] / seg[f"{pair}l"] < hi, pair


# ---------------------------------------------------------------------------------------------
# Defaults and the registry of days
# ---------------------------------------------------------------------------------------------


def test_defaults_write_the_same_bytes_as_before(small_sim_day: Any) -> None:
    got = {str(p.relative_to(small_sim_day.catalog)): hashlib.sha256(p.read_bytes()).hexdigest()
           for p in sorted(Path(small_sim_day.catalog).rglob("*")) if p.is_file()}
    assert got == SMALL_DAY_CATALOG_SHA256


def test_unseen_days_are_new_and_differ_from_training() -> None:
    used = [d for d in DAYS.values() if d.role != UNSEEN]
    fresh = unseen_days()
    assert len(fresh) >= 4 and {d.role for d in used} >= {TRAINING, TUNING}
    for d in fresh:
        cfg = d.config
        for other in DAYS.values():
            if other.name == d.name:
                continue
            assert cfg.date != other.date, (d.name, other.name)
            assert cfg.seed != other.config.seed and cfg.world.seed != other.config.world.seed, (d.name, other.name)
        assert d.differs
    training = [d.config for d in used if d.role == TRAINING]
    assert all(c.sc_orient == 1 and c.atmosphere.clear and c.overpass_local_hours == (9.5, 11.5) for c in training)
    assert max(c.world.water_fraction + c.world.thin_fraction for c in training) < 0.3
    kinds = {
        "dense leads": any(d.config.world.water_fraction + d.config.world.thin_fraction >= 0.2 for d in fresh),
        "backward": any(d.config.sc_orient == 0 for d in fresh),
        "night": any(plan_day(d.config).scenes == () for d in fresh),
        "hazy": any(not d.config.atmosphere.clear and d.config.atmosphere.transmission <= 0.6 for d in fresh),
    }
    assert all(kinds.values()), kinds
    with pytest.raises(ConfigError, match="unknown simulated day 'nope'"):
        day("nope")

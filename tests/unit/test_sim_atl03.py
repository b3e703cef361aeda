"""Simulated ATL03 granules: real layout, reader round trip, realism vs a real subset, truth, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from seaice_tasks.constants import BEAMS, SignalConf, strong_beams
from seaice_tasks.io.atl03 import (
    ATL03_PATHS_USED,
    iter_segment_chunks,
    read_atl03_info,
    read_bckgrd,
    read_photons,
    read_segments,
    summarize_atl03,
)
from seaice_tasks.sim.atl03 import (
    PHOTON_KIND_SURFACE,
    SHOT_SPACING_M,
    SYSTEM_JITTER_M,
    background_rate_hz,
    truth_paths,
    write_atl03_granule,
    write_benchmark_beam,
)
from seaice_tasks.sim.geometry import SimConfig, Track, plan_day
from seaice_tasks.sim.world import TruthWorld, WorldConfig

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
REAL_ATL03 = REALDATA / "icesat2" / "harmony_ATL03_gt1l.h5"
REAL_VARIABLES = REALDATA / "icesat2" / "icepyx_is2variables.json"
TRACK_KM = 20.0
WEAK, STRONG = "gt1l", "gt1r"
SEA_ICE = 2
#: Authors' 2 m tables (METHOD.md §1.5): mean background rate of their strong beams (counts/s).
AUTHORS_BRATE_HZ = 6.54e6
#: Realism tolerances (see docs/simulator_realism.md for why each is as wide as it is).
PH_PER_SHOT_RATIO = (0.4, 1.5)  # sim weak (daylight, Ross Sea) / real weak (night, Arctic snow)
CONF_HIGH_ABS_TOL = 0.08  # share of signal_conf 4 among photons with conf >= 1
CONF_NOISE_MAX = 0.35  # share of 0: daylight background outside the surface band (real: night)
CONF_LOW_MEDIUM_MAX = 0.05  # real: 0
CONF_AMONG_KEPT = 10  # key offset of the shares among photons with conf >= 1
CONF_BUFFER_RANGE = (0.003, 0.12)  # among conf >= 1; real: 0.077
BG_NIGHT_FACTOR = 3.0  # model at the real file's solar elevation vs its measured rate
BG_DAY_FACTOR = 3.0  # simulated strong-beam daylight rate vs the authors' brate_mean
STRONG_WEAK_RATIO = (3.5, 4.5)
SEGMENT_LENGTH_RANGE_M = (19.8, 20.2)
#: Truth consistency: the world's roughness by class, the freeboard tolerance per 2 m bin is
#: 4 sigma of the mean of n photons plus 5 cm for class edges inside a bin and background photons
#: the signal finder keeps near the surface; >= 95 % of bins must pass and the mean residual of all
#: bins must be below 1 cm.
N_SIGMA = 4.0
EDGE_ALLOWANCE_M = 0.05
MIN_PASS_SHARE = 0.95
MAX_MEAN_RESIDUAL_M = 0.01
CLASS_FRACTION_ABS_TOL = 0.05
BENCH_PHOTONS = 200_000
BENCH_CHUNK_PHOTONS = 50_000


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, SimConfig, Track]:
    """One 20 km granule and its truth directory."""
    assert REALDATA.is_dir(), f"{REALDATA} missing"
    cfg = SimConfig(granules=1, km=TRACK_KM)
    track = plan_day(cfg).tracks[0]
    root = tmp_path_factory.mktemp("sim")
    path = write_atl03_granule(TruthWorld(cfg.world), track, cfg, root / "out", root / "truth")
    return path, root / "truth", cfg, track


def _real_paths() -> set[str]:
    return set(json.loads(REAL_VARIABLES.read_text())["ATL03"])


def _datasets(path: Path) -> list[str]:
    names: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


# ---------------------------------------------------------------------------------------------
# Layout and reader round trip
# ---------------------------------------------------------------------------------------------


def test_file_name_and_summary(sim: tuple[Path, Path, SimConfig, Track]) -> None:
    path, _, cfg, track = sim
    assert path.name == (f"ATL03_{track.start_utc:%Y%m%d%H%M%S}_{track.rgt:04d}{track.cycle:02d}"
                         f"{track.region:02d}_{cfg.release:03d}_01.h5")
    summary = summarize_atl03(path)
    assert [b.beam for b in summary.beams] == list(BEAMS)
    strong = set(strong_beams(cfg.sc_orient))
    for b in summary.beams:
        assert b.strength == ("strong" if b.beam in strong else "weak")
        assert (b.n_photons or 0) > 0
        n_shots = int(TRACK_KM * 1000.0 // SHOT_SPACING_M) + 1
        assert b.n_segments == int((n_shots - 1) * SHOT_SPACING_M // 20.0) + 1
    assert summary.extra["sc_orient_source"] == "orbit_info"
    assert summary.extra["release"] == cfg.release
    assert summary.warnings == ()
    info = read_atl03_info(path)
    assert info.granule is not None and info.granule.rgt == track.rgt
    with h5py.File(path, "r") as f:
        assert f[WEAK].attrs["atlas_beam_type"] == b"weak"
        assert f[STRONG].attrs["sc_orientation"] == b"Forward"
        assert f["METADATA/DatasetIdentification"].attrs["shortName"] == b"ATL03"
        assert f["METADATA/DatasetIdentification"].attrs["fileName"] == path.name.encode()


def test_every_beam_reads_back(sim: tuple[Path, Path, SimConfig, Track]) -> None:
    path, _, _, track = sim
    for beam in BEAMS:
        seg = read_segments(path, beam)
        block = read_photons(path, beam)
        bg = read_bckgrd(path, beam)
        assert len(block) == int(seg.segment_ph_cnt.sum())
        assert np.all(np.diff(seg.segment_id) == 1)
        assert seg.segment_id.iloc[0] == int(track.x_atc0_m // 20.0)
        assert np.all(np.diff(block.delta_time_s) >= 0)  # time order: segments contiguous
        assert np.all(np.diff(block.segment_row) >= 0)
        assert seg.dem_flag.eq(3).all() and np.isfinite(seg.dem_h).all()
        assert float(block.dist_ph_along_m.min()) >= 0.0 and float(block.dist_ph_along_m.max()) < 20.0
        assert set(np.unique(block.ph_id_pulse)) <= set(range(1, 201))
        assert np.all(np.diff(block.pce_mframe_cnt.astype(np.int64)) >= 0)
        assert len(bg) == int(np.ceil((TRACK_KM * 1000.0 / SHOT_SPACING_M + 1) / 50.0))
        assert (bg.bckgrd_rate > 0).all()


def test_reader_paths_exist_and_no_invented_paths(sim: tuple[Path, Path, SimConfig, Track]) -> None:
    path, _, _, _ = sim
    written = _datasets(path)
    for template in ATL03_PATHS_USED:
        assert template.format(beam=WEAK) in written, template
    invented = sorted(set(written) - _real_paths())
    assert invented == [], invented


# ---------------------------------------------------------------------------------------------
# Realism vs the real subset (a WEAK beam, at night, Arctic snow)
# ---------------------------------------------------------------------------------------------


def _photons_per_shot(n_photons: int, segment_length_m: np.ndarray) -> float:
    return n_photons / float(segment_length_m.sum() / SHOT_SPACING_M)


def _conf_shares(conf: np.ndarray) -> dict[int, float]:
    """Share of each value, and (keys + 10) of each value among photons with conf >= 1."""
    values, counts = np.unique(conf, return_counts=True)
    kept = conf[conf >= SignalConf.BUFFER]
    kv, kc = np.unique(kept, return_counts=True)
    among = {int(v) + CONF_AMONG_KEPT: float(c) / kept.size for v, c in zip(kv, kc, strict=True)}
    return {int(v): float(c) / conf.size for v, c in zip(values, counts, strict=True)} | among


def test_realism_vs_real_weak_beam(sim: tuple[Path, Path, SimConfig, Track]) -> None:
    path, _, _, _ = sim
    with h5py.File(REAL_ATL03, "r") as f:
        real_n = f["gt1l/heights/h_ph"].shape[0]
        real_len = f["gt1l/geolocation/segment_length"][:]
        real_conf = _conf_shares(f["gt1l/heights/signal_conf_ph"][:, SEA_ICE])
        real_rate = float(np.median(f["gt1l/bckgrd_atlas/bckgrd_rate"][:]))
        real_elev = float(np.median(f["gt1l/geolocation/solar_elevation"][:]))
    seg = read_segments(path, WEAK)
    block = read_photons(path, WEAK)
    sim_conf = _conf_shares(block.signal_conf[:, SEA_ICE])
    # photons per shot
    ratio = _photons_per_shot(len(block), seg.segment_length_m.to_numpy()) / _photons_per_shot(real_n, real_len)
    assert PH_PER_SHOT_RATIO[0] <= ratio <= PH_PER_SHOT_RATIO[1], ratio
    # signal confidence shares
    high = CONF_AMONG_KEPT + SignalConf.HIGH
    assert abs(sim_conf.get(high, 0.0) - real_conf[high]) <= CONF_HIGH_ABS_TOL
    assert sim_conf.get(SignalConf.NOISE, 0.0) <= CONF_NOISE_MAX
    low_medium = sim_conf.get(SignalConf.LOW, 0.0) + sim_conf.get(SignalConf.MEDIUM, 0.0)
    assert low_medium <= CONF_LOW_MEDIUM_MAX
    assert CONF_BUFFER_RANGE[0] <= sim_conf.get(CONF_AMONG_KEPT + SignalConf.BUFFER, 0.0) <= CONF_BUFFER_RANGE[1]
    assert {k for k in sim_conf if k < CONF_AMONG_KEPT} <= {int(v) for v in SignalConf}
    # background: the model at the real file's (night) solar elevation, and daylight vs the authors
    night = float(background_rate_hz(real_elev, strong=False))
    assert real_rate / BG_NIGHT_FACTOR <= night <= real_rate * BG_NIGHT_FACTOR
    day = float(read_bckgrd(path, STRONG).bckgrd_rate.median())
    assert AUTHORS_BRATE_HZ / BG_DAY_FACTOR <= day <= AUTHORS_BRATE_HZ * BG_DAY_FACTOR
    # segments
    assert seg.segment_length_m.between(*SEGMENT_LENGTH_RANGE_M).all()
    assert np.all((real_len >= SEGMENT_LENGTH_RANGE_M[0]) & (real_len <= SEGMENT_LENGTH_RANGE_M[1]))
    assert float(block.dist_ph_along_m.min()) >= 0.0 and float(block.dist_ph_along_m.max()) < 20.0


def test_strong_is_four_times_weak(sim: tuple[Path, Path, SimConfig, Track]) -> None:
    path, truth, _, _ = sim
    photons = pd.read_parquet(truth_paths(truth, path.name).photons)
    for weak, strong in (("gt1l", "gt1r"), ("gt2l", "gt2r"), ("gt3l", "gt3r")):
        n_w = int(photons.is_signal[photons.beam == weak].sum())
        n_s = int(photons.is_signal[photons.beam == strong].sum())
        assert STRONG_WEAK_RATIO[0] <= n_s / n_w <= STRONG_WEAK_RATIO[1], (weak, n_s / n_w)
        all_ratio = read_atl03_info(path).beam(strong).n_photons / read_atl03_info(path).beam(weak).n_photons
        assert STRONG_WEAK_RATIO[0] <= all_ratio <= STRONG_WEAK_RATIO[1]


# ---------------------------------------------------------------------------------------------
# Truth consistency
# ---------------------------------------------------------------------------------------------


def test_selected_photons_reproduce_truth_freeboard(sim: tuple[Path, Path, SimConfig, Track]) -> None:
    path, truth, cfg, _ = sim
    bins = pd.read_parquet(truth_paths(truth, path.name).bins)
    roughness = np.asarray(cfg.world.roughness_m)
    for beam in (WEAK, STRONG):
        block = read_photons(path, beam)
        sel = block.signal_conf[:, SEA_ICE] >= SignalConf.MEDIUM
        x_bin = np.floor(block.x_atc_m[sel] / 2.0).astype(np.int64) * 2
        per_bin = (pd.DataFrame({"x_atc_m": x_bin, "h": block.h_ph_m[sel].astype(np.float64)})
                   .groupby("x_atc_m").h.agg(["mean", "count"]))
        tb = bins[bins.beam == beam].set_index("x_atc_m")
        joined = per_bin.join(tb, how="inner")
        assert len(joined) > 0.8 * len(per_bin)
        surface = (joined.mss_m + joined.tide_ocean_m + joined.tide_equilibrium_m + joined.dac_m
                   + joined.residual_m)
        assert np.allclose(surface, joined.sea_surface_m, atol=1e-9)
        residual = joined["mean"] - surface - joined.freeboard_m
        sigma = np.sqrt(roughness[joined["class"].to_numpy()] ** 2 + SYSTEM_JITTER_M**2) / np.sqrt(joined["count"])
        share = float((np.abs(residual) <= N_SIGMA * sigma + EDGE_ALLOWANCE_M).mean())
        assert share >= MIN_PASS_SHARE, (beam, share)
        assert abs(float(residual.mean())) <= MAX_MEAN_RESIDUAL_M, (beam, float(residual.mean()))


def test_truth_class_fractions_and_files(sim: tuple[Path, Path, SimConfig, Track]) -> None:
    path, truth, cfg, track = sim
    paths = truth_paths(truth, path.name)
    bins = pd.read_parquet(paths.bins)
    photons = pd.read_parquet(paths.photons)
    meta = json.loads(paths.meta.read_text())
    frac = bins["class"].value_counts(normalize=True)
    assert abs(float(frac.get(2, 0.0)) - cfg.world.water_fraction) <= CLASS_FRACTION_ABS_TOL
    assert abs(float(frac.get(1, 0.0)) - cfg.world.thin_fraction) <= CLASS_FRACTION_ABS_TOL
    assert abs(float(frac.get(0, 0.0)) - cfg.world.thick_fraction) <= CLASS_FRACTION_ABS_TOL
    assert (bins.x_atc_m % 2 == 0).all()
    for beam in BEAMS:
        n_file = read_atl03_info(path).beam(beam).n_photons
        assert int((photons.beam == beam).sum()) == n_file
    assert int(bins.n_signal_photons.sum()) == int((photons.kind == PHOTON_KIND_SURFACE).sum())
    # cloud gaps: no surface signal inside (background only)
    assert meta["rgt"] == track.rgt
    gap = bins.in_cloud_gap.to_numpy()
    interior = gap & np.roll(gap, 1) & np.roll(gap, -1)  # bins whose neighbours are in the gap too
    assert int(bins.n_signal_photons[interior].sum()) == 0
    for gap in meta["cloud_gaps"]:
        assert gap["x_atc_end_m"] > gap["x_atc_start_m"]


# ---------------------------------------------------------------------------------------------
# Determinism and streaming benchmark beam
# ---------------------------------------------------------------------------------------------


def test_deterministic_bytes_and_world_seed(sim: tuple[Path, Path, SimConfig, Track], tmp_path: Path) -> None:
    path, _, cfg, track = sim
    again = write_atl03_granule(TruthWorld(cfg.world), track, cfg, tmp_path / "a", tmp_path / "ta")
    assert again.read_bytes() == path.read_bytes()
    other = WorldConfig(seed=cfg.world.seed + 1)
    cfg2 = SimConfig(granules=1, km=TRACK_KM, world=other)
    diff = write_atl03_granule(TruthWorld(other), track, cfg2, tmp_path / "b", tmp_path / "tb")
    h1 = read_photons(path, STRONG, 0, 50).h_ph_m
    h2 = read_photons(diff, STRONG, 0, 50).h_ph_m
    assert h1.shape != h2.shape or not np.array_equal(h1, h2)


def test_benchmark_beam_streams_and_reads_back(tmp_path: Path) -> None:
    path = write_benchmark_beam(tmp_path / "bench.h5", TruthWorld(), n_photons=BENCH_PHOTONS, seed=3)
    chunks = iter_segment_chunks(path, STRONG, max_photons=BENCH_CHUNK_PHOTONS)
    assert len(chunks) > 1
    total = 0
    for start, stop in chunks:
        block = read_photons(path, STRONG, start, stop)
        assert len(block) <= BENCH_CHUNK_PHOTONS or stop - start == 1
        total += len(block)
    assert total >= BENCH_PHOTONS
    assert summarize_atl03(path).beams[0].strength == "strong"

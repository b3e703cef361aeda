"""ATL07/ATL10 emulation (seaice_tasks.sim.atl07 / atl10) on a synthetic ATL03 with known truth,
on the real ATL03 subset, and against the real release-003 ATL07 statistics."""

from __future__ import annotations

import glob
import json
import logging
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np
import pandas as pd
import pytest

from seaice_tasks.constants import ATL07SurfaceType
from seaice_tasks.io.atl03 import read_bckgrd, read_photons, read_segments
from seaice_tasks.io.atl07 import read_atl07, summarize_atl07
from seaice_tasks.io.atl10 import (
    read_atl10_freeboard,
    read_atl10_leads,
    read_atl10_reference_surface,
    summarize_atl10,
)
from seaice_tasks.sim.atl07 import ATL07EmulationConfig, emulate_atl07_beam, write_atl07_atl10
from seaice_tasks.sim.atl10 import emulate_atl10_beam

log = logging.getLogger(__name__)

REAL = Path("/work/shared/realdata/icesat2")
REAL_ATL03: Final[Path] = REAL / "harmony_ATL03_gt1l.h5"
VARIABLES: Final[Path] = REAL / "icepyx_is2variables.json"

# ---- synthetic ATL03 with known truth ------------------------------------------------------------
ATL03_NAME: Final[str] = "ATL03_20191104195311_05940510_006_01.h5"
TRACK_M: Final[float] = 30_000.0
SHOT_SPACING_M: Final[float] = 0.69
X0_M: Final[float] = 28_300_000.0
T0_S: Final[float] = 58_132_391.0
EPOCH: Final[float] = 1198800018.0
RATE_ICE_STRONG: Final[float] = 2.5  # signal photons / shot
RATE_WATER_STRONG: Final[float] = 8.0
WEAK_GAIN: Final[float] = 0.25
NOISE_RATE: Final[float] = 0.6  # conf-0 background photons / shot within +-15 m
NEAR_NOISE_RATE: Final[float] = 0.02  # conf-3 noise photons / shot within +-2 m of the surface
SIGMA_SYSTEM_M: Final[float] = 0.05
ROUGH_ICE_M: Final[float] = 0.08
MSS_M: Final[float] = -56.0
RESIDUAL_AMP_M: Final[float] = 0.10
RESIDUAL_WAVELENGTH_M: Final[float] = 40_000.0
LEAD_SPACING_M: Final[float] = 1500.0
LEAD_WIDTH_M: Final[tuple[float, float]] = (40.0, 300.0)
SEG20_M: Final[float] = 20.0
BEAMS: Final[tuple[str, ...]] = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")


def _truth_leads(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.arange(LEAD_SPACING_M / 2, TRACK_M, LEAD_SPACING_M) + rng.uniform(
        -400, 400, int(TRACK_M // LEAD_SPACING_M)
    )
    widths = rng.uniform(*LEAD_WIDTH_M, centres.size)
    return np.column_stack([centres - widths / 2, centres + widths / 2])



def truth_at(s: np.ndarray, leads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(water mask, freeboard m) at along-track offsets ``s`` (m from the track start)."""
    water = np.zeros(s.shape, dtype=bool)
    for a, b in leads:  # a handful of leads: fine in a test helper
        water |= (s >= a) & (s < b)
    floe = np.floor(s / 700.0)
    fb = 0.25 + 0.35 * (0.5 + 0.5 * np.sin(floe * 1.7))
    return water, np.where(water, 0.0, fb)


def residual_at(s: np.ndarray) -> np.ndarray:
    """Sea-surface residual (m) in no correction: what ATL10's h_ref must find."""
    return RESIDUAL_AMP_M * np.sin(2 * np.pi * s / RESIDUAL_WAVELENGTH_M)


def tide_ocean(s: np.ndarray) -> np.ndarray:
    return 0.2 + 0.05 * s / TRACK_M


def dac(s: np.ndarray) -> np.ndarray:
    return -0.04 + 0.02 * np.cos(s / 9000.0)


TIDE_EQ_M: Final[float] = 0.01


def write_synthetic_atl03(path: Path, seed: int = 7) -> np.ndarray:
    """Write a 6-beam ATL03 (sc_orient 1, right beams strong); return the lead table."""
    leads = _truth_leads(seed)
    rng = np.random.default_rng(seed + 1)
    n_shots = int(TRACK_M / SHOT_SPACING_M)
    with h5py.File(path, "w") as f:
        meta = f.create_group("METADATA/DatasetIdentification")
        meta.attrs["shortName"] = np.bytes_("ATL03")
        meta.attrs["fileName"] = np.bytes_(ATL03_NAME)
        f.create_dataset("orbit_info/sc_orient", data=np.array([1], dtype=np.int8))
        f.create_dataset("ancillary_data/atlas_sdp_gps_epoch", data=np.array([EPOCH]))
        for beam in BEAMS:
            strong = beam.endswith("r")
            gain = 1.0 if strong else WEAK_GAIN
            shot_s = np.arange(n_shots) * SHOT_SPACING_M
            water, _fb = truth_at(shot_s, leads)
            lam = gain * np.where(water, RATE_WATER_STRONG, RATE_ICE_STRONG)
            n_sig = rng.poisson(lam)
            n_noise = rng.poisson(gain * NOISE_RATE + NOISE_RATE, n_shots)
            n_near = rng.poisson(NEAR_NOISE_RATE, n_shots)
            shot = np.concatenate([np.repeat(np.arange(n_shots), k) for k in (n_sig, n_noise, n_near)])
            kind = np.concatenate([np.full(n_sig.sum(), 0), np.full(n_noise.sum(), 1), np.full(n_near.sum(), 2)])
            s = shot * SHOT_SPACING_M + rng.uniform(-0.3, 0.3, shot.size)
            s = np.clip(s, 0.0, TRACK_M - 1e-3)
            w_ph, fb_ph = truth_at(s, leads)
            surface = MSS_M + tide_ocean(s) + TIDE_EQ_M + dac(s) + residual_at(s) + fb_ph
            rough = np.where(w_ph, 0.0, ROUGH_ICE_M)
            h = surface + rng.normal(0, 1, s.size) * np.hypot(rough, SIGMA_SYSTEM_M)
            h = np.where(kind == 1, surface + rng.uniform(-15, 15, s.size), h)
            h = np.where(kind == 2, surface + rng.uniform(-2, 2, s.size), h)
            conf = np.where(kind == 1, 0, np.where(kind == 2, 3, 4)).astype(np.int8)
            order = np.lexsort((s, shot))
            s, h, conf, shot = s[order], h[order], conf[order], shot[order]
            seg = np.floor(s / SEG20_M).astype(np.int64)
            n_seg = int(TRACK_M / SEG20_M)
            cnt = np.bincount(seg, minlength=n_seg)
            beg = np.concatenate([[1], 1 + np.cumsum(cnt)[:-1]])
            beg = np.where(cnt > 0, beg, 0)
            seg_s = np.arange(n_seg) * SEG20_M
            g = f.create_group(beam)
            g.attrs["atlas_beam_type"] = np.bytes_("strong" if strong else "weak")
            g.attrs["sc_orientation"] = np.bytes_("Forward")
            lat = -75.0 - s / 111_000.0
            hg = g.create_group("heights")
            hg["h_ph"] = h.astype(np.float32)
            hg["lat_ph"] = lat
            hg["lon_ph"] = np.full(s.size, -170.0)
            hg["delta_time"] = T0_S + s / 6900.0
            hg["dist_ph_along"] = (s - seg_s[seg]).astype(np.float32)
            sc = np.full((s.size, 5), -1, dtype=np.int8)
            sc[:, 2] = conf
            hg["signal_conf_ph"] = sc
            hg["quality_ph"] = np.zeros(s.size, dtype=np.int8)
            hg["ph_id_pulse"] = (shot % 200 + 1).astype(np.uint8)
            hg["pce_mframe_cnt"] = (1000 + shot // 200).astype(np.uint32)
            geo = g.create_group("geolocation")
            geo["segment_id"] = (500_000 + np.arange(n_seg)).astype(np.int32)
            geo["segment_dist_x"] = X0_M + seg_s
            geo["segment_length"] = np.full(n_seg, SEG20_M)
            geo["ph_index_beg"] = beg.astype(np.int64)
            geo["segment_ph_cnt"] = cnt.astype(np.int32)
            geo["reference_photon_lat"] = -75.0 - (seg_s + 10) / 111_000.0
            geo["reference_photon_lon"] = np.full(n_seg, -170.0)
            geo["solar_elevation"] = np.full(n_seg, 10.0, dtype=np.float32)
            geo["solar_azimuth"] = np.full(n_seg, 100.0, dtype=np.float32)
            geo["delta_time"] = T0_S + (seg_s + 10) / 6900.0
            c = seg_s + SEG20_M / 2
            gc = g.create_group("geophys_corr")
            for name, value in (
                ("geoid", np.full(n_seg, MSS_M - 1.0)), ("geoid_free2mean", np.zeros(n_seg)),
                ("dac", dac(c)), ("tide_ocean", tide_ocean(c)), ("tide_earth", np.zeros(n_seg)),
                ("tide_load", np.zeros(n_seg)), ("tide_pole", np.zeros(n_seg)), ("tide_oc_pole", np.zeros(n_seg)),
                ("tide_equilibrium", np.full(n_seg, TIDE_EQ_M)), ("dem_h", np.full(n_seg, MSS_M)),
            ):
                gc[name] = value.astype(np.float32)
            gc["dem_flag"] = np.full(n_seg, 3, dtype=np.int8)
            n_bg = n_shots // 50
            bg = g.create_group("bckgrd_atlas")
            bg["delta_time"] = T0_S + np.arange(n_bg) * 50 * SHOT_SPACING_M / 6900.0
            bg["pce_mframe_cnt"] = (1000 + np.arange(n_bg) // 4).astype(np.int64)
            bg["bckgrd_counts"] = np.full(n_bg, 30, dtype=np.int32)
            bg["bckgrd_rate"] = np.full(n_bg, 2.0e5, dtype=np.float32)
            bg["bckgrd_int_height"] = np.full(n_bg, 30.0, dtype=np.float32)
    return leads


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("atl07sim")
    atl03 = root / ATL03_NAME
    leads = write_synthetic_atl03(atl03)
    cfg = ATL07EmulationConfig(max_photons_per_chunk=40_000)  # several chunks per beam: tests the carry
    p07, p10 = write_atl07_atl10(atl03, root / "out", cfg)
    return {"atl03": atl03, "leads": leads, "p07": p07, "p10": p10, "root": root, "cfg": cfg}


def _datasets(path: Path) -> list[str]:
    names: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return names


def _real_atl07() -> pd.DataFrame:
    rows = []
    for fn in sorted(glob.glob(str(REAL / "icepyx_processed_ATL07-01_*.h5"))):
        with h5py.File(fn, "r") as f:
            for beam in BEAMS:
                p = f"{beam}/sea_ice_segments/heights/height_segment_length_seg"
                if p not in f or f[p].shape[0] == 0:
                    continue
                strength = f[beam].attrs["atlas_beam_type"].decode()
                w = f[f"{beam}/sea_ice_segments/heights/height_segment_w_gaussian"][:]
                rows.append(pd.DataFrame({"strength": strength, "length": f[p][:], "w": np.where(w < 3e38, w, np.nan)}))
    return pd.concat(rows, ignore_index=True)


# ---- tests -------------------------------------------------------------------------------------


def test_names_layout_and_readers(synthetic: dict[str, Any]) -> None:
    p07, p10 = synthetic["p07"], synthetic["p10"]
    assert p07.name == "ATL07-02_20191104195311_05940501_006_01.h5"
    assert p10.name == "ATL10-02_20191104195311_05940501_006_01.h5"
    variables = json.loads(VARIABLES.read_text())
    for path, product in ((p07, "ATL07"), (p10, "ATL10")):
        allowed = set(variables[product])
        written = _datasets(path)
        assert written
        missing = [p for p in written if p not in allowed]
        assert not missing, f"{product}: paths not in the real variable list: {missing}"
    s07, s10 = summarize_atl07(p07), summarize_atl10(p10)
    assert [b.beam for b in s07.beams] == list(BEAMS)
    assert {b.beam: b.strength for b in s07.beams}["gt1r"] == "strong"
    assert s07.granule == s10.granule == "20191104195311_05940501"
    assert s10.extra["layout"] == "current" and all(v > 0 for v in s10.extra["n_leads"].values())
    with h5py.File(p07, "r") as f:
        assert f["METADATA/DatasetIdentification"].attrs["shortName"] == b"ATL07"
        assert f["orbit_info/sc_orient"][0] == 1
        ds = f["gt1r/sea_ice_segments/heights/height_segment_height"]
        assert ds.dtype == np.float32 and ds.attrs["_FillValue"][0] == np.float32(3.4028235e38)
    for beam in BEAMS:
        df = read_atl07(p07, beam)
        assert len(df) > 0 and np.isfinite(df.height_segment_height).all()
        fb = read_atl10_freeboard(p10, beam)
        rs = read_atl10_reference_surface(p10, beam)
        assert fb.beam_refsurf_ndx.between(1, len(rs)).all()
        leads = read_atl10_leads(p10, beam)
        assert leads.ssh_ndx.between(1, len(fb)).all()


def test_segment_lengths_vs_real(synthetic: dict[str, Any]) -> None:
    p07 = synthetic["p07"]
    ours = pd.concat(
        [read_atl07(p07, b).assign(strength="strong" if b.endswith("r") else "weak") for b in BEAMS], ignore_index=True
    )
    real = _real_atl07()
    stats: dict[str, Any] = {}
    for strength in ("strong", "weak"):
        o = ours[ours.strength == strength]
        r = real[(real.strength == strength) & (real.length > 0)]
        op = np.percentile(o.height_segment_length_seg, [5, 50, 95])
        rp = np.percentile(r.length, [5, 50, 95])
        stats[strength] = (op.round(1).tolist(), rp.round(1).tolist())
        assert op[0] < rp[2] and rp[0] < op[2], "5-95 % ranges must overlap"
        assert 0.25 * rp[1] <= op[1] <= 4.0 * rp[1], "median length within x4 of the real one"
        wo = float(np.nanmedian(o.height_segment_w_gaussian))
        wr = np.nanpercentile(r.w, [5, 95])
        assert wr[0] <= wo <= wr[1], f"median width {wo} outside the real 5-95 % {wr}"
    with h5py.File(p07, "r") as f:
        n_actual = np.concatenate([f[f"{b}/sea_ice_segments/stats/n_photons_actual"][:] for b in BEAMS])
    assert np.median(n_actual) == 150 and n_actual.min() >= 50
    strong = ours[ours.strength == "strong"].height_segment_length_seg
    assert np.percentile(strong, 5) >= 10.0 and np.percentile(strong, 95) <= 250.0
    assert stats["weak"][0][1] > 2.0 * stats["strong"][0][1]
    log.info("segment length percentiles (ours, real): %s", stats)


def test_truth_leads_freeboard_refsurf(synthetic: dict[str, Any]) -> None:
    p07, p10, leads = synthetic["p07"], synthetic["p10"], synthetic["leads"]
    hits, n_spec, biases, ref_err = [], 0, [], []
    for beam in BEAMS:
        seg = read_atl07(p07, beam)
        s = seg.seg_dist_x.to_numpy() - X0_M
        water, _ = truth_at(s, leads)
        spec = seg.height_segment_ssh_flag.to_numpy() == 1
        n_spec += int(spec.sum())
        hits.append(water[spec])
        fb = read_atl10_freeboard(p10, beam)
        rs = read_atl10_reference_surface(p10, beam)
        ice = fb.height_segment_type.to_numpy() == int(ATL07SurfaceType.OTHER)
        xs = fb.seg_dist_x.to_numpy() - X0_M
        half = fb.height_segment_length_seg.to_numpy() / 2
        grid = np.arange(0.0, TRACK_M, 1.0)
        cum = np.concatenate([[0.0], np.cumsum(truth_at(grid + 0.5, leads)[1])])
        lo = np.clip(np.floor(xs - half), 0, grid.size).astype(int)
        hi = np.clip(np.ceil(xs + half), 1, grid.size).astype(int)
        truth_fb = (cum[hi] - cum[lo]) / np.maximum(hi - lo, 1)
        ok = ice & np.isfinite(fb.beam_fb_height.to_numpy())
        biases.append(fb.beam_fb_height.to_numpy()[ok] - truth_fb[ok])
        rsx = rs.beam_refsurf_dist_x.to_numpy() - X0_M
        ref_err.append(rs.beam_refsurf_height.to_numpy() - residual_at(rsx))
    hit_rate = float(np.concatenate(hits).mean())
    bias = np.concatenate(biases)
    err = np.concatenate(ref_err)
    log.info("specular hit rate %.3f (%d segs); fb bias mean %.4f median %.4f sd %.4f; h_ref err mean %.4f max %.4f",
             hit_rate, n_spec, bias.mean(), np.median(bias), bias.std(), err.mean(), np.abs(err).max())
    assert n_spec > 50
    assert hit_rate >= 0.9
    assert abs(float(np.median(bias))) < 0.03 and abs(float(bias.mean())) < 0.05
    assert abs(float(err.mean())) < 0.03 and float(np.abs(err).max()) < 0.10


def test_chunked_equals_single_block(synthetic: dict[str, Any]) -> None:
    atl03, cfg = synthetic["atl03"], synthetic["cfg"]
    block = read_photons(atl03, "gt2r")
    one = emulate_atl07_beam(block, read_segments(atl03, "gt2r"), read_bckgrd(atl03, "gt2r"), cfg)
    streamed = read_atl07(synthetic["p07"], "gt2r")
    assert len(one) == len(streamed)
    np.testing.assert_allclose(one.height_segment_height, streamed.height_segment_height, atol=1e-5)
    np.testing.assert_array_equal(one.height_segment_type, streamed.height_segment_type)
    fb, leads, rs = emulate_atl10_beam(one, cfg)
    assert len(fb) == len(one[one.height_segment_quality == 1]) and len(leads) > 0 and len(rs) == 3


def test_deterministic(synthetic: dict[str, Any]) -> None:
    again = write_atl07_atl10(synthetic["atl03"], synthetic["root"] / "again", synthetic["cfg"])
    assert again[0].read_bytes() == synthetic["p07"].read_bytes()
    assert again[1].read_bytes() == synthetic["p10"].read_bytes()


def test_real_atl03_subset(tmp_path: Path) -> None:
    p07, p10 = write_atl07_atl10(REAL_ATL03, tmp_path)
    assert p07.name.startswith("ATL07-01_20181014002445_023501")
    df = read_atl07(p07, "gt1l")
    assert 5 <= len(df) <= 30
    cols = ["height_segment_height", "seg_dist_x", "latitude", "longitude", "photon_rate", "height_segment_length_seg"]
    assert np.isfinite(df[cols].to_numpy()).all()
    assert summarize_atl10(p10).beams[0].strength == "weak"
    assert len(read_atl10_freeboard(p10, "gt1l")) == len(df)


def test_empty_block_and_config_roundtrip() -> None:
    cfg = ATL07EmulationConfig(photons_per_segment=100)
    assert ATL07EmulationConfig.from_json(cfg.to_json()) == cfg
    block = read_photons(REAL_ATL03, "gt1l", 0, 0)
    out = emulate_atl07_beam(block, read_segments(REAL_ATL03, "gt1l"), read_bckgrd(REAL_ATL03, "gt1l"))
    assert len(out) == 0
    fb, leads, rs = emulate_atl10_beam(out)
    assert len(fb) == len(leads) == len(rs) == 0


def test_on_simulator_granule(tmp_path: Path) -> None:
    """On the simulator's own ATL03: specular leads over truth water, h_ref vs truth."""
    from seaice_tasks.sim import atl03 as sim_atl03
    from seaice_tasks.sim.geometry import SimConfig, plan_day
    from seaice_tasks.sim.world import TruthWorld

    cfg = SimConfig(granules=1, km=20)
    atl03 = sim_atl03.write_atl03_granule(TruthWorld(cfg.world), plan_day(cfg).tracks[0], cfg, tmp_path, tmp_path / "t")
    p07, p10 = write_atl07_atl10(atl03, tmp_path / "out")
    bins = pd.read_parquet(sim_atl03.truth_paths(tmp_path / "t", atl03.name).bins)
    hits, errs = [], []
    for beam in BEAMS:
        seg, rs = read_atl07(p07, beam), read_atl10_reference_surface(p10, beam)
        b = bins[bins.beam == beam].sort_values("x_atc_m")
        bx = b.x_atc_m.to_numpy() + 1.0
        i = np.clip(np.searchsorted(bx, seg.seg_dist_x.to_numpy()), 0, bx.size - 1)
        hits.append(b["class"].to_numpy()[i][seg.height_segment_ssh_flag.to_numpy() == 1] == 2)
        own = rs.beam_lead_n.to_numpy() > 0
        j = np.clip(np.searchsorted(bx, rs.beam_refsurf_dist_x.to_numpy()), 0, bx.size - 1)
        errs.append((rs.beam_refsurf_height.to_numpy() - b.residual_m.to_numpy()[j])[np.asarray(own)])
    hit = np.concatenate(hits)
    err = np.concatenate(errs)
    log.info("simulator granule: %d specular segments, hit rate %.3f; own-lead h_ref - truth residual: mean %.3f, "
             "max |err| %.3f (%d sections)", hit.size, hit.mean(), err.mean(), np.abs(err).max(), err.size)
    assert hit.size >= 5 and hit.mean() >= 0.8
    assert err.size >= 3 and abs(float(err.mean())) < 0.05 and float(np.abs(err).max()) < 0.15

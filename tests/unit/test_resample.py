"""Tests of the ATL03 -> 2 m resampling (seaice_tasks.is2.resample; METHOD.md §3)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pytest

from seaice_tasks.constants import SPEED_OF_LIGHT_M_S, SurfaceType
from seaice_tasks.errors import ConfigError
from seaice_tasks.io._time import delta_time_to_utc
from seaice_tasks.io.atl03 import PhotonBlock, read_bckgrd, read_photons, read_segments, segment_chunks
from seaice_tasks.is2.resample import (
    CAL42_DEAD_TIME_KEY,
    OUTPUT_COLUMNS,
    ResampleConfig,
    background_rows,
    bin_statistics,
    resample_beam,
    resample_granule,
    resample_photons,
    shot_counts,
    shot_keys,
    to_segments_table,
)
from seaice_tasks.products import SEGMENTS_2M
from seaice_tasks.schemas import SEGMENTS_2M_SCHEMA

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
ATL03_FILE = REALDATA / "icesat2" / "harmony_ATL03_gt1l.h5"
BEAM = "gt1l"
GT1L = ResampleConfig(beams=("gt1l",))  # the real subset's beam is weak: name it explicitly

# Golden numbers of harmony_ATL03_gt1l.h5 with the default selection (sea-ice conf >= 3, quality 0).
REAL_N_BINS = 401
REAL_N_SELECTED = 2678
REAL_PIECE_BINS = (40, 361)  # bins in segment ids 490801-490804 and 510948-510983
REAL_PIECE_IDS = ((490801, 490804), (510948, 510983))
REAL_GRANULE = "20181014002445_02350104"

BIN_M = 2.0
SEG_M = 20.0
X0_M = 1_000_003.3  # not a multiple of 2 m: bins straddle segments
SPEED_M_S = 7000.0
DT0_S = 6.0e7
TOL_REL = 1e-12


# ---------------------------------------------------------------------------------------------
# synthetic photon blocks and segment tables
# ---------------------------------------------------------------------------------------------


def make_block(
    x: npt.ArrayLike,
    h: npt.ArrayLike,
    *,
    conf: npt.ArrayLike = 4,
    quality: npt.ArrayLike = 0,
    shot: npt.ArrayLike | None = None,
    lon: npt.ArrayLike | None = None,
    beam: str = "gt1r",
) -> PhotonBlock:
    """A PhotonBlock with photons at along-track ``x`` (m) and heights ``h`` (m).

    ``shot`` is a global shot index (default: one shot per photon); it becomes
    ``pce_mframe_cnt = 1000 + shot // 200`` and ``ph_id_pulse = shot % 200 + 1``.
    """
    xs = np.asarray(x, dtype=np.float64)
    n = xs.size
    shots = np.arange(n, dtype=np.int64) if shot is None else np.asarray(shot, dtype=np.int64)
    sc = np.full((n, len(SurfaceType)), -1, dtype=np.int8)
    sc[:, SurfaceType.OCEAN] = np.broadcast_to(np.asarray(conf, dtype=np.int8), n)
    sc[:, SurfaceType.SEA_ICE] = np.broadcast_to(np.asarray(conf, dtype=np.int8), n)
    seg_row = np.floor((xs - X0_M) / SEG_M).astype(np.int64) if n else np.zeros(0, dtype=np.int64)
    dt_s = DT0_S + (xs - X0_M) / SPEED_M_S
    return PhotonBlock(
        beam=beam,
        seg_start=0,
        seg_stop=int(seg_row.max()) + 1 if n else 0,
        ph_start=0,
        h_ph_m=np.asarray(h, dtype=np.float32),
        lat_deg=-75.0 + (xs - X0_M) / 111_000.0,
        lon_deg=np.full(n, -170.0) if lon is None else np.asarray(lon, dtype=np.float64),
        delta_time_s=dt_s,
        time_utc=delta_time_to_utc(dt_s),
        dist_ph_along_m=(xs - (X0_M + seg_row * SEG_M)).astype(np.float32),
        x_atc_m=xs,
        signal_conf=sc,
        quality_ph=np.broadcast_to(np.asarray(quality, dtype=np.int8), n).copy(),
        ph_id_pulse=(shots % 200 + 1).astype(np.uint8),
        pce_mframe_cnt=(1000 + shots // 200).astype(np.uint32),
        segment_row=seg_row,
        segment_id=seg_row + 700_000,
    )


def make_segments(n_seg: int, **columns: npt.ArrayLike) -> pd.DataFrame:
    """Segment table from X0_M, 20 m long; corrections linear in x unless overridden."""
    x = X0_M + SEG_M * np.arange(n_seg)
    centre = x + SEG_M / 2
    frame = pd.DataFrame(
        {
            "segment_id": 700_000 + np.arange(n_seg),
            "segment_dist_x_m": x,
            "segment_length_m": np.full(n_seg, SEG_M),
            "ph_index_beg": np.zeros(n_seg, dtype=np.int64),
            "segment_ph_cnt": np.zeros(n_seg, dtype=np.int64),
            "solar_elevation": 10.0 + 1e-4 * (centre - X0_M),
            "solar_azimuth": np.full(n_seg, 120.0),
            "geoid": np.full(n_seg, -50.0),
            "dac": np.full(n_seg, 0.05),
            "tide_ocean": 0.3 + 1e-5 * (centre - X0_M),
            "tide_earth": np.full(n_seg, 0.1),
            "tide_load": np.full(n_seg, 0.01),
            "tide_pole": np.full(n_seg, 0.002),
            "tide_oc_pole": np.full(n_seg, 0.0003),
            "tide_equilibrium": np.full(n_seg, -0.02),
            "dem_h": -48.0 + 1e-4 * (centre - X0_M),
            "dem_flag": np.full(n_seg, 3.0),
        }
    )
    for name, values in columns.items():
        frame[name] = np.broadcast_to(np.asarray(values, dtype=np.float64), n_seg)
    return frame


def run(block: PhotonBlock, segments: pd.DataFrame | None = None, config: ResampleConfig | None = None,
        bckgrd: pd.DataFrame | None = None, fpb: dict[str, Any] | None = None) -> pd.DataFrame:
    segments = make_segments(200) if segments is None else segments
    return resample_photons(block, segments, bckgrd, fpb, config or ResampleConfig(), beam=block.beam, granule="G")


@pytest.fixture(scope="module")
def random_block() -> PhotonBlock:
    rng = np.random.default_rng(42)
    n = 20_000
    x = np.sort(X0_M + rng.uniform(0, 3000.0, n))
    h = rng.normal(0.3, 0.2, n)
    conf = rng.choice([0, 1, 2, 3, 4], size=n, p=[0.2, 0.05, 0.05, 0.2, 0.5])
    quality = rng.choice([0, 1, 2], size=n, p=[0.95, 0.03, 0.02])
    shot = np.floor((x - X0_M) / 0.7).astype(np.int64)  # several photons per shot
    return make_block(x, h, conf=conf, quality=quality, shot=shot)


# ---------------------------------------------------------------------------------------------
# statistics vs a plain pandas reference
# ---------------------------------------------------------------------------------------------


def test_bins_match_pandas_groupby(random_block: PhotonBlock) -> None:
    out = run(random_block)
    ph = random_block.to_pandas()
    keys = shot_keys(ph["pce_mframe_cnt"], ph["ph_id_pulse"])
    ph["pcnt"] = pd.Series(keys).groupby(keys).transform("size").to_numpy()
    ph["pcnth"] = pd.Series(ph["signal_conf_sea_ice"] >= 3).groupby(keys).transform("sum").to_numpy()
    sel = ph[(ph["signal_conf_sea_ice"] >= 3) & (ph["quality_ph"] == 0)].copy()
    sel["bin"] = np.floor(sel["x_atc_m"] / BIN_M).astype(np.int64)
    sel["h"] = sel["h_ph_m"].astype(np.float64)
    ref = sel.groupby("bin").agg(
        n=("h", "size"),
        mean=("h", "mean"),
        median=("h", "median"),
        std=("h", lambda s: s.std(ddof=0)),
        lat=("lat_deg", "mean"),
        dt=("delta_time_s", "mean"),
        pcnt_mean=("pcnt", "mean"),
        pcnt_median=("pcnt", "median"),
        pcnt_sd=("pcnt", lambda s: s.std(ddof=0)),
        pcnth_mean=("pcnth", "mean"),
    )
    # No photon lost or double-counted; only non-empty bins, ascending.
    assert int(out["n_photons"].sum()) == len(sel)
    np.testing.assert_array_equal(out["bin_index"], ref.index)
    np.testing.assert_array_equal(out["n_photons"], ref["n"])
    np.testing.assert_array_equal(out["h_median_m"], ref["median"])  # exact: middle elements
    np.testing.assert_array_equal(out["pcnt_median"], ref["pcnt_median"])
    np.testing.assert_array_equal(out["x_atc_m"], ref.index.to_numpy() * BIN_M)
    for col, rcol in (("h_mean_m", "mean"), ("h_std_m", "std"), ("lat_deg", "lat"), ("delta_time_s", "dt"),
                      ("pcnt_mean", "pcnt_mean"), ("pcnt_sd", "pcnt_sd"), ("pcnth_mean", "pcnth_mean")):
        np.testing.assert_allclose(out[col], ref[rcol], rtol=TOL_REL, atol=1e-12, err_msg=col)
    assert (out["single_photon"] == (out["n_photons"] == 1)).all()
    assert (out.loc[out["single_photon"], "h_std_m"] == 0).all()
    assert list(out.columns) == list(OUTPUT_COLUMNS)


def test_bin_statistics_helper() -> None:
    rng = np.random.default_rng(1)
    b = rng.integers(-5, 50, 3000)
    v = rng.normal(size=3000)
    got = bin_statistics(b, v)
    ref = pd.DataFrame({"b": b, "v": v}).groupby("b")["v"].agg(["size", "median"])
    np.testing.assert_array_equal(got["bin_index"], ref.index)
    np.testing.assert_array_equal(got["n"], ref["size"])
    np.testing.assert_array_equal(got["median"], ref["median"])
    assert bin_statistics([], []).empty


def test_quality_option_keeps_all(random_block: PhotonBlock) -> None:
    n_all = int((random_block.signal_conf[:, SurfaceType.SEA_ICE] >= 3).sum())
    out = run(random_block, config=ResampleConfig(nominal_quality_only=False))
    assert int(out["n_photons"].sum()) == n_all
    high = run(random_block, config=ResampleConfig(min_signal_conf=4))
    n_high = int(((random_block.signal_conf[:, 2] == 4) & (random_block.quality_ph == 0)).sum())
    assert int(high["n_photons"].sum()) == n_high


def test_pcnt_pcnth_hand_built() -> None:
    # Bin 0 (x in [1000000, 1000002)): shot 0 has 3 photons (conf 4, 4, 0), shot 1 has 1 photon
    # (conf 3); bin 1: the LAST shot (2) has 2 photons (conf 4, 1) -- Koo's loop left it at 0.
    base = 1_000_000.0
    x = [base + 0.1, base + 0.2, base + 0.3, base + 0.9, base + 2.5, base + 2.6]
    shot = [0, 0, 0, 1, 2, 2]
    conf = [4, 4, 0, 3, 4, 1]
    out = run(make_block(x, np.zeros(6), conf=conf, shot=shot))
    assert out["n_photons"].tolist() == [3, 1]
    # Selected photons of bin 0: two of shot 0 (pcnt 3, pcnth 2) and one of shot 1 (1, 1).
    assert out["pcnt_mean"].tolist() == [pytest.approx(7 / 3), 2.0]
    assert out["pcnth_mean"].tolist() == [pytest.approx(5 / 3), 1.0]
    assert out["pcnt_median"].tolist() == [3.0, 2.0]
    assert out["pcnth_median"].tolist() == [2.0, 1.0]
    assert out["pcnt_sd"].iloc[0] == pytest.approx(np.std([3, 3, 1]))
    pcnt, pcnth = shot_counts(shot_keys([1000] * 6, np.array(shot) + 1), np.array(conf) >= 3)
    assert pcnt.tolist() == [3, 3, 3, 1, 2, 2]
    assert pcnth.tolist() == [2, 2, 2, 1, 1, 1]


def test_specular_shot_filter() -> None:
    x = 1_000_000.5 + np.zeros(20)
    shot = [0] * 17 + [1, 1, 1]
    out = run(make_block(x, np.zeros(20), shot=shot), config=ResampleConfig(max_signal_photons_per_shot=16))
    assert out["n_photons"].tolist() == [3]


def test_single_photon_bins() -> None:
    out = run(make_block([1_000_000.5, 1_000_010.5, 1_000_011.0], [1.0, 2.0, 4.0]))
    assert out["n_photons"].tolist() == [1, 2]
    assert out["single_photon"].tolist() == [True, False]
    assert out["h_std_m"].tolist() == [0.0, 1.0]
    assert out["h_median_m"].tolist() == [1.0, 3.0]
    assert out["x_atc_m"].tolist() == [1_000_000.0, 1_000_010.0]
    assert out["bin_index"].tolist() == [500_000, 500_005]


def test_negative_and_unsorted_x() -> None:
    out = run(make_block([3.0, -0.5, -1.5, 2.9], [1.0, 2.0, 4.0, 3.0]), segments=make_segments(0))
    assert out["bin_index"].tolist() == [-1, 1]
    assert out["x_atc_m"].tolist() == [-2.0, 2.0]
    assert out["h_mean_m"].tolist() == [3.0, 2.0]


def test_longitude_mean_across_dateline() -> None:
    out = run(make_block([1_000_000.1, 1_000_000.2], [0.0, 0.0], lon=[179.9998, -179.9996]))
    assert abs(abs(out["lon_deg"].iloc[0]) - 179.9999) < 1e-9


#: delta_time_to_utc adds the GPS epoch in float64 (~1.3e9 s): UTC is quantised to ~0.24 us.
UTC_QUANTUM_NS = 500


def test_time_mean() -> None:
    block = make_block([1_000_000.1, 1_000_000.9], [0.0, 0.0])
    out = run(block)
    assert out["delta_time_s"].iloc[0] == block.delta_time_s.mean()
    expected = delta_time_to_utc([out["delta_time_s"].iloc[0]])[0]
    got = out["time_utc"].iloc[0].tz_convert(None).to_datetime64()
    assert abs((got - expected) / np.timedelta64(1, "ns")) <= UTC_QUANTUM_NS
    photon_mean = block.time_utc[0] + (block.time_utc[1] - block.time_utc[0]) / 2
    assert abs((got - photon_mean) / np.timedelta64(1, "ns")) <= 1
    assert str(out["time_utc"].dtype) == "datetime64[ns, UTC]"


# ---------------------------------------------------------------------------------------------
# empty inputs and the schema
# ---------------------------------------------------------------------------------------------


def _assert_empty(out: pd.DataFrame) -> None:
    assert out.empty and list(out.columns) == list(OUTPUT_COLUMNS)
    table = to_segments_table(out)
    assert table.num_rows == 0
    assert table.schema.remove_metadata().equals(SEGMENTS_2M_SCHEMA.remove_metadata())


def test_empty_beam() -> None:
    _assert_empty(run(make_block([], [])))


def test_no_signal_photons() -> None:
    _assert_empty(run(make_block(X0_M + np.arange(50.0), np.zeros(50), conf=2)))


def test_schema_registered_and_table(random_block: PhotonBlock) -> None:
    assert SEGMENTS_2M.schema is SEGMENTS_2M_SCHEMA
    out = run(random_block)
    table = to_segments_table(out)
    assert table.num_rows == len(out)
    assert table.schema.field("geometry").type == pa.binary()
    assert b"geo" in (table.schema.metadata or {})
    assert table.column("time_utc").type == pa.timestamp("ns", tz="UTC")
    np.testing.assert_array_equal(table.column("h_mean_m").to_numpy(), out["h_mean_m"].to_numpy())


def test_config_json_roundtrip_and_validation() -> None:
    cfg = ResampleConfig(beams=("gt1l", "gt2r"), correction="paper", fpb_window_m=20.0)
    assert ResampleConfig.from_json(cfg.to_json()) == cfg
    assert ResampleConfig.from_json(ResampleConfig().to_json()) == ResampleConfig()
    for bad in ({"beams": "weak"}, {"beams": ("gt9x",)}, {"fpb_window_m": 3.0}, {"correction": "nasa"},
                {"bin_size_m": 0.0}, {"surface_type": 7}):
        with pytest.raises(ConfigError):
            ResampleConfig.from_dict(bad)


# ---------------------------------------------------------------------------------------------
# corrections
# ---------------------------------------------------------------------------------------------


def test_corrections_interpolated_along_track() -> None:
    x = X0_M + np.array([12.3, 33.1, 77.7, 140.2])  # bin centres between segment centres
    out = run(make_block(x, np.full(4, 1.0)))
    centre = out["x_atc_m"].to_numpy() + BIN_M / 2
    np.testing.assert_allclose(out["tide_ocean_m"], 0.3 + 1e-5 * (centre - X0_M), rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["mss_m"], -48.0 + 1e-4 * (centre - X0_M), rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["tide_paper_m"], 0.1 + 0.01 + 0.002 + 0.0003 - 0.02 + out["tide_ocean_m"],
                               rtol=0, atol=1e-12)
    expected = 1.0 - out["mss_m"] - out["tide_ocean_m"] - out["tide_equilibrium_m"]
    np.testing.assert_allclose(out["h_cor_mean_m"], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["h_cor_median_m"], expected, rtol=0, atol=1e-12)
    assert not out["corrections_missing"].any()
    paper = run(make_block(x, np.full(4, 1.0)), config=ResampleConfig(correction="paper"))
    np.testing.assert_allclose(paper["h_cor_mean_m"], 1.0 - out["mss_m"] - out["tide_paper_m"], atol=1e-12)


def test_fill_corrections_handled() -> None:
    n_seg = 10
    tide = 0.3 + 1e-5 * (X0_M + SEG_M * np.arange(n_seg) + SEG_M / 2 - X0_M)
    tide[[2, 3, 4]] = np.nan  # fill (reader -> NaN) inside the range: interpolate over finite values
    segments = make_segments(n_seg, tide_ocean=tide, dac=np.nan)
    x = X0_M + np.array([1.0, 55.0, 75.0, 195.0])
    out = run(make_block(x, np.zeros(4)), segments=segments)
    centre = out["x_atc_m"].to_numpy() + BIN_M / 2
    inside = (centre >= X0_M + SEG_M / 2) & (centre <= X0_M + SEG_M * (n_seg - 0.5))
    np.testing.assert_allclose(out.loc[inside, "tide_ocean_m"], 0.3 + 1e-5 * (centre[inside] - X0_M), atol=1e-12)
    assert out["tide_ocean_m"].notna().all()
    assert out["dac_m"].isna().all()  # all-NaN column -> NaN, not subtracted by default
    assert not out["corrections_missing"].any()
    # dem_flag != 3 everywhere: no MSS -> NaN corrected heights and the flag.
    no_mss = run(make_block(x, np.zeros(4)), segments=make_segments(n_seg, dem_flag=2.0))
    assert no_mss["mss_m"].isna().all() and no_mss["h_cor_mean_m"].isna().all()
    assert no_mss["corrections_missing"].all() and no_mss["h_mean_m"].notna().all()


def test_corrections_not_extrapolated_far() -> None:
    segments = make_segments(3)
    out = run(make_block([X0_M + 10.0, X0_M + 5_000.0], [0.0, 0.0]), segments=segments,
              config=ResampleConfig(max_correction_distance_m=500.0))
    assert out["mss_m"].notna().tolist() == [True, False]
    assert out["corrections_missing"].tolist() == [False, True]


# ---------------------------------------------------------------------------------------------
# background and first-photon bias
# ---------------------------------------------------------------------------------------------


def test_background_rows_mapping() -> None:
    bg_frames = np.repeat([1000, 1001, 1002], 4)
    rows = background_rows([1000, 1000, 1001, 1001, 1001, 1005], [1, 51, 50, 150, 200, 1], bg_frames)
    assert rows.tolist() == [0, 1, 4, 6, 7, 11]
    block = make_block(X0_M + np.array([0.1, 0.2, 0.3]), np.zeros(3), shot=[0, 60, 250])
    bckgrd = pd.DataFrame({"pce_mframe_cnt": bg_frames, "bckgrd_counts": np.arange(12) * 10,
                           "bckgrd_rate": np.arange(12) * 1e5, "delta_time": np.arange(12.0)})
    out = run(block, bckgrd=bckgrd)
    assert out["bcnt_mean"].iloc[0] == pytest.approx((0 + 10 + 50) / 3)
    assert out["brate_median"].iloc[0] == pytest.approx(1e5)
    assert not out["bckgrd_missing"].any()
    missing = run(block)
    assert missing["bckgrd_missing"].all() and missing["bcnt_mean"].isna().all()
    assert missing["brate_sd"].isna().all() and missing["bcnt_median"].isna().all()


def _fpb_tables(order: tuple[int, int, int] = (0, 1, 2)) -> dict[str, Any]:
    dead = np.array([2.9, 3.0, 3.1, 3.2, 3.3, 3.4])
    strength = (np.arange(160) + 1) * 0.1
    width = (np.arange(498) + 1) * 0.02
    d, s, w = np.meshgrid(np.arange(6), np.arange(160), np.arange(498), indexing="ij")
    cube = (1000.0 * d + 10.0 * s + 0.01 * w).astype(np.float32)
    return {"dead_time": dead, "strength": strength, "width": width, "ffb_corr": np.transpose(cube, order)}


def test_fpb_lookup_at_bin_level() -> None:
    h = np.arange(10) * 0.1
    x = 1_000_000.2 + np.arange(10) * 0.15
    shot = [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]  # 10 photons over 4 shots: strength 2.5
    block = make_block(x, h, shot=shot)
    width_ns = (np.quantile(h, 0.9) - np.quantile(h, 0.1)) / (SPEED_OF_LIGHT_M_S / 2) * 1e9
    tables = _fpb_tables()
    s_idx = int(np.argmin(np.abs(tables["strength"] - 2.5)))
    w_idx = int(np.argmin(np.abs(tables["width"] - width_ns)))
    for fpb, d_idx in ((tables, 3), ({**tables, CAL42_DEAD_TIME_KEY: np.full(16, 3.02e-9)}, 1),
                       ({**_fpb_tables((2, 1, 0)), CAL42_DEAD_TIME_KEY: [3.02e-9]}, 1)):
        out = run(block, fpb=fpb)
        ps = 1000.0 * d_idx + 10.0 * s_idx + 0.01 * w_idx
        expected_m = np.float32(ps) * 1e-12 * SPEED_OF_LIGHT_M_S / 2
        assert out["fpb_corr_m"].tolist() == [pytest.approx(expected_m, rel=1e-6)]
        assert out["fpb_available"].all()
        h_cor = out["h_mean_m"] - out["mss_m"] - out["tide_ocean_m"] - out["tide_equilibrium_m"] - expected_m
        np.testing.assert_allclose(out["h_cor_mean_m"], h_cor, atol=1e-9)
    no_fpb = run(block)
    assert no_fpb["fpb_corr_m"].tolist() == [0.0] and not no_fpb["fpb_available"].any()


def test_fpb_window_shared_by_its_bins(random_block: PhotonBlock) -> None:
    out = run(random_block, fpb=_fpb_tables(), config=ResampleConfig(fpb_window_m=20.0))
    window = out["bin_index"] // 10
    assert (out.groupby(window)["fpb_corr_m"].nunique() == 1).all()
    assert out["fpb_corr_m"].nunique() > 1


# ---------------------------------------------------------------------------------------------
# real ATL03 subset
# ---------------------------------------------------------------------------------------------


def test_realdata_present() -> None:
    assert REALDATA.is_dir(), REALDATA
    assert ATL03_FILE.is_file(), ATL03_FILE


def _chunked(config: ResampleConfig, max_photons: int) -> ResampleConfig:
    return dataclasses.replace(config, max_photons_per_chunk=max_photons)


@pytest.fixture(scope="module")
def real_bins() -> pd.DataFrame:
    return resample_beam(ATL03_FILE, BEAM, GT1L)


def test_real_subset_golden(real_bins: pd.DataFrame) -> None:
    segments = read_segments(ATL03_FILE, BEAM)
    photons = read_photons(ATL03_FILE, BEAM)
    selected = (photons.signal_conf[:, SurfaceType.SEA_ICE] >= 3) & (photons.quality_ph == 0)
    assert len(real_bins) == REAL_N_BINS
    assert int(real_bins["n_photons"].sum()) == REAL_N_SELECTED == int(selected.sum())
    assert (real_bins["granule"] == REAL_GRANULE).all() and (real_bins["beam"] == BEAM).all()
    assert real_bins["bin_index"].is_monotonic_increasing and real_bins["bin_index"].is_unique
    np.testing.assert_array_equal(real_bins["x_atc_m"], real_bins["bin_index"] * BIN_M)
    # Every bin overlaps one of the two pieces' along-track ranges, none falls in the 400 km gap.
    x0 = real_bins["x_atc_m"].to_numpy()
    counts = []
    for lo_id, hi_id in REAL_PIECE_IDS:
        piece = segments[(segments["segment_id"] >= lo_id) & (segments["segment_id"] <= hi_id)]
        start = piece["segment_dist_x_m"].min()
        end = (piece["segment_dist_x_m"] + piece["segment_length_m"]).max()
        counts.append(int(((x0 + BIN_M > start) & (x0 < end)).sum()))
    assert tuple(counts) == REAL_PIECE_BINS and sum(counts) == REAL_N_BINS
    # dem_flag is 3 throughout: every correction finite, MSS-relative heights of sea ice.
    for col in ("mss_m", "tide_ocean_m", "tide_equilibrium_m", "tide_paper_m", "dac_m", "geoid_m",
                "solar_elevation_deg", "solar_azimuth_deg", "h_cor_mean_m", "h_cor_median_m"):
        assert np.isfinite(real_bins[col]).all(), col
    assert not real_bins["corrections_missing"].any()
    assert real_bins["h_cor_mean_m"].between(-0.5, 1.5).all()
    assert (real_bins["mss_m"] - real_bins["h_mean_m"]).abs().max() < 1.5
    assert not real_bins["bckgrd_missing"].any() and real_bins["bcnt_mean"].notna().all()
    assert not real_bins["fpb_available"].any() and (real_bins["fpb_corr_m"] == 0).all()
    assert (real_bins["pcnth_mean"] <= real_bins["pcnt_mean"]).all()


def test_real_background_within_frame(real_bins: pd.DataFrame) -> None:
    bg = read_bckgrd(ATL03_FILE, BEAM)
    assert real_bins["bcnt_mean"].between(bg["bckgrd_counts"].min(), bg["bckgrd_counts"].max()).all()
    assert real_bins["brate_mean"].between(bg["bckgrd_rate"].min(), bg["bckgrd_rate"].max()).all()


@pytest.mark.parametrize("max_photons", [1, 50, 150, 700])
def test_chunked_equals_unchunked(real_bins: pd.DataFrame, max_photons: int) -> None:
    chunked = resample_beam(ATL03_FILE, BEAM, _chunked(GT1L, max_photons))
    pd.testing.assert_frame_equal(chunked, real_bins, check_exact=True)


def test_chunk_boundaries_really_split_bins(real_bins: pd.DataFrame) -> None:
    # Naive per-chunk processing splits the bins that straddle chunk edges: halo + ownership matter.
    segments = read_segments(ATL03_FILE, BEAM)
    chunks = segment_chunks(segments["segment_ph_cnt"], 1, segments["ph_index_beg"])
    naive = pd.concat(
        [resample_photons(read_photons(ATL03_FILE, BEAM, a, b), segments, read_bckgrd(ATL03_FILE, BEAM), None,
                          GT1L, beam=BEAM, granule=REAL_GRANULE) for a, b in chunks],
        ignore_index=True,
    )
    assert len(naive) > len(real_bins)
    assert int(naive["n_photons"].sum()) == int(real_bins["n_photons"].sum())
    whole = resample_photons(read_photons(ATL03_FILE, BEAM), segments, read_bckgrd(ATL03_FILE, BEAM), None, GT1L,
                             beam=BEAM, granule=REAL_GRANULE)
    pd.testing.assert_frame_equal(whole, real_bins, check_exact=True)


@pytest.fixture
def real_copy(tmp_path: Path) -> Path:
    dst = tmp_path / ATL03_FILE.name
    shutil.copyfile(ATL03_FILE, dst)
    return dst


def test_shots_straddling_chunks(real_copy: Path) -> None:
    # Make the first photon of every segment share the shot of the previous segment's last
    # photon: its shot counts need the neighbouring chunk.
    with h5py.File(real_copy, "r+") as f:
        beg = f[f"{BEAM}/geolocation/ph_index_beg"][:]
        first = beg[1:][beg[1:] > 1] - 1  # 0-based first photon of each later segment
        for name in ("pce_mframe_cnt", "ph_id_pulse"):
            data = f[f"{BEAM}/heights/{name}"][:]
            data[first] = data[first - 1]
            f[f"{BEAM}/heights/{name}"][:] = data
    whole = resample_beam(real_copy, BEAM, GT1L)
    for max_photons in (1, 90):
        pd.testing.assert_frame_equal(resample_beam(real_copy, BEAM, _chunked(GT1L, max_photons)), whole,
                                      check_exact=True)


def test_missing_bckgrd_group(real_copy: Path, real_bins: pd.DataFrame) -> None:
    with h5py.File(real_copy, "r+") as f:
        del f[f"{BEAM}/bckgrd_atlas"]
    out = resample_beam(real_copy, BEAM, _chunked(GT1L, 200))
    assert out["bckgrd_missing"].all()
    for col in ("bcnt_mean", "bcnt_sd", "bcnt_median", "brate_mean", "brate_sd", "brate_median"):
        assert out[col].isna().all(), col
    same = [c for c in OUTPUT_COLUMNS if not c.startswith(("bcnt", "brate", "bckgrd"))]
    pd.testing.assert_frame_equal(out[same], real_bins[same], check_exact=True)


def test_resample_granule_beam_selection(real_bins: pd.DataFrame) -> None:
    assert resample_granule(ATL03_FILE) == {}  # gt1l is weak (sc_orient forward)
    out = resample_granule(ATL03_FILE, GT1L)
    assert list(out) == [BEAM]
    pd.testing.assert_frame_equal(out[BEAM], real_bins, check_exact=True)
    assert list(resample_granule(ATL03_FILE, ResampleConfig(beams="all"))) == [BEAM]


# ---------------------------------------------------------------------------------------------
# simulated granule with truth
# ---------------------------------------------------------------------------------------------

SIM_KM = 20
#: At least this fraction of bins must lie within 4 sigma / sqrt(N) of the truth, where sigma is
#: the simulator's per-photon system jitter (the lower bound of the photon noise; background
#: photons flagged as signal and sub-bin freeboard changes make the rest).
SIM_MIN_FRACTION_WITHIN = 0.98
SIM_Z = 4.0
#: Photon-weighted mean error over all bins below this many sigma / sqrt(total photons).
SIM_BIAS_SIGMAS = 10.0
#: Selected photons vs truth signal photons: total relative difference, fraction of bins within
#: one photon, correlation of the per-bin counts.
SIM_COUNT_TOTAL_RTOL = 0.03
SIM_COUNT_BIN_FRACTION = 0.95
SIM_COUNT_CORRELATION = 0.99


@pytest.fixture(scope="module")
def sim_granule(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    from seaice_tasks.sim import atl03 as sim
    from seaice_tasks.sim.geometry import SimConfig, plan_day
    from seaice_tasks.sim.world import TruthWorld

    cfg = SimConfig(granules=1, km=SIM_KM)
    d = tmp_path_factory.mktemp("sim_atl03")
    path = sim.write_atl03_granule(TruthWorld(cfg.world), plan_day(cfg).tracks[0], cfg, d, d)
    truth = pd.read_parquet(sim.truth_paths(d, path.name).bins)
    return path, truth


def test_simulated_granule_accuracy(sim_granule: tuple[Path, pd.DataFrame]) -> None:
    from seaice_tasks.sim.atl03 import SYSTEM_JITTER_M

    path, truth = sim_granule
    out = resample_granule(path)
    assert len(out) == 3  # strong beams
    for beam, bins in out.items():
        assert bins["fpb_available"].all() and (bins["fpb_corr_m"] == 0).all()  # sim CAL-19 is all 0 ps
        m = bins.merge(truth[truth["beam"] == beam], on="x_atc_m", suffixes=("", "_truth"), validate="1:1")
        assert len(m) == len(bins)  # every output bin is a truth bin
        # Corrected heights are MSS/tide free: truth = DAC + residual + freeboard.
        expected = m["dac_m_truth"] + m["residual_m"] + m["freeboard_m"]
        err = m["h_cor_mean_m"] - expected
        sigma_bin = SYSTEM_JITTER_M / np.sqrt(m["n_photons"])
        assert (err.abs() <= SIM_Z * sigma_bin).mean() >= SIM_MIN_FRACTION_WITHIN, beam
        bias = np.average(err, weights=m["n_photons"])
        assert abs(bias) < SIM_BIAS_SIGMAS * SYSTEM_JITTER_M / np.sqrt(m["n_photons"].sum()), (beam, bias)
        np.testing.assert_allclose(m["mss_m"], m["mss_m_truth"], atol=1e-3)
        np.testing.assert_allclose(m["tide_ocean_m"], m["tide_ocean_m_truth"], atol=1e-4)
        # Photon counts vs the truth surface-signal photons (selection also keeps a few background
        # photons the signal finder flags and drops afterpulses): totals and most bins close.
        total, total_truth = int(m["n_photons"].sum()), int(m["n_signal_photons"].sum())
        assert abs(total - total_truth) <= SIM_COUNT_TOTAL_RTOL * total_truth
        assert ((m["n_photons"] - m["n_signal_photons"]).abs() <= 1).mean() >= SIM_COUNT_BIN_FRACTION
        assert np.corrcoef(m["n_photons"], m["n_signal_photons"])[0, 1] > SIM_COUNT_CORRELATION


def test_simulated_chunked_equals_unchunked(sim_granule: tuple[Path, pd.DataFrame]) -> None:
    path, _ = sim_granule
    for config in (ResampleConfig(), ResampleConfig(fpb_window_m=10.0)):
        whole = resample_beam(path, "gt2r", config)
        pd.testing.assert_frame_equal(resample_beam(path, "gt2r", _chunked(config, 2500)), whole,
                                      check_exact=True)

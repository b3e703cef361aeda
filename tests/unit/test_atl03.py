"""Tests of the ATL03 reader against the real Harmony subset (and bad copies of it)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest

from seaice_tasks.config import ReaderConfig
from seaice_tasks.constants import ATLAS_SDP_GPS_EPOCH_S, H5_FILL_FLOAT32
from seaice_tasks.errors import (
    AllFillError,
    CorruptFileError,
    InputError,
    MissingBeamError,
    MissingVariableError,
    WrongProductError,
)
from seaice_tasks.io.atl03 import (
    ATL03_PATHS_USED,
    SIGNAL_CONF_COLUMNS,
    iter_segment_chunks,
    photon_slice,
    read_atl03_info,
    read_bckgrd,
    read_fpb_tables,
    read_photons,
    read_segments,
    segment_chunks,
    summarize_atl03,
)
from seaice_tasks.io.summary import BeamSummary

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
ATL03_FILE = REALDATA / "icesat2" / "harmony_ATL03_gt1l.h5"
INDEX_FILE = REALDATA / "icesat2" / "harmony_ATL03_indexbegin_start_end_FVs.h5"
ATL07_FILE = REALDATA / "icesat2" / "icepyx_processed_ATL07-01_20190222003738_08490201_003_02.h5"
VARIABLES_JSON = REALDATA / "icesat2" / "icepyx_is2variables.json"
BEAM = "gt1l"

# Golden numbers of harmony_ATL03_gt1l.h5 (subset of ATL03_20181014002445_02350104_006_02.h5).
N_PHOTONS = 2909
N_SEGMENTS = 40
PIECE1_IDS = np.arange(490801, 490805)
PIECE2_IDS = np.arange(510948, 510984)
PIECE_PHOTONS = (304, 2605)
SEGMENT_ID_JUMP = 20144
H_PH_RANGE = (-5.236019, 13.987689)
LAT_RANGE = (87.2943, 87.2987)
# Equal to the temporal constraint Harmony wrote into the file's "Processing Parameters".
TIME_START = dt.datetime(2018, 10, 14, 0, 26, 50, 795463, tzinfo=dt.UTC)
TIME_END = dt.datetime(2018, 10, 14, 0, 27, 47, 682564, tzinfo=dt.UTC)
SEA_ICE_CONF_COUNTS = {0: 8, 1: 223, 4: 2678}
N_BCKGRD_ROWS = 11378
MFRAME_RANGE = (87844985, 87847829)
# Photons of one 20 m segment are not ordered by x_atc: backward steps up to ~1.6 cm.
MAX_X_ATC_BACKSTEP_M = 0.02

# harmony_ATL03_indexbegin_start_end_FVs.h5: /ph_index_beg only (no segment_ph_cnt).
INDEX_N_ROWS = 149697
INDEX_N_FILL = 26574
INDEX_FIRST_NONFILL_ROW = 5
INDEX_LAST_NONFILL_ROW = 149398
INDEX_LAST_BEG = 3219958


def test_realdata_present() -> None:
    assert REALDATA.is_dir(), REALDATA
    for p in (ATL03_FILE, INDEX_FILE, ATL07_FILE, VARIABLES_JSON):
        assert p.is_file(), p


@pytest.fixture
def real_copy(tmp_path: Path) -> Path:
    """Writable copy of the real subset (copyfile: the source is read-only)."""
    out = tmp_path / "ATL03_copy.h5"
    shutil.copyfile(ATL03_FILE, out)
    return out


@pytest.fixture(scope="module")
def full_block() -> pd.DataFrame:
    return read_photons(ATL03_FILE, BEAM).to_pandas()


@pytest.fixture(scope="module")
def segments() -> pd.DataFrame:
    return read_segments(ATL03_FILE, BEAM)


# ---------------------------------------------------------------------------------------------
# info / summary
# ---------------------------------------------------------------------------------------------


def test_info_golden(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="seaice_tasks.io.atl03"):
        info = read_atl03_info(ATL03_FILE)
    assert info.path == str(ATL03_FILE)
    assert info.granule is not None  # from METADATA/DatasetIdentification fileName
    assert info.granule.granule == "20181014002445_02350104"
    assert (info.granule.rgt, info.granule.cycle, info.granule.region) == (235, 1, 4)
    assert info.release == 6
    assert info.beam_names == (BEAM,)
    beam = info.beam(BEAM)
    assert (beam.strength, beam.n_photons, beam.n_segments) == ("weak", N_PHOTONS, N_SEGMENTS)
    assert (info.time_start_utc, info.time_end_utc) == (TIME_START, TIME_END)
    assert info.time_start_utc is not None and info.time_start_utc.date() == dt.date(2018, 10, 14)
    # No orbit_info / ancillary_data in the subset: fallbacks, warnings, no crash.
    assert info.sc_orient == 1
    assert info.sc_orient_source == "beam_attribute"
    assert info.atlas_sdp_gps_epoch_s == ATLAS_SDP_GPS_EPOCH_S
    assert len(info.warnings) == 2
    assert "orbit_info/sc_orient" in info.warnings[0]
    assert "ancillary_data/atlas_sdp_gps_epoch" in info.warnings[1]
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert set(info.warnings) <= set(logged)
    with pytest.raises(KeyError):
        info.beam("gt2r")


def test_summary_golden() -> None:
    summary = summarize_atl03(ATL03_FILE)
    assert summary.product == "ATL03"
    assert summary.granule == "20181014002445_02350104"
    assert summary.beams == (BeamSummary(BEAM, "weak", N_PHOTONS, N_SEGMENTS),)
    assert summary.time_start_utc == "2018-10-14T00:26:50.795463Z"
    assert summary.time_end_utc == "2018-10-14T00:27:47.682564Z"
    assert summary.extra == {
        "sc_orient": 1,
        "sc_orient_source": "beam_attribute",
        "atlas_sdp_gps_epoch_s": ATLAS_SDP_GPS_EPOCH_S,
        "release": 6,
    }
    assert len(summary.warnings) == 2
    json.dumps(summary.to_dict())


def test_info_config_default_and_strength_fallbacks(real_copy: Path) -> None:
    with h5py.File(real_copy, "r+") as f:
        del f[BEAM].attrs["sc_orientation"]
    info = read_atl03_info(real_copy, ReaderConfig(default_sc_orient=0))
    assert (info.sc_orient, info.sc_orient_source) == (0, "config_default")
    assert "default_sc_orient=0" in info.warnings[0]
    assert info.beam(BEAM).strength == "weak"  # atlas_beam_type wins over sc_orient
    with h5py.File(real_copy, "r+") as f:
        del f[BEAM].attrs["atlas_beam_type"]
    for orient, strength in ((0, "strong"), (1, "weak"), (2, "unknown")):
        got = read_atl03_info(real_copy, ReaderConfig(default_sc_orient=orient)).beam(BEAM).strength
        assert got == strength, orient


def test_info_reads_orbit_info_and_epoch(real_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    one_day_s = 86400.0
    with h5py.File(real_copy, "r+") as f:
        f.create_dataset("orbit_info/sc_orient", data=np.array([0], dtype=np.int8))
        f.create_dataset(
            "ancillary_data/atlas_sdp_gps_epoch", data=np.array([ATLAS_SDP_GPS_EPOCH_S + one_day_s])
        )
    with caplog.at_level(logging.WARNING, logger="seaice_tasks.io.atl03"):
        info = read_atl03_info(real_copy)
    assert (info.sc_orient, info.sc_orient_source, info.warnings) == (0, "orbit_info", ())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert info.time_start_utc == TIME_START + dt.timedelta(days=1)
    block = read_photons(real_copy, BEAM, 0, 1)
    assert pd.Timestamp(block.time_utc[0]).date() == dt.date(2018, 10, 15)


# ---------------------------------------------------------------------------------------------
# segments
# ---------------------------------------------------------------------------------------------


def test_segments_golden(segments: pd.DataFrame) -> None:
    s = segments
    assert len(s) == N_SEGMENTS
    assert s["segment_id"].dtype == np.int64
    np.testing.assert_array_equal(s["segment_id"], np.r_[PIECE1_IDS, PIECE2_IDS])
    assert np.diff(s["segment_id"]).max() == SEGMENT_ID_JUMP
    assert s["segment_ph_cnt"].sum() == N_PHOTONS
    beg, cnt = s["ph_index_beg"].to_numpy(), s["segment_ph_cnt"].to_numpy()
    assert beg[0] == 1  # 1-based, as stored (the subsetter re-indexed)
    np.testing.assert_array_equal(beg[1:], beg[:-1] + cnt[:-1])
    piece1 = s["segment_id"].isin(PIECE1_IDS)
    assert s.loc[piece1, "segment_ph_cnt"].sum() == PIECE_PHOTONS[0]
    assert s.loc[~piece1, "segment_ph_cnt"].sum() == PIECE_PHOTONS[1]
    # Within a piece, segment starts are one segment length apart.
    for mask in (piece1, ~piece1):
        part = s[mask]
        np.testing.assert_allclose(np.diff(part["segment_dist_x_m"]), part["segment_length_m"].iloc[:-1])
    assert (s["dem_flag"] == 3).all()  # MSS
    geophys = ["geoid", "geoid_free2mean", "dac", "tide_ocean", "tide_earth", "tide_load", "tide_pole"]
    assert s[[*geophys, "tide_oc_pole", "tide_equilibrium", "dem_h"]].notna().all().all()
    assert s[["solar_elevation", "solar_azimuth", "delta_time"]].notna().all().all()


def test_segments_row_range(segments: pd.DataFrame) -> None:
    part = read_segments(ATL03_FILE, BEAM, 3, 7)
    pd.testing.assert_frame_equal(part, segments.iloc[3:7].reset_index(drop=True))


def test_segments_optional_missing_is_nan(real_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    with h5py.File(real_copy, "r+") as f:
        del f[f"{BEAM}/geophys_corr/dac"]
    with caplog.at_level(logging.WARNING, logger="seaice_tasks.io.atl03"):
        s = read_segments(real_copy, BEAM)
    assert s["dac"].isna().all()
    assert s["geoid"].notna().all()
    assert any("geophys_corr/dac" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("name", ["segment_id", "ph_index_beg", "segment_ph_cnt", "segment_dist_x"])
def test_segments_required_missing(real_copy: Path, name: str) -> None:
    with h5py.File(real_copy, "r+") as f:
        del f[f"{BEAM}/geolocation/{name}"]
    with pytest.raises(MissingVariableError, match=name) as exc:
        read_segments(real_copy, BEAM)
    assert str(real_copy) in str(exc.value)


# ---------------------------------------------------------------------------------------------
# photons
# ---------------------------------------------------------------------------------------------


def test_photons_golden(full_block: pd.DataFrame, segments: pd.DataFrame) -> None:
    ph = full_block
    assert len(ph) == N_PHOTONS == segments["segment_ph_cnt"].sum()
    assert list(ph.columns[7:12]) == list(SIGNAL_CONF_COLUMNS)
    counts = ph.groupby(ph["segment_id"].isin(PIECE1_IDS)).size()
    assert (counts[True], counts[False]) == PIECE_PHOTONS
    assert ph["h_ph_m"].dtype == np.float32
    np.testing.assert_allclose((ph["h_ph_m"].min(), ph["h_ph_m"].max()), H_PH_RANGE, atol=1e-5)
    assert LAT_RANGE[0] < ph["lat_deg"].min() < ph["lat_deg"].max() < LAT_RANGE[1]
    assert (ph["time_utc"].dt.date == dt.date(2018, 10, 14)).all()
    assert ph["time_utc"].min().floor("us") == pd.Timestamp(TIME_START.replace(tzinfo=None))
    assert ph["time_utc"].max().floor("us") == pd.Timestamp(TIME_END.replace(tzinfo=None))
    assert ph["signal_conf_sea_ice"].value_counts().to_dict() == SEA_ICE_CONF_COUNTS
    # Per-segment photon counts and segment rows agree with the segment table.
    np.testing.assert_array_equal(
        ph.groupby("segment_row").size().to_numpy(), segments["segment_ph_cnt"].to_numpy()
    )
    np.testing.assert_array_equal(ph["segment_id"], segments["segment_id"].to_numpy()[ph["segment_row"]])


def test_photons_x_atc(full_block: pd.DataFrame, segments: pd.DataFrame) -> None:
    ph = full_block
    seg_x = segments["segment_dist_x_m"].to_numpy()[ph["segment_row"]]
    seg_len = segments["segment_length_m"].to_numpy()[ph["segment_row"]]
    assert ph["x_atc_m"].dtype == np.float64
    np.testing.assert_allclose(ph["x_atc_m"] - seg_x, ph["dist_ph_along_m"], atol=1e-6)
    assert ((ph["x_atc_m"] >= seg_x) & (ph["x_atc_m"] < seg_x + seg_len)).all()
    # Within each piece x_atc increases overall but is not monotonic photon by photon.
    for mask in (ph["segment_id"].isin(PIECE1_IDS), ~ph["segment_id"].isin(PIECE1_IDS)):
        steps = np.diff(ph.loc[mask, "x_atc_m"].to_numpy())
        assert (steps < 0).any()
        assert steps.min() > -MAX_X_ATC_BACKSTEP_M


def test_photons_middle_range(full_block: pd.DataFrame, segments: pd.DataFrame) -> None:
    start, stop = 2, 10  # crosses the gap between the two pieces
    p0, p1 = photon_slice(segments["ph_index_beg"], segments["segment_ph_cnt"], start, stop)
    assert (p0, p1) == (160, 760)
    block = read_photons(ATL03_FILE, BEAM, start, stop)
    assert (block.seg_start, block.seg_stop, block.ph_start, len(block)) == (start, stop, p0, p1 - p0)
    expected = full_block.iloc[p0:p1].reset_index(drop=True)
    pd.testing.assert_frame_equal(block.to_pandas(), expected)
    assert set(block.segment_row) == set(range(start, stop))


def test_photons_empty_range() -> None:
    block = read_photons(ATL03_FILE, BEAM, 5, 5)
    assert len(block) == 0
    assert block.signal_conf.shape == (0, len(SIGNAL_CONF_COLUMNS))
    assert len(block.to_pandas()) == 0
    with pytest.raises(ValueError, match="outside"):
        read_photons(ATL03_FILE, BEAM, 0, N_SEGMENTS + 1)


def test_photons_inconsistent_index(real_copy: Path) -> None:
    with h5py.File(real_copy, "r+") as f:
        f[f"{BEAM}/geolocation/segment_ph_cnt"][-1] = 500
    with pytest.raises(CorruptFileError, match="inconsistent") as exc:
        read_photons(real_copy, BEAM)
    assert str(real_copy) in str(exc.value)


# ---------------------------------------------------------------------------------------------
# chunks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_photons", [50, 150, 300, 1000, N_PHOTONS, 10**9])
def test_chunks_cover_and_concatenate(
    max_photons: int, full_block: pd.DataFrame, segments: pd.DataFrame
) -> None:
    chunks = iter_segment_chunks(ATL03_FILE, BEAM, max_photons)
    assert chunks[0][0] == 0 and chunks[-1][1] == N_SEGMENTS
    assert all(a < b for a, b in chunks)
    assert all(chunks[k][1] == chunks[k + 1][0] for k in range(len(chunks) - 1))
    cnt = segments["segment_ph_cnt"].to_numpy()
    for a, b in chunks:
        assert cnt[a:b].sum() <= max_photons or b - a == 1
    parts = [read_photons(ATL03_FILE, BEAM, a, b).to_pandas() for a, b in chunks]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), full_block)


def test_chunks_edge_sizes() -> None:
    # Every segment holds more than 50 photons: one chunk per segment.
    assert iter_segment_chunks(ATL03_FILE, BEAM, 50) == [(k, k + 1) for k in range(N_SEGMENTS)]
    assert iter_segment_chunks(ATL03_FILE, BEAM, N_PHOTONS) == [(0, N_SEGMENTS)]
    assert len(iter_segment_chunks(ATL03_FILE, BEAM, N_PHOTONS - 1)) == 2
    with pytest.raises(ValueError, match="max_photons"):
        iter_segment_chunks(ATL03_FILE, BEAM, 0)


def test_segment_chunks_skips_fill_index() -> None:
    # A fill (0) ph_index_beg means empty whatever the count says.
    assert segment_chunks([5, 5, 5], 6, ph_index_beg=[1, 0, 6]) == [(0, 2), (2, 3)]


# ---------------------------------------------------------------------------------------------
# ph_index_beg edge file (fill values inside and at both ends)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index_beg() -> np.ndarray[Any, np.dtype[np.int64]]:
    with h5py.File(INDEX_FILE, "r") as f:
        return np.asarray(f["ph_index_beg"][:], dtype=np.int64)


def _counts_from_beg(beg: np.ndarray[Any, np.dtype[np.int64]], last_count: int) -> np.ndarray[Any, Any]:
    """segment_ph_cnt implied by consecutive non-fill ph_index_beg (the file has no counts)."""
    cnt = np.zeros_like(beg)
    rows = np.flatnonzero(beg)
    cnt[rows[:-1]] = np.diff(beg[rows])
    cnt[rows[-1]] = last_count
    return cnt


def test_index_file_layout(index_beg: np.ndarray[Any, np.dtype[np.int64]]) -> None:
    beg = index_beg
    rows = np.flatnonzero(beg)
    assert beg.size == INDEX_N_ROWS
    assert (beg == 0).sum() == INDEX_N_FILL
    # Despite SOURCES.md, the array starts AND ends with fill (the file name says so: start_end_FVs).
    assert (rows[0], rows[-1]) == (INDEX_FIRST_NONFILL_ROW, INDEX_LAST_NONFILL_ROW)
    assert (beg[rows[0]], beg[rows[-1]]) == (1, INDEX_LAST_BEG)
    assert (np.diff(beg[rows]) > 0).all()


def test_photon_slice_on_index_file(index_beg: np.ndarray[Any, np.dtype[np.int64]]) -> None:
    last_count = 7
    beg = index_beg
    cnt = _counts_from_beg(beg, last_count)
    total = INDEX_LAST_BEG - 1 + last_count
    assert photon_slice(beg, cnt) == (0, total)
    assert photon_slice(beg, cnt, 0, INDEX_FIRST_NONFILL_ROW) == (0, 0)  # leading fill only
    assert photon_slice(beg, cnt, INDEX_LAST_NONFILL_ROW + 1) == (0, 0)  # trailing fill only
    # A range starting and ending on fill rows: bounds come from the non-fill rows inside.
    zero_rows = np.flatnonzero(beg == 0)
    start, stop = int(zero_rows[1000]), int(zero_rows[20000]) + 1
    inside = np.flatnonzero(beg[start:stop]) + start
    assert beg[start] == 0 and beg[stop - 1] == 0
    assert photon_slice(beg, cnt, start, stop) == (beg[inside[0]] - 1, beg[inside[-1]] - 1 + cnt[inside[-1]])
    # Chunks tile the photon axis without gaps or overlap, fill rows anywhere.
    chunks = segment_chunks(cnt, 100_000, beg)
    slices = [photon_slice(beg, cnt, a, b) for a, b in chunks]
    nonempty = [s for s in slices if s != (0, 0)]
    assert nonempty[0][0] == 0 and nonempty[-1][1] == total
    assert all(nonempty[k][1] == nonempty[k + 1][0] for k in range(len(nonempty) - 1))
    assert all(b - a <= 100_000 for a, b in nonempty)


def test_photon_slice_bad_arguments() -> None:
    with pytest.raises(ValueError, match="equal"):
        photon_slice([1, 2], [1])
    with pytest.raises(ValueError, match="outside"):
        photon_slice([1, 2], [1, 1], 2, 1)


# ---------------------------------------------------------------------------------------------
# background and FPB tables
# ---------------------------------------------------------------------------------------------


def test_bckgrd_golden(full_block: pd.DataFrame) -> None:
    bg = read_bckgrd(ATL03_FILE, BEAM)
    assert list(bg.columns) == [
        "delta_time",
        "pce_mframe_cnt",
        "bckgrd_counts",
        "bckgrd_rate",
        "bckgrd_int_height",
    ]
    assert len(bg) == N_BCKGRD_ROWS
    assert (bg["pce_mframe_cnt"].min(), bg["pce_mframe_cnt"].max()) == MFRAME_RANGE
    # Same major frames as the photons (bckgrd delta_time is not the window start: no time check).
    photon_frames = (full_block["pce_mframe_cnt"].min(), full_block["pce_mframe_cnt"].max())
    assert photon_frames == MFRAME_RANGE
    assert (np.diff(bg["delta_time"]) > 0).all()
    assert bg.notna().all().all()


def test_bckgrd_missing_group(real_copy: Path) -> None:
    with h5py.File(real_copy, "r+") as f:
        del f[f"{BEAM}/bckgrd_atlas"]
    with pytest.raises(MissingVariableError, match="bckgrd_atlas") as exc:
        read_bckgrd(real_copy, BEAM)
    assert str(real_copy) in str(exc.value)


def test_fpb_tables(real_copy: Path) -> None:
    assert read_fpb_tables(ATL03_FILE, BEAM) is None  # subset: no ancillary calibrations
    shape = (6, 160, 498)
    with h5py.File(real_copy, "r+") as f:
        group = f.create_group(f"ancillary_data/calibrations/first_photon_bias/{BEAM}")
        group["ffb_corr"] = np.zeros(shape, dtype=np.float32)
        for name, size in zip(("dead_time", "strength", "width"), shape, strict=True):
            group[name] = np.arange(size, dtype=np.float32)
    tables = read_fpb_tables(real_copy, BEAM)
    assert tables is not None
    assert set(tables) == {"ffb_corr", "width", "strength", "dead_time"}
    assert tables["ffb_corr"].shape == shape


# ---------------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------------

Reader = Callable[[Path], object]
ALL_READERS: dict[str, Reader] = {
    "info": read_atl03_info,
    "summary": summarize_atl03,
    "segments": lambda p: read_segments(p, BEAM),
    "photons": lambda p: read_photons(p, BEAM),
    "chunks": lambda p: iter_segment_chunks(p, BEAM),
    "bckgrd": lambda p: read_bckgrd(p, BEAM),
    "fpb": lambda p: read_fpb_tables(p, BEAM),
}
BEAM_READERS: dict[str, Callable[[Path, str], object]] = {
    "segments": read_segments,
    "photons": read_photons,
    "chunks": iter_segment_chunks,
    "bckgrd": read_bckgrd,
    "fpb": read_fpb_tables,
}
TRUNCATED_BYTES = 10 * 1024


def _assert_names_file(exc: pytest.ExceptionInfo[InputError], path: Path) -> None:
    assert str(path) in str(exc.value)
    assert exc.value.path == str(path)


@pytest.mark.parametrize("reader", ALL_READERS.values(), ids=ALL_READERS.keys())
def test_truncated_file(tmp_path: Path, reader: Reader) -> None:
    path = tmp_path / "ATL03_truncated.h5"
    path.write_bytes(ATL03_FILE.read_bytes()[:TRUNCATED_BYTES])
    with pytest.raises(CorruptFileError) as exc:
        reader(path)
    _assert_names_file(exc, path)


@pytest.mark.parametrize("reader", ALL_READERS.values(), ids=ALL_READERS.keys())
def test_text_file(tmp_path: Path, reader: Reader) -> None:
    path = tmp_path / "not_hdf5.h5"
    path.write_text("this is not an HDF5 file\n")
    with pytest.raises(CorruptFileError) as exc:
        reader(path)
    _assert_names_file(exc, path)


@pytest.mark.parametrize("reader", ALL_READERS.values(), ids=ALL_READERS.keys())
def test_missing_file(tmp_path: Path, reader: Reader) -> None:
    path = tmp_path / "absent.h5"
    with pytest.raises(CorruptFileError) as exc:
        reader(path)
    _assert_names_file(exc, path)


@pytest.mark.parametrize("reader", ALL_READERS.values(), ids=ALL_READERS.keys())
def test_atl07_file(reader: Reader) -> None:
    with pytest.raises(WrongProductError, match="expected ATL03, found ATL07") as exc:
        reader(ATL07_FILE)
    _assert_names_file(exc, ATL07_FILE)


@pytest.mark.parametrize("reader", BEAM_READERS.values(), ids=BEAM_READERS.keys())
def test_missing_beam(reader: Callable[[Path, str], object]) -> None:
    with pytest.raises(MissingBeamError, match="gt2r") as exc:
        reader(ATL03_FILE, "gt2r")
    _assert_names_file(exc, ATL03_FILE)
    assert "['gt1l']" in str(exc.value)  # lists the beams present


@pytest.mark.parametrize("reader", ["info", "summary", "photons"])
def test_all_fill_heights(real_copy: Path, reader: str) -> None:
    with h5py.File(real_copy, "r+") as f:
        f[f"{BEAM}/heights/h_ph"][...] = np.float32(H5_FILL_FLOAT32)
    with pytest.raises(AllFillError, match="h_ph") as exc:
        ALL_READERS[reader](real_copy)
    _assert_names_file(exc, real_copy)


# ---------------------------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------------------------


def test_paths_exist_in_real_atl03_schema() -> None:
    schema = set(json.loads(VARIABLES_JSON.read_text())["ATL03"])
    used = {p.format(beam=BEAM) for p in ATL03_PATHS_USED}
    assert used - schema == set()


def test_paths_used_in_subset_file() -> None:
    """Everything except the granule-level groups a subset drops is in the real subset."""
    with h5py.File(ATL03_FILE, "r") as f:
        missing = {p.format(beam=BEAM) for p in ATL03_PATHS_USED if p.format(beam=BEAM) not in f}
    assert all(p.startswith(("orbit_info/", "ancillary_data/")) for p in missing), missing

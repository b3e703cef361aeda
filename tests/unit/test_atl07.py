"""ATL07 reader on the three real release-003 granules in shared/realdata/icesat2."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from seaice_tasks.constants import BEAMS, ATL07SurfaceType
from seaice_tasks.errors import CorruptFileError, MissingBeamError, MissingVariableError, WrongProductError
from seaice_tasks.io.atl07 import ATL07_COLUMNS, ATL07_PATHS_USED, read_atl07, summarize_atl07

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
ICESAT2 = REALDATA / "icesat2"
VARIABLES_JSON = ICESAT2 / "icepyx_is2variables.json"

F0222 = ICESAT2 / "icepyx_processed_ATL07-01_20190222003738_08490201_003_02.h5"
F0225 = ICESAT2 / "icepyx_processed_ATL07-01_20190225115500_09020201_003_02.h5"
F0226 = ICESAT2 / "icepyx_processed_ATL07-01_20190226002919_09100201_003_02.h5"

# Golden numbers, read with h5py and matching SOURCES.md.
SEGMENTS: dict[Path, dict[str, int]] = {
    F0222: {"gt1l": 75, "gt1r": 33, "gt2l": 27, "gt2r": 0, "gt3l": 368, "gt3r": 304},
    F0225: {"gt1l": 882, "gt1r": 874, "gt2l": 0, "gt2r": 0, "gt3l": 0, "gt3r": 0},
    F0226: {"gt1l": 209, "gt1r": 11, "gt2l": 367, "gt2r": 92, "gt3l": 943, "gt3r": 641},
}
#: Segments with a valid (non-fill) height_segment_height.
VALID_HEIGHTS: dict[Path, dict[str, int]] = {
    F0222: {"gt1l": 42, "gt1r": 33, "gt2l": 1, "gt2r": 0, "gt3l": 315, "gt3r": 304},
    F0225: {"gt1l": 876, "gt1r": 874, "gt2l": 0, "gt2r": 0, "gt3l": 0, "gt3r": 0},
    F0226: {"gt1l": 24, "gt1r": 11, "gt2l": 112, "gt2r": 92, "gt3l": 694, "gt3r": 641},
}
GRANULES = {
    F0222: ("20190222003738_08490201", 849),
    F0225: ("20190225115500_09020201", 902),
    F0226: ("20190226002919_09100201", 910),
}
#: (first, last) segment time per file, UTC, to the microsecond.
TIME_RANGE = {
    F0222: ("2019-02-22T01:06:31.676056Z", "2019-02-22T01:06:36.295538Z"),
    F0225: ("2019-02-25T12:13:07.768440Z", "2019-02-25T12:13:10.916077Z"),
    F0226: ("2019-02-26T00:58:12.913101Z", "2019-02-26T00:58:24.769494Z"),
}
FILES = tuple(SEGMENTS)


def test_realdata_present() -> None:
    assert REALDATA.is_dir(), REALDATA
    for path in (*FILES, VARIABLES_JSON):
        assert path.is_file(), path


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name[26:34])
def test_segment_counts_and_columns(path: Path) -> None:
    for beam in BEAMS:
        df = read_atl07(path, beam)
        assert list(df.columns) == list(ATL07_COLUMNS)
        assert len(df) == SEGMENTS[path][beam], beam
        assert int(df["height_segment_height"].notna().sum()) == VALID_HEIGHTS[path][beam], beam
        assert df["time_utc"].dtype == np.dtype("datetime64[ns]")
        assert df["latitude"].dtype == np.float64


def test_empty_beam_has_columns_and_dtypes() -> None:
    """gt2r of 2019-02-22 has only sea_ice_segments/stats/ds_si_hist_bins: empty, not an error."""
    with h5py.File(F0222, "r") as f:
        assert list(f["gt2r/sea_ice_segments"]) == ["stats"]
    df = read_atl07(F0222, "gt2r")
    assert df.empty
    assert list(df.columns) == list(ATL07_COLUMNS)
    assert df["height_segment_type"].dtype == np.int8
    assert df["time_utc"].dtype == np.dtype("datetime64[ns]")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name[26:34])
def test_summary(path: Path) -> None:
    s = summarize_atl07(path)
    granule, rgt = GRANULES[path]
    assert s.product == "ATL07"
    assert s.granule == granule
    assert s.extra["rgt"] == rgt
    assert s.extra["sc_orient"] == 0  # backward: left beams strong
    assert s.extra["cycle"] == 2
    assert {b.beam: b.n_segments for b in s.beams} == SEGMENTS[path]
    assert {b.beam: b.strength for b in s.beams} == {
        b: ("strong" if b.endswith("l") else "weak") for b in BEAMS
    }
    assert all(b.n_photons is None for b in s.beams)
    assert (s.time_start_utc, s.time_end_utc) == TIME_RANGE[path]
    assert s.warnings == ()
    json.dumps(s.to_dict())


def test_granule_name_parse() -> None:
    from seaice_tasks.granule import parse_granule

    for path, (granule, rgt) in GRANULES.items():
        g = parse_granule(path)
        assert (g.product, g.rgt, g.release, g.hemisphere, g.granule) == ("ATL07", rgt, 3, 1, granule)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name[26:34])
def test_values_sane(path: Path) -> None:
    day = path.name.split("_")[3][:8]
    for beam in BEAMS:
        df = read_atl07(path, beam)
        if df.empty:
            continue
        h = df["height_segment_height"].dropna()
        # heights relative to the mean sea surface, winter sea ice in Disko Bay
        assert h.between(-0.75, 0.6).all()
        assert df["latitude"].between(68.7, 69.6).all()
        assert df["longitude"].between(-52.3, -51.0).all()
        assert (df["time_utc"].dt.strftime("%Y%m%d") == day).all()
        # time never goes back by more than float64 rounding (~1e-8 s at 3.6e7 s)
        assert np.diff(df["delta_time"].to_numpy()).min() > -1e-7
        assert df["height_segment_id"].is_monotonic_increasing
        codes = {int(t) for t in ATL07SurfaceType}
        assert set(df["height_segment_type"].unique()) <= codes
        assert set(df["height_segment_ssh_flag"].unique()) <= {0, 1}
        assert set(df["height_segment_quality"].unique()) <= {0, 1}
        # corrections are fill-free here; ocean/lpe all fill in 2019-02-22 (see below)
        assert df["height_segment_mss"].between(20.0, 26.0).all()


def test_fills_become_nan() -> None:
    # gt1l 2019-02-22: 33 of 75 segments carry the float fill 3.4028235e38 in heights/*
    with h5py.File(F0222, "r") as f:
        raw = f["gt1l/sea_ice_segments/heights/height_segment_height"][()]
        raw_ocean = f["gt1l/sea_ice_segments/geophysical/height_segment_ocean"][()]
    assert int((raw > 3e38).sum()) == 33
    df = read_atl07(F0222, "gt1l")
    assert df["height_segment_height"].isna().sum() == 33
    assert np.array_equal(df["height_segment_height"].isna().to_numpy(), raw > 3e38)
    assert (raw_ocean > 3e38).all() and df["height_segment_ocean"].isna().all()
    assert df["height_segment_lpe"].isna().all()
    assert np.nanmax(df.select_dtypes("float").to_numpy()) < 3e38
    assert df["height_segment_height"].dtype == np.float64


def test_segment_lengths_pinned() -> None:
    """Lengths of segments with a valid height: NOT always within 10-200 m.

    Strong beams reach below 10 m (and 8 segments of 2019-02-25 gt1l are <= 0 m); weak beams
    reach ~550 m; segments whose height is fill are up to ~10 km long.
    """
    lengths = {}
    for path in FILES:
        for beam in BEAMS:
            df = read_atl07(path, beam, columns=["height_segment_height", "height_segment_length_seg"])
            valid = df.loc[df["height_segment_height"].notna(), "height_segment_length_seg"]
            if len(valid):
                lengths[(path, beam)] = (float(valid.min()), float(valid.max()))
    strong = [v for (_, b), v in lengths.items() if b.endswith("l")]
    weak = [v for (_, b), v in lengths.items() if b.endswith("r")]
    assert min(lo for lo, _ in strong) == pytest.approx(-6.3356833, abs=1e-5)
    assert max(hi for _, hi in strong) == pytest.approx(155.21114, abs=1e-4)
    assert min(lo for lo, _ in weak) == pytest.approx(24.139275, abs=1e-5)
    assert max(hi for _, hi in weak) == pytest.approx(552.841, abs=1e-3)
    df = read_atl07(F0225, "gt1l")
    ok = df["height_segment_height"].notna()
    assert int((df.loc[ok, "height_segment_length_seg"] <= 0).sum()) == 8
    # excluding those, strong-beam lengths of valid segments are >= 6 m and <= 160 m
    for (path, beam), (lo, hi) in lengths.items():
        if beam.endswith("l") and not (path == F0225 and beam == "gt1l"):
            assert lo >= 6.0 and hi <= 160.0


def test_time_matches_formula() -> None:
    df = read_atl07(F0226, "gt1r", columns=["delta_time", "time_utc"])
    expected = pd.Timestamp("1980-01-06") + pd.to_timedelta(df["delta_time"] + 1198800018.0 - 18.0, unit="s")
    diff = (df["time_utc"] - expected).abs().max()
    assert diff < pd.Timedelta(microseconds=1)


def test_columns_subset_and_order() -> None:
    df = read_atl07(F0226, "gt3l", columns=["height_segment_type", "time_utc", "seg_dist_x"])
    assert list(df.columns) == ["height_segment_type", "time_utc", "seg_dist_x"]
    assert len(df) == 943
    with pytest.raises(ValueError, match="unknown column"):
        read_atl07(F0226, "gt3l", columns=["no_such_column"])


def test_paths_used_are_in_variable_list() -> None:
    known = set(json.loads(VARIABLES_JSON.read_text())["ATL07"])
    paths = {p.format(beam="gt1l") for p in ATL07_PATHS_USED}
    assert paths - known == set()
    assert "gt1l/sea_ice_segments/heights/height_segment_height" in paths


def test_paths_used_exist_in_real_file() -> None:
    with h5py.File(F0226, "r") as f:
        for template in ATL07_PATHS_USED:
            assert template.format(beam="gt3l") in f, template


# --- tolerance to variable subsets -------------------------------------------------------


def _copy(tmp_path: Path, src: Path = F0226) -> Path:
    dst = tmp_path / src.name
    shutil.copyfile(src, dst)
    dst.chmod(0o644)
    return dst


def test_missing_optional_variable_is_nan_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _copy(tmp_path)
    with h5py.File(path, "r+") as f:
        for beam in ("gt1l", "gt2l"):
            del f[f"{beam}/sea_ice_segments/geophysical/height_segment_dac"]
        del f["ancillary_data/atlas_sdp_gps_epoch"]
    with caplog.at_level(logging.WARNING):
        a = read_atl07(path, "gt1l")
        b = read_atl07(path, "gt2l")
        read_atl07(path, "gt1l")
    assert a["height_segment_dac"].isna().all() and len(a) == 209
    assert b["height_segment_dac"].isna().all()
    dac = [r for r in caplog.records if "height_segment_dac" in r.getMessage()]
    epoch = [r for r in caplog.records if "atlas_sdp_gps_epoch" in r.getMessage()]
    assert len(dac) == 1 and str(path) in dac[0].getMessage()
    assert len(epoch) == 1
    # default epoch equals the file's value, so times are unchanged
    assert a["time_utc"].equals(read_atl07(F0226, "gt1l")["time_utc"])


def test_missing_required_variable(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["gt3l/sea_ice_segments/seg_dist_x"]
    with pytest.raises(MissingVariableError) as info:
        read_atl07(path, "gt3l")
    assert str(path) in str(info.value)
    assert "gt3l/sea_ice_segments/seg_dist_x" in str(info.value)
    assert len(read_atl07(path, "gt3r")) == 641


# --- bad inputs ---------------------------------------------------------------------------


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / F0222.name
    path.write_bytes(F0222.read_bytes()[:10_000])
    for call in (lambda: read_atl07(path, "gt1l"), lambda: summarize_atl07(path)):
        with pytest.raises(CorruptFileError) as info:
            call()
        assert str(path) in str(info.value)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "ATL07-01_20190222003738_08490201_003_02.h5"
    path.write_text("not an HDF5 file\n")
    with pytest.raises(CorruptFileError) as info:
        read_atl07(path, "gt1l")
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.h5"
    with pytest.raises(CorruptFileError, match=r"absent\.h5"):
        read_atl07(path, "gt1l")


def test_missing_beam(tmp_path: Path) -> None:
    path = _copy(tmp_path, F0225)
    with h5py.File(path, "r+") as f:
        del f["gt3r"]
    with pytest.raises(MissingBeamError) as info:
        read_atl07(path, "gt3r")
    assert str(path) in str(info.value) and "gt3r" in str(info.value)
    assert [b.beam for b in summarize_atl07(path).beams] == ["gt1l", "gt1r", "gt2l", "gt2r", "gt3l"]


def test_atl03_given_to_atl07_reader() -> None:
    path = ICESAT2 / "harmony_ATL03_gt1l.h5"
    with pytest.raises(WrongProductError) as info:
        read_atl07(path, "gt1l")
    assert str(path) in str(info.value) and "ATL03" in str(info.value)

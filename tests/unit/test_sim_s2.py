"""Simulated Sentinel-2 scenes: real layout through the reader, truth, clouds, drift, determinism."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import rasterio
from pyproj import Transformer

from seaice_tasks.constants import S2_BANDS, SeaIceClass
from seaice_tasks.errors import ConfigError
from seaice_tasks.io.s2 import (
    S2ReadConfig,
    dn_to_reflectance,
    open_s2_scene,
    read_bands,
    read_reflectance,
    rgb_composite,
    summarize_s2,
)
from seaice_tasks.sim.geometry import S2Footprint, SimConfig, plan_day
from seaice_tasks.sim.s2 import (
    CLOUD_CLEAR,
    CLOUD_OPAQUE,
    CLOUD_SHADOW,
    CLOUD_THIN,
    MASK_NODATA,
    S2_PIXEL_M,
    TRUTH_CLASSES_NAME,
    TRUTH_CLOUD_MASK_NAME,
    TRUTH_JSON_NAME,
    S2SimParams,
    band_file_name,
    solar_position,
    write_s2_scene,
)
from seaice_tasks.sim.world import WORLD_CRS, TruthWorld

log = logging.getLogger(__name__)

SMALL_KM = 5.0
LARGE_KM = 20.0
#: METHOD.md §2.1 thresholds on V = max(R, G, B).
V_THICK_MIN = 205
V_THIN_MIN = 31
MIN_CLEAR_ACCURACY = 0.95
#: Loose tolerance on the class area fractions of one 20 km scene vs the world's targets.
FRACTION_TOL = 0.03
#: Shadow pixels whose casting cloud (one shadow offset towards the sun) is masked as cloud.
MIN_SHADOW_SOURCE_HIT = 0.9
SPOT_CHECKS = 2000


@dataclasses.dataclass(frozen=True)
class Written:
    """A written scene and its truth."""

    footprint: S2Footprint
    scene_dir: Path
    truth_dir: Path

    def truth(self, name: str) -> npt.NDArray[Any]:
        with rasterio.open(self.truth_dir / self.footprint.scene / name) as ds:
            return np.asarray(ds.read(1))

    def meta(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.truth_dir / self.footprint.scene / TRUTH_JSON_NAME).read_text())
        return data


def _write(tmp: Path, config: SimConfig, *, clouds: bool, footprint: S2Footprint | None = None,
           world: TruthWorld | None = None) -> Written:
    fp = footprint if footprint is not None else plan_day(config).scenes[0]
    w = world if world is not None else TruthWorld(config.world)
    scene_dir = write_s2_scene(w, fp, config, tmp / "s2", tmp / "truth", clouds=clouds)
    return Written(fp, scene_dir, tmp / "truth")


def _threshold_classes(scene_dir: Path) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """§2.1 colour thresholds on the reader's default 8-bit composite."""
    scene = open_s2_scene(scene_dir)
    rgb, valid = rgb_composite(read_reflectance(scene))
    v = rgb.max(axis=-1)
    pred = np.where(v >= V_THICK_MIN, int(SeaIceClass.THICK_ICE),
                    np.where(v >= V_THIN_MIN, int(SeaIceClass.THIN_ICE), int(SeaIceClass.OPEN_WATER)))
    return pred, valid


def _accuracy(written: Written) -> float:
    pred, valid = _threshold_classes(written.scene_dir)
    truth = written.truth(TRUTH_CLASSES_NAME)
    m = valid & (truth != MASK_NODATA)
    return float((pred[m] == truth[m]).mean())


@pytest.fixture(scope="module")
def small_config() -> SimConfig:
    return SimConfig(scene_km=SMALL_KM)


@pytest.fixture(scope="module")
def small_clear(tmp_path_factory: pytest.TempPathFactory, small_config: SimConfig) -> Written:
    return _write(tmp_path_factory.mktemp("small_clear"), small_config, clouds=False)


@pytest.fixture(scope="module")
def large_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Written, Written]:
    config = SimConfig(scene_km=LARGE_KM)
    world = TruthWorld(config.world)
    fp = plan_day(config).scenes[0]
    clear = _write(tmp_path_factory.mktemp("large_clear"), config, clouds=False, footprint=fp, world=world)
    cloudy = _write(tmp_path_factory.mktemp("large_cloudy"), config, clouds=True, footprint=fp, world=world)
    return clear, cloudy


# -- layout through the reader --------------------------------------------------------------------


def test_reader_opens_scene_folder(small_clear: Written) -> None:
    fp = small_clear.footprint
    assert small_clear.scene_dir.name == fp.safe_name
    names = sorted(p.name for p in small_clear.scene_dir.iterdir())
    assert names == sorted(band_file_name(fp, b) for b in S2_BANDS)
    scene = open_s2_scene(small_clear.scene_dir)
    assert scene.epsg == fp.utm_epsg
    assert scene.resolution_m == (S2_PIXEL_M, S2_PIXEL_M)
    assert scene.bands == S2_BANDS
    assert scene.shape == (round(fp.size_m / S2_PIXEL_M),) * 2
    assert scene.processing_baseline == fp.baseline == (2, 8)
    assert scene.baseline_source == "name"
    assert scene.scene_id is not None and scene.scene_id.scene == fp.scene
    assert scene.nodata == 0
    dn = read_bands(scene)
    nodata = np.all(dn == 0, axis=0)
    assert np.array_equal(nodata, np.any(dn == 0, axis=0)), "nodata must be common to all bands"
    true_valid = 1.0 - float(nodata.mean())
    assert 0.5 < true_valid < 0.99, "the swath edge must cut part of the square"
    assert scene.valid_fraction == pytest.approx(true_valid, abs=0.02)
    # the footprint centre (EPSG:3976) is the grid centre (UTM) within one pixel
    cx, cy = Transformer.from_crs(WORLD_CRS, scene.crs, always_xy=True).transform(fp.center_x_m, fp.center_y_m)
    left, bottom, right, top = scene.bounds
    assert abs((left + right) / 2 - cx) <= S2_PIXEL_M and abs((bottom + top) / 2 - cy) <= S2_PIXEL_M
    summary = summarize_s2(small_clear.scene_dir)
    assert summary.product == "S2" and summary.granule == fp.scene
    assert summary.extra["processing_baseline"] == [2, 8] and not summary.warnings


def test_truth_on_same_grid(small_clear: Written) -> None:
    scene = open_s2_scene(small_clear.scene_dir)
    for name in (TRUTH_CLASSES_NAME, TRUTH_CLOUD_MASK_NAME):
        with rasterio.open(small_clear.truth_dir / small_clear.footprint.scene / name) as ds:
            assert ds.crs.to_epsg() == small_clear.footprint.utm_epsg
            assert tuple(ds.transform)[:6] == pytest.approx(scene.transform)
            assert (ds.height, ds.width) == scene.shape
            assert ds.dtypes[0] == "uint8" and ds.nodata == MASK_NODATA
    classes = small_clear.truth(TRUTH_CLASSES_NAME)
    nodata = np.all(read_bands(scene) == 0, axis=0)
    assert np.array_equal(classes == MASK_NODATA, nodata)
    assert set(np.unique(classes[~nodata]).tolist()) <= {0, 1, 2}
    mask = small_clear.truth(TRUTH_CLOUD_MASK_NAME)
    assert np.all(mask[~nodata] == CLOUD_CLEAR) and np.all(mask[nodata] == MASK_NODATA)
    meta = small_clear.meta()
    assert meta["clouds"] is False and meta["cloud"] is None
    assert meta["footprint"]["drift_m"] == pytest.approx(list(small_clear.footprint.drift_m))
    assert set(meta["class_fractions"]) == {"thick_ice", "thin_ice", "open_water"}


def test_dn_offset_for_baseline(tmp_path: Path, small_config: SimConfig, small_clear: Written) -> None:
    fp4 = dataclasses.replace(small_clear.footprint, baseline=(4, 0))
    new = _write(tmp_path, small_config, clouds=False, footprint=fp4)
    assert "_N0400_" in new.scene_dir.name
    old_scene, new_scene = open_s2_scene(small_clear.scene_dir), open_s2_scene(new.scene_dir)
    assert new_scene.processing_baseline == (4, 0) and new_scene.radiometric_offset_dn == -1000
    dn_old, dn_new = read_bands(old_scene), read_bands(new_scene)
    valid = dn_old != 0
    assert np.array_equal(valid, dn_new != 0)
    assert np.all(dn_new[valid].astype(np.int64) - dn_old[valid] == 1000)
    r_old = dn_to_reflectance(dn_old, old_scene.processing_baseline)
    r_new = dn_to_reflectance(dn_new, new_scene.processing_baseline)
    assert np.array_equal(r_old, r_new, equal_nan=True)


# -- radiometry and clouds ------------------------------------------------------------------------


def test_clear_scene_threshold_accuracy(large_pair: tuple[Written, Written]) -> None:
    clear, _ = large_pair
    acc = _accuracy(clear)
    log.info("clear 20 km scene: colour-threshold pixel accuracy %.4f", acc)
    assert acc >= MIN_CLEAR_ACCURACY, f"clear-sky accuracy {acc:.4f}"
    # reflectance table: the class means sit inside their V ranges
    p = S2SimParams()
    stretch = S2ReadConfig().rgb_stretch_max_reflectance
    assert stretch == 1.0
    assert max(p.water_reflectance[:3]) * 255 / stretch < V_THIN_MIN - 5
    assert max(p.thin_reflectance_high[:3]) * 255 / stretch < V_THICK_MIN - 5
    assert max(p.thin_reflectance_low[:3]) * 255 / stretch > V_THIN_MIN + 5
    assert (max(p.thick_reflectance[:3]) - p.thick_dimming) * 255 / stretch > V_THICK_MIN + 5


def test_cloudy_scene(large_pair: tuple[Written, Written]) -> None:
    clear, cloudy = large_pair
    acc_clear, acc_cloudy = _accuracy(clear), _accuracy(cloudy)
    log.info("20 km scene accuracy: clear %.4f, cloudy %.4f", acc_clear, acc_cloudy)
    assert acc_cloudy < acc_clear - 0.02
    assert np.array_equal(clear.truth(TRUTH_CLASSES_NAME), cloudy.truth(TRUTH_CLASSES_NAME))
    mask = cloudy.truth(TRUTH_CLOUD_MASK_NAME)
    valid = mask != MASK_NODATA
    frac = {code: float((mask[valid] == code).mean()) for code in (CLOUD_CLEAR, CLOUD_THIN, CLOUD_OPAQUE,
                                                                  CLOUD_SHADOW)}
    log.info("cloud mask fractions %s", frac)
    assert frac[CLOUD_CLEAR] > 0.2 and frac[CLOUD_THIN] > 0.05
    assert frac[CLOUD_OPAQUE] > 0.005 and frac[CLOUD_SHADOW] > 0.002
    meta = cloudy.meta()
    assert meta["cloud_mask_fractions"]["shadow"] == pytest.approx(frac[CLOUD_SHADOW])
    # opaque clouds are bright in every band, shadows darken the same surface
    refl_cloudy = read_reflectance(open_s2_scene(cloudy.scene_dir))
    refl_clear = read_reflectance(open_s2_scene(clear.scene_dir))
    opaque = mask == CLOUD_OPAQUE
    assert float(np.nanmin(np.nanmedian(refl_cloudy[:, opaque], axis=1))) > 0.75
    shadow = mask == CLOUD_SHADOW
    ratio = np.nanmedian(refl_cloudy[2][shadow] / refl_clear[2][shadow])
    factor = meta["cloud"]["shadow_factor"]
    assert factor - 0.05 < ratio < 1.0 - 0.5 * (1.0 - factor) + 0.05
    # the clear and cloudy versions share noise: untouched pixels are identical
    same = np.all(read_bands(open_s2_scene(clear.scene_dir)) == read_bands(open_s2_scene(cloudy.scene_dir)),
                  axis=0)
    assert float(same[valid & (mask == CLOUD_CLEAR)].mean()) > 0.3


def test_shadows_displaced_anti_solar(large_pair: tuple[Written, Written]) -> None:
    _, cloudy = large_pair
    meta = cloudy.meta()["cloud"]
    mask = cloudy.truth(TRUTH_CLOUD_MASK_NAME)
    d_row, d_col = meta["shadow_offset_px"]
    # direction: anti-solar azimuth within the meridian convergence (a few degrees) of the grid
    dx, dy = meta["shadow_offset_utm_m"]
    bearing = math.degrees(math.atan2(dx, dy)) % 360.0
    anti = (meta["sun_azimuth_deg"] + 180.0) % 360.0
    assert abs((bearing - anti + 180.0) % 360.0 - 180.0) < 5.0
    length = meta["cloud_height_m"] / math.tan(math.radians(meta["sun_elevation_used_deg"]))
    assert math.hypot(dx, dy) == pytest.approx(length)
    assert length > 10 * S2_PIXEL_M

    def source_hit(sign: float) -> float:
        rows, cols = np.nonzero(mask == CLOUD_SHADOW)
        sr = np.rint(rows - sign * d_row).astype(int)
        sc = np.rint(cols - sign * d_col).astype(int)
        inside = (sr >= 0) & (sr < mask.shape[0]) & (sc >= 0) & (sc < mask.shape[1])
        src = mask[sr[inside], sc[inside]]
        src = src[src != MASK_NODATA]
        assert src.size > 100
        return float(np.isin(src, (CLOUD_THIN, CLOUD_OPAQUE)).mean())

    hit, wrong_way = source_hit(1.0), source_hit(-1.0)
    log.info("shadow -> cloud hit: towards the sun %.3f, away from it %.3f", hit, wrong_way)
    assert hit >= MIN_SHADOW_SOURCE_HIT
    assert wrong_way < hit - 0.2


def test_class_fractions_match_world(large_pair: tuple[Written, Written]) -> None:
    clear, _ = large_pair
    wcfg = TruthWorld().config
    fractions = clear.meta()["class_fractions"]
    classes = clear.truth(TRUTH_CLASSES_NAME)
    valid = classes != MASK_NODATA
    assert fractions["open_water"] == pytest.approx(float((classes[valid] == 2).mean()))
    assert fractions["open_water"] == pytest.approx(wcfg.water_fraction, abs=FRACTION_TOL)
    assert fractions["thin_ice"] == pytest.approx(wcfg.thin_fraction, abs=FRACTION_TOL)
    assert fractions["thick_ice"] == pytest.approx(wcfg.thick_fraction, abs=FRACTION_TOL)


# -- drift, determinism ---------------------------------------------------------------------------


def test_truth_is_world_at_s2_time(small_clear: Written, small_config: SimConfig) -> None:
    world = TruthWorld(small_config.world)
    fp = small_clear.footprint
    classes = small_clear.truth(TRUTH_CLASSES_NAME)
    with rasterio.open(small_clear.truth_dir / fp.scene / TRUTH_CLASSES_NAME) as ds:
        transform = ds.transform
    rng = np.random.default_rng(0)
    rows, cols = np.nonzero(classes != MASK_NODATA)
    pick = rng.choice(rows.size, SPOT_CHECKS, replace=False)
    r, c = rows[pick], cols[pick]
    xu = transform.c + (c + 0.5) * transform.a
    yu = transform.f + (r + 0.5) * transform.e
    x, y = Transformer.from_crs(f"EPSG:{fp.utm_epsg}", WORLD_CRS, always_xy=True).transform(xu, yu)
    dx, dy = fp.drift_m
    expected = world.classes_at(x, y, shift_m=(-dx, -dy))
    assert np.array_equal(classes[r, c], expected)
    assert math.hypot(dx, dy) > 50.0
    unshifted = world.classes_at(x, y)
    assert np.count_nonzero(unshifted != expected) > 0, "the drift must change some classes"


def test_byte_identical_and_seed_dependent(tmp_path: Path, small_config: SimConfig) -> None:
    a = _write(tmp_path / "a", small_config, clouds=True)
    b = _write(tmp_path / "b", small_config, clouds=True, footprint=a.footprint)
    for root_a, root_b in ((a.scene_dir, b.scene_dir), (a.truth_dir, b.truth_dir)):
        files = sorted(p.relative_to(root_a) for p in root_a.rglob("*") if p.is_file())
        assert files and files == sorted(p.relative_to(root_b) for p in root_b.rglob("*") if p.is_file())
        for rel in files:
            assert (root_a / rel).read_bytes() == (root_b / rel).read_bytes(), rel
    other = dataclasses.replace(small_config, seed=small_config.seed + 1)
    c_dir = write_s2_scene(TruthWorld(small_config.world), a.footprint, other, tmp_path / "c", tmp_path / "c_truth")
    band = band_file_name(a.footprint, "B02")
    assert (c_dir / band).read_bytes() != (a.scene_dir / band).read_bytes()
    # same world: the surface truth is the same, only noise, clouds and the swath edge change
    with rasterio.open(tmp_path / "c_truth" / a.footprint.scene / TRUTH_CLASSES_NAME) as ds:
        c_classes = ds.read(1)
    both = (c_classes != MASK_NODATA) & (a.truth(TRUTH_CLASSES_NAME) != MASK_NODATA)
    assert np.array_equal(c_classes[both], a.truth(TRUTH_CLASSES_NAME)[both])


# -- small pieces ---------------------------------------------------------------------------------


def test_solar_position() -> None:
    import datetime as dt

    noon = dt.datetime(2019, 11, 4, 11, 43, 36, tzinfo=dt.UTC)  # 12:00 minus the equation of time
    az, el = solar_position(noon, 0.0, -75.0)
    assert min(az, 360.0 - az) < 1.0
    assert el == pytest.approx(90.0 - (75.0 - 15.4), abs=1.0)  # declination -15.4 deg
    az_am, _ = solar_position(noon - dt.timedelta(hours=3), 0.0, -75.0)
    assert 0.0 < az_am < 90.0  # morning, southern high latitude: sun in the north-east
    _, el_night = solar_position(noon + dt.timedelta(hours=12), 0.0, -60.0)
    assert el_night < 0.0


def test_params_json_and_validation() -> None:
    p = S2SimParams(noise_std=0.01)
    assert S2SimParams.from_json(p.to_json()) == p
    with pytest.raises(ConfigError):
        S2SimParams(haze_cover=1.5)
    with pytest.raises(ConfigError):
        S2SimParams(nodata_cut_fraction=(0.6, 0.2))

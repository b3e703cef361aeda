"""The Sentinel-2 label job (windows, two passes, commits, skips) without Spark."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from seaice_tasks.constants import SeaIceClass
from seaice_tasks.io.s2 import open_s2_scene
from seaice_tasks.metrics import evaluate
from seaice_tasks.products import (
    LABELS_FILE,
    QUICKLOOK_FILE,
    REPORT_FILE,
    S2_LABELS,
    S2_LABELS_REPORT,
    S2_UNET_LABELS,
    UNUSABLE_FILE,
)
from seaice_tasks.s2.color_labels import LABEL_COLORMAP
from seaice_tasks.s2.scene_labels import QUICKLOOK_MAX_PX, S2LabelConfig, label_scene, quicklook_png
from seaice_tasks.spark_jobs.runner import main, run_job
from seaice_tasks.spark_jobs.s2_labels import JOB
from seaice_tasks.storage import Lake

SMALL_WINDOW_PX = 192  # several windows on a 500 px scene, each narrower than the filter's context


def _scene_dir(small_sim_day) -> Path:  # type: ignore[no-untyped-def]
    return Path(small_sim_day.scenes[0])


def _truth(small_sim_day, scene_key: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    with rasterio.open(small_sim_day.truth / scene_key / "classes.tif") as ds:
        return ds.read(1)


def test_job_equals_single_pass_and_writes_cogs(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scene_dir = _scene_dir(small_sim_day)
    config = S2LabelConfig(window_px=SMALL_WINDOW_PX)
    lake = Lake(tmp_path / "lake")
    summary = run_job(JOB, [str(scene_dir)], lake, config, day="2019-11-04")
    assert summary["failed"] == [] and summary["skipped"] == [] and len(summary["partitions"]) == 1
    key = lake.partitions(S2_LABELS.name)[0]
    assert key.relpath == f"s2_labels/date=2019-11-04/scene={key.scene}"  # a scene key, not a granule key
    man = lake.require(key)
    assert {f.name for f in man.files} == {LABELS_FILE, UNUSABLE_FILE, QUICKLOOK_FILE}
    assert not (tmp_path / "lake" / "_staging").exists()  # the windows' scratch files are gone
    with rasterio.MemoryFile(io.BytesIO(lake.open_file(key, LABELS_FILE, verify=True))) as mem, mem.open() as ds:
        labels = ds.read(1)
        scene = open_s2_scene(scene_dir)
        assert ds.crs.to_epsg() == scene.epsg and ds.shape == scene.shape and ds.nodata == 255
        assert ds.colormap(1)[0][:3] == (255, 0, 0)
    whole = label_scene(scene, S2LabelConfig(window_px=10_000))
    np.testing.assert_array_equal(labels, whole.labels)  # windows + halo + scene stats == one pass
    fractions = man.info["class_fractions"]
    assert fractions["thick_ice"] > 0.7 and 0 <= man.info["cloud_fraction"] < 0.5
    assert lake.open_file(key, QUICKLOOK_FILE)[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = evaluate(_truth(small_sim_day, key.scene or ""), labels)
    assert metrics["pixel_accuracy"] > 0.85  # cloudy scene, filtered labels vs truth


@pytest.mark.parametrize("max_px", [QUICKLOOK_MAX_PX, 200])  # 200: the 500 px scene is decimated (step 3)
def test_quicklook_is_a_bounded_deterministic_png(small_sim_day, max_px: int) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    scene = open_s2_scene(_scene_dir(small_sim_day))
    config = S2LabelConfig()
    labels = label_scene(scene, config).labels
    png = quicklook_png(scene, labels, config, max_px=max_px)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert quicklook_png(scene, labels, config, max_px=max_px) == png  # byte-identical re-run
    assert b"Software" not in png and b"tIME" not in png  # no version or time stamp
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        width, height = img.size
        pixels = np.asarray(img.convert("RGB"))
    # two panels of at most max_px a side, plus margins for the title, the legend and the gap
    assert max_px < width <= max(2 * max_px + 60, 640) and max_px // 2 < height <= max_px + 160
    packed = set(np.unique((pixels.astype(np.int64) << np.array([16, 8, 0])).sum(axis=-1)).tolist())
    for code in (SeaIceClass.THICK_ICE, SeaIceClass.THIN_ICE, SeaIceClass.OPEN_WATER, SeaIceClass.UNLABELED):
        r, g, b = LABEL_COLORMAP[int(code)]
        assert (r << 16) + (g << 8) + b in packed  # the labels panel and the legend use the exact table


def test_filter_off_gives_raw_colour_labels(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lake = Lake(tmp_path / "lake")
    run_job(JOB, [str(_scene_dir(small_sim_day))], lake, S2LabelConfig(apply_filter=False, flag_unusable=False))
    key = lake.partitions(S2_LABELS.name)[0]
    assert lake.require(key).info["filter_stats"] is None
    assert lake.require(key).info["cloud_fraction"] == 0.0


def test_bad_scenes_are_skipped_with_reasons(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = _scene_dir(small_sim_day)
    missing = tmp_path / "missing" / good.name
    shutil.copytree(good, missing)
    next(missing.glob("*_B03.tif")).unlink()
    nodata = tmp_path / "nodata" / good.name
    shutil.copytree(good, nodata)
    for band in nodata.glob("*_B0?.tif"):
        with rasterio.open(band, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
            ds.write(np.zeros((1, *ds.shape), dtype=np.uint16))
    lake = Lake(tmp_path / "lake")
    summary = run_job(JOB, [str(missing), str(nodata), str(good)], lake, S2LabelConfig(), day="2019-11-04")
    reasons = {s["uri"]: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == {str(missing), str(nodata)}
    assert "B03" in reasons[str(missing)] and "no valid pixel" in reasons[str(nodata)]
    assert len(summary["partitions"]) == 1  # the good scene went on
    report = json.loads(lake.open_file(S2_LABELS_REPORT.key(date=lake.partitions(S2_LABELS.name)[0].date),
                                       REPORT_FILE))
    assert len(report["skipped"]) == 2


def test_fully_clouded_scene_is_a_recorded_skip(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cloudy = tmp_path / _scene_dir(small_sim_day).name
    shutil.copytree(_scene_dir(small_sim_day), cloudy)
    for band in cloudy.glob("*_B0?.tif"):
        with rasterio.open(band, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
            data = ds.read(1)
            data[data > 0] = 9500  # opaque cloud everywhere: bright and flat
            ds.write(data[None])
    lake = Lake(tmp_path / "lake")
    summary = run_job(JOB, [str(cloudy)], lake, S2LabelConfig())
    assert summary["partitions"] == []
    assert "fully clouded" in summary["skipped"][0]["reason"]


def test_main_reads_inventory(small_sim_day, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from seaice_tasks.catalog import run_discover

    lake_dir = tmp_path / "lake"
    run_discover("2019-11-04", catalog=str(small_sim_day.catalog), lake=str(lake_dir))
    assert main(JOB, ["--date", "2019-11-04", "--lake", str(lake_dir), "--no-spark"]) == 0
    out = json.loads(capsys.readouterr().out.split("SEAICE_RESULT ", 1)[1])
    assert len(out["partitions"]) == 1 and out["partitions"][0].startswith(S2_LABELS.name)
    assert int(SeaIceClass.UNLABELED) == 255


def test_unet_model_labels_the_scenes_window_by_window(small_sim_day, tiny_unet_model: Path,  # type: ignore[no-untyped-def]
                                                       tmp_path: Path) -> None:
    import torch

    from seaice_tasks.models.unet import load_unet
    from seaice_tasks.s2.unet import label_scene_unet

    scene_dir = _scene_dir(small_sim_day)
    config = S2LabelConfig(window_px=SMALL_WINDOW_PX)
    lake = Lake(tmp_path / "lake")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same thread count for the job and the whole-scene reference below
    try:
        summary = run_job(JOB, [str(scene_dir)], lake, config, unet_model=str(tiny_unet_model))
        assert torch.get_num_threads() == 1  # the in-process job leaves torch's threads alone
        loaded = load_unet(tiny_unet_model)
        whole = label_scene_unet(loaded.model, open_s2_scene(scene_dir), config, loaded.config)
    finally:
        torch.set_num_threads(threads)
    assert summary["failed"] == [] and len(summary["partitions"]) == 1 and len(summary["unet_partitions"]) == 1
    key = lake.partitions(S2_UNET_LABELS.name)[0]
    assert key.scene == lake.partitions(S2_LABELS.name)[0].scene
    man = lake.require(key)
    assert man.info["model"]["weights_sha256"] == loaded.card["weights_sha256"]
    assert man.config == loaded.config.to_dict() and man.info["view"] == "filtered"
    with rasterio.MemoryFile(io.BytesIO(lake.open_file(key, LABELS_FILE, verify=True))) as mem, mem.open() as ds:
        labels = ds.read(1)
    np.testing.assert_array_equal(labels, whole)  # windows of the job == the whole scene at once


def test_unet_model_that_is_not_a_model_is_a_clear_error(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from seaice_tasks.errors import SeaIceError

    with pytest.raises(SeaIceError, match="not a U-Net model folder"):
        run_job(JOB, [str(_scene_dir(small_sim_day))], Lake(tmp_path / "lake"), S2LabelConfig(),
                unet_model=str(tmp_path))
    assert not (tmp_path / "lake").exists()  # nothing written


def test_main_with_a_bad_unet_model_exits_2(small_sim_day, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code = main(JOB, ["--scenes", str(_scene_dir(small_sim_day)), "--lake", str(tmp_path / "lake"), "--no-spark",
                 "--unet-model", str(tmp_path / "missing")])
    assert code == 2 and not (tmp_path / "lake").exists()

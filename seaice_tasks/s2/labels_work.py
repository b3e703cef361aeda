"""Work functions of the Sentinel-2 label job (:mod:`seaice_tasks.spark_jobs.s2_labels`).

One scene is labelled window by window in passes the job runner maps (:mod:`seaice_tasks.work`):

1. :func:`plan_scene_work` opens a scene (grid checks only) and lists its windows;
2. :func:`window_histogram_work` gives each window's ``diff`` histogram (filter on); the driver
   sums them into the scene's filter statistics (the authors' Otsu level is scene-wide);
3. :func:`label_window_work` labels each window (read with a halo, cropped; and with the U-Net
   when a model is given) into a scratch ``window-NNNNN.npz`` staged under the run's token;
4. :func:`scene_files_work` mosaics a scene's windows and returns its partition files (colour
   labels, unusable mask, quicklook; U-Net labels) for the runner to stage and the driver to commit.

A scene whose labelled pixels are below ``min_usable_fraction`` of its valid pixels is reported
as fully clouded (``skip`` in the row) instead of committed.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

import numpy as np

from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import SeaIceError
from seaice_tasks.io.s2 import S2Scene, open_s2_scene
from seaice_tasks.models.unet import LoadedUNet, load_unet
from seaice_tasks.outputs import BytesOutput
from seaice_tasks.products import S2_LABELS, S2_UNET_LABELS
from seaice_tasks.s2.cloud_shadow import FilterStats
from seaice_tasks.s2.scene_labels import (
    S2LabelConfig,
    SceneLabels,
    WindowSpec,
    label_window,
    mosaic,
    plan_windows,
    scene_outputs,
    window_histogram,
)
from seaice_tasks.s2.unet import label_window_unet, unet_outputs
from seaice_tasks.storage import PartitionKey
from seaice_tasks.work import Record, WorkContext, WorkResult

__all__ = [
    "plan_scene_work",
    "window_histogram_work",
    "label_window_work",
    "scene_files_work",
    "scene_stats",
    "load_unet_cached",
    "window_name",
]

_WINDOW_NPZ: Final[str] = "window-{k:05d}.npz"
#: U-Net models kept per worker process (a model is loaded once per executor, not per task).
_MODEL_CACHE: Final[int] = 4


def window_name(k: int) -> str:
    """Scratch file name of window ``k`` of a scene."""
    return _WINDOW_NPZ.format(k=k)


def _open(rec: Record, ctx: WorkContext[S2LabelConfig]) -> S2Scene:
    uri = str(rec["uri"])
    return open_s2_scene(uri, ctx.config.read, storage_options=ctx.inputs.options_for(uri))


def _key(rec: Record) -> PartitionKey:
    return S2_LABELS.key(date=rec["date"], scene=rec["scene"])


def _spec(rec: Record) -> WindowSpec:
    return WindowSpec(int(rec["row_off"]), int(rec["col_off"]), int(rec["height"]), int(rec["width"]))


def _stats(value: Mapping[str, Any] | None) -> FilterStats | None:
    return FilterStats(**value) if value else None


@lru_cache(maxsize=_MODEL_CACHE)
def load_unet_cached(path: str) -> LoadedUNet:
    """The U-Net of a model folder, loaded once per process.

    Under Spark the workers run with ``OMP_NUM_THREADS=1`` (the runner's session), so torch uses
    one thread per task; in one process torch keeps its own setting.
    """
    return load_unet(path)


def plan_scene_work(rec: Record, ctx: WorkContext[S2LabelConfig]) -> dict[str, Any]:
    """Load phase, one scene: ``{"uri", "scene", "date", "windows": [[row_off, col_off, height, width], ...]}``.

    Raises
    ------
    SeaIceError
        Missing band, grids that differ, corrupt file, no valid pixel, or a name that is not a
        Sentinel-2 scene id (it cannot be dated).
    """
    uri = str(rec["uri"])
    scene = _open(rec, ctx)
    if scene.valid_fraction <= 0.0:
        raise SeaIceError(f"{uri}: no valid pixel (all nodata)")
    if scene.scene_id is None:
        raise SeaIceError(f"{uri}: name is not a Sentinel-2 scene id (cannot date it)")
    windows = [dataclasses.astuple(w) for w in plan_windows(scene.shape, ctx.config.window_px)]
    return {"uri": uri, "scene": scene.scene_id.scene, "date": scene.scene_id.sensing.date().isoformat(),
            "windows": windows}


def window_histogram_work(rec: Record, ctx: WorkContext[S2LabelConfig]) -> dict[str, Any]:
    """Pass 1 of one window: its 256-bin ``diff`` histogram."""
    hist = window_histogram(_open(rec, ctx), _spec(rec), ctx.config)
    return {"scene": rec["scene"], "hist": hist.tolist()}


def scene_stats(scenes: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Filter statistics of each scene from its windows' histograms (driver side)."""
    sums = {scene: np.zeros(256, dtype=np.int64) for scene in scenes}
    for row in rows:
        sums[row["scene"]] += np.asarray(row["hist"], dtype=np.int64)
    return {scene: dataclasses.asdict(FilterStats.from_histogram(h)) for scene, h in sums.items()}


def label_window_work(rec: Record, ctx: WorkContext[S2LabelConfig]) -> WorkResult:
    """Pass 2 of one window: labels, unusable and valid masks (and U-Net labels) as a scratch npz."""
    scene = _open(rec, ctx)
    stats = _stats(rec.get("stats"))
    labels, unusable, valid = label_window(scene, _spec(rec), ctx.config, stats)
    arrays = {"labels": labels, "unusable": unusable, "valid": valid}
    if rec.get("unet_model"):
        loaded = load_unet_cached(str(rec["unet_model"]))
        arrays["unet"] = label_window_unet(loaded.model, scene, _spec(rec), ctx.config, loaded.config, stats)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    return WorkResult(rows=({"scene": rec["scene"], "window": int(rec["window"])},),
                      outputs=(BytesOutput(_key(rec), window_name(int(rec["window"])), buf.getvalue(), scratch=True),))


def scene_files_work(rec: Record, ctx: WorkContext[S2LabelConfig]) -> WorkResult:
    """Pass 3 of one scene: mosaic its windows; its partition files, or ``skip`` when fully clouded."""
    key = _key(rec)
    windows = [WindowSpec(*(int(v) for v in w)) for w in rec["windows"]]
    parts, unet_parts = [], []
    for k, w in enumerate(windows):
        with np.load(io.BytesIO(ctx.read_staged(key, window_name(k)))) as z:
            parts.append((w, z["labels"], z["unusable"], z["valid"]))
            if "unet" in z.files:
                unet_parts.append((w, z["unet"]))
    scene = _open(rec, ctx)
    result = SceneLabels(
        labels=mosaic(scene.shape, [(w, a) for w, a, _, _ in parts], SeaIceClass.UNLABELED),
        unusable=mosaic(scene.shape, [(w, u) for w, _, u, _ in parts], 0).astype(bool),
        valid=mosaic(scene.shape, [(w, v) for w, _, _, v in parts], 0).astype(bool),
        stats=_stats(rec.get("stats")),
    )
    labelled = int(np.count_nonzero(result.labels != SeaIceClass.UNLABELED))
    valid = int(np.count_nonzero(result.valid))
    row: dict[str, Any] = {"scene": rec["scene"], "skip": "", "info": {}, "unet_info": {}}
    if labelled < ctx.config.min_usable_fraction * max(valid, 1):
        row["skip"] = (f"{rec['uri']}: fully clouded ({labelled} of {valid} valid pixels usable, "
                       f"below {ctx.config.min_usable_fraction:.0%})")
        return WorkResult(rows=(row,))
    outputs, row["info"] = scene_outputs(key, scene, result, ctx.config)
    if rec.get("unet_model"):
        card = load_unet_cached(str(rec["unet_model"])).card
        unet_key = S2_UNET_LABELS.key(date=rec["date"], scene=rec["scene"])
        more, row["unet_info"] = unet_outputs(unet_key, scene, mosaic(scene.shape, unet_parts, SeaIceClass.UNLABELED),
                                              card, ctx.config)
        outputs += more
    return WorkResult(rows=(row,), outputs=tuple(outputs))

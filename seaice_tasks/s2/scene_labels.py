"""Label a whole Sentinel-2 scene window by window, exactly as a single pass would.

The thin-cloud/shadow filter (:mod:`seaice_tasks.s2.cloud_shadow`) needs 80 px of context
(median 155 px) and a scene-wide Otsu level, so a scene is labelled in two passes over windows
(each read with a halo of :attr:`CloudShadowConfig.halo_px` px and cropped):

1. :func:`window_histogram` - the 256-bin histogram of the filter's ``diff`` image per window;
   their sum gives the scene's :class:`~seaice_tasks.s2.cloud_shadow.FilterStats`;
2. :func:`label_window` - colour labels of the shadow-free image (or of the raw composite when
   the filter is off) and the unusable (opaque cloud / shadow) mask of the window.

:func:`label_scene` runs both passes in one process; the Spark job
(:mod:`seaice_tasks.spark_jobs.s2_labels`) runs each pass as a ``mapInPandas`` over
(scene, window) work items (:mod:`seaice_tasks.s2.labels_work`).  :func:`scene_outputs` gives the
partition's files -- the label COG (with the class colour table), the unusable-mask COG and a
quicklook PNG -- and the class and cloud fractions for its manifest; the writer layer
(:mod:`seaice_tasks.outputs`) stages and commits them.
"""

from __future__ import annotations

import dataclasses
import io
import math
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import SeaIceClass
from seaice_tasks.errors import ConfigError
from seaice_tasks.io.s2 import S2ReadConfig, S2Scene, read_bands_overview, read_reflectance, rgb_composite
from seaice_tasks.outputs import BytesOutput, Output, RasterOutput, write_partition
from seaice_tasks.products import LABELS_FILE, QUICKLOOK_FILE, UNUSABLE_FILE, UNUSABLE_NODATA
from seaice_tasks.s2.cloud_shadow import (
    CloudShadowConfig,
    FilterStats,
    diff_histogram,
    filtered_labels,
    shadow_diff,
    unusable_mask,
)
from seaice_tasks.s2.color_labels import (
    ColorLabelConfig,
    class_fractions,
    color_labels,
    labels_to_rgb,
)
from seaice_tasks.storage import Lake, Manifest, PartitionKey

__all__ = [
    "S2LabelConfig",
    "WindowSpec",
    "SceneLabels",
    "plan_windows",
    "read_window_halo",
    "window_histogram",
    "label_window",
    "label_scene",
    "mosaic",
    "quicklook_png",
    "scene_outputs",
    "write_scene_partition",
]

QUICKLOOK_MAX_PX: Final[int] = 768
#: Smallest work window (px): below it the halo reads dominate the work.
MIN_WINDOW_PX: Final[int] = 16
_HIST_BINS: Final[int] = 256


@dataclasses.dataclass(frozen=True)
class S2LabelConfig(JsonConfig):
    """Configuration of the Sentinel-2 label stage.

    Attributes
    ----------
    read : S2ReadConfig
        Bands and the 8-bit stretch of the composite (the papers' largest uncertainty).
    color : ColorLabelConfig
        V thresholds (205 / 30).
    filter : CloudShadowConfig
        The authors' thin-cloud/shadow filter and the unusable-mask heuristic.
    apply_filter : bool
        Label the shadow-free image (True) or the raw composite (False).
    flag_unusable : bool
        Leave opaque cloud and dark shadow unlabeled (255).
    window_px : int
        Side of the work windows (px); each is read with a halo of ``filter.halo_px``.
    min_usable_fraction : float
        A scene whose labelled pixels are fewer than this fraction of its valid pixels is
        skipped as fully clouded (0.01: 1 %).
    """

    kind: ClassVar[str] = "s2_labels"
    read: S2ReadConfig = dataclasses.field(default_factory=S2ReadConfig)
    color: ColorLabelConfig = dataclasses.field(default_factory=ColorLabelConfig)
    filter: CloudShadowConfig = dataclasses.field(default_factory=CloudShadowConfig)
    apply_filter: bool = True
    flag_unusable: bool = True
    window_px: int = 1024
    min_usable_fraction: float = 0.01

    def __post_init__(self) -> None:
        if self.window_px < MIN_WINDOW_PX:
            raise ConfigError(f"S2LabelConfig.window_px: must be >= {MIN_WINDOW_PX} px, got {self.window_px}")
        if not 0.0 <= self.min_usable_fraction <= 1.0:
            raise ConfigError(f"S2LabelConfig.min_usable_fraction: must be in [0, 1], got {self.min_usable_fraction}")


@dataclasses.dataclass(frozen=True)
class WindowSpec:
    """A window owned by one work item: pixel offsets and size (rows, cols)."""

    row_off: int
    col_off: int
    height: int
    width: int


@dataclasses.dataclass(frozen=True)
class SceneLabels:
    """Labels of one scene and what the manifest records about them."""

    labels: npt.NDArray[np.uint8]
    unusable: npt.NDArray[np.bool_]
    valid: npt.NDArray[np.bool_]
    stats: FilterStats | None


def plan_windows(shape: tuple[int, int], window_px: int) -> list[WindowSpec]:
    """Row-major windows of at most ``window_px`` covering a (rows, cols) scene.

    Examples
    --------
    >>> [(w.row_off, w.col_off, w.height, w.width) for w in plan_windows((5, 3), 4)]
    [(0, 0, 4, 3), (4, 0, 1, 3)]
    """
    if window_px <= 0:
        raise ValueError(f"window_px must be positive, got {window_px}")
    rows, cols = shape
    return [
        WindowSpec(r, c, min(window_px, rows - r), min(window_px, cols - c))
        for r in range(0, rows, window_px)
        for c in range(0, cols, window_px)
    ]


def read_window_halo(scene: S2Scene, spec: WindowSpec, halo: int, config: S2LabelConfig) -> tuple[
        npt.NDArray[np.uint8], npt.NDArray[np.bool_], tuple[slice, slice]]:
    """RGB and valid mask of ``spec`` grown by ``halo`` px (clipped to the scene), and the crop."""
    from rasterio.windows import Window

    rows, cols = scene.shape
    r0, c0 = max(spec.row_off - halo, 0), max(spec.col_off - halo, 0)
    r1 = min(spec.row_off + spec.height + halo, rows)
    c1 = min(spec.col_off + spec.width + halo, cols)
    refl = read_reflectance(scene, Window(c0, r0, c1 - c0, r1 - r0))
    rgb, valid = rgb_composite(refl, config.read)
    crop = (slice(spec.row_off - r0, spec.row_off - r0 + spec.height),
            slice(spec.col_off - c0, spec.col_off - c0 + spec.width))
    return rgb, valid, crop


def window_histogram(scene: S2Scene, spec: WindowSpec, config: S2LabelConfig) -> npt.NDArray[np.int64]:
    """Pass 1: histogram of the filter's ``diff`` over the valid pixels the window owns."""
    if not config.apply_filter:
        return np.zeros(_HIST_BINS, dtype=np.int64)
    rgb, valid, crop = read_window_halo(scene, spec, config.filter.halo_px, config)
    diff, _ = shadow_diff(rgb, valid, config.filter)
    return diff_histogram(diff[crop], valid[crop])


def label_window(
    scene: S2Scene, spec: WindowSpec, config: S2LabelConfig, stats: FilterStats | None
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Pass 2: (labels, unusable, valid) of the window, from a halo read cropped to the window."""
    halo = config.filter.halo_px if (config.apply_filter or config.flag_unusable) else 0
    rgb, valid, crop = read_window_halo(scene, spec, halo, config)
    unusable = (unusable_mask(rgb, valid, config.filter) if config.flag_unusable
                else np.zeros(valid.shape, dtype=bool))
    if config.apply_filter:
        labels = filtered_labels(rgb, valid, config.filter, config.color, stats=stats, unusable=unusable)
    else:
        labels = color_labels(rgb, valid, config.color, unusable=unusable)
    return labels[crop], unusable[crop] & valid[crop], valid[crop]


def mosaic(shape: tuple[int, int], parts: list[tuple[WindowSpec, npt.NDArray[Any]]], fill: int) -> npt.NDArray[Any]:
    """Assemble window arrays into one (rows, cols) array."""
    dtype = parts[0][1].dtype if parts else np.uint8
    out = np.full(shape, fill, dtype=dtype)
    for spec, arr in parts:
        out[spec.row_off:spec.row_off + spec.height, spec.col_off:spec.col_off + spec.width] = arr
    return out


def label_scene(scene: S2Scene, config: S2LabelConfig | None = None) -> SceneLabels:
    """Both passes over all windows in this process."""
    cfg = config if config is not None else S2LabelConfig()
    windows = plan_windows(scene.shape, cfg.window_px)
    stats = None
    if cfg.apply_filter:
        hist = np.sum([window_histogram(scene, w, cfg) for w in windows], axis=0)
        stats = FilterStats.from_histogram(hist)
    parts = [(w, label_window(scene, w, cfg, stats)) for w in windows]
    return SceneLabels(
        labels=mosaic(scene.shape, [(w, p[0]) for w, p in parts], SeaIceClass.UNLABELED),
        unusable=mosaic(scene.shape, [(w, p[1]) for w, p in parts], 0).astype(bool),
        valid=mosaic(scene.shape, [(w, p[2]) for w, p in parts], 0).astype(bool),
        stats=stats,
    )


def quicklook_png(scene: S2Scene, labels: npt.NDArray[np.uint8], config: S2LabelConfig,
                  max_px: int = QUICKLOOK_MAX_PX) -> bytes:
    """PNG of the RGB composite beside the labels, decimated to at most ``max_px`` per side."""
    from PIL import Image

    from seaice_tasks.io.s2 import dn_to_reflectance

    dn = read_bands_overview(scene, max_px)
    rgb, _ = rgb_composite(dn_to_reflectance(dn, scene.processing_baseline, scene.nodata), config.read)
    step = max(1, math.ceil(max(labels.shape) / max(rgb.shape[:2])))
    lab = labels_to_rgb(labels[::step, ::step])[: rgb.shape[0], : rgb.shape[1]]
    rows = min(rgb.shape[0], lab.shape[0])
    cols = min(rgb.shape[1], lab.shape[1])
    gap = np.full((rows, max(2, cols // 50), 3), 255, dtype=np.uint8)
    side = np.concatenate([rgb[:rows, :cols], gap, lab[:rows, :cols]], axis=1)
    buf = io.BytesIO()
    Image.fromarray(side).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def scene_outputs(key: PartitionKey, scene: S2Scene, result: SceneLabels,
                  config: S2LabelConfig) -> tuple[list[Output], dict[str, Any]]:
    """The files of a scene's ``s2_labels`` partition and its manifest info.

    Labels COG (the product's colour table and nodata), unusable-mask COG (0 usable, 1 opaque
    cloud/shadow, 255 no data) and quicklook PNG, for the writer layer (:mod:`seaice_tasks.outputs`)
    to stage; ``info`` holds class, cloud and valid fractions, the filter statistics, shape and CRS.
    """
    unusable = np.where(result.valid, result.unusable.astype(np.uint8), UNUSABLE_NODATA).astype(np.uint8)
    valid_px = int(result.valid.sum())
    transform = tuple(scene.transform)
    outputs: list[Output] = [
        RasterOutput(key, LABELS_FILE, result.labels, scene.crs, transform),
        RasterOutput(key, UNUSABLE_FILE, unusable, scene.crs, transform),
        BytesOutput(key, QUICKLOOK_FILE, quicklook_png(scene, result.labels, config)),
    ]
    info = {
        "source": scene.source,
        "class_fractions": class_fractions(result.labels),
        "cloud_fraction": float(result.unusable.sum() / valid_px) if valid_px else 0.0,
        "valid_fraction": float(valid_px / result.labels.size) if result.labels.size else 0.0,
        "filter_stats": dataclasses.asdict(result.stats) if result.stats is not None else None,
        "shape": list(scene.shape),
        "crs": scene.crs,
    }
    return outputs, info


def write_scene_partition(lake: Lake, key: PartitionKey, scene: S2Scene, result: SceneLabels,
                          config: S2LabelConfig) -> Manifest:
    """Commit a scene's label partition in this process (:func:`scene_outputs`, manifest last)."""
    outputs, info = scene_outputs(key, scene, result, config)
    return write_partition(lake, key, outputs, config, info)

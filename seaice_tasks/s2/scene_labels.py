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
from pathlib import PurePosixPath
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
    LABEL_COLORMAP,
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

#: Longest side (px) of the quicklook's overview read and of each of its two panels.
QUICKLOOK_MAX_PX: Final[int] = 768
#: Resolution of the quicklook PNG (dots per inch; fixed, so its pixel size is too).
QUICKLOOK_DPI: Final[int] = 100
#: Narrowest quicklook (px), room for the title and the legend beside small panels.
_QUICKLOOK_MIN_WIDTH_PX: Final[int] = 640
#: Legend entries of the quicklook, in the product's class codes.
_LEGEND_CLASSES: Final[tuple[tuple[SeaIceClass, str], ...]] = (
    (SeaIceClass.THICK_ICE, "thick ice"),
    (SeaIceClass.THIN_ICE, "thin ice"),
    (SeaIceClass.OPEN_WATER, "open water"),
    (SeaIceClass.UNLABELED, "unusable (cloud, shadow or no data)"),
)
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


def _scene_title(scene: S2Scene) -> tuple[str, str]:
    """The quicklook's title and subtitle.

    The title names the scene by its storage key ``YYYYMMDDThhmmss_Txxxxx`` (else by its
    source's name); the subtitle gives tile, sensing time (UTC) and grid (px, m).
    """
    rows, cols = scene.shape
    res_x, _ = scene.resolution_m
    grid = f"{rows} x {cols} px at {res_x:g} m"
    if scene.scene_id is not None:
        sid = scene.scene_id
        return f"Sentinel-2 scene {sid.scene}", f"tile T{sid.tile}, {sid.sensing:%Y-%m-%d %H:%M} UTC, {grid}"
    name = PurePosixPath(scene.source.replace("\\", "/").rstrip("/")).name or scene.source
    return f"Sentinel-2 scene {name}", grid


def _nice_length(target: float) -> float:
    """The largest 1, 2 or 5 x 10^n not above ``target`` (> 0).

    Examples
    --------
    >>> [_nice_length(x) for x in (1.0, 4.39, 21.96, 0.3)]
    [1.0, 2.0, 20.0, 0.2]
    """
    exp = math.floor(math.log10(target))
    for mant in (5.0, 2.0, 1.0):
        if mant * 10.0 ** exp <= target * (1 + 1e-9):
            return float(round(mant * 10.0 ** exp, 12))
    return float(10.0 ** exp)  # pragma: no cover - mant 1 always fits


def _on_grid(labels: npt.NDArray[np.uint8], shape: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """Nearest-neighbour resample of ``labels`` onto a (rows, cols) grid covering the same extent.

    Pixel centres are sampled as GDAL's nearest overview read does, so the result is co-registered
    with :func:`~seaice_tasks.io.s2.read_bands_overview` of the same scene.
    """
    rows, cols = labels.shape
    rr = np.minimum(((np.arange(shape[0]) + 0.5) * rows / shape[0]).astype(np.intp), rows - 1)
    cc = np.minimum(((np.arange(shape[1]) + 0.5) * cols / shape[1]).astype(np.intp), cols - 1)
    return labels[np.ix_(rr, cc)]


def quicklook_png(scene: S2Scene, labels: npt.NDArray[np.uint8], config: S2LabelConfig,
                  max_px: int = QUICKLOOK_MAX_PX) -> bytes:
    """PNG figure of a scene's RGB composite beside its labels, with a class legend and scale bars.

    Two panels on the scene's grid (north up): "Sentinel-2 RGB (reflectance)" -- the 8-bit
    composite of ``config.read`` from a nearest-neighbour overview read -- and "Labels" in the
    product's colour table (:data:`~seaice_tasks.s2.color_labels.LABEL_COLORMAP`: red thick ice,
    blue thin ice, green open water, black 255 = unusable: cloud, shadow or no data).  The
    title names the scene (:attr:`S2SceneId.scene <seaice_tasks.granule.S2SceneId.scene>`, else
    the source's name); each panel has a scale bar in km and no pixel ticks.

    Parameters
    ----------
    scene : S2Scene
        The scene the labels are of; its transform gives the pixel size (m, UTM).
    labels : numpy.ndarray of uint8, shape (rows, cols)
        Class codes on the scene's grid (0 thick, 1 thin, 2 water, 255 unlabeled); any other
        code is drawn black.
    config : S2LabelConfig
        ``config.read`` gives the bands' 8-bit stretch of the RGB panel.
    max_px : int, default :data:`QUICKLOOK_MAX_PX` (768)
        Longest side of the overview read (px) and of each panel as drawn (px).  The scene is
        decimated by ``ceil(max(rows, cols) / max_px)``; the scale bars use the scene's extent,
        so they hold at any decimation.

    Returns
    -------
    bytes
        The PNG (RGB, :data:`QUICKLOOK_DPI` dpi): each panel at most ``max_px`` px a side, the
        figure at most ``max(2 * max_px + 60, 640)`` px wide and ``max_px + 155`` px high (title
        above, legend below).  Identical inputs give identical bytes (no software or time stamp
        in the file).

    Raises
    ------
    ValueError
        When ``max_px`` is not positive.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import Patch
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    from seaice_tasks.io.s2 import dn_to_reflectance

    if max_px < 1:
        raise ValueError(f"max_px must be positive, got {max_px}")
    dn = read_bands_overview(scene, max_px)
    rgb, _ = rgb_composite(dn_to_reflectance(dn, scene.processing_baseline, scene.nodata), config.read)
    lab = labels_to_rgb(_on_grid(np.asarray(labels, dtype=np.uint8), (rgb.shape[0], rgb.shape[1])))

    # Extent from the scene's grid (m -> km): independent of the decimation step.
    res_x, res_y = scene.resolution_m
    rows, cols = scene.shape
    width_km, height_km = cols * res_x / 1000.0, rows * res_y / 1000.0
    shown_m = max(cols * res_x / rgb.shape[1], rows * res_y / rgb.shape[0])
    long_km = max(width_km, height_km)
    panel_w = max(1, round(max_px * width_km / long_km))
    panel_h = max(1, round(max_px * height_km / long_km))

    dpi = QUICKLOOK_DPI
    pad, top = 20, 75
    fig_w = max(2 * panel_w + 3 * pad, _QUICKLOOK_MIN_WIDTH_PX)
    ncol = 4 if fig_w >= 1000 else 2
    bottom = 55 if ncol == 4 else 80
    fig_h = top + panel_h + bottom
    left = (fig_w - (2 * panel_w + pad)) / 2

    font = {"family": "DejaVu Sans", "size": 11}
    fig = Figure(figsize=(fig_w / dpi, fig_h / dpi), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    title, subtitle = _scene_title(scene)
    fig.suptitle(title, y=1 - 10 / fig_h, va="top", fontsize=13, fontweight="bold", fontfamily="DejaVu Sans")
    fig.text(0.5, 1 - 32 / fig_h, f"{subtitle}; quicklook sampled every {shown_m:.3g} m",
             ha="center", va="top", fontsize=9, fontfamily="DejaVu Sans", color="0.3")
    extent = (0.0, width_km, height_km, 0.0)
    bar_km = _nice_length(width_km / 5)
    for i, (image, panel_title) in enumerate(((rgb, "Sentinel-2 RGB (reflectance)"), (lab, "Labels"))):
        x0 = left + i * (panel_w + pad)
        ax = fig.add_axes((x0 / fig_w, bottom / fig_h, panel_w / fig_w, panel_h / fig_h))
        ax.imshow(image, extent=extent, interpolation="nearest", aspect="auto")
        ax.set_xlim(0.0, width_km)
        ax.set_ylim(height_km, 0.0)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(panel_title, fontdict=font, pad=4)
        ax.add_artist(AnchoredSizeBar(
            ax.transData, bar_km, f"{bar_km:g} km", loc="lower left", pad=0.4, borderpad=0.6, sep=3,
            color="black", frameon=True, size_vertical=height_km / 120,
            fontproperties=FontProperties(family="DejaVu Sans", size=9)))
    handles = [Patch(facecolor="#{:02x}{:02x}{:02x}".format(*LABEL_COLORMAP[int(code)]), edgecolor="0.4",
                     label=name) for code, name in _LEGEND_CLASSES]
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, prop=font,
               bbox_to_anchor=(0.5, 4 / fig_h), handlelength=1.6, columnspacing=1.6)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", metadata={"Software": None})
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

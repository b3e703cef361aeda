"""The authors' thin-cloud / shadow filter ("shadow_cloud_removal", METHOD.md §2.2) and an unusable mask.

The filter turns an 8-bit RGB composite into a three-level "shadow-free" image (255 ice, 155 thin
ice, 0 water) in exactly the authors' order of OpenCV operations:

1. ``water`` = V in [0, 30] on the input (OpenCV HSV, V = max(R, G, B));
2. water pixels -> white (255, 255, 255);
3. ``grey`` = RGB -> GRAY (0.299 R + 0.587 G + 0.114 B);
4. ``dil`` = grey dilation, 7 x 7 all-ones kernel;
5. ``bg`` = median blur of ``dil``, aperture 155 px;
6. ``diff`` = 255 - |grey - bg|;
7. Otsu binary threshold on ``diff`` -> ``mask``; ``diff2`` = diff AND mask;
8. min-max normalise ``diff2`` to 0..255;
9. truncate at 235, min-max normalise again -> ``thr``;
10. ``thin`` = thr in [0, 204], ``ice`` = thr in [205, 255], ``ice`` = ice XOR water;
11. output ice -> 255, thin -> 155, water -> 0 (water assigned last, so it wins);
12. (:func:`filtered_labels`) segment the output with the §2.1 colour thresholds.

Nodata (our addition; the authors had none)
    Pixels outside the footprint (``valid`` False) are black in the composite, i.e. V = 0, which
    the authors' step 1 calls water and step 2 paints white.  We keep exactly that fill (white),
    so ``grey``, ``dil``, ``bg`` and ``diff`` of every valid pixel are what the authors' code
    computes; but nodata pixels are **excluded from the global statistics** (the Otsu level
    of step 7 and the minimum/maximum of the two normalisations of steps 8-9), so a large
    nodata corner cannot shift the thresholds.  In the output image nodata pixels are 0 (the
    authors' black); :func:`filtered_labels` turns them into 255 (unlabeled) through ``valid``.

Global statistics and windows
    Steps 4-6 are local: ``diff`` at a pixel depends on the input within
    :attr:`CloudShadowConfig.halo_px` = median_px // 2 + dilate_px // 2 = 80 px.  Steps 7-9 use
    three scene-wide numbers (:class:`FilterStats`: the Otsu level, and the minimum and maximum
    of ``diff2``).  A caller that tiles a scene reads every window with a halo of ``halo_px``
    pixels (clipped at the scene edge), computes :func:`shadow_diff`, crops the halo and
    accumulates :func:`diff_histogram` over all windows (pass 1); :meth:`FilterStats.from_histogram`
    then gives the scene statistics, and pass 2 calls :func:`remove_thin_cloud_shadow` on each
    halo window with ``stats=`` and crops: the result equals the full-scene result **exactly**.
    (The normalisations are applied with OpenCV's own ``cv2.normalize`` on the valid pixels plus
    two sentinel pixels holding the scene minimum and maximum of ``diff2``; every step after the
    Otsu cut is monotone, so the sentinels stay the extremes and fix the min-max scaling.)

Unusable mask (:func:`unusable_mask`)
    The filter removes smooth illumination gradients (thin haze, broad shadows) but cannot see
    through opaque cloud, which is as bright as snow, nor fix small dark shadows.  The heuristic
    flags

    * opaque cloud: grey >= ``opaque_cloud_min_grey`` (229, i.e. reflectance ~0.9 with the
      reader's default stretch; simulated snow-covered ice stays <= ~227) **and** flat texture
      (local standard deviation over ``texture_px`` x ``texture_px`` <= ``cloud_max_std``
      grey levels), opened with a ``open_px`` square and kept in connected blobs of at least
      ``min_blob_px`` pixels;
    * dark shadow (``flag_shadows``): V in the thin-ice range and flat (std <=
      ``shadow_max_std``), same opening and blob size;
    * or, when an L2A SCL band is given, its codes ``scl_unusable`` (no data, saturated, cloud
      shadow, cloud medium/high probability, cirrus; METHOD.md §1.4).

    Measured on simulated 5 km scenes (docs/s2_labels.md): opaque cloud precision ~1.0 and
    recall ~0.9; shadow recall ~0.3-0.5 with precision 0.2-1.0 (large flat nilas looks like a
    shadow in RGB).  The thresholds follow the simulator's radiometry and are not validated on
    real clouds.  The blob areas are per call: on windows use a halo of at least the largest
    blob diameter that matters, or compute the mask on the whole scene.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import ClassVar, Final

import cv2
import numpy as np
import numpy.typing as npt

from seaice_tasks.config import JsonConfig
from seaice_tasks.errors import ConfigError
from seaice_tasks.s2.color_labels import SCL_UNUSABLE, ColorLabelConfig, color_labels

__all__ = [
    "CloudShadowConfig",
    "FilterStats",
    "N_LEVELS",
    "water_mask",
    "shadow_diff",
    "diff_histogram",
    "otsu_threshold",
    "otsu_threshold_from_histogram",
    "filter_statistics",
    "remove_thin_cloud_shadow",
    "filtered_labels",
    "unusable_mask",
]

log = logging.getLogger(__name__)

#: Number of 8-bit levels.
N_LEVELS: Final[int] = 256
_U8_MAX: Final[int] = N_LEVELS - 1
#: OpenCV HSV hue upper bound used by the authors' ``inRange`` (hue is unconstrained).
_HUE_MAX_AUTHORS: Final[int] = 185
#: Smallest aperture of ``cv2.medianBlur``.
_MIN_MEDIAN_PX: Final[int] = 3

UInt8Array = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]


@dataclasses.dataclass(frozen=True)
class CloudShadowConfig(JsonConfig):
    """Constants of the authors' filter (METHOD.md §2.2) and of the unusable-mask heuristic.

    Attributes
    ----------
    water_max_v : int
        Largest V (8-bit) of open water on the input (authors: 30).
    dilate_px : int
        Side of the square all-ones dilation kernel (px; authors: 7).
    median_px : int
        Aperture of the median blur giving the background (px, odd; authors: 155).
    truncate : int
        Truncation level between the two normalisations (authors: 235).
    thin_max_v : int
        Largest normalised value called thin ice (authors: 204).
    ice_min_v : int
        Smallest normalised value called ice (authors: 205).
    ice_level, thin_level, water_level : int
        Output grey levels (authors: 255, 155, 0).
    opaque_cloud_min_grey : int
        Smallest grey (0.299 R + 0.587 G + 0.114 B, 8-bit) of an opaque-cloud pixel (229,
        reflectance ~0.9 with the default stretch).
    texture_px : int
        Side of the box (px) of the local grey standard deviation (texture).
    cloud_max_std : float
        Largest local grey standard deviation (8-bit levels) of opaque cloud.
    shadow_max_std : float
        Largest local grey standard deviation of a dark shadow.
    flag_shadows : bool
        Also flag flat dark (thin-ice-range) blobs as unusable shadow.
    open_px : int
        Side of the square morphological opening applied to the candidate masks (px).
    min_blob_px : int
        Smallest connected (8-neighbour) candidate blob kept (px; 200 px = 0.02 km^2 at 10 m).
    scl_unusable : tuple of int
        L2A SCL codes flagged when an SCL band is given.

    Examples
    --------
    >>> cfg = CloudShadowConfig()
    >>> cfg.halo_px
    80
    >>> CloudShadowConfig.from_json(cfg.to_json()) == cfg
    True
    """

    kind: ClassVar[str] = "cloud_shadow"
    water_max_v: int = 30
    dilate_px: int = 7
    median_px: int = 155
    truncate: int = 235
    thin_max_v: int = 204
    ice_min_v: int = 205
    ice_level: int = 255
    thin_level: int = 155
    water_level: int = 0
    opaque_cloud_min_grey: int = 229
    texture_px: int = 5
    cloud_max_std: float = 3.0
    shadow_max_std: float = 4.0
    flag_shadows: bool = True
    open_px: int = 5
    min_blob_px: int = 200
    scl_unusable: tuple[int, ...] = SCL_UNUSABLE

    def __post_init__(self) -> None:
        levels = ("water_max_v", "truncate", "thin_max_v", "ice_min_v", "ice_level", "thin_level", "water_level",
                  "opaque_cloud_min_grey")
        for name in levels:
            value = getattr(self, name)
            if not 0 <= value <= _U8_MAX:
                raise ConfigError(f"CloudShadowConfig.{name}: must be in 0..{_U8_MAX}, got {value!r}")
        if self.median_px < _MIN_MEDIAN_PX or self.median_px % 2 == 0:
            raise ConfigError(f"CloudShadowConfig.median_px: must be odd and >= {_MIN_MEDIAN_PX}, "
                              f"got {self.median_px}")
        for name in ("dilate_px", "texture_px", "open_px", "min_blob_px"):
            if getattr(self, name) < 1:
                raise ConfigError(f"CloudShadowConfig.{name}: must be >= 1, got {getattr(self, name)}")
        if self.thin_max_v >= self.ice_min_v:
            raise ConfigError(f"CloudShadowConfig: thin_max_v {self.thin_max_v} must be < ice_min_v {self.ice_min_v}")
        if self.cloud_max_std < 0 or self.shadow_max_std < 0:
            raise ConfigError("CloudShadowConfig: cloud_max_std and shadow_max_std must be >= 0")

    @property
    def halo_px(self) -> int:
        """Context (px) on each side a window needs for an exact ``diff``: median_px//2 + dilate_px//2."""
        return self.median_px // 2 + self.dilate_px // 2


@dataclasses.dataclass(frozen=True)
class FilterStats:
    """Scene-wide statistics of steps 7-9 of the filter.

    Attributes
    ----------
    otsu_level : int
        Otsu threshold of ``diff``: pixels with ``diff > otsu_level`` keep their value.
    diff2_min, diff2_max : int
        Minimum and maximum of ``diff2`` = diff AND mask over the valid pixels.
    n_valid : int
        Valid pixels the statistics were taken over (0: nothing to filter).

    Examples
    --------
    >>> hist = np.zeros(256, dtype=np.int64); hist[[10, 200, 250]] = [5, 3, 2]
    >>> FilterStats.from_histogram(hist)
    FilterStats(otsu_level=10, diff2_min=0, diff2_max=250, n_valid=10)
    """

    otsu_level: int
    diff2_min: int
    diff2_max: int
    n_valid: int

    @classmethod
    def from_histogram(cls, hist: npt.ArrayLike) -> FilterStats:
        """Statistics from the 256-bin histogram of ``diff`` over the valid pixels of a scene."""
        h = np.asarray(hist, dtype=np.int64)
        if h.shape != (N_LEVELS,):
            raise ValueError(f"histogram must have shape ({N_LEVELS},), got {h.shape}")
        n = int(h.sum())
        if n == 0:
            return cls(0, 0, 0, 0)
        level = otsu_threshold_from_histogram(h)
        kept = np.flatnonzero(h[level + 1:]) + level + 1
        below = bool(h[: level + 1].any())
        lo = 0 if below or kept.size == 0 else int(kept[0])
        hi = int(kept[-1]) if kept.size else 0
        return cls(level, lo, hi, n)


def _check_rgb(rgb: npt.ArrayLike) -> UInt8Array:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected an (rows, cols, 3) RGB image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr)


def _check_valid(valid: npt.ArrayLike | None, shape: tuple[int, ...]) -> BoolArray:
    if valid is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(valid, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"valid mask shape {mask.shape} differs from the image shape {shape}")
    return mask


def water_mask(rgb: npt.ArrayLike, config: CloudShadowConfig | None = None) -> BoolArray:
    """Step 1: open water, V in [0, ``water_max_v``] of OpenCV's HSV (hue and saturation free).

    Examples
    --------
    >>> water_mask(np.array([[[10, 30, 5], [31, 0, 0]]], dtype=np.uint8)).tolist()
    [[True, False]]
    """
    cfg = config if config is not None else CloudShadowConfig()
    img = _check_rgb(rgb)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    inside = cv2.inRange(hsv, np.array([0, 0, 0]), np.array([_HUE_MAX_AUTHORS, _U8_MAX, cfg.water_max_v]))
    out: BoolArray = inside > 0
    return out


def shadow_diff(
    rgb: npt.ArrayLike, valid: npt.ArrayLike | None = None, config: CloudShadowConfig | None = None
) -> tuple[UInt8Array, BoolArray]:
    """Steps 1-6: the high-pass image ``diff`` = 255 - |grey - median(dilate(grey))| and the water mask.

    Parameters
    ----------
    rgb : array_like of uint8, shape (rows, cols, 3)
        8-bit R, G, B composite (e.g. :func:`seaice_tasks.io.s2.rgb_composite`).
    valid : array_like of bool, shape (rows, cols), optional
        False outside the footprint; such pixels are painted white like water (the authors'
        treatment of their black nodata).
    config : CloudShadowConfig, optional

    Returns
    -------
    diff : numpy.ndarray of uint8, shape (rows, cols)
    water : numpy.ndarray of bool, shape (rows, cols)
        Step-1 water mask (nodata pixels excluded).

    Examples
    --------
    >>> img = np.full((9, 9, 3), 200, dtype=np.uint8); img[4, 4] = 100
    >>> diff, water = shadow_diff(img, config=CloudShadowConfig(median_px=3, dilate_px=1))
    >>> int(diff[4, 4]), int(diff[0, 0]), bool(water.any())
    (155, 255, False)
    """
    cfg = config if config is not None else CloudShadowConfig()
    img = _check_rgb(rgb)
    ok = _check_valid(valid, img.shape[:2])
    water = water_mask(img, cfg)
    filled = img.copy()
    filled[water | ~ok] = _U8_MAX
    grey = cv2.cvtColor(filled, cv2.COLOR_RGB2GRAY)
    dil = cv2.dilate(grey, np.ones((cfg.dilate_px, cfg.dilate_px), dtype=np.uint8))
    bg = cv2.medianBlur(dil, cfg.median_px)
    diff: UInt8Array = np.asarray(_U8_MAX - cv2.absdiff(grey, bg), dtype=np.uint8)
    return diff, water & ok


def diff_histogram(diff: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> npt.NDArray[np.int64]:
    """256-bin histogram of ``diff`` over the valid pixels (accumulate it over the windows of a scene).

    Examples
    --------
    >>> diff_histogram(np.array([[0, 255, 255]], dtype=np.uint8), [[True, True, False]])[[0, 255]].tolist()
    [1, 1]
    """
    arr = np.asarray(diff, dtype=np.uint8)
    ok = _check_valid(valid, arr.shape)
    return np.bincount(arr[ok].ravel(), minlength=N_LEVELS).astype(np.int64)


def otsu_threshold(diff: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> int:
    """Otsu level of ``diff`` over the valid pixels with ``cv2.threshold(..., THRESH_OTSU)``.

    Returns 0 when no pixel is valid.

    Examples
    --------
    >>> otsu_threshold(np.array([[10, 10, 200, 200]], dtype=np.uint8))
    10
    """
    arr = np.asarray(diff, dtype=np.uint8)
    ok = _check_valid(valid, arr.shape)
    values = np.ascontiguousarray(arr[ok].reshape(-1, 1))
    if values.size == 0:
        return 0
    level, _ = cv2.threshold(values, 0, _U8_MAX, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return int(level)


def otsu_threshold_from_histogram(hist: npt.ArrayLike) -> int:
    """Otsu level from a 256-bin histogram, the same algorithm as OpenCV's 8-bit ``THRESH_OTSU``.

    Maximises the between-class variance q1 q2 (mu1 - mu2)^2 over levels t (class 1 = values
    <= t), taking the first maximum; returns 0 for an empty or one-valued histogram.

    Examples
    --------
    >>> hist = np.zeros(256, dtype=np.int64); hist[[10, 200]] = [2, 2]
    >>> otsu_threshold_from_histogram(hist)
    10
    """
    h = np.asarray(hist, dtype=np.float64)
    if h.shape != (N_LEVELS,):
        raise ValueError(f"histogram must have shape ({N_LEVELS},), got {h.shape}")
    total = h.sum()
    if total <= 0:
        return 0
    # OpenCV's getThreshVal_Otsu_8u, literally (including its order of operations), so that
    # ties and rounding agree bit for bit
    scale = 1.0 / total
    mu = 0.0
    for i in range(N_LEVELS):
        mu += i * float(h[i])
    mu *= scale
    eps = float(np.finfo(np.float32).eps)
    q1 = mu1 = 0.0
    best_sigma = 0.0
    best = 0
    for i in range(N_LEVELS):
        p_i = float(h[i]) * scale
        mu1 *= q1
        q1 += p_i
        q2 = 1.0 - q1
        if min(q1, q2) < eps or max(q1, q2) > 1.0 - eps:
            continue
        mu1 = (mu1 + i * p_i) / q1
        mu2 = (mu - q1 * mu1) / q2
        sigma = q1 * q2 * (mu2 - mu1) * (mu2 - mu1)
        if sigma > best_sigma:
            best_sigma = sigma
            best = i
    return best


def filter_statistics(
    rgb: npt.ArrayLike, valid: npt.ArrayLike | None = None, config: CloudShadowConfig | None = None
) -> FilterStats:
    """:class:`FilterStats` of one image (the whole scene when it fits in memory)."""
    diff, _ = shadow_diff(rgb, valid, config)
    return FilterStats.from_histogram(diff_histogram(diff, valid))


def _normalize_column(values: UInt8Array) -> UInt8Array:
    out = cv2.normalize(values, np.empty_like(values), 0, _U8_MAX, cv2.NORM_MINMAX)
    return np.asarray(out, dtype=np.uint8).reshape(values.shape)


def remove_thin_cloud_shadow(
    rgb: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    config: CloudShadowConfig | None = None,
    *,
    stats: FilterStats | None = None,
) -> UInt8Array:
    """The authors' "shadow-free" image (METHOD.md §2.2 steps 1-11).

    Parameters
    ----------
    rgb : array_like of uint8, shape (rows, cols, 3)
        8-bit R, G, B composite.
    valid : array_like of bool, shape (rows, cols), optional
        False outside the footprint: painted white like water before the filter, excluded from
        the Otsu level and the normalisations, 0 in the output.
    config : CloudShadowConfig, optional
    stats : FilterStats, optional
        Scene-wide statistics (for windows read with a halo, see the module docstring); None
        computes them from this image's valid pixels.

    Returns
    -------
    numpy.ndarray of uint8, shape (rows, cols)
        ``ice_level`` (255) ice, ``thin_level`` (155) thin ice, ``water_level`` (0) open water
        and nodata.

    Examples
    --------
    >>> img = np.full((5, 5, 3), 220, dtype=np.uint8); img[2, 2] = 90; img[0, 0] = 10
    >>> out = remove_thin_cloud_shadow(img, config=CloudShadowConfig(median_px=3, dilate_px=1))
    >>> out.tolist()[0][:2], int(out[2, 2]), int(out[4, 4])
    ([0, 255], 155, 255)
    """
    cfg = config if config is not None else CloudShadowConfig()
    img = _check_rgb(rgb)
    ok = _check_valid(valid, img.shape[:2])
    out = np.full(img.shape[:2], cfg.water_level, dtype=np.uint8)
    diff, water = shadow_diff(img, ok, cfg)
    st = stats if stats is not None else FilterStats.from_histogram(diff_histogram(diff, ok))
    values = np.ascontiguousarray(diff[ok].reshape(-1, 1))
    if values.size == 0:
        log.info("remove_thin_cloud_shadow: no valid pixel in a %dx%d image", *img.shape[:2])
        return out
    if st.n_valid == 0:
        raise ValueError("stats were computed over no valid pixel but this image has valid pixels")
    # step 7: Otsu cut with the (scene) level; then two sentinels holding the scene extremes of diff2
    _, mask = cv2.threshold(values, st.otsu_level, _U8_MAX, cv2.THRESH_BINARY)
    diff2 = cv2.bitwise_and(values, mask)
    column = np.concatenate([diff2, np.array([[st.diff2_min], [st.diff2_max]], dtype=np.uint8)])
    if int(column.min()) != st.diff2_min or int(column.max()) != st.diff2_max:
        raise ValueError(f"stats {st} do not bound this image's diff2 range "
                         f"[{int(diff2.min())}, {int(diff2.max())}]")
    # steps 8-9: normalise, truncate, normalise
    norm = _normalize_column(column)
    _, trunc = cv2.threshold(norm, cfg.truncate, _U8_MAX, cv2.THRESH_TRUNC)
    thr = _normalize_column(np.asarray(trunc, dtype=np.uint8).reshape(column.shape))[:-2, 0]
    # step 10: V of the grey image as 3 channels is the grey value itself
    water_v = water[ok]
    thin = (thr <= cfg.thin_max_v)
    ice = (thr >= cfg.ice_min_v) ^ water_v
    # step 11: ice, then thin, then water (water wins)
    levels = np.full(thr.shape, cfg.water_level, dtype=np.uint8)
    levels[ice] = cfg.ice_level
    levels[thin] = cfg.thin_level
    levels[water_v] = cfg.water_level
    out[ok] = levels
    return out


def filtered_labels(
    rgb: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    config: CloudShadowConfig | None = None,
    color_config: ColorLabelConfig | None = None,
    *,
    stats: FilterStats | None = None,
    unusable: npt.ArrayLike | None = None,
    scl: npt.ArrayLike | None = None,
) -> UInt8Array:
    """Step 12: §2.1 colour labels of the shadow-free image (0 thick, 1 thin, 2 water, 255 unlabeled).

    ``valid`` False, ``unusable`` True (e.g. :func:`unusable_mask`) and SCL codes in
    ``color_config.scl_unusable`` give 255.

    Examples
    --------
    >>> img = np.full((5, 5, 3), 220, dtype=np.uint8); img[2, 2] = 90; img[0, 0] = 10
    >>> ok = np.ones((5, 5), dtype=bool); ok[4, 4] = False
    >>> lab = filtered_labels(img, ok, CloudShadowConfig(median_px=3, dilate_px=1))
    >>> int(lab[0, 0]), int(lab[0, 1]), int(lab[2, 2]), int(lab[4, 4])
    (2, 0, 1, 255)
    """
    image = remove_thin_cloud_shadow(rgb, valid, config, stats=stats)
    grey3 = np.repeat(image[..., np.newaxis], 3, axis=-1)
    return color_labels(grey3, valid, color_config, unusable=unusable, scl=scl)


def _blobs(candidate: BoolArray, cfg: CloudShadowConfig) -> BoolArray:
    opened = cv2.morphologyEx(candidate.astype(np.uint8), cv2.MORPH_OPEN,
                              np.ones((cfg.open_px, cfg.open_px), dtype=np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    keep = np.zeros(n, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= cfg.min_blob_px
    out: BoolArray = keep[labels]
    return out


def unusable_mask(
    rgb: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    config: CloudShadowConfig | None = None,
    scl: npt.ArrayLike | None = None,
) -> BoolArray:
    """Opaque cloud and dark shadow the filter cannot fix (heuristic, see the module docstring).

    Parameters
    ----------
    rgb : array_like of uint8, shape (rows, cols, 3)
    valid : array_like of bool, optional
        Nodata pixels are never flagged (they are unlabeled anyway).
    config : CloudShadowConfig, optional
    scl : array_like of int, shape (rows, cols), optional
        L2A scene classification; codes in ``config.scl_unusable`` are flagged too.

    Returns
    -------
    numpy.ndarray of bool, shape (rows, cols)

    Examples
    --------
    >>> img = np.full((40, 40, 3), 215, dtype=np.uint8); img[::2, :, 0] = 225  # textured ice
    >>> img[5:25, 5:25] = 232  # flat bright cloud, 20 x 20 px
    >>> m = unusable_mask(img)  # the 2 px rim sees the ice texture: a 16 x 16 core is flagged
    >>> int(m.sum()), bool(m[15, 15]), bool(m[35, 35])
    (256, True, False)
    """
    cfg = config if config is not None else CloudShadowConfig()
    img = _check_rgb(rgb)
    ok = _check_valid(valid, img.shape[:2])
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    box = (cfg.texture_px, cfg.texture_px)
    mean = cv2.blur(grey, box)
    std = np.sqrt(np.maximum(cv2.blur(grey * grey, box) - mean * mean, 0.0))
    v = img.max(axis=-1)
    cloud = _blobs(ok & (grey >= cfg.opaque_cloud_min_grey) & (std <= cfg.cloud_max_std), cfg)
    out = cloud
    if cfg.flag_shadows:
        dark = (v > cfg.water_max_v) & (v < cfg.ice_min_v) & (std <= cfg.shadow_max_std)
        out = out | _blobs(ok & dark, cfg)
    if scl is not None:
        codes = np.asarray(scl)
        if codes.shape != ok.shape:
            raise ValueError(f"scl shape {codes.shape} differs from the image shape {ok.shape}")
        out = out | np.isin(codes, cfg.scl_unusable)
    result: BoolArray = out & ok
    log.debug("unusable_mask: %d of %d valid pixels flagged (cloud %d)", int(result.sum()), int(ok.sum()),
              int(cloud.sum()))
    return result

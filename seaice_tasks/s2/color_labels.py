"""Colour-threshold auto-labels of Sentinel-2 pixels (METHOD.md §2.1, the authors' exact rule).

The authors convert the 8-bit RGB image to HSV and keep H and S unconstrained, so the rule is a
threshold on V = max(R, G, B):

==================  =====================  =====
class               V range (inclusive)    code
==================  =====================  =====
thick / snow ice    205 .. 255             0
thin / young ice    31 .. 204              1
open water          0 .. 30                2
==================  =====================  =====

Unlike the authors, pixels outside the scene footprint (nodata) and pixels flagged as opaque
cloud or shadow are **unlabeled (255)**, not water.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Final

import numpy as np
import numpy.typing as npt

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import CLASS_COLOURS_RGB, SeaIceClass
from seaice_tasks.errors import ConfigError

__all__ = [
    "ColorLabelConfig",
    "value_channel",
    "color_labels",
    "class_fractions",
    "labels_to_rgb",
    "LABEL_COLORMAP",
    "SCL_UNUSABLE",
]

#: Sentinel-2 L2A scene-classification codes that make a pixel unusable: no data, saturated,
#: cloud shadow, cloud medium/high probability, thin cirrus (METHOD.md §1.4).
SCL_UNUSABLE: Final[tuple[int, ...]] = (0, 1, 3, 8, 9, 10)
_V_MAX: Final[int] = 255

#: Colour table of label COGs (class code -> RGB).
LABEL_COLORMAP: Final[dict[int, tuple[int, int, int]]] = {int(k): v for k, v in CLASS_COLOURS_RGB.items()}


@dataclasses.dataclass(frozen=True)
class ColorLabelConfig(JsonConfig):
    """Thresholds of the colour labels on V = max(R, G, B) of the 8-bit composite.

    Attributes
    ----------
    thick_min_v : int
        Smallest V labelled thick/snow-covered ice (authors: 205).
    water_max_v : int
        Largest V labelled open water (authors: 30); thin ice is in between.
    scl_unusable : tuple of int
        L2A SCL codes labelled 255 when an SCL band is given.
    """

    kind: ClassVar[str] = "color_labels"
    thick_min_v: int = 205
    water_max_v: int = 30
    scl_unusable: tuple[int, ...] = SCL_UNUSABLE

    def __post_init__(self) -> None:
        if not 0 <= self.water_max_v < self.thick_min_v - 1 < _V_MAX:
            raise ConfigError(
                f"ColorLabelConfig: need 0 <= water_max_v < thick_min_v - 1 <= 254, "
                f"got {self.water_max_v}, {self.thick_min_v}"
            )


def value_channel(rgb: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """V = max(R, G, B) of an (rows, cols, 3) uint8 image (OpenCV's HSV value)."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected an (rows, cols, 3) RGB image, got shape {arr.shape}")
    return np.asarray(arr.max(axis=-1), dtype=np.uint8)


def color_labels(
    rgb: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    config: ColorLabelConfig | None = None,
    *,
    unusable: npt.ArrayLike | None = None,
    scl: npt.ArrayLike | None = None,
) -> npt.NDArray[np.uint8]:
    """Class codes of every pixel of an 8-bit RGB image.

    Parameters
    ----------
    rgb : array_like of uint8, shape (rows, cols, 3)
        The composite (any channel order: only the maximum matters).
    valid : array_like of bool, optional
        False outside the footprint -> 255 (unlabeled).
    config : ColorLabelConfig, optional
    unusable : array_like of bool, optional
        Extra pixels to leave unlabeled (opaque cloud, shadow the filter cannot fix).
    scl : array_like of int, optional
        L2A scene classification; codes in ``config.scl_unusable`` -> 255.

    Returns
    -------
    numpy.ndarray of uint8, shape (rows, cols)
        0 thick ice, 1 thin ice, 2 open water, 255 unlabeled.

    Examples
    --------
    >>> img = np.array([[[250, 10, 10], [120, 120, 120], [5, 20, 30], [0, 0, 0]]], dtype=np.uint8)
    >>> color_labels(img, valid=[[True, True, True, False]]).tolist()
    [[0, 1, 2, 255]]
    """
    cfg = config if config is not None else ColorLabelConfig()
    v = value_channel(rgb)
    labels = np.full(v.shape, SeaIceClass.THIN_ICE, dtype=np.uint8)
    labels[v >= cfg.thick_min_v] = SeaIceClass.THICK_ICE
    labels[v <= cfg.water_max_v] = SeaIceClass.OPEN_WATER
    for mask in (None if valid is None else ~np.asarray(valid, dtype=bool),
                 None if unusable is None else np.asarray(unusable, dtype=bool),
                 None if scl is None else np.isin(np.asarray(scl), cfg.scl_unusable)):
        if mask is not None:
            if mask.shape != v.shape:
                raise ValueError(f"mask shape {mask.shape} differs from the image {v.shape}")
            labels[mask] = SeaIceClass.UNLABELED
    return labels


def class_fractions(labels: npt.ArrayLike) -> dict[str, float]:
    """Fractions of thick/thin/water among labelled pixels and the unlabeled fraction of all.

    Examples
    --------
    >>> class_fractions(np.array([0, 0, 1, 2, 255], dtype=np.uint8))
    {'thick_ice': 0.5, 'thin_ice': 0.25, 'open_water': 0.25, 'unlabeled': 0.2}
    """
    arr = np.asarray(labels).ravel()
    counts = np.bincount(arr, minlength=_V_MAX + 1)
    labelled = int(counts[: SeaIceClass.OPEN_WATER + 1].sum())
    out = {
        "thick_ice": counts[SeaIceClass.THICK_ICE] / labelled if labelled else 0.0,
        "thin_ice": counts[SeaIceClass.THIN_ICE] / labelled if labelled else 0.0,
        "open_water": counts[SeaIceClass.OPEN_WATER] / labelled if labelled else 0.0,
        "unlabeled": counts[SeaIceClass.UNLABELED] / arr.size if arr.size else 0.0,
    }
    return {k: float(v) for k, v in out.items()}


def labels_to_rgb(labels: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Quicklook colours (red thick, blue thin, green water, black unlabeled)."""
    arr = np.asarray(labels, dtype=np.uint8)
    lut = np.zeros((_V_MAX + 1, 3), dtype=np.uint8)
    for code, colour in LABEL_COLORMAP.items():
        lut[code] = colour
    return lut[arr]

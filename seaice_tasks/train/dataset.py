"""Tiles of labelled Sentinel-2 scenes and the U-Net preprocessing shared by training and inference.

Preprocessing (METHOD.md §2.4), one tile at a time, :func:`preprocess_tile`:

1. grey = round(0.299 R + 0.587 G + 0.114 B) of the 8-bit composite (what OpenCV/libpng return
   when the authors read their RGB PNG tiles as single-channel images), :func:`grey_from_rgb`;
2. ``keras.utils.normalize(x, axis=1)`` on the (N, H, W, 1) batch, i.e. every column of every
   tile divided by its L2 norm along the image height, zero norms left as is,
   :func:`normalize_columns`.

The normalisation depends on the tile (the column norm runs over the tile height), so training and
inference must cut the same tile size and call the same function; the authors' Spark inference
skipped step 2 (METHOD.md §13 row 18).  :func:`seaice_tasks.s2.unet.predict_scene` uses
:func:`preprocess_tile` exactly as :class:`TileDataset` does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.utils.data import Dataset

from seaice_tasks.constants import UNLABELED

__all__ = [
    "GREY_WEIGHTS",
    "DEFAULT_TILE_PX",
    "DEFAULT_MIN_LABELLED_FRACTION",
    "grey_from_rgb",
    "normalize_columns",
    "preprocess_tile",
    "tile_origins",
    "crop_tile",
    "TileDataset",
]

log = logging.getLogger(__name__)

#: ITU-R BT.601 luma weights of R, G, B (OpenCV ``COLOR_RGB2GRAY`` / ``IMREAD_GRAYSCALE``).
GREY_WEIGHTS: Final[tuple[float, float, float]] = (0.299, 0.587, 0.114)
#: Side of the authors' U-Net tiles (px).
DEFAULT_TILE_PX: Final[int] = 256
#: Tiles with a smaller fraction of labelled pixels are skipped in training.
DEFAULT_MIN_LABELLED_FRACTION: Final[float] = 0.5
_UINT8_MAX: Final[int] = 255
_RGB_CHANNELS: Final[int] = 3
_IMAGE_AXES: Final[int] = 2

FloatImage = npt.NDArray[np.float32]
Preprocess = Callable[[npt.NDArray[np.uint8]], FloatImage]


def grey_from_rgb(rgb: npt.ArrayLike) -> FloatImage:
    """Grey level round(0.299 R + 0.587 G + 0.114 B) of an 8-bit RGB image, as float32 0-255.

    Parameters
    ----------
    rgb : array_like of uint8, shape (..., rows, cols, 3)
        R, G, B in this order (the order of :func:`seaice_tasks.io.s2.rgb_composite`).

    Returns
    -------
    numpy.ndarray of float32, shape (..., rows, cols)

    Examples
    --------
    >>> grey_from_rgb(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 200, 200]]], np.uint8)).tolist()
    [[76.0, 150.0, 29.0, 200.0]]
    """
    arr = np.asarray(rgb)
    if arr.ndim < _RGB_CHANNELS or arr.shape[-1] != _RGB_CHANNELS:
        raise ValueError(f"expected an (..., rows, cols, 3) RGB image, got shape {arr.shape}")
    grey = arr.astype(np.float64) @ np.asarray(GREY_WEIGHTS, dtype=np.float64)
    return np.clip(np.rint(grey), 0, _UINT8_MAX).astype(np.float32)


def normalize_columns(image: npt.ArrayLike) -> FloatImage:
    """Divide every column by its L2 norm along the rows: ``keras.utils.normalize(x, axis=1)``.

    For a Keras batch (N, H, W, C), axis 1 is the image height; here the height is axis -2 of an
    image (..., H, W).  Columns whose norm is 0 are left unchanged (Keras sets such norms to 1).

    Parameters
    ----------
    image : array_like, shape (..., rows, cols)

    Returns
    -------
    numpy.ndarray of float32, same shape

    Examples
    --------
    >>> normalize_columns([[3.0, 0.0, 1.0], [4.0, 0.0, 0.0]]).tolist()
    [[0.6000000238418579, 0.0, 1.0], [0.800000011920929, 0.0, 0.0]]
    """
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim < _IMAGE_AXES:
        raise ValueError(f"expected an image (..., rows, cols), got shape {arr.shape}")
    norm = np.linalg.norm(arr, axis=-2, keepdims=True)
    norm[norm == 0] = 1.0
    out: FloatImage = (arr / norm).astype(np.float32)
    return out


def preprocess_tile(rgb: npt.NDArray[np.uint8]) -> FloatImage:
    """The U-Net input of one tile: column-L2-normalised grey (training and inference alike).

    Parameters
    ----------
    rgb : numpy.ndarray of uint8, shape (rows, cols, 3)

    Returns
    -------
    numpy.ndarray of float32, shape (rows, cols)

    Examples
    --------
    >>> tile = np.zeros((2, 2, 3), np.uint8); tile[:, 0] = 100
    >>> np.round(preprocess_tile(tile).astype(np.float64), 4).tolist()
    [[0.7071, 0.0], [0.7071, 0.0]]
    """
    return normalize_columns(grey_from_rgb(rgb))


def tile_origins(length: int, tile: int, stride: int | None = None) -> list[int]:
    """Start offsets of tiles covering ``[0, length)``; the last tile is aligned to the end.

    Parameters
    ----------
    length : int
        Raster size along one axis (px).
    tile : int
        Tile size (px).
    stride : int, optional
        Step between tiles (default ``tile``: no overlap except for the end-aligned last tile).

    Returns
    -------
    list of int
        ``[0]`` when ``length <= tile`` (the tile is then padded).

    Examples
    --------
    >>> tile_origins(512, 256), tile_origins(600, 256), tile_origins(100, 256)
    ([0, 256], [0, 256, 344], [0])
    """
    step = tile if stride is None else stride
    if tile < 1 or step < 1 or length < 0:
        raise ValueError(f"tile_origins: need tile >= 1, stride >= 1, length >= 0; got {tile}, {step}, {length}")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def crop_tile(array: npt.NDArray[np.generic], row: int, col: int, tile: int, fill: int | float = 0) -> npt.NDArray[
        np.generic]:
    """The ``tile`` x ``tile`` window at (row, col) of a (rows, cols, ...) array, padded with ``fill``.

    Examples
    --------
    >>> crop_tile(np.ones((3, 3), np.uint8), 2, 2, 2, fill=9).tolist()
    [[1, 9], [9, 9]]
    """
    window = array[row : row + tile, col : col + tile]
    if window.shape[0] == tile and window.shape[1] == tile:
        return window
    out = np.full((tile, tile, *array.shape[2:]), fill, dtype=array.dtype)
    out[: window.shape[0], : window.shape[1]] = window
    return out


class TileDataset(Dataset[tuple[Tensor, Tensor]]):
    """Training tiles cut from (8-bit RGB, label) scene pairs.

    Each item is ``(x, y)``: ``x`` float32 (1, tile, tile) from :func:`preprocess_tile`, ``y``
    int64 (tile, tile) class codes (0 thick, 1 thin, 2 water, 255 unlabeled).  Tiles whose
    labelled fraction is below ``min_labelled_fraction`` are skipped.

    Parameters
    ----------
    scenes : sequence of (rgb, labels)
        ``rgb`` uint8 (rows, cols, 3), ``labels`` uint8 (rows, cols) on the same grid.
    tile_px : int
        Tile side (px).
    stride_px : int, optional
        Step between tiles (default ``tile_px``; the last row/column of tiles is aligned to the
        scene edge; a scene smaller than a tile gives one padded tile).
    min_labelled_fraction : float
        Keep tiles with at least this fraction of labelled pixels (0-1).
    preprocess : callable, optional
        The input transform (default :func:`preprocess_tile`; keep it equal to the inference one).

    Examples
    --------
    >>> rgb = np.zeros((64, 64, 3), np.uint8); lab = np.zeros((64, 64), np.uint8); lab[32:] = 255
    >>> ds = TileDataset([(rgb, lab)], tile_px=32, min_labelled_fraction=0.5)
    >>> len(ds), ds[0][0].shape, ds[0][1].dtype
    (2, torch.Size([1, 32, 32]), torch.int64)
    """

    def __init__(
        self,
        scenes: Sequence[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]],
        tile_px: int = DEFAULT_TILE_PX,
        stride_px: int | None = None,
        min_labelled_fraction: float = DEFAULT_MIN_LABELLED_FRACTION,
        preprocess: Preprocess | None = None,
    ) -> None:
        if not 0.0 <= min_labelled_fraction <= 1.0:
            raise ValueError(f"min_labelled_fraction must be in [0, 1], got {min_labelled_fraction}")
        self.tile_px = tile_px
        self.preprocess: Preprocess = preprocess if preprocess is not None else preprocess_tile
        self.scenes: list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]] = []
        self.index: list[tuple[int, int, int]] = []
        n_candidates = 0
        for s, (rgb, labels) in enumerate(scenes):
            rgb_arr = np.asarray(rgb, dtype=np.uint8)
            lab_arr = np.asarray(labels, dtype=np.uint8)
            is_rgb = rgb_arr.ndim == _RGB_CHANNELS and rgb_arr.shape[-1] == _RGB_CHANNELS
            if not is_rgb or lab_arr.shape != rgb_arr.shape[:2]:
                raise ValueError(f"scene {s}: rgb {rgb_arr.shape} and labels {lab_arr.shape} do not match")
            self.scenes.append((rgb_arr, lab_arr))
            labelled = lab_arr != UNLABELED
            for r in tile_origins(lab_arr.shape[0], tile_px, stride_px):
                for c in tile_origins(lab_arr.shape[1], tile_px, stride_px):
                    n_candidates += 1
                    fraction = float(labelled[r : r + tile_px, c : c + tile_px].sum()) / tile_px**2
                    if fraction >= min_labelled_fraction and fraction > 0.0:
                        self.index.append((s, r, c))
        log.info(
            "TileDataset: %d of %d tiles of %d px kept from %d scenes (labelled fraction >= %.2f)",
            len(self.index), n_candidates, tile_px, len(self.scenes), min_labelled_fraction,
        )

    def __len__(self) -> int:
        """Number of kept tiles."""
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[Tensor, Tensor]:
        """Tile ``item``: (x float32 (1, T, T), y int64 (T, T))."""
        s, r, c = self.index[item]
        rgb, labels = self.scenes[s]
        x_tile = np.asarray(crop_tile(rgb, r, c, self.tile_px, fill=0), dtype=np.uint8)
        y_tile = crop_tile(labels, r, c, self.tile_px, fill=UNLABELED)
        x = torch.from_numpy(self.preprocess(x_tile)[None].copy())
        y = torch.from_numpy(y_tile.astype(np.int64))
        return x, y

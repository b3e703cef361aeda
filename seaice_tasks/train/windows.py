"""Windowed input arrays of the ICESat-2 sequence classifiers from a training-set table.

A ``training_set`` table (:data:`seaice_tasks.schemas.TRAINING_SEGMENTS_SCHEMA`) holds segments
in track order (granule, beam, bin_index); a row whose ``split`` is >= 0 centres a window whose
neighbours ``i - half .. i + half`` are the adjacent rows of the same track (the builder,
:func:`seaice_tasks.is2.training_set.build_training_set`, guarantees it and this module checks
it).  :func:`window_arrays` gathers the windows by index arithmetic into the authors' (N, 5, F)
timestep-major layout (METHOD.md §5.3, §7); :func:`column_names` gives their flat column names.

This module imports neither torch nor the ICESat-2 stages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from seaice_tasks.errors import ConfigError, SchemaError

__all__ = [
    "HALF_WINDOW",
    "KEY_COLUMNS",
    "WindowArrays",
    "window_arrays",
    "column_names",
    "feature_statistics",
]

#: Neighbours on each side of a window centre (METHOD §5.3: 5 segments per window).
HALF_WINDOW: Final[int] = 2
#: Columns of :attr:`WindowArrays.keys`: where each window centre is.
KEY_COLUMNS: Final[tuple[str, ...]] = ("granule", "beam", "bin_index", "x_atc_m", "scene")
_NEEDED: Final[tuple[str, ...]] = ("granule", "beam", "bin_index", "x_atc_m", "scene", "label", "split")


@dataclasses.dataclass(frozen=True, eq=False)
class WindowArrays:
    """Windows of one split, ready for a sequence model.

    Attributes
    ----------
    x : ndarray of float32, shape (N, 2 * half + 1, F)
        Feature values per window, timestep-major (offset ``-half`` first), features in the
        requested order; z-scored when a normalisation was given (dimensionless), else in the
        features' units.
    y : ndarray of int64, shape (N,)
        Label of each window centre (0 thick, 1 thin, 2 water).
    keys : pandas.DataFrame
        :data:`KEY_COLUMNS` of the window centres (``x_atc_m`` in m), index 0..N-1.
    features : tuple of str
        Feature order of the last axis of :attr:`x`.
    """

    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]
    keys: pd.DataFrame
    features: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def flat(self) -> pd.DataFrame:
        """The windows as the authors' 2-D table: :func:`column_names` columns plus ``label``."""
        half = (self.x.shape[1] - 1) // 2
        frame = pd.DataFrame(self.x.reshape(len(self), -1), columns=column_names(self.features, half=half))
        frame.insert(0, "label", self.y)
        return frame


def column_names(features: Sequence[str], *, half: int = HALF_WINDOW) -> list[str]:
    """The authors' flat column names ``f"{feature}{offset}"``, timestep-major.

    Parameters
    ----------
    features : sequence of str
        Feature names in model order.
    half : int
        Neighbours on each side of the centre.

    Returns
    -------
    list of str
        ``(2 * half + 1) * len(features)`` names: every feature at offset ``-half``, then at
        ``-half + 1`` ... ``+half``: the order of ``x.reshape(N, -1)``.

    Examples
    --------
    >>> column_names(["h_cor_mean_m", "pcnt_mean"], half=1)
    ['h_cor_mean_m-1', 'pcnt_mean-1', 'h_cor_mean_m0', 'pcnt_mean0', 'h_cor_mean_m1', 'pcnt_mean1']
    """
    return [f"{f}{o}" for o in range(-half, half + 1) for f in features]


def feature_statistics(doc: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per-feature ``{"mean", "std"}`` of a training set's ``normalisation.json`` document.

    Parameters
    ----------
    doc : mapping
        ``{"features": [...], "mean": {f: ...}, "std": {f: ...}, ...}`` as written by the
        training-set builder.

    Returns
    -------
    dict
        ``{f: {"mean": m, "std": s}}`` for :func:`window_arrays`.

    Raises
    ------
    ConfigError
        When the document lacks the mean or std of a listed feature.

    Examples
    --------
    >>> feature_statistics({"features": ["h"], "mean": {"h": 0.2}, "std": {"h": 0.1}})
    {'h': {'mean': 0.2, 'std': 0.1}}
    """
    try:
        return {str(f): {"mean": float(doc["mean"][f]), "std": float(doc["std"][f])} for f in doc["features"]}
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"normalisation document lacks {exc}") from None


def _frame(table: pa.Table | pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    wanted = list(dict.fromkeys([*_NEEDED, *features]))
    names = table.column_names if isinstance(table, pa.Table) else list(table.columns)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise SchemaError(f"window_arrays: column(s) {missing} missing from the training table")
    if isinstance(table, pa.Table):
        return table.select(wanted).to_pandas()
    return table[wanted].reset_index(drop=True)


def _check_windows(frame: pd.DataFrame, index: npt.NDArray[np.int64], centres: npt.NDArray[np.int64],
                   offsets: npt.NDArray[np.int64]) -> None:
    track_id = frame.groupby(["granule", "beam"], sort=False).ngroup().to_numpy(dtype=np.int64)
    bins = frame["bin_index"].to_numpy(dtype=np.int64)
    same_track = bool(np.all(track_id[index] == track_id[centres][:, None]))
    consecutive = bool(np.all(bins[index] - bins[centres][:, None] == offsets[None, :]))
    if not (same_track and consecutive):
        raise SchemaError("window_arrays: a window centre's neighbours are not the adjacent 2 m bins of its "
                          "track (rows not in track order?)")


def window_arrays(
    table: pa.Table | pd.DataFrame,
    features: Sequence[str],
    *,
    split: int | None = None,
    normalisation: Mapping[str, Mapping[str, float]] | None = None,
    half: int = HALF_WINDOW,
) -> WindowArrays:
    """Gather the windows of a training-set table (no loop per window).

    Parameters
    ----------
    table : pyarrow.Table or pandas.DataFrame
        Rows of :data:`~seaice_tasks.schemas.TRAINING_SEGMENTS_SCHEMA` in track order.
    features : sequence of str
        Feature columns, in model order.
    split : int or None
        0 train, 1 validation, 2 test; None takes every centre (``split >= 0``).
    normalisation : mapping, optional
        ``normalisation[f]["mean"]`` and ``normalisation[f]["std"]`` (feature units) per
        feature: values become ``(x - mean) / std``.  The training set's ``normalisation.json``
        holds ``{"mean": {f: ..}, "std": {f: ..}}``: pass it through :func:`feature_statistics`.
    half : int
        Neighbours on each side of a centre (the training set's ``half_window``).

    Returns
    -------
    WindowArrays
        ``x`` (N, 2 * half + 1, F) float32, ``y`` (N,) int64, ``keys`` of the centres.

    Raises
    ------
    SchemaError
        When a column is missing, or a centre's neighbours are outside the table or not the
        adjacent bins of its track.
    ConfigError
        When ``normalisation`` lacks a feature, or a std is not positive.

    Examples
    --------
    >>> t = pd.DataFrame({"granule": "g", "beam": "gt1r", "scene": "s", "bin_index": [10, 11, 12, 13],
    ...                   "x_atc_m": [20.0, 22.0, 24.0, 26.0], "label": [0, 2, 1, 0],
    ...                   "split": [-1, 0, 2, -1], "h": [1.0, 2.0, 3.0, 4.0]})
    >>> w = window_arrays(t, ["h"], half=1)
    >>> w.x[:, :, 0].tolist(), w.y.tolist(), w.keys["bin_index"].tolist()
    ([[1.0, 2.0, 3.0], [2.0, 3.0, 4.0]], [2, 1], [11, 12])
    >>> window_arrays(t, ["h"], split=2, half=1, normalisation={"h": {"mean": 3.0, "std": 0.5}}).x.tolist()
    [[[-2.0], [0.0], [2.0]]]
    """
    feats = list(features)
    if half < 0:
        raise ConfigError(f"window_arrays: half must be >= 0, got {half}")
    frame = _frame(table, feats)
    split_col = frame["split"].to_numpy(dtype=np.int64)
    chosen = split_col >= 0 if split is None else split_col == split
    centres = np.flatnonzero(chosen).astype(np.int64)
    offsets = np.arange(-half, half + 1, dtype=np.int64)
    index = centres[:, None] + offsets[None, :]
    if centres.size and (index.min() < 0 or index.max() >= len(frame)):
        raise SchemaError("window_arrays: a window centre has fewer than half rows before or after it")
    if centres.size:
        _check_windows(frame, index, centres, offsets)
    values = frame[feats].to_numpy(dtype=np.float64, na_value=np.nan) if feats else np.empty((len(frame), 0))
    if normalisation is not None:
        missing = [f for f in feats if f not in normalisation]
        if missing:
            raise ConfigError(f"window_arrays: normalisation has no statistics for {missing}")
        mean = np.array([float(normalisation[f]["mean"]) for f in feats])
        std = np.array([float(normalisation[f]["std"]) for f in feats])
        if not bool(np.all(std > 0)):
            raise ConfigError("window_arrays: normalisation std must be > 0")
        values = (values - mean) / std
    x = values[index].astype(np.float32)
    y = frame["label"].to_numpy(dtype=np.int64)[centres]
    keys = frame.loc[centres, list(KEY_COLUMNS)].reset_index(drop=True)
    return WindowArrays(x=x, y=y, keys=keys, features=tuple(feats))

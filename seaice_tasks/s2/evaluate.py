"""Pixel confusion matrix, accuracy and IoU of Sentinel-2 class maps (METHOD.md §2.4 metrics).

Conventions
    * Rows are the truth, columns the prediction, both in the order of ``classes`` (default
      0 thick ice, 1 thin ice, 2 open water; the authors' notebooks order thin, thick, water).
    * Truth pixels equal to ``ignore`` (255, unlabeled / nodata) are left out everywhere.
    * Predictions equal to ``ignore`` (e.g. opaque cloud flagged unusable) are **excluded** from
      the confusion matrix, the pixel accuracy and the IoU; the share of labelled truth pixels
      that got a labelled prediction is reported as ``coverage``, and ``accuracy_all`` counts
      the unlabeled predictions as wrong (correct / all labelled truth pixels).
    * Any other value outside ``classes`` is an error (ValueError).

IoU of class c = TP / (TP + FP + FN) from the confusion matrix (NaN when the class is absent
from both truth and prediction); the mean IoU averages the defined ones (as Keras ``MeanIoU``,
which skips classes with a zero denominator).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from seaice_tasks.constants import UNLABELED, SeaIceClass

__all__ = [
    "DEFAULT_CLASSES",
    "confusion_matrix",
    "pixel_accuracy",
    "per_class_iou",
    "mean_iou",
    "evaluate",
]

log = logging.getLogger(__name__)

#: Class codes in matrix order: thick ice, thin ice, open water.
DEFAULT_CLASSES: Final[tuple[int, ...]] = (int(SeaIceClass.THICK_ICE), int(SeaIceClass.THIN_ICE),
                                          int(SeaIceClass.OPEN_WATER))
_N_CODES: Final[int] = 256
_OUTSIDE: Final[int] = -1
_IGNORED: Final[int] = -2


def _lut(classes: Sequence[int], ignore: int | None) -> npt.NDArray[np.int64]:
    lut = np.full(_N_CODES, _OUTSIDE, dtype=np.int64)
    if ignore is not None:
        lut[ignore] = _IGNORED
    for k, code in enumerate(classes):
        if not 0 <= code < _N_CODES or code == ignore:
            raise ValueError(f"class code {code} must be in 0..255 and differ from ignore={ignore}")
        lut[code] = k
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes repeat a code: {tuple(classes)}")
    return lut


def _codes(name: str, arr: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    a = np.asarray(arr)
    if a.dtype == np.uint8:
        return a
    if a.size and (not np.issubdtype(a.dtype, np.integer) or int(a.min()) < 0 or int(a.max()) >= _N_CODES):
        raise ValueError(f"{name}: class codes must be integers 0..255 (dtype {a.dtype})")
    return a.astype(np.uint8)


def _indices(truth: npt.ArrayLike, pred: npt.ArrayLike, classes: Sequence[int],
             ignore: int | None) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    t = np.asarray(truth)
    p = np.asarray(pred)
    if t.shape != p.shape:
        raise ValueError(f"truth shape {t.shape} differs from prediction shape {p.shape}")
    lut = _lut(classes, ignore)
    ti = lut[_codes("truth", t).ravel()]
    pi = lut[_codes("pred", p).ravel()]
    for name, idx, src in (("truth", ti, t), ("pred", pi, p)):
        if np.any(idx == _OUTSIDE):
            bad = np.unique(np.asarray(src).ravel()[idx == _OUTSIDE])
            raise ValueError(f"{name} holds codes {bad.tolist()[:10]} outside classes {tuple(classes)} "
                             f"and ignore={ignore}")
    keep = ti != _IGNORED
    return ti[keep], pi[keep]


def confusion_matrix(
    truth: npt.ArrayLike,
    pred: npt.ArrayLike,
    classes: Sequence[int] = DEFAULT_CLASSES,
    ignore: int | None = UNLABELED,
) -> npt.NDArray[np.int64]:
    """Pixel counts, rows truth and columns prediction in the order of ``classes``.

    Parameters
    ----------
    truth, pred : array_like of int, same shape
        Class codes (0..255).
    classes : sequence of int
        Codes in matrix order (default thick 0, thin 1, water 2).
    ignore : int or None
        Code left out: truth pixels with it are skipped, predictions with it are excluded
        (not counted; see :func:`evaluate` for the coverage).

    Returns
    -------
    numpy.ndarray of int64, shape (len(classes), len(classes))

    Raises
    ------
    ValueError
        Different shapes (both named) or a code outside ``classes`` and ``ignore``.

    Examples
    --------
    >>> confusion_matrix([0, 0, 1, 2, 255, 2], [0, 1, 1, 2, 0, 255]).tolist()
    [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    """
    n = len(classes)
    ti, pi = _indices(truth, pred, classes, ignore)
    labelled = pi >= 0
    flat = ti[labelled] * n + pi[labelled]
    return np.bincount(flat, minlength=n * n).astype(np.int64).reshape(n, n)


def pixel_accuracy(cm: npt.ArrayLike) -> float:
    """Correct / all pixels of a confusion matrix (NaN when it is empty).

    Examples
    --------
    >>> pixel_accuracy([[3, 1], [0, 4]])
    0.875
    """
    m = np.asarray(cm, dtype=np.float64)
    total = m.sum()
    return float(np.trace(m) / total) if total > 0 else float("nan")


def per_class_iou(cm: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """TP / (TP + FP + FN) per class (NaN where the class is in neither truth nor prediction).

    Examples
    --------
    >>> per_class_iou([[3, 1, 0], [0, 4, 0], [0, 0, 0]]).tolist()
    [0.75, 0.8, nan]
    """
    m = np.asarray(cm, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {m.shape}")
    tp = np.diag(m)
    denom = m.sum(axis=0) + m.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou: npt.NDArray[np.float64] = np.where(denom > 0, tp / np.where(denom > 0, denom, 1.0), np.nan)
    return iou


def mean_iou(cm: npt.ArrayLike) -> float:
    """Mean of the defined per-class IoUs (NaN when none is defined).

    Examples
    --------
    >>> mean_iou([[3, 1, 0], [0, 4, 0], [0, 0, 0]])
    0.775
    """
    iou = per_class_iou(cm)
    defined = iou[np.isfinite(iou)]
    return float(defined.mean()) if defined.size else float("nan")


def evaluate(
    truth: npt.ArrayLike,
    pred: npt.ArrayLike,
    classes: Sequence[int] = DEFAULT_CLASSES,
    ignore: int | None = UNLABELED,
) -> dict[str, Any]:
    """All metrics of a prediction against a truth map, JSON-ready.

    Returns
    -------
    dict
        ``classes`` (codes in matrix order), ``confusion_matrix`` (list of lists, rows truth),
        ``n_truth`` (labelled truth pixels), ``n_evaluated`` (of those, with a labelled
        prediction), ``coverage`` (n_evaluated / n_truth), ``pixel_accuracy`` (over the
        evaluated pixels), ``accuracy_all`` (unlabeled predictions counted wrong),
        ``per_class_iou`` (dict code -> IoU or None), ``mean_iou``.

    Examples
    --------
    >>> r = evaluate([0, 0, 1, 2], [0, 255, 1, 2])
    >>> r["coverage"], r["pixel_accuracy"], r["accuracy_all"], r["mean_iou"]
    (0.75, 1.0, 0.75, 1.0)
    """
    ti, pi = _indices(truth, pred, classes, ignore)
    n = len(classes)
    labelled = pi >= 0
    cm = np.bincount(ti[labelled] * n + pi[labelled], minlength=n * n).astype(np.int64).reshape(n, n)
    n_truth = int(ti.size)
    n_eval = int(labelled.sum())
    correct = int(np.trace(cm))
    iou = per_class_iou(cm)
    out: dict[str, Any] = {
        "classes": [int(c) for c in classes],
        "confusion_matrix": cm.tolist(),
        "n_truth": n_truth,
        "n_evaluated": n_eval,
        "coverage": n_eval / n_truth if n_truth else float("nan"),
        "pixel_accuracy": pixel_accuracy(cm),
        "accuracy_all": correct / n_truth if n_truth else float("nan"),
        "per_class_iou": {int(c): (float(v) if np.isfinite(v) else None) for c, v in zip(classes, iou, strict=True)},
        "mean_iou": mean_iou(cm),
    }
    log.debug("evaluate: %d truth px, coverage %.4f, accuracy %.4f, mIoU %.4f", n_truth, out["coverage"],
              out["pixel_accuracy"], out["mean_iou"])
    return out

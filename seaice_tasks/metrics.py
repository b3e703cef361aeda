"""Confusion matrix and the metrics derived from it, shared by every classifier of the package.

Used for the Sentinel-2 class maps (METHOD.md §2.4 metrics: pixel accuracy, IoU) and, from the
same confusion matrix, the per-class precision / recall / F1 the ICESat-2 LSTM/MLP surface
classifiers report.  Imports only numpy and :mod:`seaice_tasks.constants`.

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

Precision of c = TP / (TP + FP) (NaN when c is never predicted), recall = TP / (TP + FN) (NaN
when c is absent from the truth), F1 = 2 TP / (2 TP + FP + FN), the harmonic mean of the two
where both are defined, 0 where only one is, NaN where c is in neither.  The macro F1 averages
the defined F1s; the weighted F1 weights each class by its truth count (support), so classes
absent from the truth do not count (scikit-learn's ``average="weighted"``).
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
    "per_class_precision",
    "per_class_recall",
    "per_class_f1",
    "macro_f1",
    "weighted_f1",
    "evaluate",
    "CLASS_NAMES",
    "classification_report",
]

log = logging.getLogger(__name__)

#: Class codes in matrix order: thick ice, thin ice, open water.
DEFAULT_CLASSES: Final[tuple[int, ...]] = (int(SeaIceClass.THICK_ICE), int(SeaIceClass.THIN_ICE),
                                          int(SeaIceClass.OPEN_WATER))
#: Report names of the classes 0, 1, 2.
CLASS_NAMES: Final[tuple[str, ...]] = ("thick", "thin", "water")
_N_CODES: Final[int] = 256
_OUTSIDE: Final[int] = -1
_IGNORED: Final[int] = -2
_MATRIX_NDIM: Final[int] = 2


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


def _square(cm: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The confusion matrix as float64, checked to be square."""
    m = np.asarray(cm, dtype=np.float64)
    if m.ndim != _MATRIX_NDIM or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {m.shape}")
    return m


def _ratio(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``num / den`` per class, NaN where ``den`` is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out: npt.NDArray[np.float64] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


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
    m = _square(cm)
    tp = np.diag(m)
    return _ratio(tp, m.sum(axis=0) + m.sum(axis=1) - tp)


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


def per_class_precision(cm: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Precision TP / (TP + FP) per class: the share of its predictions that are right.

    Parameters
    ----------
    cm : array_like, shape (n, n)
        Confusion matrix, rows truth and columns prediction (:func:`confusion_matrix`).

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        Dimensionless, 0..1; NaN where the class is never predicted (empty column).

    Examples
    --------
    >>> per_class_precision([[3, 1, 0], [0, 4, 0], [0, 0, 0]]).tolist()
    [1.0, 0.8, nan]
    """
    m = _square(cm)
    return _ratio(np.diag(m), m.sum(axis=0))


def per_class_recall(cm: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Recall TP / (TP + FN) per class: the share of its truth pixels that are found.

    Parameters
    ----------
    cm : array_like, shape (n, n)
        Confusion matrix, rows truth and columns prediction (:func:`confusion_matrix`).

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        Dimensionless, 0..1; NaN where the class is absent from the truth (empty row).

    Examples
    --------
    >>> per_class_recall([[3, 1, 0], [0, 4, 0], [0, 0, 0]]).tolist()
    [0.75, 1.0, nan]
    """
    m = _square(cm)
    return _ratio(np.diag(m), m.sum(axis=1))


def per_class_f1(cm: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """F1 = 2 TP / (2 TP + FP + FN) per class (the harmonic mean of precision and recall).

    Where only one of precision and recall is defined (a class predicted but absent from the
    truth, or present but never predicted) TP is 0 and so is F1; NaN where the class is in
    neither truth nor prediction.

    Parameters
    ----------
    cm : array_like, shape (n, n)
        Confusion matrix, rows truth and columns prediction (:func:`confusion_matrix`).

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        Dimensionless, 0..1, NaN where undefined.

    Examples
    --------
    >>> per_class_f1([[3, 1, 0], [0, 4, 0], [0, 0, 0]]).round(4).tolist()
    [0.8571, 0.8889, nan]
    >>> per_class_f1([[2, 1], [0, 0]]).tolist()  # class 1 predicted once, never true
    [0.8, 0.0]
    """
    m = _square(cm)
    tp = np.diag(m)
    return _ratio(2.0 * tp, m.sum(axis=0) + m.sum(axis=1))


def macro_f1(cm: npt.ArrayLike) -> float:
    """Unweighted mean of the defined per-class F1s (NaN when none is defined).

    Parameters
    ----------
    cm : array_like, shape (n, n)
        Confusion matrix, rows truth and columns prediction.

    Returns
    -------
    float
        Dimensionless, 0..1.

    Examples
    --------
    >>> round(macro_f1([[3, 1, 0], [0, 4, 0], [0, 0, 0]]), 4)
    0.873
    """
    f1 = per_class_f1(cm)
    defined = f1[np.isfinite(f1)]
    return float(defined.mean()) if defined.size else float("nan")


def weighted_f1(cm: npt.ArrayLike) -> float:
    """Mean of the per-class F1s weighted by each class's truth count (support).

    Classes absent from the truth get weight 0 (a class that is only predicted lowers the F1 of
    the classes it was taken from, not the average directly).

    Parameters
    ----------
    cm : array_like, shape (n, n)
        Confusion matrix, rows truth and columns prediction.

    Returns
    -------
    float
        Dimensionless, 0..1; NaN when the truth is empty.

    Examples
    --------
    >>> round(weighted_f1([[8, 2], [1, 1]]), 4)  # F1 16/19 (support 10) and 2/5 (support 2)
    0.7684
    """
    m = _square(cm)
    support = m.sum(axis=1)
    total = support.sum()
    if total <= 0:
        return float("nan")
    f1 = np.nan_to_num(per_class_f1(m), nan=0.0)
    return float((f1 * support).sum() / total)


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


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def classification_report(truth: npt.ArrayLike, pred: npt.ArrayLike,
                          classes: Sequence[int] = DEFAULT_CLASSES) -> dict[str, Any]:
    """Accuracy, per-class precision / recall / F1, macro and weighted F1, confusion matrices.

    The report of a segment classifier (METHOD.md §6.6, scikit-learn's definitions), JSON-ready
    (undefined values are ``None``); class keys are :data:`CLASS_NAMES` for the default classes.

    Returns
    -------
    dict
        ``n``, ``accuracy``, ``precision`` / ``recall`` / ``f1`` (class name -> value),
        ``macro_f1``, ``weighted_f1``, ``confusion`` (counts, rows truth) and
        ``confusion_normalised`` (each row divided by its sum: recall on the diagonal).

    Examples
    --------
    >>> r = classification_report([0, 0, 1, 2], [0, 1, 1, 2])
    >>> r["accuracy"], r["recall"]["thick"], r["precision"]["thin"], r["confusion_normalised"][0]
    (0.75, 0.5, 0.5, [0.5, 0.5, 0.0])
    """
    cm = confusion_matrix(truth, pred, classes, ignore=None).astype(np.float64)
    names = CLASS_NAMES if tuple(classes) == DEFAULT_CLASSES else tuple(str(c) for c in classes)
    rows = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.where(rows > 0, cm / rows, 0.0)
    n = float(cm.sum())
    return {
        "n": int(n),
        "accuracy": float(np.trace(cm) / n) if n else None,
        "precision": {k: _finite(v) for k, v in zip(names, per_class_precision(cm), strict=True)},
        "recall": {k: _finite(v) for k, v in zip(names, per_class_recall(cm), strict=True)},
        "f1": {k: _finite(v) for k, v in zip(names, per_class_f1(cm), strict=True)},
        "macro_f1": _finite(macro_f1(cm)),
        "weighted_f1": _finite(weighted_f1(cm)),
        "confusion": cm.astype(np.int64).tolist(),
        "confusion_normalised": normalised.round(6).tolist(),
    }

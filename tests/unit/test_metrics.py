"""Confusion matrix, accuracy, IoU, precision/recall/F1 (seaice_tasks.metrics)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from seaice_tasks.constants import UNLABELED
from seaice_tasks.io.s2 import decode_label_png
from seaice_tasks.metrics import (
    confusion_matrix,
    evaluate,
    macro_f1,
    mean_iou,
    per_class_f1,
    per_class_iou,
    per_class_precision,
    per_class_recall,
    pixel_accuracy,
    weighted_f1,
)

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
LABELS = REALDATA / "sentinel2" / "jmiqra_seaice_labels"
N_CLASSES = 3
RANDOM_PIXELS = 10_000

#: s2_seg_02 (truth) vs s2_seg_17 (prediction): a consistency pin, not a meaningful comparison.
PIN_02_VS_17_CM = [[2461691, 720523, 9587], [163056, 67480, 1051], [565026, 199507, 6383]]
PIN_02_VS_17_ACC = 0.6045231819152832
PIN_02_VS_17_IOU = (0.628001141870816, 0.058595869981078776, 0.008167062032821788)
PIN_02_VS_17_MIOU = 0.23158802462823888


def test_realdata_present() -> None:
    assert REALDATA.is_dir(), REALDATA
    assert LABELS.is_dir(), LABELS


def test_confusion_matrix_by_hand() -> None:
    truth = np.array([[0, 0, 1], [2, 255, 2]], dtype=np.uint8)
    pred = np.array([[0, 1, 1], [2, 0, 255]], dtype=np.uint8)
    cm = confusion_matrix(truth, pred)
    assert cm.dtype == np.int64
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert pixel_accuracy(cm) == pytest.approx(0.75)
    assert per_class_iou(cm).tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert mean_iou(cm) == pytest.approx(2.0 / 3.0)


def test_evaluate_excludes_unlabeled_predictions_and_reports_coverage() -> None:
    truth = np.array([0, 0, 1, 2, 255], dtype=np.uint8)
    pred = np.array([0, 255, 2, 2, 1], dtype=np.uint8)
    r = evaluate(truth, pred)
    assert r["n_truth"] == 4
    assert r["n_evaluated"] == 3
    assert r["coverage"] == pytest.approx(0.75)
    assert r["pixel_accuracy"] == pytest.approx(2.0 / 3.0)
    assert r["accuracy_all"] == pytest.approx(0.5)
    assert r["per_class_iou"] == {0: pytest.approx(1.0), 1: 0.0, 2: pytest.approx(0.5)}
    assert r["confusion_matrix"] == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]


def test_bincount_matches_a_naive_loop() -> None:
    rng = np.random.default_rng(7)
    codes = np.array([0, 1, 2, UNLABELED], dtype=np.uint8)
    truth = rng.choice(codes, RANDOM_PIXELS)
    pred = rng.choice(codes, RANDOM_PIXELS)
    naive = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    for t, p in zip(truth.tolist(), pred.tolist(), strict=True):
        if t != UNLABELED and p != UNLABELED:
            naive[t, p] += 1
    assert np.array_equal(confusion_matrix(truth, pred), naive)
    # another class order permutes rows and columns
    order = (1, 0, 2)
    assert np.array_equal(confusion_matrix(truth, pred, classes=order), naive[np.ix_(order, order)])


def test_empty_and_absent_classes() -> None:
    cm = confusion_matrix(np.full(4, UNLABELED, dtype=np.uint8), np.zeros(4, dtype=np.uint8))
    assert cm.sum() == 0
    assert math.isnan(pixel_accuracy(cm))
    assert math.isnan(mean_iou(cm))
    r = evaluate([0, 0], [0, 0])
    assert r["per_class_iou"] == {0: 1.0, 1: None, 2: None}
    assert r["mean_iou"] == 1.0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        confusion_matrix(np.zeros((2, 3), dtype=np.uint8), np.zeros((3, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"pred holds codes \[7\]"):
        evaluate([0, 1], [0, 7])
    with pytest.raises(ValueError, match=r"0\.\.255"):
        evaluate([0, -1], [0, 1])
    with pytest.raises(ValueError, match="repeat"):
        confusion_matrix([0], [0], classes=(0, 0))
    for metric in (per_class_iou, per_class_precision, per_class_recall, per_class_f1, macro_f1, weighted_f1):
        with pytest.raises(ValueError, match="square"):
            metric(np.zeros((2, 3)))


def test_author_mask_against_itself() -> None:
    labels = decode_label_png(LABELS / "s2_seg_02.png")
    r = evaluate(labels, labels)
    assert r["pixel_accuracy"] == 1.0
    assert r["coverage"] == 1.0
    assert r["mean_iou"] == 1.0
    assert all(v == 1.0 for v in r["per_class_iou"].values())


def test_author_masks_cross_comparison_pinned() -> None:
    a = decode_label_png(LABELS / "s2_seg_02.png")
    b = decode_label_png(LABELS / "s2_seg_17.png")
    r = evaluate(a, b)
    assert r["confusion_matrix"] == PIN_02_VS_17_CM
    assert r["n_truth"] == a.size
    assert r["pixel_accuracy"] == pytest.approx(PIN_02_VS_17_ACC, abs=1e-12)
    assert tuple(r["per_class_iou"].values()) == pytest.approx(PIN_02_VS_17_IOU, abs=1e-12)
    assert r["mean_iou"] == pytest.approx(PIN_02_VS_17_MIOU, abs=1e-12)
    # swapping truth and prediction transposes the matrix; IoU is symmetric
    swapped = evaluate(b, a)
    assert swapped["confusion_matrix"] == np.asarray(PIN_02_VS_17_CM).T.tolist()
    assert swapped["mean_iou"] == pytest.approx(PIN_02_VS_17_MIOU, abs=1e-12)


# -- precision / recall / F1 -----------------------------------------------------------------------


def _naive_prf(cm: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """Precision, recall and F1 per class from their textbook definitions (NaN where undefined)."""
    precision, recall, f1 = [], [], []
    for c in range(cm.shape[0]):
        tp = float(cm[c, c])
        fp = float(cm[:, c].sum()) - tp
        fn = float(cm[c, :].sum()) - tp
        p = tp / (tp + fp) if tp + fp else math.nan
        r = tp / (tp + fn) if tp + fn else math.nan
        precision.append(p)
        recall.append(r)
        if math.isnan(p) and math.isnan(r):
            f1.append(math.nan)
        elif math.isnan(p) or math.isnan(r) or p + r == 0:
            f1.append(0.0)
        else:
            f1.append(2 * p * r / (p + r))
    return precision, recall, f1


def test_precision_recall_f1_by_hand() -> None:
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0])  # [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert per_class_precision(cm).tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert per_class_recall(cm).tolist() == pytest.approx([0.5, 1.0, 2.0 / 3.0])
    assert per_class_f1(cm).tolist() == pytest.approx([0.5, 2.0 / 3.0, 0.8])
    assert macro_f1(cm) == pytest.approx((0.5 + 2.0 / 3.0 + 0.8) / 3.0)
    assert weighted_f1(cm) == pytest.approx((2 * 0.5 + 1 * 2.0 / 3.0 + 3 * 0.8) / 6.0)


def test_f1_is_the_harmonic_mean_of_precision_and_recall() -> None:
    rng = np.random.default_rng(11)
    codes = np.array([0, 1, 2], dtype=np.uint8)
    cm = confusion_matrix(rng.choice(codes, RANDOM_PIXELS, p=[0.7, 0.2, 0.1]), rng.choice(codes, RANDOM_PIXELS))
    p, r, f1 = per_class_precision(cm), per_class_recall(cm), per_class_f1(cm)
    np.testing.assert_allclose(f1, 2 * p * r / (p + r), rtol=1e-12)
    naive = _naive_prf(cm)
    np.testing.assert_allclose(p, naive[0], rtol=1e-12)
    np.testing.assert_allclose(r, naive[1], rtol=1e-12)
    np.testing.assert_allclose(f1, naive[2], rtol=1e-12)
    # the weighted F1 weights by the truth counts, the macro F1 does not
    support = cm.sum(axis=1)
    assert weighted_f1(cm) == pytest.approx(float((f1 * support).sum() / support.sum()), rel=1e-12)
    assert macro_f1(cm) == pytest.approx(float(f1.mean()), rel=1e-12)


def test_precision_recall_f1_of_absent_classes() -> None:
    # class 1 is predicted but never true, class 2 neither
    cm = np.array([[2, 1, 0], [0, 0, 0], [0, 0, 0]])
    assert per_class_precision(cm).tolist()[:2] == [pytest.approx(1.0), 0.0]
    assert math.isnan(per_class_recall(cm)[1]) and math.isnan(per_class_precision(cm)[2])
    f1 = per_class_f1(cm)
    assert f1[0] == pytest.approx(0.8) and f1[1] == 0.0 and math.isnan(f1[2])
    assert np.allclose(per_class_f1(cm)[:2], _naive_prf(cm)[2][:2])
    assert macro_f1(cm) == pytest.approx(0.4)  # mean of 0.8 and 0.0; class 2 left out
    assert weighted_f1(cm) == pytest.approx(0.8)  # only class 0 has support
    empty = np.zeros((3, 3), dtype=np.int64)
    assert math.isnan(macro_f1(empty)) and math.isnan(weighted_f1(empty))
    assert np.isnan(per_class_f1(empty)).all()


def test_perfect_prediction_scores_one_everywhere() -> None:
    labels = decode_label_png(LABELS / "s2_seg_02.png")
    cm = confusion_matrix(labels, labels)
    for per_class in (per_class_precision(cm), per_class_recall(cm), per_class_f1(cm)):
        assert per_class.tolist() == [1.0, 1.0, 1.0]
    assert macro_f1(cm) == 1.0 and weighted_f1(cm) == 1.0

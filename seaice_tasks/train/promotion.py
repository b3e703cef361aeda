"""Promotion of a segment classifier: the candidate and the promoted model on the same windows and classes.

:func:`promote` makes a committed version the default of inference (``model_promotions/name=N``,
recorded by :func:`~seaice_tasks.models.lake.write_promotion`) only when

1. the candidate can see every class of the task: its training split holds windows of each of
   :data:`~seaice_tasks.metrics.CLASS_NAMES` (a training set without open water trains a model
   that never says water) and, on the evaluation windows, it predicts every class their labels
   hold;
2. it beats the promoted version on the **same** evaluation: the test windows of both models'
   training sets (each set once), gathered for each model with its own features,
   normalisation and window (its card), scored by the macro F1 over **all** the task's classes
   (a class never predicted, or absent from the windows, counts 0 for both).

The cards' own held-out scores are not compared: each is computed on its own test split over
the classes that split holds, so a model that cannot see a class could beat one that can.
``force`` promotes anyway (an operator's decision; the reasons it overrides stay in the
record).  A promoted version that no longer passes its checks (damaged in the lake) does not
block a sound candidate.  Both models are checked first
(:func:`~seaice_tasks.models.lake.verify_model`): a damaged candidate is an
:class:`~seaice_tasks.errors.InputError`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import pyarrow as pa

from seaice_tasks.errors import InputError, SchemaError, SeaIceError, StorageError
from seaice_tasks.metrics import CLASS_NAMES, classification_report
from seaice_tasks.models.lake import load_lake_model, promotion, verify_model, write_promotion
from seaice_tasks.models.registry import LoadedModel
from seaice_tasks.models.sequence import predict_proba
from seaice_tasks.products import TRAINING_SEGMENTS_FILE, TRAINING_SET
from seaice_tasks.storage import Lake, PartitionKey
from seaice_tasks.train.windows import window_arrays

__all__ = ["PROMOTION_METRIC", "TEST_SPLIT", "promote", "evaluate_on"]

log = logging.getLogger(__name__)

#: What decides promotion: macro F1 over every class of the task on the shared evaluation windows.
PROMOTION_METRIC: Final[str] = "macro_f1_all_classes"
#: ``split`` code of the test windows in a training-set table.
TEST_SPLIT: Final[int] = 2


def _training_key(card: Mapping[str, Any], where: str) -> PartitionKey:
    try:
        key = PartitionKey.from_relpath(str(card["training_data"]["partition"]))
    except (KeyError, TypeError, StorageError) as exc:
        raise InputError(where, f"card names no training set ({exc})") from None
    if key.stage != TRAINING_SET.name:
        raise InputError(where, f"card's training_data.partition {key.relpath} is not a training set")
    return key


def evaluate_on(loaded: LoadedModel, tables: Mapping[PartitionKey, pa.Table]) -> dict[str, Any]:
    """Score a segment classifier on the test windows of ``tables``, over all the task's classes.

    Parameters
    ----------
    loaded : LoadedModel
        The model and its card (features, normalisation and half window in ``input``).
    tables : mapping
        Training-set tables by key; their test windows (``split == 2``) are gathered for the
        model's features and window.

    Returns
    -------
    dict
        ``windows``, ``labels`` and ``predicted`` (windows per class), ``f1`` (per class, 0 where
        undefined), ``macro_f1`` (their mean over every class), ``accuracy``.

    Raises
    ------
    InputError
        When the card lacks its inputs or the windows cannot be gathered for it.
    """
    card = loaded.card
    where = f"model {card.get('name')}"
    try:
        inputs = card["input"]
        features = [str(f) for f in inputs["features"]]
        stats = {f: {"mean": float(inputs["normalisation"][f]["mean"]), "std": float(inputs["normalisation"][f]["std"])}
                 for f in features}
        half = int(inputs["half_window"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(where, f"card lacks its inputs ({exc})") from None
    truth: list[np.ndarray[Any, Any]] = []
    pred: list[np.ndarray[Any, Any]] = []
    for key, table in tables.items():
        try:
            arrays = window_arrays(table, features, split=TEST_SPLIT, normalisation=stats, half=half)
        except (SchemaError, SeaIceError) as exc:
            raise InputError(where, f"the test windows of {key.relpath} cannot be gathered for it ({exc})") from None
        truth.append(arrays.y)
        pred.append(predict_proba(loaded.model, arrays.x).argmax(axis=1).astype(np.int64) if len(arrays)
                    else np.zeros(0, dtype=np.int64))
    y = np.concatenate(truth) if truth else np.zeros(0, dtype=np.int64)
    p = np.concatenate(pred) if pred else np.zeros(0, dtype=np.int64)
    report = classification_report(y, p)
    f1 = {c: float(report["f1"][c] or 0.0) for c in CLASS_NAMES}
    return {"windows": int(y.size),
            "labels": {c: int((y == i).sum()) for i, c in enumerate(CLASS_NAMES)},
            "predicted": {c: int((p == i).sum()) for i, c in enumerate(CLASS_NAMES)},
            "f1": f1, "macro_f1": float(np.mean(list(f1.values()))), "accuracy": report["accuracy"]}


def _unseen_classes(card: Mapping[str, Any]) -> list[str]:
    """Task classes without a window in the card's training split ([] when the card does not say)."""
    fractions = card.get("training_data", {}).get("class_fractions", {})
    train = fractions.get("train") if isinstance(fractions, Mapping) else None
    if not isinstance(train, Mapping):
        return []
    return [c for c in CLASS_NAMES if not float(train.get(c) or 0.0) > 0.0]


def _problems(card: Mapping[str, Any], evaluation: Mapping[str, Any]) -> list[str]:
    """Why the candidate cannot serve the task ([] when it can)."""
    problems = []
    unseen = _unseen_classes(card)
    if unseen:
        problems.append(f"its training split has no {', '.join(unseen)} window: it cannot see that class")
    if evaluation["windows"] == 0:
        problems.append("no evaluation window (its training set has no test split)")
    never = [c for c in CLASS_NAMES if evaluation["labels"][c] > 0 and evaluation["predicted"][c] == 0]
    if never:
        problems.append(f"it never predicts {', '.join(never)} on the {evaluation['windows']} evaluation windows")
    return problems


def promote(lake: Lake, name: str, version: str, *, force: bool = False) -> dict[str, Any]:
    """Promote ``version`` of ``name`` when it sees every class and beats the promoted one (module docstring).

    Returns
    -------
    dict
        ``promoted`` (bool), ``name``, ``version``, ``metric``, ``score``, ``previous`` (version
        or None), ``previous_score``, ``reason``, ``evaluation`` (training sets, windows, classes
        and both models' per-class results) and ``overridden`` (reasons ``force`` overrode).
        When promoted it is also the new ``promotion.json``.

    Raises
    ------
    InputError
        When the candidate is not committed, fails its checks or cannot be evaluated.
    """
    card = verify_model(lake, name, version)
    current = promotion(lake, name)
    previous = None if current is None else str(current["version"])
    base: dict[str, Any] = {"name": name, "version": version, "metric": PROMOTION_METRIC, "previous": previous}
    if previous == version:
        return {**base, "promoted": False, "score": None, "previous_score": None,
                "reason": "already the promoted version", "evaluation": {}, "overridden": []}
    where = f"model {name} version {version}"
    keys = [_training_key(card, where)]
    incumbent: LoadedModel | None = None
    broken = ""
    if previous is not None:
        try:
            previous_card = verify_model(lake, name, previous)
            keys.append(_training_key(previous_card, f"model {name} version {previous}"))
            incumbent = load_lake_model(lake, name, previous)
        except SeaIceError as exc:
            broken = str(exc)
            log.warning("promoted %s version %s fails its checks; the candidate is not compared with it: %s",
                        name, previous, exc)
    try:
        tables = {k: lake.read_table(k, TRAINING_SEGMENTS_FILE) for k in dict.fromkeys(keys)}
    except StorageError as exc:
        raise InputError(where, f"evaluation windows unreadable ({exc})") from None
    mine = evaluate_on(load_lake_model(lake, name, version), tables)
    theirs = evaluate_on(incumbent, tables) if incumbent is not None else None
    evaluation = {"training_sets": [k.relpath for k in tables], "windows": mine["windows"],
                  "classes": list(CLASS_NAMES), "candidate": mine, "promoted": theirs}
    score = mine["macro_f1"]
    previous_score = None if theirs is None else theirs["macro_f1"]
    refusals = _problems(card, mine)
    if theirs is not None and not score > theirs["macro_f1"]:
        refusals.append(f"{PROMOTION_METRIC} {score:.4f} on the {mine['windows']} shared evaluation windows does not "
                        f"beat the promoted {previous}'s {theirs['macro_f1']:.4f}")
    result = {**base, "score": score, "previous_score": previous_score, "evaluation": evaluation}
    if refusals and not force:
        log.warning("model %s version %s not promoted: %s", name, version, "; ".join(refusals))
        return {**result, "promoted": False, "reason": "; ".join(refusals), "overridden": []}
    reason = ("forced" if refusals else "first promoted version" if previous is None
              else f"the promoted {previous} fails its checks ({broken})" if broken
              else f"{PROMOTION_METRIC} {score:.4f} > {previous_score:.4f} of {previous} on the {mine['windows']} "
                   f"shared evaluation windows")
    doc = {**result, "promoted": True, "reason": reason, "overridden": refusals}
    write_promotion(lake, name, doc)
    return doc


"""The model registry in the lake: ``models/name=N/version=V/`` and ``model_promotions/name=N/``.

A trained model is a model folder (:mod:`seaice_tasks.models.registry`: ``model.safetensors`` +
``card.json``) committed as an immutable partition of the ``models`` product, with a confusion
plot beside it.  Versions are content-derived (the trainer names them from its config and the
training set), so committing the same version again is a no-op, never a rewrite.

Promotion
    ``model_promotions/name=N`` holds ``promotion.json``: the promoted version, its score on
    the held-out split (:data:`PROMOTION_METRIC` of the card's ``metrics.test``), the version it
    replaced and why.  :func:`promote` makes a version the default of inference only when it
    beats the promoted one on that score (or none is promoted, or ``force``); every promotion
    is a new manifest version of that partition, so the history stays in the lake.
Loading
    :func:`fetch_model` copies a committed model to a local folder (checked against the card's
    sha256 by :func:`~seaice_tasks.models.registry.load_model`); :func:`load_lake_model` loads
    it; nothing is unpickled.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from seaice_tasks.errors import InputError
from seaice_tasks.models.registry import CARD_NAME, WEIGHTS_NAME, read_card
from seaice_tasks.outputs import BytesOutput, write_partition
from seaice_tasks.products import CONFUSION_FILE, MODEL_PROMOTIONS, MODELS, PROMOTION_FILE
from seaice_tasks.storage import Lake, Manifest, PartitionKey

if TYPE_CHECKING:
    from seaice_tasks.models.registry import LoadedModel

__all__ = [
    "PROMOTION_METRIC",
    "commit_model",
    "model_key",
    "list_models",
    "model_card",
    "promotion",
    "promoted_version",
    "promote",
    "fetch_model",
    "load_lake_model",
]

log = logging.getLogger(__name__)

#: Held-out score that decides promotion (macro F1 of the card's ``metrics.test``).
PROMOTION_METRIC: Final[str] = "macro_f1"


def model_key(name: str, version: str) -> PartitionKey:
    """``models/name=N/version=V``."""
    return MODELS.key(name=name, version=version)


def _committed_key(lake: Lake, name: str, version: str) -> PartitionKey:
    """The key of a committed model version (InputError naming it when it is not committed)."""
    key = model_key(name, version)
    if lake.manifest(key) is None:
        raise InputError(lake.partition_url(key), "no such model version is committed")
    return key


def commit_model(lake: Lake, folder: str | os.PathLike[str], version: str, confusion_png: bytes = b"") -> Manifest:
    """Commit a model folder as ``models/name=<card name>/version=<version>`` (once).

    Parameters
    ----------
    lake : Lake
        Destination.
    folder : str or os.PathLike
        A folder written by :func:`~seaice_tasks.models.registry.save_model`.
    version : str
        Version of the partition (a safe path component).
    confusion_png : bytes
        The confusion plot (PNG; empty: none).

    Returns
    -------
    Manifest
        The new manifest, or the existing one when that version is committed already.
    """
    card = read_card(folder)
    key = model_key(str(card["name"]), version)
    existing = lake.manifest(key)
    if existing is not None:
        log.info("%s already committed: not rewritten", key.relpath)
        return existing
    base = Path(folder)
    outputs = [BytesOutput(key, WEIGHTS_NAME, (base / WEIGHTS_NAME).read_bytes()),
               BytesOutput(key, CARD_NAME, (base / CARD_NAME).read_bytes())]
    if confusion_png:
        outputs.append(BytesOutput(key, CONFUSION_FILE, confusion_png))
    info = {"architecture": card["architecture"]["name"], "weights_sha256": card["weights_sha256"],
            "training_set": card.get("training_data", {}), "metrics_test": card.get("metrics", {}).get("test", {})}
    manifest = write_partition(lake, key, outputs, None, info=info)
    log.info("committed model %s", key.relpath)
    return manifest


def list_models(lake: Lake, name: str | None = None) -> list[PartitionKey]:
    """Committed model versions (of one name), sorted by name then version."""
    keys = lake.partitions(MODELS.name)
    return [k for k in keys if name is None or k.name == name]


def model_card(lake: Lake, name: str, version: str) -> dict[str, Any]:
    """The card of a committed model.

    Raises
    ------
    InputError
        When that version is not committed.
    """
    doc: dict[str, Any] = json.loads(lake.open_file(_committed_key(lake, name, version), CARD_NAME))
    return doc


def promotion(lake: Lake, name: str) -> dict[str, Any] | None:
    """The promotion record of a model name (None: nothing promoted)."""
    key = MODEL_PROMOTIONS.key(name=name)
    if lake.manifest(key) is None:
        return None
    doc: dict[str, Any] = json.loads(lake.open_file(key, PROMOTION_FILE))
    return doc


def promoted_version(lake: Lake, name: str) -> str | None:
    """The promoted version of a model name (None: nothing promoted)."""
    doc = promotion(lake, name)
    return None if doc is None else str(doc["version"])


def _score(card: Mapping[str, Any]) -> float:
    value = card.get("metrics", {}).get("test", {}).get(PROMOTION_METRIC)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else -math.inf


def promote(lake: Lake, name: str, version: str, *, force: bool = False) -> dict[str, Any]:
    """Promote ``version`` of ``name`` when it beats the promoted one on the held-out score.

    Returns
    -------
    dict
        ``promoted`` (bool), ``version``, ``score``, ``previous`` (version or None),
        ``previous_score`` and ``reason``.  When promoted it is also the new
        ``promotion.json``.
    """
    card = model_card(lake, name, version)
    score = _score(card)
    current = promotion(lake, name)
    previous = None if current is None else str(current["version"])
    previous_score = -math.inf
    if previous is not None:
        previous_score = _score(model_card(lake, name, previous))
    if previous == version:
        return {"promoted": False, "version": version, "score": score, "previous": previous,
                "previous_score": previous_score, "reason": "already the promoted version"}
    better = score > previous_score
    if not (better or force or previous is None):
        return {"promoted": False, "version": version, "score": score, "previous": previous,
                "previous_score": previous_score,
                "reason": f"held-out {PROMOTION_METRIC} {score:.4f} does not beat the promoted {previous} "
                          f"({previous_score:.4f})"}
    reason = ("first promoted version" if previous is None
              else f"held-out {PROMOTION_METRIC} {score:.4f} > {previous_score:.4f} of {previous}" if better
              else "forced")
    doc = {"promoted": True, "name": name, "version": version, "metric": PROMOTION_METRIC,
           "score": score if math.isfinite(score) else None, "previous": previous,
           "previous_score": previous_score if math.isfinite(previous_score) else None, "reason": reason}
    key = MODEL_PROMOTIONS.key(name=name)
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    write_partition(lake, key, [BytesOutput(key, PROMOTION_FILE, text.encode())], None, info=doc)
    log.info("promoted %s version %s (%s)", name, version, reason)
    return doc


def fetch_model(lake: Lake, name: str, version: str, dest: str | os.PathLike[str] | None = None) -> Path:
    """Copy a committed model's weights and card into a local folder (default: a new temporary one).

    Raises
    ------
    InputError
        When that version is not committed.
    """
    _, files = lake.read_partition(_committed_key(lake, name, version), [WEIGHTS_NAME, CARD_NAME])
    out = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix=f"model_{name}_"))
    out.mkdir(parents=True, exist_ok=True)
    for file_name, data in files.items():
        (out / file_name).write_bytes(data)
    return out


def load_lake_model(lake: Lake, name: str, version: str | None = None, device: str = "cpu") -> LoadedModel:
    """Load a committed model (default: the promoted version); weights checked against the card.

    Raises
    ------
    InputError
        When nothing is promoted (and no version given) or the version is not committed.
    """
    from seaice_tasks.models.registry import load_model

    chosen = version or promoted_version(lake, name)
    if chosen is None:
        raise InputError(lake.url(MODEL_PROMOTIONS.key(name=name).relpath), f"no version of model {name} is promoted")
    with tempfile.TemporaryDirectory(prefix="model_") as tmp:
        folder = fetch_model(lake, name, chosen, tmp)
        return load_model(folder, device=device)

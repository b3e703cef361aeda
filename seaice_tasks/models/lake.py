"""The model registry in the lake: ``models/name=N/version=V/`` and ``model_promotions/name=N/``.

A trained model is a model folder (:mod:`seaice_tasks.models.registry`: ``model.safetensors`` +
``card.json``) committed as an immutable partition of the ``models`` product, with a confusion
plot beside it.  Versions are content-derived (the trainer names them from its config and the
training set), so committing the same version again is a no-op, never a rewrite.

Promotion
    ``model_promotions/name=N`` holds ``promotion.json``: the promoted version, its score, the
    version it replaced, why, and the evaluation both were scored on.  The decision (the
    candidate and the promoted model on the same windows and classes) is
    :func:`seaice_tasks.train.promotion.promote`'s; :func:`write_promotion` records it.  Every
    promotion is a new manifest version of that partition, so the history stays in the lake.
Loading
    :func:`model_card` reads a card checked against the lake manifest; :func:`verify_model`
    checks a whole model before any work (card and weights against the manifest, weights
    against the card, features and normalisation against the training set's);
    :func:`fetch_model` copies a committed model to a local folder (checked against the card's
    sha256 by :func:`~seaice_tasks.models.registry.load_model`); :func:`load_lake_model` loads
    it; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from seaice_tasks.errors import InputError, StorageError
from seaice_tasks.models.registry import CARD_NAME, WEIGHTS_NAME, ModelFormatError, parse_card, read_card
from seaice_tasks.outputs import BytesOutput, write_partition
from seaice_tasks.products import (
    CONFUSION_FILE,
    MODEL_PROMOTIONS,
    MODELS,
    NORMALISATION_FILE,
    PROMOTION_FILE,
    TRAINING_SET,
)
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
    "write_promotion",
    "verify_model",
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


def _model_where(lake: Lake, key: PartitionKey) -> str:
    return f"model {key.name} version {key.version} ({lake.partition_url(key)})"


def model_card(lake: Lake, name: str, version: str) -> dict[str, Any]:
    """The card of a committed model, checked against the lake manifest's sha256 and for its format.

    Raises
    ------
    InputError
        Naming the model and version: not committed, the card differs from the manifest
        (edited after commit) or is missing, or it is not a usable card
        (:func:`~seaice_tasks.models.registry.parse_card`).
    """
    key = _committed_key(lake, name, version)
    where = _model_where(lake, key)
    try:
        data = lake.open_file(key, CARD_NAME, verify=True)
    except StorageError as exc:
        raise InputError(where, f"{CARD_NAME} fails its lake manifest ({exc})") from None
    try:
        return parse_card(data, where)
    except ModelFormatError as exc:
        raise InputError(where, exc.problem) from None


def _close(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    except (TypeError, ValueError):
        return False


def _training_set_problem(lake: Lake, card: Mapping[str, Any]) -> str:
    """What is wrong between a segment classifier's card and its training set ('' when nothing is)."""
    data, inputs = card.get("training_data"), card.get("input")
    if not isinstance(data, Mapping) or not isinstance(inputs, Mapping):
        return f"{CARD_NAME} lacks its training_data or input block"
    try:
        key = PartitionKey.from_relpath(str(data.get("partition", "")))
    except (ValueError, StorageError):
        key = None
    if key is None or key.stage != TRAINING_SET.name:
        return f"{CARD_NAME}: training_data.partition {data.get('partition')!r} is not a training set"
    try:
        normalisation = json.loads(lake.open_file(key, NORMALISATION_FILE, verify=True))
        available = [str(f) for f in normalisation["features"]]
    except (StorageError, ValueError, KeyError, TypeError) as exc:
        return f"its training set {key.relpath} cannot be read to check the features ({exc})"
    chosen = card.get("config", {}).get("features") or available
    features, stats = inputs.get("features"), inputs.get("normalisation")
    if not isinstance(features, list) or [str(f) for f in features] != [str(f) for f in chosen]:
        return (f"{CARD_NAME}: input features {features} differ from the training run's {list(chosen)} "
                f"(training set {key.relpath})")
    for f in features:
        mine = stats.get(f) if isinstance(stats, Mapping) else None
        if not isinstance(mine, Mapping) or not (_close(mine.get("mean"), normalisation.get("mean", {}).get(f))
                                                 and _close(mine.get("std"), normalisation.get("std", {}).get(f))):
            return f"{CARD_NAME}: normalisation of {f} differs from the training set's ({key.relpath})"
    return ""


def verify_model(lake: Lake, name: str, version: str) -> dict[str, Any]:
    """Check a committed segment classifier before any work; its card.

    1. the card against the lake manifest's sha256 (:func:`model_card`);
    2. the weights against the manifest and against the card's ``weights_sha256``;
    3. the card's features (names and order) and their normalisation against the training
       set it names (``training_data.partition``).

    Raises
    ------
    InputError
        One line naming the model, its version and what is wrong.
    """
    card = model_card(lake, name, version)
    key = model_key(name, version)
    where = _model_where(lake, key)
    if card.get("name") != name:
        raise InputError(where, f"{CARD_NAME} names model {card.get('name')!r}")
    if card["weights_file"] != WEIGHTS_NAME:
        raise InputError(where, f"{CARD_NAME}: weights_file {card['weights_file']!r}, committed as {WEIGHTS_NAME}")
    try:
        weights = lake.open_file(key, WEIGHTS_NAME, verify=True)
    except StorageError as exc:
        raise InputError(where, f"{WEIGHTS_NAME} fails its lake manifest ({exc})") from None
    digest = hashlib.sha256(weights).hexdigest()
    if digest != card["weights_sha256"]:
        raise InputError(where, f"{WEIGHTS_NAME}: sha256 {digest} differs from the card's {card['weights_sha256']}")
    problem = _training_set_problem(lake, card)
    if problem:
        raise InputError(where, problem)
    return card


def promotion(lake: Lake, name: str) -> dict[str, Any] | None:
    """The promotion record of a model name (None: nothing promoted).

    Raises
    ------
    InputError
        When the record is not readable JSON naming a version.
    """
    key = MODEL_PROMOTIONS.key(name=name)
    if lake.manifest(key) is None:
        return None
    try:
        doc = json.loads(lake.open_file(key, PROMOTION_FILE, verify=True))
    except (StorageError, ValueError) as exc:
        raise InputError(lake.partition_url(key), f"{PROMOTION_FILE} is not readable ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), str):
        raise InputError(lake.partition_url(key), f"{PROMOTION_FILE} names no version")
    return doc


def promoted_version(lake: Lake, name: str) -> str | None:
    """The promoted version of a model name (None: nothing promoted)."""
    doc = promotion(lake, name)
    return None if doc is None else str(doc["version"])


def write_promotion(lake: Lake, name: str, doc: Mapping[str, Any]) -> None:
    """Record a promotion decided by :func:`seaice_tasks.train.promotion.promote`.

    ``doc`` names the ``version`` and says why (JSON-ready); it becomes ``promotion.json`` and
    the manifest info of a new version of ``model_promotions/name=N``.
    """
    key = MODEL_PROMOTIONS.key(name=name)
    text = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_partition(lake, key, [BytesOutput(key, PROMOTION_FILE, text.encode())], None, info=dict(doc))
    log.info("promoted %s version %s (%s)", name, doc.get("version"), doc.get("reason"))


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

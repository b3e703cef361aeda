"""Saved models: one folder per model, ``model.safetensors`` + ``card.json``, for every architecture.

A model folder holds

``model.safetensors``
    The ``state_dict`` (safetensors: tensors only, no pickle), with metadata ``architecture``
    and ``code_version``.
``card.json``
    The model card (format :data:`CARD_FORMAT`): ``name``; ``architecture`` ``{"name": ...,
    "kwargs": {...}}`` (the registered class and the keyword arguments that rebuild it, plus
    free extras such as a ``reference``); ``param_count``; ``classes`` (code -> name);
    ``input`` (preprocessing); ``output``; ``config`` (the training :class:`JsonConfig` as a
    dict) and ``config_kind`` (its ``kind``); ``training_data``; ``metrics``; ``code_version``;
    ``torch_version``; ``weights_file``, ``weights_sha256``; ``card_format``.

:func:`save_model` writes the weights first and the card last, each to a temporary file in the
folder and renamed (``os.replace``), so a folder with a card always holds the weights it
describes.  :func:`load_model` reads the card, checks the weights' sha256 against it, rebuilds the
module from the architecture table (:data:`ARCHITECTURES`, :func:`register_architecture`) and
loads the weights strictly.  Anything wrong with a folder is a :class:`ModelFormatError` naming
the folder and the problem.

Importing this module does not import torch (reading a card in an Airflow task or a Spark
driver stays cheap); :func:`save_model`, :func:`load_model` and :func:`architecture_class` do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import numpy as np

from seaice_tasks import __version__
from seaice_tasks.config import JsonConfig
from seaice_tasks.errors import InputError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "CARD_FORMAT",
    "CARD_NAME",
    "WEIGHTS_NAME",
    "ARCHITECTURES",
    "ArchitectureSpec",
    "LoadedModel",
    "ModelFormatError",
    "register_architecture",
    "architecture_class",
    "save_model",
    "read_card",
    "parse_card",
    "load_model",
    "model_card_summary",
    "sha256_file",
]

log = logging.getLogger(__name__)

#: File names inside a model folder.
WEIGHTS_NAME: Final[str] = "model.safetensors"
CARD_NAME: Final[str] = "card.json"
#: Version of the card layout (1 was the U-Net-only ``s2/unet.py`` card, not read any more).
CARD_FORMAT: Final[int] = 2
#: Card fields :func:`read_card` requires.
REQUIRED_CARD_FIELDS: Final[tuple[str, ...]] = ("card_format", "name", "architecture", "config",
                                                "weights_file", "weights_sha256")
#: Card fields copied into the manifests of the partitions a model labels (:func:`model_card_summary`).
_CARD_SUMMARY_FIELDS: Final[tuple[str, ...]] = ("name", "weights_sha256", "param_count", "code_version",
                                               "torch_version", "card_format")
#: Constructor kwargs copied into the summary (the U-Net's width and depth).
_SUMMARY_KWARGS: Final[tuple[str, ...]] = ("base_filters", "levels")
_HASH_CHUNK_BYTES: Final[int] = 1 << 20
_SHA256_RE: Final[re.Pattern[str]] = re.compile(r"^[0-9a-f]{64}$")
#: ``module:attribute`` of a registered class.
_TARGET_RE: Final[re.Pattern[str]] = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

#: Architecture names of the cards -> ``"module:class"`` of their ``nn.Module`` (imported on first
#: use, so this table costs nothing to import).  A new model adds one line here (or calls
#: :func:`register_architecture`); its constructor must take JSON-able keyword arguments only.
ARCHITECTURES: dict[str, str | type[nn.Module]] = {
    "UNet": "seaice_tasks.models.unet:UNet",
    "LSTMClassifier": "seaice_tasks.models.sequence:LSTMClassifier",
    "MLPClassifier": "seaice_tasks.models.sequence:MLPClassifier",
}


class ModelFormatError(InputError):
    """A folder is not a readable model folder: no card, a damaged card, or weights that do not match.

    Parameters
    ----------
    path : str or os.PathLike
        The model folder.
    problem : str
        What is wrong with it.
    """


@dataclasses.dataclass(frozen=True)
class ArchitectureSpec:
    """The ``architecture`` block of a card: registered class name and constructor kwargs.

    Attributes
    ----------
    name : str
        A key of :data:`ARCHITECTURES` (e.g. ``"UNet"``).
    kwargs : mapping
        Keyword arguments that rebuild the untrained module (JSON-able; tuples are written as
        lists and given back as tuples).
    extras : mapping
        Free, informative fields stored beside ``name`` and ``kwargs`` (e.g. ``reference``).

    Examples
    --------
    >>> spec = ArchitectureSpec("UNet", {"base_filters": 2, "dropouts": (0.1, 0.2)}, {"reference": "§2.4"})
    >>> spec.to_card()
    {'reference': '§2.4', 'name': 'UNet', 'kwargs': {'base_filters': 2, 'dropouts': [0.1, 0.2]}}
    >>> ArchitectureSpec.from_card(spec.to_card()) == spec
    True
    """

    name: str
    kwargs: Mapping[str, Any]
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_card(self) -> dict[str, Any]:
        """The card's ``architecture`` block (plain JSON)."""
        block: dict[str, Any] = {str(k): _jsonable(v) for k, v in self.extras.items()}
        block.update({"name": self.name, "kwargs": {str(k): _jsonable(v) for k, v in self.kwargs.items()}})
        return block

    @classmethod
    def from_card(cls, block: Mapping[str, Any]) -> ArchitectureSpec:
        """Inverse of :meth:`to_card` (JSON lists become tuples again).

        Raises
        ------
        ValueError
            When ``name`` is not a string or ``kwargs`` not an object.
        """
        name, kwargs = block.get("name"), block.get("kwargs")
        if not isinstance(name, str) or not isinstance(kwargs, Mapping):
            raise ValueError(f"architecture block needs a string 'name' and an object 'kwargs', got {dict(block)}")
        extras = {k: v for k, v in block.items() if k not in ("name", "kwargs")}
        return cls(name, {str(k): _tuples(v) for k, v in kwargs.items()}, extras)


class LoadedModel(NamedTuple):
    """A model read by :func:`load_model`: the module (eval mode) and its card."""

    model: nn.Module
    card: dict[str, Any]


# --------------------------------------------------------------------------------------------------
# the architecture table


def register_architecture(name: str, target: str | type[nn.Module]) -> None:
    """Add an architecture to :data:`ARCHITECTURES` (a class or its ``"module:Class"`` path).

    Registering the same target again under the same name is a no-op.

    Raises
    ------
    ValueError
        When ``name`` is already taken by another target, or ``target`` is a malformed path.
    """
    if isinstance(target, str) and not _TARGET_RE.match(target):
        raise ValueError(f"register_architecture: {target!r} is not a 'module:Class' path")
    current = ARCHITECTURES.get(name)
    if current is not None and current != target and _resolved_name(current) != _resolved_name(target):
        raise ValueError(f"register_architecture: {name!r} is already registered as {_resolved_name(current)}")
    ARCHITECTURES[name] = target


def _resolved_name(target: str | type[Any]) -> str:
    return target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"


def architecture_class(name: str) -> type[nn.Module]:
    """The ``nn.Module`` class registered under ``name`` (importing its module on first use).

    Raises
    ------
    KeyError
        When ``name`` is not registered.
    TypeError
        When the registered target is not an ``nn.Module`` subclass.
    """
    from torch import nn

    target = ARCHITECTURES.get(name)
    if target is None:
        raise KeyError(f"architecture {name!r} is not registered (known: {sorted(ARCHITECTURES)})")
    if isinstance(target, str):
        module_name, attr = target.split(":")
        target = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(target, type) and issubclass(target, nn.Module)):
        raise TypeError(f"architecture {name!r} resolves to {target!r}, not an nn.Module subclass")
    ARCHITECTURES[name] = target
    return target


# --------------------------------------------------------------------------------------------------
# helpers


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    """Plain JSON (numpy scalars/arrays, tuples -> lists, non-finite floats -> None).

    Examples
    --------
    >>> _jsonable({"a": np.float32(0.5), 1: (1, float("nan")), "m": np.eye(2, dtype=int)})
    {'a': 0.5, '1': [1, None], 'm': [[1, 0], [0, 1]]}
    """
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _tuples(value: Any) -> Any:
    """JSON lists back to tuples (the package's constructors take tuples for sequences)."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path`` (same folder)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# save / read / load


def save_model(
    model: nn.Module,
    path_dir: str | os.PathLike[str],
    *,
    architecture: ArchitectureSpec,
    config: JsonConfig,
    name: str,
    metrics: Mapping[str, Any] | None = None,
    training_data: str | Mapping[str, Any] = "",
    classes: Mapping[int, str] | None = None,
    inputs: Mapping[str, Any] | None = None,
    output: str = "",
) -> Path:
    """Write ``model.safetensors`` then ``card.json`` into ``path_dir`` (each atomically).

    Parameters
    ----------
    model : torch.nn.Module
        An instance of the class registered under ``architecture.name``; its ``state_dict`` is
        saved (moved to the CPU).
    path_dir : str or os.PathLike
        Output folder (created; an existing model there is replaced).
    architecture : ArchitectureSpec
        Registered name and the constructor kwargs that rebuild ``model``.
    config : JsonConfig
        The configuration the model was trained with (card ``config`` and ``config_kind``).
    name : str
        Model name (e.g. ``"seaice-s2-unet"``).
    metrics : mapping, optional
        Evaluation results; numpy values become plain JSON and NaN is written as ``null``.
    training_data : str or mapping
        Description of the training data (scenes, label source, tile counts ...).
    classes : mapping of int to str, optional
        Output class code -> name.
    inputs : mapping, optional
        What the model expects as input (tile size, preprocessing ...), card field ``input``.
    output : str
        What the model returns (e.g. ``"logits (N, 3, H, W)"``).

    Returns
    -------
    pathlib.Path
        The card's path.

    Raises
    ------
    KeyError
        When ``architecture.name`` is not registered.
    TypeError
        When ``model`` is not an instance of the registered class.
    ValueError
        When a value is not JSON-able.
    """
    import torch
    from safetensors.torch import save_file

    cls = architecture_class(architecture.name)
    if not isinstance(model, cls):
        raise TypeError(f"save_model: model is a {type(model).__name__}, architecture {architecture.name!r} "
                        f"is {cls.__name__}")
    out = Path(path_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS_NAME
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_write(weights, lambda tmp: save_file(state, str(tmp), metadata={"architecture": architecture.name,
                                                                           "code_version": __version__}))
    card = {
        "card_format": CARD_FORMAT,
        "name": name,
        "architecture": architecture.to_card(),
        "param_count": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "classes": {str(int(k)): str(v) for k, v in (classes or {}).items()},
        "input": _jsonable(dict(inputs or {})),
        "output": output,
        "config": config.to_dict(),
        "config_kind": config.kind,
        "training_data": _jsonable(training_data),
        "metrics": _jsonable(dict(metrics or {})),
        "code_version": __version__,
        "torch_version": torch.__version__,
        "weights_file": WEIGHTS_NAME,
        "weights_sha256": sha256_file(weights),
    }
    text = json.dumps(card, indent=2, sort_keys=True, allow_nan=False) + "\n"
    card_path = out / CARD_NAME
    _atomic_write(card_path, lambda tmp: tmp.write_text(text))
    log.info("saved %s %s (%d parameters, sha256 %s) to %s", architecture.name, name, card["param_count"],
             card["weights_sha256"][:12], out)
    return card_path


def read_card(path_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The card (``card.json``) of a model folder, checked for format and required fields.

    Raises
    ------
    ModelFormatError
        When the folder does not exist or holds no card, or the card is not usable
        (:func:`parse_card`).
    """
    folder = Path(path_dir)
    if not folder.is_dir():
        raise ModelFormatError(folder, "no such model folder")
    card_path = folder / CARD_NAME
    if not card_path.is_file():
        raise ModelFormatError(folder, f"not a model folder (no {CARD_NAME})")
    try:
        data = card_path.read_bytes()
    except OSError as exc:
        raise ModelFormatError(folder, f"{CARD_NAME} is damaged ({exc})") from exc
    return parse_card(data, folder)


def parse_card(data: bytes, where: str | os.PathLike[str]) -> dict[str, Any]:
    """A card from its bytes, checked for format and required fields.

    Parameters
    ----------
    data : bytes
        The bytes of a ``card.json``.
    where : str or os.PathLike
        The model folder (or partition) named in errors.

    Raises
    ------
    ModelFormatError
        When the card is not a UTF-8 JSON object, has another ``card_format``, misses a
        required field, names a weights file outside the folder, or its weights sha256, config
        or architecture block are malformed.

    Examples
    --------
    >>> parse_card(b"{nope", "m")
    Traceback (most recent call last):
    ...
    seaice_tasks.models.registry.ModelFormatError: m: card.json is damaged (Expecting property name ...)
    """
    try:
        card = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(where, f"{CARD_NAME} is damaged ({exc})") from exc
    if not isinstance(card, dict):
        raise ModelFormatError(where, f"{CARD_NAME} is not a JSON object")
    if card.get("card_format") != CARD_FORMAT:
        raise ModelFormatError(where, f"{CARD_NAME} has card_format {card.get('card_format')!r}, "
                                      f"this code reads {CARD_FORMAT}")
    missing = [k for k in REQUIRED_CARD_FIELDS if k not in card]
    if missing:
        raise ModelFormatError(where, f"{CARD_NAME} misses {missing}")
    weights_file = card["weights_file"]
    if not isinstance(weights_file, str) or Path(weights_file).name != weights_file or weights_file in ("", ".", ".."):
        raise ModelFormatError(where, f"{CARD_NAME}: weights_file {weights_file!r} is not a file name in the folder")
    if not isinstance(card["weights_sha256"], str) or not _SHA256_RE.match(card["weights_sha256"]):
        raise ModelFormatError(where, f"{CARD_NAME}: weights_sha256 {card['weights_sha256']!r} is not a sha256")
    if not isinstance(card["config"], dict):
        raise ModelFormatError(where, f"{CARD_NAME}: config is not a JSON object")
    try:
        ArchitectureSpec.from_card(card["architecture"] if isinstance(card["architecture"], Mapping) else {})
    except ValueError as exc:
        raise ModelFormatError(where, f"{CARD_NAME}: {exc}") from exc
    return card


def load_model(path_dir: str | os.PathLike[str], device: str = "cpu") -> LoadedModel:
    """Read a model folder written by :func:`save_model`: the module in eval mode on ``device``.

    The module is rebuilt from the card's architecture block (the global torch RNG is left as it
    was) and the weights are loaded strictly, after their sha256 is checked against the card.

    Parameters
    ----------
    path_dir : str or os.PathLike
        The model folder.
    device : str
        Torch device of the returned module.

    Returns
    -------
    LoadedModel
        ``model`` (eval mode) and ``card`` (:func:`read_card`).

    Raises
    ------
    ModelFormatError
        When the card is missing or damaged (:func:`read_card`), the weights file is missing,
        not a safetensors file or differs from the card's sha256, the architecture is not
        registered or its kwargs do not build it, or the weights do not fit it.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path_dir)
    card = read_card(folder)
    weights = folder / card["weights_file"]
    if not weights.is_file():
        raise ModelFormatError(folder, f"weights file {card['weights_file']} is missing")
    digest = sha256_file(weights)
    if digest != card["weights_sha256"]:
        raise ModelFormatError(folder, f"{card['weights_file']}: sha256 {digest} differs from the card's "
                                       f"{card['weights_sha256']}")
    spec = ArchitectureSpec.from_card(card["architecture"])
    try:
        cls = architecture_class(spec.name)
    except (KeyError, TypeError, ImportError, AttributeError) as exc:
        raise ModelFormatError(folder, f"architecture {spec.name!r} cannot be built ({exc})") from exc
    try:
        with torch.random.fork_rng(devices=[]):
            model = cls(**spec.kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(folder, f"architecture kwargs do not build a {spec.name} ({exc})") from exc
    try:
        state = load_file(str(weights), device="cpu")
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise ModelFormatError(folder, f"{card['weights_file']} does not fit the card's {spec.name} ({exc})") from exc
    model.to(device).eval()
    log.info("loaded %s %s from %s (code %s, %s parameters)", spec.name, card.get("name"), folder,
             card.get("code_version"), card.get("param_count"))
    return LoadedModel(model=model, card=card)


def model_card_summary(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card fields recorded in the manifests of the partitions a model labels.

    Name, weights sha256, parameter count, code/torch versions, card format, the architecture
    name, its ``base_filters`` / ``levels`` kwargs (U-Net width and depth), the config's
    ``tile_px`` and the training data's ``views`` (where the card has them).

    Examples
    --------
    >>> model_card_summary({"name": "m", "weights_sha256": "ab",
    ...                     "architecture": {"name": "UNet", "kwargs": {"base_filters": 8}}})
    {'name': 'm', 'weights_sha256': 'ab', 'architecture': 'UNet', 'base_filters': 8}
    """
    out = {k: card[k] for k in _CARD_SUMMARY_FIELDS if k in card}
    arch = card.get("architecture")
    if isinstance(arch, Mapping):
        if "name" in arch:
            out["architecture"] = arch["name"]
        kwargs = arch.get("kwargs")
        if isinstance(kwargs, Mapping):
            out.update({k: kwargs[k] for k in _SUMMARY_KWARGS if k in kwargs})
    cfg = card.get("config")
    if isinstance(cfg, Mapping) and "tile_px" in cfg:
        out["tile_px"] = cfg["tile_px"]
    data = card.get("training_data")
    if isinstance(data, Mapping) and "views" in data:
        out["training_views"] = data["views"]
    return out

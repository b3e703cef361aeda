"""U-Net segmentation of Sentinel-2 scenes: train on auto-labels, predict, evaluate, save/load.

The authors (METHOD.md §2.4) train the U-Net on 256 x 256 tiles of 8-bit true-colour composites
with the colour-threshold auto-labels (:func:`seaice_tasks.s2.color_labels.color_labels`) as
targets, then segment whole scenes tile by tile.  Here

* :func:`train_unet` cuts (rgb, auto-label) scene pairs into tiles
  (:class:`~seaice_tasks.train.dataset.TileDataset`, tiles mostly unlabeled skipped), splits them
  80/20 into training and validation tiles (seeded), and trains
  :class:`~seaice_tasks.models.unet.UNet` with Adam and cross-entropy (unlabeled pixels ignored)
  through the resumable :class:`~seaice_tasks.train.loop.Trainer`;
* :func:`predict_scene` segments a scene with the *same* preprocessing
  (:func:`~seaice_tasks.train.dataset.preprocess_tile`, which the authors' Spark inference
  forgot), averaging class probabilities where the end-aligned edge tiles overlap;
* :func:`evaluate_unet` gives pixel accuracy, per-class IoU, mean IoU and the confusion matrix
  against a reference raster (e.g. the simulator's truth ``classes.tif``);
* :func:`save_model` / :func:`load_model` store ``model.safetensors`` and ``model_card.json``;
* :func:`label_scene_unet` segments a Sentinel-2 scene on disk, feeding the U-Net the input view
  selected by :attr:`S2LabelConfig.apply_filter <seaice_tasks.s2.scene_labels.S2LabelConfig>`
  (:func:`unet_input_image`), and :func:`write_unet_partition` commits the result as a label COG
  (class colour table, the bands' grid) in stage :data:`S2_UNET_STAGE`.

Input views.  The authors trained on grey tiles of the raw RGB composite but fed the *shadow-free*
filter output (0/155/255) to the model in their Spark inference (METHOD.md §2.4, §13 row 18).  Here
a model may be trained on either view or both (``seaice_tasks.s2.unet_experiment`` trains on both,
with the filtered colour labels of :func:`~seaice_tasks.s2.scene_labels.label_scene` as targets for
both), and inference applies exactly the training preprocessing to the view it is asked for:

* ``"original"`` (``apply_filter=False``): the 8-bit composite;
* ``"filtered"`` (``apply_filter=True``): the shadow-free image of
  :func:`~seaice_tasks.s2.cloud_shadow.remove_thin_cloud_shadow` (scene-wide statistics) repeated
  into three equal channels, so its grey level is the filter level itself (255 ice, 155 thin,
  0 water).

Class codes everywhere: 0 thick ice, 1 thin ice, 2 open water, 255 unlabeled (the authors' U-Net
used 0 thin, 1 thick, 2 water internally; only the order of the output channels differs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Subset

from seaice_tasks import __version__
from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import CLASS_NAMES, UNLABELED, SeaIceClass
from seaice_tasks.errors import ConfigError
from seaice_tasks.io.s2 import S2Scene, read_reflectance, rgb_composite
from seaice_tasks.models.losses import MaskedCrossEntropy
from seaice_tasks.models.unet import (
    DECODER_DROPOUTS,
    DEFAULT_BASE_FILTERS,
    DEFAULT_LEVELS,
    ENCODER_DROPOUTS,
    UNet,
    count_parameters,
    probabilities,
)
from seaice_tasks.s2.cloud_shadow import FilterStats, filter_statistics, remove_thin_cloud_shadow
from seaice_tasks.s2.color_labels import LABEL_COLORMAP, class_fractions
from seaice_tasks.s2.evaluate import DEFAULT_CLASSES, confusion_matrix, mean_iou, per_class_iou, pixel_accuracy
from seaice_tasks.s2.scene_labels import S2LabelConfig, WindowSpec, quicklook_png, read_window_halo
from seaice_tasks.storage import Lake, Manifest, PartitionKey, PartitionWriter
from seaice_tasks.train.dataset import (
    DEFAULT_MIN_LABELLED_FRACTION,
    DEFAULT_TILE_PX,
    GREY_WEIGHTS,
    TileDataset,
    crop_tile,
    preprocess_tile,
    tile_origins,
)
from seaice_tasks.train.loop import TrainConfig, Trainer, adam_factory, make_loader, seed_everything

__all__ = [
    "UNetConfig",
    "LoadedUNet",
    "N_CLASSES",
    "WEIGHTS_NAME",
    "CARD_NAME",
    "CARD_FORMAT",
    "build_unet",
    "train_unet",
    "predict_scene_proba",
    "predict_scene",
    "evaluate_unet",
    "save_model",
    "load_model",
    "S2_UNET_STAGE",
    "UNET_LABELS_FILE",
    "UNET_QUICKLOOK_FILE",
    "VIEW_ORIGINAL",
    "VIEW_FILTERED",
    "input_view",
    "unet_input_image",
    "label_scene_unet",
    "label_window_unet",
    "stage_unet_files",
    "read_model_card",
    "model_card_summary",
    "write_unet_partition",
]

log = logging.getLogger(__name__)

#: Output classes: thick ice, thin ice, open water.
N_CLASSES: Final[int] = 3
#: File names of a saved model.
WEIGHTS_NAME: Final[str] = "model.safetensors"
CARD_NAME: Final[str] = "model_card.json"
#: Version of the model-card layout.
CARD_FORMAT: Final[int] = 1
#: Authors' number of training epochs of the auto-label model.
DEFAULT_EPOCHS: Final[int] = 100
DEFAULT_BATCH_SIZE: Final[int] = 16
DEFAULT_LR: Final[float] = 1e-3
#: Fraction of tiles held out for validation (authors: ``train_test_split(test_size=0.2)``).
DEFAULT_VAL_FRACTION: Final[float] = 0.2
_HASH_CHUNK_BYTES: Final[int] = 1 << 20
#: Lake stage of the U-Net label COGs (beside the colour labels' ``s2_labels``).
S2_UNET_STAGE: Final[str] = "s2_unet_labels"
UNET_LABELS_FILE: Final[str] = "labels.tif"
UNET_QUICKLOOK_FILE: Final[str] = "quicklook.png"
#: Names of the two U-Net input views (the P2 "original" and "filtered" validation sets).
VIEW_ORIGINAL: Final[str] = "original"
VIEW_FILTERED: Final[str] = "filtered"
#: Card fields copied into the label partition's manifest.
_CARD_SUMMARY_FIELDS: Final[tuple[str, ...]] = ("name", "weights_sha256", "param_count", "code_version",
                                               "torch_version", "card_format")
_MIN_LEVELS: Final[int] = 2
#: Axes of an RGB image (rows, cols, channel) and its channel count.
_RGB_NDIM: Final[int] = 3
_LABEL_CLASSES: Final[tuple[SeaIceClass, ...]] = (SeaIceClass.THICK_ICE, SeaIceClass.THIN_ICE, SeaIceClass.OPEN_WATER)

RGBImage = npt.NDArray[np.uint8]
LabelImage = npt.NDArray[np.uint8]
BoolImage = npt.NDArray[np.bool_]


@dataclasses.dataclass(frozen=True)
class UNetConfig(JsonConfig):
    """Architecture, tiling and training settings of the Sentinel-2 U-Net.

    Attributes
    ----------
    base_filters : int
        Filters of the first level (16: the authors' 7,775,347-parameter model).
    levels : int
        Encoder levels (6).
    dropouts, decoder_dropouts : tuple of float
        Dropout per encoder / decoder level (authors: 0.1 0.1 0.2 0.2 0.2 0.3 / 0.2 0.2 0.2 0.1 0.1).
    tile_px : int
        Tile side (256); a multiple of ``2 ** (levels - 1)``.
    epochs : int
        Training epochs (authors: 100 for the auto-label model, 50 for the manual-label one).
    batch_size : int
        Tiles per batch and process (16).
    lr : float
        Adam learning rate (1e-3, Keras' default).
    seed : int
        Seeds the weights, the train/validation split and every epoch.
    min_labelled_fraction : float
        Training tiles need at least this fraction of labelled pixels.
    val_fraction : float
        Fraction of the tiles held out for validation (0: none).
    shuffle : bool
        Reshuffle the training tiles every epoch (the authors did not).
    num_workers : int
        ``DataLoader`` worker processes.
    device : str
        Torch device of training and inference.
    inference_batch_size : int
        Tiles per forward pass in :func:`predict_scene`.

    Examples
    --------
    >>> cfg = UNetConfig(base_filters=4, tile_px=64, epochs=2)
    >>> UNetConfig.from_json(cfg.to_json()) == cfg
    True
    """

    kind: ClassVar[str] = "s2_unet"
    base_filters: int = DEFAULT_BASE_FILTERS
    levels: int = DEFAULT_LEVELS
    dropouts: tuple[float, ...] = ENCODER_DROPOUTS
    decoder_dropouts: tuple[float, ...] = DECODER_DROPOUTS
    tile_px: int = DEFAULT_TILE_PX
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    lr: float = DEFAULT_LR
    seed: int = 0
    min_labelled_fraction: float = DEFAULT_MIN_LABELLED_FRACTION
    val_fraction: float = DEFAULT_VAL_FRACTION
    shuffle: bool = True
    num_workers: int = 0
    device: str = "cpu"
    inference_batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if self.base_filters < 1 or self.levels < _MIN_LEVELS:
            raise ConfigError(f"UNetConfig: need base_filters >= 1 and levels >= {_MIN_LEVELS}, "
                              f"got {self.base_filters}, {self.levels}")
        if len(self.dropouts) != self.levels or len(self.decoder_dropouts) != self.levels - 1:
            raise ConfigError(f"UNetConfig: {self.levels} levels need {self.levels} encoder and "
                              f"{self.levels - 1} decoder dropouts")
        multiple = 2 ** (self.levels - 1)
        if self.tile_px < multiple or self.tile_px % multiple:
            raise ConfigError(f"UNetConfig.tile_px: must be a multiple of {multiple}, got {self.tile_px}")
        if not 0.0 <= self.min_labelled_fraction <= 1.0 or not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError("UNetConfig: min_labelled_fraction in [0, 1] and val_fraction in [0, 1) required")
        if self.inference_batch_size < 1:
            raise ConfigError("UNetConfig.inference_batch_size: must be >= 1")

    def train_config(self, checkpoint_dir: str | os.PathLike[str] | None = None, *, resume: bool = True) -> TrainConfig:
        """The :class:`~seaice_tasks.train.loop.TrainConfig` of this U-Net run."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                           num_workers=self.num_workers, shuffle=self.shuffle,
                           checkpoint_dir="" if checkpoint_dir is None else os.fspath(checkpoint_dir),
                           resume=resume, device=self.device)


class LoadedUNet(NamedTuple):
    """A model read by :func:`load_model`."""

    model: UNet
    config: UNetConfig
    card: dict[str, Any]


def build_unet(config: UNetConfig) -> UNet:
    """The (untrained) U-Net of a config: 1 grey input channel, 3 classes."""
    return UNet(in_channels=1, n_classes=N_CLASSES, base_filters=config.base_filters, levels=config.levels,
                dropouts=config.dropouts, decoder_dropouts=config.decoder_dropouts)


# --------------------------------------------------------------------------------------------------
# training


def train_unet(
    scenes: Sequence[tuple[RGBImage, LabelImage]],
    config: UNetConfig | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    *,
    resume: bool = True,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[UNet, list[dict[str, float]]]:
    """Train the U-Net on (8-bit RGB, label) scene pairs.

    Parameters
    ----------
    scenes : sequence of (rgb, labels)
        ``rgb`` uint8 (rows, cols, 3) from :func:`seaice_tasks.io.s2.rgb_composite` (0 where no
        data), ``labels`` uint8 (rows, cols) class codes, 255 unlabeled (auto-labels).
    config : UNetConfig, optional
    checkpoint_dir : str or os.PathLike, optional
        Checkpoint folder; with ``resume`` a rerun (Airflow retry) continues from its newest
        checkpoint.  None: no checkpoints.
    resume : bool
        Continue from the newest checkpoint in ``checkpoint_dir``.
    rank, world_size : int
        Process and process count (from a distributed launcher; 0 and 1 alone).

    Returns
    -------
    model : UNet
        The trained network (eval mode).
    history : list of dict
        Per epoch: ``train_loss``, ``val_loss``, ``val_accuracy``, ``val_mean_iou`` (against the
        auto-labels of the held-out tiles), ``epoch_s``.

    Raises
    ------
    ValueError
        When no tile has enough labelled pixels.
    """
    cfg = config if config is not None else UNetConfig()
    dataset = TileDataset(scenes, tile_px=cfg.tile_px, min_labelled_fraction=cfg.min_labelled_fraction)
    n_tiles = len(dataset)
    if n_tiles == 0:
        raise ValueError(f"train_unet: no {cfg.tile_px} px tile has >= {cfg.min_labelled_fraction:.0%} labelled pixels")
    order = torch.randperm(n_tiles, generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    n_val = min(round(cfg.val_fraction * n_tiles), n_tiles - 1)
    train_set = Subset(dataset, order[n_val:])
    tcfg = cfg.train_config(checkpoint_dir, resume=resume)
    val_loader = make_loader(Subset(dataset, order[:n_val]), tcfg, train=False) if n_val else None
    log.info("train_unet: %d training and %d validation tiles of %d px; %d epochs, width %d",
             n_tiles - n_val, n_val, cfg.tile_px, cfg.epochs, cfg.base_filters)

    seed_everything(cfg.seed)
    model = build_unet(cfg)
    trainer = Trainer(model, MaskedCrossEntropy(ignore_index=UNLABELED), adam_factory(cfg.lr),
                      make_loader(train_set, tcfg, train=True), val_loader, tcfg,
                      n_classes=N_CLASSES, ignore_index=UNLABELED, rank=rank, world_size=world_size)
    history = trainer.fit()
    model.eval()
    return model, history


# --------------------------------------------------------------------------------------------------
# inference


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@torch.no_grad()
def predict_scene_proba(
    model: UNet,
    rgb: RGBImage,
    valid: BoolImage | None = None,
    config: UNetConfig | None = None,
) -> npt.NDArray[np.float32]:
    """Class probabilities (3, rows, cols) of a scene, tile by tile with the training preprocessing.

    Tiles of ``config.tile_px`` cover the scene on the training grid (the last row/column of
    tiles aligned to the edge; a smaller scene is zero-padded); probabilities are averaged where
    tiles overlap.  Pixels outside ``valid`` are set to 0 (as nodata in the composite) before
    preprocessing; their probabilities are meaningless.
    """
    cfg = config if config is not None else UNetConfig()
    image = np.asarray(rgb, dtype=np.uint8)
    if image.ndim != _RGB_NDIM or image.shape[-1] != _RGB_NDIM:
        raise ValueError(f"predict_scene: expected (rows, cols, 3) uint8 RGB, got {image.shape}")
    rows, cols = image.shape[:2]
    if valid is not None:
        mask = np.asarray(valid, dtype=bool)
        if mask.shape != (rows, cols):
            raise ValueError(f"predict_scene: valid {mask.shape} does not match the image {(rows, cols)}")
        image = np.where(mask[..., None], image, np.uint8(0))
    tile = cfg.tile_px
    origins = [(r, c) for r in tile_origins(rows, tile) for c in tile_origins(cols, tile)]
    total, hits = _accumulate_tiles(model, image, origins, cfg)
    np.maximum(hits, 1.0, out=hits)
    total /= hits
    out: npt.NDArray[np.float32] = total[:, :rows, :cols]
    return out


def _accumulate_tiles(
    model: UNet, image: RGBImage, origins: Sequence[tuple[int, int]], cfg: UNetConfig
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Summed tile probabilities (3, R, C) and tile counts (R, C) over ``image`` (R, C >= the tile).

    Tiles are added in the order of ``origins``, so a pixel's sum does not depend on which other
    tiles are in the list (windowed inference equals whole-scene inference).
    """
    rows, cols = image.shape[:2]
    tile = cfg.tile_px
    total = np.zeros((N_CLASSES, max(rows, tile), max(cols, tile)), dtype=np.float32)
    hits = np.zeros((max(rows, tile), max(cols, tile)), dtype=np.float32)
    device = _model_device(model)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(origins), cfg.inference_batch_size):
            batch_origins = origins[start : start + cfg.inference_batch_size]
            x = np.stack([preprocess_tile(np.asarray(crop_tile(image, r, c, tile), dtype=np.uint8))
                          for r, c in batch_origins])
            proba = probabilities(model(torch.from_numpy(x[:, None]).to(device))).cpu().numpy()
            for (r, c), p in zip(batch_origins, proba, strict=True):
                total[:, r : r + tile, c : c + tile] += p
                hits[r : r + tile, c : c + tile] += 1.0
    return total, hits


def predict_scene(
    model: UNet,
    rgb: RGBImage,
    valid: BoolImage | None = None,
    config: UNetConfig | None = None,
) -> LabelImage:
    """Class codes (rows, cols) of a scene: argmax of :func:`predict_scene_proba`, 255 where invalid.

    Parameters
    ----------
    model : UNet
    rgb : numpy.ndarray of uint8, shape (rows, cols, 3)
        The 8-bit composite (as used for training).
    valid : numpy.ndarray of bool, optional
        False outside the footprint -> 255.
    config : UNetConfig, optional
        Tile size and inference batch size (use the training config).

    Returns
    -------
    numpy.ndarray of uint8
        0 thick ice, 1 thin ice, 2 open water, 255 unlabeled.
    """
    proba = predict_scene_proba(model, rgb, valid, config)
    labels: LabelImage = proba.argmax(axis=0).astype(np.uint8)
    if valid is not None:
        labels[~np.asarray(valid, dtype=bool)] = UNLABELED
    return labels


# --------------------------------------------------------------------------------------------------
# evaluation


def evaluate_unet(
    model: UNet,
    scenes: Sequence[tuple[RGBImage, BoolImage | None, LabelImage]],
    config: UNetConfig | None = None,
) -> dict[str, Any]:
    """Segment scenes and score them against reference labels, pooled over all pixels.

    Parameters
    ----------
    model : UNet
    scenes : sequence of (rgb, valid, reference)
        8-bit composite, validity mask (or None) and reference class codes (255 = no reference:
        e.g. the simulator's ``classes.tif``, or auto-labels).
    config : UNetConfig, optional

    Returns
    -------
    dict
        ``classes`` (codes in matrix order: 0 thick, 1 thin, 2 water), ``pixel_accuracy``,
        ``per_class_iou`` (class code -> IoU = TP / (TP + FP + FN), None when the class is in
        neither), ``mean_iou`` (mean of the defined IoUs), ``confusion_matrix`` (3 x 3 list,
        rows reference, columns prediction), ``n_pixels`` (pixels with a reference and a
        prediction), ``coverage`` (their share of the reference pixels), ``majority_rate``
        (share of the most frequent reference class: the accuracy of a constant prediction).
        The metrics are those of :mod:`seaice_tasks.s2.evaluate`, pooled over the scenes.
    """
    cm = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    n_reference = 0
    for rgb, valid, reference in scenes:
        ref = np.asarray(reference, dtype=np.uint8)
        cm += confusion_matrix(ref, predict_scene(model, rgb, valid, config), classes=DEFAULT_CLASSES, ignore=UNLABELED)
        n_reference += int(np.count_nonzero(ref != UNLABELED))
    iou = per_class_iou(cm)
    per_class = cm.sum(axis=1)
    n_pixels = int(cm.sum())
    return {
        "classes": list(DEFAULT_CLASSES),
        "pixel_accuracy": pixel_accuracy(cm),
        "per_class_iou": {int(c): (float(v) if np.isfinite(v) else None) for c, v in zip(DEFAULT_CLASSES, iou,
                                                                                      strict=True)},
        "mean_iou": mean_iou(cm),
        "confusion_matrix": cm.tolist(),
        "n_pixels": n_pixels,
        "coverage": n_pixels / n_reference if n_reference else float("nan"),
        "majority_rate": float(per_class.max() / n_pixels) if n_pixels else float("nan"),
    }


# --------------------------------------------------------------------------------------------------
# persistence


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    """Metrics as plain JSON (numpy scalars/arrays, tuples, NaN -> None)."""
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


def save_model(
    model: UNet,
    config: UNetConfig,
    metrics: Mapping[str, Any],
    path_dir: str | os.PathLike[str],
    *,
    training_data: str | Mapping[str, Any] = "",
) -> Path:
    """Write ``model.safetensors`` and ``model_card.json`` into ``path_dir`` (each atomically).

    The weights are written first and the card last, so a folder with a card always holds the
    weights it describes (the card carries their sha256).

    Parameters
    ----------
    model : UNet
    config : UNetConfig
        The configuration it was trained with.
    metrics : mapping
        Evaluation results (e.g. :func:`evaluate_unet` and the last training epoch).
    path_dir : str or os.PathLike
        Output folder (created).
    training_data : str or mapping
        Description of the training data (scenes, label source, tile counts ...).

    Returns
    -------
    pathlib.Path
        The card's path.
    """
    out = Path(path_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS_NAME
    tmp = out / f".{WEIGHTS_NAME}.tmp-{os.getpid()}"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    try:
        save_file(state, str(tmp), metadata={"architecture": "UNet", "code_version": __version__})
        os.replace(tmp, weights)
    finally:
        tmp.unlink(missing_ok=True)
    card = {
        "card_format": CARD_FORMAT,
        "name": "seaice-s2-unet",
        "architecture": {
            "name": "UNet",
            "in_channels": model.in_channels,
            "n_classes": model.n_classes,
            "base_filters": model.base_filters,
            "levels": model.levels,
            "dropouts": list(model.dropouts),
            "decoder_dropouts": list(model.decoder_dropouts),
            "reference": "METHOD.md §2.4 (authors' Keras U-Net, 7,775,347 parameters at base_filters 16)",
        },
        "param_count": count_parameters(model),
        "classes": {str(int(c)): CLASS_NAMES[c] for c in (*_LABEL_CLASSES, SeaIceClass.UNLABELED)},
        "input": {
            "tile_px": config.tile_px,
            "preprocessing": "grey = round(0.299 R + 0.587 G + 0.114 B) of the 8-bit composite, then every "
                             "tile column divided by its L2 norm (keras normalize(axis=1))",
            "grey_weights": list(GREY_WEIGHTS),
            "function": "seaice_tasks.train.dataset.preprocess_tile",
        },
        "output": "logits (N, 3, H, W); softmax = class probabilities",
        "config": config.to_dict(),
        "training_data": _jsonable(training_data),
        "metrics": _jsonable(metrics),
        "code_version": __version__,
        "torch_version": torch.__version__,
        "weights_file": WEIGHTS_NAME,
        "weights_sha256": _sha256(weights),
    }
    card_path = out / CARD_NAME
    tmp_card = out / f".{CARD_NAME}.tmp-{os.getpid()}"
    try:
        tmp_card.write_text(json.dumps(card, indent=2, sort_keys=True, allow_nan=False) + "\n")
        os.replace(tmp_card, card_path)
    finally:
        tmp_card.unlink(missing_ok=True)
    log.info("saved U-Net (%d parameters, sha256 %s) to %s", card["param_count"], card["weights_sha256"][:12], out)
    return card_path


def read_model_card(path_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The model card (``model_card.json``) of a folder written by :func:`save_model`.

    Raises
    ------
    FileNotFoundError
        When the folder holds no card.
    """
    card: dict[str, Any] = json.loads((Path(path_dir) / CARD_NAME).read_text())
    return card


def load_model(path_dir: str | os.PathLike[str], device: str = "cpu") -> LoadedUNet:
    """Read a model written by :func:`save_model` (eval mode), checking the weights' sha256.

    Raises
    ------
    FileNotFoundError
        When the card or the weights are missing.
    ValueError
        When the weights do not match the card's checksum or architecture.
    """
    folder = Path(path_dir)
    card = read_model_card(folder)
    weights = folder / str(card.get("weights_file", WEIGHTS_NAME))
    digest = _sha256(weights)
    if digest != card["weights_sha256"]:
        raise ValueError(f"{weights}: sha256 {digest} differs from the card's {card['weights_sha256']}")
    arch = card["architecture"]
    model = UNet(in_channels=int(arch["in_channels"]), n_classes=int(arch["n_classes"]),
                 base_filters=int(arch["base_filters"]), levels=int(arch["levels"]),
                 dropouts=tuple(float(p) for p in arch["dropouts"]),
                 decoder_dropouts=tuple(float(p) for p in arch["decoder_dropouts"]))
    try:
        model.load_state_dict(load_file(str(weights), device=device))
    except RuntimeError as exc:
        raise ValueError(f"{weights}: weights do not fit the card's architecture ({exc})") from exc
    model.to(device).eval()
    config = UNetConfig.from_dict(card["config"])
    log.info("loaded U-Net %s (code %s, %d parameters)", folder, card.get("code_version"), card.get("param_count"))
    return LoadedUNet(model=model, config=config, card=card)


# --------------------------------------------------------------------------------------------------
# scenes on disk -> label partitions


def input_view(label_config: S2LabelConfig) -> str:
    """Name of the U-Net input view a label config selects.

    Examples
    --------
    >>> input_view(S2LabelConfig()), input_view(S2LabelConfig(apply_filter=False))
    ('filtered', 'original')
    """
    return VIEW_FILTERED if label_config.apply_filter else VIEW_ORIGINAL


def unet_input_image(
    rgb: RGBImage,
    valid: BoolImage,
    label_config: S2LabelConfig | None = None,
    *,
    stats: FilterStats | None = None,
) -> RGBImage:
    """The 8-bit image the U-Net sees for one scene: the composite or the shadow-free image.

    Training and inference both call this, then :func:`~seaice_tasks.train.dataset.preprocess_tile`
    per tile (through :class:`~seaice_tasks.train.dataset.TileDataset` / :func:`predict_scene`).

    Parameters
    ----------
    rgb : numpy.ndarray of uint8, shape (rows, cols, 3)
        8-bit composite (:func:`seaice_tasks.io.s2.rgb_composite`).
    valid : numpy.ndarray of bool, shape (rows, cols)
        False outside the footprint (set to 0 in the output).
    label_config : S2LabelConfig, optional
        ``apply_filter`` False: the composite ("original" view); True (default): the authors'
        thin-cloud/shadow filter output with ``label_config.filter``, repeated into 3 channels
        ("filtered" view; grey = 255 ice, 155 thin, 0 water).
    stats : FilterStats, optional
        Scene-wide filter statistics when ``rgb`` is a window of a larger scene (None: computed
        from this image, which is exact for a whole scene).

    Returns
    -------
    numpy.ndarray of uint8, shape (rows, cols, 3)

    Examples
    --------
    >>> img = np.full((5, 5, 3), 220, dtype=np.uint8); img[0, 0] = 10
    >>> ok = np.ones((5, 5), dtype=bool)
    >>> cfg = S2LabelConfig(apply_filter=False)
    >>> bool((unet_input_image(img, ok, cfg) == img).all())
    True
    """
    cfg = label_config if label_config is not None else S2LabelConfig()
    image = np.asarray(rgb, dtype=np.uint8)
    mask = np.asarray(valid, dtype=bool)
    if not cfg.apply_filter:
        out: RGBImage = np.where(mask[..., None], image, np.uint8(0)).astype(np.uint8)
        return out
    free = remove_thin_cloud_shadow(image, mask, cfg.filter, stats=stats)
    grey3: RGBImage = np.repeat(free[..., None], _RGB_NDIM, axis=-1)
    return grey3


def label_scene_unet(
    model: UNet,
    scene: S2Scene,
    s2_label_config: S2LabelConfig | None = None,
    unet_config: UNetConfig | None = None,
) -> LabelImage:
    """U-Net class codes of a whole Sentinel-2 scene on disk.

    Reads the scene, builds the composite with ``s2_label_config.read``, the input view with
    :func:`unet_input_image` (filter output when ``apply_filter``, else the composite; the filter's
    statistics are those of the whole scene, as in
    :func:`~seaice_tasks.s2.scene_labels.label_scene`) and segments it with :func:`predict_scene`.
    The unusable mask is *not* applied: the U-Net labels every valid pixel.

    Parameters
    ----------
    model : UNet
        Trained on the same view (see the model card's ``training_data``).
    scene : S2Scene
        From :func:`seaice_tasks.io.s2.open_s2_scene`.  Read whole (a 10,980 px tile is
        ~360 MB of RGB; :func:`label_window_unet` labels a window with bounded memory).
    s2_label_config : S2LabelConfig, optional
        Composite stretch, filter settings and the view (``apply_filter``).
    unet_config : UNetConfig, optional
        Tile size and inference batch (use the training config).

    Returns
    -------
    numpy.ndarray of uint8, shape ``scene.shape``
        0 thick ice, 1 thin ice, 2 open water, 255 exactly where the scene has no data.
    """
    cfg = s2_label_config if s2_label_config is not None else S2LabelConfig()
    rgb, valid = rgb_composite(read_reflectance(scene), cfg.read)
    image = unet_input_image(rgb, valid, cfg)
    labels = predict_scene(model, image, valid, unet_config)
    log.info("label_scene_unet: %s (%s view), %d x %d px, classes %s", scene.source, input_view(cfg),
             *labels.shape, class_fractions(labels))
    return labels


def label_window_unet(
    model: UNet,
    scene: S2Scene,
    spec: WindowSpec,
    s2_label_config: S2LabelConfig | None = None,
    unet_config: UNetConfig | None = None,
    stats: FilterStats | None = None,
) -> LabelImage:
    """U-Net class codes of one window of a scene, equal to :func:`label_scene_unet` cropped.

    The window is labelled from the scene's tile grid (:func:`tile_origins` over the whole scene):
    every tile that overlaps the window is predicted, on an extent read with the filter's halo
    (the filtered view is window-exact with the scene's ``stats``, see
    :func:`~seaice_tasks.s2.scene_labels.label_window`), and overlapping tiles are averaged in the
    scene's tile order.  Memory is bounded by the window plus one tile and the halo on each side,
    whatever the scene size.

    Parameters
    ----------
    model : UNet
    scene : S2Scene
    spec : WindowSpec
        The window to label (pixel offsets and size).
    s2_label_config : S2LabelConfig, optional
        Composite, filter and view, as for :func:`label_scene_unet`.
    unet_config : UNetConfig, optional
        Tile size and inference batch (the training config).
    stats : FilterStats, optional
        The scene's filter statistics (pass 1 of the labelling job); None computes them from the
        whole scene (one extra full read).

    Returns
    -------
    numpy.ndarray of uint8, shape (spec.height, spec.width)
        0 thick ice, 1 thin ice, 2 open water, 255 where the scene has no data.
    """
    cfg = s2_label_config if s2_label_config is not None else S2LabelConfig()
    ucfg = unet_config if unet_config is not None else UNetConfig()
    rows, cols = scene.shape
    tile = ucfg.tile_px
    r_tiles = [r for r in tile_origins(rows, tile) if r < spec.row_off + spec.height and r + tile > spec.row_off]
    c_tiles = [c for c in tile_origins(cols, tile) if c < spec.col_off + spec.width and c + tile > spec.col_off]
    r0, c0 = r_tiles[0], c_tiles[0]
    extent = WindowSpec(r0, c0, min(r_tiles[-1] + tile, rows) - r0, min(c_tiles[-1] + tile, cols) - c0)
    if cfg.apply_filter and stats is None:
        rgb_all, valid_all = rgb_composite(read_reflectance(scene), cfg.read)
        stats = filter_statistics(rgb_all, valid_all, cfg.filter)
        del rgb_all, valid_all
    halo = cfg.filter.halo_px if cfg.apply_filter else 0
    rgb, valid, crop = read_window_halo(scene, extent, halo, cfg)
    view = unet_input_image(rgb, valid, cfg, stats=stats)[crop]
    valid = valid[crop]
    view = np.where(valid[..., None], view, np.uint8(0))
    total, hits = _accumulate_tiles(model, view, [(r - r0, c - c0) for r in r_tiles for c in c_tiles], ucfg)
    win = (slice(spec.row_off - r0, spec.row_off - r0 + spec.height),
           slice(spec.col_off - c0, spec.col_off - c0 + spec.width))
    proba = total[:, win[0], win[1]] / np.maximum(hits[win], 1.0)
    labels: LabelImage = proba.argmax(axis=0).astype(np.uint8)
    labels[~valid[win]] = UNLABELED
    return labels


def model_card_summary(model_card: Mapping[str, Any]) -> dict[str, Any]:
    """The card fields recorded in a label partition: name, weights sha256, size, versions, width.

    Examples
    --------
    >>> model_card_summary({"name": "m", "weights_sha256": "ab", "architecture": {"base_filters": 8}})
    {'name': 'm', 'weights_sha256': 'ab', 'base_filters': 8}
    """
    out = {k: model_card[k] for k in _CARD_SUMMARY_FIELDS if k in model_card}
    arch = model_card.get("architecture")
    if isinstance(arch, Mapping):
        out.update({k: arch[k] for k in ("base_filters", "levels") if k in arch})
    cfg = model_card.get("config")
    if isinstance(cfg, Mapping) and "tile_px" in cfg:
        out["tile_px"] = cfg["tile_px"]
    data = model_card.get("training_data")
    if isinstance(data, Mapping) and "views" in data:
        out["training_views"] = data["views"]
    return out


def write_unet_partition(
    lake: Lake,
    key: PartitionKey,
    scene: S2Scene,
    labels: LabelImage,
    config: UNetConfig,
    model_card: Mapping[str, Any],
    *,
    label_config: S2LabelConfig | None = None,
    token: str | None = None,
) -> Manifest:
    """Commit a U-Net label COG (+ quicklook) of a scene, like the colour labels' partition.

    Parameters
    ----------
    lake : Lake
    key : PartitionKey
        Usually ``PartitionKey(S2_UNET_STAGE, date, scene_key)``.
    scene : S2Scene
        The scene the labels are of: the COG gets its CRS and transform (the bands' grid).
    labels : numpy.ndarray of uint8, shape ``scene.shape``
        From :func:`label_scene_unet`.
    config : UNetConfig
        The model's configuration (the partition's config).
    model_card : mapping
        The model card (:func:`save_model` / :attr:`LoadedUNet.card`); its summary
        (:func:`model_card_summary`: name, weights sha256, ...) goes into ``info["model"]``.
    label_config : S2LabelConfig, optional
        The input view and composite used (recorded in ``info``; default ``S2LabelConfig()``).
    token : str, optional
        Staging token (see :meth:`Lake.writer`).

    Returns
    -------
    Manifest
        ``info``: ``source``, ``class_fractions``, ``valid_fraction``, ``shape``, ``crs``,
        ``view``, ``label_config``, ``model``.

    Raises
    ------
    ValueError
        When ``labels`` is not a (rows, cols) array of the scene's shape.
    """
    with lake.writer(key, config, token=token) as writer:
        writer.info = stage_unet_files(writer, scene, labels, model_card, label_config=label_config)
    return lake.require(key)


def stage_unet_files(
    writer: PartitionWriter,
    scene: S2Scene,
    labels: LabelImage,
    model_card: Mapping[str, Any],
    *,
    label_config: S2LabelConfig | None = None,
) -> dict[str, Any]:
    """Stage the U-Net label COG and quicklook in ``writer``; return the manifest info.

    :func:`write_unet_partition` commits it in one process; the labelling Spark job stages on
    an executor and lets the driver adopt the files and commit.  Parameters and ``info`` as in
    :func:`write_unet_partition`.
    """
    from affine import Affine

    lab = np.asarray(labels, dtype=np.uint8)
    if lab.shape != tuple(scene.shape):
        raise ValueError(f"write_unet_partition: labels {lab.shape} do not match the scene {scene.shape}")
    lcfg = label_config if label_config is not None else S2LabelConfig()
    summary = model_card_summary(model_card)
    n_valid = int(np.count_nonzero(lab != UNLABELED))
    writer.write_cog(UNET_LABELS_FILE, lab, crs=scene.crs, transform=Affine(*scene.transform),
                     nodata=int(UNLABELED), colormap=LABEL_COLORMAP,
                     tags={"classes": "0 thick ice, 1 thin ice, 2 open water, 255 unlabeled",
                           "model_weights_sha256": str(summary.get("weights_sha256", "")),
                           "input_view": input_view(lcfg)})
    writer.write_bytes(UNET_QUICKLOOK_FILE, quicklook_png(scene, lab, lcfg))
    return {
        "source": scene.source,
        "class_fractions": class_fractions(lab),
        "valid_fraction": n_valid / lab.size if lab.size else 0.0,
        "shape": list(scene.shape),
        "crs": scene.crs,
        "view": input_view(lcfg),
        "label_config": lcfg.to_dict(),
        "model": summary,
    }

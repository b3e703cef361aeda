"""The authors' Sentinel-2 U-Net in PyTorch (METHOD.md §2.4, exact at the default width).

Encoder: ``levels`` (6) levels of Conv3x3 (ReLU, He-normal, ``same``) → Dropout → Conv3x3 (ReLU)
with ``base_filters · 2**i`` filters (16 … 512) and dropouts 0.1, 0.1, 0.2, 0.2, 0.2, 0.3; a 2x2
max-pool after every level but the last (256 px → 8 px).  Decoder: ``levels - 1`` (5) levels of
ConvTranspose 2x2 stride 2 (256 … 16 filters) → concatenation with the encoder output of the same
size → Conv3x3 (ReLU) → Dropout (0.2, 0.2, 0.2, 0.1, 0.1) → Conv3x3 (ReLU).  Output: Conv1x1 with
``n_classes`` (3) filters.  No batch normalisation.  7,775,347 parameters at the default width.

The network returns **logits**; the authors' softmax is :func:`probabilities` (inference) and
sits inside the loss during training (``torch.nn.functional.cross_entropy`` takes logits).

Initialisation follows Keras: the 3x3 convolutions use ``he_normal`` (a normal distribution
truncated at two standard deviations, scaled so its standard deviation is sqrt(2 / fan_in)), the
transposed and the output convolutions Keras' default ``glorot_uniform``, every bias zero.

Beside the network: :class:`UNetConfig` (architecture, tiling and training settings of the
Sentinel-2 U-Net), :func:`build_unet`, and :func:`save_unet` / :func:`load_unet`, thin wrappers
over the model registry (:mod:`seaice_tasks.models.registry`: ``model.safetensors`` +
``card.json``).  Training is :func:`seaice_tasks.train.unet.train_unet`; scene inference is in
:mod:`seaice_tasks.s2.unet`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Final, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import CLASS_NAMES, SeaIceClass
from seaice_tasks.errors import ConfigError
from seaice_tasks.models.registry import (
    ArchitectureSpec,
    ModelFormatError,
    load_model,
    read_card,
    save_model,
)

__all__ = [
    "UNet",
    "UNetConfig",
    "LoadedUNet",
    "UNET_ARCHITECTURE",
    "UNET_MODEL_NAME",
    "N_CLASSES",
    "DEFAULT_TILE_PX",
    "DEFAULT_MIN_LABELLED_FRACTION",
    "INPUT_GREY_WEIGHTS",
    "build_unet",
    "unet_architecture",
    "save_unet",
    "read_unet_card",
    "unet_config_from_card",
    "load_unet",
    "ENCODER_DROPOUTS",
    "DECODER_DROPOUTS",
    "DEFAULT_BASE_FILTERS",
    "DEFAULT_LEVELS",
    "PAPER_PARAM_COUNT",
    "count_parameters",
    "probabilities",
    "he_normal_",
]

#: Filters of the first encoder level (doubled at every level: 16, 32, 64, 128, 256, 512).
DEFAULT_BASE_FILTERS: Final[int] = 16
#: Encoder levels (5 poolings: 256 px → 8 px at the bottom).
DEFAULT_LEVELS: Final[int] = 6
#: Dropout rate of each encoder level (authors).
ENCODER_DROPOUTS: Final[tuple[float, ...]] = (0.1, 0.1, 0.2, 0.2, 0.2, 0.3)
#: Dropout rate of each decoder level, from the bottom up (authors).
DECODER_DROPOUTS: Final[tuple[float, ...]] = (0.2, 0.2, 0.2, 0.1, 0.1)
#: Parameter count Keras reports for the authors' model (1 input channel, 3 classes, width 16).
PAPER_PARAM_COUNT: Final[int] = 7_775_347
#: Input channels (grey) and classes (thick, thin, water) of the authors' model.
DEFAULT_IN_CHANNELS: Final[int] = 1
DEFAULT_N_CLASSES: Final[int] = 3
#: Output classes of the Sentinel-2 U-Net: thick ice, thin ice, open water.
N_CLASSES: Final[int] = DEFAULT_N_CLASSES
#: Side of the authors' U-Net tiles (px; the value of ``seaice_tasks.train.dataset.DEFAULT_TILE_PX``).
DEFAULT_TILE_PX: Final[int] = 256
#: Training tiles need this fraction of labelled pixels (``train.dataset.DEFAULT_MIN_LABELLED_FRACTION``).
DEFAULT_MIN_LABELLED_FRACTION: Final[float] = 0.5
#: Authors' number of training epochs of the auto-label model.
DEFAULT_EPOCHS: Final[int] = 100
DEFAULT_BATCH_SIZE: Final[int] = 16
DEFAULT_LR: Final[float] = 1e-3
#: Fraction of tiles held out for validation (authors: ``train_test_split(test_size=0.2)``).
DEFAULT_VAL_FRACTION: Final[float] = 0.2
#: Name of the architecture in the registry and on the cards, and of the saved model.
UNET_ARCHITECTURE: Final[str] = "UNet"
UNET_MODEL_NAME: Final[str] = "seaice-s2-unet"
UNET_REFERENCE: Final[str] = "METHOD.md §2.4 (authors' Keras U-Net, 7,775,347 parameters at base_filters 16)"
#: The input the card describes: grey of the 8-bit composite with the BT.601 luma weights of R, G,
#: B (``train.dataset.GREY_WEIGHTS``), then the column L2 norm of every tile.
INPUT_GREY_WEIGHTS: Final[tuple[float, float, float]] = (0.299, 0.587, 0.114)
INPUT_PREPROCESSING: Final[str] = ("grey = round(0.299 R + 0.587 G + 0.114 B) of the 8-bit composite, then every "
                                   "tile column divided by its L2 norm (keras normalize(axis=1))")
INPUT_FUNCTION: Final[str] = "seaice_tasks.train.dataset.preprocess_tile"
UNET_OUTPUT: Final[str] = "logits (N, 3, H, W); softmax = class probabilities"
_MIN_LEVELS: Final[int] = 2
#: Class codes of the U-Net output channels, in order, and the unlabeled code.
_LABEL_CLASSES: Final[tuple[SeaIceClass, ...]] = (SeaIceClass.THICK_ICE, SeaIceClass.THIN_ICE,
                                                  SeaIceClass.OPEN_WATER, SeaIceClass.UNLABELED)

log = logging.getLogger(__name__)

_KERNEL: Final[int] = 3
_UP_KERNEL: Final[int] = 2
_POOL: Final[int] = 2
#: Keras' truncated normal keeps |x| < 2 sigma; this corrects its standard deviation
#: (``keras.initializers.VarianceScaling``, std of a unit normal truncated at ±2).
_TRUNC_STD_CORRECTION: Final[float] = 0.87962566103423978
_TRUNC_SIGMAS: Final[float] = 2.0
_HE_SCALE: Final[float] = 2.0


def he_normal_(weight: Tensor) -> Tensor:
    """Keras ``he_normal`` in place: truncated normal, std sqrt(2 / fan_in), cut at ±2 std.

    Parameters
    ----------
    weight : torch.Tensor
        A convolution weight ``(out, in, kh, kw)``; fan_in = in · kh · kw.

    Returns
    -------
    torch.Tensor
        ``weight``, filled.

    Examples
    --------
    >>> w = he_normal_(torch.empty(64, 32, 3, 3))
    >>> bound = 2 * math.sqrt(2 / (32 * 9)) / 0.87962566103423978
    >>> bool(w.abs().max() <= bound)
    True
    """
    fan_in = weight.shape[1] * math.prod(weight.shape[2:])
    std = math.sqrt(_HE_SCALE / fan_in) / _TRUNC_STD_CORRECTION
    with torch.no_grad():
        nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-_TRUNC_SIGMAS * std, b=_TRUNC_SIGMAS * std)
    return weight


def _zero_bias(layer: nn.Conv2d | nn.ConvTranspose2d) -> None:
    """Keras' ``bias_initializer="zeros"``."""
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class _DoubleConv(nn.Module):
    """Conv3x3 (ReLU) → Dropout → Conv3x3 (ReLU), ``same`` padding."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, _KERNEL, padding="same")
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, _KERNEL, padding="same")
        for conv in (self.conv1, self.conv2):
            he_normal_(conv.weight)
            _zero_bias(conv)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        y: Tensor = functional.relu(self.conv1(x))
        y = self.drop(y)
        out: Tensor = functional.relu(self.conv2(y))
        return out


class UNet(nn.Module):
    """The authors' U-Net (METHOD.md §2.4); returns logits of shape (N, n_classes, H, W).

    Parameters
    ----------
    in_channels : int
        Input channels (1: the column-normalised grey tile).
    n_classes : int
        Output classes (3: thick ice, thin ice, open water).
    base_filters : int
        Filters of the first level, doubled at each deeper level (16 for the authors' model; 2-4
        for fast CPU tests).
    levels : int
        Encoder levels; H and W must be multiples of ``2 ** (levels - 1)`` (32 for 6 levels).
    dropouts : tuple of float
        One dropout rate per encoder level (``levels`` values).
    decoder_dropouts : tuple of float
        One dropout rate per decoder level, bottom up (``levels - 1`` values).

    Examples
    --------
    >>> net = UNet(base_filters=2, levels=3, dropouts=(0.1, 0.1, 0.2), decoder_dropouts=(0.2, 0.1))
    >>> net(torch.zeros(1, 1, 16, 16)).shape
    torch.Size([1, 3, 16, 16])
    """

    def __init__(
        self,
        in_channels: int = DEFAULT_IN_CHANNELS,
        n_classes: int = DEFAULT_N_CLASSES,
        base_filters: int = DEFAULT_BASE_FILTERS,
        levels: int = DEFAULT_LEVELS,
        dropouts: tuple[float, ...] = ENCODER_DROPOUTS,
        decoder_dropouts: tuple[float, ...] = DECODER_DROPOUTS,
    ) -> None:
        super().__init__()
        if in_channels < 1 or n_classes < 2 or base_filters < 1 or levels < 2:
            raise ValueError(
                f"UNet: need in_channels >= 1, n_classes >= 2, base_filters >= 1, levels >= 2; got "
                f"{in_channels}, {n_classes}, {base_filters}, {levels}"
            )
        if len(dropouts) != levels or len(decoder_dropouts) != levels - 1:
            raise ValueError(
                f"UNet: {levels} levels need {levels} encoder and {levels - 1} decoder dropouts, got "
                f"{len(dropouts)} and {len(decoder_dropouts)}"
            )
        if not all(0.0 <= p < 1.0 for p in (*dropouts, *decoder_dropouts)):
            raise ValueError("UNet: dropout rates must be in [0, 1)")
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.base_filters = base_filters
        self.levels = levels
        self.dropouts = tuple(dropouts)
        self.decoder_dropouts = tuple(decoder_dropouts)

        filters = [base_filters * 2**i for i in range(levels)]
        self.encoder = nn.ModuleList()
        previous = in_channels
        for f, p in zip(filters, dropouts, strict=True):
            self.encoder.append(_DoubleConv(previous, f, p))
            previous = f
        self.pool = nn.MaxPool2d(_POOL)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for f, p in zip(reversed(filters[:-1]), decoder_dropouts, strict=True):
            up = nn.ConvTranspose2d(previous, f, _UP_KERNEL, stride=_UP_KERNEL)
            nn.init.xavier_uniform_(up.weight)
            _zero_bias(up)
            self.up.append(up)
            self.decoder.append(_DoubleConv(2 * f, f, p))
            previous = f
        self.head = nn.Conv2d(previous, n_classes, 1)
        nn.init.xavier_uniform_(self.head.weight)
        _zero_bias(self.head)

    @property
    def size_multiple(self) -> int:
        """H and W of the input must be multiples of this (``2 ** (levels - 1)``)."""
        return int(_POOL ** (self.levels - 1))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, n_classes, H, W) of a batch (N, in_channels, H, W).

        Raises
        ------
        ValueError
            When the input is not 4-D with ``in_channels`` channels and sides that are multiples
            of :attr:`size_multiple`.
        """
        m = self.size_multiple
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] % m or x.shape[3] % m:
            raise ValueError(
                f"UNet: expected (N, {self.in_channels}, H, W) with H, W multiples of {m}, got {tuple(x.shape)}"
            )
        skips: list[Tensor] = []
        y = x
        for i, block in enumerate(self.encoder):
            y = block(y)
            if i < self.levels - 1:
                skips.append(y)
                y = self.pool(y)
        for up, block in zip(self.up, self.decoder, strict=True):
            y = torch.cat((up(y), skips.pop()), dim=1)
            y = block(y)
        logits: Tensor = self.head(y)
        return logits


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters, as Keras' ``model.summary()`` counts them.

    Examples
    --------
    >>> count_parameters(nn.Conv2d(1, 16, 3))  # 3*3*1*16 weights + 16 biases
    160
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def probabilities(logits: Tensor, dim: int = 1) -> Tensor:
    """Softmax over the class axis: the authors' output layer activation.

    Examples
    --------
    >>> probabilities(torch.zeros(1, 3, 1, 1)).flatten().tolist()
    [0.3333333432674408, 0.3333333432674408, 0.3333333432674408]
    """
    return torch.softmax(logits, dim=dim)


# --------------------------------------------------------------------------------------------------
# configuration


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
        Tile side (px, 256); a multiple of ``2 ** (levels - 1)``.
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
        Tiles per forward pass in :func:`seaice_tasks.s2.unet.predict_scene`.

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


def build_unet(config: UNetConfig) -> UNet:
    """The (untrained) U-Net of a config: 1 grey input channel, 3 classes.

    Its weights come from the global torch RNG (seed it first, e.g.
    :func:`seaice_tasks.train.loop.seed_everything`).

    Examples
    --------
    >>> cfg = UNetConfig(base_filters=2, levels=3, dropouts=(0.1, 0.1, 0.2), decoder_dropouts=(0.2, 0.1),
    ...                  tile_px=32)
    >>> count_parameters(build_unet(cfg))
    1889
    """
    return UNet(in_channels=DEFAULT_IN_CHANNELS, n_classes=N_CLASSES, base_filters=config.base_filters,
                levels=config.levels, dropouts=config.dropouts, decoder_dropouts=config.decoder_dropouts)


# --------------------------------------------------------------------------------------------------
# persistence (over seaice_tasks.models.registry)


class LoadedUNet(NamedTuple):
    """A U-Net read by :func:`load_unet`: the module (eval mode), its training config and card."""

    model: UNet
    config: UNetConfig
    card: dict[str, Any]


def unet_architecture(model: UNet) -> ArchitectureSpec:
    """The card's architecture block of a U-Net: its constructor kwargs and the paper reference."""
    return ArchitectureSpec(
        UNET_ARCHITECTURE,
        {"in_channels": model.in_channels, "n_classes": model.n_classes, "base_filters": model.base_filters,
         "levels": model.levels, "dropouts": model.dropouts, "decoder_dropouts": model.decoder_dropouts},
        {"reference": UNET_REFERENCE},
    )


def save_unet(
    model: UNet,
    config: UNetConfig,
    metrics: Mapping[str, Any],
    path_dir: str | os.PathLike[str],
    *,
    training_data: str | Mapping[str, Any] = "",
    name: str = UNET_MODEL_NAME,
) -> Path:
    """Save a U-Net with :func:`~seaice_tasks.models.registry.save_model` (weights, then ``card.json``).

    Parameters
    ----------
    model : UNet
    config : UNetConfig
        The configuration it was trained with (card ``config``; ``input.tile_px``).
    metrics : mapping
        Evaluation results (e.g. :func:`seaice_tasks.s2.unet.evaluate_unet` and the last epoch).
    path_dir : str or os.PathLike
        Output folder (created).
    training_data : str or mapping
        Description of the training data (scenes, label source, ``views`` ...).
    name : str
        Model name on the card.

    Returns
    -------
    pathlib.Path
        The card's path.
    """
    return save_model(
        model, path_dir, architecture=unet_architecture(model), config=config, name=name, metrics=metrics,
        training_data=training_data,
        classes={int(c): CLASS_NAMES[c] for c in _LABEL_CLASSES},
        inputs={"tile_px": config.tile_px, "preprocessing": INPUT_PREPROCESSING,
                "grey_weights": list(INPUT_GREY_WEIGHTS), "function": INPUT_FUNCTION},
        output=UNET_OUTPUT,
    )


def unet_config_from_card(card: Mapping[str, Any], path: str | os.PathLike[str] = "<card>") -> UNetConfig:
    """The :class:`UNetConfig` of a U-Net card (e.g. from :func:`read_unet_card`).

    Raises
    ------
    ModelFormatError
        When the card is not a U-Net's or its ``config`` is not a valid :class:`UNetConfig`
        (``path`` names the folder in the message).
    """
    arch = card.get("architecture")
    arch_name = arch.get("name") if isinstance(arch, Mapping) else None
    if arch_name != UNET_ARCHITECTURE or card.get("config_kind", UNetConfig.kind) != UNetConfig.kind:
        raise ModelFormatError(path, f"not a U-Net model folder (architecture {arch_name!r}, "
                                     f"config {card.get('config_kind')!r})")
    try:
        return UNetConfig.from_dict(dict(card.get("config") or {}))
    except ConfigError as exc:
        raise ModelFormatError(path, f"not a U-Net model folder: the card's config is invalid ({exc})") from exc


def read_unet_card(path_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The card of a U-Net folder (:func:`~seaice_tasks.models.registry.read_card`, then checked
    to be a U-Net's with a valid :class:`UNetConfig`), without reading the weights.

    Raises
    ------
    ModelFormatError
        As :func:`~seaice_tasks.models.registry.read_card`, or when the folder holds another model.
    """
    card = read_card(path_dir)
    unet_config_from_card(card, path_dir)
    return card


def load_unet(path_dir: str | os.PathLike[str], device: str = "cpu") -> LoadedUNet:
    """Read a U-Net folder written by :func:`save_unet` (eval mode), checking the weights' sha256.

    Parameters
    ----------
    path_dir : str or os.PathLike
        The model folder.
    device : str
        Torch device of the returned module.

    Returns
    -------
    LoadedUNet
        ``model`` (eval mode), ``config`` (the training :class:`UNetConfig`: use it for
        inference tiling) and ``card``.

    Raises
    ------
    ModelFormatError
        When the folder is not a readable model folder
        (:func:`~seaice_tasks.models.registry.load_model`) or holds another model.
    """
    config = unet_config_from_card(read_card(path_dir), path_dir)
    model, card = load_model(path_dir, device=device)
    if not isinstance(model, UNet):  # pragma: no cover - the architecture check above rules it out
        raise ModelFormatError(path_dir, f"not a U-Net model folder ({type(model).__name__})")
    return LoadedUNet(model=model, config=config, card=card)

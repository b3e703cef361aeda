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
"""

from __future__ import annotations

import math
from typing import Final

import torch
from torch import Tensor, nn
from torch.nn import functional

__all__ = [
    "UNet",
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

"""Losses on logits with integer class targets and an ignore index (unlabeled = 255).

* :class:`MaskedCrossEntropy` -- the U-Net's categorical cross-entropy (METHOD.md §2.4), with
  unlabeled pixels left out of the mean instead of being one-hot encoded as a class.
* :class:`FocalLoss` -- Keras' ``CategoricalFocalCrossentropy`` (METHOD.md §6.3) for the ICESat-2
  LSTM/MLP: per sample ``FL = sum_c alpha_c y_c (1 - p_c)**gamma (-log p_c)`` with the softmax
  probabilities clipped to ``[eps, 1 - eps]``, averaged over the labelled samples.

Both accept logits of shape (N, C) or (N, C, d1, d2, ...) and targets of shape (N) or
(N, d1, d2, ...) holding class indices or ``ignore_index``.  When every target is ignored the loss
is 0 (with a gradient graph), not NaN, so a batch of unlabeled tiles cannot poison training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import torch
from torch import Tensor, nn
from torch.nn import functional

from seaice_tasks.constants import UNLABELED

__all__ = ["MaskedCrossEntropy", "FocalLoss", "FOCAL_ALPHA", "FOCAL_GAMMA", "FOCAL_EPS"]

#: Per-class focal weights (thick, thin, water) of the notebook LSTM (METHOD.md §6.3).
FOCAL_ALPHA: Final[tuple[float, float, float]] = (0.05, 0.45, 0.60)
#: Focusing exponent of the focal loss.
FOCAL_GAMMA: Final[float] = 2.0
#: Keras' ``epsilon()``: probabilities are clipped to [eps, 1 - eps] before the log.
FOCAL_EPS: Final[float] = 1e-7


def _flatten(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """(N, C, ...) logits and (N, ...) targets -> (M, C) and (M,)."""
    if logits.dim() < 2:
        raise ValueError(f"logits must be (N, C, ...), got shape {tuple(logits.shape)}")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
    n_classes = logits.shape[1]
    flat = logits.movedim(1, -1).reshape(-1, n_classes)
    return flat, target.reshape(-1).long()


class MaskedCrossEntropy(nn.Module):
    """Mean cross-entropy over the labelled elements (targets != ``ignore_index``).

    Parameters
    ----------
    weight : sequence of float, optional
        Per-class weights; the mean is then weighted as in ``torch.nn.CrossEntropyLoss``.
    ignore_index : int
        Target value left out (255: unlabeled).

    Examples
    --------
    >>> loss = MaskedCrossEntropy()
    >>> logits = torch.zeros(1, 3, 1, 2)
    >>> round(float(loss(logits, torch.tensor([[[0, 255]]]))), 4)  # log(3) on the labelled pixel
    1.0986
    >>> float(loss(logits, torch.tensor([[[255, 255]]])))
    0.0
    """

    def __init__(self, weight: Sequence[float] | None = None, ignore_index: int = UNLABELED) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.weight: Tensor | None
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of a batch (see the class docstring)."""
        flat, tgt = _flatten(logits, target)
        labelled = tgt != self.ignore_index
        if not bool(labelled.any()):
            return flat.sum() * 0.0
        flat, tgt = flat[labelled], tgt[labelled]
        per: Tensor = functional.cross_entropy(flat, tgt, weight=self.weight, reduction="none")
        if self.weight is None:
            return per.mean()
        return per.sum() / self.weight[tgt].sum()


class FocalLoss(nn.Module):
    """Categorical focal cross-entropy on logits (Keras ``CategoricalFocalCrossentropy``).

    Parameters
    ----------
    alpha : sequence of float
        Per-class weight alpha_c (default (0.05, 0.45, 0.60) for thick, thin, water).
    gamma : float
        Focusing exponent (2).
    ignore_index : int
        Target value left out of the mean (255).
    eps : float
        Probability clip, as Keras (1e-7).

    Examples
    --------
    >>> fl = FocalLoss(alpha=(1.0, 1.0, 1.0), gamma=0.0)  # alpha 1, gamma 0: plain cross-entropy
    >>> round(float(fl(torch.zeros(2, 3), torch.tensor([0, 2]))), 4)
    1.0986
    >>> p = 1 / 3  # uniform prediction, true class 2: 0.6 * (1 - p)**2 * -log(p)
    >>> round(float(FocalLoss()(torch.zeros(1, 3), torch.tensor([2]))), 5) == round(0.6 * (1 - p)**2 * math.log(3), 5)
    True
    """

    def __init__(
        self,
        alpha: Sequence[float] = FOCAL_ALPHA,
        gamma: float = FOCAL_GAMMA,
        ignore_index: int = UNLABELED,
        eps: float = FOCAL_EPS,
    ) -> None:
        super().__init__()
        if gamma < 0 or not 0 < eps < 0.5 or any(a < 0 for a in alpha):
            raise ValueError(f"FocalLoss: need gamma >= 0, 0 < eps < 0.5, alpha >= 0; got {gamma}, {eps}, {alpha}")
        self.gamma = float(gamma)
        self.ignore_index = ignore_index
        self.log_min = math.log(eps)
        self.log_max = math.log1p(-eps)
        self.alpha: Tensor
        self.register_buffer("alpha", torch.as_tensor(tuple(alpha), dtype=torch.float32))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of a batch (see the class docstring)."""
        flat, tgt = _flatten(logits, target)
        if flat.shape[1] != self.alpha.numel():
            raise ValueError(f"FocalLoss: {self.alpha.numel()} alpha values for {flat.shape[1]} classes")
        labelled = tgt != self.ignore_index
        if not bool(labelled.any()):
            return flat.sum() * 0.0
        flat, tgt = flat[labelled], tgt[labelled]
        log_p = functional.log_softmax(flat, dim=1).gather(1, tgt[:, None]).squeeze(1)
        log_p = log_p.clamp(self.log_min, self.log_max)
        focal = (1.0 - log_p.exp()).pow(self.gamma)
        per = -self.alpha.to(flat.dtype)[tgt] * focal * log_p
        return per.mean()

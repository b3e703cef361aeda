"""Training of the Sentinel-2 U-Net on (8-bit RGB, auto-label) scene pairs (METHOD.md §2.4).

:func:`train_unet` cuts the scenes into tiles (:class:`~seaice_tasks.train.dataset.TileDataset`,
tiles mostly unlabeled skipped), splits them 80/20 into training and validation tiles (seeded),
and trains :class:`~seaice_tasks.models.unet.UNet` with Adam and cross-entropy (unlabeled pixels
ignored) through the resumable :class:`~seaice_tasks.train.loop.Trainer`.  Save the result with
:func:`seaice_tasks.models.unet.save_unet`; segment scenes with
:func:`seaice_tasks.s2.unet.predict_scene` and score them with
:func:`seaice_tasks.s2.unet.evaluate_unet`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Subset

from seaice_tasks.constants import UNLABELED
from seaice_tasks.models.losses import MaskedCrossEntropy
from seaice_tasks.models.unet import N_CLASSES, UNet, UNetConfig, build_unet
from seaice_tasks.train.dataset import TileDataset
from seaice_tasks.train.loop import TrainConfig, Trainer, adam_factory, make_loader, seed_everything

__all__ = ["unet_train_config", "train_unet"]

log = logging.getLogger(__name__)

RGBImage = npt.NDArray[np.uint8]
LabelImage = npt.NDArray[np.uint8]


def unet_train_config(
    config: UNetConfig,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    *,
    resume: bool = True,
) -> TrainConfig:
    """The :class:`~seaice_tasks.train.loop.TrainConfig` of a U-Net run.

    Parameters
    ----------
    config : UNetConfig
        Epochs, batch size, learning rate, seed, workers, shuffling and device are taken from it.
    checkpoint_dir : str or os.PathLike, optional
        Checkpoint folder (None: no checkpoints).
    resume : bool
        Continue from the newest checkpoint in ``checkpoint_dir``.

    Examples
    --------
    >>> unet_train_config(UNetConfig(epochs=3), "ck").checkpoint_dir, unet_train_config(UNetConfig(epochs=3)).epochs
    ('ck', 3)
    """
    return TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                       num_workers=config.num_workers, shuffle=config.shuffle,
                       checkpoint_dir="" if checkpoint_dir is None else os.fspath(checkpoint_dir),
                       resume=resume, device=config.device)


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
        data) or another input view (:func:`seaice_tasks.s2.unet.unet_input_image`), ``labels``
        uint8 (rows, cols) class codes, 255 unlabeled (auto-labels).
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
    tcfg = unet_train_config(cfg, checkpoint_dir, resume=resume)
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

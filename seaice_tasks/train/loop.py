"""A generic, resumable training loop shared by the U-Net and the ICESat-2 LSTM/MLP models.

:class:`Trainer` runs epochs of (forward, loss, backward, step) over a ``DataLoader`` of
``(x, y)`` batches, validates, writes a checkpoint after every ``checkpoint_every`` epochs and, with
``resume=True``, continues from the newest checkpoint, so an Airflow retry picks up training where
the failed attempt stopped instead of starting over.

Checkpoints
    ``<checkpoint_dir>/epoch_NNNN.pt`` (``torch.save`` of a dict: format version, epoch, model and
    optimizer ``state_dict``, history, RNG states of torch/numpy/python(/CUDA), the config JSON,
    world size), written to a temporary file in the same folder, flushed, fsynced and renamed, so
    a crash never leaves a half-written checkpoint under the final name.  The newest
    ``keep_checkpoints`` are kept.  They are read back with ``weights_only=True``.
Determinism
    Before every epoch the torch, numpy and python RNGs are seeded from ``(seed, epoch, rank)``;
    shuffling (the ``RandomSampler`` draws its permutation from the torch RNG) and dropout of an
    epoch therefore do not depend on what ran before it, and a resumed run reproduces the weights
    of an uninterrupted one exactly (same device, ``num_workers=0`` or seeded workers).
    ``deterministic=True`` also asks torch for deterministic kernels while :meth:`Trainer.fit`
    runs (restored afterwards).
Distributed training (``train/dist.py``, ``train/launch.py``)
    ``rank``/``world_size`` come from the launcher (Horovod or torchrun).  Only rank 0 logs,
    writes checkpoints and calls the epoch callbacks; every rank resumes from the shared checkpoint
    folder.  :meth:`Trainer.reduce_gradients`, :meth:`Trainer.average_metric`,
    :meth:`Trainer.sum_tensor` and :meth:`Trainer.gather_object` are the hooks a distributed
    subclass overrides (no-ops for one process).  A ``DistributedSampler`` gets
    ``set_epoch(epoch)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from seaice_tasks.config import JsonConfig
from seaice_tasks.constants import UNLABELED
from seaice_tasks.errors import ConfigError

__all__ = [
    "TrainConfig",
    "Trainer",
    "EpochCallback",
    "OptimizerFactory",
    "adam_factory",
    "make_loader",
    "seed_everything",
    "epoch_seed",
    "checkpoint_path",
    "find_latest_checkpoint",
    "load_checkpoint",
    "CHECKPOINT_FORMAT",
]

log = logging.getLogger(__name__)

#: Version of the checkpoint dictionary layout.
CHECKPOINT_FORMAT: Final[int] = 1
_CHECKPOINT_RE: Final[re.Pattern[str]] = re.compile(r"^epoch_(\d{4,})\.pt$")
_MAIN_RANK: Final[int] = 0

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]
#: Builds the optimizer from the model parameters (e.g. ``adam_factory(1e-3)``).
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
#: Called on rank 0 after each epoch with (epoch, record of that epoch's metrics).
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclasses.dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Settings of one training run.

    Attributes
    ----------
    epochs : int
        Total epochs (a resumed run stops at the same total).
    batch_size : int
        Samples per batch and process (the global batch is ``batch_size * world_size``).
    lr : float
        Learning rate handed to the optimizer factory by the callers (Adam 1e-3 for the U-Net).
    seed : int
        Seed of the weights (set by the caller before building the model) and of every epoch.
    num_workers : int
        ``DataLoader`` worker processes (0: load in the training process).
    shuffle : bool
        Reshuffle the training set every epoch (the authors' U-Net used ``shuffle=False``).
    checkpoint_dir : str
        Folder of the checkpoints; empty: no checkpoints, no resume.
    checkpoint_every : int
        Write a checkpoint every this many epochs (and always after the last one).
    keep_checkpoints : int
        Newest checkpoints kept (>= 1).
    resume : bool
        Continue from the newest checkpoint in ``checkpoint_dir`` when there is one.
    deterministic : bool
        Use deterministic torch kernels while training.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
    log_every_steps : int
        Log the running loss every this many steps (0: epoch summaries only).

    Examples
    --------
    >>> cfg = TrainConfig(epochs=3, checkpoint_dir="/tmp/ck")
    >>> TrainConfig.from_json(cfg.to_json()) == cfg
    True
    """

    kind: ClassVar[str] = "train"
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    num_workers: int = 0
    shuffle: bool = True
    checkpoint_dir: str = ""
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    resume: bool = True
    deterministic: bool = True
    device: str = "cpu"
    log_every_steps: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.num_workers < 0:
            raise ConfigError("TrainConfig: need epochs >= 0, batch_size >= 1, num_workers >= 0")
        if not self.lr > 0:
            raise ConfigError(f"TrainConfig.lr: must be > 0, got {self.lr}")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1 or self.log_every_steps < 0:
            raise ConfigError("TrainConfig: need checkpoint_every >= 1, keep_checkpoints >= 1, log_every_steps >= 0")


def adam_factory(lr: float) -> OptimizerFactory:
    """Optimizer factory of Adam with Keras' other defaults (betas 0.9/0.999, eps 1e-7).

    Examples
    --------
    >>> adam_factory(1e-3)(nn.Linear(2, 1).parameters()).defaults["eps"]
    1e-07
    """

    def build(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=lr, eps=1e-7)

    return build


def make_loader(dataset: Dataset[Batch], config: TrainConfig, *, train: bool,
                sampler: torch.utils.data.Sampler[int] | None = None) -> DataLoader[Batch]:
    """``DataLoader`` with the config's batch size and workers (shuffled when training).

    With a ``sampler`` (e.g. ``DistributedSampler``) the sampler decides the order.
    """
    shuffle = config.shuffle and train and sampler is None
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=shuffle, sampler=sampler,
                      num_workers=config.num_workers, drop_last=False)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """Seed of one epoch of one process, a hash of (seed, epoch, rank).

    Examples
    --------
    >>> epoch_seed(0, 1) == epoch_seed(0, 1), epoch_seed(0, 1) == epoch_seed(0, 2)
    (True, False)
    """
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed the torch (CPU and CUDA), numpy and python global RNGs."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - DataLoader workers and user code use the global RNG
    random.seed(seed)


def _rng_state() -> dict[str, Any]:
    """RNG states in a ``weights_only``-loadable form (tensors, ints, floats, tuples)."""
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 - the global RNG is what is saved
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
        "numpy_pos": int(np_state["state"]["pos"]),
        "numpy_has_gauss": int(np_state["has_gauss"]),
        "numpy_gauss": float(np_state["gauss"]),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state({  # noqa: NPY002 - restoring the global RNG is the point
        "bit_generator": "MT19937",
        "state": {"key": state["numpy_key"].numpy().astype(np.uint32), "pos": state["numpy_pos"]},
        "has_gauss": state["numpy_has_gauss"],
        "gauss": state["numpy_gauss"],
    })
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(directory: str | os.PathLike[str], epoch: int) -> Path:
    """``<directory>/epoch_NNNN.pt``.

    Examples
    --------
    >>> checkpoint_path("ck", 7).as_posix()
    'ck/epoch_0007.pt'
    """
    return Path(directory) / f"epoch_{epoch:04d}.pt"


def _list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        m = _CHECKPOINT_RE.match(path.name)
        if m and path.is_file():
            found.append((int(m.group(1)), path))
    return sorted(found)


def find_latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """Newest complete checkpoint in ``directory`` (None when there is none)."""
    found = _list_checkpoints(Path(directory))
    return found[-1][1] if found else None


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :class:`Trainer` (``weights_only`` unpickling).

    Raises
    ------
    ValueError
        When the file is not a checkpoint of a known format.
    """
    data = torch.load(Path(path), map_location=device, weights_only=True)
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a seaice training checkpoint (format {CHECKPOINT_FORMAT})")
    return data


def _atomic_torch_save(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel``-style wrapper (``.module``), else the model."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic torch kernels inside the block; the previous settings are restored."""
    if not enabled:
        yield
        return
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic = previous[2]
        torch.backends.cudnn.benchmark = previous[3]


class Trainer:
    """Epoch loop with validation, rank-0 checkpoints and resume.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch ``x`` to logits (N, C, ...); moved to ``config.device``.
    loss_fn : callable
        ``loss_fn(logits, y) -> scalar tensor`` (e.g. :class:`~seaice_tasks.models.losses.MaskedCrossEntropy`).
    optimizer_factory : callable
        Builds the optimizer from ``model.parameters()`` (e.g. :func:`adam_factory`).
    train_loader : torch.utils.data.DataLoader
        Batches ``(x, y)``.
    val_loader : torch.utils.data.DataLoader, optional
        Validation batches; gives ``val_loss`` (and accuracy / mean IoU with ``n_classes``).
    config : TrainConfig, optional
    n_classes : int, optional
        Number of classes: validation then also reports ``val_accuracy`` and ``val_mean_iou``
        from the pixel confusion matrix (targets equal to ``ignore_index`` left out).
    ignore_index : int
        Target value without a label (255).
    callbacks : sequence of callable
        ``callback(epoch, record)`` on rank 0 after each epoch and its checkpoint (metrics
        logging, MLflow ...).
    rank, world_size : int
        This process and the number of processes (from the launcher; 0 and 1 alone).

    Attributes
    ----------
    history : list of dict
        One record per finished epoch: ``epoch``, ``train_loss``, ``train_s`` (the training
        pass), ``data_wait_s`` (of it, waiting for the next batch from the loader), ``epoch_s``
        (with validation) and the validation metrics; restored from the checkpoint on resume.
    start_epoch : int
        First epoch this run trains (1 for a fresh run).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        optimizer_factory: OptimizerFactory,
        train_loader: DataLoader[Batch],
        val_loader: DataLoader[Batch] | None = None,
        config: TrainConfig | None = None,
        *,
        n_classes: int | None = None,
        ignore_index: int = UNLABELED,
        callbacks: Sequence[EpochCallback] = (),
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"Trainer: need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
        self.config = config if config is not None else TrainConfig()
        self.device = torch.device(self.config.device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.optimizer = optimizer_factory(self.model.parameters())
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.n_classes = n_classes
        self.ignore_index = ignore_index
        self.callbacks = tuple(callbacks)
        self.rank = rank
        self.world_size = world_size
        self.history: list[dict[str, float]] = []
        self.start_epoch = 1
        self.checkpoint_dir = Path(self.config.checkpoint_dir) if self.config.checkpoint_dir else None

    # -- hooks of the distributed subclasses -------------------------------------------------------

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that logs and writes checkpoints)."""
        return self.rank == _MAIN_RANK

    def reduce_gradients(self) -> None:
        """Average the gradients over the processes before the optimizer step (no-op alone)."""

    def average_metric(self, name: str, value: float) -> float:
        """Mean of a scalar metric over the processes (identity alone)."""
        del name
        return value

    def sum_tensor(self, tensor: Tensor) -> Tensor:
        """Sum of a tensor over the processes (identity alone)."""
        return tensor

    def gather_object(self, obj: Any) -> list[Any]:
        """A picklable value of every process, in rank order (``[obj]`` alone)."""
        return [obj]

    # -- checkpoints -------------------------------------------------------------------------------

    def _log(self, msg: str, *args: object) -> None:
        if self.is_main:
            log.info(msg, *args)

    def save_checkpoint(self, epoch: int) -> Path | None:
        """Write the checkpoint of ``epoch`` (rank 0, when a folder is configured); prune old ones."""
        if self.checkpoint_dir is None or not self.is_main:
            return None
        path = checkpoint_path(self.checkpoint_dir, epoch)
        state = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch,
            "model": _unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": list(self.history),
            "rng": _rng_state(),
            "config": self.config.to_json(),
            "world_size": self.world_size,
        }
        _atomic_torch_save(state, path)
        for _, old in _list_checkpoints(self.checkpoint_dir)[: -self.config.keep_checkpoints]:
            old.unlink(missing_ok=True)
        self._log("checkpoint %s written", path)
        return path

    def restore(self, path: str | os.PathLike[str]) -> int:
        """Load model, optimizer, history and RNG states from a checkpoint; return its epoch."""
        data = load_checkpoint(path, self.device)
        _unwrap(self.model).load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.history = [dict(r) for r in data["history"]]
        _set_rng_state(data["rng"])
        if data["world_size"] != self.world_size:
            log.warning("%s was written by %d processes, resuming with %d", path, data["world_size"], self.world_size)
        epoch = int(data["epoch"])
        self.start_epoch = epoch + 1
        return epoch

    def _maybe_resume(self) -> None:
        """Resume from the newest checkpoint when configured; every process must start at the same epoch."""
        if self.checkpoint_dir is not None and self.config.resume:
            latest = find_latest_checkpoint(self.checkpoint_dir)
            if latest is None:
                self._log("no checkpoint in %s: training from scratch", self.checkpoint_dir)
            else:
                epoch = self.restore(latest)
                self._log("resumed from %s (epoch %d of %d done)", latest, epoch, self.config.epochs)
        starts = self.gather_object(self.start_epoch)
        if len(set(starts)) != 1:
            raise RuntimeError(f"the {self.world_size} processes disagree on the epoch to resume from: {starts} "
                               "(is the checkpoint folder shared by every rank?)")

    # -- the loop ----------------------------------------------------------------------------------

    def fit(self) -> list[dict[str, float]]:
        """Train until ``config.epochs`` (resuming first when configured); return the history."""
        self._maybe_resume()
        cfg = self.config
        if self.start_epoch > cfg.epochs:
            self._log("nothing to do: %d of %d epochs already trained", self.start_epoch - 1, cfg.epochs)
            return self.history
        with _deterministic(cfg.deterministic):
            for epoch in range(self.start_epoch, cfg.epochs + 1):
                record = self._run_epoch(epoch)
                self.history.append(record)
                if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
                    self.save_checkpoint(epoch)
                self._log("epoch %d/%d %s", epoch, cfg.epochs,
                          " ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch"))
                if self.is_main:
                    for callback in self.callbacks:
                        callback(epoch, dict(record))
        return self.history

    def _run_epoch(self, epoch: int) -> dict[str, float]:
        started = time.perf_counter()
        seed_everything(epoch_seed(self.config.seed, epoch, self.rank))
        sampler = getattr(self.train_loader, "sampler", None)
        set_epoch = getattr(sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
        self.model.train()
        total, count = 0.0, 0
        data_s = 0.0  # time spent waiting for the next batch (the papers' input bottleneck)
        batches = iter(self.train_loader)
        step = 0
        while True:
            waited = time.perf_counter()
            try:
                x, y = next(batches)
            except StopIteration:
                break
            step += 1
            x, y = x.to(self.device), y.to(self.device)
            data_s += time.perf_counter() - waited
            self.optimizer.zero_grad()  # set_to_none (torch >= 2 default; Horovod's wrapper takes no argument)
            loss = self.loss_fn(self.model(x), y)
            loss.backward()  # type: ignore[no-untyped-call]
            self.reduce_gradients()
            self.optimizer.step()
            n = int(x.shape[0])
            total += float(loss.detach()) * n
            count += n
            if self.config.log_every_steps and step % self.config.log_every_steps == 0:
                self._log("epoch %d step %d loss %.4f", epoch, step, total / count)
        train_s = time.perf_counter() - started
        record: dict[str, float] = {
            "epoch": float(epoch),
            "train_loss": self.average_metric("train_loss", total / count if count else float("nan")),
            "train_s": train_s,
            "data_wait_s": data_s,
        }
        if self.val_loader is not None:
            record.update(self.validate())
        record["epoch_s"] = time.perf_counter() - started
        return record

    @torch.no_grad()
    def validate(self, loader: DataLoader[Batch] | None = None) -> dict[str, float]:
        """Mean loss (and accuracy / mean IoU with ``n_classes``) over a loader (default: validation)."""
        source = loader if loader is not None else self.val_loader
        if source is None:
            return {}
        self.model.eval()
        total, count = 0.0, 0
        confusion = None
        if self.n_classes is not None:
            confusion = torch.zeros(self.n_classes * self.n_classes, dtype=torch.int64, device=self.device)
        for x, y in source:
            x, y = x.to(self.device), y.to(self.device)
            logits: Tensor = self.model(x)
            n = int(x.shape[0])
            total += float(self.loss_fn(logits, y)) * n
            count += n
            if confusion is not None and self.n_classes is not None:
                pred = logits.argmax(dim=1)
                keep = y != self.ignore_index
                confusion += torch.bincount(y[keep] * self.n_classes + pred[keep],
                                            minlength=self.n_classes * self.n_classes)
        out = {"val_loss": self.average_metric("val_loss", total / count if count else float("nan"))}
        if confusion is not None and self.n_classes is not None:
            cm = self.sum_tensor(confusion).reshape(self.n_classes, self.n_classes).double()
            tp = cm.diagonal()
            n_pixels = float(cm.sum())
            union = cm.sum(0) + cm.sum(1) - tp
            present = union > 0
            out["val_accuracy"] = float(tp.sum()) / n_pixels if n_pixels else float("nan")
            out["val_mean_iou"] = float((tp[present] / union[present]).mean()) if bool(present.any()) else float("nan")
        return out

"""Training of the 2 m segment classifiers (LSTM presets, MLP) on a training set of the lake.

One function, :func:`train_segment_model`, runs in every process of a run, whatever started it
(:mod:`seaice_tasks.train.launch`: one process, ``horovodrun`` or ``torchrun``; the back-end
comes from :mod:`seaice_tasks.train.dist`):

1. read the training-set partition (``training_set/name=N/version=V``: segments, normalisation
   of the training split, report) and gather the 5-segment windows of its train / validation /
   test splits, z-scored with the training split's statistics (METHOD.md §7);
2. build the preset's model from the run's seed (identical on every rank, then broadcast);
3. train with the categorical focal loss (alpha 0.05/0.45/0.60, gamma 2) and Adam through the
   resumable :class:`~seaice_tasks.train.loop.Trainer` (checkpoint every epoch under
   ``<lake>/_training/<name>/<version>/checkpoints``; a retry resumes there), the training data
   sharded per rank by a ``DistributedSampler`` reshuffled per epoch, validation sharded too;
4. on rank 0: score the held-out test split (and the validation split) against the training
   set's labels, write the model folder (``model.safetensors`` + ``card.json`` with config,
   features, normalisation, training-set version, metrics, confusion matrices, code version,
   back-end, world size, epoch times) and commit it as ``models/name=N/version=V``.

The model version is derived from the run's config, the training-set version, the back-end and
the world size (:func:`model_version`): the same run gives the same version, a retry of a
finished run finds its model committed and stops.  Run it as ``python -m
seaice_tasks.train.segments --lake L --config JSON --backend B``; rank 0 prints the summary on a
``SEAICE_RESULT`` line.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from seaice_tasks.config import JsonConfig
from seaice_tasks.errors import ConfigError, InputError, SeaIceError
from seaice_tasks.metrics import CLASS_NAMES, classification_report
from seaice_tasks.models.lake import commit_model, model_key
from seaice_tasks.models.losses import FOCAL_ALPHA, FOCAL_GAMMA, FocalLoss
from seaice_tasks.models.registry import ArchitectureSpec, save_model
from seaice_tasks.models.sequence import (
    N_CLASSES,
    SequenceModelConfig,
    architecture_kwargs,
    build_model,
    predict_proba,
    preset,
)
from seaice_tasks.products import NORMALISATION_FILE, TRAINING_REPORT_FILE, TRAINING_SEGMENTS_FILE, TRAINING_SET
from seaice_tasks.storage import MANIFEST_NAME, Lake, PartitionKey
from seaice_tasks.train.dist import BACKENDS, DistContext, init_backend, shutdown_backend, trainer_class
from seaice_tasks.train.loop import TrainConfig, adam_factory
from seaice_tasks.train.windows import HALF_WINDOW, WindowArrays, feature_statistics, window_arrays

__all__ = [
    "RESULT_MARKER",
    "SegmentTrainConfig",
    "LoadedTrainingSet",
    "load_training_set",
    "check_training_inputs",
    "model_version",
    "checkpoint_dir",
    "train_segment_model",
    "confusion_png",
    "state_sha256",
    "reevaluate",
    "main",
]

log = logging.getLogger(__name__)

#: Prefix of the summary line rank 0 prints (same marker as the Spark jobs).
RESULT_MARKER: Final[str] = "SEAICE_RESULT "
#: Splits of a training set (codes 0, 1, 2 of its ``split`` column).
SPLITS: Final[tuple[str, ...]] = ("train", "validation", "test")
_VERSION_HEX: Final[int] = 16
#: Devices a run may name: the CPU, every rank's local GPU, or GPU N.
_DEVICE_RE: Final[re.Pattern[str]] = re.compile(r"^(cpu|cuda|cuda:[0-9]+)$")
_MAIN_RANK: Final[int] = 0


@dataclasses.dataclass(frozen=True)
class SegmentTrainConfig(JsonConfig):
    """One training run of a segment classifier.

    Attributes
    ----------
    name : str
        Model name in the registry (``models/name=<name>``).
    preset : str
        ``notebook``, ``paper`` or ``mlp`` (:data:`seaice_tasks.models.sequence.PRESETS`).
    training_set : str
        Training-set name.
    training_set_version : str
        Its version; empty: the newest committed one (by commit time).
    features : tuple of str
        Feature columns in model order; empty: the training set's own list.
    epochs, batch_size : int
        0: the preset's (50 / 20 epochs, batch 32 per process); the CLI's flags take >= 1.
    lr : float
        0: the preset's Adam learning rate; the CLI's ``--lr`` takes > 0.
    scale_lr : bool
        Multiply the learning rate by the world size (Horovod's recipe; METHOD.md §7 calls it
        UNCERTAIN: off by default, so 1 and N processes train with the same step size on an
        N times larger global batch).
    focal_alpha : tuple of float
        Focal-loss class weights (thick, thin, water).
    focal_gamma : float
        Focal-loss exponent.
    seed : int
        Seed of the weights, the shuffling and dropout.
    device : str
        ``cpu``, ``cuda`` (each rank takes the GPU of its local rank) or ``cuda:N`` (GPU N, plus
        the local rank with several processes); a GPU this torch cannot use is refused.
    num_workers : int
        DataLoader worker processes per rank (0: in the training process).
    """

    kind: ClassVar[str] = "segment_train"
    name: str = "seaice-is2-lstm"
    preset: str = "notebook"
    training_set: str = "seaice"
    training_set_version: str = ""
    features: tuple[str, ...] = ()
    epochs: int = 0
    batch_size: int = 0
    lr: float = 0.0
    scale_lr: bool = False
    focal_alpha: tuple[float, float, float] = FOCAL_ALPHA
    focal_gamma: float = FOCAL_GAMMA
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0

    def __post_init__(self) -> None:
        preset(self.preset)  # raises ConfigError on an unknown preset
        if self.epochs < 0 or self.batch_size < 0 or self.lr < 0 or self.num_workers < 0:
            raise ConfigError("SegmentTrainConfig: epochs, batch_size, lr and num_workers must be >= 0")
        if len(self.focal_alpha) != N_CLASSES or any(a < 0 for a in self.focal_alpha) or self.focal_gamma < 0:
            raise ConfigError("SegmentTrainConfig: three focal_alpha >= 0 and focal_gamma >= 0 required")
        if not _DEVICE_RE.match(self.device):
            raise ConfigError(f"SegmentTrainConfig.device: {self.device!r} is not a device; one of cpu, cuda, cuda:N")

    def model_config(self) -> SequenceModelConfig:
        """The preset with this run's epochs, batch size and learning rate where given."""
        overrides: dict[str, Any] = {}
        if self.epochs:
            overrides["epochs"] = self.epochs
        if self.batch_size:
            overrides["batch_size"] = self.batch_size
        if self.lr:
            overrides["lr"] = self.lr
        return preset(self.preset, **overrides)


@dataclasses.dataclass(frozen=True, eq=False)
class LoadedTrainingSet:
    """A training set read from the lake, windows gathered per split."""

    key: PartitionKey
    features: tuple[str, ...]
    normalisation: dict[str, Any]
    report: dict[str, Any]
    half: int
    splits: Mapping[str, WindowArrays]


def _newest_version(lake: Lake, name: str) -> PartitionKey:
    keys = [k for k in lake.partitions(TRAINING_SET.name) if k.name == name]
    if not keys:
        raise InputError(lake.url(TRAINING_SET.name, f"name={name}"), "no training set of that name is committed")
    # manifests carry no wall-clock time (re-runs are byte-identical): the store's modification
    # time of each manifest says which version was committed last
    stamped = [(lake.fs.modified(lake.path(k.relpath, MANIFEST_NAME)).timestamp(), k.relpath, k) for k in keys]
    return max(stamped)[2]


def _training_set_key(lake: Lake, name: str, version: str) -> PartitionKey:
    """The committed training set ``name`` (``version``, or the newest); InputError naming it otherwise."""
    key = TRAINING_SET.key(name=name, version=version) if version else _newest_version(lake, name)
    if lake.manifest(key) is None:
        raise InputError(lake.partition_url(key), "training set not committed")
    return key


def _chosen_features(lake: Lake, key: PartitionKey, normalisation: Mapping[str, Any],
                     features: Sequence[str]) -> tuple[str, ...]:
    """``features`` (default: all of the training set's), each checked to be in it."""
    available = tuple(str(f) for f in normalisation["features"])
    chosen = tuple(features) or available
    missing = [f for f in chosen if f not in available]
    if missing:
        raise InputError(lake.partition_url(key), f"features {missing} are not in the training set ({list(available)})")
    return chosen


def check_training_inputs(lake: Lake, config: SegmentTrainConfig) -> PartitionKey:
    """The training set a run would read, checked (committed, features present) without loading it.

    A launcher calls this before it starts processes, so bad input is one line, not a log per rank.

    Raises
    ------
    InputError
        When the training set is not committed, lacks a requested feature or has a split
        without windows.
    """
    key = _training_set_key(lake, config.training_set, config.training_set_version)
    _chosen_features(lake, key, json.loads(lake.open_file(key, NORMALISATION_FILE)), config.features)
    windows = json.loads(lake.open_file(key, TRAINING_REPORT_FILE)).get("windows", {})
    empty = [s for s in SPLITS if isinstance(windows, dict) and windows.get(s) == 0]
    if empty:
        raise InputError(lake.partition_url(key), f"the {' and '.join(empty)} split(s) hold no window ({windows}): "
                                                  "build a training set from more labelled data")
    return key


def load_training_set(lake: Lake, name: str, version: str = "", features: Sequence[str] = ()) -> LoadedTrainingSet:
    """Read a committed training set and gather its windows (z-scored with its training statistics).

    Raises
    ------
    InputError
        When the training set is not committed, a requested feature is not in it, or one of its
        splits holds no window (a set committed before that was refused).
    """
    key = _training_set_key(lake, name, version)
    _, files = lake.read_partition(key, [TRAINING_SEGMENTS_FILE, NORMALISATION_FILE, TRAINING_REPORT_FILE])
    table = pq.read_table(io.BytesIO(files[TRAINING_SEGMENTS_FILE]))
    normalisation = json.loads(files[NORMALISATION_FILE])
    report = json.loads(files[TRAINING_REPORT_FILE])
    chosen = _chosen_features(lake, key, normalisation, features)
    stats = feature_statistics(normalisation)
    half = int(report.get("config", {}).get("half_window", HALF_WINDOW))
    splits = {s: window_arrays(table, chosen, split=i, normalisation=stats, half=half) for i, s in enumerate(SPLITS)}
    empty = [s for s in SPLITS if len(splits[s]) == 0]
    if empty:  # a model without held-out windows can be neither scored nor compared for promotion
        raise InputError(lake.partition_url(key), f"the {' and '.join(empty)} split(s) hold no window "
                                                  f"({', '.join(f'{s} {len(splits[s])}' for s in SPLITS)}): "
                                                  "build a training set from more labelled data")
    return LoadedTrainingSet(key, chosen, normalisation, report, half, splits)


def model_version(config: SegmentTrainConfig, training_set: PartitionKey, backend: str, world_size: int) -> str:
    """Content-derived model version: sha256 of config, training-set key, back-end and world size.

    Examples
    --------
    >>> k = TRAINING_SET.key(name="seaice", version="abc")
    >>> model_version(SegmentTrainConfig(), k, "single", 1) == model_version(SegmentTrainConfig(), k, "single", 1)
    True
    >>> model_version(SegmentTrainConfig(), k, "single", 1) == model_version(SegmentTrainConfig(seed=1), k, "single", 1)
    False
    """
    text = json.dumps({"config": config.to_dict(), "training_set": training_set.relpath, "backend": backend,
                       "world_size": world_size}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:_VERSION_HEX]


def checkpoint_dir(lake: Lake, name: str, version: str) -> Path:
    """Checkpoint folder of a run: ``<lake>/_training/<name>/<version>/checkpoints`` (local lakes).

    A lake on object storage keeps the checkpoints under ``$SEAICE_SCRATCH`` (default the
    system's temporary folder) instead: every rank of a run must see the same folder.
    """
    if lake.protocol == "file":
        return Path(lake.path("_training", name, version, "checkpoints"))
    scratch = os.environ.get("SEAICE_SCRATCH") or tempfile.gettempdir()
    return Path(scratch) / "seaice_training" / name / version / "checkpoints"


def _loader(arrays: WindowArrays, batch_size: int, ctx: DistContext, *, train: bool, seed: int,
            num_workers: int) -> DataLoader[tuple[torch.Tensor, ...]]:
    dataset = TensorDataset(torch.from_numpy(arrays.x), torch.from_numpy(arrays.y))
    sampler: DistributedSampler[Any] | None = None
    if ctx.world_size > 1:
        sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=train, seed=seed,
                                     drop_last=False)
    return DataLoader(dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
                      num_workers=num_workers, drop_last=False)


def confusion_png(reports: Mapping[str, Mapping[str, Any]], title: str, rows: str = "label") -> bytes:
    """Row-normalised confusion matrices side by side (one panel per report), as PNG bytes.

    ``rows`` names what the rows are (``"label"``: the training set's labels; ``"truth"``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(reports), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    for ax, (label, rep) in zip(axes[0], reports.items(), strict=False):
        cm = np.asarray(rep["confusion_normalised"], dtype=np.float64)
        ax.imshow(cm, vmin=0.0, vmax=1.0, cmap="Blues")
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center",
                        color="white" if cm[i, j] > 0.5 else "black", fontsize=9)
        ax.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES)
        ax.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
        ax.set_xlabel("predicted")
        ax.set_ylabel(rows)
        acc = rep.get("accuracy")
        ax.set_title(f"{label}: acc {acc:.3f} (n {rep['n']:,})" if acc is not None else label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def state_sha256(model: torch.nn.Module) -> str:
    """sha256 of a model's parameters and buffers (names, dtypes, shapes and bytes, in name order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def _evaluate(model: torch.nn.Module, arrays: WindowArrays) -> dict[str, Any]:
    if len(arrays) == 0:
        return {"n": 0}
    pred = predict_proba(model, arrays.x).argmax(axis=1)
    return classification_report(arrays.y, pred)


def train_segment_model(lake: Lake, config: SegmentTrainConfig, ctx: DistContext | None = None) -> dict[str, Any]:
    """Train, evaluate and (rank 0) commit one segment classifier; see the module docstring.

    Parameters
    ----------
    lake : Lake
        Holds the training set; receives the model.
    config : SegmentTrainConfig
        The run.
    ctx : DistContext, optional
        This process in the run (default: one process).

    Returns
    -------
    dict
        On every rank: ``model`` (relpath), ``version``, ``rank``, ``world_size``, ``backend``,
        ``training_set``, ``committed`` (False when the version was committed already: nothing
        trained), ``epochs``, ``history``, ``resumed_from`` (epochs found in a checkpoint) and
        ``rank_weights_sha256`` (every rank's final weights); on rank 0 of a trained run also
        ``metrics`` (test and validation reports) and ``run`` (back-end, epoch times, data wait).
    """
    ctx = ctx if ctx is not None else init_backend("single", config.device)
    ts = load_training_set(lake, config.training_set, config.training_set_version, config.features)
    version = model_version(config, ts.key, ctx.backend, ctx.world_size)
    key = model_key(config.name, version)
    base = {"model": key.relpath, "version": version, "rank": ctx.rank, "world_size": ctx.world_size,
            "backend": ctx.backend, "training_set": ts.key.relpath}
    if lake.manifest(key) is not None:
        log.info("model %s already committed: nothing to train", key.relpath)
        return {**base, "committed": False, "epochs": 0, "history": []}
    mcfg = config.model_config()
    lr = mcfg.lr * (ctx.world_size if config.scale_lr else 1)
    ckpt = checkpoint_dir(lake, config.name, version)
    tcfg = TrainConfig(epochs=mcfg.epochs, batch_size=mcfg.batch_size, lr=lr, seed=config.seed,
                       num_workers=config.num_workers, shuffle=True, checkpoint_dir=str(ckpt),
                       keep_checkpoints=2, resume=True, deterministic=True, device=ctx.device)
    train_loader = _loader(ts.splits["train"], mcfg.batch_size, ctx, train=True, seed=config.seed,
                           num_workers=config.num_workers)
    val_loader = (_loader(ts.splits["validation"], mcfg.batch_size, ctx, train=False, seed=config.seed,
                          num_workers=config.num_workers) if len(ts.splits["validation"]) else None)
    n_features = len(ts.features)
    window = 2 * ts.half + 1
    model = build_model(mcfg, n_features, window, seed=config.seed)
    loss = FocalLoss(alpha=config.focal_alpha, gamma=config.focal_gamma)
    cls = trainer_class(ctx.backend)
    trainer = cls(model, loss, adam_factory(lr), train_loader, val_loader, config=tcfg, n_classes=N_CLASSES,
                  rank=ctx.rank, world_size=ctx.world_size)
    log.info("training %s (%s, %d features, %d/%d/%d windows) on %s x %d, %d epochs, lr %.3g", key.relpath,
             mcfg.preset, n_features, *(len(ts.splits[s]) for s in SPLITS), ctx.backend, ctx.world_size,
             mcfg.epochs, lr)
    started = time.perf_counter()
    history = trainer.fit()
    train_s = time.perf_counter() - started
    digests = trainer.gather_object(state_sha256(model))
    out: dict[str, Any] = {**base, "epochs": mcfg.epochs, "history": history, "resumed_from": trainer.start_epoch - 1,
                           "rank_weights_sha256": digests}
    if ctx.rank != _MAIN_RANK:
        return out
    model.eval()
    metrics = {"test": _evaluate(model, ts.splits["test"]), "validation": _evaluate(model, ts.splits["validation"])}
    epoch_s = [float(r["epoch_s"]) for r in history]
    pass_s = [float(r.get("train_s", r["epoch_s"])) for r in history]
    wait_s = [float(r.get("data_wait_s", 0.0)) for r in history]
    run = {"backend": ctx.backend, "world_size": ctx.world_size, "device": ctx.device, "lr_effective": lr,
           "epoch_s": epoch_s, "train_pass_s": pass_s, "data_wait_s": wait_s,
           "data_wait_share": sum(wait_s) / sum(pass_s) if sum(pass_s) > 0 else None,
           "train_wall_s": train_s, "epochs": len(history),
           "train_windows": len(ts.splits["train"]),
           "samples_per_s": (len(ts.splits["train"]) * len(epoch_s) / sum(epoch_s)) if epoch_s else None}
    arch_name, kwargs = architecture_kwargs(mcfg, n_features, window)
    with tempfile.TemporaryDirectory(prefix="model_") as tmp:
        save_model(
            model, tmp, architecture=ArchitectureSpec(arch_name, kwargs, {"preset": mcfg.preset, "reference":
                                                                        "METHOD.md §6"}),
            config=config, name=config.name,
            metrics={**metrics, "history": history, "run": run, "against": "training-set labels"},
            training_data={"partition": ts.key.relpath, "name": ts.key.name, "version": ts.key.version,
                           "windows": {s: len(ts.splits[s]) for s in SPLITS},
                           "class_fractions": ts.report.get("class_fractions", {}),
                           "split_method": ts.report.get("split_method")},
            classes=dict(enumerate(CLASS_NAMES)),
            inputs={"features": list(ts.features), "half_window": ts.half, "window": window, "layout": "(N, T, F)",
                    "normalisation": {f: feature_statistics(ts.normalisation)[f] for f in ts.features},
                    "model_config": mcfg.to_dict()},
            output="logits (N, 3): thick, thin, water",
        )
        png = confusion_png({"test": metrics["test"], "validation": metrics["validation"]},
                            f"{config.name} {version} ({mcfg.preset}) vs training-set labels")
        commit_model(lake, tmp, version, png)
    out.update({"committed": True, "metrics": metrics, "run": run})
    log.info("model %s: test accuracy %s, macro F1 %s", key.relpath, metrics["test"].get("accuracy"),
             metrics["test"].get("macro_f1"))
    return out


def reevaluate(lake: Lake, name: str, version: str) -> dict[str, Any]:
    """Load a committed model from the lake and score its held-out split again.

    Returns
    -------
    dict
        ``version``, ``test`` (the report) and ``matches_card`` (True).

    Raises
    ------
    SeaIceError
        When the reloaded model's held-out accuracy differs from its card's (the stored weights,
        features or normalisation do not reproduce the training run).
    """
    from seaice_tasks.models.lake import load_lake_model

    loaded = load_lake_model(lake, name, version)
    card = loaded.card
    data = card["training_data"]
    ts = load_training_set(lake, str(data["name"]), str(data["version"]), tuple(card["input"]["features"]))
    report = _evaluate(loaded.model, ts.splits["test"])
    expected = card.get("metrics", {}).get("test", {}).get("accuracy")
    if expected is None or report.get("accuracy") is None or abs(float(report["accuracy"]) - float(expected)) > 1e-9:
        raise SeaIceError(f"model {name} {version}: reloaded held-out accuracy {report.get('accuracy')} differs "
                          f"from the card's {expected}")
    return {"version": version, "test": report, "matches_card": True}


def build_parser() -> argparse.ArgumentParser:
    """Arguments of one training process."""
    p = argparse.ArgumentParser(description="Train a 2 m segment classifier (one process of a run).")
    p.add_argument("--lake", required=True, help="lake root (path or URL)")
    p.add_argument("--config", default="{}", help="SegmentTrainConfig as JSON")
    p.add_argument("--backend", choices=BACKENDS, default="single", help="how the processes were started")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of one training process; rank 0 prints ``SEAICE_RESULT {json}``."""
    from seaice_tasks.storage import lake_from_env

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        config = SegmentTrainConfig.from_json(args.config)
        ctx = init_backend(args.backend, config.device)
    except SeaIceError as exc:
        sys.stderr.write(f"seaice train: {exc}\n")
        return 2
    try:
        result = train_segment_model(lake_from_env(args.lake), config, ctx)
    except (InputError, ConfigError) as exc:
        sys.stderr.write(f"seaice train: {exc}\n")
        return 2
    finally:
        shutdown_backend(ctx)
    if ctx.rank == _MAIN_RANK:
        print(RESULT_MARKER + json.dumps({k: v for k, v in result.items() if k != "history"}, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

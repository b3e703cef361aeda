"""U-Net training for real: the resumable Trainer, a tiny run on simulated scenes, the experiment script."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from seaice_tasks.constants import UNLABELED
from seaice_tasks.io.s2 import open_s2_scene, read_reflectance, rgb_composite
from seaice_tasks.models.losses import MaskedCrossEntropy
from seaice_tasks.models.unet import UNet, UNetConfig, load_unet
from seaice_tasks.products import S2_UNET_LABELS
from seaice_tasks.s2.color_labels import color_labels
from seaice_tasks.s2.unet import evaluate_unet
from seaice_tasks.sim.geometry import SimConfig, plan_day
from seaice_tasks.sim.s2 import TRUTH_CLASSES_NAME, write_s2_scene
from seaice_tasks.sim.world import TruthWorld, WorldConfig
from seaice_tasks.storage import Lake
from seaice_tasks.train.loop import TrainConfig, Trainer, adam_factory, find_latest_checkpoint
from seaice_tasks.train.unet import train_unet

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT_SCRIPT = REPO / "experiments" / "unet_experiment.py"
#: A tiny network for fast CPU tests (3 levels: inputs must be multiples of 4 px).
TINY = {"base_filters": 2, "levels": 3, "dropouts": (0.1, 0.1, 0.2), "decoder_dropouts": (0.2, 0.1)}
#: The tiny real run: two 5.12 km (512 px) clear scenes of a lead-rich world, width 4, 64 px tiles.
SIM_SCENE_KM = 5.12
SIM_WORLD = WorldConfig(water_fraction=0.2, thin_fraction=0.25)
SIM_UNET = UNetConfig(base_filters=4, tile_px=64, epochs=10, batch_size=8, lr=3e-3, seed=0)
#: The tiny run must beat a constant prediction by this much (pixel accuracy vs truth).
MIN_GAIN_OVER_MAJORITY = 0.15
MIN_MEAN_IOU = 0.5


# -- trainer: checkpoint and resume ------------------------------------------------------------------


class CrashingLoss(nn.Module):
    """Cross-entropy that raises on its ``crash_at``-th call (a worker dying mid-epoch)."""

    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__()
        self.inner = MaskedCrossEntropy()
        self.crash_at = crash_at
        self.calls = 0

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        self.calls += 1
        if self.crash_at is not None and self.calls == self.crash_at:
            raise RuntimeError("simulated crash")
        out: Tensor = self.inner(logits, target)
        return out


def _tiny_loaders() -> tuple[DataLoader[Any], DataLoader[Any]]:
    g = torch.Generator().manual_seed(5)
    x = torch.rand(16, 1, 16, 16, generator=g)
    y = (x[:, 0] > 0.5).long() + (x[:, 0] > 0.8).long()
    y[:, :2] = UNLABELED
    train = DataLoader(TensorDataset(x[:12], y[:12]), batch_size=4, shuffle=True)
    val = DataLoader(TensorDataset(x[12:], y[12:]), batch_size=4)
    return train, val


def _run(ckpt: Path, loss: nn.Module, model_seed: int = 0) -> tuple[Trainer, list[dict[str, float]]]:
    torch.manual_seed(model_seed)
    model = UNet(**TINY)  # type: ignore[arg-type]
    train, val = _tiny_loaders()
    cfg = TrainConfig(epochs=3, batch_size=4, seed=7, checkpoint_dir=str(ckpt), keep_checkpoints=2)
    trainer = Trainer(model, loss, adam_factory(1e-2), train, val, cfg, n_classes=3)
    return trainer, trainer.fit()


def _weights(trainer: Trainer) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_checkpoint_resume_reproduces_uninterrupted_run(tmp_path: Path) -> None:
    straight, history = _run(tmp_path / "a", CrashingLoss())
    assert [r["epoch"] for r in history] == [1.0, 2.0, 3.0]
    assert {"train_loss", "val_loss", "val_accuracy", "val_mean_iou", "epoch_s"} <= set(history[-1])
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["epoch_0002.pt", "epoch_0003.pt"]

    # 3 train steps + 1 validation batch per epoch: call 6 is the 2nd training step of epoch 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path / "b", CrashingLoss(crash_at=6))
    latest = find_latest_checkpoint(tmp_path / "b")
    assert latest is not None and latest.name == "epoch_0001.pt"
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["epoch_0001.pt"], "no temp file left behind"

    # the Airflow retry: a fresh process state (other init seed) resumes at epoch 2
    resumed, resumed_history = _run(tmp_path / "b", CrashingLoss(), model_seed=99)
    assert resumed.start_epoch == 2
    assert [r["epoch"] for r in resumed_history] == [1.0, 2.0, 3.0]
    for k in ("train_loss", "val_loss", "val_accuracy"):
        assert [r[k] for r in resumed_history] == [r[k] for r in history]
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # a retry after the run finished trains nothing and keeps the weights
    again, again_history = _run(tmp_path / "b", CrashingLoss(crash_at=1), model_seed=5)
    assert again.start_epoch == 4 and len(again_history) == 3
    assert all(torch.equal(a[k], v) for k, v in _weights(again).items())


# -- a tiny real run on simulated scenes -----------------------------------------------------------


@pytest.fixture(scope="module")
def sim_scenes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, Any, Any, Any]]:
    """(rgb, valid, auto-labels, truth) of two clear simulated scenes."""
    tmp = tmp_path_factory.mktemp("unet_sim")
    config = SimConfig(scene_km=SIM_SCENE_KM, granules=2, world=SIM_WORLD)
    world = TruthWorld(config.world)
    out = []
    for fp in plan_day(config).scenes:
        scene_dir = write_s2_scene(world, fp, config, tmp / "s2", tmp / "truth", clouds=False)
        rgb, valid = rgb_composite(read_reflectance(open_s2_scene(scene_dir)))
        with rasterio.open(tmp / "truth" / fp.scene / TRUTH_CLASSES_NAME) as ds:
            truth = np.asarray(ds.read(1))
        out.append((rgb, valid, color_labels(rgb, valid), truth))
    return out


@pytest.mark.usefixtures("one_thread")
def test_tiny_unet_learns_from_auto_labels(sim_scenes: list[tuple[Any, Any, Any, Any]], tmp_path: Path) -> None:
    model, history = train_unet([(rgb, auto) for rgb, _, auto, _ in sim_scenes], SIM_UNET, tmp_path / "ck")
    assert len(history) == SIM_UNET.epochs
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    result = evaluate_unet(model, [(rgb, valid, truth) for rgb, valid, _, truth in sim_scenes], SIM_UNET)
    log.info("tiny U-Net vs truth: accuracy %.4f (majority %.4f), mean IoU %.4f, IoU %s",
             result["pixel_accuracy"], result["majority_rate"], result["mean_iou"], result["per_class_iou"])
    assert result["pixel_accuracy"] >= result["majority_rate"] + MIN_GAIN_OVER_MAJORITY
    assert result["mean_iou"] >= MIN_MEAN_IOU
    assert np.asarray(result["confusion_matrix"]).sum() == result["n_pixels"] > 0


# -- the four-set experiment (experiments/unet_experiment.py) ---------------------------------------


def _experiment_module() -> ModuleType:
    """Import the experiment script by path (it lives outside the package)."""
    name = "unet_experiment"
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, EXPERIMENT_SCRIPT)
    assert spec is not None and spec.loader is not None, EXPERIMENT_SCRIPT
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and get_type_hints look the module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("one_thread")
def test_unet_experiment_quick_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unet_experiment = _experiment_module()
    assert unet_experiment.main(["--out", str(tmp_path), "--quick"]) == 0
    metrics = json.loads((tmp_path / unet_experiment.METRICS_FILE).read_text())
    assert set(metrics["sets"]) == {"cloudy_original", "cloudy_filtered", "clear_original", "clear_filtered"}
    for result in metrics["sets"].values():
        for method in ("unet", "color_labels"):
            assert 0.0 <= result[method]["pixel_accuracy"] <= 1.0
            assert set(result[method]["per_class_iou"]) == {"0", "1", "2"}
    assert metrics["training"]["epochs"] == 1 and metrics["training"]["views"] == ["original", "filtered"]
    assert 0.0 < metrics["targets"]["coverage"] <= 1.0
    loaded = load_unet(tmp_path / "model")
    assert loaded.card["weights_sha256"] == metrics["model"]["weights_sha256"]
    assert loaded.card["training_data"]["views"] == ["original", "filtered"]
    lake = Lake(tmp_path / "lake")
    keys = lake.partitions(S2_UNET_LABELS.name)
    assert len(keys) == len(metrics["partitions"]) == 4  # 1 scene x 2 skies x 2 views
    assert lake.require(keys[0]).info["model"]["weights_sha256"] == metrics["model"]["weights_sha256"]
    assert "cloudy filtered | unet" in capsys.readouterr().out

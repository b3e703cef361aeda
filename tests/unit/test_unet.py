"""Sentinel-2 U-Net: architecture, preprocessing, losses, resumable training, persistence, a tiny real run."""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import rasterio
import torch
from torch import Tensor, nn
from torch.nn import functional
from torch.utils.data import DataLoader, TensorDataset

from seaice_tasks.constants import UNLABELED
from seaice_tasks.errors import ConfigError
from seaice_tasks.io.s2 import open_s2_scene, read_reflectance, rgb_composite
from seaice_tasks.models.losses import FOCAL_ALPHA, FocalLoss, MaskedCrossEntropy
from seaice_tasks.models.unet import PAPER_PARAM_COUNT, UNet, count_parameters, probabilities
from seaice_tasks.s2 import unet_experiment
from seaice_tasks.s2.cloud_shadow import filter_statistics
from seaice_tasks.s2.color_labels import LABEL_COLORMAP, color_labels
from seaice_tasks.s2.scene_labels import S2LabelConfig, mosaic, plan_windows
from seaice_tasks.s2.unet import (
    CARD_NAME,
    S2_UNET_STAGE,
    UNET_LABELS_FILE,
    UNET_QUICKLOOK_FILE,
    WEIGHTS_NAME,
    UNetConfig,
    build_unet,
    evaluate_unet,
    input_view,
    label_scene_unet,
    label_window_unet,
    load_model,
    predict_scene,
    predict_scene_proba,
    save_model,
    train_unet,
    unet_input_image,
    write_unet_partition,
)
from seaice_tasks.sim.geometry import SimConfig, plan_day
from seaice_tasks.sim.s2 import TRUTH_CLASSES_NAME, write_s2_scene
from seaice_tasks.sim.world import TruthWorld, WorldConfig
from seaice_tasks.storage import Lake, PartitionKey
from seaice_tasks.train.dataset import (
    TileDataset,
    grey_from_rgb,
    normalize_columns,
    preprocess_tile,
    tile_origins,
)
from seaice_tasks.train.loop import TrainConfig, Trainer, adam_factory, find_latest_checkpoint, seed_everything

log = logging.getLogger(__name__)

#: A tiny network for fast CPU tests (3 levels: inputs must be multiples of 4 px).
TINY = {"base_filters": 2, "levels": 3, "dropouts": (0.1, 0.1, 0.2), "decoder_dropouts": (0.2, 0.1)}
#: The tiny real run: two 5.12 km (512 px) clear scenes of a lead-rich world, width 4, 64 px tiles.
SIM_SCENE_KM = 5.12
SIM_WORLD = WorldConfig(water_fraction=0.2, thin_fraction=0.25)
SIM_UNET = UNetConfig(base_filters=4, tile_px=64, epochs=10, batch_size=8, lr=3e-3, seed=0)
#: The tiny run must beat a constant prediction by this much (pixel accuracy vs truth).
MIN_GAIN_OVER_MAJORITY = 0.15
MIN_MEAN_IOU = 0.5


def keras_normalize(x: npt.NDArray[np.float64], axis: int = -1, order: int = 2) -> npt.NDArray[np.float64]:
    """``tf.keras.utils.normalize`` (TF 2.10, the authors' version), verbatim."""
    l2 = np.atleast_1d(np.linalg.norm(x, order, axis))
    l2[l2 == 0] = 1
    return np.asarray(x / np.expand_dims(l2, axis), dtype=np.float64)


# -- architecture ----------------------------------------------------------------------------------


def test_param_count_matches_keras_summary() -> None:
    # Keras and torch count a conv (or transposed conv) with bias as k*k*c_in*c_out + c_out.
    def conv(k: int, c_in: int, c_out: int) -> int:
        return k * k * c_in * c_out + c_out

    filters = [16, 32, 64, 128, 256, 512]
    expected = 0
    c_in = 1
    for f in filters:
        expected += conv(3, c_in, f) + conv(3, f, f)
        c_in = f
    for f in reversed(filters[:-1]):
        expected += conv(2, c_in, f) + conv(3, 2 * f, f) + conv(3, f, f)
        c_in = f
    expected += conv(1, c_in, 3)
    assert expected == PAPER_PARAM_COUNT == 7_775_347
    net = UNet()
    assert count_parameters(net) == PAPER_PARAM_COUNT
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 0
    drops = [m.p for m in net.modules() if isinstance(m, nn.Dropout)]
    assert drops == [0.1, 0.1, 0.2, 0.2, 0.2, 0.3, 0.2, 0.2, 0.2, 0.1, 0.1]
    # he_normal: truncated normal with std sqrt(2 / fan_in); biases zero
    w = dict(net.named_parameters())["encoder.5.conv2.weight"].detach()
    assert float(w.std()) == pytest.approx(np.sqrt(2.0 / (9 * 512)), rel=0.02)
    assert all(float(p.detach().abs().sum()) == 0.0 for n, p in net.named_parameters() if n.endswith("bias"))


def test_forward_shapes_tiny() -> None:
    net = UNet(base_filters=2).eval()
    x = torch.rand(2, 1, 64, 64)
    logits = net(x)
    assert logits.shape == (2, 3, 64, 64)
    p = probabilities(logits)
    assert torch.allclose(p.sum(dim=1), torch.ones(2, 64, 64))
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.rand(1, 1, 48, 64))
    with pytest.raises(ValueError, match="encoder"):
        UNet(levels=4)


# -- preprocessing ---------------------------------------------------------------------------------


def test_normalize_columns_equals_keras_axis1() -> None:
    rng = np.random.default_rng(3)
    batch = rng.integers(0, 256, size=(2, 5, 4, 1)).astype(np.float64)
    batch[0, :, 2, 0] = 0.0  # a zero column stays zero
    expected = keras_normalize(batch, axis=1)
    ours = np.stack([normalize_columns(img[..., 0]) for img in batch])[..., None]
    np.testing.assert_allclose(ours, expected, rtol=1e-6)
    assert np.all(ours[0, :, 2] == 0.0)
    np.testing.assert_allclose(np.linalg.norm(ours[1, :, :, 0], axis=0), 1.0, rtol=1e-6)


def test_grey_weights_and_preprocess() -> None:
    rgb = np.array([[[10, 200, 30], [255, 255, 255]]], dtype=np.uint8)
    assert grey_from_rgb(rgb).tolist() == [[round(0.299 * 10 + 0.587 * 200 + 0.114 * 30), 255.0]]
    tile = np.random.default_rng(0).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    grey = np.asarray(grey_from_rgb(tile), dtype=np.float64)
    expected = keras_normalize(grey[None, :, :, None], axis=1)[0, :, :, 0]
    np.testing.assert_allclose(np.asarray(preprocess_tile(tile), dtype=np.float64), expected, rtol=1e-6)


def test_tile_dataset_skips_unlabeled_tiles() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, size=(100, 70, 3), dtype=np.uint8)
    labels = np.zeros((100, 70), dtype=np.uint8)
    labels[:50] = UNLABELED  # tiles at rows 0 (fully unlabeled) and 32 (14/32 labelled) are dropped
    assert tile_origins(100, 32) == [0, 32, 64, 68] and tile_origins(70, 32) == [0, 32, 38]
    ds = TileDataset([(rgb, labels)], tile_px=32, min_labelled_fraction=0.5)
    assert len(ds) == 2 * 3
    x, y = ds[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    s, r, c = ds.index[0]
    assert (s, r, c) == (0, 64, 0)
    np.testing.assert_array_equal(x[0].numpy(), preprocess_tile(rgb[64:96, 0:32]))
    assert int((y == UNLABELED).sum()) == 0


def test_inference_uses_training_preprocessing() -> None:
    cfg = UNetConfig(tile_px=32, **TINY)  # type: ignore[arg-type]
    seed_everything(0)
    model = build_unet(cfg).eval()
    rgb = np.random.default_rng(2).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    expected = probabilities(model(torch.from_numpy(preprocess_tile(rgb))[None, None]))[0].detach().numpy()
    np.testing.assert_allclose(predict_scene_proba(model, rgb, None, cfg), expected, rtol=1e-5, atol=1e-6)
    # a scene that is not a multiple of the tile: end-aligned overlapping tiles, nodata -> 255
    big = np.random.default_rng(3).integers(0, 256, size=(50, 45, 3), dtype=np.uint8)
    valid = np.ones((50, 45), dtype=bool)
    valid[:5, :5] = False
    labels = predict_scene(model, big, valid, cfg)
    assert labels.shape == (50, 45) and labels.dtype == np.uint8
    assert np.all(labels[:5, :5] == UNLABELED) and set(np.unique(labels[valid]).tolist()) <= {0, 1, 2}


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="multiple of 32"):
        UNetConfig(tile_px=100)
    with pytest.raises(ConfigError, match="dropouts"):
        UNetConfig(levels=5)
    cfg = UNetConfig(base_filters=4, tile_px=64)
    assert UNetConfig.from_json(cfg.to_json()) == cfg
    assert cfg.train_config("ck").checkpoint_dir == "ck"


# -- losses ----------------------------------------------------------------------------------------


def test_masked_cross_entropy_ignores_unlabeled() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, :2] = UNLABELED
    ours = MaskedCrossEntropy()(logits, target)
    assert torch.allclose(ours, functional.cross_entropy(logits, target, ignore_index=UNLABELED))
    empty = MaskedCrossEntropy()(logits, torch.full((2, 4, 4), UNLABELED))
    empty.backward()
    assert float(empty.detach()) == 0.0


def test_focal_loss_equals_keras_formula() -> None:
    torch.manual_seed(1)
    logits = torch.randn(6, 3)
    target = torch.tensor([0, 1, 2, 2, UNLABELED, 1])
    p = torch.softmax(logits, dim=1).clamp(1e-7, 1 - 1e-7)
    keep = target != UNLABELED
    y = functional.one_hot(target[keep], 3).float()
    alpha = torch.tensor(FOCAL_ALPHA)
    per = (alpha * y * (1 - p[keep]) ** 2 * -torch.log(p[keep])).sum(dim=1)
    assert torch.allclose(FocalLoss()(logits, target), per.mean())
    # sequences (N, C, T) work too
    assert FocalLoss()(logits.T[None], target[None]).shape == ()


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


# -- persistence -----------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    cfg = UNetConfig(tile_px=32, **TINY)  # type: ignore[arg-type]
    seed_everything(1)
    model = build_unet(cfg).eval()
    rgb = np.random.default_rng(4).integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    metrics = {"pixel_accuracy": np.float64(0.5), "per_class_iou": [0.1, float("nan"), 0.3]}
    card_path = save_model(model, cfg, metrics, tmp_path / "m", training_data="unit-test noise")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted([CARD_NAME, WEIGHTS_NAME])
    card = json.loads(card_path.read_text())
    assert card["param_count"] == count_parameters(model)
    assert card["architecture"]["base_filters"] == 2 and card["config"] == cfg.to_dict()
    assert card["metrics"]["per_class_iou"] == [0.1, None, 0.3]
    assert card["code_version"] and len(card["weights_sha256"]) == 64
    loaded = load_model(tmp_path / "m")
    assert loaded.config == cfg and not loaded.model.training
    np.testing.assert_array_equal(predict_scene_proba(loaded.model, rgb, None, cfg),
                                  predict_scene_proba(model, rgb, None, cfg))
    weights = tmp_path / "m" / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match="sha256"):
        load_model(tmp_path / "m")


def test_import_seaice_tasks_does_not_import_torch() -> None:
    code = ("import sys, seaice_tasks, seaice_tasks.s2, seaice_tasks.s2.color_labels, seaice_tasks.models, "
            "seaice_tasks.train; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- a tiny real run on simulated scenes -----------------------------------------------------------


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Train on one intra-op thread: OpenMP spin-waits make 2 threads very slow on a busy 2-core box."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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


# -- U-Net label partitions and the four-set experiment ---------------------------------------------

#: A 1.28 km (128 px) cloudy simulated scene with a nodata edge, for the partition tests.
SMALL_SCENE_KM = 1.28


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Band folder of one small cloudy simulated scene."""
    tmp = tmp_path_factory.mktemp("unet_small")
    config = SimConfig(scene_km=SMALL_SCENE_KM, granules=1, world=SIM_WORLD)
    fp = plan_day(config).scenes[0]
    return write_s2_scene(TruthWorld(config.world), fp, config, tmp / "s2", tmp / "truth", clouds=True, workers=1)


@pytest.mark.usefixtures("one_thread")
def test_label_scene_unet_labels_exactly_the_valid_pixels(small_scene: Path) -> None:
    scene = open_s2_scene(small_scene)
    _, valid = rgb_composite(read_reflectance(scene))
    assert 0 < int(valid.sum()) < valid.size, "the fixture scene needs a nodata edge"
    cfg = UNetConfig(tile_px=32, **TINY)  # type: ignore[arg-type]
    seed_everything(0)
    model = build_unet(cfg).eval()
    for label_cfg in (S2LabelConfig(), S2LabelConfig(apply_filter=False)):
        labels = label_scene_unet(model, scene, label_cfg, cfg)
        assert labels.shape == scene.shape and labels.dtype == np.uint8
        assert set(np.unique(labels).tolist()) <= {0, 1, 2, UNLABELED}
        np.testing.assert_array_equal(labels == UNLABELED, ~valid)
    # the filtered view is the filter output as grey: three equal channels in {0, 155, 255}
    rgb, valid = rgb_composite(read_reflectance(scene))
    image = unet_input_image(rgb, valid, S2LabelConfig())
    assert np.array_equal(image[..., 0], image[..., 2]) and set(np.unique(image).tolist()) <= {0, 155, 255}
    assert input_view(S2LabelConfig()) == "filtered"


@pytest.mark.usefixtures("one_thread")
def test_windowed_unet_inference_equals_the_whole_scene(small_scene: Path) -> None:
    """Windows not aligned to the tiles, tiles overlapping at the scene edge: same labels."""
    scene = open_s2_scene(small_scene)
    rgb, valid = rgb_composite(read_reflectance(scene))
    cfg = UNetConfig(tile_px=44, inference_batch_size=3, **TINY)  # type: ignore[arg-type]
    assert tile_origins(scene.shape[0], cfg.tile_px) == [0, 44, 84]  # the last tile overlaps
    seed_everything(1)
    model = build_unet(cfg).eval()
    for label_cfg in (S2LabelConfig(), S2LabelConfig(apply_filter=False)):
        whole = label_scene_unet(model, scene, label_cfg, cfg)
        stats = filter_statistics(rgb, valid, label_cfg.filter) if label_cfg.apply_filter else None
        windows = plan_windows(scene.shape, 50)
        parts = [(w, label_window_unet(model, scene, w, label_cfg, cfg, stats)) for w in windows]
        np.testing.assert_array_equal(mosaic(scene.shape, parts, UNLABELED), whole)
        # without the scene statistics the window computes them from the whole scene
        w = windows[-1]
        np.testing.assert_array_equal(label_window_unet(model, scene, w, label_cfg, cfg),
                                      whole[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width])


def test_write_unet_partition_round_trip(small_scene: Path, tmp_path: Path) -> None:
    scene = open_s2_scene(small_scene)
    _, valid = rgb_composite(read_reflectance(scene))
    labels = np.where(valid, (np.arange(valid.size).reshape(valid.shape) % 3), UNLABELED).astype(np.uint8)
    cfg = UNetConfig(tile_px=32, **TINY)  # type: ignore[arg-type]
    card = {"name": "seaice-s2-unet", "weights_sha256": "ab" * 32, "param_count": 123,
            "architecture": {"base_filters": 2, "levels": 3}, "config": cfg.to_dict(),
            "training_data": {"views": ["original", "filtered"]}}
    lake = Lake(tmp_path / "lake")
    key = PartitionKey(S2_UNET_STAGE, dt.date(2019, 11, 4), "scene1")
    manifest = write_unet_partition(lake, key, scene, labels, cfg, card)
    assert {f.name for f in manifest.files} == {UNET_LABELS_FILE, UNET_QUICKLOOK_FILE}
    assert manifest.info["model"]["weights_sha256"] == "ab" * 32 and manifest.info["view"] == "filtered"
    assert manifest.info["model"]["training_views"] == ["original", "filtered"]
    assert manifest.info["class_fractions"]["unlabeled"] == pytest.approx(1 - valid.mean())
    assert manifest.config == cfg.to_dict()
    with rasterio.open(lake.path(key.relpath, UNET_LABELS_FILE)) as ds:
        np.testing.assert_array_equal(ds.read(1), labels)
        assert ds.crs.to_string() == scene.crs and tuple(ds.transform)[:6] == pytest.approx(scene.transform)
        assert (ds.height, ds.width) == scene.shape and ds.nodata == UNLABELED
        assert ds.colormap(1)[2][:3] == LABEL_COLORMAP[2]
        assert ds.tags()["model_weights_sha256"] == "ab" * 32
    with pytest.raises(ValueError, match="do not match"):
        write_unet_partition(lake, key, scene, labels[1:], cfg, card)


@pytest.mark.usefixtures("one_thread")
def test_unet_experiment_quick_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert unet_experiment.main(["--out", str(tmp_path), "--quick"]) == 0
    metrics = json.loads((tmp_path / unet_experiment.METRICS_FILE).read_text())
    assert set(metrics["sets"]) == {"cloudy_original", "cloudy_filtered", "clear_original", "clear_filtered"}
    for result in metrics["sets"].values():
        for method in ("unet", "color_labels"):
            assert 0.0 <= result[method]["pixel_accuracy"] <= 1.0
            assert set(result[method]["per_class_iou"]) == {"0", "1", "2"}
    assert metrics["training"]["epochs"] == 1 and metrics["training"]["views"] == ["original", "filtered"]
    assert 0.0 < metrics["targets"]["coverage"] <= 1.0
    loaded = load_model(tmp_path / "model")
    assert loaded.card["weights_sha256"] == metrics["model"]["weights_sha256"]
    lake = Lake(tmp_path / "lake")
    keys = lake.partitions(S2_UNET_STAGE)
    assert len(keys) == len(metrics["partitions"]) == 4  # 1 scene x 2 skies x 2 views
    assert lake.require(keys[0]).info["model"]["weights_sha256"] == metrics["model"]["weights_sha256"]
    assert "cloudy filtered | unet" in capsys.readouterr().out

"""Sentinel-2 U-Net: architecture, preprocessing, losses, config, persistence, scene inference.

Tests that train (the resumable ``Trainer``, the tiny real run, the experiment) are in
``tests/integration/test_unet_training.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import rasterio
import torch
from torch import nn
from torch.nn import functional

from seaice_tasks.constants import CLASS_NAMES, UNLABELED, SeaIceClass
from seaice_tasks.errors import ConfigError
from seaice_tasks.io.s2 import open_s2_scene, read_reflectance, rgb_composite
from seaice_tasks.metrics import evaluate
from seaice_tasks.models import unet as models_unet
from seaice_tasks.models.losses import FOCAL_ALPHA, FocalLoss, MaskedCrossEntropy
from seaice_tasks.models.registry import CARD_FORMAT, CARD_NAME, WEIGHTS_NAME, ModelFormatError, save_model
from seaice_tasks.models.unet import (
    PAPER_PARAM_COUNT,
    UNet,
    UNetConfig,
    build_unet,
    count_parameters,
    load_unet,
    probabilities,
    read_unet_card,
    save_unet,
    unet_config_from_card,
)
from seaice_tasks.products import LABELS_FILE, QUICKLOOK_FILE, S2_UNET_LABELS
from seaice_tasks.s2.cloud_shadow import filter_statistics
from seaice_tasks.s2.color_labels import LABEL_COLORMAP
from seaice_tasks.s2.scene_labels import S2LabelConfig, mosaic, plan_windows
from seaice_tasks.s2.unet import (
    evaluate_unet,
    input_view,
    label_scene_unet,
    label_window_unet,
    predict_scene,
    predict_scene_proba,
    unet_input_image,
    write_unet_partition,
)
from seaice_tasks.sim.geometry import SimConfig, plan_day
from seaice_tasks.sim.s2 import write_s2_scene
from seaice_tasks.sim.world import TruthWorld, WorldConfig
from seaice_tasks.storage import Lake
from seaice_tasks.train import dataset as train_dataset
from seaice_tasks.train.dataset import (
    TileDataset,
    grey_from_rgb,
    normalize_columns,
    preprocess_tile,
    tile_origins,
)
from seaice_tasks.train.loop import seed_everything
from seaice_tasks.train.unet import unet_train_config

#: A tiny network for fast CPU tests (3 levels: inputs must be multiples of 4 px).
TINY = {"base_filters": 2, "levels": 3, "dropouts": (0.1, 0.1, 0.2), "decoder_dropouts": (0.2, 0.1)}
#: A lead-rich world (for the scene fixture).
SIM_WORLD = WorldConfig(water_fraction=0.2, thin_fraction=0.25)


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
    assert unet_train_config(cfg, "ck").checkpoint_dir == "ck"
    tcfg = unet_train_config(cfg, resume=False)
    assert (tcfg.checkpoint_dir, tcfg.resume, tcfg.epochs, tcfg.lr, tcfg.seed) == ("", False, cfg.epochs, cfg.lr, 0)


def test_unet_constants_match_the_training_tiles() -> None:
    """models/ may not import train/: the U-Net's input constants are pinned to train.dataset's."""
    assert models_unet.DEFAULT_TILE_PX == train_dataset.DEFAULT_TILE_PX
    assert models_unet.DEFAULT_MIN_LABELLED_FRACTION == train_dataset.DEFAULT_MIN_LABELLED_FRACTION
    assert models_unet.INPUT_GREY_WEIGHTS == train_dataset.GREY_WEIGHTS
    assert f"{preprocess_tile.__module__}.{preprocess_tile.__name__}" == models_unet.INPUT_FUNCTION


def test_evaluate_unet_pools_the_scenes() -> None:
    """evaluate_unet == metrics.evaluate of the concatenated predictions, plus the majority rate."""
    cfg = UNetConfig(tile_px=32, **TINY)  # type: ignore[arg-type]
    seed_everything(2)
    model = build_unet(cfg).eval()
    rng = np.random.default_rng(5)
    scenes = []
    for shape in ((40, 36), (32, 50)):
        rgb = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
        valid = rng.random(shape) > 0.1
        reference = rng.choice(np.array([0, 1, 2, UNLABELED], dtype=np.uint8), shape, p=[0.5, 0.2, 0.2, 0.1])
        scenes.append((rgb, valid, reference))
    result = evaluate_unet(model, scenes, cfg)
    preds = [predict_scene(model, rgb, valid, cfg) for rgb, valid, _ in scenes]
    pooled = evaluate(np.concatenate([r.ravel() for _, _, r in scenes]), np.concatenate([p.ravel() for p in preds]))
    assert result["confusion_matrix"] == pooled["confusion_matrix"]
    assert result["n_pixels"] == pooled["n_evaluated"] and result["coverage"] == pytest.approx(pooled["coverage"])
    for key in ("pixel_accuracy", "mean_iou"):
        assert result[key] == pytest.approx(pooled[key], rel=1e-12)
    rows = np.asarray(result["confusion_matrix"]).sum(axis=1)
    assert result["majority_rate"] == pytest.approx(rows.max() / rows.sum())


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


# -- persistence -----------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    cfg = UNetConfig(tile_px=32, **TINY)  # type: ignore[arg-type]
    seed_everything(1)
    model = build_unet(cfg).eval()
    rgb = np.random.default_rng(4).integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    metrics = {"pixel_accuracy": np.float64(0.5), "per_class_iou": [0.1, float("nan"), 0.3]}
    card_path = save_unet(model, cfg, metrics, tmp_path / "m", training_data={"views": ["original"]})
    assert card_path == tmp_path / "m" / CARD_NAME
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted([CARD_NAME, WEIGHTS_NAME])
    card = json.loads(card_path.read_text())
    assert card["card_format"] == CARD_FORMAT == 2 and card["name"] == "seaice-s2-unet"
    assert card["param_count"] == count_parameters(model)
    assert card["architecture"]["name"] == "UNet" and card["architecture"]["reference"].startswith("METHOD.md")
    assert card["architecture"]["kwargs"] == {"in_channels": 1, "n_classes": 3, "base_filters": 2, "levels": 3,
                                              "dropouts": [0.1, 0.1, 0.2], "decoder_dropouts": [0.2, 0.1]}
    assert card["config"] == cfg.to_dict() and card["config_kind"] == "s2_unet"
    assert card["classes"] == {str(int(c)): CLASS_NAMES[c] for c in SeaIceClass}
    assert card["input"]["tile_px"] == 32 and card["input"]["grey_weights"] == [0.299, 0.587, 0.114]
    assert card["input"]["function"] == "seaice_tasks.train.dataset.preprocess_tile"
    assert card["output"].startswith("logits") and card["training_data"] == {"views": ["original"]}
    assert card["metrics"]["per_class_iou"] == [0.1, None, 0.3] and card["metrics"]["pixel_accuracy"] == 0.5
    assert card["code_version"] and card["torch_version"] == torch.__version__
    assert card["weights_file"] == WEIGHTS_NAME and len(card["weights_sha256"]) == 64
    assert read_unet_card(tmp_path / "m") == card
    state = torch.get_rng_state()
    loaded = load_unet(tmp_path / "m")
    assert torch.equal(torch.get_rng_state(), state), "loading leaves the global RNG alone"
    assert loaded.config == cfg and not loaded.model.training and loaded.card == card
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.model.state_dict().items())
    np.testing.assert_array_equal(predict_scene_proba(loaded.model, rgb, None, cfg),
                                  predict_scene_proba(model, rgb, None, cfg))
    weights = tmp_path / "m" / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelFormatError, match=r"/m: model.safetensors: sha256 [0-9a-f]{64} differs"):
        load_unet(tmp_path / "m")


def test_load_unet_refuses_other_models(tmp_path: Path) -> None:
    cfg = UNetConfig(tile_px=32, **TINY)  # type: ignore[arg-type]
    save_unet(build_unet(cfg), cfg, {}, tmp_path / "m")
    card_path = tmp_path / "m" / CARD_NAME
    card = json.loads(card_path.read_text())
    # a model of another kind: its config is not a UNetConfig
    card_path.write_text(json.dumps({**card, "config_kind": "is2_lstm"}))
    with pytest.raises(ModelFormatError, match="not a U-Net model folder"):
        load_unet(tmp_path / "m")
    with pytest.raises(ModelFormatError, match="not a U-Net model folder"):
        read_unet_card(tmp_path / "m")
    card_path.write_text(json.dumps({**card, "config": {**card["config"], "tile_px": 33}}))
    with pytest.raises(ModelFormatError, match=r"config is invalid .*multiple of 4"):
        load_unet(tmp_path / "m")
    with pytest.raises(ModelFormatError, match="not a U-Net"):
        unet_config_from_card({**card, "architecture": {"name": "LSTM", "kwargs": {}}})
    assert unet_config_from_card(card) == cfg
    # the generic registry refuses a model that is not an instance of the named architecture
    with pytest.raises(TypeError, match="architecture 'UNet' is UNet"):
        save_model(nn.Linear(2, 2), tmp_path / "x", architecture=models_unet.unet_architecture(build_unet(cfg)),
                   config=cfg, name="bad")


def test_import_seaice_tasks_does_not_import_torch() -> None:
    code = ("import sys, seaice_tasks, seaice_tasks.s2, seaice_tasks.s2.color_labels, seaice_tasks.models, "
            "seaice_tasks.models.registry, seaice_tasks.metrics, seaice_tasks.train, seaice_tasks.io.inspect; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- scene inference, label partitions ------------------------------------------------------------


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
            "architecture": {"name": "UNet", "kwargs": {"base_filters": 2, "levels": 3}}, "config": cfg.to_dict(),
            "training_data": {"views": ["original", "filtered"]}}
    lake = Lake(tmp_path / "lake")
    key = S2_UNET_LABELS.key(date=dt.date(2019, 11, 4), scene="scene1")
    manifest = write_unet_partition(lake, key, scene, labels, card)
    assert {f.name for f in manifest.files} == {LABELS_FILE, QUICKLOOK_FILE}
    assert manifest.info["model"]["weights_sha256"] == "ab" * 32 and manifest.info["view"] == "filtered"
    assert manifest.info["model"]["training_views"] == ["original", "filtered"]
    assert manifest.info["class_fractions"]["unlabeled"] == pytest.approx(1 - valid.mean())
    assert manifest.config == cfg.to_dict()
    with rasterio.open(lake.committed_file_path(key, LABELS_FILE)) as ds:
        np.testing.assert_array_equal(ds.read(1), labels)
        assert ds.crs.to_string() == scene.crs and tuple(ds.transform)[:6] == pytest.approx(scene.transform)
        assert (ds.height, ds.width) == scene.shape and ds.nodata == UNLABELED
        assert ds.colormap(1)[2][:3] == LABEL_COLORMAP[2]
        assert ds.tags()["model_weights_sha256"] == "ab" * 32
    with pytest.raises(ValueError, match="do not match"):
        write_unet_partition(lake, key, scene, labels[1:], card)

"""U-Net segmentation of Sentinel-2 scenes: tile-by-tile inference, input views, label partitions.

The authors (METHOD.md §2.4) train the U-Net on 256 x 256 tiles of 8-bit true-colour composites
with the colour-threshold auto-labels (:func:`seaice_tasks.s2.color_labels.color_labels`) as
targets, then segment whole scenes tile by tile.  The network and its config are
:mod:`seaice_tasks.models.unet` (:class:`~seaice_tasks.models.unet.UNetConfig`,
:func:`~seaice_tasks.models.unet.save_unet` / :func:`~seaice_tasks.models.unet.load_unet` over the
model registry), training is :func:`seaice_tasks.train.unet.train_unet`.  Here

* :func:`predict_scene` segments a scene with the *same* preprocessing as training
  (:func:`~seaice_tasks.train.dataset.preprocess_tile`, which the authors' Spark inference
  forgot), averaging class probabilities where the end-aligned edge tiles overlap;
* :func:`evaluate_unet` gives pixel accuracy, per-class IoU, mean IoU and the confusion matrix
  against a reference raster (e.g. the simulator's truth ``classes.tif``);
* :func:`label_scene_unet` segments a Sentinel-2 scene on disk, feeding the U-Net the input view
  selected by :attr:`S2LabelConfig.apply_filter <seaice_tasks.s2.scene_labels.S2LabelConfig>`
  (:func:`unet_input_image`), :func:`label_window_unet` one window of it with bounded memory, and
  :func:`unet_outputs` gives the files of its ``s2_unet_labels`` partition (label COG with the class
  colour table on the bands' grid, quicklook) for the writer layer (:func:`write_unet_partition`
  commits them in one process).

Input views.  The authors trained on grey tiles of the raw RGB composite but fed the *shadow-free*
filter output (0/155/255) to the model in their Spark inference (METHOD.md §2.4, §13 row 18).  Here
a model may be trained on either view or both (``experiments/unet_experiment.py`` trains on both,
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

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch

from seaice_tasks.constants import UNLABELED
from seaice_tasks.io.s2 import S2Scene, read_reflectance, rgb_composite
from seaice_tasks.metrics import DEFAULT_CLASSES, confusion_matrix, mean_iou, per_class_iou, pixel_accuracy
from seaice_tasks.models.registry import model_card_summary
from seaice_tasks.models.unet import UNet, UNetConfig, probabilities, unet_config_from_card
from seaice_tasks.outputs import BytesOutput, Output, RasterOutput, write_partition
from seaice_tasks.products import LABELS_FILE, QUICKLOOK_FILE
from seaice_tasks.s2.cloud_shadow import FilterStats, filter_statistics, remove_thin_cloud_shadow
from seaice_tasks.s2.color_labels import class_fractions
from seaice_tasks.s2.scene_labels import S2LabelConfig, WindowSpec, quicklook_png, read_window_halo
from seaice_tasks.storage import Lake, Manifest, PartitionKey
from seaice_tasks.train.dataset import crop_tile, preprocess_tile, tile_origins

__all__ = [
    "predict_scene_proba",
    "predict_scene",
    "evaluate_unet",
    "VIEW_ORIGINAL",
    "VIEW_FILTERED",
    "input_view",
    "unet_input_image",
    "label_scene_unet",
    "label_window_unet",
    "unet_outputs",
    "write_unet_partition",
]

log = logging.getLogger(__name__)

#: Names of the two U-Net input views (the P2 "original" and "filtered" validation sets).
VIEW_ORIGINAL: Final[str] = "original"
VIEW_FILTERED: Final[str] = "filtered"
#: Axes of an RGB image (rows, cols, channel) and its channel count.
_RGB_NDIM: Final[int] = 3

RGBImage = npt.NDArray[np.uint8]
LabelImage = npt.NDArray[np.uint8]
BoolImage = npt.NDArray[np.bool_]


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
    total = np.zeros((model.n_classes, max(rows, tile), max(cols, tile)), dtype=np.float32)
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
        The metrics are those of :mod:`seaice_tasks.metrics`, pooled over the scenes.
    """
    n = len(DEFAULT_CLASSES)
    cm = np.zeros((n, n), dtype=np.int64)
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


def unet_outputs(key: PartitionKey, scene: S2Scene, labels: LabelImage, model_card: Mapping[str, Any],
                 label_config: S2LabelConfig | None = None) -> tuple[list[Output], dict[str, Any]]:
    """The files of a scene's ``s2_unet_labels`` partition (label COG + quicklook) and its info.

    The partition's config is the model's own (from its card); the COG carries the weights'
    sha256 and the input view as tags besides the product's class codes and colour table.

    Parameters
    ----------
    key : PartitionKey
        ``S2_UNET_LABELS.key(date=..., scene=...)`` (:mod:`seaice_tasks.products`).
    scene : S2Scene
        The scene the labels are of: the COG gets its CRS and transform (the bands' grid).
    labels : numpy.ndarray of uint8, shape ``scene.shape``
        From :func:`label_scene_unet` or the windows of :func:`label_window_unet`.
    model_card : mapping
        The model card (:attr:`~seaice_tasks.models.unet.LoadedUNet.card`); its summary
        (:func:`~seaice_tasks.models.registry.model_card_summary`) goes into ``info["model"]``.
    label_config : S2LabelConfig, optional
        The input view and composite used (recorded in ``info``; default ``S2LabelConfig()``).

    Returns
    -------
    outputs : list of Output
    info : dict
        ``source``, ``class_fractions``, ``valid_fraction``, ``shape``, ``crs``, ``view``,
        ``label_config``, ``model``.

    Raises
    ------
    ValueError
        When ``labels`` is not a (rows, cols) array of the scene's shape.
    """
    lab = np.asarray(labels, dtype=np.uint8)
    if lab.shape != tuple(scene.shape):
        raise ValueError(f"U-Net labels {lab.shape} do not match the scene {scene.shape}")
    lcfg = label_config if label_config is not None else S2LabelConfig()
    summary = model_card_summary(model_card)
    config = unet_config_from_card(model_card)
    tags = (("model_weights_sha256", str(summary.get("weights_sha256", ""))), ("input_view", input_view(lcfg)))
    outputs: list[Output] = [
        RasterOutput(key, LABELS_FILE, lab, scene.crs, tuple(scene.transform), tags=tags, config=config),
        BytesOutput(key, QUICKLOOK_FILE, quicklook_png(scene, lab, lcfg), config=config),
    ]
    n_valid = int(np.count_nonzero(lab != UNLABELED))
    info = {
        "source": scene.source,
        "class_fractions": class_fractions(lab),
        "valid_fraction": n_valid / lab.size if lab.size else 0.0,
        "shape": list(scene.shape),
        "crs": scene.crs,
        "view": input_view(lcfg),
        "label_config": lcfg.to_dict(),
        "model": summary,
    }
    return outputs, info


def write_unet_partition(lake: Lake, key: PartitionKey, scene: S2Scene, labels: LabelImage,
                         model_card: Mapping[str, Any], *, label_config: S2LabelConfig | None = None) -> Manifest:
    """Commit a scene's U-Net label partition in this process (:func:`unet_outputs`, manifest last)."""
    outputs, info = unet_outputs(key, scene, labels, model_card, label_config)
    return write_partition(lake, key, outputs, unet_config_from_card(model_card), info)

"""U-Net on auto-labels of simulated scenes, scored against the simulator's truth (P2's four sets).

``python experiments/unet_experiment.py --out DIR [--quick] [--epochs N] [--threads N]`` (or
:func:`main`; a research script beside the package, free to use the simulator
:mod:`seaice_tasks.sim`):

1. simulates training scenes (``train_granules`` footprints, each rendered cloudy *and* clear) and
   held-out evaluation scenes (another day seed and another world seed, cloudy and clear) of
   ``scene_km`` km under ``DIR/sim``;
2. labels every training scene with :func:`~seaice_tasks.s2.scene_labels.label_scene` under the
   default :class:`~seaice_tasks.s2.scene_labels.S2LabelConfig` - the *filtered* colour labels,
   opaque cloud and dark shadow unlabeled - and uses them as the targets of both input views
   (:func:`~seaice_tasks.s2.unet.unet_input_image`: the raw composite, "original", and the
   shadow-free filter output, "filtered");
3. trains the U-Net (:func:`~seaice_tasks.train.unet.train_unet`) on the tiles of both views;
4. segments every evaluation scene in both views (:func:`~seaice_tasks.s2.unet.label_scene_unet`)
   and scores the four P2 sets - cloudy original, cloudy filtered, clear original, clear
   filtered - against the truth ``classes.tif``, beside the colour-label baselines of the same
   view (no unusable mask, so every valid pixel is scored) and the training targets' own accuracy;
   the U-Net is also scored against the evaluation scenes' filtered auto-labels (the kind of
   reference P2's accuracies use);
5. writes ``DIR/metrics.json``, the model (``DIR/model``: :func:`~seaice_tasks.models.unet.save_unet`,
   ``model.safetensors`` + ``card.json``) and the U-Net label
   COGs into the lake ``DIR/lake`` (product ``s2_unet_labels``, scene key
   ``<scene>_<sky>_<view>``).

The CPU defaults (:data:`CPU_UNET`) are sized for a few minutes on two cores; the paper model
(``UNetConfig()``: width 16, 256 px tiles, 100 epochs, 63 scenes of 2048 px) is GPU work.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from seaice_tasks.config import JsonConfig, config_hash, json_default
from seaice_tasks.constants import UNLABELED
from seaice_tasks.io.s2 import open_s2_scene, read_reflectance, rgb_composite
from seaice_tasks.metrics import evaluate
from seaice_tasks.s2.scene_labels import S2LabelConfig, label_scene
from seaice_tasks.sim.geometry import SimConfig, plan_day
from seaice_tasks.sim.world import TruthWorld, WorldConfig

__all__ = [
    "ExperimentConfig",
    "SimScene",
    "CPU_UNET",
    "QUICK_UNET",
    "SKIES",
    "VIEWS",
    "METRICS_FILE",
    "quick_config",
    "simulate_scenes",
    "run_experiment",
    "format_table",
    "main",
]

log = logging.getLogger(__name__)

METRICS_FILE: Final[str] = "metrics.json"
MODEL_DIR: Final[str] = "model"
LAKE_DIR: Final[str] = "lake"
SIM_DIR: Final[str] = "sim"
CHECKPOINT_DIR: Final[str] = "checkpoints"
#: Sky versions of every simulated footprint and the U-Net input views (P2's four sets).
SKIES: Final[tuple[str, ...]] = ("cloudy", "clear")
VIEWS: Final[tuple[str, ...]] = ("original", "filtered")
#: CPU-sized U-Net: half the paper's width, 128 px tiles, 6 levels (4 px at the bottom).
CPU_UNET: Final[dict[str, Any]] = {"base_filters": 8, "tile_px": 128, "epochs": 50, "batch_size": 16,
                                   "lr": 1e-3, "seed": 0}
#: ``--quick``: a 3-level width-2 network on 32 px tiles, one epoch (an end-to-end smoke run).
QUICK_UNET: Final[dict[str, Any]] = {"base_filters": 2, "levels": 3, "dropouts": (0.1, 0.1, 0.2),
                                     "decoder_dropouts": (0.2, 0.1), "tile_px": 32, "epochs": 1,
                                     "batch_size": 8, "lr": 3e-3, "seed": 0}
#: World of the experiment: leads and thin ice close to P2's cloudy set (thick 78 %, thin 13 %,
#: water 9 % of the pixels).
EXPERIMENT_WATER_FRACTION: Final[float] = 0.10
EXPERIMENT_THIN_FRACTION: Final[float] = 0.15
QUICK_SCENE_KM: Final[float] = 1.28
_TRAIN_DATE: Final[str] = "2019-11-04"
_EVAL_DATE: Final[str] = "2019-11-26"
_TRAIN_DAY_SEED: Final[int] = 20191104
_EVAL_DAY_SEED: Final[int] = 20191126
_TRAIN_WORLD_SEED: Final[int] = 1104
_EVAL_WORLD_SEED: Final[int] = 1126


@dataclasses.dataclass(frozen=True)
class ExperimentConfig(JsonConfig):
    """Sizes and seeds of the U-Net experiment (recorded in ``metrics.json``).

    Attributes
    ----------
    scene_km : float
        Side of each simulated scene (km; 10 m pixels).
    train_granules, eval_granules : int
        Footprints of the training and evaluation days; each is rendered cloudy and clear.
    train_seed, eval_seed : int
        Day seeds (scene placement, noise, clouds) of the two days (2019-11-04 and 2019-11-26).
    train_world_seed, eval_world_seed : int
        Seeds of the two truth worlds (the evaluation ice is never seen in training).
    water_fraction, thin_fraction : float
        World class fractions.
    unet : dict
        :class:`~seaice_tasks.models.unet.UNetConfig` fields (kept as a plain mapping so that this
        module's import does not need torch).
    train_views : tuple of str
        Input views whose tiles train the model (``original``, ``filtered``).
    threads : int
        torch intra-op threads (1: OpenMP spin-waits make 2 threads slow on a shared 2-core box).
    """

    kind: ClassVar[str] = "s2_unet_experiment"
    scene_km: float = 5.0
    train_granules: int = 3
    eval_granules: int = 2
    train_seed: int = _TRAIN_DAY_SEED
    eval_seed: int = _EVAL_DAY_SEED
    train_world_seed: int = _TRAIN_WORLD_SEED
    eval_world_seed: int = _EVAL_WORLD_SEED
    water_fraction: float = EXPERIMENT_WATER_FRACTION
    thin_fraction: float = EXPERIMENT_THIN_FRACTION
    unet: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(CPU_UNET))
    train_views: tuple[str, ...] = VIEWS
    threads: int = 1

    def sim_config(self, split: str) -> SimConfig:
        """The :class:`SimConfig` of the ``train`` or ``eval`` day."""
        train = split == "train"
        world = WorldConfig(seed=self.train_world_seed if train else self.eval_world_seed,
                            water_fraction=self.water_fraction, thin_fraction=self.thin_fraction)
        return SimConfig(date=_TRAIN_DATE if train else _EVAL_DATE,
                         seed=self.train_seed if train else self.eval_seed, scene_km=self.scene_km,
                         granules=self.train_granules if train else self.eval_granules, world=world)


def quick_config() -> ExperimentConfig:
    """Tiny sizes for ``--quick``: 1.28 km scenes, one training and one evaluation footprint."""
    return ExperimentConfig(scene_km=QUICK_SCENE_KM, train_granules=1, eval_granules=1, unet=dict(QUICK_UNET))


@dataclasses.dataclass(frozen=True)
class SimScene:
    """One simulated scene: its key, sky, band folder and truth raster."""

    name: str
    sky: str
    scene_dir: Path
    truth_path: Path


def simulate_scenes(config: ExperimentConfig, split: str, root: Path) -> list[SimScene]:
    """Render every footprint of the ``split`` day cloudy and clear under ``root/split/<sky>``."""
    from seaice_tasks.sim.s2 import TRUTH_CLASSES_NAME, write_s2_scene

    sim = config.sim_config(split)
    world = TruthWorld(sim.world)
    out: list[SimScene] = []
    for fp in plan_day(sim).scenes:
        for sky in SKIES:
            base = root / split / sky
            scene_dir = write_s2_scene(world, fp, sim, base / "s2", base / "truth", clouds=sky == "cloudy", workers=1)
            out.append(SimScene(fp.scene, sky, scene_dir, base / "truth" / fp.scene / TRUTH_CLASSES_NAME))
    return out


def _read_truth(path: Path) -> npt.NDArray[np.uint8]:
    import rasterio

    with rasterio.open(path) as ds:
        return np.asarray(ds.read(1), dtype=np.uint8)


def _view_config(view: str, *, flag_unusable: bool = False) -> S2LabelConfig:
    return S2LabelConfig(apply_filter=view == "filtered", flag_unusable=flag_unusable)


def _pooled(pairs: Sequence[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]]) -> dict[str, Any]:
    """:func:`evaluate` over the pixels of several (truth, prediction) scenes."""
    truth = np.concatenate([t.ravel() for t, _ in pairs])
    pred = np.concatenate([p.ravel() for _, p in pairs])
    return evaluate(truth, pred)


def _training_pairs(scenes: Sequence[SimScene], views: Sequence[str]) -> tuple[
        list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]], dict[str, Any]]:
    """(input view, filtered auto-labels) per training scene and view, and the targets' accuracy."""
    from seaice_tasks.s2.unet import unet_input_image

    target_cfg = S2LabelConfig()  # filtered colour labels, unusable pixels unlabeled
    pairs: list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]] = []
    scored: list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]] = []
    for s in scenes:
        scene = open_s2_scene(s.scene_dir)
        targets = label_scene(scene, target_cfg).labels
        rgb, valid = rgb_composite(read_reflectance(scene), target_cfg.read)
        pairs.extend((unet_input_image(rgb, valid, _view_config(view)), targets) for view in views)
        scored.append((_read_truth(s.truth_path), targets))
    return pairs, _pooled(scored)


def _key_metrics(result: dict[str, Any]) -> dict[str, Any]:
    keep = ("pixel_accuracy", "per_class_iou", "mean_iou", "coverage", "n_evaluated", "confusion_matrix")
    return {k: result[k] for k in keep}


def run_experiment(config: ExperimentConfig, out: str | Path) -> dict[str, Any]:
    """Run the whole experiment under ``out`` and return (and write) its metrics.

    Returns
    -------
    dict
        ``config``; ``sets`` (``cloudy_original`` ... ``clear_filtered``: ``unet`` and
        ``color_labels`` metrics vs truth, pooled over the evaluation scenes, and
        ``unet_vs_auto_labels``: the U-Net against the evaluation scenes' filtered auto-labels,
        P2's kind of reference, unusable pixels excluded; ``unet_usable`` / ``color_labels_usable``:
        both vs truth on the pixels the label product keeps, i.e. with the view's unusable mask
        (opaque cloud/shadow) set to unlabeled, ``coverage`` = the kept share); ``targets`` (the
        training auto-labels vs truth); ``training`` (tiles, last epoch, seconds); ``model``
        (card path, sha256, parameters); ``partitions``; ``runtime_s``.
    """
    import torch

    from seaice_tasks.models.registry import read_card
    from seaice_tasks.models.unet import UNetConfig, save_unet
    from seaice_tasks.products import S2_UNET_LABELS
    from seaice_tasks.s2.unet import label_scene_unet, write_unet_partition
    from seaice_tasks.storage import Lake
    from seaice_tasks.train.unet import train_unet

    started = time.perf_counter()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    unet_cfg = UNetConfig.from_dict(dict(config.unet))

    train_scenes = simulate_scenes(config, "train", root / SIM_DIR)
    eval_scenes = simulate_scenes(config, "eval", root / SIM_DIR)
    simulated = time.perf_counter()
    pairs, targets_vs_truth = _training_pairs(train_scenes, config.train_views)
    labelled = time.perf_counter()

    model, history = train_unet(pairs, unet_cfg, root / CHECKPOINT_DIR / config_hash(unet_cfg))
    trained = time.perf_counter()

    predictions: dict[tuple[str, str, str], npt.NDArray[np.uint8]] = {}
    sets: dict[str, dict[str, Any]] = {}
    for sky in SKIES:
        for view in VIEWS:
            unet_pairs, colour_pairs, auto_pairs, unet_usable, colour_usable = [], [], [], [], []
            for s in (e for e in eval_scenes if e.sky == sky):
                scene = open_s2_scene(s.scene_dir)
                truth = _read_truth(s.truth_path)
                pred = label_scene_unet(model, scene, _view_config(view), unet_cfg)
                predictions[(s.name, sky, view)] = pred
                unet_pairs.append((truth, pred))
                colour_pairs.append((truth, label_scene(scene, _view_config(view)).labels))
                auto_pairs.append((label_scene(scene, S2LabelConfig()).labels, pred))
                product = label_scene(scene, _view_config(view, flag_unusable=True))
                unet_usable.append((truth, np.where(product.unusable, np.uint8(UNLABELED), pred)))
                colour_usable.append((truth, product.labels))
            sets[f"{sky}_{view}"] = {"unet": _key_metrics(_pooled(unet_pairs)),
                                     "color_labels": _key_metrics(_pooled(colour_pairs)),
                                     "unet_vs_auto_labels": _key_metrics(_pooled(auto_pairs)),
                                     "unet_usable": _key_metrics(_pooled(unet_usable)),
                                     "color_labels_usable": _key_metrics(_pooled(colour_usable))}
    evaluated = time.perf_counter()

    training = {
        "scenes": len(train_scenes),
        "views": list(config.train_views),
        "images": len(pairs),
        "label_source": "label_scene(S2LabelConfig()): filtered colour labels, opaque cloud/shadow unlabeled",
        "epochs": len(history),
        "last_epoch": history[-1] if history else {},
        "train_s": trained - labelled,
        "threads": config.threads,
    }
    card_metrics = {name: {"pixel_accuracy": v["unet"]["pixel_accuracy"], "mean_iou": v["unet"]["mean_iou"]}
                    for name, v in sets.items()}
    card_path = save_unet(model, unet_cfg, {"truth_sets": card_metrics, "last_epoch": training["last_epoch"]},
                          root / MODEL_DIR,
                          training_data={"source": "experiments/unet_experiment.py (simulated scenes)",
                                         "views": list(config.train_views),
                                         "scenes": len(train_scenes), "experiment": config.to_dict()})
    card = read_card(root / MODEL_DIR)

    lake = Lake(root / LAKE_DIR)
    day = config.sim_config("eval").day
    partitions = []
    for (name, sky, view), pred in sorted(predictions.items()):
        s = next(e for e in eval_scenes if e.name == name and e.sky == sky)
        key = S2_UNET_LABELS.key(date=day, scene=f"{name}_{sky}_{view}")
        write_unet_partition(lake, key, open_s2_scene(s.scene_dir), pred, card, label_config=_view_config(view))
        partitions.append(key.relpath)

    metrics: dict[str, Any] = {
        "config": config.to_dict(),
        "unet_config": unet_cfg.to_dict(),
        "sets": sets,
        "targets": _key_metrics(targets_vs_truth),
        "training": training,
        "model": {"card": str(card_path), "weights_sha256": card["weights_sha256"],
                  "param_count": card["param_count"]},
        "partitions": partitions,
        "eval_scenes": sorted({e.name for e in eval_scenes}),
        "runtime_s": {"simulate": simulated - started, "labels": labelled - simulated, "train": trained - labelled,
                      "evaluate": evaluated - trained, "total": time.perf_counter() - started},
    }
    text = json.dumps(metrics, indent=1, sort_keys=True, allow_nan=False, default=json_default)
    (root / METRICS_FILE).write_text(text + "\n")
    log.info("U-Net experiment done in %.0f s -> %s", metrics["runtime_s"]["total"], root / METRICS_FILE)
    result: dict[str, Any] = json.loads(text)
    return result


def _fmt(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.3f}"


def format_table(metrics: dict[str, Any]) -> str:
    """Markdown table: set x (U-Net, colour labels) x (accuracy, IoU thick/thin/water, mIoU)."""
    lines = ["| set | method | pixel accuracy | IoU thick | IoU thin | IoU water | mean IoU |",
             "|---|---|---|---|---|---|---|"]
    for sky in SKIES:
        for view in VIEWS:
            name = f"{sky}_{view}"
            result = metrics["sets"][name]
            lines.extend(_table_rows(name, result))
    return "\n".join(lines)


def _table_rows(name: str, result: dict[str, Any]) -> list[str]:
    lines = []
    for method in ("unet", "color_labels", "unet_usable", "color_labels_usable"):
        r = result.get(method)
        if r is None:
            continue
        iou = r["per_class_iou"]
        label = method.replace("_usable", f" (unusable masked, coverage {_fmt(r['coverage'])})").replace("_", " ")
        lines.append(f"| {name.replace('_', ' ')} | {label} | {_fmt(r['pixel_accuracy'])} | "
                     f"{_fmt(iou.get('0'))} | {_fmt(iou.get('1'))} | {_fmt(iou.get('2'))} | "
                     f"{_fmt(r['mean_iou'])} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``--out DIR`` (required), ``--quick``, ``--epochs N``, ``--threads N``.

    Prints the four-set table and returns 0.
    """
    parser = argparse.ArgumentParser(prog="python experiments/unet_experiment.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output folder (sim, lake, model, metrics.json)")
    parser.add_argument("--quick", action="store_true", help="tiny scenes and network, one epoch (smoke test)")
    parser.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    config = quick_config() if args.quick else ExperimentConfig()
    if args.epochs is not None:
        config = dataclasses.replace(config, unet={**config.unet, "epochs": args.epochs})
    if args.threads is not None:
        config = dataclasses.replace(config, threads=args.threads)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics = run_experiment(config, args.out)
    targets = metrics["targets"]
    print(format_table(metrics))
    sets = metrics["sets"]
    vs_auto = ", ".join(f"{sky} {view} {_fmt(sets[f'{sky}_{view}']['unet_vs_auto_labels']['pixel_accuracy'])}"
                        for sky in SKIES for view in VIEWS)
    print(f"U-Net vs filtered auto-labels (P2-style reference): {vs_auto}")
    print(f"training targets (filtered auto-labels) vs truth: accuracy {_fmt(targets['pixel_accuracy'])}, "
          f"coverage {_fmt(targets['coverage'])}; runtime {metrics['runtime_s']['total']:.0f} s "
          f"(training {metrics['runtime_s']['train']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

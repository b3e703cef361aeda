"""``seaice demo``: a simulated polar day through the daily DAG, then a summary.

1. ``seaice simulate`` writes the demo day (3 granules x 6 beams x 100 km of ATL03 with their
   ATL07/ATL10, and a Sentinel-2 scene over each track) into ``<workdir>/sim`` unless the same
   configuration is already there;
2. ``airflow dags test seaice_daily <day>`` runs the daily DAG on that catalog with a private
   Airflow home (SQLite metadata) and lake;
   Before it, when the lake has no promoted segment classifier, a small one is trained on
   another simulated day (:data:`TRAIN_CONFIG`: another date and seed, so the demo day stays
   unseen): that day is resampled, labelled and colocated in process, a training set is built,
   the notebook LSTM trains for :data:`TRAIN_EPOCHS` epochs and is promoted;
3. the summary lists what the run committed and what each input holds, and scores the 2 m
   corrected heights, the Sentinel-2 labels, the drift shifts, the labels transferred to the
   2 m segments, the classifier's classes of every segment, and the sea surface and freeboard
   (ATL10's beside ours) against the simulator's truth (:mod:`seaice_tasks.sim.scoring`), then
   prints the validation against ATL07/ATL10 and the paths of the quicklooks.

Everything stays under ``--workdir`` (default ``var/demo``, git-ignored).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from seaice_tasks.errors import SeaIceError
from seaice_tasks.orchestration import airflow_env, write_pools_file
from seaice_tasks.products import (
    CLASSIFY_REPORT,
    COLOCATE_REPORT,
    DAILY_SUMMARY,
    FREEBOARD_REPORT,
    INVENTORY,
    LABELS_FILE,
    RESAMPLE_REPORT,
    S2_LABELS,
    S2_LABELS_REPORT,
    S2_PAIRS,
    SEGMENTS_2M,
    SEGMENTS_LABELLED,
    SUMMARY_MD_FILE,
    TRAINING_SET,
    VALIDATE_REPORT,
)
from seaice_tasks.sim.geometry import SimConfig
from seaice_tasks.storage import Lake, PartitionKey

__all__ = ["DEMO_CONFIG", "TRAIN_CONFIG", "TRAIN_EPOCHS", "ensure_simulated_day", "prepare_labelled_day",
           "ensure_model", "score_classified", "score_freeboard_day", "run_demo"]

log = logging.getLogger(__name__)

#: The embedded default day: 2019-11-04, as the authors' first shared track.
DEMO_CONFIG: Final[SimConfig] = SimConfig()
AIRFLOW_TIMEOUT_S: Final[int] = 600
#: The day the demo's first model is trained on (another date and seed than the demo day).
TRAIN_CONFIG: Final[SimConfig] = SimConfig(date="2019-11-03", seed=20191103, granules=2, km=60.0)
#: Epochs of the demo's small model (the notebook preset trains 50).
TRAIN_EPOCHS: Final[int] = 6
#: Bytes kept of a real granule in the demo's corrupt granule (its HDF5 superblock, no datasets).
CORRUPT_BYTES: Final[int] = 10_000
#: Reference ground track, cycle and segment of the corrupt granule's name (no simulated track uses it).
CORRUPT_RGT_CYCLE: Final[str] = "00010510"
#: Name of the classifier the daily DAG uses by default.
MODEL_NAME: Final[str] = "seaice-is2-lstm"
#: The daily DAG and its number of tasks (for the progress lines).
DAG_ID: Final[str] = "seaice_daily"
DAG_TASKS: Final[int] = 10
#: Task states that end a task instance.
FINISHED_STATES: Final[frozenset[str]] = frozenset({"success", "failed", "skipped", "upstream_failed"})
#: Seconds between polls of the metadata DB for finished tasks.
WATCH_INTERVAL_S: Final[float] = 2.0
#: Wall-clock target of ``make demo`` on 2 cores (min), from the issue.
DEMO_TARGET_MIN: Final[int] = 15
#: The papers' accuracies (../shared/docs/PAPER_NUMBERS.md): P1's LSTM on 2 m segments, P2's U-Net on S2.
PAPER_LSTM_ACCURACY: Final[float] = 96.56
PAPER_UNET_ACCURACY: Final[float] = 98.97
#: The paper LSTM's recall of open water and thin ice (P1, PAPER_NUMBERS.md).
PAPER_WATER_RECALL: Final[float] = 0.60
PAPER_THIN_RECALL: Final[float] = 0.74
#: Targets of the published classes (accuracy %, recall / precision; docs/classification.md).
TARGET_ACCURACY: Final[float] = 97.0
TARGET_WATER_RP: Final[tuple[float, float]] = (0.90, 0.90)
TARGET_THIN_RP: Final[tuple[float, float]] = (0.85, 0.80)
#: Label value of unlabelled pixels (cloud, shadow, no data).
UNLABELED: Final[int] = 255


def ensure_simulated_day(config: SimConfig, out: Path) -> Path:
    """Simulate ``config`` into ``out`` unless the same configuration is there; return the catalog."""
    from seaice_tasks.sim.day import CATALOG_DIR, MANIFEST_FILE, TRUTH_DIR, simulate_day

    manifest = out / TRUTH_DIR / MANIFEST_FILE
    if manifest.exists() and json.loads(manifest.read_text()).get("config") == config.to_dict():
        print(f"seaice demo: simulated day already in {out}", flush=True)
        return out / CATALOG_DIR
    if out.exists():
        shutil.rmtree(out)
    result = simulate_day(config, out)
    print(result.summary(), flush=True)
    return result.catalog


def add_corrupt_granule(catalog: Path, day: str) -> Path:
    """Put a truncated copy of the day's first ATL03 granule into ``catalog`` under a granule name of its own.

    The file has a valid name and HDF5 signature but no datasets (:data:`CORRUPT_BYTES` bytes):
    discovery lists it, the 2 m job records it as a skip and the rest of the day is processed.
    Returns its path (written once; a second call finds it).
    """
    compact = day.replace("-", "")
    target = catalog / "icesat2" / f"ATL03_{compact}000000_{CORRUPT_RGT_CYCLE}_006_01.h5"
    if not target.exists():
        first = min(p for p in catalog.rglob(f"ATL03_{compact}*.h5") if p != target)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(first.read_bytes()[:CORRUPT_BYTES])
    return target


def _one_line(summary: Any) -> str:
    """``KIND item  beam:count ...`` for one input."""
    if summary.beams:
        counts = " ".join(f"{b.beam}:{b.n_photons if b.n_photons is not None else b.n_segments:,}"
                          for b in summary.beams)
        unit = "photons" if any(b.n_photons is not None for b in summary.beams) else "segments"
        return f"   {summary.product:<5} {summary.granule}  {unit} {counts}"
    extra = summary.extra
    return f"   {summary.product:<5} {summary.granule}  {extra.get('crs', '')} {extra.get('shape', '')}"


def _segment_score(lake: Lake, key: PartitionKey, truth_dir: Path) -> str:
    """``RMSE .. cm (photon noise .. cm), bias .. cm`` of one segments partition, or why not."""
    import pandas as pd

    from seaice_tasks.sim.atl03 import SYSTEM_JITTER_M
    from seaice_tasks.sim.scoring import score_segments

    found = sorted(truth_dir.glob(f"ATL03_{key.granule}_*_truth_bins.parquet"))
    if not found or key.beam is None:
        return "(no truth)"
    score = score_segments(lake.read_table(key).to_pandas(), pd.read_parquet(found[0]), key.beam, SYSTEM_JITTER_M)
    return (f"RMSE {100 * score.rmse_m:.1f} cm (photon noise {100 * score.noise_m:.1f} cm), "
            f"bias {100 * score.bias_m:+.2f} cm, photons {score.photons / max(score.truth_photons, 1):.3f} x truth")


def _label_score(lake: Lake, key: PartitionKey, truth_dir: Path) -> str:
    """``accuracy ..% (coverage ..%)`` of one label partition, or why not."""
    import io

    import rasterio

    from seaice_tasks.sim.s2 import TRUTH_CLASSES_NAME
    from seaice_tasks.sim.scoring import score_labels

    truth = truth_dir / str(key.scene) / TRUTH_CLASSES_NAME
    if not truth.exists():
        return "(no truth)"
    with rasterio.MemoryFile(io.BytesIO(lake.open_file(key, LABELS_FILE))) as mem, mem.open() as ds:
        labels = ds.read(1)
    score = score_labels(labels, truth)
    return f"accuracy {score['pixel_accuracy']:.1%} (coverage {score['coverage']:.1%})"


def label_accuracy(lake: Lake, day: dt.date, truth_dir: Path) -> float | None:
    """Pixel accuracy of the day's Sentinel-2 labels against the truth, pooled over scenes (None: no truth)."""
    import io

    import numpy as np
    import rasterio

    from seaice_tasks.sim.s2 import TRUTH_CLASSES_NAME

    right = total = 0
    for key in lake.partitions(S2_LABELS.name, day):
        truth_path = truth_dir / str(key.scene) / TRUTH_CLASSES_NAME
        if not truth_path.exists():
            continue
        with rasterio.MemoryFile(io.BytesIO(lake.open_file(key, LABELS_FILE))) as mem, mem.open() as ds:
            labels = np.asarray(ds.read(1))
        with rasterio.open(truth_path) as ds:
            truth = np.asarray(ds.read(1))
        both = (labels != UNLABELED) & (truth != UNLABELED)
        right += int(np.count_nonzero(labels[both] == truth[both]))
        total += int(np.count_nonzero(both))
    return right / total if total else None


def _colocation_summary(lake: Lake, day: dt.date, truth_dir: Path) -> None:
    """Pairs with their drift shift beside the simulator's drift, and label agreement vs truth."""
    import numpy as np
    import pandas as pd

    from seaice_tasks.sim.day import MANIFEST_FILE
    from seaice_tasks.sim.scoring import score_label_transfer, truth_classes

    key = S2_PAIRS.key(date=day)
    if lake.manifest(key) is None:
        print("\n== colocation: no pair table")
        return
    pairs = lake.read_table(key).to_pandas()
    manifest = truth_dir / MANIFEST_FILE
    drift = ({s["scene"]: s["drift_m"] for s in json.loads(manifest.read_text())["plan"]["scenes"]}
             if manifest.exists() else {})
    print(f"\n== colocation: {len(pairs)} pair(s); drift shift (EPSG:3976) vs the simulator's drift")
    for row in pairs.itertuples():
        true = drift.get(row.scene)
        err = "no truth"
        if true:
            miss = float(np.hypot(row.shift_dx_m - true[0], row.shift_dy_m - true[1]))
            err = f"truth ({true[0]:+.0f}, {true[1]:+.0f}) m, error {miss:.1f} m"
        print(f"   {row.granule}/{row.beam} x {row.scene}  dt {row.dt_s / 60:+.0f} min, {row.overlap_m / 1000:.1f} km, "
              f"shift ({row.shift_dx_m:+.0f}, {row.shift_dy_m:+.0f}) m [{row.shift_source}, confidence "
              f"{row.shift_confidence:.2f}], {err}; agreement {row.agreement_before:.2f} -> {row.agreement_after:.2f}")
    truths, labels = [], []
    for k in lake.partitions(SEGMENTS_LABELLED.name, day):
        found = sorted(truth_dir.glob(f"ATL03_{k.granule}_*_truth_bins.parquet"))
        if found:
            seg = lake.read_table(k).to_pandas()
            truths.append(truth_classes(seg, pd.read_parquet(found[0]), str(k.beam)))
            labels.append(seg["label"].to_numpy())
    if truths:
        sc = score_label_transfer(np.concatenate(truths), np.concatenate(labels))
        rec = ", ".join(f"{name} {sc['recall'][c]:.2f}/{sc['precision'][c]:.2f}"
                        for c, name in ((0, "thick"), (1, "thin"), (2, "water")) if sc["recall"][c] is not None)
        print(f"   2 m labels vs truth: agreement {sc['accuracy']:.1%} on {sc['n_labelled']:,} labelled segments "
              f"({sc['labelled']:.1%} labelled); recall/precision {rec}")
    for ts in lake.partitions(TRAINING_SET.name):
        info = lake.require(ts).info
        fractions = " ".join(f"{k} {v:.1%}" for k, v in sorted(info.get("class_fractions", {}).items()))
        print(f"   training set {ts.relpath}: windows {info.get('windows')}, classes {fractions}, "
              f"split by {info.get('split_method')}")


def prepare_labelled_day(config: SimConfig, sim_dir: Path, lake: Lake, colocate: Any = None) -> Path:
    """Simulate a day and run discover, resample, S2 labels and colocation on it in process; its truth folder.

    ``colocate``: the colocation's :class:`~seaice_tasks.is2.colocate.ColocateConfig` (default: its defaults).
    """
    from seaice_tasks.catalog import run_discover
    from seaice_tasks.is2.colocate import ColocateConfig
    from seaice_tasks.is2.resample import ResampleConfig
    from seaice_tasks.s2.scene_labels import S2LabelConfig
    from seaice_tasks.sim.day import TRUTH_DIR
    from seaice_tasks.spark_jobs.runner import day_tracks, inventory_uris, load_job, run_job
    from seaice_tasks.storage import InputStore

    catalog = ensure_simulated_day(config, sim_dir)
    day = dt.date.fromisoformat(config.date)
    run_discover(config.date, catalog=str(catalog), lake=lake.root)
    inputs = InputStore(str(catalog))
    granules, scenes = inventory_uris(lake, day, "ATL03"), inventory_uris(lake, day, "S2")
    run_job(load_job("resample"), granules, lake, ResampleConfig(), day=config.date, inputs=inputs)
    run_job(load_job("s2_labels"), scenes, lake, S2LabelConfig(), day=config.date, inputs=inputs)
    run_job(load_job("colocate"), day_tracks(lake, day), lake, colocate or ColocateConfig(), day=config.date,
            whole_day=True)
    return sim_dir / TRUTH_DIR


def ensure_model(lake: Lake, workdir: Path, epochs: int = TRAIN_EPOCHS) -> str:
    """The promoted classifier's version; trains and promotes a small one on :data:`TRAIN_CONFIG` when none is."""
    from seaice_tasks.is2.training_set import TrainingSetConfig, run_training_set
    from seaice_tasks.models.lake import promoted_version
    from seaice_tasks.train.promotion import promote
    from seaice_tasks.train.segments import SegmentTrainConfig, train_segment_model

    version = promoted_version(lake, MODEL_NAME)
    if version is not None:
        print(f"seaice demo: model {MODEL_NAME} {version} is promoted", flush=True)
        return version
    print(f"seaice demo: no promoted classifier: training a small one ({epochs} epochs) on the simulated day "
          f"{TRAIN_CONFIG.date} (seed {TRAIN_CONFIG.seed})", flush=True)
    prepare_labelled_day(TRAIN_CONFIG, workdir / "train_sim", lake)
    ts = run_training_set(lake, [dt.date.fromisoformat(TRAIN_CONFIG.date)], TrainingSetConfig(name="demo-train"))
    result = train_segment_model(lake, SegmentTrainConfig(name=MODEL_NAME, training_set="demo-train",
                                                          training_set_version=str(ts["version"]), epochs=epochs))
    decision = promote(lake, MODEL_NAME, str(result["version"]))
    test = result.get("metrics", {}).get("test", {})
    outcome = "promoted" if decision.get("promoted") else \
        f"NOT promoted ({decision.get('reason')}): the day is run without classes"
    print(f"seaice demo: trained {result['model']}: held-out accuracy {test.get('accuracy', float('nan')):.3f} "
          f"vs the training day's labels (S2 and photons), {outcome}", flush=True)
    return str(result["version"])


def score_classified(lake: Lake, day: dt.date, truth_dir: Path) -> dict[str, Any] | None:
    """The classifier's classes of the day's segments against the simulator's truth (None: nothing classified)."""
    import pandas as pd

    from seaice_tasks.products import CLASSES_FILE, SEGMENTS_CLASSIFIED
    from seaice_tasks.sim.scoring import score_classes, truth_classes

    def tracks() -> Iterator[tuple[pd.DataFrame, Any]]:
        for key in lake.partitions(SEGMENTS_CLASSIFIED.name, day):
            found = sorted(truth_dir.glob(f"ATL03_{key.granule}_*_truth_bins.parquet"))
            if found:
                out = lake.read_table(key, CLASSES_FILE).to_pandas()
                yield out, truth_classes(out, pd.read_parquet(found[0]), str(key.beam))

    return score_classes(tracks())


def _classification_summary(lake: Lake, day: dt.date, report: dict[str, Any] | None) -> None:
    """Print the day's classification; ``report`` is :func:`score_classified`'s."""
    from seaice_tasks.products import SEGMENTS_CLASSIFIED

    keys = lake.partitions(SEGMENTS_CLASSIFIED.name, day)
    if not keys:
        print("\n== classification: nothing classified (no promoted model)")
        return
    model = lake.require(keys[0]).info.get("model", {})
    print(f"\n== classification: {len(keys)} track(s) by {model.get('name')} {model.get('version')} "
          f"(trained on {model.get('training_set')})")
    if report is not None:
        rec = ", ".join(f"{k} {report['recall'][k]:.2f}/{report['precision'][k]:.2f}"
                        for k in ("thick", "thin", "water") if report["recall"][k] is not None)
        print(f"   2 m classes vs truth: accuracy {report['accuracy']:.1%} on {report['n']:,} segments, macro F1 "
              f"{report['macro_f1']:.3f}; recall/precision {rec}; {report['flagged_fraction']:.1%} without a full "
              "window (flagged, not classified)")


def score_freeboard_day(lake: Lake, day: dt.date, truth_dir: Path) -> dict[str, Any] | None:
    """The day's sea surface and freeboard against the truth, the simulated ATL10 beside ours (None: no freeboard)."""
    import pandas as pd

    from seaice_tasks.io.atl10 import read_atl10_freeboard
    from seaice_tasks.products import FREEBOARD
    from seaice_tasks.sim.scoring import score_freeboard
    from seaice_tasks.spark_jobs.runner import inventory_uris
    from seaice_tasks.surface.validate import companion_uri

    keys = lake.partitions(FREEBOARD.name, day)
    if not keys:
        return None
    atl10 = inventory_uris(lake, day, "ATL10")

    def tracks() -> Iterator[tuple[pd.DataFrame, pd.DataFrame, str, pd.DataFrame | None]]:
        for key in keys:
            found = sorted(truth_dir.glob(f"ATL03_{key.granule}_*_truth_bins.parquet"))
            if not found:
                continue
            uri = companion_uri(str(key.granule), atl10, "ATL10")
            ref = read_atl10_freeboard(uri, str(key.beam)) if uri else None
            yield lake.read_table(key).to_pandas(), pd.read_parquet(found[0]), str(key.beam), ref

    return score_freeboard(tracks())


def _freeboard_summary(lake: Lake, day: dt.date, score: dict[str, Any] | None) -> None:
    """Print the day's sea surface, freeboard and validation; ``score`` is :func:`score_freeboard_day`'s."""
    from seaice_tasks.products import QUICKLOOK_FILE, VALIDATION, VALIDATION_DAY, VALIDATION_MD_FILE

    if score is None:
        print("\n== sea surface and freeboard: nothing computed (no classified segments)")
        return
    ss, fb = score["sea_surface"], score["freeboard_ice"]
    print(f"\n== sea surface and freeboard vs the simulator's truth ({fb['n']:,} ice segments)")
    print(f"   sea surface per 10 km section: bias {ss['bias_m'] * 100:+.1f} cm, "
          f"RMSE {ss['section_rmse_m'] * 100:.1f} cm ({ss['sections']} sections; target <= 2 / 3 cm)")
    print(f"   2 m ice freeboard RMSE {fb['rmse_m'] * 100:.1f} cm = {fb['ratio']:.2f} x the 2 m heights' own RMSE "
          f"{fb['height_rmse_m'] * 100:.1f} cm (target <= 1.2 x)")
    for name, row in score.get("atl10_extent", {}).items():
        if row["n"]:
            print(f"   at ATL10's segments, {name:5s} (n={row['n']:,}): ours RMSE {row['ours_rmse_m'] * 100:.1f} cm, "
                  f"ATL10 {row['atl10_rmse_m'] * 100:.1f} cm")
    day_key = VALIDATION_DAY.key(date=day)
    if lake.manifest(day_key) is not None:
        print("\n== validation against ATL07/ATL10 (" + lake.partition_url(day_key) + ")")
        text = lake.open_file(day_key, VALIDATION_MD_FILE).decode()
        print("\n".join("   " + line for line in text.splitlines()[4:10]))
        for key in lake.partitions(VALIDATION.name, day):
            man = lake.require(key)
            print(f"   quicklook: {lake.path(key.relpath, str(man.version), QUICKLOOK_FILE)}")


def task_states(db: Path, dag_id: str) -> list[tuple[str, str, float | None]]:
    """(task, state, duration s) of the last run of ``dag_id`` in an Airflow SQLite metadata DB, by start time."""
    import sqlite3

    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)) as conn:
        try:
            rows = conn.execute(
                "SELECT task_id, state, duration FROM task_instance WHERE dag_id = ? AND run_id = "
                "(SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1) "
                "ORDER BY start_date IS NULL, start_date, task_id", (dag_id, dag_id)).fetchall()
        except sqlite3.Error:  # tables not there yet, or locked for a moment
            return []
    return [(str(t), str(st or "none"), float(d) if d is not None else None) for t, st, d in rows]


class TaskWatcher(threading.Thread):
    """Prints one line per task of the DAG run as it finishes (polls the metadata DB)."""

    def __init__(self, db: Path, dag_id: str, total: int) -> None:
        super().__init__(daemon=True)
        self.db, self.dag_id, self.total = db, dag_id, total
        self.stop_event = threading.Event()
        self.seen: set[str] = set()

    def run(self) -> None:
        while not self.stop_event.wait(WATCH_INTERVAL_S):
            self.report()

    def report(self) -> None:
        """Print the tasks that finished since the last call."""
        for task, state, duration in task_states(self.db, self.dag_id):
            if state in FINISHED_STATES and task not in self.seen:
                self.seen.add(task)
                took = f"{duration:6.1f} s" if duration is not None else "      -"
                print(f"   [{len(self.seen):2d}/{self.total}] {task:<15} {state:<8} {took}", flush=True)

    def finish(self) -> None:
        """Stop polling and print what is left."""
        self.stop_event.set()
        self.join(timeout=2 * WATCH_INTERVAL_S)
        self.report()


def _fmt(value: float | None, scale: float = 1.0, unit: str = "", sign: bool = False) -> str:
    if value is None or value != value:
        return "-"
    return f"{value * scale:{'+' if sign else ''}.1f}{unit}"


def summary_rows(lake: Lake, day: dt.date, truth_dir: Path, cls: dict[str, Any] | None, fb: dict[str, Any] | None,
                 tasks: list[tuple[str, str, float | None]], wall_s: float) -> list[tuple[str, str, str, str]]:
    """The demo's closing table: (what, ours, reference, target).

    ``cls`` and ``fb`` are :func:`score_classified`'s and :func:`score_freeboard_day`'s (scored once).
    """
    rows: list[tuple[str, str, str, str]] = []
    rows.append(("2 m classes vs truth (accuracy)", _fmt(cls["accuracy"] if cls else None, 100, " %"),
                 f"paper LSTM {PAPER_LSTM_ACCURACY:.2f} % (vs S2 labels)", f">= {TARGET_ACCURACY:.0f} %"))
    if cls:
        for name, paper, (r_min, p_min) in (("water", PAPER_WATER_RECALL, TARGET_WATER_RP),
                                            ("thin", PAPER_THIN_RECALL, TARGET_THIN_RP)):
            r, p = cls["recall"].get(name), cls["precision"].get(name)
            ours = " / ".join("-" if v is None else f"{v:.2f}" for v in (r, p))
            rows.append((f"{'open water' if name == 'water' else 'thin ice'} recall / precision", ours,
                         f"paper LSTM recall {paper:.2f}", f">= {r_min:.2f} / {p_min:.2f}"))
    if fb is not None:
        ice = fb["freeboard_ice"]
        rows.append(("2 m ice freeboard RMSE vs truth", _fmt(ice["rmse_m"], 100, " cm"),
                     f"{ice['ratio']:.2f} x the heights' RMSE", "<= 1.2 x"))
        ext = fb.get("atl10_extent", {}).get("all", {})
        if ext.get("n"):
            rows.append(("freeboard RMSE at ATL10's segments", _fmt(ext["ours_rmse_m"], 100, " cm"),
                         f"ATL10 {_fmt(ext['atl10_rmse_m'], 100, ' cm')}", "below ATL10"))
        ss = fb["sea_surface"]
        rows.append(("sea surface bias (10 km sections)", _fmt(ss["bias_m"], 100, " cm", sign=True),
                     f"section RMSE {_fmt(ss['section_rmse_m'], 100, ' cm')}", "bias <= 2, RMSE <= 3 cm"))
    else:
        rows.append(("freeboard / sea surface", "-", "nothing classified", "-"))
    acc = label_accuracy(lake, day, truth_dir)
    rows.append(("S2 colour labels vs truth (pixels)", _fmt(acc, 100, " %"),
                 f"paper U-Net {PAPER_UNET_ACCURACY:.2f} % (vs colour labels)", "-"))
    incidents = 0
    for stage in (RESAMPLE_REPORT, S2_LABELS_REPORT, COLOCATE_REPORT, CLASSIFY_REPORT, FREEBOARD_REPORT,
                  VALIDATE_REPORT):
        report = lake.manifest(stage.key(date=day))
        incidents += len(report.info.get("skipped", [])) + len(report.info.get("failed", [])) if report else 0
    inventory = lake.manifest(INVENTORY.key(date=day))
    incidents += len(inventory.info.get("skipped", [])) if inventory else 0
    failed = [t for t, state, _ in tasks if state not in ("success", "skipped")]
    rows.append(("incidents (skips + failures)", str(incidents), f"tasks not green: {', '.join(failed) or 'none'}",
                 "the corrupt granule only"))
    for task, state, duration in tasks:
        rows.append((f"  task {task}", _fmt(duration, 1, " s"), state, "-"))
    rows.append(("whole demo (wall clock)", f"{wall_s / 60:.1f} min", f"{os.cpu_count()} cores",
                 f"<= {DEMO_TARGET_MIN} min"))
    return rows


def _table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("", "ours", "beside it", "target")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _airflow_bin() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else (shutil.which("airflow") or "airflow")


def run_demo(workdir: str | os.PathLike[str] = "var/demo", date: str | None = None) -> int:
    """Run the demo; returns the process exit status (0 on success)."""
    from seaice_tasks.io.inspect import inspect_path

    started = time.monotonic()
    wd = Path(workdir).resolve()
    config = DEMO_CONFIG if date is None else SimConfig(date=date)
    lake_dir, home = wd / "lake", wd / "airflow"
    catalog = ensure_simulated_day(config, wd / "sim")
    corrupt = add_corrupt_granule(catalog, config.date)
    print(f"seaice demo: a truncated granule in the catalog: {corrupt} (the day must finish, recording its skip)")
    env = airflow_env(home, extra={"SEAICE_LAKE": str(lake_dir), "SEAICE_CATALOG": str(catalog)})
    airflow = _airflow_bin()
    print(f"seaice demo: Airflow home {home}, catalog {catalog}, lake {lake_dir}", flush=True)
    ensure_model(Lake(lake_dir), wd)
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=AIRFLOW_TIMEOUT_S)
    subprocess.run([airflow, "pools", "import", str(write_pools_file(home / "pools.json"))], env=env, check=True,
                   capture_output=True, timeout=AIRFLOW_TIMEOUT_S)
    day = config.date
    print(f"seaice demo: airflow dags test seaice_daily {day} (a line per task as it finishes)", flush=True)
    watcher = TaskWatcher(home / "airflow.db", DAG_ID, DAG_TASKS)
    watcher.start()
    try:
        proc = subprocess.run([airflow, "dags", "test", DAG_ID, day], env=env,
                              capture_output=True, text=True, timeout=AIRFLOW_TIMEOUT_S)
    finally:
        watcher.finish()
    log_path = wd / f"dags_test_{day}.log"
    log_path.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        print(proc.stdout[-4000:] + proc.stderr[-4000:], file=sys.stderr)
        print(f"seaice demo: DAG run for {day} failed (log: {log_path})", file=sys.stderr)
        return proc.returncode
    logging.getLogger("seaice_tasks").setLevel(logging.ERROR)  # summaries list the warnings
    lake = Lake(lake_dir)
    the_day = dt.date.fromisoformat(day)
    manifest = lake.require(INVENTORY.key(date=the_day))
    print(f"\n== {day}: inventory committed at {lake.partition_url(manifest.key)}")
    print(f"   inputs by kind: {manifest.info['counts']}")
    for skip in manifest.info["skipped"]:
        print(f"   skipped: {skip['uri']}: {skip['reason']}")
    table = lake.read_table(manifest.key).to_pandas()
    for uri in table["uri"]:
        try:
            print(_one_line(inspect_path(uri)))
        except SeaIceError as exc:  # the corrupt granule: the jobs skipped it too (below)
            print(f"   unreadable: {exc}")
    from seaice_tasks.sim.day import TRUTH_DIR

    truth_dir = wd / "sim" / TRUTH_DIR
    segments = lake.partitions(SEGMENTS_2M.name, the_day)
    print(f"\n== 2 m segments: {len(segments)} partition(s); h_cor_mean vs the simulator's truth")
    for key in segments:
        print(f"   {lake.partition_url(key)}  {lake.require(key).rows:,} bins  {_segment_score(lake, key, truth_dir)}")
    labels = lake.partitions(S2_LABELS.name, the_day)
    print(f"\n== Sentinel-2 labels: {len(labels)} scene(s); accuracy vs the simulator's truth")
    for key in labels:
        info = lake.require(key).info
        fr = info["class_fractions"]
        print(f"   {lake.partition_url(key)}  thick {fr['thick_ice']:.1%} thin {fr['thin_ice']:.1%} "
              f"water {fr['open_water']:.1%}, cloud/shadow {info['cloud_fraction']:.1%}  "
              f"{_label_score(lake, key, truth_dir)}")
    _colocation_summary(lake, the_day, truth_dir)
    classes_score = score_classified(lake, the_day, truth_dir)
    freeboard_score = score_freeboard_day(lake, the_day, truth_dir)
    _classification_summary(lake, the_day, classes_score)
    _freeboard_summary(lake, the_day, freeboard_score)
    for stage in (RESAMPLE_REPORT.name, S2_LABELS_REPORT.name, COLOCATE_REPORT.name, CLASSIFY_REPORT.name,
                  FREEBOARD_REPORT.name, VALIDATE_REPORT.name):
        report = lake.manifest(PartitionKey(stage, the_day))
        for skip in (report.info.get("skipped", []) if report else []):
            what = skip.get("uri") or skip.get("granule") or skip.get("pair") or skip.get("scene") or "-"
            print(f"   {stage}: skipped {what}: {skip['reason']}")
        for fail in (report.info.get("failed", []) if report else []):
            print(f"   {stage}: failed {fail.get('partition') or fail.get('scene') or fail.get('pair')}: "
                  f"{fail['reason']}")
    from seaice_tasks.monitoring import lake_status, status_table

    print(f"\n== seaice status --lake {lake_dir} --today {day} --days 1")
    print("   " + status_table(lake_status(lake, the_day)).replace("\n", "\n   "))
    from seaice_tasks.publish import CATALOG_FILE, TIMINGS_DIR

    summary = lake.manifest(DAILY_SUMMARY.key(date=the_day))
    if summary is not None:
        print(f"\n== published: daily summary {lake.path(summary.key.relpath, str(summary.version), SUMMARY_MD_FILE)}")
        print(f"   STAC catalog {lake.path(CATALOG_FILE)} (one collection per product, an item per partition)")
        print(f"   run timings {lake.path(TIMINGS_DIR, f'{day}.md')}")
    tasks = task_states(home / "airflow.db", DAG_ID)
    print(f"\n== summary of {day} (scored against the simulator's truth; timings from Airflow's task durations)")
    print("   " + _table(summary_rows(lake, the_day, truth_dir, classes_score, freeboard_score, tasks,
                                   time.monotonic() - started))
          .replace("\n", "\n   "))
    print(f"\nseaice demo: done; outputs under {lake_dir} (Airflow log {log_path})")
    return 0

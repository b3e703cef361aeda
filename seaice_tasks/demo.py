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

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from seaice_tasks.errors import SeaIceError
from seaice_tasks.orchestration import airflow_env, write_pools_file
from seaice_tasks.products import (
    CLASSIFY_REPORT,
    COLOCATE_REPORT,
    FREEBOARD_REPORT,
    INVENTORY,
    LABELS_FILE,
    RESAMPLE_REPORT,
    S2_LABELS,
    S2_LABELS_REPORT,
    S2_PAIRS,
    SEGMENTS_2M,
    SEGMENTS_LABELLED,
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


def prepare_labelled_day(config: SimConfig, sim_dir: Path, lake: Lake) -> Path:
    """Simulate a day and run discover, resample, S2 labels and colocation on it in process; its truth folder."""
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
    run_job(load_job("colocate"), day_tracks(lake, day), lake, ColocateConfig(), day=config.date, whole_day=True)
    return sim_dir / TRUTH_DIR


def ensure_model(lake: Lake, workdir: Path, epochs: int = TRAIN_EPOCHS) -> str:
    """The promoted classifier's version; trains and promotes a small one on :data:`TRAIN_CONFIG` when none is."""
    from seaice_tasks.is2.training_set import TrainingSetConfig, run_training_set
    from seaice_tasks.models.lake import promote, promoted_version
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
    promote(lake, MODEL_NAME, str(result["version"]))
    test = result.get("metrics", {}).get("test", {})
    print(f"seaice demo: trained {result['model']}: held-out accuracy {test.get('accuracy', float('nan')):.3f} "
          f"vs the training day's S2 labels, promoted", flush=True)
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


def _classification_summary(lake: Lake, day: dt.date, truth_dir: Path) -> None:
    from seaice_tasks.products import SEGMENTS_CLASSIFIED

    keys = lake.partitions(SEGMENTS_CLASSIFIED.name, day)
    if not keys:
        print("\n== classification: nothing classified (no promoted model)")
        return
    model = lake.require(keys[0]).info.get("model", {})
    report = score_classified(lake, day, truth_dir)
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


def _freeboard_summary(lake: Lake, day: dt.date, truth_dir: Path) -> None:
    from seaice_tasks.products import QUICKLOOK_FILE, VALIDATION, VALIDATION_DAY, VALIDATION_MD_FILE

    score = score_freeboard_day(lake, day, truth_dir)
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


def _airflow_bin() -> str:
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else (shutil.which("airflow") or "airflow")


def run_demo(workdir: str | os.PathLike[str] = "var/demo", date: str | None = None) -> int:
    """Run the demo; returns the process exit status (0 on success)."""
    from seaice_tasks.io.inspect import inspect_path

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
    print(f"seaice demo: airflow dags test seaice_daily {day}", flush=True)
    proc = subprocess.run([airflow, "dags", "test", "seaice_daily", day], env=env,
                          capture_output=True, text=True, timeout=AIRFLOW_TIMEOUT_S)
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
    _classification_summary(lake, the_day, truth_dir)
    _freeboard_summary(lake, the_day, truth_dir)
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
    print(f"\nseaice demo: done; outputs under {lake_dir} (Airflow log {log_path})")
    return 0

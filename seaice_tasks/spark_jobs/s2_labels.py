"""Spark job: Sentinel-2 scenes -> label partitions (``s2_labels/date=D/granule=<scene>``).

Usage::

    spark-submit seaice_tasks/spark_jobs/s2_labels.py --scenes DIR1,DIR2 --lake ROOT --config '{...}'
    spark-submit seaice_tasks/spark_jobs/s2_labels.py --date 2019-11-04 --lake ROOT   # from the inventory

Load phase: executors open the scenes (one row per scene: grid checks, windows, or the reason
to skip it).  Work items are (scene, window) pairs, so one scene spreads over executors; items
are packed by pixels into a few Spark tasks per core (:func:`~seaice_tasks.spark_jobs._common.
task_dataframe`).  With the thin-cloud/shadow filter on, a first ``mapInPandas`` pass returns
each window's 256-bin ``diff`` histogram and the driver sums them into the scene's filter
statistics (the authors' Otsu level is global); the second pass labels each window (read with a
halo, cropped) and stages it under a shared token; the third pass (one item per scene) mosaics
the scene's windows and stages its labels COG, unusable-mask COG and quicklook
(:func:`seaice_tasks.s2.scene_labels.stage_scene_files`).  The driver then adopts each scene's
files and commits the partition, manifest last.  A scene that cannot be opened (missing band,
grids that differ, corrupt file), that holds no valid pixel or that is fully clouded is skipped
with its reason in ``s2_labels_report/date=D``; the other scenes go on.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from seaice_tasks.errors import SeaIceError
from seaice_tasks.spark_jobs._common import (
    DEFAULT_TASKS_PER_CORE,
    inventory_uris,
    print_result,
    record_mapper,
    spark_session,
    split_uris,
    task_dataframe,
    write_report,
)
from seaice_tasks.storage import FileEntry, Lake, PartitionKey, lake_from_env

__all__ = ["ScenePlan", "plan_scene", "plan_scenes", "scene_item", "run_local", "main", "REPORT_STAGE"]

log = logging.getLogger("seaice_tasks.spark_jobs.s2_labels")

REPORT_STAGE: Final[str] = "s2_labels_report"
#: Exit status when a job argument is unusable (nothing is written).
EXIT_BAD_ARGUMENT: Final[int] = 2
_CONFIG_PATH: Final[str] = "seaice_tasks.s2.scene_labels:S2LabelConfig"
#: Importable name of this module (``__name__`` is ``__main__`` under spark-submit).
_MODULE: Final[str] = "seaice_tasks.spark_jobs.s2_labels"
_HIST_SCHEMA: Final[str] = "scene string, window long, hist array<long>"
_LABEL_SCHEMA: Final[str] = "scene string, window long, name string, error string"
_PLAN_SCHEMA: Final[str] = "uri string, scene string, date string, windows string, skip string"
_SCENE_SCHEMA: Final[str] = (
    "scene string, uri string, date string, token string, windows string, stats string, unet_model string"
)
_SCENE_RESULT_SCHEMA: Final[str] = (
    "scene string, entries string, info string, unet_entries string, unet_info string, skip string, error string"
)
#: U-Net models loaded in this process, by folder (:func:`_unet`).
_MODELS: dict[str, Any] = {}
_ITEM_SCHEMA: Final[str] = (
    "scene string, uri string, date string, window long, row_off long, col_off long, height long, width long, "
    "token string, otsu_level long, diff2_min long, diff2_max long, n_valid long, unet_model string"
)


@dataclasses.dataclass(frozen=True)
class ScenePlan:
    """A scene the driver could open, with its windows."""

    uri: str
    scene: str
    date: str
    windows: tuple[Any, ...]
    token: str

    @property
    def key(self) -> PartitionKey:
        """The scene's label partition."""
        from seaice_tasks.s2.scene_labels import S2_LABELS_STAGE

        return PartitionKey(S2_LABELS_STAGE, dt.date.fromisoformat(self.date), self.scene)


def _open(uri: str, config: Any, lake: Lake) -> Any:
    from seaice_tasks.io.s2 import open_s2_scene

    so = lake.storage_options if "://" in uri and not uri.startswith("file://") else None
    return open_s2_scene(uri, config.read, storage_options=so)


def plan_scene(uri: str, config: Any, lake: Lake, token: str) -> ScenePlan:
    """Open one scene (grid checks only) and split it into windows.

    Raises
    ------
    SeaIceError
        Missing band, grids that differ, corrupt file, no valid pixel, or a name that is not a
        Sentinel-2 scene id (it cannot be dated).
    """
    from seaice_tasks.s2.scene_labels import plan_windows

    scene = _open(uri, config, lake)
    if scene.valid_fraction <= 0.0:
        raise SeaIceError(f"{uri}: no valid pixel (all nodata)")
    if scene.scene_id is None:
        raise SeaIceError(f"{uri}: name is not a Sentinel-2 scene id (cannot date it)")
    return ScenePlan(uri=uri, scene=scene.scene_id.scene, date=scene.scene_id.sensing.date().isoformat(),
                     windows=tuple(plan_windows(scene.shape, config.window_px)), token=token)


def plan_scenes(
    uris: Sequence[str], config: Any, lake: Lake, token: str | None = None
) -> tuple[list[ScenePlan], list[dict[str, str]]]:
    """:func:`plan_scene` for every URI in this process; unreadable scenes become skips."""
    token = token or uuid.uuid4().hex
    plans: list[ScenePlan] = []
    skips: list[dict[str, str]] = []
    for uri in uris:
        try:
            plans.append(plan_scene(uri, config, lake, token))
        except SeaIceError as exc:
            skips.append({"uri": uri, "reason": str(exc)})
    for skip in skips:
        log.warning("s2_labels: skipping %s", skip["reason"])
    return plans, skips


def plan_record(rec: dict[str, Any], config: Any, lake: Lake) -> dict[str, Any]:
    """Executor side of the load phase: one scene -> its plan as a row of :data:`_PLAN_SCHEMA`."""
    uri = str(rec["uri"])
    try:
        plan = plan_scene(uri, config, lake, str(rec["token"]))
    except SeaIceError as exc:
        return {"uri": uri, "scene": "", "date": "", "windows": "[]", "skip": str(exc)}
    return {"uri": uri, "scene": plan.scene, "date": plan.date, "skip": "",
            "windows": _windows_json(plan.windows)}


def _windows_json(windows: Sequence[Any]) -> str:
    """A scene's windows as a JSON column: ``[[row_off, col_off, height, width], ...]``."""
    return json.dumps([dataclasses.astuple(w) for w in windows])


def _windows_from_json(text: str) -> tuple[Any, ...]:
    """Inverse of :func:`_windows_json`: a tuple of ``WindowSpec``."""
    from seaice_tasks.s2.scene_labels import WindowSpec

    return tuple(WindowSpec(*(int(v) for v in w)) for w in json.loads(text))


def _plan_from_row(row: dict[str, Any], token: str) -> ScenePlan:
    return ScenePlan(uri=row["uri"], scene=row["scene"], date=row["date"], windows=_windows_from_json(row["windows"]),
                     token=token)


def _items(plans: Sequence[ScenePlan], stats: dict[str, Any], unet_model: str = "") -> pd.DataFrame:
    rows = []
    for plan in plans:
        st = stats.get(plan.scene)
        for k, w in enumerate(plan.windows):
            rows.append({
                "scene": plan.scene, "uri": plan.uri, "date": plan.date, "window": k, "row_off": w.row_off,
                "col_off": w.col_off, "height": w.height, "width": w.width, "token": plan.token,
                "otsu_level": st.otsu_level if st else -1, "diff2_min": st.diff2_min if st else -1,
                "diff2_max": st.diff2_max if st else -1, "n_valid": st.n_valid if st else -1,
                "unet_model": unet_model,
            })
    return pd.DataFrame(rows, columns=[c.split()[0] for c in _ITEM_SCHEMA.split(", ")])


def _spec(rec: dict[str, Any]) -> Any:
    from seaice_tasks.s2.scene_labels import WindowSpec

    return WindowSpec(int(rec["row_off"]), int(rec["col_off"]), int(rec["height"]), int(rec["width"]))


def histogram_item(rec: dict[str, Any], config: Any, lake: Lake) -> dict[str, Any]:
    """Pass 1 of one window: its ``diff`` histogram."""
    from seaice_tasks.s2.scene_labels import window_histogram

    hist = window_histogram(_open(rec["uri"], config, lake), _spec(rec), config)
    return {"scene": rec["scene"], "window": int(rec["window"]), "hist": hist.tolist()}


def _unet(path: str) -> Any:
    """The U-Net of a model folder, loaded once per process (executors keep it across tasks).

    Under Spark the workers run with ``OMP_NUM_THREADS=1`` (:func:`spark_session`), so torch uses
    one thread per task; in one process (``run_local``) torch keeps its own setting.
    """
    loaded = _MODELS.get(path)
    if loaded is None:
        from seaice_tasks.s2.unet import load_model

        loaded = _MODELS[path] = load_model(path)
    return loaded


def label_item(rec: dict[str, Any], config: Any, lake: Lake) -> dict[str, Any]:
    """Pass 2 of one window: labels/unusable/valid (and U-Net labels) staged as ``window-NNNNN.npz``."""
    from seaice_tasks.s2.cloud_shadow import FilterStats
    from seaice_tasks.s2.scene_labels import S2_LABELS_STAGE, label_window

    name = f"window-{int(rec['window']):05d}.npz"
    out = {"scene": rec["scene"], "window": int(rec["window"]), "name": name, "error": ""}
    try:
        stats = (FilterStats(int(rec["otsu_level"]), int(rec["diff2_min"]), int(rec["diff2_max"]),
                             int(rec["n_valid"])) if int(rec["otsu_level"]) >= 0 else None)
        scene = _open(rec["uri"], config, lake)
        labels, unusable, valid = label_window(scene, _spec(rec), config, stats)
        buf = io.BytesIO()
        if rec.get("unet_model"):
            from seaice_tasks.s2.unet import label_window_unet

            loaded = _unet(str(rec["unet_model"]))
            unet = label_window_unet(loaded.model, scene, _spec(rec), config, loaded.config, stats)
            np.savez_compressed(buf, labels=labels, unusable=unusable, valid=valid, unet=unet)
        else:
            np.savez_compressed(buf, labels=labels, unusable=unusable, valid=valid)
        key = PartitionKey(S2_LABELS_STAGE, dt.date.fromisoformat(rec["date"]), rec["scene"])
        lake.writer(key, config, token=rec["token"]).write_bytes(name, buf.getvalue())
    except (SeaIceError, ValueError, OSError) as exc:
        out["error"] = str(exc)
    return out


def _scene_stats(plans: Sequence[ScenePlan], hist_rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    from seaice_tasks.s2.cloud_shadow import FilterStats

    sums: dict[str, np.ndarray] = {p.scene: np.zeros(256, dtype=np.int64) for p in plans}
    for row in hist_rows:
        sums[row["scene"]] += np.asarray(row["hist"], dtype=np.int64)
    return {scene: FilterStats.from_histogram(h) for scene, h in sums.items()}


def _scene_rows(plans: Sequence[ScenePlan], label_rows: Sequence[dict[str, Any]], stats: dict[str, Any],
                unet_model: str = "") -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Rows of the scene pass (:func:`scene_item`) for scenes whose windows all succeeded."""
    by_scene: dict[str, list[dict[str, Any]]] = {}
    for row in label_rows:
        by_scene.setdefault(row["scene"], []).append(row)
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for plan in plans:
        done = by_scene.get(plan.scene, [])
        errors = sorted({r["error"] for r in done if r["error"]})
        if errors or len(done) != len(plan.windows):
            failures.append({"scene": plan.uri, "reason": "; ".join(errors) or "missing windows"})
            continue
        st = stats.get(plan.scene)
        rows.append({"scene": plan.scene, "uri": plan.uri, "date": plan.date, "token": plan.token,
                     "windows": _windows_json(plan.windows),
                     "stats": json.dumps(dataclasses.asdict(st) if st is not None else None),
                     "unet_model": unet_model})
    return rows, failures


def scene_item(rec: dict[str, Any], config: Any, lake: Lake) -> dict[str, Any]:
    """Pass 3 of one scene: mosaic its staged windows and stage the scene's files (no commit).

    Returns the staged file entries and the manifest info as JSON, or ``skip`` (fully clouded) or
    ``error``; the driver adopts the files and commits (:func:`_finalize`).
    """
    from seaice_tasks.constants import SeaIceClass
    from seaice_tasks.s2.cloud_shadow import FilterStats
    from seaice_tasks.s2.scene_labels import S2_LABELS_STAGE, SceneLabels, mosaic, stage_scene_files

    out = {"scene": rec["scene"], "entries": "[]", "info": "{}", "unet_entries": "[]", "unet_info": "{}",
           "skip": "", "error": ""}
    try:
        key = PartitionKey(S2_LABELS_STAGE, dt.date.fromisoformat(rec["date"]), rec["scene"])
        writer = lake.writer(key, config, token=rec["token"])
        windows = _windows_from_json(rec["windows"])
        parts = []
        unet_parts = []
        for k, w in enumerate(windows):
            with np.load(io.BytesIO(writer.read_staged(f"window-{k:05d}.npz"))) as z:
                parts.append((w, z["labels"], z["unusable"], z["valid"]))
                if "unet" in z.files:
                    unet_parts.append((w, z["unet"]))
        scene = _open(rec["uri"], config, lake)
        st = json.loads(rec["stats"])
        result = SceneLabels(
            labels=mosaic(scene.shape, [(w, a) for w, a, _, _ in parts], SeaIceClass.UNLABELED),
            unusable=mosaic(scene.shape, [(w, u) for w, _, u, _ in parts], 0).astype(bool),
            valid=mosaic(scene.shape, [(w, v) for w, _, _, v in parts], 0).astype(bool),
            stats=FilterStats(**st) if st is not None else None,
        )
        labelled = int(np.count_nonzero(result.labels != SeaIceClass.UNLABELED))
        valid = int(np.count_nonzero(result.valid))
        if labelled < config.min_usable_fraction * max(valid, 1):
            out["skip"] = (f"{rec['uri']}: fully clouded ({labelled} of {valid} valid pixels usable, "
                           f"below {config.min_usable_fraction:.0%})")
            return out
        info = stage_scene_files(writer, scene, result, config)
        out["entries"] = json.dumps([dataclasses.asdict(e) for e in writer.files.values()])
        out["info"] = json.dumps(info)
        if rec.get("unet_model"):
            from seaice_tasks.s2.unet import stage_unet_files

            card = _unet(str(rec["unet_model"])).card
            uwriter = lake.writer(_unet_key(rec["date"], rec["scene"]), _unet_config(card), token=rec["token"])
            uinfo = stage_unet_files(uwriter, scene, mosaic(scene.shape, unet_parts, SeaIceClass.UNLABELED), card,
                                     label_config=config)
            out["unet_entries"] = json.dumps([dataclasses.asdict(e) for e in uwriter.files.values()])
            out["unet_info"] = json.dumps(uinfo)
    except (SeaIceError, ValueError, OSError) as exc:
        out["error"] = str(exc)
    return out


def _unet_key(date: str, scene: str) -> PartitionKey:
    from seaice_tasks.s2.unet import S2_UNET_STAGE

    return PartitionKey(S2_UNET_STAGE, dt.date.fromisoformat(date), scene)


def _unet_config(card: dict[str, Any]) -> Any:
    """The U-Net partition's config: the model's own (as :func:`write_unet_partition` records)."""
    from seaice_tasks.s2.unet import UNetConfig

    return UNetConfig.from_dict(card["config"])


def _finalize(plans: Sequence[ScenePlan], scene_results: Sequence[dict[str, Any]], config: Any, lake: Lake,
              failures: list[dict[str, str]], unet_card: dict[str, Any] | None = None
              ) -> tuple[list[str], list[str], list[dict[str, str]], list[dict[str, str]]]:
    """Driver: adopt each scene's staged files and commit its partition(s), manifest last; drop the rest.

    Returns the committed label partitions, the committed U-Net partitions (with ``unet_card``),
    the skips and the failures.
    """
    by_scene = {r["scene"]: r for r in scene_results}
    committed: list[str] = []
    unet_committed: list[str] = []
    skips: list[dict[str, str]] = []
    failures = list(failures)
    for plan in plans:
        writers = [(lake.writer(plan.key, config, token=plan.token), "entries", "info", committed)]
        if unet_card is not None:
            writers.append((lake.writer(_unet_key(plan.date, plan.scene), _unet_config(unet_card), token=plan.token),
                            "unet_entries", "unet_info", unet_committed))
        res = by_scene.get(plan.scene)
        if res is None or res["error"] or res["skip"]:
            for writer, *_ in writers:
                writer.abort()  # staged windows (and any partial scene files) go
            if res is not None and res["skip"]:
                skips.append({"uri": plan.uri, "reason": res["skip"]})
            elif res is not None:
                failures.append({"scene": plan.uri, "reason": res["error"]})
            continue
        for writer, entries, info, done in writers:
            for entry in json.loads(res[entries]):
                writer.adopt(FileEntry(**entry))
            writer.info = json.loads(res[info])
            done.append(writer.commit().key.relpath)
    return committed, unet_committed, skips, failures


def _summary(committed: list[str], unet_committed: list[str], skips: list[dict[str, str]],
             failures: list[dict[str, str]], t0: float, t1: float, t2: float) -> dict[str, Any]:
    return {"partitions": committed, "unet_partitions": unet_committed, "skipped": skips, "failed": failures,
            "timings_s": {"load": t1 - t0, "map_reduce": t2 - t1}}


def _card(unet_model: str) -> dict[str, Any] | None:
    """The model card of ``--unet-model`` (None without one); fails early when it is unreadable."""
    if not unet_model:
        return None
    from seaice_tasks.s2.unet import read_model_card

    try:
        return read_model_card(unet_model)
    except (OSError, ValueError) as exc:
        raise SeaIceError(f"{unet_model}: not a U-Net model folder ({exc})") from exc


def run_local(uris: Sequence[str], lake: Lake, config: Any, *, day: str | None = None,
              unet_model: str = "") -> dict[str, Any]:
    """The same job in one process (CLI ``seaice label-s2 --no-spark``, unit tests).

    ``unet_model``: a model folder (:func:`seaice_tasks.s2.unet.save_model`); the scenes are then
    also labelled by the U-Net, window by window, into ``s2_unet_labels`` partitions.
    """
    card = _card(unet_model)
    t0 = time.perf_counter()
    plans, skips = plan_scenes(uris, config, lake)
    items = _items(plans, {}).to_dict("records")
    t1 = time.perf_counter()
    stats = (_scene_stats(plans, [histogram_item(r, config, lake) for r in items]) if config.apply_filter else {})
    labelled = [label_item(r, config, lake) for r in _items(plans, stats, unet_model).to_dict("records")]
    scene_rows, failures = _scene_rows(plans, labelled, stats, unet_model)
    results = [scene_item(r, config, lake) for r in scene_rows]
    committed, unet_committed, more_skips, failures = _finalize(plans, results, config, lake, failures, card)
    t2 = time.perf_counter()
    summary = _summary(committed, unet_committed, skips + more_skips, failures, t0, t1, t2)
    write_report(lake, REPORT_STAGE, day, summary, config)
    return summary


def _run_spark(uris: Sequence[str], lake: Lake, config: Any, args: argparse.Namespace,
               day: str | None) -> dict[str, Any]:
    """Load: executors open the scenes; map-reduce: histograms, window labels, scene files; driver commits."""
    card = _card(args.unet_model)
    spark = spark_session("seaice-s2-labels", args.master)
    per_core = args.tasks_per_core

    def run(rows: Sequence[dict[str, Any]], schema: str, fn_name: str, out_schema: str,
            weights: Sequence[float] | None = None) -> list[dict[str, Any]]:
        if not rows:
            return []
        df = task_dataframe(spark, rows, schema, weights=weights, tasks_per_core=per_core)
        fn = record_mapper(f"{_MODULE}:{fn_name}", _CONFIG_PATH, config.to_json(), lake.url(),
                           [c.split()[0] for c in out_schema.split(", ")])
        return [r.asDict() for r in df.mapInPandas(fn, schema=out_schema).collect()]

    try:
        t0 = time.perf_counter()
        token = uuid.uuid4().hex
        planned = {r["uri"]: r for r in run([{"uri": u, "token": token} for u in uris], "uri string, token string",
                                            "plan_record", _PLAN_SCHEMA)}
        plans = [_plan_from_row(planned[u], token) for u in uris if not planned[u]["skip"]]
        skips = [{"uri": u, "reason": planned[u]["skip"]} for u in uris if planned[u]["skip"]]
        for skip in skips:
            log.warning("s2_labels: skipping %s", skip["reason"])
        t1 = time.perf_counter()
        stats: dict[str, Any] = {}
        if config.apply_filter:
            items = _items(plans, {}).to_dict("records")
            stats = _scene_stats(plans, run(items, _ITEM_SCHEMA, "histogram_item", _HIST_SCHEMA,
                                            [float(r["height"] * r["width"]) for r in items]))
        items = _items(plans, stats, args.unet_model).to_dict("records")
        labelled = run(items, _ITEM_SCHEMA, "label_item", _LABEL_SCHEMA,
                       [float(r["height"] * r["width"]) for r in items])
        scene_rows, failures = _scene_rows(plans, labelled, stats, args.unet_model)
        results = run(scene_rows, _SCENE_SCHEMA, "scene_item", _SCENE_RESULT_SCHEMA,
                      [float(sum(w.height * w.width for w in _windows_from_json(r["windows"]))) for r in scene_rows])
        committed, unet_committed, more_skips, failures = _finalize(plans, results, config, lake, failures, card)
        t2 = time.perf_counter()
    finally:
        spark.stop()
    summary = _summary(committed, unet_committed, skips + more_skips, failures, t0, t1, t2)
    write_report(lake, REPORT_STAGE, day, summary, config)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; prints one ``SEAICE_RESULT {json}`` line."""
    from seaice_tasks.s2.scene_labels import S2LabelConfig

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="s2_labels.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", default="", help="comma-separated scene folders/files (or @file)")
    p.add_argument("--date", default="", help="UTC day: take the S2 scenes of its inventory")
    p.add_argument("--lake", default="", help="storage root (default $SEAICE_LAKE)")
    p.add_argument("--config", default="{}", help="S2LabelConfig as JSON")
    p.add_argument("--master", default="", help="Spark master when not set by spark-submit")
    p.add_argument("--tasks-per-core", type=int, default=DEFAULT_TASKS_PER_CORE,
                   help="Spark tasks per core the windows (and scenes) are packed into, by pixels")
    p.add_argument("--unet-model", default="",
                   help="also label with this U-Net model folder (save_model) into s2_unet_labels partitions; "
                        "executors must see the folder")
    p.add_argument("--no-spark", action="store_true", help="run in this process without Spark")
    args = p.parse_args(argv)
    config = S2LabelConfig.from_json(args.config)
    lake = lake_from_env(args.lake or None)
    uris = split_uris(args.scenes)
    if args.date and not uris:
        uris = inventory_uris(lake, args.date, "S2")
    uris = list(dict.fromkeys(uris))  # a scene listed twice is labelled once
    day = args.date or None
    try:
        summary = (run_local(uris, lake, config, day=day, unet_model=args.unet_model) if args.no_spark
                   else _run_spark(uris, lake, config, args, day))
    except SeaIceError as exc:  # a bad job argument (e.g. --unet-model); bad scenes are skips, not errors
        log.error("s2_labels: %s", exc)
        return EXIT_BAD_ARGUMENT
    print_result(summary)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    sys.exit(main())

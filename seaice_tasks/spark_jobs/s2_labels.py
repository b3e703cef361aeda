"""Spark job: Sentinel-2 scenes -> label partitions (``s2_labels/date=D/granule=<scene>``).

Usage::

    spark-submit seaice_tasks/spark_jobs/s2_labels.py --scenes DIR1,DIR2 --lake ROOT --config '{...}'
    spark-submit seaice_tasks/spark_jobs/s2_labels.py --date 2019-11-04 --lake ROOT   # from the inventory

Work items are (scene, window) pairs, so one scene spreads over executors.  With the
thin-cloud/shadow filter on, a first ``mapInPandas`` pass returns each window's 256-bin ``diff``
histogram and the driver sums them into the scene's filter statistics (the authors' Otsu level is
global); the second pass labels each window (read with a halo, cropped) and stages it under a
shared token.  The driver then mosaics each scene's windows and commits its labels COG,
unusable-mask COG and quicklook (:func:`seaice_tasks.s2.scene_labels.write_scene_partition`).
A scene that cannot be opened (missing band, grids that differ, corrupt file), that holds no
valid pixel or that is fully clouded is skipped with its reason in ``s2_labels_report/date=D``;
the other scenes go on.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
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
    inventory_uris,
    print_result,
    record_mapper,
    spark_session,
    split_uris,
    write_report,
)
from seaice_tasks.storage import Lake, PartitionKey, lake_from_env

__all__ = ["ScenePlan", "plan_scenes", "run_local", "main", "REPORT_STAGE"]

log = logging.getLogger("seaice_tasks.spark_jobs.s2_labels")

REPORT_STAGE: Final[str] = "s2_labels_report"
_CONFIG_PATH: Final[str] = "seaice_tasks.s2.scene_labels:S2LabelConfig"
#: Importable name of this module (``__name__`` is ``__main__`` under spark-submit).
_MODULE: Final[str] = "seaice_tasks.spark_jobs.s2_labels"
_HIST_SCHEMA: Final[str] = "scene string, window long, hist array<long>"
_LABEL_SCHEMA: Final[str] = "scene string, window long, name string, error string"
_ITEM_SCHEMA: Final[str] = (
    "scene string, uri string, date string, window long, row_off long, col_off long, height long, width long, "
    "token string, otsu_level long, diff2_min long, diff2_max long, n_valid long"
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


def plan_scenes(
    uris: Sequence[str], config: Any, lake: Lake, token: str | None = None
) -> tuple[list[ScenePlan], list[dict[str, str]]]:
    """Open every scene on the driver (grid checks only) and split it into windows."""
    from seaice_tasks.s2.scene_labels import plan_windows

    token = token or uuid.uuid4().hex
    plans: list[ScenePlan] = []
    skips: list[dict[str, str]] = []
    for uri in uris:
        try:
            scene = _open(uri, config, lake)
        except SeaIceError as exc:
            skips.append({"uri": uri, "reason": str(exc)})
            continue
        if scene.valid_fraction <= 0.0:
            skips.append({"uri": uri, "reason": f"{uri}: no valid pixel (all nodata)"})
            continue
        if scene.scene_id is not None:
            name, day = scene.scene_id.scene, scene.scene_id.sensing.date().isoformat()
        else:
            skips.append({"uri": uri, "reason": f"{uri}: name is not a Sentinel-2 scene id (cannot date it)"})
            continue
        plans.append(ScenePlan(uri=uri, scene=name, date=day,
                               windows=tuple(plan_windows(scene.shape, config.window_px)), token=token))
    for skip in skips:
        log.warning("s2_labels: skipping %s", skip["reason"])
    return plans, skips


def _items(plans: Sequence[ScenePlan], stats: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for plan in plans:
        st = stats.get(plan.scene)
        for k, w in enumerate(plan.windows):
            rows.append({
                "scene": plan.scene, "uri": plan.uri, "date": plan.date, "window": k, "row_off": w.row_off,
                "col_off": w.col_off, "height": w.height, "width": w.width, "token": plan.token,
                "otsu_level": st.otsu_level if st else -1, "diff2_min": st.diff2_min if st else -1,
                "diff2_max": st.diff2_max if st else -1, "n_valid": st.n_valid if st else -1,
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


def label_item(rec: dict[str, Any], config: Any, lake: Lake) -> dict[str, Any]:
    """Pass 2 of one window: labels/unusable/valid staged as ``window-NNNNN.npz``."""
    from seaice_tasks.s2.cloud_shadow import FilterStats
    from seaice_tasks.s2.scene_labels import S2_LABELS_STAGE, label_window

    name = f"window-{int(rec['window']):05d}.npz"
    out = {"scene": rec["scene"], "window": int(rec["window"]), "name": name, "error": ""}
    try:
        stats = (FilterStats(int(rec["otsu_level"]), int(rec["diff2_min"]), int(rec["diff2_max"]),
                             int(rec["n_valid"])) if int(rec["otsu_level"]) >= 0 else None)
        labels, unusable, valid = label_window(_open(rec["uri"], config, lake), _spec(rec), config, stats)
        buf = io.BytesIO()
        np.savez_compressed(buf, labels=labels, unusable=unusable, valid=valid)
        key = PartitionKey(S2_LABELS_STAGE, dt.date.fromisoformat(rec["date"]), rec["scene"])
        lake.writer(key, config, token=rec["token"]).write_bytes(name, buf.getvalue())
    except (SeaIceError, ValueError) as exc:
        out["error"] = str(exc)
    return out


def _scene_stats(plans: Sequence[ScenePlan], hist_rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    from seaice_tasks.s2.cloud_shadow import FilterStats

    sums: dict[str, np.ndarray] = {p.scene: np.zeros(256, dtype=np.int64) for p in plans}
    for row in hist_rows:
        sums[row["scene"]] += np.asarray(row["hist"], dtype=np.int64)
    return {scene: FilterStats.from_histogram(h) for scene, h in sums.items()}


def _commit(plans: Sequence[ScenePlan], label_rows: Sequence[dict[str, Any]], config: Any, lake: Lake,
            stats: dict[str, Any]) -> tuple[list[str], list[dict[str, str]], list[dict[str, str]]]:
    from seaice_tasks.constants import SeaIceClass
    from seaice_tasks.s2.scene_labels import SceneLabels, mosaic, write_scene_partition

    by_scene: dict[str, list[dict[str, Any]]] = {}
    for row in label_rows:
        by_scene.setdefault(row["scene"], []).append(row)
    committed: list[str] = []
    skips: list[dict[str, str]] = []
    failures: list[dict[str, str]] = []
    for plan in plans:
        rows = sorted(by_scene.get(plan.scene, []), key=lambda r: int(r["window"]))
        writer = lake.writer(plan.key, config, token=plan.token)
        errors = sorted({r["error"] for r in rows if r["error"]})
        if errors or len(rows) != len(plan.windows):
            writer.abort()
            failures.append({"scene": plan.uri, "reason": "; ".join(errors) or "missing windows"})
            continue
        parts = []
        for r in rows:
            with np.load(io.BytesIO(writer.read_staged(r["name"]))) as z:
                parts.append((plan.windows[int(r["window"])], z["labels"], z["unusable"], z["valid"]))
        scene = _open(plan.uri, config, lake)
        result = SceneLabels(
            labels=mosaic(scene.shape, [(w, a) for w, a, _, _ in parts], SeaIceClass.UNLABELED),
            unusable=mosaic(scene.shape, [(w, u) for w, _, u, _ in parts], 0).astype(bool),
            valid=mosaic(scene.shape, [(w, v) for w, _, _, v in parts], 0).astype(bool),
            stats=stats.get(plan.scene),
        )
        labelled = int(np.count_nonzero(result.labels != SeaIceClass.UNLABELED))
        valid = int(np.count_nonzero(result.valid))
        if labelled < config.min_usable_fraction * max(valid, 1):
            writer.abort()
            skips.append({"uri": plan.uri, "reason": f"{plan.uri}: fully clouded ({labelled} of {valid} valid "
                                                     f"pixels usable, below {config.min_usable_fraction:.0%})"})
            continue
        writer.abort()  # drop the staged windows; the partition is written fresh below
        manifest = write_scene_partition(lake, plan.key, scene, result, config)
        committed.append(manifest.key.relpath)
    return committed, skips, failures


def run_local(uris: Sequence[str], lake: Lake, config: Any, *, day: str | None = None) -> dict[str, Any]:
    """The same job in one process (CLI ``seaice label-s2 --no-spark``, unit tests)."""
    t0 = time.perf_counter()
    plans, skips = plan_scenes(uris, config, lake)
    items = _items(plans, {}).to_dict("records")
    t1 = time.perf_counter()
    stats = (_scene_stats(plans, [histogram_item(r, config, lake) for r in items]) if config.apply_filter else {})
    labelled = [label_item(r, config, lake) for r in _items(plans, stats).to_dict("records")]
    committed, more_skips, failures = _commit(plans, labelled, config, lake, stats)
    t2 = time.perf_counter()
    summary = {"partitions": committed, "skipped": skips + more_skips, "failed": failures,
               "timings_s": {"load": t1 - t0, "map_reduce": t2 - t1}}
    write_report(lake, REPORT_STAGE, day, summary, config)
    return summary


def _run_spark(uris: Sequence[str], lake: Lake, config: Any, master: str, day: str | None) -> dict[str, Any]:
    spark = spark_session("seaice-s2-labels", master)
    try:
        t0 = time.perf_counter()
        plans, skips = plan_scenes(uris, config, lake)
        n = max(sum(len(p.windows) for p in plans), 1)
        t1 = time.perf_counter()
        stats: dict[str, Any] = {}
        if config.apply_filter and plans:
            df = spark.createDataFrame(_items(plans, {}), schema=_ITEM_SCHEMA).repartition(n)
            fn = record_mapper(f"{_MODULE}:histogram_item", _CONFIG_PATH, config.to_json(), lake.url(),
                               ["scene", "window", "hist"])
            stats = _scene_stats(plans, [r.asDict() for r in df.mapInPandas(fn, schema=_HIST_SCHEMA).collect()])
        rows: list[dict[str, Any]] = []
        if plans:
            df = spark.createDataFrame(_items(plans, stats), schema=_ITEM_SCHEMA).repartition(n)
            fn = record_mapper(f"{_MODULE}:label_item", _CONFIG_PATH, config.to_json(), lake.url(),
                               ["scene", "window", "name", "error"])
            rows = [r.asDict() for r in df.mapInPandas(fn, schema=_LABEL_SCHEMA).collect()]
        committed, more_skips, failures = _commit(plans, rows, config, lake, stats)
        t2 = time.perf_counter()
    finally:
        spark.stop()
    summary = {"partitions": committed, "skipped": skips + more_skips, "failed": failures,
               "timings_s": {"load": t1 - t0, "map_reduce": t2 - t1}}
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
    p.add_argument("--no-spark", action="store_true", help="run in this process without Spark")
    args = p.parse_args(argv)
    config = S2LabelConfig.from_json(args.config)
    lake = lake_from_env(args.lake or None)
    uris = split_uris(args.scenes)
    if args.date and not uris:
        uris = inventory_uris(lake, args.date, "S2")
    day = args.date or None
    summary = (run_local(uris, lake, config, day=day) if args.no_spark
               else _run_spark(uris, lake, config, args.master, day))
    print_result(summary)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    sys.exit(main())
